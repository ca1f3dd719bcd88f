//! What a sleeping thread is blocked in: its current system call
//! (`/proc/PID/task/TID/syscall`: the number and the arguments) and, for a call on a
//! descriptor, what `/proc/PID/fd/N` points at (`socket:[…]`, `pipe:[…]`, a terminal).
//!
//! Reading `syscall` needs the same rights as attaching a debugger (the same user, without a
//! stricter Yama policy); where it cannot be read the wait is [`WaitKind::Other`] and the
//! analysis falls back on the IO counters.

use crate::recording::WaitKind;

/// What a system call number says about the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// The call alone tells.
    Known(WaitKind),
    /// A call on the descriptor in its first argument: that descriptor tells.
    OnDescriptor,
}

/// The wait a thread blocked in system call `nr` is in.
pub(super) fn call_kind(nr: i64) -> Call {
    use WaitKind::*;
    if let Some(kind) = legacy_call_kind(nr) {
        return kind;
    }
    match nr {
        libc::SYS_nanosleep | libc::SYS_clock_nanosleep => Call::Known(Timer),
        libc::SYS_futex | libc::SYS_futex_waitv => Call::Known(Lock),
        libc::SYS_wait4 | libc::SYS_waitid => Call::Known(Child),
        libc::SYS_ppoll | libc::SYS_pselect6 | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => {
            Call::Known(Poll)
        }
        libc::SYS_read
        | libc::SYS_readv
        | libc::SYS_pread64
        | libc::SYS_preadv
        | libc::SYS_preadv2
        | libc::SYS_write
        | libc::SYS_writev
        | libc::SYS_pwrite64
        | libc::SYS_recvfrom
        | libc::SYS_recvmsg
        | libc::SYS_recvmmsg
        | libc::SYS_sendto
        | libc::SYS_sendmsg
        | libc::SYS_sendmmsg
        | libc::SYS_accept
        | libc::SYS_accept4
        | libc::SYS_connect
        | libc::SYS_splice => Call::OnDescriptor,
        _ => Call::Known(Other),
    }
}

/// The calls that x86-64 keeps from before their `p`/`2` forms (other architectures have only
/// the new ones).
#[cfg(target_arch = "x86_64")]
fn legacy_call_kind(nr: i64) -> Option<Call> {
    match nr {
        libc::SYS_poll | libc::SYS_select | libc::SYS_epoll_wait => {
            Some(Call::Known(WaitKind::Poll))
        }
        libc::SYS_pause => Some(Call::Known(WaitKind::Other)),
        _ => None,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn legacy_call_kind(_nr: i64) -> Option<Call> {
    None
}

/// The wait on a descriptor whose `/proc/PID/fd/N` link reads `target`.
pub(super) fn descriptor_kind(target: &[u8]) -> WaitKind {
    if target.starts_with(b"socket:") {
        WaitKind::Socket
    } else if target.starts_with(b"pipe:") {
        WaitKind::Pipe
    } else if target.starts_with(b"/dev/pts/")
        || target.starts_with(b"/dev/tty")
        || target == b"/dev/console"
    {
        WaitKind::Terminal
    } else {
        WaitKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_their_waits() {
        assert_eq!(
            call_kind(libc::SYS_clock_nanosleep),
            Call::Known(WaitKind::Timer)
        );
        assert_eq!(call_kind(libc::SYS_futex), Call::Known(WaitKind::Lock));
        assert_eq!(call_kind(libc::SYS_wait4), Call::Known(WaitKind::Child));
        assert_eq!(
            call_kind(libc::SYS_epoll_pwait),
            Call::Known(WaitKind::Poll)
        );
        assert_eq!(call_kind(libc::SYS_recvfrom), Call::OnDescriptor);
        assert_eq!(call_kind(libc::SYS_read), Call::OnDescriptor);
        assert_eq!(call_kind(libc::SYS_getpid), Call::Known(WaitKind::Other));
    }

    #[test]
    fn descriptors_name_their_waits() {
        assert_eq!(descriptor_kind(b"socket:[123]"), WaitKind::Socket);
        assert_eq!(descriptor_kind(b"pipe:[456]"), WaitKind::Pipe);
        assert_eq!(descriptor_kind(b"/dev/pts/3"), WaitKind::Terminal);
        assert_eq!(descriptor_kind(b"/home/u/data.csv"), WaitKind::Other);
    }
}
