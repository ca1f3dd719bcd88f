//! Error messages on the real binary: one line, exit code 2 for bad input, and the substance
//! kept — names of missing arguments, accepted values, a hint for `profile` without `--`, a
//! cause said once.

use assert_cmd::Command;

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

/// The one line on stderr of `triad ARGS`, which must exit with `code`.
fn error_line(args: &[&str], code: i32) -> String {
    let output = triad().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr
}

#[test]
fn missing_arguments_are_named() {
    let line = error_line(&["run"], 2);
    assert!(
        line.contains("not provided: <WORKLOAD>, <INPUT>..."),
        "{line}"
    );
    assert!(line.contains("(see triad run --help)"), "{line}");
    let line = error_line(&["profile"], 2);
    assert!(line.contains("<COMMAND>"), "{line}");
}

#[test]
fn bad_enum_values_list_the_accepted_ones() {
    let line = error_line(&["profile", "--lang", "cobol", "--", "true"], 2);
    assert!(
        line.contains("[possible values: auto, python, native]"),
        "{line}"
    );
    let line = error_line(&["lab", "--python", "maybe"], 2);
    assert!(line.contains("[possible values: auto, on, off]"), "{line}");
}

#[test]
fn profile_without_dashes_says_where_they_go() {
    let line = error_line(&["profile", "sleep", "0.1"], 2);
    assert!(
        line.contains("the command to profile goes after `--`: triad profile -- sleep 0.1"),
        "{line}"
    );
}

#[test]
fn a_cause_is_said_once() {
    let dir = std::env::temp_dir().join(format!("triad-messages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let line = error_line(&["profile", "--", script.to_str().unwrap()], 126);
    assert_eq!(line.matches("Permission denied").count(), 1, "{line}");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let line = error_line(
        &["lab", "--toy", "--out", &format!("{}/sub", file.display())],
        1,
    );
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lab_out_naming_a_file_says_so_in_words() {
    let dir = std::env::temp_dir().join(format!("triad-messages-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report");
    std::fs::write(&file, "").unwrap();
    let line = error_line(&["lab", "--toy", "--out", file.to_str().unwrap()], 2);
    assert!(line.contains("is a file, not a directory"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}
