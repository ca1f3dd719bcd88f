//! The exec sink: persistent worker commands with `triad map --cmd`'s line protocol (Hadoop
//! Streaming's). Each worker is `sh -c CMD`, started once; a handler's messages go to one
//! worker as one JSON line each on its stdin, and each line the worker writes on its stdout
//! answers the next message, in order: an answer means the message is done (what it says is
//! not kept). Writing and reading run at once, so a worker may answer as it reads; it runs
//! under `stdbuf -oL` when coreutils has it, so programs that buffer their output answer too.
//!
//! A worker that exits, or does not answer within the timeout, is killed (with its process
//! group) and started again for the next batch; the messages it had not answered fail for now
//! (a stream delivers them again). Workers die with this process (`PR_SET_PDEATHSIG`) and
//! their stderr passes through.
//!
//! This is a small copy of the idea behind `triad map`'s worker pool, not of its code: map
//! keeps order across a run, retries records one by one and blames the one that killed a
//! worker; a sink only needs "answered or not", and a stream's redelivery does the retrying.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::message::Message;
use crate::sink::Outcome;

/// How long a worker may take to answer one message (a batch of n gets n times this, capped
/// at a minute).
const PER_MESSAGE: Duration = Duration::from_secs(10);

/// One running worker.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The sink: a few workers, each taken by one batch at a time.
#[derive(Debug)]
pub(crate) struct Exec {
    command: String,
    workers: Vec<Mutex<Option<Worker>>>,
    next: AtomicUsize,
}

impl Exec {
    /// A sink of `count` workers running `command` (started when first needed).
    pub(crate) fn new(command: &str, count: usize) -> Exec {
        Exec {
            command: command.to_owned(),
            workers: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Starts the first worker and gives it a moment: a command that is not there (the
    /// shell's 127) or exits at once is a clear error before any message, with what it said
    /// on stderr; a worker that stays up has its stderr passed through from then on.
    pub(crate) async fn preflight(&self) -> Result<(), String> {
        let mut worker = self.start_with(Stdio::piped())?;
        let mut stderr = worker.child.stderr.take().expect("piped");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(Some(status)) = worker.child.try_wait() {
            let mut said = String::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut said),
            )
            .await;
            let said = said
                .lines()
                .last()
                .map(|line| format!(": {line}"))
                .unwrap_or_default();
            return Err(match status.code() {
                Some(127) => format!("--exec {:?}: command not found{said}", self.command),
                Some(126) => format!("--exec {:?}: cannot be executed{said}", self.command),
                _ => format!("--exec {:?} exited at once ({status}){said}", self.command),
            });
        }
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::stderr()).await;
        });
        *self.workers[0].lock().await = Some(worker);
        Ok(())
    }

    fn start(&self) -> Result<Worker, String> {
        self.start_with(Stdio::inherit())
    }

    fn start_with(&self, stderr: Stdio) -> Result<Worker, String> {
        // Under coreutils' stdbuf -oL when it is there: C programs that would keep their
        // answers in a block buffer (tr, sed, head) write each line as they finish it.
        let mut command = if stdbuf_is_installed() {
            let mut command = Command::new("stdbuf");
            command.arg("-oL").arg("sh");
            command
        } else {
            Command::new("sh")
        };
        command
            .arg("-c")
            .arg(&self.command)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let parent = std::process::id() as i32;
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe calls (prctl, getppid, _exit); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before the prctl: then nothing would kill us.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|error| format!("--exec {:?} cannot start: {error}", self.command))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("--exec: the worker's pipes are missing".into());
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Gives each of `messages` (all valid JSON) to a worker; the outcome of each.
    pub(crate) async fn run(&self, messages: &[Message]) -> Vec<Outcome> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let mut slot = self.workers[index].lock().await;
        if slot.is_none() {
            match self.start() {
                Ok(worker) => *slot = Some(worker),
                Err(reason) => return vec![Outcome::Failed(reason); messages.len()],
            }
        }
        let worker = slot.as_mut().expect("started just now");
        let limit = (PER_MESSAGE * messages.len() as u32).min(Duration::from_secs(60));
        let answered = tokio::time::timeout(limit, exchange(worker, messages)).await;
        let (answered, reason) = match answered {
            Ok(Ok(())) => return vec![Outcome::Committed; messages.len()],
            Ok(Err((answered, reason))) => (answered, reason),
            Err(_) => (
                0,
                format!("the --exec worker did not answer within {limit:?}"),
            ),
        };
        // The worker is gone or stuck: its process group goes, and the next batch starts
        // a fresh one.
        let mut worker = slot.take().expect("it was there");
        kill_group(&worker.child);
        let status = worker.child.wait().await.ok();
        let reason = match status {
            Some(status) if reason.is_empty() => format!("the --exec worker exited ({status})"),
            _ => reason,
        };
        (0..messages.len())
            .map(|position| {
                if position < answered {
                    Outcome::Committed
                } else {
                    Outcome::Failed(reason.clone())
                }
            })
            .collect()
    }
}

/// Writes every message while reading the answers; on failure, how many were answered and
/// why (empty when the worker simply ended).
async fn exchange(worker: &mut Worker, messages: &[Message]) -> Result<(), (usize, String)> {
    let Worker { stdin, stdout, .. } = worker;
    let write = async {
        let mut lines = Vec::new();
        for message in messages {
            one_line(&message.payload, &mut lines);
        }
        stdin.write_all(&lines).await?;
        stdin.flush().await
    };
    let read = async {
        let mut answered = 0;
        let mut line = Vec::new();
        while answered < messages.len() {
            line.clear();
            match stdout.read_until(b'\n', &mut line).await {
                Ok(0) => return Err((answered, String::new())),
                Ok(_) => answered += 1,
                Err(error) => {
                    return Err((answered, format!("reading the --exec worker: {error}")));
                }
            }
        }
        Ok(())
    };
    let (written, read) = tokio::join!(write, read);
    read?;
    written.map_err(|error| {
        (
            messages.len(),
            format!("writing to the --exec worker: {error}"),
        )
    })
}

/// `payload` (JSON) as one line: as it is, or re-encoded compactly when it spans lines.
fn one_line(payload: &[u8], out: &mut Vec<u8>) {
    if payload.contains(&b'\n')
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload)
    {
        serde_json::to_writer(&mut *out, &value).expect("a Value serialises");
        out.push(b'\n');
        return;
    }
    out.extend_from_slice(payload);
    out.push(b'\n');
}

fn stdbuf_is_installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).any(|directory| directory.join("stdbuf").is_file())
    })
}

fn kill_group(child: &Child) {
    if let Some(pid) = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(count: usize) -> Vec<Message> {
        (0..count)
            .map(|i| Message::from_publish("c", format!("c:{i}"), format!("{{\"n\":{i}}}").into()))
            .collect()
    }

    #[tokio::test]
    async fn every_answer_commits_its_message() {
        let exec = Exec::new("cat", 2);
        exec.preflight().await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                exec.run(&messages(100)).await,
                vec![Outcome::Committed; 100]
            );
        }
    }

    #[tokio::test]
    async fn a_worker_that_dies_fails_what_it_did_not_answer_and_is_started_again() {
        // Answers two lines, then exits.
        let exec = Exec::new("head -n 2", 1);
        let outcomes = exec.run(&messages(5)).await;
        assert_eq!(outcomes[..2], [Outcome::Committed, Outcome::Committed]);
        assert!(
            outcomes[2..].iter().all(
                |outcome| matches!(outcome, Outcome::Failed(reason) if reason.contains("exited"))
            ),
            "{outcomes:?}"
        );
        let again = exec.run(&messages(2)).await;
        assert_eq!(again, vec![Outcome::Committed; 2], "a fresh worker");
    }

    #[test]
    fn a_payload_over_several_lines_becomes_one() {
        let mut out = Vec::new();
        one_line(b"{\n \"a\": 1\n}", &mut out);
        one_line(b"{\"b\":2}", &mut out);
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
    }

    #[tokio::test]
    async fn a_command_that_is_not_there_or_ends_at_once_is_named_before_any_message() {
        let missing = Exec::new("/nonexistent/worker --flag", 1);
        let error = missing.preflight().await.unwrap_err();
        assert!(error.contains("command not found"), "{error}");
        let ends = Exec::new("exit 3", 1);
        let error = ends.preflight().await.unwrap_err();
        assert!(error.contains("exited at once"), "{error}");
    }
}
