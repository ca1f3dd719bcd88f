//! A progress bar kept up to date while long work runs: a ticker thread calls `update` every
//! 200 ms, and once more at once when the work ends (its channel closes), then clears the bar.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;

/// Runs `work` on this thread while a ticker calls `update(bar, time since the start)`.
pub(crate) fn while_running<T>(
    bar: &ProgressBar,
    update: impl Fn(&ProgressBar, Duration) + Send + 'static,
    work: impl FnOnce() -> T,
) -> T {
    let (finished, wait) = std::sync::mpsc::channel::<()>();
    let ticker = {
        let bar = bar.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                wait.recv_timeout(Duration::from_millis(200))
            {
                update(&bar, started.elapsed());
            }
        })
    };
    let outcome = work();
    drop(finished);
    let _ = ticker.join();
    bar.finish_and_clear();
    outcome
}
