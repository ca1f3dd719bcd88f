//! Memory figures from `/proc`: a process's private memory (`smaps_rollup`), this process's
//! resident size (`status`), and the memory available (`meminfo`).

use std::io;

use rustix::process::Pid;

use crate::procfs::kib_field;

/// The memory only `pid` maps (`Private_Clean` + `Private_Dirty` of its `smaps_rollup`), in
/// bytes: pages it shares with its parent after `fork` are not in it until one of them writes.
pub(super) fn private_of(pid: Pid) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pid.as_raw_nonzero()))?;
    private_in(&text).ok_or_else(|| io::Error::other("smaps_rollup without Private_* lines"))
}

fn private_in(smaps_rollup: &str) -> Option<u64> {
    kib_field(smaps_rollup, "Private_Clean")?.checked_add(kib_field(smaps_rollup, "Private_Dirty")?)
}

/// This process's resident size (`VmRSS`), in bytes.
pub(super) fn own_resident() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS")
}

/// The memory the kernel could give without swapping (`MemAvailable`), in bytes.
pub(super) fn available_memory() -> Option<usize> {
    let bytes = kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable",
    )?;
    usize::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str = "55a0-7ffd ---p 00000000 00:00 0     [rollup]\n\
                          Rss:                1616 kB\n\
                          Shared_Clean:       1464 kB\n\
                          Shared_Dirty:          0 kB\n\
                          Private_Clean:        40 kB\n\
                          Private_Dirty:       112 kB\n\
                          Private_Hugetlb:       0 kB\n";

    #[test]
    fn private_memory_is_clean_plus_dirty() {
        assert_eq!(private_in(ROLLUP), Some(152 * 1024));
        assert_eq!(private_in("Rss: 4 kB\n"), None);
        let huge = format!(
            "Private_Clean: {} kB\nPrivate_Dirty: {0} kB\n",
            u64::MAX / 1024
        );
        assert_eq!(private_in(&huge), None, "a sum past u64::MAX is no figure");
    }

    #[test]
    fn this_process_has_figures() {
        assert!(own_resident().is_some_and(|rss| rss > 0));
        assert!(available_memory().is_some_and(|bytes| bytes > 0));
        let me = rustix::process::getpid();
        assert!(private_of(me).is_ok_and(|bytes| bytes > 0));
    }
}
