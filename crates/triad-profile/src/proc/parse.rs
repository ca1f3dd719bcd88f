//! Parsers for the `/proc` files the sampler reads: each takes the file's bytes and returns
//! the fields it needs, or `None` for anything malformed (a file can change under the reader).

/// Whether an executable's name (or path: the last component counts) names a Python interpreter.
pub(crate) fn is_python_name(name: &[u8]) -> bool {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    base.starts_with(b"python")
}

/// `pid (comm) S …` → (comm, state). The comm may hold spaces and parentheses, so the state is
/// found after the *last* `)`.
pub(super) fn parse_stat(buf: &[u8]) -> Option<(&[u8], u8)> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    let comm = buf.get(open + 1..close)?;
    let state = *buf.get(close + 2)?;
    Some((comm, state))
}

/// `cpu_ns run_delay_ns timeslices`.
pub(super) fn parse_schedstat(buf: &[u8]) -> Option<(u64, u64)> {
    let mut it = buf
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let cpu = parse_u64(it.next()?)?;
    let delay = parse_u64(it.next()?)?;
    Some((cpu, delay))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Status {
    pub(super) rss_kib: Option<u64>,
    pub(super) voluntary: Option<u64>,
    pub(super) involuntary: Option<u64>,
}

pub(super) fn parse_status(buf: &[u8]) -> Status {
    let mut st = Status::default();
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let slot = match key {
            b"VmRSS" => &mut st.rss_kib,
            b"voluntary_ctxt_switches" => &mut st.voluntary,
            b"nonvoluntary_ctxt_switches" => &mut st.involuntary,
            _ => continue,
        };
        *slot = first_number(value);
    }
    st
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Io {
    pub(super) rchar: u64,
    pub(super) wchar: u64,
    pub(super) syscr: u64,
    pub(super) syscw: u64,
    pub(super) read_bytes: u64,
    pub(super) write_bytes: u64,
}

pub(super) fn parse_io(buf: &[u8]) -> Option<Io> {
    let mut io = Io::default();
    let mut any = false;
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let slot = match &line[..colon] {
            b"rchar" => &mut io.rchar,
            b"wchar" => &mut io.wchar,
            b"syscr" => &mut io.syscr,
            b"syscw" => &mut io.syscw,
            b"read_bytes" => &mut io.read_bytes,
            b"write_bytes" => &mut io.write_bytes,
            _ => continue,
        };
        if let Some(v) = first_number(&line[colon + 1..]) {
            *slot = v;
            any = true;
        }
    }
    any.then_some(io)
}

/// Space-separated pids (a `children` file), pushed onto `out`.
pub(super) fn parse_pids(buf: &[u8], out: &mut Vec<i32>) {
    for w in buf.split(|b| b.is_ascii_whitespace()) {
        if let Some(pid) = parse_u64(w).and_then(|p| i32::try_from(p).ok()) {
            out.push(pid);
        }
    }
}

/// `/proc/PID/task/TID/syscall` → the call's number and first argument, for a thread blocked
/// in a system call; `None` when it is running (`running`), outside a call (`-1 …`) or the
/// file is malformed.
pub(super) fn parse_syscall(buf: &[u8]) -> Option<(i64, u64)> {
    let mut it = buf
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let nr = i64::try_from(parse_u64(it.next()?)?).ok()?;
    let arg = it.next()?;
    let hex = arg.strip_prefix(b"0x")?;
    let arg0 = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((nr, arg0))
}

fn first_number(s: &[u8]) -> Option<u64> {
    s.split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .and_then(parse_u64)
}

fn parse_u64(w: &[u8]) -> Option<u64> {
    if w.is_empty() || w.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in w {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let (comm, state) = parse_stat(b"123 (a) b (c)) R 1 2 3").unwrap();
        assert_eq!(comm, b"a) b (c)");
        assert_eq!(state, b'R');
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn schedstat_status_io_children() {
        assert_eq!(parse_schedstat(b"123456 789 10\n"), Some((123456, 789)));
        assert_eq!(parse_schedstat(b""), None);
        let st = parse_status(
            b"Name:\tx\nVmRSS:\t    2048 kB\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t3\n",
        );
        assert_eq!(
            st,
            Status {
                rss_kib: Some(2048),
                voluntary: Some(7),
                involuntary: Some(3)
            }
        );
        let io = parse_io(b"rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n").unwrap();
        assert_eq!(
            io,
            Io {
                rchar: 10,
                wchar: 20,
                syscr: 1,
                syscw: 2,
                read_bytes: 4096,
                write_bytes: 8192
            }
        );
        assert_eq!(parse_io(b""), None);
        assert_eq!(
            parse_syscall(b"45 0x4 0x7f 0x10 0x0 0x0 0x0 0x7ffd 0x7f12\n"),
            Some((45, 4))
        );
        assert_eq!(parse_syscall(b"running\n"), None);
        assert_eq!(parse_syscall(b"-1 0x7ffd 0x7f12\n"), None);
        let mut v = vec![];
        parse_pids(b"12 34 \n", &mut v);
        assert_eq!(v, [12, 34]);
    }

    #[test]
    fn python_names() {
        assert!(is_python_name(b"python3"));
        assert!(is_python_name(b"/usr/bin/python3.11"));
        assert!(!is_python_name(b"/usr/bin/python-dir/sh"));
        assert!(!is_python_name(b"sh"));
    }
}
