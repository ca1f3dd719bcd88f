//! `triad images` as a real process: the seed's operations in both modes, exit codes, a full
//! disk, an unwritable output, SIGKILL mid-batch, a worker killed mid-image, a timeout, and the
//! memory bound with two 100-megapixel images.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use image::{ImageEncoder, Rgb, RgbImage};
use serde_json::Value;

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env_remove("TRIAD_WORKER").env("NO_COLOR", "1");
    command
}

/// A picture with detail everywhere (so that encoders and filters have work).
fn busy(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed).wrapping_mul(97);
        Rgb([(x + (n >> 24)) as u8, (y + (n >> 16)) as u8, (n >> 8) as u8])
    })
}

fn save_jpeg(path: &Path, image: &RgbImage) {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(image)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn save_png(path: &Path, image: &RgbImage) {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `count` JPEGs of `width`×`height` in `dir/in`.
fn jpegs(dir: &Path, count: u32, width: u32, height: u32) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for index in 0..count {
        save_jpeg(
            &input.join(format!("{index:03}.jpg")),
            &busy(width, height, index),
        );
    }
    input
}

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|error| {
        panic!("{error}: {}", String::from_utf8_lossy(output));
    })
}

/// The files under `dir` (hidden ones too), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_seeds_operations_in_threads_and_processes_give_the_same_images() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 4, 1600, 1200);
    for mode in ["threads", "processes"] {
        let out = dir.path().join(mode);
        let assert = triad()
            .args([
                "images",
                "resize=800x600",
                "rotate=90",
                "--json",
                "--mode",
                mode,
            ])
            .arg("--out")
            .arg(&out)
            .arg(&input)
            .assert()
            .success();
        let summary = json(&assert.get_output().stdout);
        assert_eq!(summary["mode"], mode);
        assert_eq!(
            (summary["ok"].as_u64(), summary["failed"].as_u64()),
            (Some(4), Some(0))
        );
        for row in summary["rows"].as_array().unwrap() {
            assert_eq!(
                (row["out_width"].as_u64(), row["out_height"].as_u64()),
                (Some(600), Some(800))
            );
            assert_eq!(row["shrink"], 2, "1600x1200 into 800x600 decodes at 1/2");
        }
        assert!(summary["decode_share"].as_f64().unwrap() > 0.0);
        assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0);
    }
    for index in 0..4 {
        let name = format!("{index:03}.jpg");
        let threads = image::open(dir.path().join("threads").join(&name)).unwrap();
        let processes = image::open(dir.path().join("processes").join(&name)).unwrap();
        assert_eq!(threads.as_bytes(), processes.as_bytes(), "{name}");
    }
}

#[test]
fn a_failed_image_is_exit_code_1_with_its_reason_and_the_text_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 2, 64, 48);
    std::fs::write(input.join("empty.jpg"), b"").unwrap();
    let assert = triad()
        .args(["images", "thumbnail=32", "--out"])
        .arg(dir.path().join("out"))
        .arg(&input)
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stdout.contains("3 images in") && stdout.contains("2 ok, 1 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("time: decode"), "{stdout}");
    assert!(stderr.contains("empty.jpg: the file is empty"), "{stderr}");
}

#[test]
fn a_command_line_that_cannot_work_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 1, 16, 16);
    for (args, message) in [
        (vec!["sepia=3"], "bad operation `sepia=3`: unknown"),
        (vec!["resize=800"], "expected WIDTHxHEIGHT"),
        (
            vec!["blur=2", "--timeout", "5"],
            "--timeout needs --mode processes",
        ),
        (vec!["--max-memory", "lots"], "expected bytes"),
    ] {
        let assert = triad()
            .arg("images")
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("out"))
            .arg(&input)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn an_unwritable_output_directory_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 1, 16, 16);
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let assert = triad()
        .args(["images", "--out"])
        .arg(file.join("out"))
        .arg(&input)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("triad: error: cannot use") && stderr.contains("Not a directory"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_fails_the_images_that_do_not_fit_and_leaves_no_partial_file() {
    // The kernel's file size limit stands in for a full disk: a write past it fails (EFBIG,
    // with SIGXFSZ ignored) just as a write to a full file system fails with ENOSPC, through
    // the same path.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    save_png(&input.join("big.png"), &busy(300, 300, 1)); // ~270 KB as PNG
    save_png(&input.join("small.png"), &busy(20, 20, 2)); // ~1 KB
    let out = dir.path().join("out");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"));
    command
        .args(["images", "--json", "--out"])
        .arg(&out)
        .arg(&input)
        .env_remove("TRIAD_WORKER");
    // SAFETY: between fork and exec the closure makes two async-signal-safe system calls
    // (signal, setrlimit) and touches no memory the parent's threads share.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let assert = Command::from_std(command).assert().code(1);
    let summary = json(&assert.get_output().stdout);
    let rows = summary["rows"].as_array().unwrap();
    let big = rows
        .iter()
        .find(|r| r["input"].as_str().unwrap().ends_with("big.png"))
        .unwrap();
    assert_eq!(big["kind"], "write", "{big}");
    assert!(
        big["reason"].as_str().unwrap().contains("File too large"),
        "{big}"
    );
    assert_eq!(names(&out), ["small.png"]);
}

/// The pids of `parent`'s children named `comm`, with the CPU time each has used (clock
/// ticks in user mode).
fn children(parent: u32, comm: &str) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map(|(_, name)| name).unwrap_or("");
        // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let utime: u64 = fields.get(11).and_then(|t| t.parse().ok()).unwrap_or(0);
        if ppid == parent && name == comm {
            found.push((pid, utime));
        }
    }
    found
}

#[test]
fn sigkill_mid_batch_leaves_no_partial_file_and_skip_existing_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 24, 1200, 900);
    let out = dir.path().join("out");
    let args = ["images", "sharpen=2", "--workers", "2", "--out"];
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(args)
        .arg(&out)
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while names(&out).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let written = names(&out);
    assert!(
        (3..24).contains(&written.len()),
        "killed mid-batch: {written:?}"
    );
    for name in &written {
        assert!(!name.starts_with('.'), "no temporary file is left: {name}");
        let image = image::open(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((image.width(), image.height()), (1200, 900), "{name}");
    }
    let assert = triad()
        .args(args)
        .arg(&out)
        .args(["--skip-existing", "--json"])
        .arg(&input)
        .assert()
        .success();
    let summary = json(&assert.get_output().stdout);
    assert_eq!(summary["skipped"].as_u64(), Some(written.len() as u64));
    assert_eq!(summary["ok"].as_u64(), Some(24 - written.len() as u64));
    assert_eq!(names(&out).len(), 24);
}

#[test]
fn processes_mode_survives_a_worker_killed_mid_image() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 6, 1500, 1500);
    let out = dir.path().join("out");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args([
            "images",
            "blur=8",
            "--mode",
            "processes",
            "--workers",
            "2",
            "--json",
            "--out",
        ])
        .arg(&out)
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill a worker in the middle of an image: once it has used 0.3 s of CPU (starting takes a
    // few ms; one image, decoded and blurred, takes seconds).
    // SAFETY: sysconf only reads one of the system's constants.
    let ticks = 3 * unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64 / 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        let running = children(child.id(), "triad-worker");
        if let Some((pid, _)) = running.iter().find(|(_, utime)| *utime >= ticks) {
            break *pid;
        }
        assert!(Instant::now() < deadline, "no worker ever ran: {running:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: kill(2) with a pid we just read and SIGKILL; it touches no memory.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let output = child.wait_with_output().unwrap();
    let summary = json(&output.stdout);
    let rows = summary["rows"].as_array().unwrap();
    let died: Vec<_> = rows.iter().filter(|r| r["kind"] == "worker-died").collect();
    assert!(!died.is_empty(), "{summary}");
    for row in &died {
        assert!(
            row["reason"]
                .as_str()
                .unwrap()
                .contains("killed by signal 9"),
            "{row}"
        );
    }
    let ok = rows.iter().filter(|r| r["status"] == "ok").count();
    assert_eq!(
        ok + died.len(),
        6,
        "every other image was written: {summary}"
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        summary["workers_started"].as_u64().unwrap() >= 3,
        "the pool replaced the worker"
    );
    assert_eq!(names(&out).len(), ok);
}

#[test]
fn an_image_past_the_timeout_fails_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // A blur of sigma 200 over 4 MP takes minutes; over 16x16 pixels, nothing.
    save_png(&input.join("slow.png"), &busy(2000, 2000, 3));
    save_png(&input.join("fast.png"), &busy(16, 16, 4));
    let started = Instant::now();
    let assert = triad()
        .args([
            "images",
            "blur=200",
            "--mode",
            "processes",
            "--workers",
            "2",
            "--timeout",
            "1",
        ])
        .args(["--json", "--out"])
        .arg(dir.path().join("out"))
        .arg(&input)
        .assert()
        .code(1);
    assert!(started.elapsed() < Duration::from_secs(60));
    let summary = json(&assert.get_output().stdout);
    let rows = summary["rows"].as_array().unwrap();
    let kind = |name: &str| {
        rows.iter()
            .find(|r| r["input"].as_str().unwrap().ends_with(name))
            .unwrap()["kind"]
            .clone()
    };
    assert_eq!(kind("slow.png"), "timeout", "{summary}");
    assert_eq!(kind("fast.png"), Value::Null, "{summary}");
}

#[test]
fn two_100_megapixel_images_are_decoded_one_at_a_time_under_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["a.png", "b.png"] {
        save_png(
            &input.join(name),
            &RgbImage::from_pixel(10_000, 10_000, Rgb([90, 120, 200])),
        );
    }
    let run = |max_memory: &str| {
        let assert = triad()
            .args([
                "images",
                "flip=h",
                "--workers",
                "2",
                "--json",
                "--max-memory",
                max_memory,
            ])
            .arg("--out")
            .arg(dir.path().join(format!("out-{max_memory}")))
            .arg(&input)
            .assert()
            .success();
        json(&assert.get_output().stdout)
    };
    // Each needs about 600 MB (the decoded image and the flipped one): two do not fit in 1 GiB.
    let bounded = run("1G");
    assert_eq!(bounded["most_in_flight"], 1, "{bounded}");
    assert!(bounded["peak_reserved_bytes"].as_u64().unwrap() <= 1 << 30);
    let peak = bounded["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
    // With room for both they run together, and the process holds more: the bound is what
    // kept it down.
    let unbounded = run("4G");
    assert_eq!(unbounded["most_in_flight"], 2, "{unbounded}");
    let both = unbounded["peak_rss_bytes"].as_u64().unwrap();
    assert!(
        both > peak + (300 << 20),
        "{} MiB vs {} MiB",
        both >> 20,
        peak >> 20
    );
}

#[test]
fn a_summary_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = jpegs(dir.path(), 1, 16, 16);
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(["images", "--json", "--out"])
        .arg(dir.path().join("out"))
        .arg(&input)
        .env_remove("TRIAD_WORKER")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("could not write the summary to standard output"),
        "{stderr}"
    );
    // The images themselves were written: the summary is what failed.
    assert_eq!(names(&dir.path().join("out")), ["000.jpg"]);
}
