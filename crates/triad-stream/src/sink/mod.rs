//! What a handler does with a message, in the seed's order: its waits (the seed's sketch
//! stands for its database save and service push with `asyncio.sleep`s; `--wait-ms` keeps
//! them, for benchmarks), then the SQLite commit, then the webhook, then the exec workers. A
//! message is committed when every configured step succeeded.

mod exec;
mod sqlite;
mod webhook;

use std::time::Duration;

pub(crate) use exec::Exec;
pub(crate) use sqlite::SqliteSink;
pub use sqlite::{SqliteError, SqliteSpec};
pub(crate) use webhook::Webhook;

use crate::message::Message;

/// Which sinks a run has.
#[derive(Debug, Clone, Default)]
pub struct SinkSpec {
    /// Sleeps before the sinks, one after another (the seed's 10 ms save and 20 ms push are
    /// `[10 ms, 20 ms]`).
    pub waits: Vec<Duration>,
    /// The SQLite sink.
    pub sqlite: Option<SqliteSpec>,
    /// The webhook's URL.
    pub webhook: Option<String>,
    /// A worker command (`sh -c`), with `triad map --cmd`'s line protocol.
    pub exec: Option<String>,
    /// How many exec workers run.
    pub exec_workers: usize,
}

impl SinkSpec {
    /// Whether messages must be JSON (the database stores JSON documents; the webhook posts
    /// them as `application/json`).
    pub fn needs_json(&self) -> bool {
        self.sqlite.is_some() || self.webhook.is_some() || self.exec.is_some()
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every sink has it.
    Committed,
    /// A sink failed for now: a stream's message stays pending, to be delivered again.
    Failed(String),
    /// It can never succeed: to the dead letters.
    Rejected(String),
}

/// The sinks, opened.
#[derive(Debug)]
pub(crate) struct Sinks {
    waits: Vec<Duration>,
    sqlite: Option<SqliteSink>,
    webhook: Option<Webhook>,
    exec: Option<Exec>,
}

impl Sinks {
    /// Opens what `spec` names.
    pub(crate) async fn open(spec: &SinkSpec) -> Result<Sinks, crate::StreamError> {
        let exec = match &spec.exec {
            Some(command) => {
                let exec = Exec::new(command, spec.exec_workers);
                exec.preflight().await.map_err(crate::StreamError::Usage)?;
                Some(exec)
            }
            None => None,
        };
        Ok(Sinks {
            exec,
            waits: spec.waits.clone(),
            sqlite: spec.sqlite.as_ref().map(SqliteSink::open).transpose()?,
            webhook: spec
                .webhook
                .as_deref()
                .map(Webhook::new)
                .transpose()
                .map_err(crate::StreamError::Usage)?,
        })
    }

    /// Runs a handler's `messages` through every step together (one wait per step, one
    /// send to the database), giving each its outcome. A message's course is what it would
    /// be alone: each waits the waits, then is committed or not.
    pub(crate) async fn handle(&self, messages: Vec<Message>) -> Vec<(Message, Outcome)> {
        for wait in &self.waits {
            tokio::time::sleep(*wait).await;
        }
        let messages = match &self.sqlite {
            Some(sqlite) => match sqlite.commit(messages).await {
                (messages, Ok(())) => messages,
                (messages, Err(reason)) => {
                    return messages
                        .into_iter()
                        .map(|message| (message, Outcome::Failed(reason.clone())))
                        .collect();
                }
            },
            None => messages,
        };
        let mut outcomes: Vec<(Message, Outcome)> = match &self.webhook {
            Some(webhook) => {
                let posts = messages
                    .iter()
                    .map(|message| webhook.post(&message.payload));
                let outcomes = futures::future::join_all(posts).await;
                messages.into_iter().zip(outcomes).collect()
            }
            None => messages
                .into_iter()
                .map(|message| (message, Outcome::Committed))
                .collect(),
        };
        if let Some(exec) = &self.exec {
            // Only what every earlier step committed goes on to the workers.
            let (ready, mut done): (Vec<_>, Vec<_>) = outcomes
                .into_iter()
                .partition(|(_, outcome)| *outcome == Outcome::Committed);
            let ready: Vec<Message> = ready.into_iter().map(|(message, _)| message).collect();
            let answers = exec.run(&ready).await;
            outcomes = ready.into_iter().zip(answers).collect();
            outcomes.append(&mut done);
        }
        outcomes
    }

    /// Waits for the database's last batch, then closes it.
    pub(crate) fn close(&mut self) {
        if let Some(sqlite) = &mut self.sqlite {
            sqlite.close();
        }
    }
}

impl SinkSpec {
    /// The sinks in a few words, for the start line.
    pub fn describe(&self) -> String {
        let mut steps: Vec<String> = self
            .waits
            .iter()
            .map(|wait| format!("wait {} ms", wait.as_millis()))
            .collect();
        if let Some(sqlite) = &self.sqlite {
            steps.push(format!(
                "SQLite {} table {} (a transaction per {} ms)",
                sqlite.path.display(),
                sqlite.table,
                sqlite.batch.as_millis()
            ));
        }
        if let Some(url) = &self.webhook {
            steps.push(format!("POST {url}"));
        }
        if let Some(command) = &self.exec {
            steps.push(format!("{} x `{command}`", self.exec_workers.max(1)));
        }
        if steps.is_empty() {
            "no sink".to_owned()
        } else {
            format!("each message: {}", steps.join(", then "))
        }
    }
}
