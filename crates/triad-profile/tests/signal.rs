//! SIGTERM / SIGINT sent to the *profiler* reach the command, and the profiler carries on and
//! returns its Recording. A test binary of its own: the signal goes to this whole process.

use std::thread;
use std::time::Duration;

use triad_profile::{Exit, RunOptions, profile};

fn signal_self_later(signal: libc::c_int) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), signal) };
    })
}

#[test]
fn signals_to_the_profiler_reach_the_command() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let t = signal_self_later(signal);
        let r = profile(&["sleep", "10"], &RunOptions::default()).unwrap();
        t.join().unwrap();
        assert_eq!(r.exit, Exit::Signal { signal });
        assert!(r.totals.wall_s < 5.0, "{:?}", r.totals);
        assert!(!r.samples.is_empty());
    }
}
