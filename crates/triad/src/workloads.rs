//! The seed's workloads as registered tasks, shared by the CLI, the lab and the benchmarks.
//!
//! CPU-bound: the seed's prime count (section 2's `count_primes`) and sum of squares
//! (section 4's `cpu_bound_task`). IO-bound: a blocking sleep (`time.sleep`) and an async one
//! (`asyncio.sleep`). Overhead: `identity`, which does nothing, so a run of it measures only what
//! an engine costs per task.

use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::runner::Runner;
use crate::task::Task;

/// Counts the primes below `limit` by trial division, the way the seed's example does.
#[crate::task]
pub fn count_primes(limit: u64) -> u64 {
    (2..limit).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut divisor = 3;
    while divisor * divisor <= n {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

/// The sum of `i * i` for `i` below `n` (wrapping), the seed's `cpu_bound_task`.
///
/// Never inlined: inlined into a caller's loop the compiler may make different (here, 2×
/// slower) code of it, and every mode must time the same machine code.
#[crate::task]
#[inline(never)]
pub fn sum_squares(n: u64) -> u64 {
    (0..n).fold(0_u64, |sum, i| {
        sum.wrapping_add(std::hint::black_box(i * i))
    })
}

/// Keeps the CPU busy for `micros` microseconds of wall time and returns how many times it
/// looped: a task of a known length, for measuring what an engine adds to tasks of that size.
#[crate::task]
pub fn spin_us(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut spins = 0_u64;
    while Instant::now() < until {
        spins = std::hint::black_box(spins + 1);
    }
    spins
}

/// Blocks the calling thread for `millis` milliseconds and returns them.
#[crate::task]
pub fn sleep_ms(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

/// Waits `millis` milliseconds on the event loop's timer and returns them.
#[crate::task]
pub async fn async_sleep_ms(millis: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    millis
}

/// Returns its input: a task that costs nothing, to measure an engine's own overhead.
#[crate::task]
pub fn identity(x: u64) -> u64 {
    std::hint::black_box(x)
}

/// The names [`run_named`] accepts, with a one-line description each.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "count_primes",
        "CPU: count the primes below N by trial division",
    ),
    ("sum_squares", "CPU: sum i*i for i below N"),
    (
        "spin_us",
        "CPU: stay busy for N µs of wall time (a task of known length)",
    ),
    ("sleep_ms", "IO: block the thread for N ms (time.sleep)"),
    (
        "async_sleep_ms",
        "IO: wait N ms on the event loop (asyncio.sleep)",
    ),
    ("identity", "overhead: return N; measures the engine alone"),
];

/// No workload of that name is in [`CATALOGUE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no workload named `{0}`; the workloads are: {names}", names = catalogue_names())]
pub struct UnknownWorkload(pub String);

fn catalogue_names() -> String {
    CATALOGUE
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the workload called `name` (its short name from [`CATALOGUE`]) over `inputs` on `runner`,
/// calling `progress` once per finished task; results are in input order.
pub fn run_named(
    runner: &Runner,
    name: &str,
    inputs: Vec<u64>,
    progress: impl FnMut(),
) -> Result<Vec<Result<u64, TaskError>>, UnknownWorkload> {
    fn go<T: Task<Input = u64, Output = u64>>(
        runner: &Runner,
        task: T,
        inputs: Vec<u64>,
        mut progress: impl FnMut(),
    ) -> Vec<Result<u64, TaskError>> {
        let mut slots: Vec<Option<Result<u64, TaskError>>> = vec![None; inputs.len()];
        for (index, result) in runner.imap_unordered(task, inputs) {
            slots[index] = Some(result);
            progress();
        }
        slots.into_iter().flatten().collect()
    }
    Ok(match name {
        "count_primes" => go(runner, count_primes, inputs, progress),
        "sum_squares" => go(runner, sum_squares, inputs, progress),
        "spin_us" => go(runner, spin_us, inputs, progress),
        "sleep_ms" => go(runner, sleep_ms, inputs, progress),
        "async_sleep_ms" => go(runner, async_sleep_ms, inputs, progress),
        "identity" => go(runner, identity, inputs, progress),
        _ => return Err(UnknownWorkload(name.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_counts_match_known_values() {
        assert_eq!(count_primes::call(0), 0);
        assert_eq!(count_primes::call(3), 1);
        assert_eq!(count_primes::call(10), 4);
        assert_eq!(count_primes::call(100), 25);
        assert_eq!(count_primes::call(10_000), 1229);
    }

    #[test]
    fn every_catalogued_workload_runs_by_name() {
        let runner = Runner::new(crate::Mode::Serial).unwrap();
        for (name, _) in CATALOGUE {
            let results = run_named(&runner, name, vec![10, 1], || {}).unwrap();
            assert_eq!(results.len(), 2, "{name}");
            assert!(results.iter().all(Result::is_ok), "{name}");
        }
        assert_eq!(
            run_named(&runner, "nope", vec![], || {}),
            Err(UnknownWorkload("nope".into()))
        );
    }

    #[test]
    fn sum_of_squares_is_the_closed_form() {
        let n = 1000_u64;
        assert_eq!(sum_squares::call(n), (n - 1) * n * (2 * n - 1) / 6);
    }
}
