//! What Linux reports about a process in `/proc`: memory, I/O, open files
//! and CPU time. Each function panics if the process or field is missing.

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The peak resident set size (`VmHWM`) of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmHWM") * 1024
}

/// A field of `/proc/<pid>/io` (`rchar`, `read_bytes`...).
pub fn io(pid: u32, field: &str) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/io: {e}"));
    io.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/io"))
}

/// The number of open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// CPU seconds in user space and in the kernel used by the children this
/// process has waited for.
pub fn children_cpu_split() -> (f64, f64) {
    // cutime and cstime of /proc/self/stat (getrusage would need unsafe
    // FFI, which the workspace forbids).
    stat_seconds("self", 13, 14)
}

/// CPU seconds in user space and in the kernel used so far by a running
/// process (all its threads, including those that have ended).
pub fn cpu_split(pid: u32) -> (f64, f64) {
    stat_seconds(&pid.to_string(), 11, 12)
}

/// Two clock-tick fields of `/proc/<pid>/stat`, in seconds, counted from
/// the state (index 0), the field after the command.
fn stat_seconds(pid: &str, user: usize, system: usize) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The command, in parentheses, may hold spaces: count from after it.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The kernel's USER_HZ is 100 on every Linux we run on.
    (ticks(user) / 100.0, ticks(system) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process() {
        let me = std::process::id();
        let rss = status_kib(me, "VmRSS");
        assert!(rss > 0);
        // Read after: the peak can only have grown.
        assert!(peak_rss_bytes(me) >= rss * 1024);
        assert!(io(me, "rchar") > 0);
        assert!(open_fds(me) >= 3);
        let (user, system) = children_cpu_split();
        assert!(user >= 0.0 && system >= 0.0);
        // 30 ms of spinning is counted as at least one 10 ms clock tick.
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let (user, system) = cpu_split(me);
        assert!(user + system >= 0.01, "{user} + {system}");
    }
}
