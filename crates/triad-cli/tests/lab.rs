//! `triad lab` run as a real process: files written, JSON on stdout, errors for bad input.

use assert_cmd::Command;
use predicates::prelude::*;

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

/// Runs `command`, which must succeed: its stdout.
fn succeeds(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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
        .stdout(predicate::str::contains("\nrace ("))
        .stdout(predicate::str::contains("\nselect-poll-epoll ("))
        .stdout(predicate::str::contains("Summary: the seed's claims").not())
        .stdout(predicate::str::contains("\x1b[").not());
    for file in ["results.json", "report.md", "index.html"] {
        let metadata = std::fs::metadata(dir.join(file)).unwrap();
        assert!(metadata.len() > 100, "{file} is almost empty");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Display columns of `line`: the seed's Chinese words (and full-width marks) take two.
fn columns(line: &str) -> usize {
    line.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF => 2,
            0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[test]
fn the_end_of_a_run_shows_the_seed_s_table_and_the_verdicts_in_short_lines() {
    let dir = out_dir("short");
    let stdout = succeeds(
        triad()
            .args(["lab", "--toy", "--only", "race,switch-cost", "--out"])
            .arg(&dir),
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // Not a terminal: lines of at most 100 columns.
    for line in &lines {
        assert!(columns(line) <= 100, "{} columns: {line}", columns(line));
    }
    let last: Vec<&str> = lines[lines.len().saturating_sub(40)..].to_vec();
    let tail = last.join("\n");
    assert!(tail.contains("The seed's §3 table"), "{tail}");
    assert!(tail.contains("switch cost"), "{tail}");
    assert!(tail.contains("Verdicts on "), "{tail}");
    assert!(
        tail.contains(" confirmed") && tail.contains(" within noise"),
        "{tail}"
    );
    // One line per claim: the verdict first.
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("confirmed")
            || l.trim_start().starts_with("refuted")
            || l.trim_start().starts_with("depends")
            || l.trim_start().starts_with("within noise")),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn verbose_prints_the_full_evidence_and_every_claim_again() {
    let dir = out_dir("verbose");
    triad()
        .args([
            "lab",
            "--toy",
            "--python",
            "off",
            "--only",
            "race",
            "--verbose",
            "--out",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("  claim: "))
        .stdout(predicate::str::contains("  note: "))
        .stdout(predicate::str::contains("Summary: the seed's claims"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_prints_the_results_document_on_one_line() {
    let dir = out_dir("json");
    let stdout = succeeds(
        triad()
            .args([
                "lab", "--toy", "--python", "off", "--only", "race", "--json", "--out",
            ])
            .arg(&dir),
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["schema"], "triad-lab/2");
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

/// A directory holding an executable `python3` that answers `--version` and then dies of
/// SIGSEGV whenever it is asked to run a script.
fn crashing_python(name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = out_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let python = dir.join("python3");
    std::fs::write(
        &python,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.99.0'; exit 0; fi\nkill -SEGV $$\n",
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `triad lab --toy --only race --json` with `configure` applied: its exit status and the
/// results document it printed.
fn race_json(out: &std::path::Path, configure: impl FnOnce(&mut Command)) -> serde_json::Value {
    let mut command = triad();
    command
        .env_remove("TRIAD_PYTHON")
        .args(["lab", "--toy", "--only", "race", "--json", "--out"])
        .arg(out);
    configure(&mut command);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn measured_by(experiment: &serde_json::Value, implementation: &str) -> usize {
    experiment["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["implementation"] == implementation)
        .count()
}

#[test]
fn a_crashing_python3_is_a_note_and_the_rust_figures_stay() {
    let fake = crashing_python("fake-python");
    let out = out_dir("crashing-python");
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let document = race_json(&out, |command| {
        command.env("PATH", path);
    });
    assert_eq!(document["failures"], serde_json::json!([]));
    assert_eq!(document["machine"]["python"], "CPython 3.99.0");
    let race = &document["experiments"][0];
    assert_eq!(race["id"], "race");
    assert!(measured_by(race, "rust") > 0, "the Rust figures are kept");
    assert_eq!(measured_by(race, "python"), 0);
    let notes = race["notes"].to_string();
    assert!(notes.contains("did not finish"), "{notes}");
    assert!(notes.contains("SIGSEGV"), "{notes}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## race —"),
        "the report lists the experiment"
    );
    std::fs::remove_dir_all(out).unwrap();
    std::fs::remove_dir_all(fake).unwrap();
}

#[test]
fn an_unwritable_tmpdir_falls_back_and_says_so() {
    let out = out_dir("no-tmpdir");
    let document = race_json(&out, |command| {
        command.env("TMPDIR", "/nonexistent/triad-tmp");
    });
    assert_eq!(document["failures"], serde_json::json!([]));
    let notes = document["notes"].to_string();
    if document["machine"]["python"].is_null() {
        eprintln!("python3 not found: only the Rust side ran ({notes})");
    } else {
        assert!(notes.contains("/nonexistent/triad-tmp"), "{notes}");
        assert!(notes.contains("set TMPDIR to choose"), "{notes}");
        assert!(measured_by(&document["experiments"][0], "python") > 0);
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn python_off_says_off_in_the_header() {
    let dir = out_dir("python-off");
    triad()
        .args(["lab", "--toy", "--only", "race", "--python", "off", "--out"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("Python: off"))
        .stdout(predicate::str::contains("not found").not());
    std::fs::remove_dir_all(dir).unwrap();
}
