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
fn a_full_disk_is_a_clear_error_with_exit_code_1() {
    triad()
        .args(["run", "identity", "1", "--trace", "/dev/full"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "triad: error: could not write the trace to /dev/full: No space left on device",
        ));
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
fn a_closed_stdout_is_not_an_error() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(["run", "sleep_ms", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}
