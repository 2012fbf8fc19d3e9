//! What every Larch process says about itself on `/metrics`, beside its
//! own metrics: the `process_*` figures Prometheus' client libraries
//! export (CPU, memory, file descriptors, start time, threads), read from
//! `/proc/self` at each scrape, and `larch_build_info`.
//!
//! The store and the agent both register [`register`] in their
//! `prometheus-client` registry, so both serve these series under the
//! same names, which the dashboards and alerts in `deploy/` use. A crate
//! of its own because the agent must not depend on the store, and no crate
//! both depend on is about metrics (`larch-go` is Go compatibility,
//! `larch-proto` wire types). It depends on `prometheus-client` alone.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `process_cpu_seconds_total` | counter | user and system CPU time |
//! | `process_resident_memory_bytes` | gauge | resident set size (`VmRSS`) |
//! | `process_virtual_memory_bytes` | gauge | virtual memory size |
//! | `process_open_fds` | gauge | open file descriptors |
//! | `process_max_fds` | gauge | the soft limit on open file descriptors |
//! | `process_start_time_seconds` | gauge | start time, Unix seconds |
//! | `process_threads` | gauge | threads |
//! | `larch_build_info{version, revision, program}` | gauge | always 1 |
//!
//! A figure `/proc` cannot give (another kernel, a field missing) is left
//! out of the scrape rather than reported as 0. Times in `/proc/self/stat`
//! are in clock ticks: the kernel's `USER_HZ`, 100 on every Linux
//! architecture Larch runs on (reading `sysconf` would need unsafe code,
//! which the workspace forbids).

#![warn(missing_docs)]

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The revision the binary was built from: `LARCH_REVISION` at build
/// time, else `unknown`.
pub const REVISION: &str = match option_env!("LARCH_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// Registers the process figures and `larch_build_info{program}` in
/// `registry`. `version` is the binary's version (its
/// `CARGO_PKG_VERSION`).
pub fn register(registry: &mut Registry, program: &'static str, version: &'static str) {
    registry.register_collector(Box::new(ProcessCollector { program, version }));
}

/// Figures of the running process, from `/proc/self`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size in bytes.
    pub resident_bytes: Option<i64>,
    /// Virtual memory size in bytes.
    pub virtual_bytes: Option<i64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<i64>,
    /// Start time, Unix seconds.
    pub start_time_seconds: Option<f64>,
    /// Threads.
    pub threads: Option<i64>,
}

impl ProcessStats {
    /// Reads the figures of this process.
    pub fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // Fields after the command (which may hold spaces and parentheses):
        // index 0 is the state (field 3 of proc(5)).
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        ProcessStats {
            // utime (14) + stime (15).
            cpu_seconds: field(14)
                .zip(field(15))
                .map(|(u, s)| (u + s) / TICKS_PER_SECOND),
            resident_bytes: rss_kib.map(|k| k.saturating_mul(1024)),
            // vsize (23), bytes.
            virtual_bytes: field(23).map(|v| v as i64),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as i64),
            max_fds: max_open_files(),
            // starttime (22), ticks after boot.
            start_time_seconds: field(22).zip(boot).map(|(t, b)| b + t / TICKS_PER_SECOND),
            // num_threads (20).
            threads: field(20).map(|v| v as i64),
        }
    }
}

/// The soft `Max open files` limit of `/proc/self/limits`.
fn max_open_files() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    // "unlimited" is not a number Prometheus' clients report either.
    soft.parse().ok()
}

#[derive(Debug)]
struct ProcessCollector {
    program: &'static str,
    version: &'static str,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: Option<i64>) -> std::fmt::Result {
    if let Some(v) = v {
        let g = ConstGauge::new(v);
        g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    Ok(())
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = ProcessStats::read();
        if let Some(cpu) = s.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?)?;
        }
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes,
        )?;
        gauge(
            &mut e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes,
        )?;
        gauge(
            &mut e,
            "process_open_fds",
            "Number of open file descriptors.",
            s.open_fds,
        )?;
        gauge(
            &mut e,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            s.max_fds,
        )?;
        if let Some(t) = s.start_time_seconds {
            let g = ConstGauge::new(t);
            g.encode(e.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                None,
                g.metric_type(),
            )?)?;
        }
        gauge(
            &mut e,
            "process_threads",
            "Number of OS threads.",
            s.threads,
        )?;
        let mut m = e.encode_descriptor(
            "larch_build_info",
            "Always 1; the labels say which program, version and revision runs.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", self.version),
            ("revision", REVISION),
            ("program", self.program),
        ];
        m.encode_family(&labels)?.encode_gauge(&1i64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_this_process() {
        let _keep: Vec<std::fs::File> = (0..3)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let s = ProcessStats::read();
        assert!(s.cpu_seconds.unwrap() >= 0.0);
        assert!(s.resident_bytes.unwrap() > 1 << 20, "{s:?}");
        assert!(
            s.virtual_bytes.unwrap() >= s.resident_bytes.unwrap(),
            "{s:?}"
        );
        assert!(s.open_fds.unwrap() >= 4, "{s:?}");
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap(), "{s:?}");
        assert!(s.threads.unwrap() >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn renders_in_the_registry() {
        let mut r = Registry::default();
        register(&mut r, "larch-test", "1.2.3");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        for want in [
            "# TYPE process_cpu_seconds counter",
            "process_cpu_seconds_total ",
            "# TYPE process_resident_memory_bytes gauge",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "process_threads ",
            "larch_build_info{version=\"1.2.3\",revision=\"unknown\",program=\"larch-test\"} 1",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
        assert!(out.ends_with("# EOF\n"));
        // One period at the end of every help text, as the registry's own.
        for help in out.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }
}
