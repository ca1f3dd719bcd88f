//! `triad profile` and the command's whole tree, on real processes: signals reach every
//! process, and a killed profiler leaves nothing running.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

fn triad() -> Command {
    let mut command = Command::new(cargo_bin("triad"));
    command.env("NO_COLOR", "1");
    command
}

/// Every descendant of `pid`, from `/proc/PID/task/*/children`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                stack.push(child);
            }
        }
    }
    found
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_owned())
}

/// Whether `pid` still runs (a zombie waiting for its reaper counts as ended).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.trim().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// Starts `triad profile -- sh -c 'sleep 30; echo never'` and waits until the `sleep`
/// grandchild runs; returns the profiler and the pids of `sh` and `sleep`.
// The profiler is returned for the caller to signal and wait for, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn profiler_with_a_grandchild() -> (Child, Vec<u32>) {
    let mut child = triad()
        .args(["profile", "--", "sh", "-c", "sleep 30; echo never"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tree: Vec<u32> = descendants(child.id())
            .into_iter()
            .filter(|&pid| matches!(comm(pid).as_deref(), Some("sh" | "sleep")))
            .collect();
        if tree
            .iter()
            .any(|&pid| comm(pid).as_deref() == Some("sleep"))
        {
            return (child, tree);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the sleep never started");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

/// Waits until none of `pids` runs; fails after 10 s naming what still runs.
fn all_end(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| alive(pid)) {
        let left: Vec<_> = pids.iter().filter(|&&pid| alive(pid)).collect();
        assert!(Instant::now() < deadline, "still running: {left:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_to_the_profiler_reaches_the_grandchild_too() {
    let (mut profiler, tree) = profiler_with_a_grandchild();
    signal(profiler.id(), libc::SIGTERM);
    let status = profiler.wait().unwrap();
    // sh was ended by the SIGTERM: its code, as a shell says, is 128 + 15.
    assert_eq!(status.code(), Some(143), "{status:?}");
    all_end(&tree);
}

#[test]
fn a_killed_profiler_leaves_nothing_running() {
    let (mut profiler, tree) = profiler_with_a_grandchild();
    let guard: Vec<u32> = descendants(profiler.id())
        .into_iter()
        .filter(|&pid| comm(pid).as_deref() == Some("triad-guard"))
        .collect();
    assert_eq!(
        guard.len(),
        1,
        "one guard between the profiler and the command"
    );
    signal(profiler.id(), libc::SIGKILL);
    profiler.wait().unwrap();
    all_end(&tree);
    all_end(&guard);
}
