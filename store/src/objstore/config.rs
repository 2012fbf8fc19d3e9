//! The keys of object storage and roles: `target`, `storage` and `read`
//! (`compactor` is in [`crate::config`]); see ARCHITECTURE.md, "Object
//! storage and roles".

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use larch_config::{ByteSize, HumanDuration};

use crate::tls_client::ClientTlsConfig;

/// Which parts of the store a process runs (`--target`, `target:`), as
/// Loki's simple-scalable roles.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Everything in one process: the single-node store.
    #[default]
    All,
    /// Pushes, WAL, heads, flushes to the bucket, gRPC answers for its
    /// unflushed data.
    Write,
    /// The query API from the bucket and the write nodes; no WAL.
    Read,
    /// The compactor: merges, retention.
    Backend,
}

impl Target {
    /// Its name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::All => "all",
            Target::Write => "write",
            Target::Read => "read",
            Target::Backend => "backend",
        }
    }

    /// Whether it takes pushes (and keeps a WAL).
    pub fn writes(self) -> bool {
        matches!(self, Target::All | Target::Write)
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        match s {
            "all" => Ok(Target::All),
            "write" => Ok(Target::Write),
            "read" => Ok(Target::Read),
            "backend" => Ok(Target::Backend),
            other => Err(format!(
                "unknown target {other:?}: expected all, write, read or backend"
            )),
        }
    }
}

/// Where flushed data lives.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local directory (`storage.filesystem.dir`).
    #[default]
    Filesystem,
    /// AWS S3 or an S3-compatible service.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// `storage:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `filesystem` (default), `s3`, `gcs` or `azure`.
    pub backend: Backend,
    /// The filesystem backend.
    pub filesystem: FilesystemConfig,
    /// The S3 backend.
    pub s3: S3Config,
    /// The GCS backend.
    pub gcs: GcsConfig,
    /// The Azure backend.
    pub azure: AzureConfig,
    /// The local cache of remote objects.
    pub cache: CacheConfig,
}

/// `storage.filesystem`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    /// Root of the bucket; empty (the default): `data_dir`, so chunk
    /// objects are the single-node store's chunk files.
    pub dir: PathBuf,
}

/// `storage.s3`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL (`http://127.0.0.1:9000`); empty for AWS.
    pub endpoint: String,
    /// Bucket name (required).
    pub bucket: String,
    /// Region; empty: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    /// Access key; empty: the standard AWS credential chain
    /// (environment, web identity, instance profile).
    pub access_key_id: String,
    /// Secret key; see `access_key_id`.
    pub secret_access_key: String,
    /// Session token, with temporary credentials.
    pub session_token: String,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO, Ceph and
    /// most S3-compatible services want (default false: virtual hosts).
    pub force_path_style: bool,
    /// Allow `http://` endpoints (default: allowed when the endpoint says
    /// `http://`).
    pub insecure: bool,
}

/// `storage.gcs`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    /// Bucket name (required).
    pub bucket: String,
    /// Path of a service account key file; empty: the application
    /// default credentials (workload identity, metadata server). A key
    /// whose `gcs_base_url` says `http://` (an emulator, a gateway) is
    /// reached over plain HTTP, as an S3 or Azure endpoint that says so.
    pub service_account_path: String,
}

/// `storage.azure`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// Storage account (required).
    pub account: String,
    /// Container (required).
    pub container: String,
    /// Access key; empty: workload identity or the environment.
    pub access_key: String,
    /// Endpoint URL, for emulators; empty for Azure.
    pub endpoint: String,
}

/// `storage.cache`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Directory; empty (the default): `<data_dir>/cache`.
    pub dir: PathBuf,
    /// Most bytes kept (default 10GiB); 0 disables the cache.
    pub max_size: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            dir: PathBuf::new(),
            max_size: ByteSize(10 << 30),
        }
    }
}

/// `read:`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadConfig {
    /// gRPC addresses (`host:9095`) of the write nodes whose unflushed data
    /// a read node merges into every answer.
    pub write_nodes: Vec<String>,
    /// How often a read node lists the bucket's index segments (default
    /// 15s).
    pub index_refresh_period: HumanDuration,
    /// Longest a write node may take to answer (default 30s).
    pub write_node_timeout: HumanDuration,
    /// A file holding the token sent to the write nodes
    /// (`Authorization: Bearer`), read before every request, for write
    /// nodes with `auth.tokens_file`: an administrator's token. Unset: no
    /// token is sent.
    pub write_node_token_file: Option<PathBuf>,
    /// TLS of the connections to `write_nodes` (gRPC), with the keys of
    /// `cluster.tls`: on when `tls_enabled` is true, when the store's own
    /// `tls.cert_file` is set (the write nodes then serve TLS too, as the
    /// members of a cluster do), or when an address says `https://`;
    /// `tls_ca_path` is then required. The client certificate and key are
    /// read again when they change (checked every `index_refresh_period`).
    /// Not used with `cluster:`, whose members are reached through
    /// `cluster.tls`.
    pub write_node_tls: ClientTlsConfig,
    /// Largest answer accepted from a write node (default 256MiB): one
    /// stream's unflushed blocks, decoded. A larger one fails the query
    /// with a message naming this key rather than taking the memory.
    pub write_node_max_message_size: ByteSize,
    /// Use the term indexes the compactor writes to choose the blocks a
    /// needle query reads (default true); false reads every chunk's block
    /// filters, as for chunks no term index covers.
    pub term_index: bool,
}

impl Default for ReadConfig {
    fn default() -> ReadConfig {
        ReadConfig {
            write_nodes: Vec::new(),
            index_refresh_period: HumanDuration::from_secs(15),
            write_node_timeout: HumanDuration::from_secs(30),
            write_node_token_file: None,
            write_node_tls: ClientTlsConfig::default(),
            write_node_max_message_size: ByteSize(256 << 20),
            term_index: true,
        }
    }
}

impl ReadConfig {
    /// Whether the write nodes are reached over TLS, for a store whose own
    /// listeners serve TLS when `serves_tls` (see `write_node_tls`).
    pub fn write_node_tls_on(&self, serves_tls: bool) -> bool {
        serves_tls
            || self.write_node_tls.tls_enabled
            || self
                .write_nodes
                .iter()
                .any(|a| a.trim_start().starts_with("https://"))
    }

    /// A `read.write_nodes` client that cannot work: `(key, reason)`.
    /// `serves_tls`: the store's own `tls.cert_file` is set; `cluster`:
    /// `cluster:` is on (the members are then reached through
    /// `cluster.tls`).
    pub fn check_write_node_tls(
        &self,
        serves_tls: bool,
        cluster: bool,
    ) -> Result<(), (&'static str, String)> {
        let key = "read.write_node_tls";
        if cluster {
            if self.write_node_tls.is_set() {
                return Err((
                    key,
                    "is not used with cluster:, whose members are reached through cluster.tls: set the keys there".into(),
                ));
            }
            return Ok(());
        }
        self.write_node_tls.validate(key).map_err(|e| (key, e))?;
        if self.write_nodes.is_empty() {
            return Ok(());
        }
        if !self.write_node_tls_on(serves_tls) {
            if self.write_node_tls.is_set() {
                return Err((
                    "read.write_node_tls.tls_enabled",
                    "is false while other read.write_node_tls keys are set: set it to true to reach the write nodes over TLS".into(),
                ));
            }
            return Ok(());
        }
        if let Some(a) = self
            .write_nodes
            .iter()
            .find(|a| a.trim_start().starts_with("http://"))
        {
            return Err((
                "read.write_nodes",
                format!(
                    "{a:?} says http:// while the write nodes are reached over TLS (read.write_node_tls, or this store's tls.cert_file)"
                ),
            ));
        }
        if self.write_node_tls.tls_ca_path.is_none() {
            return Err((
                "read.write_node_tls.tls_ca_path",
                "is required when the write nodes are reached over TLS (read.write_node_tls.tls_enabled, an https:// address, or this store's tls.cert_file): their certificates are checked against it".into(),
            ));
        }
        Ok(())
    }
}

/// A storage configuration that cannot be used: `(key, reason)`.
pub fn validate(storage: &StorageConfig) -> Result<(), (String, String)> {
    let need = |key: &str, v: &str| {
        if v.trim().is_empty() {
            Err((
                key.to_string(),
                "must be set for this storage.backend".to_string(),
            ))
        } else {
            Ok(())
        }
    };
    match storage.backend {
        Backend::Filesystem => Ok(()),
        Backend::S3 => {
            need("storage.s3.bucket", &storage.s3.bucket)?;
            if storage.s3.access_key_id.is_empty() != storage.s3.secret_access_key.is_empty() {
                return Err((
                    "storage.s3.secret_access_key".to_string(),
                    "access_key_id and secret_access_key are set together, or both left empty for the AWS credential chain".to_string(),
                ));
            }
            Ok(())
        }
        Backend::Gcs => need("storage.gcs.bucket", &storage.gcs.bucket),
        Backend::Azure => {
            need("storage.azure.account", &storage.azure.account)?;
            need("storage.azure.container", &storage.azure.container)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_back() {
        for t in [Target::All, Target::Write, Target::Read, Target::Backend] {
            assert_eq!(t.as_str().parse::<Target>().unwrap(), t);
        }
        assert!("reader".parse::<Target>().unwrap_err().contains("expected"));
    }

    #[test]
    fn write_node_tls_is_checked_as_cluster_tls() {
        let mut r = ReadConfig {
            write_nodes: vec!["w0:9095".into()],
            ..ReadConfig::default()
        };
        // Plain, unless the store serves TLS itself.
        r.check_write_node_tls(false, false).unwrap();
        assert!(!r.write_node_tls_on(false));
        let (key, _) = r.check_write_node_tls(true, false).unwrap_err();
        assert_eq!(key, "read.write_node_tls.tls_ca_path");
        // Keys given while TLS is off say so.
        r.write_node_tls.tls_ca_path = Some("ca.pem".into());
        let (key, _) = r.check_write_node_tls(false, false).unwrap_err();
        assert_eq!(key, "read.write_node_tls.tls_enabled");
        r.write_node_tls.tls_enabled = true;
        r.check_write_node_tls(false, false).unwrap();
        assert!(r.write_node_tls_on(false));
        // A certificate needs its key.
        r.write_node_tls.tls_cert_path = Some("c.pem".into());
        let (_, why) = r.check_write_node_tls(false, false).unwrap_err();
        assert!(why.contains("read.write_node_tls.tls_cert_path"), "{why}");
        r.write_node_tls.tls_key_path = Some("k.pem".into());
        r.check_write_node_tls(false, false).unwrap();
        // An http:// address cannot be reached over TLS.
        r.write_nodes.push("http://w1:9095".into());
        let (key, _) = r.check_write_node_tls(false, false).unwrap_err();
        assert_eq!(key, "read.write_nodes");
        // https:// alone turns TLS on.
        let r = ReadConfig {
            write_nodes: vec!["https://w0:9095".into()],
            ..ReadConfig::default()
        };
        assert!(r.write_node_tls_on(false));
        let (key, _) = r.check_write_node_tls(false, false).unwrap_err();
        assert_eq!(key, "read.write_node_tls.tls_ca_path");
        // With cluster:, cluster.tls is the one used.
        let mut r = ReadConfig::default();
        r.check_write_node_tls(true, true).unwrap();
        r.write_node_tls.tls_enabled = true;
        let (key, _) = r.check_write_node_tls(false, true).unwrap_err();
        assert_eq!(key, "read.write_node_tls");
    }

    #[test]
    fn s3_needs_a_bucket_and_both_keys() {
        let mut s = StorageConfig {
            backend: Backend::S3,
            ..StorageConfig::default()
        };
        assert_eq!(validate(&s).unwrap_err().0, "storage.s3.bucket");
        s.s3.bucket = "larch".into();
        validate(&s).unwrap();
        s.s3.access_key_id = "k".into();
        assert_eq!(validate(&s).unwrap_err().0, "storage.s3.secret_access_key");
        s.s3.secret_access_key = "s".into();
        validate(&s).unwrap();
    }
}
