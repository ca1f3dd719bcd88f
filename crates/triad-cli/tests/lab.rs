//! `triad lab` run as a real process: files written, JSON on stdout, errors for bad input.

use assert_cmd::Command;
use predicates::prelude::*;

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-cli-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_toy_run_writes_three_files_and_prints_the_tables() {
    let dir = out_dir("text");
    triad()
        .args(["lab", "--toy", "--only", "race,select-poll-epoll", "--out"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("CPU: "))
        .stdout(predicate::str::contains("race — "))
        .stdout(predicate::str::contains("select-poll-epoll — "))
        .stdout(predicate::str::contains("Summary: the seed's claims"))
        .stdout(predicate::str::contains("\x1b[").not());
    for file in ["results.json", "report.md", "index.html"] {
        let metadata = std::fs::metadata(dir.join(file)).unwrap();
        assert!(metadata.len() > 100, "{file} is almost empty");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_prints_the_results_document_on_one_line() {
    let dir = out_dir("json");
    let output = triad()
        .args([
            "lab", "--toy", "--python", "off", "--only", "race", "--json", "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["schema"], "triad-lab/1");
    assert_eq!(document["experiments"][0]["id"], "race");
    assert!(document["machine"]["python"].is_null());
    let notes = document["notes"].to_string();
    assert!(notes.contains("--python off"), "{notes}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unknown_experiment_is_one_line_exit_2_naming_the_known_ones() {
    triad()
        .args(["lab", "--only", "cpu-bound,no-such-thing"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-thing"))
        .stderr(predicate::str::contains("switch-cost"))
        .stderr(predicate::function(|text: &str| text.lines().count() == 1));
}

#[test]
fn an_output_directory_that_cannot_exist_fails_before_measuring() {
    triad()
        .args([
            "lab",
            "--toy",
            "--only",
            "race",
            "--out",
            "/dev/null/report",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("/dev/null/report"))
        .stderr(predicate::function(|text: &str| text.lines().count() == 1));
}

#[test]
fn quick_and_full_exclude_each_other() {
    triad().args(["lab", "--quick", "--full"]).assert().code(2);
}
