//! The lag monitor against the seed's pitfall 1, in real time: a blocking sleep inside a task
//! stalls a one-thread event loop, an async sleep does not.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{expect, run_until};
use tracing_subscriber::fmt::MakeWriter;
use triad::{LagMonitor, LagOptions, LagReport};

/// A `MakeWriter` that appends everything to one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `body` on a fresh current-thread runtime watched by a default monitor, with tracing
/// output captured; returns the final report and the log.
fn watch<F: Future<Output = ()>>(body: F) -> (LagReport, String) {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let monitor = LagMonitor::start(rt.handle(), LagOptions::default());
        rt.block_on(body);
        monitor.stop()
    });
    (report, log.text())
}

#[test]
fn blocking_sleep_in_a_task_is_a_stall() {
    run_until("one 300 ms blocking sleep is one long stall", || {
        let (report, log) = watch(async {
            tokio::spawn(async { std::thread::sleep(Duration::from_millis(300)) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        });
        assert_eq!(report.threshold, Duration::from_millis(100));
        assert!(report.longest <= report.total_stalled, "{report:?}");
        expect(report.stalls >= 1, || format!("{report:?}"))?;
        expect(report.longest >= Duration::from_millis(250), || {
            format!("{report:?}")
        })?;
        expect(report.total_stalled >= Duration::from_millis(250), || {
            format!("{report:?}")
        })?;
        expect(log.contains("WARN"), || log.clone())?;
        expect(log.contains("event loop was blocked for 0."), || {
            log.clone()
        })
    });
}

#[test]
fn async_sleep_in_a_task_is_not_a_stall() {
    run_until("an async sleep blocks nothing", || {
        let (report, log) = watch(async {
            tokio::spawn(tokio::time::sleep(Duration::from_millis(300)))
                .await
                .unwrap();
        });
        // A busy machine may delay a heartbeat past the threshold; an await never blocks.
        expect(report.stalls == 0, || format!("{report:?}"))?;
        expect(report.total_stalled == Duration::ZERO, || {
            format!("{report:?}")
        })?;
        expect(report.longest < report.threshold, || format!("{report:?}"))?;
        expect(report.beats >= 10, || format!("{report:?}"))?;
        expect(!log.contains("event loop was blocked"), || log.clone())
    });
}

#[test]
fn each_blocking_call_is_its_own_stall() {
    run_until("two 150 ms blocking sleeps are two stalls", || {
        let (report, log) = watch(async {
            for _ in 0..2 {
                tokio::spawn(async { std::thread::sleep(Duration::from_millis(150)) })
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        expect(report.stalls == 2, || format!("{report:?}"))?;
        expect(report.total_stalled >= Duration::from_millis(250), || {
            format!("{report:?}")
        })?;
        expect(report.longest < report.total_stalled, || {
            format!("{report:?}")
        })?;
        expect(log.matches("event loop was blocked").count() == 2, || {
            log.clone()
        })
    });
}
