//! `triad profile` on real programs (the ones in `crates/triad-profile/tests/programs/`, and
//! triad's own CPU workload for native code): the verdict, the advice, the report and the exit
//! codes. The programs take turns, so that one's CPU does not distort another's figures.

use std::path::PathBuf;
use std::sync::Mutex;

use assert_cmd::Command;
use serde_json::Value;

/// One profiled program at a time.
static TURN: Mutex<()> = Mutex::new(());

fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../triad-profile/tests/programs")
        .join(name)
}

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

/// Profiles `args` with `--json` and returns the report.
fn profile_json(args: &[&str]) -> Value {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let output = triad()
        .args(["profile", "--json", "--"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(last).unwrap()
}

fn python(name: &str, seconds: &str) -> Value {
    profile_json(&["python3", program(name).to_str().unwrap(), seconds])
}

#[test]
fn a_python_cpu_spin_is_cpu_bound_and_wants_processes() {
    let report = python("cpu_spin.py", "1.2");
    assert_eq!(report["schema"], "triad-profile/1");
    assert_eq!(report["verdict"]["kind"], "cpu_bound");
    assert_eq!(report["verdict"]["gil_limited"], false);
    assert_eq!(report["lang"], "python");
    assert_eq!(report["advice"]["model"], "processes");
}

#[test]
fn a_rust_cpu_spin_is_cpu_bound_and_wants_threads() {
    let triad = assert_cmd::cargo::cargo_bin("triad");
    let report = profile_json(&[
        triad.to_str().unwrap(),
        "run",
        "sum_squares",
        "--repeat",
        "4",
        "60000000",
    ]);
    assert_eq!(report["verdict"]["kind"], "cpu_bound", "{report:#}");
    assert_eq!(report["lang"], "native");
    assert_eq!(report["advice"]["model"], "threads");
}

#[test]
fn a_sleep_loop_is_io_bound_on_a_timer() {
    let report = python("sleep_loop.py", "1.2");
    assert_eq!(report["verdict"]["kind"], "io_bound", "{report:#}");
    assert_eq!(report["verdict"]["wait"], "sleep", "{report:#}");
}

#[test]
fn a_write_and_fsync_loop_is_io_bound_on_the_disk() {
    let report = python("fsync_loop.py", "1.2");
    assert_eq!(report["verdict"]["kind"], "io_bound", "{report:#}");
    assert_eq!(report["verdict"]["wait"], "disk", "{report:#}");
    assert_eq!(report["advice"]["model"], "threads");
}

#[test]
fn cpu_bound_python_threads_are_gil_limited() {
    let report = python("gil_threads.py", "1.2");
    assert_eq!(report["verdict"]["kind"], "cpu_bound", "{report:#}");
    assert_eq!(report["verdict"]["gil_limited"], true, "{report:#}");
    assert_eq!(report["advice"]["model"], "processes");
}

#[test]
fn multiprocessing_cpu_work_is_already_parallel() {
    let report = python("mp_cpu.py", "1.2");
    assert_eq!(report["verdict"]["kind"], "cpu_bound", "{report:#}");
    assert!(
        report["figures"]["peak_processes"].as_u64().unwrap() >= 3,
        "{report:#}"
    );
    // Two busy workers use two cores — unless another program holds one, which the report
    // then shows as time runnable but waiting for a CPU.
    let starved = report["figures"]["share_runnable"].as_f64().unwrap() > 0.1;
    assert!(
        report["verdict"]["parallel"] == true || starved,
        "{report:#}"
    );
}

#[test]
fn alternating_compute_and_sleep_is_mixed() {
    let report = python("mixed.py", "1.2");
    assert_eq!(report["verdict"]["kind"], "mixed", "{report:#}");
    assert_eq!(report["advice"]["model"], "hybrid_pipeline");
}

#[test]
fn the_text_report_fits_in_30_lines_and_leads_with_the_verdict() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let output = triad()
        .args(["profile", "--", "python3"])
        .arg(program("sleep_loop.py"))
        .arg("0.3")
        .output()
        .unwrap();
    assert!(output.status.success());
    let report = String::from_utf8(output.stderr).unwrap();
    assert!(report.starts_with("Verdict: "), "{report}");
    assert!(report.lines().count() <= 30, "{report}");
    assert!(!report.contains('\u{1b}'), "NO_COLOR is honoured: {report}");
}

#[test]
fn the_exit_code_is_the_commands_own() {
    triad()
        .args(["profile", "--", "sh", "-c", "exit 3"])
        .assert()
        .code(3);
    triad()
        .args(["profile", "--", "sh", "-c", "kill -TERM $$"])
        .assert()
        .code(128 + 15);
}

#[test]
fn a_missing_command_is_127_and_a_non_executable_one_126_each_with_one_line() {
    let missing = triad()
        .args(["profile", "--", "no-such-command-for-triad"])
        .assert()
        .code(127);
    let stderr = String::from_utf8(missing.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-command-for-triad"), "{stderr}");

    let not_executable = program("cpu_spin.py");
    let refused = triad()
        .args(["profile", "--"])
        .arg(&not_executable)
        .assert()
        .code(126);
    let stderr = String::from_utf8(refused.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
