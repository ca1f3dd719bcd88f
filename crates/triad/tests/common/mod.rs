//! Helpers shared by the integration tests (each test binary includes the ones it needs).

#![allow(dead_code, unreachable_pub)] // each binary uses its own share

pub mod procs;

use std::time::Duration;

/// Makes the tests of one binary take turns (for tests that kill this process's workers or
/// fork server, which would disturb a test running beside them).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many times a timing fact is tried before it fails the test.
pub const ATTEMPTS: usize = 3;

/// Checks a fact about time — something that holds on a quiet machine but that one burst of
/// outside load (a shared CI machine, one core kept busy by another process) can break — up to
/// [`ATTEMPTS`] times, a second apart; the test fails only if every attempt fails, with every
/// complaint. `attempt` runs the whole measurement afresh each time and returns what the test
/// checks afterwards.
pub fn run_until<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut complaints = Vec::new();
    for _ in 0..ATTEMPTS {
        match attempt() {
            Ok(value) => return value,
            Err(complaint) => {
                eprintln!("{what}: a timing fact failed, trying again: {complaint}");
                complaints.push(complaint);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    panic!("{what}: on each of {ATTEMPTS} attempts: {complaints:#?}");
}

/// `Err(message)` unless `holds`.
pub fn expect(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}
