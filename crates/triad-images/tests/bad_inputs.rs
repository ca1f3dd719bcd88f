//! Every kind of bad input in one batch: each fails alone with its reason, the good images are
//! written, and nothing else appears in the output directory.

mod common;

use common::*;
use triad_images::{FailureKind, Kind, Op, Options, Status};

#[test]
fn each_bad_file_fails_with_its_reason_and_the_rest_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("in");
    let good_jpeg = jpeg(&smooth(64, 48), None);
    let mut corrupt = good_jpeg.clone();
    // Damage the frame header: its marker becomes a reserved one.
    let sof = corrupt
        .windows(2)
        .position(|pair| pair == [0xFF, 0xC0])
        .unwrap();
    corrupt[sof + 1] = 0x01;
    let truncated = good_jpeg[..good_jpeg.len() * 2 / 3].to_vec();
    // A BMP: "BM", then enough of a header for the format to be recognised.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 52]);
    let inputs = vec![
        put(&root, "a-good.jpg", &good_jpeg),
        put(&root, "b-corrupt.jpg", &corrupt),
        put(&root, "c-truncated.jpg", &truncated),
        put(&root, "d-empty.jpg", b""),
        put(&root, "e-picture.bmp", &bmp),
        put(&root, "f-text.png", b"not an image at all\n"),
        put(&root, "g-bomb.jpg", &jpeg_claiming(60_000, 60_000)),
        root.join("h-missing.jpg"),
        put(&root, "i-good.png", &png(&pattern(30, 20), None)),
    ];
    let out = dir.path().join("out");
    let mut options = Options::new(vec![Op::parse("resize=32x32").unwrap()], &out, inputs);
    options.format = Some(Kind::Png);
    let summary = triad_images::run(&options).unwrap();
    let outcome: Vec<_> = summary
        .rows
        .iter()
        .map(|row| (row.status, row.kind))
        .collect();
    use FailureKind::*;
    assert_eq!(
        outcome,
        [
            (Status::Ok, None),
            (Status::Failed, Some(Corrupt)),
            (Status::Failed, Some(Corrupt)),
            (Status::Failed, Some(Empty)),
            (Status::Failed, Some(Unsupported)),
            (Status::Failed, Some(Unsupported)),
            (Status::Failed, Some(TooLarge)),
            (Status::Failed, Some(Unreadable)),
            (Status::Ok, None),
        ],
        "{:#?}",
        summary.rows
    );
    let reason = |index: usize| summary.rows[index].reason.clone().unwrap();
    assert!(reason(2).contains("cut short"), "{}", reason(2));
    assert!(reason(3).contains("empty"), "{}", reason(3));
    assert!(
        reason(4).starts_with("BMP is not a format"),
        "{}",
        reason(4)
    );
    assert!(reason(6).contains("3600 MP"), "{}", reason(6));
    assert!(reason(7).contains("No such file"), "{}", reason(7));
    assert_eq!((summary.ok, summary.failed, summary.skipped), (2, 7, 0));
    // Only the two good images' outputs: no partial or temporary file of the others.
    assert_eq!(files(&out), ["a-good.png", "i-good.png"]);
    for name in ["a-good.png", "i-good.png"] {
        let written = image::open(out.join(name)).unwrap();
        assert_eq!(written.width().max(written.height()), 32);
    }
}

#[test]
fn the_bomb_limit_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let input = put(dir.path(), "a.png", &png(&pattern(200, 100), None));
    let mut options = Options::new(vec![], dir.path().join("out"), vec![input]);
    options.max_pixels = 19_999;
    let row = &triad_images::run(&options).unwrap().rows[0];
    assert_eq!(row.kind, Some(FailureKind::TooLarge), "{row:?}");
    options.max_pixels = 20_000;
    assert_eq!(
        triad_images::run(&options).unwrap().rows[0].status,
        Status::Ok
    );
}

#[test]
fn two_inputs_with_one_output_and_an_output_over_its_input_fail() {
    let dir = tempfile::tempdir().unwrap();
    let a = put(dir.path(), "x/a.jpg", &jpeg(&pattern(8, 8), None));
    let b = put(dir.path(), "y/a.jpg", &jpeg(&pattern(8, 8), None));
    let summary = triad_images::run(&Options::new(
        vec![],
        dir.path().join("out"),
        vec![a.clone(), b],
    ))
    .unwrap();
    assert_eq!(summary.rows[0].status, Status::Ok);
    assert_eq!(summary.rows[1].kind, Some(FailureKind::Clash));
    assert!(
        summary.rows[1]
            .reason
            .as_ref()
            .unwrap()
            .contains("already the output of")
    );
    // --out the input's own directory, same format: it would overwrite the input.
    let summary = triad_images::run(&Options::new(vec![], dir.path().join("x"), vec![a])).unwrap();
    assert_eq!(summary.rows[0].kind, Some(FailureKind::Clash));
}

#[test]
fn an_output_directory_that_cannot_be_made_stops_the_run_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = put(dir.path(), "a.png", &png(&pattern(4, 4), None));
    let blocker = put(dir.path(), "file", b"a file, not a directory");
    let error =
        triad_images::run(&Options::new(vec![], blocker.join("out"), vec![input])).unwrap_err();
    assert!(error.to_string().starts_with("cannot use"), "{error}");
    assert!(!error.is_usage());
}

#[test]
fn an_output_whose_directory_is_blocked_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("in");
    put(&root, "sub/a.png", &png(&pattern(4, 4), None));
    put(&root, "b.png", &png(&pattern(4, 4), None));
    let out = dir.path().join("out");
    // Where sub/ should go under --out there is a file.
    put(&out, "sub", b"in the way");
    let mut options = Options::new(vec![], &out, vec![root]);
    options.recursive = true;
    let summary = triad_images::run(&options).unwrap();
    let by_input = |suffix: &str| {
        summary
            .rows
            .iter()
            .find(|r| r.input.ends_with(suffix))
            .unwrap()
    };
    assert_eq!(by_input("b.png").status, Status::Ok);
    let blocked = by_input("a.png");
    assert_eq!(blocked.kind, Some(FailureKind::Write), "{blocked:?}");
    assert!(
        blocked
            .reason
            .as_ref()
            .unwrap()
            .contains("cannot make the directory")
    );
}
