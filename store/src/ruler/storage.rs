//! Where rule groups are kept: the [`RuleStore`] trait, and its directory
//! implementation [`DirRuleStore`] (`<rule_path>/<tenant>/<namespace>.yaml`,
//! one rule file per namespace, Loki's local layout).
//!
//! The ruler reads every tenant's groups through the trait and the rules
//! API writes through it, so another backend (an object-storage bucket)
//! plugs in without touching either. Every method does blocking I/O: call
//! them on the blocking pool.
//!
//! A file written through the API is replaced whole: temp file, fsync,
//! rename, fsync of the directory, so a crash leaves the old file or the
//! new one, never half of one; a failed write leaves the old file. Files
//! edited by hand are read as they are; one that does not parse is
//! reported (and the ruler keeps running what it last read from it).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use larch_rules::RuleGroup;
use parking_lot::Mutex;

use crate::tenant::TenantId;

/// A rule store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file holds no valid rule file; its errors, located.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, `line:column: message`, joined by `; `.
        message: String,
    },
}

fn io(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A tenant's namespaces as found: each with its groups, or why it could
/// not be read.
pub type TenantRules = BTreeMap<String, Result<Vec<RuleGroup>, String>>;

/// Rule groups per tenant and namespace.
pub trait RuleStore: Send + Sync + 'static {
    /// Tenants that have a namespace.
    fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;
    /// Every namespace of `tenant` with its groups (empty if none).
    fn load(&self, tenant: &TenantId) -> Result<TenantRules, StoreError>;
    /// Creates or replaces (by name) a group in a namespace, creating the
    /// namespace if needed.
    fn put_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &RuleGroup,
    ) -> Result<(), StoreError>;
    /// Removes a group; false if it did not exist. A namespace left empty
    /// is removed.
    fn delete_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &str,
    ) -> Result<bool, StoreError>;
    /// Removes a namespace and its groups; false if it did not exist.
    fn delete_namespace(&self, tenant: &TenantId, namespace: &str) -> Result<bool, StoreError>;
}

/// Longest namespace name in bytes (its file name adds `.yaml`; file
/// names are at most 255 bytes).
pub const MAX_NAMESPACE_BYTES: usize = 200;

/// Largest rule file read (a file past it is reported, not read).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Whether `ns` can name a namespace (a file in the tenant's directory).
/// The message is Loki's for what would leave the directory.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if ns.is_empty() {
        return Err("invalid namespace: must not be empty".to_string());
    }
    if ns == "." || ns == ".." || ns.contains('/') || ns.contains('\\') {
        return Err("invalid namespace: path traversal not allowed".to_string());
    }
    if ns.starts_with('.') {
        return Err("invalid namespace: must not start with '.'".to_string());
    }
    if ns.len() > MAX_NAMESPACE_BYTES || ns.chars().any(char::is_control) {
        return Err(format!(
            "invalid namespace: at most {MAX_NAMESPACE_BYTES} bytes, no control characters"
        ));
    }
    Ok(())
}

/// Rule files in a directory: `<dir>/<tenant>/<namespace>.yaml` (or
/// `.yml`).
pub struct DirRuleStore {
    dir: PathBuf,
    /// Serialises read-modify-write of files.
    write: Mutex<()>,
    /// Parsed files by path, with the size and modification time they
    /// had, so an unchanged file is not parsed again.
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

struct Cached {
    len: u64,
    modified: Option<SystemTime>,
    groups: Result<Vec<RuleGroup>, String>,
}

impl DirRuleStore {
    /// The store of `dir` (created when the first group is written).
    pub fn new(dir: impl Into<PathBuf>) -> DirRuleStore {
        DirRuleStore {
            dir: dir.into(),
            write: Mutex::new(()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(tenant.as_str())
    }

    /// The file of a namespace: the existing `.yaml` or `.yml`, else the
    /// `.yaml` to create.
    fn file(&self, tenant: &TenantId, ns: &str) -> PathBuf {
        let d = self.tenant_dir(tenant);
        let yml = d.join(format!("{ns}.yml"));
        let yaml = d.join(format!("{ns}.yaml"));
        if !yaml.exists() && yml.exists() {
            yml
        } else {
            yaml
        }
    }

    /// Reads one file, from the cache when it has not changed.
    fn read(&self, path: &Path) -> Result<Result<Vec<RuleGroup>, String>, StoreError> {
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        let modified = meta.modified().ok();
        if let Some(c) = self.cache.lock().get(path)
            && c.len == meta.len()
            && c.modified == modified
            && modified.is_some()
        {
            return Ok(c.groups.clone());
        }
        let groups = if meta.len() > MAX_FILE_BYTES {
            Err(format!(
                "larger than {MAX_FILE_BYTES} bytes; split it into namespaces"
            ))
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
            larch_rules::read_file(&text).map_err(|errors| {
                errors
                    .iter()
                    .map(|e| e.located())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        };
        self.cache.lock().insert(
            path.to_path_buf(),
            Cached {
                len: meta.len(),
                modified,
                groups: groups.clone(),
            },
        );
        Ok(groups)
    }

    fn read_for_update(&self, path: &Path) -> Result<Vec<RuleGroup>, StoreError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(path, e)),
            Ok(_) => self.read(path)?.map_err(|message| StoreError::Invalid {
                path: path.to_path_buf(),
                message,
            }),
        }
    }

    fn write_file(&self, path: &Path, groups: &[RuleGroup]) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(&self.dir);
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
        let _ = std::fs::remove_file(&tmp);
        let text = larch_rules::write_file(groups);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path, e));
        }
        self.cache.lock().remove(path);
        sync_dir(dir)
    }

    fn remove(&self, path: &Path) -> Result<(), StoreError> {
        std::fs::remove_file(path).map_err(|e| io(path, e))?;
        self.cache.lock().remove(path);
        sync_dir(path.parent().unwrap_or(&self.dir))
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// The namespace a directory entry names, if it is a rule file.
fn namespace_of(name: &str) -> Option<&str> {
    if name.starts_with('.') {
        return None;
    }
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .filter(|ns| !ns.is_empty())
}

impl RuleStore for DirRuleStore {
    fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
            Ok(e) => e,
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            match TenantId::new(&name) {
                Ok(t) => out.push(t),
                Err(e) => tracing::warn!(
                    dir = %entry.path().display(),
                    error = %e,
                    "A directory in the rule path is not named after a tenant; skipped."
                ),
            }
        }
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(out)
    }

    fn load(&self, tenant: &TenantId) -> Result<TenantRules, StoreError> {
        let dir = self.tenant_dir(tenant);
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io(&dir, e)),
            Ok(e) => e,
        };
        let mut out = TenantRules::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(ns) = namespace_of(&name) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            // `a.yaml` wins over `a.yml`.
            if name.ends_with(".yml") && dir.join(format!("{ns}.yaml")).exists() {
                continue;
            }
            out.insert(ns.to_string(), self.read(&entry.path())?);
        }
        Ok(out)
    }

    fn put_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &RuleGroup,
    ) -> Result<(), StoreError> {
        let _w = self.write.lock();
        let path = self.file(tenant, namespace);
        let mut groups = self.read_for_update(&path)?;
        match groups.iter_mut().find(|g| g.name == group.name) {
            Some(g) => *g = group.clone(),
            None => groups.push(group.clone()),
        }
        self.write_file(&path, &groups)
    }

    fn delete_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &str,
    ) -> Result<bool, StoreError> {
        let _w = self.write.lock();
        let path = self.file(tenant, namespace);
        let mut groups = self.read_for_update(&path)?;
        let before = groups.len();
        groups.retain(|g| g.name != group);
        if groups.len() == before {
            return Ok(false);
        }
        if groups.is_empty() {
            self.remove(&path)?;
        } else {
            self.write_file(&path, &groups)?;
        }
        Ok(true)
    }

    fn delete_namespace(&self, tenant: &TenantId, namespace: &str) -> Result<bool, StoreError> {
        let _w = self.write.lock();
        let path = self.file(tenant, namespace);
        if !path.exists() {
            return Ok(false);
        }
        self.remove(&path)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, record: &str) -> RuleGroup {
        larch_rules::read_group(&format!(
            "name: {name}\nrules:\n  - record: {record}\n    expr: sum(rate({{a=\"b\"}}[1m]))\n"
        ))
        .unwrap()
    }

    #[test]
    fn put_load_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirRuleStore::new(dir.path().join("rules"));
        let t = TenantId::new("team-a").unwrap();
        assert!(s.tenants().unwrap().is_empty());
        assert!(s.load(&t).unwrap().is_empty());
        s.put_group(&t, "ns1", &group("g1", "r1")).unwrap();
        s.put_group(&t, "ns1", &group("g2", "r2")).unwrap();
        s.put_group(&t, "ns1", &group("g1", "r3")).unwrap();
        s.put_group(&t, "ns 2", &group("g", "r")).unwrap();
        assert_eq!(s.tenants().unwrap(), vec![t.clone()]);
        let rules = s.load(&t).unwrap();
        assert_eq!(rules.len(), 2);
        let ns1 = rules["ns1"].as_ref().unwrap();
        assert_eq!(ns1.len(), 2);
        assert_eq!(ns1[0].rules[0].name(), "r3", "replaced in place");
        assert!(dir.path().join("rules/team-a/ns 2.yaml").exists());
        assert!(s.delete_group(&t, "ns1", "g1").unwrap());
        assert!(!s.delete_group(&t, "ns1", "g1").unwrap());
        assert!(s.delete_group(&t, "ns1", "g2").unwrap());
        assert!(!dir.path().join("rules/team-a/ns1.yaml").exists());
        assert!(s.delete_namespace(&t, "ns 2").unwrap());
        assert!(!s.delete_namespace(&t, "ns 2").unwrap());
        assert!(s.load(&t).unwrap().is_empty());
        // No temp file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("rules/team-a"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn hand_written_files_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let t = TenantId::new("fake").unwrap();
        let td = dir.path().join("fake");
        std::fs::create_dir_all(&td).unwrap();
        std::fs::write(
            td.join("good.yml"),
            larch_rules::write_file(&[group("g", "r")]),
        )
        .unwrap();
        std::fs::write(
            td.join("bad.yaml"),
            "groups:\n  - name: x\n    rules: [{}]\n",
        )
        .unwrap();
        std::fs::write(td.join(".hidden.yaml"), "not: [rules").unwrap();
        std::fs::write(td.join("notes.txt"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("not a tenant/")).unwrap();
        let s = DirRuleStore::new(dir.path());
        assert_eq!(s.tenants().unwrap(), vec![t.clone()]);
        let rules = s.load(&t).unwrap();
        assert_eq!(rules.keys().collect::<Vec<_>>(), ["bad", "good"]);
        assert!(rules["good"].is_ok());
        let e = rules["bad"].as_ref().unwrap_err();
        assert!(
            e.starts_with("3:13: one of 'record' or 'alert' must be set"),
            "{e}"
        );
        // A group put into a broken file does not overwrite it.
        assert!(matches!(
            s.put_group(&t, "bad", &group("g", "r")),
            Err(StoreError::Invalid { .. })
        ));
        // Writing to a .yml namespace keeps its file.
        s.put_group(&t, "good", &group("g2", "r")).unwrap();
        assert!(!td.join("good.yaml").exists());
        assert_eq!(s.load(&t).unwrap()["good"].as_ref().unwrap().len(), 2);
    }

    #[test]
    fn namespaces() {
        for ok in ["a", "team a", "ns-1.rules", "ünï"] {
            check_namespace(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", ".hidden", "a\nb"] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_namespace("../etc").unwrap_err(),
            "invalid namespace: path traversal not allowed"
        );
        assert!(check_namespace(&"x".repeat(201)).is_err());
    }
}
