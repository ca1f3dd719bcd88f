//! The `Name:   123 kB` lines of `/proc` files (`status`, `meminfo`, `smaps_rollup`), in bytes.

/// The value of the `name:   123 kB` line of `text`, in bytes: `None` when there is no such
/// line, it does not parse, or its bytes would pass `u64::MAX`.
///
/// A name is matched whole: `Private` does not match a `Private_Clean:` line.
pub(crate) fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kib.checked_mul(1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_are_read_in_bytes_by_their_whole_name() {
        let status = "Name:\tx\nVmSize:\t  8000 kB\nPrivate_Clean:  4 kB\nVmRSS:\t   200 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(200 * 1024));
        assert_eq!(kib_field(status, "VmSize"), Some(8000 * 1024));
        assert_eq!(kib_field(status, "Private"), None);
        assert_eq!(kib_field(status, "VmHWM"), None);
        assert_eq!(kib_field("MemAvailable: lots\n", "MemAvailable"), None);
        assert_eq!(kib_field("Name: x", "Name"), None, "no kB");
    }

    proptest! {
        #[test]
        fn bytes_are_exact_or_none_never_wrapped(kib in any::<u64>()) {
            let exact = u128::from(kib) * 1024;
            let read = kib_field(&format!("VmRSS:\t{kib} kB\n"), "VmRSS");
            prop_assert_eq!(read.map(u128::from), (exact <= u128::from(u64::MAX)).then_some(exact));
        }
    }
}
