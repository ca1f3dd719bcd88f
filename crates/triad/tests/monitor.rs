//! `#[triad::monitor]` on plain and async functions: every call counted under its kind, an
//! `Err` or a panic counted as a failure, percentiles near the truth, spans when asked.

use std::sync::Arc;
use std::time::Duration;

#[triad::monitor(kind = "test-sleep")]
fn sleep_for(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

#[triad::monitor(kind = "test-fallible")]
fn fallible(fail: bool) -> Result<(), String> {
    if fail { Err("no".into()) } else { Ok(()) }
}

#[triad::monitor(kind = "test-panics")]
fn panics() {
    panic!("inside a monitored call");
}

#[triad::monitor(kind = "test-async")]
async fn later(x: u8) -> Result<u8, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(x)
}

fn kind(name: &str) -> triad::monitor::KindSummary {
    triad::monitor::summary()
        .into_iter()
        .find(|kind| kind.kind == name)
        .unwrap_or_else(|| panic!("no kind {name}"))
}

#[test]
fn calls_are_counted_timed_and_failures_seen() {
    let recorder = Arc::new(triad::Recorder::new());
    triad::monitor::set_recorder(Some(recorder.clone()));
    for millis in [1, 1, 1, 1, 20] {
        assert_eq!(sleep_for(millis), millis);
    }
    let sleeps = kind("test-sleep");
    assert_eq!((sleeps.calls, sleeps.failures), (5, 0));
    assert!(sleeps.total >= Duration::from_millis(24), "{sleeps:?}");
    assert!(
        sleeps.p50 >= Duration::from_millis(1) && sleeps.p50 < Duration::from_millis(15),
        "{sleeps:?}"
    );
    assert!(sleeps.p99 >= Duration::from_millis(18), "{sleeps:?}");

    assert!(fallible(true).is_err() && fallible(false).is_ok());
    let fallibles = kind("test-fallible");
    assert_eq!((fallibles.calls, fallibles.failures), (2, 1));

    assert!(std::panic::catch_unwind(panics).is_err());
    let panicked = kind("test-panics");
    assert_eq!((panicked.calls, panicked.failures), (1, 1));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(later(3)).unwrap(), 3);
    assert_eq!(kind("test-async").calls, 1);

    triad::monitor::set_recorder(None);
    let spans = recorder.take();
    assert!(
        spans
            .iter()
            .any(|span| span.name.starts_with("test-sleep: ")),
        "{spans:?}"
    );
    let mut table = Vec::new();
    triad::monitor::write_summary(&mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("test-fallible") && line.contains(" 2 ")),
        "{table}"
    );
}
