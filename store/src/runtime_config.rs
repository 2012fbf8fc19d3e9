//! Per-tenant overrides in a file of their own, read again while the
//! store runs: Loki's `runtime_config` (`file`, `period`) with the same
//! file shape:
//!
//! ```yaml
//! overrides:
//!   team-a:
//!     ingestion_rate_mb: 10
//!     retention_period: 744h
//! ```
//!
//! `file` may list several files separated by commas; they are merged
//! from left to right, key by key. A tenant's limits are `limits`, then
//! its entry in the main file's `overrides` (still accepted), then its
//! entry here: a key set here wins, a key left out keeps the value below.
//! Loki's other sections of the file (`configs`, `multi_kv_config`) are
//! accepted and not used; any other key is an error, as in Loki.
//!
//! The file is read at start (an error stops the start, as a bad main file
//! does) and then every `period`. A reading that fails (a key unknown, a
//! value out of range, the file missing) is logged once per distinct
//! error, counted in `larch_runtime_config_reloads_total{outcome="failure"}`
//! and `larch_runtime_config_last_reload_successful` 0, and changes
//! nothing: the last good overrides stay in force.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, LimitsOverride};
use crate::metrics::Metrics;
use larch_config::HumanDuration;

/// `runtime_config` in the main file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Files of per-tenant overrides, comma-separated; empty (the
    /// default) for none.
    pub file: String,
    /// How often the files are read again (Loki: 10s).
    pub period: HumanDuration,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            file: String::new(),
            // Loki's default: quick enough for an operator who just
            // edited a limit, and a negligible cost (one small file).
            period: HumanDuration::from_secs(10),
        }
    }
}

impl RuntimeConfig {
    /// The files, in merge order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.file
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect()
    }
}

/// The overrides read from the runtime files, shared by every clone of a
/// [`Config`] (it is not part of the configuration file: `#[serde(skip)]`).
#[derive(Clone, Default)]
pub struct RuntimeOverrides {
    current: Arc<RwLock<Arc<BTreeMap<String, LimitsOverride>>>>,
}

impl RuntimeOverrides {
    /// The overrides in force.
    pub fn get(&self) -> Arc<BTreeMap<String, LimitsOverride>> {
        self.current.read().clone()
    }

    /// `tenant`'s entry, if any.
    pub fn tenant(&self, tenant: &str) -> Option<LimitsOverride> {
        self.current.read().get(tenant).copied()
    }

    /// Puts `overrides` in force.
    pub fn set(&self, overrides: BTreeMap<String, LimitsOverride>) {
        *self.current.write() = Arc::new(overrides);
    }
}

impl std::fmt::Debug for RuntimeOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.get().iter()).finish()
    }
}

impl PartialEq for RuntimeOverrides {
    /// Equal when the same overrides are in force.
    fn eq(&self, other: &RuntimeOverrides) -> bool {
        self.get() == other.get()
    }
}

/// One runtime file, as Loki shapes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RuntimeFile {
    overrides: BTreeMap<String, LimitsOverride>,
    /// Loki's per-tenant `configs` (stream creation logging and the like):
    /// accepted, not used.
    #[allow(dead_code)] // read for its errors only
    configs: Option<IgnoredAny>,
    /// Loki's ring key-value store switch: accepted, not used.
    #[allow(dead_code)] // read for its errors only
    multi_kv_config: Option<IgnoredAny>,
}

/// Reads and merges the runtime files of `config` and checks every
/// tenant's resulting limits; the overrides, or the error naming the file
/// and the key.
pub fn load(config: &Config) -> Result<BTreeMap<String, LimitsOverride>, ConfigError> {
    let mut merged: BTreeMap<String, LimitsOverride> = BTreeMap::new();
    for path in config.runtime_config.files() {
        let file: RuntimeFile = crate::config::read_yaml_file(&path)?;
        for (tenant, o) in file.overrides {
            let entry = merged.entry(tenant).or_default();
            *entry = o.over(entry);
        }
    }
    for (tenant, o) in &merged {
        let key = format!("runtime_config overrides.{tenant}");
        crate::tenant::TenantId::new(tenant).map_err(|e| ConfigError::Invalid {
            key: key.clone(),
            reason: format!("not a valid tenant id: {e}"),
        })?;
        let base = match config.overrides.get(tenant) {
            Some(inline) => inline.apply(&config.limits),
            None => config.limits.clone(),
        };
        crate::config::validate_limits(&key, &o.apply(&base))?;
    }
    Ok(merged)
}

/// Reads the runtime files once and puts their overrides in force; for
/// the start, where an error stops the store. Nothing to do without files.
pub fn load_initial(config: &Config) -> Result<(), ConfigError> {
    if config.runtime_config.files().is_empty() {
        return Ok(());
    }
    config.runtime.set(load(config)?);
    Ok(())
}

/// Reads the runtime files every `runtime_config.period` until `stop`
/// turns true; see the module documentation for what a failure does.
/// Returns at once when there are no files.
pub async fn reload_loop(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if config.runtime_config.files().is_empty() {
        return;
    }
    let period = config
        .runtime_config
        .period
        .0
        .max(std::time::Duration::from_millis(100));
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let c = config.clone();
        let outcome = match tokio::task::spawn_blocking(move || load(&c)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the reading task failed: {e}")),
        };
        match outcome {
            Ok(overrides) => {
                metrics
                    .runtime_config_reloads
                    .get_or_create(&vec![("outcome", "success".to_string())])
                    .inc();
                metrics.runtime_config_last_reload_successful.set(1);
                if last_error.take().is_some() {
                    tracing::info!(file = %config.runtime_config.file, "The runtime configuration file is valid again.");
                }
                if *config.runtime.get() != overrides {
                    tracing::info!(
                        file = %config.runtime_config.file,
                        tenants = overrides.len(),
                        "Runtime overrides reloaded."
                    );
                    config.runtime.set(overrides);
                }
            }
            Err(e) => {
                metrics
                    .runtime_config_reloads
                    .get_or_create(&vec![("outcome", "failure".to_string())])
                    .inc();
                metrics.runtime_config_last_reload_successful.set(0);
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::error!(error = %e, "Cannot reload the runtime configuration; the last good overrides stay in force.");
                    last_error = Some(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_config::ByteSize;

    fn config_with(dir: &std::path::Path, files: &[(&str, &str)]) -> Config {
        let mut names = Vec::new();
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            names.push(p.display().to_string());
        }
        let mut c: Config = larch_config::yaml::from_str(
            "limits:\n  max_line_size: 100B\n  retention_period: 24h\noverrides:\n  team-a:\n    max_line_size: 200B\n    ingestion_rate_mb: 7\n",
        )
        .unwrap();
        c.runtime_config.file = names.join(",");
        c
    }

    #[test]
    fn runtime_entries_win_key_by_key_over_inline_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let c = config_with(
            dir.path(),
            &[
                (
                    "a.yaml",
                    "overrides:\n  team-a:\n    max_line_size: 300B\n  team-b:\n    retention_period: 48h\n",
                ),
                (
                    "b.yaml",
                    "configs: {}\nmulti_kv_config: {primary: memberlist}\noverrides:\n  team-b:\n    max_line_size: 50B\n",
                ),
            ],
        );
        load_initial(&c).unwrap();
        let a = c.limits_for("team-a");
        assert_eq!(a.max_line_size, ByteSize(300));
        assert_eq!(a.ingestion_rate_mb, 7.0, "inline key kept");
        let b = c.limits_for("team-b");
        assert_eq!(b.max_line_size, ByteSize(50));
        assert_eq!(b.retention_period, HumanDuration::from_secs(48 * 3600));
        assert_eq!(c.limits_for("team-c").max_line_size, ByteSize(100));
        // Clones share the overrides in force.
        let clone = c.clone();
        c.runtime.set(BTreeMap::new());
        assert_eq!(clone.limits_for("team-b").max_line_size, ByteSize(100));
    }

    #[test]
    fn bad_files_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = config_with(
            dir.path(),
            &[("r.yaml", "overrides:\n  t:\n    max_lines: 1\n")],
        );
        let e = load(&c).unwrap_err().to_string();
        assert!(
            e.contains("r.yaml") && e.contains("overrides.t.max_lines"),
            "{e}"
        );
        let c = config_with(dir.path(), &[("r.yaml", "limits: {}\n")]);
        assert!(load(&c).is_err());
        let c = config_with(
            dir.path(),
            &[("r.yaml", "overrides:\n  t:\n    ingestion_rate_mb: 0\n")],
        );
        let e = load(&c).unwrap_err().to_string();
        assert!(e.contains("overrides.t.ingestion_rate_mb"), "{e}");
        let c = config_with(dir.path(), &[("r.yaml", "overrides:\n  a/b: {}\n")]);
        assert!(load(&c).is_err());
        let mut c = Config::default();
        c.runtime_config.file = dir.path().join("missing.yaml").display().to_string();
        assert!(load_initial(&c).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reloads_keep_the_last_good_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, "overrides:\n  t:\n    max_line_size: 1KB\n").unwrap();
        let mut c = Config::default();
        c.runtime_config.file = path.display().to_string();
        c.runtime_config.period = HumanDuration::from_secs(1);
        load_initial(&c).unwrap();
        let c = Arc::new(c);
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(reload_loop(c.clone(), metrics.clone(), rx));
        let wait = || async {
            // The reading runs on the blocking pool, which paused time
            // does not wait for: give it real time.
            for _ in 0..200 {
                tokio::time::advance(std::time::Duration::from_millis(100)).await;
                tokio::task::yield_now().await;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        };
        std::fs::write(&path, "overrides:\n  t:\n    max_line_size: 2KB\n").unwrap();
        wait().await;
        assert_eq!(c.limits_for("t").max_line_size, ByteSize(2000));
        assert_eq!(metrics.runtime_config_last_reload_successful.get(), 1);
        std::fs::write(&path, "overrides:\n  t:\n    max_line_sise: 3KB\n").unwrap();
        wait().await;
        assert_eq!(
            c.limits_for("t").max_line_size,
            ByteSize(2000),
            "last good kept"
        );
        assert_eq!(metrics.runtime_config_last_reload_successful.get(), 0);
        let text = metrics.render();
        assert!(
            text.contains("larch_runtime_config_reloads_total{outcome=\"failure\"}"),
            "{text}"
        );
        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
