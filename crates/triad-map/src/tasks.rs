//! `--task NAME`: a transform written in Rust, registered under a name, run on threads or in
//! worker processes of triad's pool.
//!
//! A map task takes one record's text (a JSON document, or a raw line) and returns its answer
//! line, or an error. Register one with [`inventory::submit!`] of a [`MapTask`] in any crate
//! linked into the binary; the built-ins are `identity` and `seed-transform` (the seed's
//! `DataPipeline.transform`, made small). In processes, a batch travels as one triad task
//! ([`map_batch`]); when a batch fails as a whole (its worker died, it timed out, the task
//! panicked) its records run again one by one, so that the failure is charged to the one
//! record that caused it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use triad::{ProcessPool, TaskError};

use crate::input::Format;
use crate::records::{Batch, Done, Failure, check_answer};

/// A Rust transform for `--task NAME`.
#[derive(Debug)]
pub struct MapTask {
    /// The name `--task` takes.
    pub name: &'static str,
    /// One line for `triad map --help` and error messages.
    pub about: &'static str,
    /// The transform: a record's text in, its answer line out.
    pub run: fn(&str) -> Result<String, String>,
}

inventory::collect!(MapTask);

inventory::submit! {
    MapTask {
        name: "identity",
        about: "the record as it is",
        run: |record| Ok(record.to_owned()),
    }
}

inventory::submit! {
    MapTask {
        name: "seed-transform",
        about: "the seed's DataPipeline.transform: {id, value: sum of i*i below 300, transformed: value*2}",
        run: seed_transform,
    }
}

/// The seed's `transform` of one record (§7.2), with its loop cut to 300 so that CPython takes
/// about 20 µs per record: `{'id': item['id'], 'value': sum(i**2 for i in range(300)),
/// 'transformed': item['value'] * 2}`.
fn seed_transform(record: &str) -> Result<String, String> {
    let item: serde_json::Value = serde_json::from_str(record).map_err(|e| e.to_string())?;
    let id = item.get("id").cloned().ok_or("the record has no id")?;
    let value = item
        .get("value")
        .and_then(serde_json::Value::as_i64)
        .ok_or("the record's value is not an integer")?;
    let transformed = value.checked_mul(2).ok_or("value * 2 overflows")?;
    let sum: i64 = (0..300_i64).map(|i| i * i).sum();
    Ok(serde_json::json!({"id": id, "value": sum, "transformed": transformed}).to_string())
}

/// The registered map task called `name`.
pub fn find(name: &str) -> Option<&'static MapTask> {
    inventory::iter::<MapTask>
        .into_iter()
        .find(|task| task.name == name)
}

/// Every registered map task's name, for an error message.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<_> = inventory::iter::<MapTask>
        .into_iter()
        .map(|task| task.name)
        .collect();
    names.sort_unstable();
    names
}

/// One record through a map task, a panic included in its failure.
fn run_one(task: &MapTask, record: &str) -> Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| (task.run)(record)))
        .unwrap_or_else(|panic| Err(TaskError::from_panic(panic).to_string()))
}

/// A batch of records through the map task `name`, in a worker process: one answer per record.
#[triad::task]
pub fn map_batch(input: (String, Vec<String>)) -> Vec<Result<String, String>> {
    let (name, records) = input;
    match find(&name) {
        Some(task) => records.iter().map(|record| run_one(task, record)).collect(),
        None => vec![Err(format!("no map task named {name} in this binary")); records.len()],
    }
}

fn texts(batch: &Batch) -> Vec<String> {
    (0..batch.len())
        .map(|index| {
            let record = batch.record(index);
            String::from_utf8_lossy(&record[..record.len() - 1]).into_owned()
        })
        .collect()
}

/// Builds a batch's outcome from one answer per record, each checked against `format`.
fn finish(
    batch: Batch,
    names: &[String],
    format: Format,
    answers: Vec<Result<String, String>>,
    retried: u64,
) -> Done {
    let mut done = Done {
        first: batch.first,
        records: batch.records(),
        failures: batch.malformed.clone(),
        retried,
        ..Done::default()
    };
    let records = texts(&batch);
    for ((answer, origin), record) in answers.into_iter().zip(&batch.origins).zip(records) {
        match answer.and_then(|line| {
            if line.contains('\n') {
                return Err("the answer holds a newline".to_owned());
            }
            check_answer(line.as_bytes(), format).map(|()| line)
        }) {
            Ok(line) => {
                done.output.extend_from_slice(line.as_bytes());
                done.output.push(b'\n');
                done.succeeded += 1;
            }
            Err(reason) => done.failures.push(Failure {
                record,
                input: names[origin.input as usize].clone(),
                line: origin.line,
                reason,
                stderr: Vec::new(),
                order: (origin.input, origin.line),
            }),
        }
    }
    done.failures.sort_by_key(|failure| failure.order);
    done
}

/// A batch on this thread (threads mode).
pub fn transform_here(
    task: &'static MapTask,
    names: &[String],
    format: Format,
    batch: Batch,
) -> Done {
    let answers = texts(&batch)
        .iter()
        .map(|record| run_one(task, record))
        .collect();
    finish(batch, names, format, answers, 0)
}

/// A batch on a remote engine (a cluster's workers, which run [`map_batch`] by name); a batch
/// that fails whole runs again record by record, as in [`transform_in_process`].
pub async fn transform_remote(
    engine: Arc<dyn triad::remote::RemoteEngine>,
    task: &'static MapTask,
    names: Arc<Vec<String>>,
    format: Format,
    batch: Batch,
) -> Done {
    let records = texts(&batch);
    let run = |records: Vec<String>| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match postcard::to_stdvec(&(task.name.to_owned(), records)) {
            Ok(bytes) => engine.run_encoded(
                <map_batch as triad::Task>::NAME,
                vec![bytes],
                Box::new(move |mut outputs| {
                    let _ = tx.send(outputs.pop());
                }),
            ),
            Err(e) => {
                let _ = tx.send(Some(Err(TaskError::Codec(e.to_string()))));
            }
        }
        async move {
            match rx.await {
                Ok(Some(Ok(bytes))) => postcard::from_bytes::<Vec<Result<String, String>>>(&bytes)
                    .map_err(|e| format!("the answer of map_batch: {e}")),
                Ok(Some(Err(error))) => Err(error.to_string()),
                _ => Err("the cluster gave no answer".to_owned()),
            }
        }
    };
    match run(records.clone()).await {
        Ok(answers) if answers.len() == records.len() => finish(batch, &names, format, answers, 0),
        _ => {
            let mut answers = Vec::with_capacity(records.len());
            for record in records {
                answers.push(match run(vec![record]).await {
                    Ok(mut one) if one.len() == 1 => one.remove(0),
                    Ok(_) => Err("the worker answered a wrong number of records".to_owned()),
                    Err(error) => Err(error),
                });
            }
            let retried = answers.len() as u64;
            finish(batch, &names, format, answers, retried)
        }
    }
}

/// A batch in a worker process; a batch that fails whole runs again record by record.
pub async fn transform_in_process(
    pool: ProcessPool,
    task: &'static MapTask,
    names: Arc<Vec<String>>,
    format: Format,
    timeout: Option<Duration>,
    batch: Batch,
) -> Done {
    let records = texts(&batch);
    let submit = |records: Vec<String>| {
        let input = (task.name.to_owned(), records);
        match timeout {
            Some(limit) => pool.submit_with_timeout(map_batch, input, limit),
            None => pool.submit(map_batch, input),
        }
    };
    let whole = match submit(records.clone()) {
        Ok(handle) => handle.await,
        Err(error) => Err(TaskError::WorkerStart(error.to_string())),
    };
    match whole {
        Ok(answers) if answers.len() == records.len() => finish(batch, &names, format, answers, 0),
        _ => {
            // One at a time: the pool's own retries run a record again when its worker dies.
            let mut answers = Vec::with_capacity(records.len());
            for record in records {
                let answer = match submit(vec![record]) {
                    Ok(handle) => match handle.await {
                        Ok(mut one) if one.len() == 1 => one.remove(0),
                        Ok(_) => Err("the worker answered a wrong number of records".to_owned()),
                        Err(error) => Err(error.to_string()),
                    },
                    Err(error) => Err(error.to_string()),
                };
                answers.push(answer);
            }
            let retried = answers.len() as u64;
            finish(batch, &names, format, answers, retried)
        }
    }
}
