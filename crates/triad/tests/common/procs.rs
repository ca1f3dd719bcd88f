//! This test process's worker processes, found in `/proc` by their name (`triad-worker`) and
//! parent (this process, or a fork server of ours, `triad-forksrv`), and what state they are in.

use std::time::{Duration, Instant};

/// `(pid, parent pid, state, comm)` of a process, from `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> Option<(u32, u32, char, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let mut rest = text[close + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((pid, parent, state, comm))
}

/// Every process on the machine, as `stat` reads it.
pub fn all() -> Vec<(u32, u32, char, String)> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .filter_map(stat)
                .collect()
        })
        .unwrap_or_default()
}

/// The running fork servers that are children of this process.
pub fn fork_servers() -> Vec<u32> {
    let me = std::process::id();
    all()
        .into_iter()
        .filter(|(_, parent, state, comm)| {
            *parent == me && comm == "triad-forksrv" && *state != 'Z'
        })
        .map(|(pid, ..)| pid)
        .collect()
}

/// The live worker processes of this process's pools: its children, and its fork servers'.
pub fn workers() -> Vec<u32> {
    let me = std::process::id();
    let servers = fork_servers();
    all()
        .into_iter()
        .filter(|(_, parent, state, comm)| {
            comm == "triad-worker" && *state != 'Z' && (*parent == me || servers.contains(parent))
        })
        .map(|(pid, ..)| pid)
        .collect()
}

/// This process's children that are zombies (ended and not reaped).
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    all()
        .into_iter()
        .filter(|(_, parent, state, _)| *parent == me && *state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Polls `check` every 5 ms until it gives a value, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILLs `pid`.
pub fn kill(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions; at worst the pid is gone already.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}
