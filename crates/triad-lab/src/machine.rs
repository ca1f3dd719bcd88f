//! The machine header printed on every output: CPU, cores, memory, kernel, whether it is a
//! virtual machine, and the Rust and Python versions. Read from `/proc`, `/sys` and `uname`.

use std::fs;

use serde::{Deserialize, Serialize};

/// What the lab ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// CPUs this process may run on (its affinity mask).
    pub cores: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// `uname -sr`, such as `Linux 6.1.0-18-amd64`.
    pub kernel: String,
    /// The hypervisor, if the machine is a VM (`None`: bare metal as far as can be told).
    pub virtualization: Option<String>,
    /// `rustc --version` of the compiler that built the lab.
    pub rust: String,
    /// `python3 --version`, if the CPython baselines ran (`None`: turned off, or no `python3`;
    /// the run's notes say which).
    pub python: Option<String>,
    /// Load average over the minute before the run (a busy machine gives noisier figures).
    pub load_average_1m: f64,
}

impl Machine {
    /// Reads this machine. Fields that cannot be read are left empty or zero.
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            cpu_model: cpu_model(&cpuinfo),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_bytes(&fs::read_to_string("/proc/meminfo").unwrap_or_default()),
            kernel: kernel(),
            virtualization: virtualization(&cpuinfo),
            rust: env!("TRIAD_LAB_RUSTC_VERSION").to_owned(),
            python: None,
            load_average_1m: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
        }
    }

    /// One line per fact, for the top of every report.
    pub fn header_lines(&self) -> Vec<String> {
        let vm = match &self.virtualization {
            Some(kind) => format!("yes ({kind})"),
            None => "no (as far as can be told)".to_owned(),
        };
        vec![
            format!("CPU: {} × {} cores", self.cpu_model, self.cores),
            format!(
                "Memory: {:.1} GiB; kernel: {}; VM: {vm}; load at start: {:.2}",
                self.memory_bytes as f64 / (1u64 << 30) as f64,
                self.kernel,
                self.load_average_1m
            ),
            match &self.python {
                Some(python) => format!("Rust: {}; Python: {python}", self.rust),
                // Why there is no CPython (off, or not found) is the run's first note.
                None => format!("Rust: {}", self.rust),
            },
        ]
    }
}

fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            matches!(key.trim(), "model name" | "Model" | "cpu model").then(|| value.trim())
        })
        .unwrap_or("unknown CPU")
        .to_owned()
}

fn memory_bytes(meminfo: &str) -> u64 {
    crate::procfs::kib_field(meminfo, "MemTotal").unwrap_or(0)
}

fn kernel() -> String {
    let uname = rustix::system::uname();
    format!(
        "{} {}",
        uname.sysname().to_string_lossy(),
        uname.release().to_string_lossy()
    )
}

/// The hypervisor's name from DMI, or "hypervisor" when only the CPU flag says so.
fn virtualization(cpuinfo: &str) -> Option<String> {
    const KNOWN: [(&str, &str); 8] = [
        ("QEMU", "QEMU/KVM"),
        ("KVM", "KVM"),
        ("VMware", "VMware"),
        ("VirtualBox", "VirtualBox"),
        ("innotek", "VirtualBox"),
        ("Xen", "Xen"),
        ("Microsoft Corporation", "Hyper-V"),
        ("Amazon EC2", "Amazon EC2"),
    ];
    let dmi: String = ["sys_vendor", "product_name", "bios_vendor"]
        .iter()
        .filter_map(|file| fs::read_to_string(format!("/sys/class/dmi/id/{file}")).ok())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((_, name)) = KNOWN.iter().find(|(needle, _)| dmi.contains(needle)) {
        return Some((*name).to_owned());
    }
    if dmi.contains("Google") {
        return Some("Google Compute Engine".to_owned());
    }
    let flagged = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
    flagged.then(|| "hypervisor".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpuinfo_and_meminfo() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: Example CPU @ 3.0GHz\nflags\t\t: fpu hypervisor sse\n";
        assert_eq!(cpu_model(cpuinfo), "Example CPU @ 3.0GHz");
        assert_eq!(
            memory_bytes("MemTotal:       2048 kB\nMemFree: 1 kB\n"),
            2048 * 1024
        );
        assert!(virtualization(cpuinfo).is_some());
    }

    #[test]
    fn this_machine_has_a_header() {
        let machine = Machine::detect();
        assert!(machine.cores >= 1);
        assert!(machine.memory_bytes > 0);
        assert!(machine.kernel.starts_with("Linux"));
        assert!(machine.rust.starts_with("rustc"), "{}", machine.rust);
        assert_eq!(machine.header_lines().len(), 3);
    }
}
