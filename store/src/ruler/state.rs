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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use super::eval::GroupKey;

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

/// Reads the state saved at `path`, by group; nothing when there is none,
/// when it is older than `tolerance_ms` at `now_ms`, or when it cannot be
/// read (then it is moved aside and the reason logged).
pub fn load(path: &Path, now_ms: i64, tolerance_ms: i64) -> HashMap<GroupKey, Vec<SavedRule>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "Cannot read the ruler's alert state; alerts start over as pending.");
            return HashMap::new();
        }
    };
    let file: StateFile = match serde_json::from_slice(&text) {
        Ok(f) => f,
        Err(e) => {
            let aside = path.with_extension("json.damaged");
            let moved = std::fs::rename(path, &aside);
            tracing::error!(
                path = %path.display(),
                kept_as = %aside.display(),
                moved = moved.is_ok(),
                error = %e,
                "The ruler's alert state file is damaged; alerts start over as pending."
            );
            return HashMap::new();
        }
    };
    if file.version != VERSION {
        tracing::error!(path = %path.display(), version = file.version, "Unknown version of the ruler's alert state; alerts start over as pending.");
        return HashMap::new();
    }
    if now_ms - file.saved_at_ms > tolerance_ms {
        tracing::info!(
            saved_secs_ago = (now_ms - file.saved_at_ms) / 1000,
            "The ruler's alert state is older than for_outage_tolerance; alerts start over as pending."
        );
        return HashMap::new();
    }
    file.groups
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
        .collect()
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
