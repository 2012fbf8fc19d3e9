//! Where rule groups are kept: the [`RuleStore`] trait, its directory
//! implementation [`DirRuleStore`] (`<rule_path>/<tenant>/<namespace>.yaml`,
//! one rule file per namespace, Loki's local layout), and its bucket
//! implementation [`BucketRuleStore`] (`rules/<tenant>/<namespace>.yaml`
//! objects in the store's bucket, `ruler.storage.type: bucket`).
//!
//! The ruler reads every tenant's groups through the trait and the rules
//! API writes through it. Every method does blocking I/O: call them on
//! the blocking pool.
//!
//! A file written through the API is replaced whole: temp file, fsync,
//! rename, fsync of the directory, so a crash leaves the old file or the
//! new one, never half of one; a failed write leaves the old file. An
//! object is replaced by one PUT, whole or not at all. Files (and
//! objects) edited by hand are read as they are; one that does not parse
//! is reported (and the ruler keeps running what it last read from it).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use larch_rules::RuleGroup;
use parking_lot::Mutex;

use crate::objstore::Bucket;
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
    /// Reading, listing or writing an object of the bucket failed (the
    /// error names the operation and the key).
    #[error("{0}")]
    Object(std::io::Error),
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

/// Drops the group named `group` from a namespace's `groups`, then
/// `remove`s the namespace if no group is left or `rewrite`s it with the
/// rest. False, with nothing written, when the namespace has no such
/// group. Both stores delete a group this way.
fn delete_from(
    mut groups: Vec<RuleGroup>,
    group: &str,
    remove: impl FnOnce() -> Result<(), StoreError>,
    rewrite: impl FnOnce(&[RuleGroup]) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let before = groups.len();
    groups.retain(|g| g.name != group);
    if groups.len() == before {
        return Ok(false);
    }
    if groups.is_empty() {
        remove()?;
    } else {
        rewrite(&groups)?;
    }
    Ok(true)
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
        delete_from(
            self.read_for_update(&path)?,
            group,
            || self.remove(&path),
            |rest| self.write_file(&path, rest),
        )
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

/// Where rule objects are in the bucket: `rules/<tenant>/<namespace>.yaml`.
pub const BUCKET_PREFIX: &str = "rules/";

/// A key part with every byte outside `[A-Za-z0-9_.-]` written `=XX`
/// (hex), so that every backend stores, lists and returns the same key
/// (object stores escape some characters of their own, differently).
pub fn encode_key_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The text [`encode_key_part`] made `s` from; none if `s` is not one of
/// its outputs.
pub fn decode_key_part(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The key of a namespace's object.
pub fn object_key(tenant: &TenantId, ns: &str) -> String {
    format!(
        "{BUCKET_PREFIX}{}/{}.yaml",
        encode_key_part(tenant.as_str()),
        encode_key_part(ns)
    )
}

/// The tenant and namespace a listed key names, if it is a rule object.
fn parse_key(key: &str) -> Option<(TenantId, String)> {
    let rest = key.strip_prefix(BUCKET_PREFIX)?;
    let (t, file) = rest.split_once('/')?;
    let ns = file.strip_suffix(".yaml")?;
    if ns.contains('/') {
        return None;
    }
    let tenant = TenantId::new(&decode_key_part(t)?).ok()?;
    let ns = decode_key_part(ns)?;
    check_namespace(&ns).ok()?;
    Some((tenant, ns))
}

/// Rule objects in the store's bucket: `rules/<tenant>/<namespace>.yaml`,
/// each a rule file, shared by every node of the bucket. Each poll lists
/// the tenant's objects and reads again only those whose size, time or
/// entity tag changed; a write is one PUT of the whole namespace.
pub struct BucketRuleStore {
    bucket: Arc<Bucket>,
    /// Serialises this node's read-modify-write of objects.
    write: Mutex<()>,
    /// Parsed objects by key, with what the listing said of them.
    cache: Mutex<HashMap<String, CachedObject>>,
}

struct CachedObject {
    size: u64,
    modified_ms: i64,
    e_tag: Option<String>,
    groups: Result<Vec<RuleGroup>, String>,
}

impl BucketRuleStore {
    /// The rule objects of `bucket`.
    pub fn new(bucket: Arc<Bucket>) -> BucketRuleStore {
        BucketRuleStore {
            bucket,
            write: Mutex::new(()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reads one listed object, from the cache when it has not changed;
    /// none if it went away since the listing.
    fn read(
        &self,
        listed: &crate::objstore::bucket::Listed,
    ) -> Result<Option<Result<Vec<RuleGroup>, String>>, StoreError> {
        if let Some(c) = self.cache.lock().get(&listed.key)
            && c.size == listed.size
            && c.modified_ms == listed.modified_ms
            && c.e_tag == listed.e_tag
        {
            return Ok(Some(c.groups.clone()));
        }
        let groups = if listed.size > MAX_FILE_BYTES {
            Err(format!(
                "larger than {MAX_FILE_BYTES} bytes; split it into namespaces"
            ))
        } else {
            match self.bucket.get_uncached(&listed.key) {
                Ok(bytes) => parse_rule_file(&bytes),
                Err(e) if crate::objstore::bucket::is_not_found(&e) => return Ok(None),
                Err(e) => return Err(StoreError::Object(e)),
            }
        };
        self.cache.lock().insert(
            listed.key.clone(),
            CachedObject {
                size: listed.size,
                modified_ms: listed.modified_ms,
                e_tag: listed.e_tag.clone(),
                groups: groups.clone(),
            },
        );
        Ok(Some(groups))
    }

    /// The groups of a namespace's object as it is now (empty if there
    /// is none); an object that does not parse is an error, never
    /// overwritten.
    fn read_for_update(&self, key: &str) -> Result<Option<Vec<RuleGroup>>, StoreError> {
        match self.bucket.get_uncached(key) {
            Err(e) if crate::objstore::bucket::is_not_found(&e) => Ok(None),
            Err(e) => Err(StoreError::Object(e)),
            Ok(bytes) => parse_rule_file(&bytes)
                .map(Some)
                .map_err(|message| StoreError::Invalid {
                    path: PathBuf::from(key),
                    message,
                }),
        }
    }

    fn write_object(&self, key: &str, groups: &[RuleGroup]) -> Result<(), StoreError> {
        let text = larch_rules::write_file(groups);
        self.bucket
            .put(key, bytes::Bytes::from(text))
            .map_err(StoreError::Object)?;
        self.cache.lock().remove(key);
        Ok(())
    }

    fn remove_object(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.delete(key).map_err(StoreError::Object)?;
        self.cache.lock().remove(key);
        Ok(())
    }
}

/// A rule file's groups, or its errors located and joined.
fn parse_rule_file(bytes: &[u8]) -> Result<Vec<RuleGroup>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    larch_rules::read_file(text).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.located())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

impl RuleStore for BucketRuleStore {
    fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let listed = self
            .bucket
            .list(BUCKET_PREFIX)
            .map_err(StoreError::Object)?;
        let mut out: Vec<TenantId> = listed
            .iter()
            .filter_map(|l| parse_key(&l.key).map(|(t, _)| t))
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        Ok(out)
    }

    fn load(&self, tenant: &TenantId) -> Result<TenantRules, StoreError> {
        let prefix = format!("{BUCKET_PREFIX}{}/", encode_key_part(tenant.as_str()));
        let listed = self.bucket.list(&prefix).map_err(StoreError::Object)?;
        let mut out = TenantRules::new();
        for l in &listed {
            let Some((t, ns)) = parse_key(&l.key) else {
                continue;
            };
            if &t != tenant {
                continue;
            }
            if let Some(groups) = self.read(l)? {
                out.insert(ns, groups);
            }
        }
        // Objects gone from the listing leave the cache.
        self.cache
            .lock()
            .retain(|k, _| !k.starts_with(&prefix) || listed.iter().any(|l| &l.key == k));
        Ok(out)
    }

    fn put_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &RuleGroup,
    ) -> Result<(), StoreError> {
        let _w = self.write.lock();
        let key = object_key(tenant, namespace);
        let mut groups = self.read_for_update(&key)?.unwrap_or_default();
        match groups.iter_mut().find(|g| g.name == group.name) {
            Some(g) => *g = group.clone(),
            None => groups.push(group.clone()),
        }
        self.write_object(&key, &groups)
    }

    fn delete_group(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &str,
    ) -> Result<bool, StoreError> {
        let _w = self.write.lock();
        let key = object_key(tenant, namespace);
        let Some(groups) = self.read_for_update(&key)? else {
            return Ok(false);
        };
        delete_from(
            groups,
            group,
            || self.remove_object(&key),
            |rest| self.write_object(&key, rest),
        )
    }

    fn delete_namespace(&self, tenant: &TenantId, namespace: &str) -> Result<bool, StoreError> {
        let _w = self.write.lock();
        let key = object_key(tenant, namespace);
        match self.bucket.get_uncached(&key) {
            Err(e) if crate::objstore::bucket::is_not_found(&e) => return Ok(false),
            Err(e) => return Err(StoreError::Object(e)),
            Ok(_) => {}
        }
        self.remove_object(&key)?;
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

    fn fs_bucket(dir: &Path) -> Arc<Bucket> {
        let storage = crate::objstore::config::StorageConfig::default();
        Arc::new(
            Bucket::open(
                &storage,
                dir,
                crate::objstore::metrics::ObjstoreMetrics::default(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn bucket_put_load_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = fs_bucket(dir.path());
        let s = BucketRuleStore::new(b.clone());
        let other = BucketRuleStore::new(b);
        let t = TenantId::new("team(a)*").unwrap();
        assert!(s.tenants().unwrap().is_empty());
        s.put_group(&t, "ns 1 ü", &group("g1", "r1")).unwrap();
        s.put_group(&t, "ns 1 ü", &group("g2", "r2")).unwrap();
        assert_eq!(other.tenants().unwrap(), vec![t.clone()]);
        let rules = other.load(&t).unwrap();
        assert_eq!(rules["ns 1 ü"].as_ref().unwrap().len(), 2);
        // A change by one node is seen by the other at its next load.
        s.put_group(&t, "ns 1 ü", &group("g1", "r3")).unwrap();
        let rules = other.load(&t).unwrap();
        assert_eq!(rules["ns 1 ü"].as_ref().unwrap()[0].rules[0].name(), "r3");
        assert!(
            dir.path()
                .join("rules/team=28a=29=2A/ns=201=20=C3=BC.yaml")
                .exists()
        );
        assert!(other.delete_group(&t, "ns 1 ü", "g1").unwrap());
        assert!(!s.delete_group(&t, "ns 1 ü", "g1").unwrap());
        assert!(s.delete_namespace(&t, "ns 1 ü").unwrap());
        assert!(!s.delete_namespace(&t, "ns 1 ü").unwrap());
        assert!(other.load(&t).unwrap().is_empty());
    }

    #[test]
    fn key_parts_round_trip() {
        for s in ["a", "team a", "ü/..", "=41", "a.b-c_d", ""] {
            let e = encode_key_part(s);
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-=".contains(&b))
            );
            assert_eq!(decode_key_part(&e).as_deref(), Some(s));
        }
        assert_eq!(decode_key_part("=4"), None);
        assert_eq!(decode_key_part("=ZZ"), None);
        assert_eq!(decode_key_part("=FF"), None);
    }
}
