//! A job: a batch of tasks of one registered task, as the pool hands it to its dispatcher —
//! the encoded inputs end to end in one buffer, and a [`Delivery`] that answers each task
//! exactly once.

use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use serde::Serialize;

use super::wire::WireSpan;
use crate::error::TaskError;
use crate::fdpass::Encoder;

/// The largest input: one input alone in a frame must stay within the wire's frame limit.
pub(crate) const MAX_INPUT: usize = super::wire::MAX_FRAME - (1 << 20);

/// Called once per task of a job with the task's position in the job, its encoded output (or
/// error) and, if asked for, its span.
pub(crate) type Deliver =
    Box<dyn FnMut(usize, Result<&[u8], TaskError>, Option<SpanInWorker>) + Send>;

/// A job's answers: each position answered exactly once. Dropping it answers every position
/// not yet answered with [`TaskError::Cancelled`], so no caller waits for ever, whatever path
/// drops a job (a closed pool, a terminated one, a dispatcher that unwinds).
pub(crate) struct Delivery {
    deliver: Deliver,
    answered: Vec<bool>,
    remaining: usize,
}

impl Delivery {
    pub(crate) fn new(count: usize, deliver: Deliver) -> Self {
        Delivery {
            deliver,
            answered: vec![false; count],
            remaining: count,
        }
    }

    /// Answers `position`, unless it was answered already. `deliver` runs user code (an output's
    /// `Deserialize`); a panic there becomes this position's error, not the dispatcher's end.
    pub(crate) fn answer(
        &mut self,
        position: usize,
        outcome: Result<&[u8], TaskError>,
        span: Option<SpanInWorker>,
    ) {
        if self.answered[position] {
            debug_assert!(false, "task {position} answered twice");
            return;
        }
        self.answered[position] = true;
        self.remaining -= 1;
        let deliver = &mut self.deliver;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| deliver(position, outcome, span))) {
            let error = TaskError::Codec(format!(
                "decoding the output panicked: {}",
                TaskError::from_panic(payload)
            ));
            let _ = catch_unwind(AssertUnwindSafe(|| deliver(position, Err(error), None)));
        }
    }

    /// Answers every position not answered yet with `error`.
    pub(crate) fn answer_rest(&mut self, error: &TaskError) {
        for position in 0..self.answered.len() {
            if !self.answered[position] {
                self.answer(position, Err(error.clone()), None);
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.answer_rest(&TaskError::Cancelled);
        }
    }
}

/// A task's span as measured in a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanInWorker {
    pub(crate) pid: u32,
    pub(crate) span: WireSpan,
}

/// A job's encoded inputs, end to end in one buffer, with their descriptors.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    /// Cumulative descriptor counts, one per input, once any input has descriptors.
    pub(crate) fd_ends: Option<Vec<usize>>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Inputs {
    pub(crate) fn new() -> Self {
        Inputs::default()
    }

    /// Adds an input encoded already (postcard, without descriptors).
    pub(crate) fn push_encoded(&mut self, input: &[u8]) -> Result<(), String> {
        if input.len() > MAX_INPUT {
            return Err(format!(
                "the input is {} bytes, over the {MAX_INPUT}-byte limit of one message",
                input.len()
            ));
        }
        if let Some(fd_ends) = &mut self.fd_ends {
            fd_ends.push(self.fds.len());
        }
        self.bytes.extend_from_slice(input);
        self.ends.push(self.bytes.len());
        Ok(())
    }

    /// Encodes `value` as the next input (on an error, nothing is added).
    pub(crate) fn push<T: Serialize + ?Sized>(
        &mut self,
        encoder: &mut Encoder,
        value: &T,
    ) -> Result<(), String> {
        let start = self.bytes.len();
        let fds = encoder
            .append(value, &mut self.bytes)
            .map_err(|error| error.to_string())?;
        let size = self.bytes.len() - start;
        if size > MAX_INPUT {
            self.bytes.truncate(start);
            return Err(format!(
                "the input is {size} bytes, over the {MAX_INPUT}-byte limit of one message"
            ));
        }
        if !fds.is_empty() && self.fd_ends.is_none() {
            // The inputs before this one had none.
            self.fd_ends = Some(vec![0; self.ends.len()]);
        }
        self.ends.push(self.bytes.len());
        if let Some(fd_ends) = &mut self.fd_ends {
            fd_ends.push(self.fds.len() + fds.len());
            self.fds.extend(fds);
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub(crate) fn start(&self, position: usize) -> usize {
        if position == 0 {
            0
        } else {
            self.ends[position - 1]
        }
    }

    pub(crate) fn fd_start(&self, position: usize) -> usize {
        match &self.fd_ends {
            Some(fd_ends) if position > 0 => fd_ends[position - 1],
            _ => 0,
        }
    }

    pub(crate) fn fd_count(&self, position: usize) -> usize {
        match &self.fd_ends {
            Some(fd_ends) => fd_ends[position] - self.fd_start(position),
            None => 0,
        }
    }
}

/// A batch of tasks of one registered task, submitted together.
pub(crate) struct Job {
    pub(crate) name: &'static str,
    pub(crate) inputs: Inputs,
    pub(crate) delivery: Delivery,
    pub(crate) timeout: Option<Duration>,
    /// How many times a task may run again after its worker died under it.
    pub(crate) retries: u32,
    pub(crate) record: bool,
}
