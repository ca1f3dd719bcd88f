//! [`Mode`]: how a workload runs.

use std::fmt;
use std::str::FromStr;

/// How a workload runs: one of the seed's execution models.
///
/// Modes parse from the CLI's spelling: `serial`, `threads[:N]`, `processes[:N]`, `async[:N]`.
///
/// # Examples
///
/// ```
/// use triad::Mode;
/// assert_eq!("threads:4".parse::<Mode>().unwrap(), Mode::Threads(4));
/// assert_eq!("async:64".parse::<Mode>().unwrap(), Mode::Async { concurrency: 64 });
/// assert_eq!(Mode::Threads(4).to_string(), "threads:4");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// One task after another on the calling thread.
    Serial,
    /// A pool of this many OS threads.
    Threads(usize),
    /// A pool of this many worker processes (see [`ProcessPool`](crate::ProcessPool)); the
    /// program's `main` must call [`init`](crate::init) first.
    Processes(usize),
    /// Tasks on one tokio event loop, at most `concurrency` in flight; blocking task bodies are
    /// moved off the loop with `spawn_blocking`, as asyncio's `to_thread` does.
    Async {
        /// How many tasks may be in flight at once.
        concurrency: usize,
    },
    /// An engine outside this crate that runs this many tasks at once (a cluster): built
    /// with [`Runner::remote`](crate::Runner::remote), never from a string.
    Remote(usize),
}

impl Mode {
    /// The default concurrency of `async` without a number.
    pub const DEFAULT_ASYNC_CONCURRENCY: usize = 256;

    /// `Threads` with one thread per CPU this process may use.
    pub fn threads_per_core() -> Mode {
        Mode::Threads(available_cores())
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Serial => write!(f, "serial"),
            Mode::Threads(n) => write!(f, "threads:{n}"),
            Mode::Processes(n) => write!(f, "processes:{n}"),
            Mode::Async { concurrency } => write!(f, "async:{concurrency}"),
            Mode::Remote(n) => write!(f, "remote:{n}"),
        }
    }
}

/// Why a mode did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a mode: use serial, threads[:N], processes[:N] or async[:N] with N ≥ 1")]
pub struct ParseModeError(String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseModeError(text.to_owned());
        let (kind, count) = match text.split_once(':') {
            Some((kind, count)) => {
                let count: usize = count.parse().map_err(|_| error())?;
                if count == 0 {
                    return Err(error());
                }
                (kind, Some(count))
            }
            None => (text, None),
        };
        match (kind, count) {
            ("serial", None) => Ok(Mode::Serial),
            ("threads", count) => Ok(Mode::Threads(count.unwrap_or_else(available_cores))),
            ("processes", count) => Ok(Mode::Processes(count.unwrap_or_else(available_cores))),
            ("async", count) => Ok(Mode::Async {
                concurrency: count.unwrap_or(Mode::DEFAULT_ASYNC_CONCURRENCY),
            }),
            _ => Err(error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_text() {
        for mode in [
            Mode::Serial,
            Mode::Threads(3),
            Mode::Processes(2),
            Mode::Async { concurrency: 9 },
        ] {
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
        }
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!("threads".parse(), Ok(Mode::Threads(available_cores())));
        assert_eq!(
            "async".parse(),
            Ok(Mode::Async {
                concurrency: Mode::DEFAULT_ASYNC_CONCURRENCY
            })
        );
        assert_eq!("processes".parse(), Ok(Mode::Processes(available_cores())));
        for bad in [
            "",
            "serial:2",
            "threads:0",
            "threads:x",
            "process",
            "processes:0",
            "async:-1",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }
}
