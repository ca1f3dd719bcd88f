//! The one rule for a failed write of a main output, on the real binary: a closed pipe is exit
//! 141 and silence; a full disk or a closed stdout is one line on stderr and exit 1; `profile`
//! ends with the command's own code when that is not 0. Output paths are checked before the
//! work. Nothing panics when stderr cannot be written.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

/// Runs `triad ARGS` through `sh -c` with `redirections` (such as `>/dev/full` or `>&-`).
fn shell(redirections: &str, args: &[&str]) -> Output {
    let script = format!("exec \"$0\" \"$@\" {redirections}");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(cargo_bin("triad"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `triad ARGS` with stdout a pipe whose reader is gone before triad starts.
fn into_closed_pipe(args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: both descriptors are new and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(cargo_bin("triad"))
        .args(args)
        .stdout(Stdio::from(write))
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn a_full_stdout_is_one_line_and_exit_1_for_every_subcommand() {
    for args in [
        &["run", "identity", "1"][..],
        &["run", "identity", "--json", "1"],
        &["tasks"],
        &["tasks", "--json"],
        &["--help"],
        &["--version"],
    ] {
        let output = shell(">/dev/full", args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(
            text.contains("to standard output: No space left on device"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn a_closed_stdout_is_refused_before_the_work() {
    for args in [&["run", "sleep_ms", "3000"][..], &["tasks"]] {
        let started = Instant::now();
        let output = shell(">&-", args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        assert!(
            stderr(&output).contains("standard output: it was closed when triad started"),
            "{output:?}"
        );
        // The 3 s of work were not done for an output nobody could read.
        assert!(started.elapsed() < Duration::from_millis(2500), "{args:?}");
    }
}

#[test]
fn a_reader_that_went_away_is_141_and_silence() {
    for args in [
        &["run", "sleep_ms", "50"][..],
        &["run", "identity", "--json", "--repeat", "100000", "1"],
        &["tasks"],
    ] {
        let output = into_closed_pipe(args);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {output:?}");
        assert!(output.stderr.is_empty(), "{args:?}: {output:?}");
    }
}

#[test]
fn a_full_stderr_panics_nowhere() {
    // An error to report, a report on stderr, a progress bar's stream: exit codes stay theirs.
    for (args, code) in [
        (&["run", "no_such_workload", "1"][..], 2),
        (&["bogus"], 2),
        (&["run", "identity", "1"], 0),
        (&["profile", "--", "sh", "-c", "exit 3"], 3),
        (&["profile", "--", "true"], 1),
        (&["lab", "--only", "no-such-experiment"], 2),
    ] {
        let output = shell("2>/dev/full", args);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
    }
}

#[test]
fn profile_ends_with_the_commands_code_unless_only_the_report_failed() {
    let full = shell(
        ">/dev/full",
        &["profile", "--json", "--", "sh", "-c", "exit 4"],
    );
    assert_eq!(full.status.code(), Some(4), "{full:?}");
    assert!(
        stderr(&full).contains("could not write the report"),
        "{full:?}"
    );
    let full = shell(">/dev/full", &["profile", "--json", "--", "true"]);
    assert_eq!(full.status.code(), Some(1), "{full:?}");
    let closed = into_closed_pipe(&["profile", "--json", "--", "true"]);
    assert_eq!(closed.status.code(), Some(141), "{closed:?}");
    let closed = into_closed_pipe(&["profile", "--json", "--", "sh", "-c", "exit 5"]);
    assert_eq!(closed.status.code(), Some(5), "{closed:?}");
}

#[test]
fn a_trace_path_that_cannot_be_written_fails_before_the_work() {
    let started = Instant::now();
    let output = shell(
        "",
        &["run", "sleep_ms", "--trace", "/proc/nope/t.json", "3000"],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert_eq!(
        stderr(&output),
        "triad: error: cannot write the trace to /proc/nope/t.json: No such file or directory \
         (os error 2)\n"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[test]
fn results_are_printed_when_the_trace_cannot_be_written() {
    let output = shell("", &["run", "identity", "--trace", "/dev/full", "1"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(stdout.contains("[0] 1 -> 1"), "{stdout}");
    assert!(!stdout.contains("trace:"), "{stdout}");
    assert!(
        stderr(&output).contains("could not write the trace to /dev/full: No space left"),
        "{output:?}"
    );
    let json = shell(
        "",
        &["run", "identity", "--json", "--trace", "/dev/full", "1"],
    );
    assert_eq!(json.status.code(), Some(1), "{json:?}");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["results"][0]["output"], 1);
    assert!(report["trace"].is_null());
    assert!(
        report["trace_error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{report}"
    );
}

#[test]
fn profile_json_file_is_checked_before_the_command_runs() {
    let dir = std::env::temp_dir().join(format!("triad-output-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let output = shell(
        "",
        &[
            "profile",
            "--json-file",
            "/proc/nope/p.json",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(!marker.exists(), "the command ran");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_lab_writes_its_files_even_when_stdout_fails() {
    for (name, failing) in [("pipe", None), ("full", Some(">/dev/full"))] {
        let dir = std::env::temp_dir().join(format!(
            "triad-output-rule-lab-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let args = [
            "lab",
            "--toy",
            "--python",
            "off",
            "--only",
            "race",
            "--out",
            dir.to_str().unwrap(),
        ];
        let output = match failing {
            None => into_closed_pipe(&args),
            Some(redirection) => shell(redirection, &args),
        };
        let expected = if failing.is_none() { 141 } else { 1 };
        assert_eq!(output.status.code(), Some(expected), "{name}: {output:?}");
        for file in ["results.json", "report.md", "index.html"] {
            assert!(dir.join(file).exists(), "{name}: {file} was not written");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
