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
    profile_json_and_stdout(args).1
}

/// Profiles `args` with `--json`: all of stdout, and the report on its last line.
fn profile_json_and_stdout(args: &[&str]) -> (String, Value) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let output = triad()
        .args(["profile", "--json", "--"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line");
    let report = serde_json::from_str(last).unwrap();
    (stdout, report)
}

fn python(name: &str, seconds: &str) -> Value {
    profile_json(&["python3", program(name).to_str().unwrap(), seconds])
}

#[test]
fn a_python_cpu_spin_is_cpu_bound_and_wants_processes() {
    let report = python("cpu_spin.py", "1.2");
    assert_eq!(report["schema"], "triad-profile/2");
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

#[test]
fn a_background_child_is_followed_until_it_ends() {
    // `sh` exits at once; its `sleep` runs on, adopted by the guard.
    let report = profile_json(&["sh", "-c", "sleep 1 & exit 0"]);
    assert_eq!(report["descendants_left"], 1, "{report:#}");
    assert!(
        report["totals"]["wall_s"].as_f64().unwrap() >= 1.0,
        "{report:#}"
    );
    assert!(
        report["command_wall_s"].as_f64().unwrap() < 0.9,
        "{report:#}"
    );
    assert_eq!(report["verdict"]["kind"], "io_bound", "{report:#}");
    let text = triad()
        .args(["profile", "--", "sh", "-c", "sleep 0.5 & exit 0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(text.stderr).unwrap();
    assert!(
        stderr.contains("1 descendant(s) still ran when the command exited"),
        "{stderr}"
    );
}

#[test]
fn a_run_too_short_is_not_classified() {
    let report = profile_json(&["true"]);
    assert_eq!(report["verdict"]["kind"], "too_short", "{report:#}");
    assert!(report["advice"].is_null());
    let text = triad().args(["profile", "--", "true"]).output().unwrap();
    let stderr = String::from_utf8(text.stderr).unwrap();
    assert!(
        stderr.starts_with("Verdict: too short to classify"),
        "{stderr}"
    );
    assert!(!stderr.contains("Advice:"), "{stderr}");
}

#[test]
fn the_json_starts_on_a_line_of_its_own() {
    let (stdout, report) = profile_json_and_stdout(&["printf", "abc"]);
    assert!(stdout.starts_with("abc\n{"), "{stdout:?}");
    assert_eq!(report["schema"], "triad-profile/2");
    let (stdout, _) = profile_json_and_stdout(&["printf", "abc\n"]);
    assert!(
        stdout.starts_with("abc\n{"),
        "no blank line added: {stdout:?}"
    );
}

#[test]
fn json_file_leaves_the_commands_stdout_alone() {
    let path = std::env::temp_dir().join(format!("triad-profile-tree-{}.json", std::process::id()));
    let output = triad()
        .args(["profile", "--json-file"])
        .arg(&path)
        .args(["--", "printf", "abc"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"abc");
    assert!(output.stderr.is_empty(), "{output:?}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(report["command"][0], "printf");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn repeat_reports_each_run_and_their_agreement() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let output = triad()
        .args(["profile", "--repeat", "3", "--", "sleep", "0.3"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    for n in 1..=3 {
        assert!(
            stderr.contains(&format!("run {n}/3: IO-bound, waiting on a timer")),
            "{stderr}"
        );
    }
    assert!(stderr.contains("Verdict: IO-bound"), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("Agreement: 3 of 3 runs: IO-bound, waiting on a timer (sleep) — all agree"),
        "{stderr}"
    );

    let output = triad()
        .args(["profile", "--json", "--repeat", "2", "--", "sleep", "0.2"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let repeat = &report["repeat"];
    assert_eq!(repeat["runs"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(
        (repeat["of"].as_u64(), repeat["agreeing"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(repeat["verdict"]["kind"], "io_bound");
    assert_eq!(report["verdict"], repeat["runs"][1]["verdict"]);
}

#[test]
fn repeat_stops_at_the_first_failed_run_with_its_code() {
    let output = triad()
        .args([
            "profile",
            "--repeat",
            "5",
            "--",
            "sh",
            "-c",
            "sleep 0.2; exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("run 1/5:") && !stderr.contains("run 2/5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(stopped after 1 of 5: a run failed)"),
        "{stderr}"
    );
    triad()
        .args(["profile", "--repeat", "0", "--", "true"])
        .assert()
        .code(2);
}
