//! The crate's public error types, in one leaf module that imports nothing else of the crate.
//!
//! [`TaskError`] is per task: an engine never fails a whole run because one task failed, it
//! returns that task's error in that task's slot. [`EngineError`] is for the engine itself
//! (it could not start its threads or its event loop, or was given a mode it cannot run);
//! [`PoolError`] is the process pool's share of it, and [`RegistryError`] says the task
//! registry could not be built.

use serde::{Deserialize, Serialize};

/// Why one task produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked; the message is the panic payload when it was a string.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task's input or output could not be encoded or decoded.
    #[error("task data could not be encoded or decoded: {0}")]
    Codec(String),
    /// No task of that name is registered in this binary (for example, a stale worker binary).
    #[error("no task named `{0}` is registered in this binary")]
    UnknownTask(String),
    /// The engine shut down before the task finished.
    #[error("the engine shut down before the task finished")]
    Cancelled,
    /// The worker process running the task died (killed by `signal`, or exited with `code`).
    #[error("the worker process died while running the task ({})", describe_exit(*signal, *code))]
    WorkerDied {
        /// The signal that ended the worker, if a signal did.
        signal: Option<i32>,
        /// The worker's exit code, if it exited.
        code: Option<i32>,
    },
    /// No worker process could be started to run the task.
    #[error("no worker could start: {0}")]
    WorkerStart(String),
    /// The task did not finish within its time limit; its worker was replaced.
    #[error("the task did not finish within its time limit")]
    Timeout,
}

/// How a process ended, in words: `killed by signal 9`, `exit code 3`.
pub(crate) fn describe_exit(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(signal), _) => format!("killed by signal {signal}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "no status".to_owned(),
    }
}

thread_local! {
    // Where the last panic on this thread happened, when a panic hook noted it.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// Records where a panic happened, for [`TaskError::from_panic`] to add to its message (worker
/// processes install a panic hook that calls this instead of printing).
pub(crate) fn note_panic_location(location: String) {
    PANIC_LOCATION.with(|slot| *slot.borrow_mut() = Some(location));
}

impl TaskError {
    /// Turns a panic payload, as returned by `catch_unwind`, into [`TaskError::Panicked`]
    /// (with ` (at file:line)` when the panic hook noted where it happened).
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let mut message = if let Some(text) = payload.downcast_ref::<&'static str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        if let Some(location) = PANIC_LOCATION.with(|slot| slot.borrow_mut().take()) {
            message.push_str(&format!(" (at {location})"));
        }
        TaskError::Panicked(message)
    }
}

/// Why an engine could not be built or could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The mode asks for something no engine can do, such as zero threads.
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    /// The process pool could not start.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// More threads than this system allows.
    #[error("{asked} threads is more than this system allows: at most {most} ({why})")]
    TooManyThreads {
        /// The threads asked for.
        asked: usize,
        /// The most this system allows now.
        most: u64,
        /// Which limit that is.
        why: String,
    },
    /// The operating system refused a thread or a runtime.
    #[error("could not start the {what}: {source}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Why a pool could not start or take work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a process pool needs at least one worker")]
    NoWorkers,
    /// This process was started as a worker but its `main` did not call [`init`](crate::init).
    #[error(
        "this process was started as a triad worker, but main() did not call triad::init() first"
    )]
    NotInitialised,
    /// The task registry is inconsistent (two tasks of one name).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// More worker processes than this system allows.
    #[error("{asked} worker processes is more than this system allows: at most {most} ({why})")]
    TooManyWorkers {
        /// The workers asked for.
        asked: usize,
        /// The most this system allows now.
        most: u64,
        /// Which limit that is.
        why: String,
    },
    /// The workers could not be started.
    #[error("could not start the process pool: {0}")]
    Start(String),
    /// The pool was closed or terminated and takes no more work.
    #[error("the process pool is closed")]
    Closed,
}

/// Why the registry could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two registered tasks share one name (for example, two `#[triad::task] fn`s of one name
    /// declared inside function bodies of the same module).
    #[error("two tasks are registered as `{0}`: task names must be unique")]
    Duplicate(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_messages() {
        let static_str = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        assert_eq!(
            TaskError::from_panic(static_str),
            TaskError::Panicked("boom".into())
        );
        let formatted = std::panic::catch_unwind(|| panic!("n = {}", 7)).unwrap_err();
        assert_eq!(
            TaskError::from_panic(formatted),
            TaskError::Panicked("n = 7".into())
        );
        let other = std::panic::catch_unwind(|| std::panic::panic_any(42_u8)).unwrap_err();
        assert!(
            matches!(TaskError::from_panic(other), TaskError::Panicked(m) if m.contains("non-string"))
        );
    }
}
