//! Which CPUs this thread may use, and pinning it to one of them for a measurement (a context
//! switch is only a switch when both parties share a CPU; a wake-up across CPUs is another cost).

use std::io;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The CPUs the calling thread may run on, lowest first.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let allowed = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU)
        .filter(|&cpu| allowed.is_set(cpu))
        .collect())
}

/// The lowest-numbered CPU the calling thread may run on.
pub(crate) fn first_allowed_cpu() -> io::Result<usize> {
    allowed_cpus()?
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("the CPU mask is empty"))
}

/// Keeps the calling thread on one CPU until dropped, then gives it back its former CPUs.
#[derive(Debug)]
pub(crate) struct PinnedThread {
    former: CpuSet,
}

impl PinnedThread {
    /// Pins the calling thread to `cpu`.
    pub(crate) fn to(cpu: usize) -> io::Result<Self> {
        let former = sched_getaffinity(None)?;
        let mut only = CpuSet::new();
        only.set(cpu);
        sched_setaffinity(None, &only)?;
        Ok(Self { former })
    }
}

impl Drop for PinnedThread {
    fn drop(&mut self) {
        let _ = sched_setaffinity(None, &self.former);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_holds_one_cpu_and_is_undone_when_dropped() {
        let before = sched_getaffinity(None).unwrap();
        let cpu = first_allowed_cpu().unwrap();
        {
            let _pin = PinnedThread::to(cpu).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![cpu]);
        }
        assert_eq!(sched_getaffinity(None).unwrap(), before);
    }
}
