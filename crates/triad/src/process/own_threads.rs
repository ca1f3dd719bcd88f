//! Threads that triad starts itself, and the question the fork start method asks: does this
//! process have any *other* thread?
//!
//! Fork is only safe when the forking thread is the process's only one. Counting the entries
//! of `/proc/self/task` is not quite that question: a thread that has been joined — its
//! `pthread_join` has returned, so it runs no more user code and holds no lock — stays listed
//! for a few milliseconds while the kernel tears it down. A pool's dispatcher thread, joined
//! when the pool is dropped, would then refuse the next fork pool. So every thread triad starts
//! goes through [`spawn`], which learns its kernel thread id, and [`OwnThread::join`] records the
//! id once the thread is joined; [`other_threads`] counts the listed threads that are neither
//! the caller nor joined ones of ours.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Kernel thread ids of threads of ours that have been joined (pruned of ids the kernel no
/// longer lists whenever [`other_threads`] runs).
static JOINED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// A thread started by [`spawn`].
#[derive(Debug)]
pub(crate) struct OwnThread {
    handle: JoinHandle<()>,
    /// The thread's kernel id, set by the thread as its first act (0 until then).
    tid: Arc<AtomicI32>,
}

/// Starts a named thread whose end [`other_threads`] will know of once it is joined.
pub(crate) fn spawn(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<OwnThread> {
    let tid = Arc::new(AtomicI32::new(0));
    let own = tid.clone();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            own.store(
                rustix::thread::gettid().as_raw_nonzero().get(),
                Ordering::Release,
            );
            body();
        })?;
    Ok(OwnThread { handle, tid })
}

impl OwnThread {
    /// Waits for the thread to end, then records it as joined.
    pub(crate) fn join(self) {
        let _ = self.handle.join();
        // Joined, so the thread ran to its end: its first act, storing the id, is visible.
        let tid = self.tid.load(Ordering::Acquire);
        if tid != 0 {
            JOINED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get_or_insert_with(HashSet::new)
                .insert(tid);
        }
    }
}

/// How many threads of this process run besides the calling one, not counting threads of
/// ours that have been joined but that the kernel still lists.
pub(crate) fn other_threads() -> std::io::Result<usize> {
    Ok(other_thread_ids()?.len())
}

fn other_thread_ids() -> std::io::Result<HashSet<i32>> {
    let me = rustix::thread::gettid().as_raw_nonzero().get();
    let listed: HashSet<i32> = std::fs::read_dir("/proc/self/task")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut joined = JOINED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let joined = joined.get_or_insert_with(HashSet::new);
    joined.retain(|tid| listed.contains(tid));
    Ok(listed
        .into_iter()
        .filter(|tid| *tid != me && !joined.contains(tid))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_thread_of_ours_is_not_another_thread() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (told, tid) = std::sync::mpsc::channel();
        let running = spawn("triad-test", move || {
            let _ = told.send(rustix::thread::gettid().as_raw_nonzero().get());
            let _ = stopped.recv();
        })
        .unwrap();
        let tid = tid.recv().unwrap();
        assert!(other_thread_ids().unwrap().contains(&tid));
        drop(stop);
        running.join();
        // The kernel may still list it; either way it is not another thread any more.
        assert!(!other_thread_ids().unwrap().contains(&tid));
    }
}
