//! The seed's workloads as registered tasks, shared by the CLI, the lab and the benchmarks.
//!
//! CPU-bound: the seed's prime count (section 2's `count_primes`) and sum of squares
//! (section 4's `cpu_bound_task`). IO-bound: a blocking sleep (`time.sleep`) and an async one
//! (`asyncio.sleep`). Overhead: `identity`, which does nothing, so a run of it measures only what
//! an engine costs per task.
//!
//! Every workload gives its true answer or refuses: no arithmetic wraps. `sum_squares` returns
//! a `u128` (the sum below 4,000,000 is already past `u64::MAX`) and [`check_input`] refuses an
//! `n` whose sum would not fit even there; [`run_named`] streams any of them by name.

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
    // Up to the integer square root, computed once: `divisor * divisor <= n` would wrap for a
    // divisor past 2^32, and a division per step would double the cost of the loop.
    let last = n.isqrt();
    let mut divisor = 3;
    while divisor <= last {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

/// The largest `n` for which [`sum_squares`] fits in a `u128` (about 1.0 × 10^13).
pub const SUM_SQUARES_MAX_N: u64 = {
    // The largest n whose closed form fits: the closed form grows with n.
    let (mut fits, mut too_big) = (0_u64, u64::MAX);
    while too_big - fits > 1 {
        let middle = fits + (too_big - fits) / 2;
        if sum_squares_closed_form(middle).is_some() {
            fits = middle;
        } else {
            too_big = middle;
        }
    }
    fits
};

/// The exact sum of `i * i` for `i` below `n` by the closed form `(n-1)·n·(2n-1) / 6`, or
/// `None` when it does not fit in a `u128`.
///
/// The division is done on the factors first (one of `n-1`, `n` is even; one of `n-1`, `n`,
/// `2n-1` is a multiple of 3), so no intermediate product is larger than the result.
pub const fn sum_squares_closed_form(n: u64) -> Option<u128> {
    if n < 2 {
        return Some(0);
    }
    let (mut a, mut b, mut c) = (n as u128 - 1, n as u128, 2 * n as u128 - 1);
    if a % 2 == 0 {
        a /= 2;
    } else {
        b /= 2;
    }
    if a % 3 == 0 {
        a /= 3;
    } else if b % 3 == 0 {
        b /= 3;
    } else {
        c /= 3;
    }
    match a.checked_mul(b) {
        Some(ab) => ab.checked_mul(c),
        None => None,
    }
}

/// The sum of `i * i` for `i` below `n`, exactly, the seed's `cpu_bound_task` (Python's
/// integers do not overflow, and neither does this: `n` up to [`SUM_SQUARES_MAX_N`]).
///
/// Never inlined: inlined into a caller's loop the compiler may make different (here, 2×
/// slower) code of it, and every mode must time the same machine code.
///
/// # Panics
///
/// When `n` is above [`SUM_SQUARES_MAX_N`] (the sum would not fit in 128 bits); [`check_input`]
/// refuses such an input before a run.
#[crate::task]
#[inline(never)]
pub fn sum_squares(n: u64) -> u128 {
    assert!(
        n <= SUM_SQUARES_MAX_N,
        "sum_squares({n}): the sum does not fit in 128 bits (n can be at most {SUM_SQUARES_MAX_N})"
    );
    // Within the bound no partial sum overflows: each is at most the whole sum.
    (0..n).fold(0_u128, |sum, i| {
        sum + std::hint::black_box(u128::from(i) * u128::from(i))
    })
}

/// Keeps the CPU busy for `micros` microseconds of wall time and returns how many times it
/// looped: a task of a known length, for measuring what an engine adds to tasks of that size.
#[crate::task]
pub fn spin_us(micros: u64) -> u64 {
    let until = Instant::now()
        .checked_add(Duration::from_micros(micros))
        .expect("a u64 of microseconds from now fits in an Instant");
    let mut spins = 0_u64;
    while Instant::now() < until {
        // At 10^9 loops a second, 584 years to overflow: checked all the same, never wrapped.
        spins = std::hint::black_box(spins.checked_add(1).expect("fewer than 2^64 loops"));
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

/// Ends the process that runs it at once (`abort`), whatever its input: what a crashing
/// native library does. Only for worker processes — crash containment made visible (a pool,
/// or a cluster, must fail or dead-letter the task and go on); on threads it ends the whole
/// program. Not a [`run_named`] workload.
#[crate::task]
pub fn abort_process(code: u64) -> u64 {
    let _ = code;
    std::process::abort()
}

/// The names [`run_named`] accepts, with a one-line description each.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "count_primes",
        "CPU: count the primes below N by trial division",
    ),
    (
        "sum_squares",
        "CPU: sum i*i for i below N, exactly (N up to about 10^13)",
    ),
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

/// An input a workload cannot compute a true answer for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{workload} {input}: {reason}")]
pub struct InputOutOfRange {
    /// The workload's short name.
    pub workload: &'static str,
    /// The input refused.
    pub input: u64,
    /// Why, with the largest input that works.
    pub reason: String,
}

/// Refuses an input for which the workload called `name` would have no true answer (today:
/// `sum_squares` past [`SUM_SQUARES_MAX_N`]); an unknown name is accepted here and refused
/// by [`run_named`].
///
/// # Examples
///
/// ```
/// use triad::workloads::{SUM_SQUARES_MAX_N, check_input};
/// assert!(check_input("sum_squares", SUM_SQUARES_MAX_N).is_ok());
/// assert!(check_input("sum_squares", SUM_SQUARES_MAX_N + 1).is_err());
/// assert!(check_input("count_primes", u64::MAX).is_ok());
/// ```
pub fn check_input(name: &str, input: u64) -> Result<(), InputOutOfRange> {
    if name == "sum_squares" && input > SUM_SQUARES_MAX_N {
        return Err(InputOutOfRange {
            workload: "sum_squares",
            input,
            reason: format!(
                "the sum of squares below it does not fit in 128 bits; the largest input is \
                 {SUM_SQUARES_MAX_N}"
            ),
        });
    }
    Ok(())
}

/// A named workload's results, in input order, each widened to `u128`.
pub type NamedResults<'a> = Box<dyn Iterator<Item = Result<u128, TaskError>> + 'a>;

/// Runs the workload called `name` (its short name from [`CATALOGUE`]) over `inputs` on
/// `runner`, streaming: inputs are pulled lazily and results come out in input order as they
/// are ready, so neither is held beyond the engine's window (see [`Runner::imap`]).
///
/// # Examples
///
/// ```
/// let runner = triad::Runner::new(triad::Mode::Threads(2)).unwrap();
/// let results = triad::workloads::run_named(&runner, "sum_squares", [4_000_000, 3]).unwrap();
/// let sums: Vec<u128> = results.map(Result::unwrap).collect();
/// assert_eq!(sums, [21_333_325_333_334_000_000, 5]);
/// ```
pub fn run_named<'a, I>(
    runner: &Runner,
    name: &str,
    inputs: I,
) -> Result<NamedResults<'a>, UnknownWorkload>
where
    I: IntoIterator<Item = u64>,
    I::IntoIter: 'a,
{
    fn widened<'a, T, I>(runner: &Runner, task: T, inputs: I) -> NamedResults<'a>
    where
        T: Task<Input = u64>,
        T::Output: Into<u128>,
        I: Iterator<Item = u64> + 'a,
    {
        Box::new(
            runner
                .imap(task, inputs)
                .map(|result| result.map(Into::into)),
        )
    }
    let inputs = inputs.into_iter();
    Ok(match name {
        "count_primes" => widened(runner, count_primes, inputs),
        "sum_squares" => widened(runner, sum_squares, inputs),
        "spin_us" => widened(runner, spin_us, inputs),
        "sleep_ms" => widened(runner, sleep_ms, inputs),
        "async_sleep_ms" => widened(runner, async_sleep_ms, inputs),
        "identity" => widened(runner, identity, inputs),
        _ => return Err(UnknownWorkload(name.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The primes below `limit` by a sieve: a reference that shares no code with trial division.
    fn sieve_count(limit: u64) -> u64 {
        let limit = usize::try_from(limit).unwrap();
        let mut composite = vec![false; limit.max(2)];
        let mut count = 0;
        for n in 2..limit {
            if !composite[n] {
                count += 1;
                for multiple in (n * n..limit).step_by(n) {
                    composite[multiple] = true;
                }
            }
        }
        count
    }

    /// The sum of squares one term at a time in u128.
    fn summed(n: u64) -> u128 {
        (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
    }

    #[test]
    fn prime_counts_match_known_values() {
        assert_eq!(count_primes::call(0), 0);
        assert_eq!(count_primes::call(3), 1);
        assert_eq!(count_primes::call(10), 4);
        assert_eq!(count_primes::call(100), 25);
        assert_eq!(count_primes::call(10_000), 1229);
    }

    #[test]
    fn primality_at_the_top_of_u64() {
        // Composites with a small factor end early. (The largest prime, 2^64 - 59, would take
        // the divisor past 2^32, where the old `d * d <= n` wrapped: 2^31 divisions, too slow
        // for a unit test; the bound `isqrt(n)` cannot wrap.)
        assert!(!is_prime(u64::MAX));
        assert!(!is_prime(u64::MAX - 1));
        assert!(is_prime(2_147_483_659));
    }

    #[test]
    fn every_catalogued_workload_runs_by_name() {
        let runner = Runner::new(crate::Mode::Serial).unwrap();
        for (name, _) in CATALOGUE {
            let results: Vec<_> = run_named(&runner, name, vec![10, 1]).unwrap().collect();
            assert_eq!(results.len(), 2, "{name}");
            assert!(results.iter().all(Result::is_ok), "{name}");
        }
        assert!(matches!(
            run_named(&runner, "nope", vec![]),
            Err(UnknownWorkload(name)) if name == "nope"
        ));
    }

    #[test]
    fn the_issue_s_example_is_exact() {
        // `triad run sum_squares 4000000` printed 2886581259624448384, the sum mod 2^64.
        assert_eq!(sum_squares::call(4_000_000), 21_333_325_333_334_000_000);
        assert_eq!(summed(4_000_000), 21_333_325_333_334_000_000);
    }

    #[test]
    fn the_bound_is_the_last_n_whose_sum_fits() {
        let at = sum_squares_closed_form(SUM_SQUARES_MAX_N).expect("fits at the bound");
        // S(n + 1) = S(n) + n²: one more term no longer fits.
        let next_term = u128::from(SUM_SQUARES_MAX_N) * u128::from(SUM_SQUARES_MAX_N);
        assert_eq!(at.checked_add(next_term), None);
        assert_eq!(sum_squares_closed_form(SUM_SQUARES_MAX_N + 1), None);
        assert_eq!(sum_squares_closed_form(u64::MAX), None);
        assert!(check_input("sum_squares", SUM_SQUARES_MAX_N + 1).is_err());
        assert!(
            std::panic::catch_unwind(|| sum_squares::call(SUM_SQUARES_MAX_N + 1)).is_err(),
            "the task refuses rather than wraps"
        );
    }

    #[test]
    fn sum_squares_by_name_on_threads_is_exact() {
        let runner = Runner::new(crate::Mode::Threads(2)).unwrap();
        let sums: Vec<_> = run_named(&runner, "sum_squares", [4_000_000, 5, 0])
            .unwrap()
            .collect();
        assert_eq!(sums, [Ok(21_333_325_333_334_000_000), Ok(30), Ok(0)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sum_squares_is_the_term_by_term_sum(n in 0_u64..20_000) {
            prop_assert_eq!(sum_squares::call(n), summed(n));
            prop_assert_eq!(sum_squares_closed_form(n), Some(summed(n)));
        }

        #[test]
        fn the_closed_form_steps_by_one_square(n in 0_u64..SUM_SQUARES_MAX_N) {
            // S(n + 1) - S(n) = n², checked in u128 wherever both fit.
            let (here, next) = (sum_squares_closed_form(n), sum_squares_closed_form(n + 1));
            prop_assert_eq!(
                next,
                here.and_then(|s| s.checked_add(u128::from(n) * u128::from(n)))
            );
        }

        #[test]
        fn the_closed_form_is_exact_against_a_wide_reference(n in 2_u64..=u64::MAX) {
            // (n-1)·n·(2n-1) in 256 bits (two u128 limbs), divided by 6, against the u128 answer.
            let exact = wide_closed_form(n);
            match sum_squares_closed_form(n) {
                Some(sum) => prop_assert_eq!(exact, (0, sum)),
                None => prop_assert!(exact.0 > 0),
            }
        }

        #[test]
        fn count_primes_matches_a_sieve(limit in 0_u64..30_000) {
            prop_assert_eq!(count_primes::call(limit), sieve_count(limit));
        }
    }

    /// `(n-1)·n·(2n-1) / 6` as a 256-bit number `(high, low)`, by schoolbook arithmetic on
    /// 64-bit digits: the big-integer reference for [`sum_squares_closed_form`].
    fn wide_closed_form(n: u64) -> (u128, u128) {
        let n = u128::from(n);
        // (n-1)·n fits in 128 bits; times (2n-1) (up to 65 bits) needs 256.
        let ab = (n - 1) * n;
        let c = 2 * n - 1;
        let digits = |x: u128| [x as u64, (x >> 64) as u64];
        let (x, y) = (digits(ab), digits(c));
        let mut product = [0_u64; 4];
        for (i, &xi) in x.iter().enumerate() {
            let mut carry = 0_u128;
            for (j, &yj) in y.iter().enumerate() {
                let cell = u128::from(product[i + j]) + u128::from(xi) * u128::from(yj) + carry;
                product[i + j] = cell as u64;
                carry = cell >> 64;
            }
            product[i + 2] = carry as u64;
        }
        // Divide by 6, most significant digit first.
        let mut remainder = 0_u128;
        for digit in product.iter_mut().rev() {
            let value = (remainder << 64) | u128::from(*digit);
            *digit = (value / 6) as u64;
            remainder = value % 6;
        }
        assert_eq!(remainder, 0, "the product is a multiple of 6");
        let join = |low: u64, high: u64| (u128::from(high) << 64) | u128::from(low);
        (join(product[2], product[3]), join(product[0], product[1]))
    }
}
