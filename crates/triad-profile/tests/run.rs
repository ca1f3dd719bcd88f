//! `profile` on real programs: the Recording's figures (not the verdicts).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use triad_profile::{Exit, Lang, Recording, RunError, RunOptions, Verdict, WaitKind, profile};

fn run(cmd: &[&str]) -> Recording {
    profile(cmd, &RunOptions::default()).expect("profile")
}

/// The real interpreter, not a version manager's shell-script shim (pyenv's takes ~200 ms of
/// bash before Python starts, and adds processes to the tree).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// CPU-bound tests take turns: two of them on two cores at once, beside the others, would
/// measure each other.
fn cpu_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn cpu_s(r: &Recording) -> f64 {
    r.totals.user_s + r.totals.system_s
}

#[test]
fn cpu_spin_is_about_one_core() {
    let _turn = cpu_turn();
    let r = run(&[
        python(),
        "-c",
        "import time\nt = time.time() + 0.5\nwhile time.time() < t: pass",
    ]);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert_eq!(r.lang, Lang::Python);
    assert!(
        r.totals.wall_s >= 0.5 && r.totals.wall_s < 3.0,
        "{:?}",
        r.totals
    );
    // One core: on a CPU, or (a loaded machine) runnable and waiting for one.
    let ratio = cpu_s(&r) / r.totals.wall_s;
    assert!(ratio > 0.1 && ratio < 1.2, "cpu/wall {ratio}");
    let last = r.samples.last().unwrap();
    let sampled = last.cpu_ns as f64 / 1e9 / r.totals.wall_s;
    assert!(sampled > 0.1 && sampled < 1.2, "sampled cpu/wall {sampled}");
    let wanted = (last.cpu_ns + last.run_delay_ns) as f64 / 1e9 / r.totals.wall_s;
    assert!(
        wanted > 0.7 && wanted < 1.2,
        "(cpu + run delay)/wall {wanted}"
    );
    assert!(r.samples.len() >= 10, "{} samples", r.samples.len());
    let running = r.samples.iter().filter(|s| s.running >= 1).count();
    assert!(
        running * 2 > r.samples.len(),
        "{running} of {} running",
        r.samples.len()
    );
    assert!(r.samples.iter().filter(|s| s.busy_threads >= 1).count() * 2 > r.samples.len());
    assert_eq!((r.totals.peak_processes, r.totals.peak_threads), (1, 1));
    assert!(r.totals.max_rss_bytes > 1 << 20);
    assert!(r.samples.iter().any(|s| s.rss_bytes > 1 << 20));
}

#[test]
fn shell_spin_is_native() {
    let _turn = cpu_turn();
    let r = run(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done",
    ]);
    assert_eq!(r.lang, Lang::Native);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    let ratio = cpu_s(&r) / r.totals.wall_s;
    assert!(ratio > 0.1, "cpu/wall {ratio}");
    let last = r.samples.last().unwrap();
    let wanted = (last.cpu_ns + last.run_delay_ns) as f64 / 1e9 / r.totals.wall_s;
    assert!(wanted > 0.6, "(cpu + run delay)/wall {wanted}");
}

#[test]
fn sleep_uses_no_cpu() {
    let r = run(&["sleep", "0.5"]);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert_eq!(r.lang, Lang::Native);
    // Exit is noticed at once (pidfd), not up to an interval late.
    assert!(
        r.totals.wall_s >= 0.5 && r.totals.wall_s < 1.5,
        "{:?}",
        r.totals
    );
    assert!(cpu_s(&r) < 0.1, "{:?}", r.totals);
    let sleeping = r.samples.iter().filter(|s| s.sleeping >= 1).count();
    assert!(
        sleeping * 10 >= r.samples.len() * 8,
        "{sleeping} of {}",
        r.samples.len()
    );
    let last = r.samples.last().unwrap();
    assert!(
        last.cpu_ns < 100_000_000 && last.voluntary_switches >= 1,
        "{last:?}"
    );
}

#[test]
fn multiprocessing_children_are_followed() {
    let script = r#"
import multiprocessing as mp, time
def spin(_):
    t = time.time() + 0.4
    while time.time() < t: pass
if __name__ == "__main__":
    ps = [mp.Process(target=spin, args=(i,)) for i in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
"#;
    let _turn = cpu_turn();
    let r = run(&[python(), "-c", script]);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert!(r.totals.peak_processes >= 3, "{:?}", r.totals);
    assert!(
        r.samples.iter().any(|s| s.busy_processes >= 2),
        "{:?}",
        r.samples
            .iter()
            .map(|s| s.busy_processes)
            .collect::<Vec<_>>()
    );
    // The children's CPU (up to 0.8 s between them) is in the totals (they were waited for)
    // and, carried over after they ended, in the samples.
    let last = r.samples.last().unwrap();
    assert!(cpu_s(&r) > 0.1, "{:?}", r.totals);
    assert!(last.cpu_ns as f64 / 1e9 > 0.1, "{last:?}");
    // Two spinners wanting 0.4 s of CPU each: on a CPU or waiting for one.
    assert!(
        (last.cpu_ns + last.run_delay_ns) as f64 / 1e9 > 0.5,
        "{last:?}"
    );
    // Counters never go down, even as processes end.
    for w in r.samples.windows(2) {
        assert!(w[1].cpu_ns >= w[0].cpu_ns && w[1].wchar >= w[0].wchar);
        assert!(w[1].voluntary_switches >= w[0].voluntary_switches);
        assert!(w[1].t_ms > w[0].t_ms);
    }
}

#[test]
fn threads_are_counted() {
    let script = r#"
import threading, time
ts = [threading.Thread(target=time.sleep, args=(0.3,)) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
"#;
    let r = run(&[python(), "-c", script]);
    assert!(r.totals.peak_threads >= 4, "{:?}", r.totals);
    assert_eq!(r.totals.peak_processes, 1);
}

#[test]
fn fsync_loop_writes_to_storage() {
    let dir = std::env::temp_dir().join(format!("triad-prun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f");
    let script = format!(
        "import os\nfd = os.open({:?}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n\
         for _ in range(40):\n    os.write(fd, b'x' * 65536)\n    os.fsync(fd)\nos.close(fd)\n",
        file.to_str().unwrap()
    );
    let r = run(&[python(), "-c", &script]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(r.exit, Exit::Code { code: 0 });
    let last = r.samples.last().unwrap();
    assert!(last.wchar >= 40 * 65536, "{last:?}");
    assert!(last.write_bytes > 0, "{last:?}");
    assert!(last.syscalls >= 40, "{last:?}");
}

#[test]
fn exit_code_and_signal_pass_through() {
    assert_eq!(run(&["sh", "-c", "exit 3"]).exit, Exit::Code { code: 3 });
    assert_eq!(
        run(&["sh", "-c", "kill -KILL $$"]).exit,
        Exit::Signal { signal: 9 }
    );
}

#[test]
fn quick_command_still_has_figures() {
    let r = run(&["true"]);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert!(r.totals.wall_s < 1.0);
    assert_eq!((r.totals.peak_processes, r.totals.peak_threads), (1, 1));
    assert!(!r.samples.is_empty()); // the final look, taken before reaping
    assert_eq!(r.command, ["true"]);
    assert_eq!(r.interval_ms, 20);
    assert!(r.cores >= 1);
}

#[test]
fn options_are_honoured() {
    let opts = RunOptions {
        interval: Duration::from_millis(5),
        lang: Some(Lang::Python),
    };
    let r = profile(&["sleep", "0.2"], &opts).unwrap();
    assert_eq!(r.lang, Lang::Python);
    assert_eq!(r.interval_ms, 5);
    assert!(r.samples.len() >= 15, "{}", r.samples.len());
}

#[test]
fn spawn_errors() {
    let e = profile(&["no-such-command-xyz"], &RunOptions::default()).unwrap_err();
    assert!(matches!(&e, RunError::NotFound { command } if command == "no-such-command-xyz"));
    assert_eq!(e.exit_code(), 127);

    let dir = std::env::temp_dir().join(format!("triad-prun-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("script");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap(); // mode 0644: not executable
    let e = profile(&[file.as_os_str()], &RunOptions::default()).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert!(matches!(e, RunError::NotExecutable { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 126);

    let empty: [&str; 0] = [];
    assert!(matches!(
        profile(&empty, &RunOptions::default()),
        Err(RunError::EmptyCommand)
    ));
    let zero = RunOptions {
        interval: Duration::ZERO,
        lang: None,
    };
    assert!(matches!(
        profile(&["true"], &zero),
        Err(RunError::ZeroInterval)
    ));
}

#[test]
fn shebang_python_script_is_detected() {
    let dir = std::env::temp_dir().join(format!("triad-prun-shebang-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("job");
    std::fs::write(
        &file,
        "#!/usr/bin/env python3\nimport time\ntime.sleep(0.1)\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = profile(&[file.as_os_str()], &RunOptions::default()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert_eq!(r.lang, Lang::Python);
}

#[test]
fn thread_records_say_what_sleeping_threads_are_blocked_in() {
    // One thread blocked reading a socket, one in time.sleep, the main one joining them (a
    // futex); the socket's writer answers after 0.6 s.
    let script = r#"
import socket, threading, time
a, b = socket.socketpair()
reader = threading.Thread(target=lambda: a.recv(1))
sleeper = threading.Thread(target=time.sleep, args=(0.6,))
reader.start(); sleeper.start()
time.sleep(0.6); b.send(b"x")
reader.join(); sleeper.join()
"#;
    let r = run(&[python(), "-c", script]);
    assert_eq!(r.exit, Exit::Code { code: 0 });
    assert_eq!(r.threads.len(), 3, "{:#?}", r.threads);
    let most = |kind: WaitKind| {
        r.threads
            .iter()
            .filter(|t| t.sleeping.get(kind) * 2 > t.samples())
            .count()
    };
    // The reader on the socket; the sleeper and the main thread in a sleep call.
    assert_eq!(most(WaitKind::Socket), 1, "{:#?}", r.threads);
    assert_eq!(most(WaitKind::Timer), 2, "{:#?}", r.threads);
    for t in &r.threads {
        assert!(t.pid > 0 && t.tid > 0 && t.last_ms >= t.first_ms, "{t:?}");
        assert_eq!(t.process, "python3", "{t:?}");
    }
    // The samples weigh the threads at work: nothing here computes for long.
    assert!(r.samples.iter().all(|s| s.work_threads <= 3.0));
}

#[test]
fn helpers_that_wake_often_are_set_aside_and_do_not_make_a_cpu_loop_mixed() {
    // One thread computes for 1 s; two helpers wake every 5 ms (a pool's management threads
    // do so too), so every interval has three busy threads.
    let script = r#"
import threading, time
stop = threading.Event()
def helper():
    while not stop.wait(0.005): pass
helpers = [threading.Thread(target=helper) for _ in range(2)]
for h in helpers: h.start()
t = time.time() + 1.0
while time.time() < t: pass
stop.set()
for h in helpers: h.join()
"#;
    let _turn = cpu_turn();
    let r = run(&[python(), "-c", script]);
    let a = triad_profile::analyse(&r);
    assert!(
        r.samples.iter().filter(|s| s.busy_threads >= 3).count() * 2 > r.samples.len(),
        "the helpers woke in most intervals"
    );
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        },
        "{}",
        triad_profile::render_text(&r, &a, false)
    );
    assert!(
        a.figures.active_threads < 1.5,
        "{}",
        a.figures.active_threads
    );
    let aside: u32 = a.set_aside.iter().map(|s| s.threads).sum();
    assert_eq!(aside, 2, "{:#?}", a.set_aside);
}
