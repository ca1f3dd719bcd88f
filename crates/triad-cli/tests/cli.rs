//! The `triad` binary, run as a real process.

use assert_cmd::Command;
use predicates::prelude::*;

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

#[test]
fn help_lists_subcommands_with_examples() {
    triad()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("run "))
        .stdout(predicate::str::contains("tasks "))
        .stdout(predicate::str::contains("Examples:"));
}

#[test]
fn version_is_the_crate_version() {
    triad()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("triad {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_input_is_one_line_and_exit_code_2() {
    for args in [
        &["bogus"][..],
        &["run"],
        &["run", "sum_squares", "20000000000000"],
        &["run", "count_primes", "--mode", "threads:0", "5"],
        &["run", "count_primes", "not-a-number"],
        &["run", "--nope"],
    ] {
        let output = triad().args(args).assert().code(2).get_output().clone();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("triad: error:"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unknown_workload_names_the_known_ones() {
    triad()
        .args(["run", "no_such_workload", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("count_primes"));
}

#[test]
fn run_prints_results_in_input_order_in_every_mode() {
    for mode in ["serial", "threads:2", "processes:2", "async:4"] {
        triad()
            .args(["run", "count_primes", "--mode", mode, "100", "10", "1000"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "count_primes × 3 in {mode}"
            )))
            .stdout(predicate::str::contains(
                "[0] 100 -> 25\n  [1] 10 -> 4\n  [2] 1000 -> 168",
            ));
    }
}

#[test]
fn run_json_is_one_document_with_every_result() {
    let output = triad()
        .args([
            "run",
            "identity",
            "--mode",
            "threads:2",
            "--json",
            "--repeat",
            "50",
            "3",
            "4",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(report["tasks"], 100);
    assert_eq!(report["ok"], 100);
    assert_eq!(report["mode"], "threads:2");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["output"], 3);
    assert_eq!(results[99]["output"], 4);
}

#[test]
fn trace_file_has_one_complete_event_per_task() {
    let dir = std::env::temp_dir().join(format!("triad-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    triad()
        .args(["run", "sleep_ms", "--mode", "threads:2", "--trace"])
        .arg(&path)
        .args(["2", "2", "2", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("trace: 4 spans"));
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|event| event["ph"] == "X"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tasks_lists_workloads_and_registered_names() {
    triad()
        .arg("tasks")
        .assert()
        .success()
        .stdout(predicate::str::contains("count_primes"))
        .stdout(predicate::str::contains("spin_us"))
        .stdout(predicate::str::contains("triad::workloads::async_sleep_ms"));
    let output = triad().args(["tasks", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["workloads"].as_array().unwrap().len(), 6);
}

#[test]
fn sum_squares_is_exact_past_u64() {
    // It used to print 2886581259624448384: the sum modulo 2^64.
    triad()
        .args(["run", "sum_squares", "4000000"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "[0] 4000000 -> 21333325333334000000",
        ));
    let output = triad()
        .args(["run", "sum_squares", "--json", "4000000"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(r#"{"input":4000000,"output":21333325333334000000}"#),
        "{text}"
    );
}

#[test]
fn a_sum_that_would_not_fit_is_refused_before_running() {
    triad()
        .args(["run", "sum_squares", "5", "20000000000000"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "sum_squares 20000000000000: the sum of squares below it does not fit in 128 bits; \
             the largest input is 10069012961345",
        ));
}

/// Runs `triad ARGS` to the end; its stdout and its peak resident memory (wait4's ru_maxrss).
// The child is reaped by wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn stdout_and_peak_rss(args: &[&str]) -> (String, u64) {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut stdout).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is this test's child, not yet reaped; both pointers are valid for the call.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    (stdout, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_huge_repeat_streams_in_flat_memory() {
    // Three million tasks: every one is counted, none is held. (Holding every input and result
    // took over 300 MB here; streaming, a few MB.)
    let (stdout, peak) = stdout_and_peak_rss(&["run", "identity", "--repeat", "3000000", "7"]);
    assert!(stdout.contains("identity × 3000000 in serial"), "{stdout}");
    assert!(stdout.contains("3000000 ok, 0 failed"), "{stdout}");
    assert!(stdout.contains("[9] 7 -> 7\n  … 2999990 more"), "{stdout}");
    assert!(peak < 64 << 20, "peak RSS {} MB", peak >> 20);
    let (json, peak) = stdout_and_peak_rss(&[
        "run",
        "identity",
        "--json",
        "--mode",
        "threads:2",
        "--repeat",
        "1000000",
        "7",
    ]);
    assert_eq!(json.lines().count(), 1_000_002);
    assert!(peak < 64 << 20, "peak RSS {} MB", peak >> 20);
}

#[test]
fn json_results_stream_one_per_line_inside_one_document() {
    let output = triad()
        .args([
            "run",
            "count_primes",
            "--json",
            "--repeat",
            "2",
            "10",
            "100",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[1], r#"{"input":10,"output":4},"#, "{stdout}");
    assert_eq!(lines[4], r#"{"input":100,"output":25}"#, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["tasks"], 4);
    assert_eq!(report["results"].as_array().unwrap().len(), 4);
}
