//! `triad map` as a real process: order, failures, resume, formats and pipes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;

/// A fresh directory under the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("triad-map-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120));
    command
}

/// `count` JSONL records `{"id": i, "value": i}`.
fn records(count: u64) -> String {
    (0..count)
        .map(|i| format!("{{\"id\":{i},\"value\":{i}}}\n"))
        .collect()
}

fn ids(output: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(output)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["id"].as_u64().unwrap()
        })
        .collect()
}

/// A --cmd worker: doubles `value`; each worker process is slower or faster than the others.
const UNEVEN: &str = r#"
import json, os, sys, time
pause = (os.getpid() % 3) * 0.00005
for line in sys.stdin:
    record = json.loads(line)
    record["value"] *= 2
    if record["id"] % 7 == 0:
        time.sleep(pause)
    print(json.dumps(record), flush=True)
"#;

#[test]
fn order_is_kept_across_100000_records_with_workers_of_uneven_speed() {
    let scratch = Scratch::new("order");
    let input = scratch.write("in.jsonl", &records(100_000));
    let worker = scratch.write("uneven.py", UNEVEN);
    let output = triad()
        .args(["map", "--workers", "3", "--batch", "50", "--cmd"])
        .arg(format!("python3 {}", worker.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ids(&output.stdout), (0..100_000).collect::<Vec<_>>());
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(21)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["value"], 42);
}

#[test]
fn unordered_yields_each_record_once() {
    let scratch = Scratch::new("unordered");
    let input = scratch.write("in.jsonl", &records(20_000));
    let worker = scratch.write("uneven.py", UNEVEN);
    let output = triad()
        .args([
            "map",
            "--unordered",
            "--workers",
            "3",
            "--batch",
            "20",
            "--cmd",
        ])
        .arg(format!("python3 {}", worker.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut seen = ids(&output.stdout);
    seen.sort_unstable();
    assert_eq!(seen, (0..20_000).collect::<Vec<_>>());
}

#[test]
fn a_worker_that_exits_after_n_records_is_replaced_and_nothing_is_lost() {
    let scratch = Scratch::new("recycle");
    let input = scratch.write("in.jsonl", &records(3_000));
    // Answers 250 records, then leaves (cleanly), in the middle of a batch.
    let worker = scratch.write(
        "tired.py",
        "import sys\nfor n, line in enumerate(sys.stdin):\n    if n == 250:\n        sys.exit(0)\n    print(line, end='', flush=True)\n",
    );
    let output = triad()
        .args(["map", "--workers", "2", "--batch", "64", "--json", "--cmd"])
        .arg(format!("python3 {}", worker.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ids(&output.stdout), (0..3_000).collect::<Vec<_>>());
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert!(
        summary["workers_started"].as_u64().unwrap() >= 12,
        "{summary}"
    );
    assert_eq!(summary["failed"], 0);
}

#[test]
fn a_worker_killed_mid_record_fails_that_record_alone_and_is_retried() {
    let scratch = Scratch::new("killed");
    let input = scratch.write("in.jsonl", &records(500));
    // Kills itself (SIGKILL) on record 77, the first time only: the retry succeeds.
    let marker = scratch.path("died-once");
    let worker = scratch.write(
        "fragile.py",
        &format!(
            "import json, os, signal, sys\nfor line in sys.stdin:\n    r = json.loads(line)\n    if r['id'] == 77 and not os.path.exists({marker:?}):\n        open({marker:?}, 'w').close()\n        os.kill(os.getpid(), signal.SIGKILL)\n    print(line, end='', flush=True)\n",
            marker = marker.display().to_string()
        ),
    );
    let output = triad()
        .args(["map", "--retries", "1", "--json", "--cmd"])
        .arg(format!("python3 {}", worker.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ids(&output.stdout), (0..500).collect::<Vec<_>>());
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["retried"], 1, "{summary}");
}

#[test]
fn records_whose_function_raises_go_to_the_errors_and_the_rest_are_intact() {
    let scratch = Scratch::new("raises");
    let input = scratch.write("in.jsonl", &records(1_000));
    let module = scratch.write(
        "t.py",
        "def f(r):\n    if r['id'] % 100 == 13:\n        raise ValueError(f\"bad {r['id']}\")\n    print('side note', r['id'])\n    return {'id': r['id'], 'double': r['value'] * 2}\n",
    );
    let errors = scratch.path("errors.jsonl");
    let output = triad()
        .args(["map", "--batch", "37", "--py"])
        .arg(format!("{}:f", module.display()))
        .arg("--errors")
        .arg(&errors)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "some failed");
    let expected: Vec<u64> = (0..1_000).filter(|i| i % 100 != 13).collect();
    assert_eq!(ids(&output.stdout), expected);
    let failures: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(failures.len(), 10);
    assert_eq!(failures[0]["line"], 14);
    assert_eq!(failures[0]["record"], "{\"id\":13,\"value\":13}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ValueError: bad 13")
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("] side note 0"),
        "the function's prints pass through: {stderr}"
    );
    assert!(stderr.contains("10 failed"), "{stderr}");
}

#[test]
fn results_that_are_not_json_fail_alone_and_the_batch_around_them_is_intact() {
    let scratch = Scratch::new("not-json");
    let input = scratch.write("in.jsonl", &records(300));
    let module = scratch.write(
        "t.py",
        "def f(r):\n    if r['id'] == 7:\n        return float('nan')\n    if r['id'] == 200:\n        return {1, 2}\n    return {'id': r['id']}\n",
    );
    let errors = scratch.path("errors.jsonl");
    let output = triad()
        .args(["map", "--batch", "100", "--retries", "0", "--py"])
        .arg(format!("{}:f", module.display()))
        .arg("--errors")
        .arg(&errors)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "two failed");
    let expected: Vec<u64> = (0..300).filter(|i| *i != 7 && *i != 200).collect();
    assert_eq!(ids(&output.stdout), expected);
    let reasons: Vec<String> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["reason"].to_string())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("not JSON compliant"), "{reasons:?}");
    assert!(reasons[1].contains("not JSON serializable"), "{reasons:?}");
}

#[test]
fn malformed_input_lines_are_reported_with_their_line_numbers() {
    let scratch = Scratch::new("malformed");
    let input = scratch.write(
        "in.jsonl",
        "{\"id\":0}\nnot json\n{\"id\":2}\n{\"id\":\n{\"id\":4}\n",
    );
    let output = triad()
        .args(["map", "--task", "identity"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(ids(&output.stdout), [0, 2, 4]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in.jsonl:2: malformed JSON"), "{stderr}");
    assert!(stderr.contains("in.jsonl:4: malformed JSON"), "{stderr}");
}

#[test]
fn a_program_that_is_missing_or_not_executable_is_one_line_and_exit_code_2() {
    let scratch = Scratch::new("missing");
    let input = scratch.write("in.jsonl", &records(3));
    let not_executable = scratch.write("plain.txt", "nothing");
    for command in [
        "no-such-program-triad --flag".to_owned(),
        not_executable.display().to_string(),
    ] {
        let output = triad()
            .args(["map", "--cmd", &command])
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("no such program, or it is not executable"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let module = scratch.write("broken.py", "import no_such_module_here\n");
    let output = triad()
        .args(["map", "--py"])
        .arg(format!("{}:f", module.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ModuleNotFoundError"), "{stderr}");
}

/// Runs to the end, or SIGKILLed after `kill_after`; returns whether it was killed.
fn run_maybe_killed(
    input: &Path,
    output: &Path,
    worker: &Path,
    resume: bool,
    kill_after: Option<Duration>,
) -> bool {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"));
    command
        .args(["map", "--batch", "100", "--workers", "2", "--cmd"])
        .arg(format!("python3 {}", worker.display()))
        .arg("--output")
        .arg(output)
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        command.arg("--resume");
    }
    let mut child = command.spawn().unwrap();
    match kill_after {
        Some(after) => {
            std::thread::sleep(after);
            let killed = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            let _ = child.wait();
            killed
        }
        None => {
            assert!(child.wait().unwrap().success());
            false
        }
    }
}

#[test]
fn resume_after_sigkill_at_random_points_gives_the_same_bytes() {
    let scratch = Scratch::new("resume");
    let input = scratch.write("in.jsonl", &records(40_000));
    let worker = scratch.write(
        "double.py",
        "import json, sys, time\nfor line in sys.stdin:\n    r = json.loads(line)\n    r['value'] *= 2\n    time.sleep(0.0002)\n    print(json.dumps(r), flush=True)\n",
    );
    let reference = scratch.path("reference.jsonl");
    run_maybe_killed(&input, &reference, &worker, false, None);
    let expected = std::fs::read(&reference).unwrap();
    assert_eq!(expected.iter().filter(|b| **b == b'\n').count(), 40_000);

    let output = scratch.path("out.jsonl");
    // Kills at pseudo-random moments (a fixed seed), each after the first checkpoint of its
    // run (they come every second), then a final resume that runs to the end.
    let checkpoint = scratch.path("out.jsonl.checkpoint");
    let done = || -> u64 {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|value| value["records_done"].as_u64())
            .unwrap_or(0)
    };
    let mut seed = 0x2545_f491_u64;
    let mut progress = Vec::new();
    for round in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let millis = 1_300 + seed % 900;
        assert!(
            run_maybe_killed(
                &input,
                &output,
                &worker,
                round > 0,
                Some(Duration::from_millis(millis))
            ),
            "run {round} ended before its kill"
        );
        progress.push(done());
    }
    run_maybe_killed(&input, &output, &worker, true, None);
    assert!(
        progress.windows(2).all(|pair| pair[0] < pair[1]) && progress[0] > 0,
        "each killed run got further than the one before: {progress:?}"
    );
    let resumed = std::fs::read(&output).unwrap();
    assert!(
        resumed == expected,
        "the resumed output differs from an uninterrupted run's"
    );
}

#[test]
fn a_resumed_run_still_fails_for_the_records_its_earlier_part_failed() {
    let scratch = Scratch::new("resume-failed");
    let input = scratch.write("in.jsonl", &records(500));
    let module = scratch.write(
        "t.py",
        "def f(r):\n    if r['id'] == 99:\n        raise ValueError('no')\n    return r\n",
    );
    let output = scratch.path("out.jsonl");
    let run = |resume: bool| {
        let mut command = triad();
        command
            .args(["map", "--py"])
            .arg(format!("{}:f", module.display()))
            .arg("-o")
            .arg(&output);
        if resume {
            command.arg("--resume");
        }
        command.arg(&input).output().unwrap()
    };
    assert_eq!(run(false).status.code(), Some(1));
    let resumed = run(true);
    assert_eq!(resumed.status.code(), Some(1), "record 99 is still missing");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("500 done by an earlier run (1 of them failed)"),
        "{stderr}"
    );
    assert_eq!(ids(&std::fs::read(&output).unwrap()).len(), 499);
}

#[test]
fn gzip_input_is_read_as_text() {
    let scratch = Scratch::new("gzip");
    let path = scratch.path("in.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(records(5_000).as_bytes()).unwrap();
    encoder.finish().unwrap();
    let output = triad()
        .args(["map", "--task", "identity"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(ids(&output.stdout), (0..5_000).collect::<Vec<_>>());
}

#[test]
fn csv_round_trip_keeps_the_columns() {
    let scratch = Scratch::new("csv");
    let input = scratch.write(
        "people.csv",
        "name,age,city\n\"Ada, Countess\",36,London\nAlan,41,\"Wilmslow\"\nGrace,85,Arlington\n",
    );
    let module = scratch.write(
        "older.py",
        "def f(row):\n    row['age'] = str(int(row['age']) + 1)\n    return row\n",
    );
    let output = triad()
        .args(["map", "--format", "csv", "--py"])
        .arg(format!("{}:f", module.display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "name,age,city\n\"Ada, Countess\",37,London\nAlan,42,Wilmslow\nGrace,86,Arlington\n"
    );
}

#[test]
fn stdin_to_stdout_in_a_pipeline_closed_early_by_head() {
    let scratch = Scratch::new("head");
    let input = scratch.write("in.jsonl", &records(200_000));
    let triad = assert_cmd::cargo::cargo_bin("triad");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' map --format lines --cmd cat < '{}' | head -n 3",
            triad.display(),
            input.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"id\":0,\"value\":0}\n{\"id\":1,\"value\":1}\n{\"id\":2,\"value\":2}\n"
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "no error spew");
}

#[test]
fn a_program_that_buffers_its_output_still_answers_a_small_batch() {
    // tr and sed keep their output in a block buffer when it is a pipe; without line
    // buffering a batch smaller than that buffer would wait for its answers forever.
    let scratch = Scratch::new("buffers");
    let input = scratch.write("in.txt", "ada\nalan\ngrace\n");
    for command in ["tr a-z A-Z", "sed s/a/4/g"] {
        let output = triad()
            .args(["map", "--format", "lines", "--cmd", command])
            .arg(&input)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = if command.starts_with("tr") {
            "ADA\nALAN\nGRACE\n"
        } else {
            "4d4\n4l4n\ngr4ce\n"
        };
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected,
            "{command}"
        );
    }
}

#[test]
fn a_second_signal_ends_a_run_whose_worker_never_answers() {
    let scratch = Scratch::new("second-signal");
    let input = scratch.write("in.jsonl", &records(10));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(["map", "--cmd", "sleep 600"])
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after two SIGTERMs"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));
}
