//! `skip_existing`: a re-run after an interruption does only what is left.

mod common;

use common::*;
use triad_images::{Op, Options, Status};

#[test]
fn a_rerun_skips_what_exists_and_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("in");
    for index in 0..5 {
        put(
            &root,
            &format!("{index}.jpg"),
            &jpeg(&smooth(64 + index, 48), None),
        );
    }
    let out = dir.path().join("out");
    let mut options = Options::new(vec![Op::parse("thumbnail=32").unwrap()], &out, vec![root]);
    let first = triad_images::run(&options).unwrap();
    assert_eq!(first.ok, 5);
    // As if the run had been cut off after three images.
    std::fs::remove_file(out.join("1.jpg")).unwrap();
    std::fs::remove_file(out.join("3.jpg")).unwrap();
    let kept = std::fs::metadata(out.join("0.jpg"))
        .unwrap()
        .modified()
        .unwrap();
    options.skip_existing = true;
    let second = triad_images::run(&options).unwrap();
    let statuses: Vec<_> = second.rows.iter().map(|row| row.status).collect();
    use Status::*;
    assert_eq!(statuses, [Skipped, Ok, Skipped, Ok, Skipped]);
    assert_eq!(
        std::fs::metadata(out.join("0.jpg"))
            .unwrap()
            .modified()
            .unwrap(),
        kept
    );
    assert_eq!(files(&out).len(), 5);
    // Without the flag every image is done again.
    options.skip_existing = false;
    assert_eq!(triad_images::run(&options).unwrap().ok, 5);
}
