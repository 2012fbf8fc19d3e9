//! The alert state file (`<data_dir>/ruler/alerts.json`): every group's
//! alerts, so that a restarted store picks up where it stopped: a firing
//! alert stays firing with its start time (Alertmanager sees the same
//! alert, nobody is paged again), a pending one keeps counting its `for`
//! from when it became active.
//!
//! ```json
//! {"version":1,"saved_at_ms":1700000000000,
//!  "groups":[{"tenant":"fake","namespace":"ns","group":"g",
//!             "rules":[{"alert":"A","expr":"...","alerts":[{"labels":[["alertname","A"]],...}]}]}]}
//! ```
//!
//! Written whole (temp file, fsync, rename, fsync of the directory) at
//! most once a second while alerts change, and when the ruler stops. State
//! older than `for_outage_tolerance` is not restored. A file that cannot
//! be read is moved aside (`alerts.json.damaged`), reported, and the ruler
//! starts without state: alerts become pending again, nothing is deleted.
//!
//! With `ruler.storage.type: bucket` the same JSON is the object
//! `ruler-state/<instance>.json` of the store's bucket instead ([`StateStore`]),
//! so that a ruler whose data directory is gone (a pod rescheduled with an
//! empty volume) takes its alerts back. A state that cannot be read because
//! the bucket does not answer is neither replaced nor dropped: the ruler
//! asks again at its next poll and writes no state until it has read it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use super::eval::GroupKey;
use crate::objstore::Bucket;

/// The format's version.
const VERSION: u32 = 1;

/// The file.
#[derive(Serialize, Deserialize)]
pub struct StateFile {
    /// The format version (1).
    pub version: u32,
    /// When it was written (Unix ms).
    pub saved_at_ms: i64,
    /// Every group with alerts.
    pub groups: Vec<SavedGroup>,
}

/// One group's alerts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedGroup {
    /// Tenant.
    pub tenant: String,
    /// Namespace.
    pub namespace: String,
    /// Group name.
    pub group: String,
    /// Its alerting rules with alerts.
    pub rules: Vec<SavedRule>,
}

/// One rule's alerts; restored to the rule of the same name and
/// expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedRule {
    /// The alert's name.
    pub alert: String,
    /// The rule's query.
    pub expr: String,
    /// Its alerts.
    pub alerts: Vec<Alert>,
}

/// The path of the state file under `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("ruler").join("alerts.json")
}

/// Saved alerts by group.
pub type Restored = HashMap<GroupKey, Vec<SavedRule>>;

/// Reads the state saved at `path`, by group; nothing when there is none,
/// when it is older than `tolerance_ms` at `now_ms`, or when it cannot be
/// read (then it is moved aside and the reason logged).
pub fn load(path: &Path, now_ms: i64, tolerance_ms: i64) -> Restored {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "Cannot read the ruler's alert state; alerts start over as pending.");
            return HashMap::new();
        }
    };
    decode(&text, &path.display().to_string(), now_ms, tolerance_ms).unwrap_or_else(|e| {
        let aside = path.with_extension("json.damaged");
        let moved = std::fs::rename(path, &aside);
        tracing::error!(
            path = %path.display(),
            kept_as = %aside.display(),
            moved = moved.is_ok(),
            error = %e,
            "The ruler's alert state file is damaged; alerts start over as pending."
        );
        HashMap::new()
    })
}

/// The saved state in `text` (from `place`); an error only if it is
/// damaged. Logs why a readable state is not restored.
fn decode(
    text: &[u8],
    place: &str,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<Restored, serde_json::Error> {
    let file: StateFile = serde_json::from_slice(text)?;
    if file.version != VERSION {
        tracing::error!(
            place,
            version = file.version,
            "Unknown version of the ruler's alert state; alerts start over as pending."
        );
        return Ok(HashMap::new());
    }
    if now_ms.saturating_sub(file.saved_at_ms) > tolerance_ms {
        tracing::info!(
            saved_secs_ago = now_ms.saturating_sub(file.saved_at_ms) / 1000,
            "The ruler's alert state is older than for_outage_tolerance; alerts start over as pending."
        );
        return Ok(HashMap::new());
    }
    Ok(file
        .groups
        .into_iter()
        .map(|g| {
            (
                GroupKey {
                    tenant: g.tenant,
                    namespace: g.namespace,
                    group: g.group,
                },
                g.rules,
            )
        })
        .collect())
}

/// Where the alert state is kept.
pub enum StateStore {
    /// A file (`<data_dir>/ruler/alerts.json`).
    File(PathBuf),
    /// An object of the store's bucket.
    Bucket {
        /// The bucket.
        bucket: Arc<Bucket>,
        /// `ruler-state/<instance>.json`.
        key: String,
    },
}

/// The key of a ruler's state in the bucket.
pub fn object_key(instance: &str) -> String {
    format!(
        "ruler-state/{}.json",
        super::storage::encode_key_part(instance)
    )
}

impl StateStore {
    /// Where, for messages.
    pub fn describe(&self) -> String {
        match self {
            StateStore::File(p) => p.display().to_string(),
            StateStore::Bucket { bucket, key } => format!("{key} in {}", bucket.describe()),
        }
    }

    /// The saved state (blocking I/O). An error only when the bucket did
    /// not answer: the state may exist, so it must not be replaced yet.
    pub fn load(&self, now_ms: i64, tolerance_ms: i64) -> Result<Restored, std::io::Error> {
        match self {
            StateStore::File(p) => Ok(load(p, now_ms, tolerance_ms)),
            StateStore::Bucket { bucket, key } => {
                let text = match bucket.get_uncached(key) {
                    Ok(t) => t,
                    Err(e) if crate::objstore::bucket::is_not_found(&e) => {
                        return Ok(HashMap::new());
                    }
                    Err(e) => return Err(e),
                };
                Ok(decode(&text, key, now_ms, tolerance_ms).unwrap_or_else(|e| {
                    // Kept aside as it was; the next save replaces the original.
                    let aside = format!("{key}.damaged");
                    let kept = bucket.put(&aside, text.clone());
                    tracing::error!(
                        key = %key,
                        kept_as = %aside,
                        kept = kept.is_ok(),
                        error = %e,
                        "The ruler's alert state object is damaged; alerts start over as pending."
                    );
                    HashMap::new()
                }))
            }
        }
    }

    /// Writes the state whole (blocking I/O); the old one stays if
    /// anything fails.
    pub fn save(&self, file: &StateFile) -> std::io::Result<()> {
        match self {
            StateStore::File(p) => save(p, file),
            StateStore::Bucket { bucket, key } => {
                let bytes = serde_json::to_vec(file)?;
                bucket.put(key, bytes.into())
            }
        }
    }
}

/// Writes the state atomically; the old file stays if anything fails.
pub fn save(path: &Path, file: &StateFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        serde_json::to_writer(&mut f, file)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn file(saved_at_ms: i64) -> StateFile {
        let mut active = BTreeMap::new();
        super::super::alert::update(
            &mut active,
            vec![super::super::alert::Instance {
                labels: vec![("alertname".into(), "A".into())],
                annotations: BTreeMap::new(),
                value: 3.0,
            }],
            1000,
            0,
            0,
        );
        StateFile {
            version: VERSION,
            saved_at_ms,
            groups: vec![SavedGroup {
                tenant: "fake".into(),
                namespace: "ns".into(),
                group: "g".into(),
                rules: vec![SavedRule {
                    alert: "A".into(),
                    expr: "vector(1)".into(),
                    alerts: active.into_values().collect(),
                }],
            }],
        }
    }

    #[test]
    fn saves_and_restores_within_the_tolerance() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        assert!(load(&p, 0, 1000).is_empty());
        save(&p, &file(10_000)).unwrap();
        let got = load(&p, 10_500, 1000);
        let key = GroupKey {
            tenant: "fake".into(),
            namespace: "ns".into(),
            group: "g".into(),
        };
        assert_eq!(got[&key][0].alerts[0].fired_at, Some(1000));
        assert!(load(&p, 12_000, 1000).is_empty(), "too old");
        assert!(!p.with_extension("json.tmp").exists());
    }

    #[test]
    fn state_in_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = Arc::new(
            Bucket::open(
                &crate::objstore::config::StorageConfig::default(),
                dir.path(),
                crate::objstore::metrics::ObjstoreMetrics::default(),
            )
            .unwrap(),
        );
        let store = StateStore::Bucket {
            bucket: bucket.clone(),
            key: object_key("larch-backend-0"),
        };
        assert!(store.load(0, 1000).unwrap().is_empty());
        store.save(&file(10_000)).unwrap();
        assert!(dir.path().join("ruler-state/larch-backend-0.json").exists());
        assert_eq!(store.load(10_500, 1000).unwrap().len(), 1);
        bucket
            .put("ruler-state/larch-backend-0.json", "{\"vers".into())
            .unwrap();
        assert!(store.load(10_500, 1000).unwrap().is_empty());
        assert!(
            dir.path()
                .join("ruler-state/larch-backend-0.json.damaged")
                .exists()
        );
    }

    #[test]
    fn a_damaged_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"{\"version\":1,\"saved_at").unwrap();
        assert!(load(&p, 0, 1000).is_empty());
        assert!(!p.exists());
        assert!(p.with_extension("json.damaged").exists());
    }
}
