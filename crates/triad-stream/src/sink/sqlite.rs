//! The SQLite sink: one writer thread owns the database (WAL mode, fully synced commits) and
//! inserts what the handlers send it in one transaction per batch window (`--batch-ms`); a
//! second thread copies the log into the database off the commit path. The
//! message id is the primary key and rows go in with `INSERT OR IGNORE`, so a message
//! delivered again after a crash changes nothing: its effect happens once. A handler learns
//! of its row's commit (or of the error) when the batch's transaction ends, and only then is
//! the message acknowledged.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::message::{Message, now_us};

/// The most rows one transaction takes.
const MOST_ROWS: usize = 8192;

/// Where rows go.
#[derive(Debug, Clone)]
pub struct SqliteSpec {
    /// The database file (made if missing).
    pub path: PathBuf,
    /// The table (made if missing): a plain SQL identifier.
    pub table: String,
    /// How long a batch gathers rows before its transaction.
    pub batch: Duration,
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// Opening or preparing the database failed.
    #[error("SQLite database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The table name is not a plain identifier.
    #[error(
        "--table {0:?} is not a plain SQL name (letters, digits and _, not starting with a digit)"
    )]
    Table(String),
}

/// A handler's messages on their way to the writer, and where their outcome goes (with the
/// messages themselves, moved there and back rather than copied).
struct Batch {
    messages: Vec<Message>,
    committed: oneshot::Sender<(Vec<Message>, Result<(), String>)>,
}

/// The sink's handle for the handlers.
#[derive(Debug)]
pub(crate) struct SqliteSink {
    rows: Option<mpsc::Sender<Batch>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// Opens (or makes) the database and its table, and starts the writer.
    pub(crate) fn open(spec: &SqliteSpec) -> Result<SqliteSink, SqliteError> {
        if !is_identifier(&spec.table) {
            return Err(SqliteError::Table(spec.table.clone()));
        }
        let connection = prepare(&spec.path, &spec.table).map_err(|source| SqliteError::Open {
            path: spec.path.display().to_string(),
            source,
        })?;
        let checkpoints = Connection::open(&spec.path).map_err(|source| SqliteError::Open {
            path: spec.path.display().to_string(),
            source,
        })?;
        let (rows, inbox) = mpsc::channel();
        let table = spec.table.clone();
        let batch = spec.batch;
        let writer = std::thread::Builder::new()
            .name("triad-sqlite".into())
            .spawn(move || {
                let (running, stopped) = mpsc::channel::<()>();
                let checkpointer = std::thread::Builder::new()
                    .name("triad-sqlite-checkpoint".into())
                    .spawn(move || checkpoint_now_and_then(&checkpoints, &stopped))
                    .expect("a thread starts");
                write_batches(connection, &table, batch, inbox);
                drop(running);
                let _ = checkpointer.join();
            })
            .expect("a thread starts");
        Ok(SqliteSink {
            rows: Some(rows),
            writer: Some(writer),
        })
    }

    /// Stores `messages`; returns them once their transaction committed (or failed).
    pub(crate) async fn commit(
        &self,
        messages: Vec<Message>,
    ) -> (Vec<Message>, Result<(), String>) {
        const STOPPED: &str = "the SQLite writer has stopped";
        let (committed, wait) = oneshot::channel();
        let batch = Batch {
            messages,
            committed,
        };
        let Some(rows) = &self.rows else {
            return (batch.messages, Err(STOPPED.to_owned()));
        };
        if let Err(mpsc::SendError(batch)) = rows.send(batch) {
            return (batch.messages, Err(STOPPED.to_owned()));
        }
        // The writer answers every batch it took, even when its transaction fails.
        wait.await
            .unwrap_or_else(|_| (Vec::new(), Err(STOPPED.to_owned())))
    }

    /// Waits for the rows sent so far to be written, then stops the writer.
    pub(crate) fn close(&mut self) {
        self.rows = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        self.close();
    }
}

fn is_identifier(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

fn prepare(path: &Path, table: &str) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints happen on a thread of their own (`checkpoint_now_and_then`).
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    connection.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             id TEXT PRIMARY KEY,
             origin TEXT NOT NULL,
             payload BLOB NOT NULL,
             created_us INTEGER NOT NULL,
             committed_us INTEGER NOT NULL
         )"
    ))?;
    Ok(connection)
}

/// The writer thread: one transaction per batch window, until every sender is gone.
fn write_batches(
    mut connection: Connection,
    table: &str,
    window: Duration,
    inbox: mpsc::Receiver<Batch>,
) {
    let insert = format!(
        "INSERT OR IGNORE INTO {table} (id, origin, payload, created_us, committed_us) \
         VALUES (?1, ?2, ?3, ?4, ?5)"
    );
    while let Ok(first) = inbox.recv() {
        // The window is slept through, not waited on batch by batch: handlers sending rows
        // then never wake this thread, and what gathered is taken in one go.
        let deadline = Instant::now() + window;
        let mut rows = first.messages.len();
        let mut batches = vec![first];
        gather(&inbox, &mut batches, &mut rows);
        if rows < MOST_ROWS {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            gather(&inbox, &mut batches, &mut rows);
        }
        let outcome = insert_all(&mut connection, &insert, &batches)
            .map_err(|error| format!("SQLite could not commit: {error}"));
        for batch in batches {
            let _ = batch.committed.send((batch.messages, outcome.clone()));
        }
    }
}

/// Copies the write-ahead log into the database every half second, from a connection of its
/// own and without blocking the writer (a passive checkpoint), until `stopped` closes. The
/// writer's connection checkpoints never itself: done inside a commit, a checkpoint's fsync of
/// the database file would hold that commit's messages, and every batch behind it, for as
/// long as the disk takes.
fn checkpoint_now_and_then(connection: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(Duration::from_millis(500))
    {
        let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// Takes what is waiting, up to `MOST_ROWS` rows in all.
fn gather(inbox: &mpsc::Receiver<Batch>, batches: &mut Vec<Batch>, rows: &mut usize) {
    while *rows < MOST_ROWS {
        let Ok(batch) = inbox.try_recv() else { break };
        *rows += batch.messages.len();
        batches.push(batch);
    }
}

fn insert_all(
    connection: &mut Connection,
    insert: &str,
    batches: &[Batch],
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(insert)?;
        let committed_us = now_us() as i64;
        for message in batches.iter().flat_map(|batch| &batch.messages) {
            statement.execute(rusqlite::params![
                message.id,
                message.origin,
                message.payload,
                message.created_us as i64,
                committed_us
            ])?;
        }
    }
    transaction.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Message {
        Message::from_publish("c", id.to_owned(), b"{}".to_vec())
    }

    #[tokio::test]
    async fn a_message_stored_twice_is_one_row() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("out.db");
        let spec = SqliteSpec {
            path: path.clone(),
            table: "messages".into(),
            batch: Duration::from_millis(5),
        };
        let mut sink = SqliteSink::open(&spec).unwrap();
        let (back, outcome) = sink.commit(vec![message("1-0")]).await;
        outcome.unwrap();
        assert_eq!(back[0].id, "1-0", "the messages come back");
        sink.commit(vec![message("1-0"), message("2-0")])
            .await
            .1
            .unwrap();
        sink.close();
        let connection = Connection::open(&path).unwrap();
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn a_table_name_must_be_plain() {
        for bad in ["", "1x", "a b", "x;DROP TABLE y", "naïve"] {
            let spec = SqliteSpec {
                path: "unused.db".into(),
                table: bad.into(),
                batch: Duration::from_millis(5),
            };
            assert!(
                matches!(SqliteSink::open(&spec), Err(SqliteError::Table(_))),
                "{bad}"
            );
        }
    }
}
