//! Reading a Loki configuration file (`--config.file=loki.yaml`): the
//! keys that mean something to a single Larch store are translated into
//! the store's own configuration; every other key is listed, once, in a
//! warning at start (and by `--check-config`), so that nothing is dropped
//! without a word.
//!
//! A file is Loki's when one of its top-level keys exists only in Loki's
//! configuration (`server`, `common`, `schema_config`, `storage_config`,
//! `limits_config`, ...); otherwise it is read as Larch's own. What is
//! translated:
//!
//! | Loki | Larch |
//! |---|---|
//! | `auth_enabled` (Loki's default: **true**) | `auth_enabled` |
//! | `server.http_listen_address`, `http_listen_port` | `http_addr` |
//! | `server.grpc_listen_address`, `grpc_listen_port` | `grpc_addr` |
//! | `server.log_level`, `server.log_format` | `--log-level`, `--log-format` unless given |
//! | `common.path_prefix` | `data_dir` |
//! | `common.storage.filesystem`, `storage_config.filesystem` | `storage.backend: filesystem` (`data_dir` is the chunk directory's parent when there is no `path_prefix`) |
//! | `common.storage.s3`, `storage_config.aws` (`storage_config` wins): `bucketnames` (one bucket), `endpoint` (with `insecure`: `http://`; an AWS host name is AWS's default), `region`, `access_key_id`, `secret_access_key`, `session_token`, `s3forcepathstyle` | `storage.backend: s3`, `storage.s3.*` |
//! | `common.replication_factor: 1` | (a single store) |
//! | `limits_config.<key>` for every key Larch's `limits` has (`max_global_streams_per_user` is `max_streams_per_tenant`); `query_timeout` | `limits.<key>`; `query.timeout` |
//! | `ingester.chunk_block_size`, `chunk_target_size`, `max_chunk_age`, `chunk_idle_period`, `flush_check_period`, `flush_on_shutdown`, `concurrent_flushes`, `chunk_encoding` (`snappy`, `lz4` and its `lz4-<size>` variants, `zstd`, `none`; not `gzip`, `flate`) | `ingester.*` |
//! | `compactor.retention_enabled` (Loki's default: false), `compaction_interval`, `delete_request_cancel_period`, `delete_max_interval` | `compactor.retention_enabled`, `ingester.compaction_interval` and `compactor.interval`, `compactor.delete_request_cancel_period`, `compactor.delete_max_interval` |
//! | `querier.max_concurrent` | `query.max_concurrent` |
//! | `runtime_config.file`, `period` | `runtime_config` |
//! | `ruler.enable_api`, `evaluation_interval`, `poll_interval`, `alertmanager_url`, `alertmanager_client` (`basic_auth_username`, `basic_auth_password`, `type`, `credentials`), `external_url`, `datasource_uid`, `external_labels`, `notification_queue_capacity`, `notification_timeout`, `resend_delay`, `for_outage_tolerance` | `ruler.*` |
//! | the first of `ruler.storage.local.directory` (`type: local`), `ruler_storage.local.directory` (`backend: local`), `common.storage.filesystem.rules_directory` | `ruler.rule_path` (`<dir>/<tenant>/<namespace>.yaml`, as Loki's local rule store) |
//! | `ruler.storage.type` or `ruler_storage.backend` naming an object store (`s3`, `gcs`, `azure`...) | `ruler.storage.type: bucket` (`rules/<tenant>/<namespace>.yaml` in the store's bucket) |
//! | `ruler.remote_write.enabled`, `add_org_id_header`, `client` and `clients.<name>`: `url`, `remote_timeout`, `headers`, `basic_auth.{username,password}`, `queue_config.{capacity,max_samples_per_send,min_backoff,max_backoff,retry_on_http_429}` | `ruler.remote_write.*` (clients only when `enabled`: Loki discards the samples otherwise, Larch refuses clients it would not use) |
//! | `target`: `all`, `write`, `read`, `backend` | `target` (other targets are refused) |
//!
//! Loki's `ruler.rule_path` is not where rule groups are kept but the
//! scratch copy Loki's ruler writes for its evaluator; it is listed as
//! having no effect. Rule groups in object storage (`ruler.storage.type`
//! or `ruler_storage.backend` other than `local`) become
//! `ruler.storage.type: bucket`: the store's own bucket (`storage:`),
//! under `rules/`; Loki's bucket block for them is listed as unused.
//!
//! Values keep Loki's notation (`168h`, `256KB`); a value the store
//! cannot take is reported with its Loki key.
//!
//! Where chunks live is the last `schema_config.configs[].object_store`,
//! or else the object store configured under `common.storage` or
//! `storage_config`, or else the local disk. S3 (`s3`, `aws`) and the
//! filesystem are translated; any other store (`gcs`, `azure`, `swift`,
//! a named store...) and any S3 setting that cannot be translated (several
//! `bucketnames`, the `s3://` URL form) is refused, naming the key: writing
//! chunks to local disk while the operator expects a bucket would lose
//! them the day the disk goes. Larch's own `storage:` block configures
//! GCS and Azure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Top-level keys only Loki's configuration has.
const LOKI_ONLY: &[&str] = &[
    "server",
    "common",
    "schema_config",
    "storage_config",
    "limits_config",
    "querier",
    "query_range",
    "frontend",
    "frontend_worker",
    "query_scheduler",
    "distributor",
    "ingester_client",
    "memberlist",
    "analytics",
    "chunk_store_config",
    "table_manager",
    "pattern_ingester",
    "index_gateway",
    "bloom_build",
    "bloom_gateway",
    "operational_config",
    "ruler_storage",
    "tracing",
    "kafka_config",
    "ingest_limits",
    "ingest_limits_frontend",
    "block_builder",
    "block_scheduler",
    "dataobj",
    "profiling",
    "tenant_configs",
];

/// Loki's `limits_config` keys with the same name and meaning in Larch's
/// `limits`.
const SAME_LIMITS: &[&str] = &[
    "ingestion_rate_mb",
    "ingestion_burst_size_mb",
    "max_line_size",
    "max_line_size_truncate",
    "max_label_names_per_series",
    "max_label_name_length",
    "max_label_value_length",
    "reject_old_samples",
    "reject_old_samples_max_age",
    "creation_grace_period",
    "allow_structured_metadata",
    "discover_log_levels",
    "max_structured_metadata_size",
    "max_structured_metadata_entries_count",
    "max_entries_limit_per_query",
    "max_query_series",
    "retention_period",
    "deletion_mode",
];

/// Loki's `ingester` keys and Larch's names for them.
const INGESTER: &[(&str, &str)] = &[
    ("chunk_block_size", "block_size"),
    ("chunk_target_size", "chunk_target_size"),
    ("max_chunk_age", "max_chunk_age"),
    ("chunk_idle_period", "chunk_idle_period"),
    ("flush_check_period", "flush_check_period"),
    ("flush_on_shutdown", "flush_on_shutdown"),
    ("concurrent_flushes", "concurrent_flushes"),
];

/// Loki's `ruler` keys with the same name and meaning in Larch's `ruler`.
const SAME_RULER: &[&str] = &[
    "enable_api",
    "evaluation_interval",
    "poll_interval",
    "alertmanager_url",
    "external_url",
    "datasource_uid",
    "external_labels",
    "notification_queue_capacity",
    "notification_timeout",
    "resend_delay",
    "for_outage_tolerance",
];

/// Loki's `ruler.alertmanager_client` keys Larch's has.
const ALERTMANAGER_CLIENT: &[&str] = &[
    "basic_auth_username",
    "basic_auth_password",
    "type",
    "credentials",
];

/// Prometheus' `remote_write` keys (Loki's `ruler.remote_write.clients`)
/// Larch's clients have, besides `basic_auth` and `queue_config`.
const REMOTE_WRITE_CLIENT: &[&str] = &["url", "remote_timeout", "headers"];

/// Prometheus' `queue_config` keys Larch's has.
const QUEUE_CONFIG: &[&str] = &[
    "capacity",
    "max_samples_per_send",
    "min_backoff",
    "max_backoff",
    "retry_on_http_429",
];

/// Whether `doc` is a Loki configuration (see the module documentation).
pub fn is_loki(doc: &Value) -> bool {
    doc.as_object()
        .is_some_and(|m| m.keys().any(|k| LOKI_ONLY.contains(&k.as_str())))
}

/// A Loki configuration in Larch's terms.
#[derive(Debug, Default, PartialEq)]
pub struct Translation {
    /// The document in the shape of Larch's configuration file.
    pub larch: Map<String, Value>,
    /// Loki's keys that have no effect, as paths (`schema_config`,
    /// `server.http_server_read_timeout`), sorted.
    pub unused: Vec<String>,
    /// For each translated Larch key path, the Loki key it came from (for
    /// error messages).
    pub origin: BTreeMap<String, String>,
    /// `server.log_level`, if set.
    pub log_level: Option<String>,
    /// `server.log_format`, if set.
    pub log_format: Option<String>,
}

impl Translation {
    fn set(&mut self, larch: &str, loki: &str, value: Value) {
        let parts: Vec<&str> = larch.split('.').collect();
        self.set_at(&parts, loki, value);
    }

    /// `set` with the Larch path in parts, for paths with a name of the
    /// user's in them (which may hold a dot).
    fn set_at(&mut self, larch: &[&str], loki: &str, value: Value) {
        let mut parts = larch.iter().peekable();
        let mut map = &mut self.larch;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), value);
                break;
            }
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else {
                return;
            };
            map = inner;
        }
        self.origin.insert(larch.join("."), loki.to_string());
    }

    fn unused(&mut self, path: String) {
        self.unused.push(path);
    }

    /// The Loki key a Larch key path (as an error names it) came from.
    pub fn loki_key(&self, larch_path: &str) -> Option<&str> {
        self.origin
            .iter()
            .filter(|(k, _)| larch_path == *k || larch_path.starts_with(&format!("{k}.")))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, v)| v.as_str())
    }
}

/// A value out of place in a Loki file.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{key}: {reason}")]
pub struct TranslateError {
    /// The Loki key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> TranslateError {
    TranslateError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Loki's names of object stores, under `common.storage` and
/// `storage_config`.
const OBJECT_STORES: &[&str] = &[
    "s3",
    "aws",
    "gcs",
    "azure",
    "swift",
    "bos",
    "cos",
    "alibabacloud",
];

/// Where a Loki file keeps its chunks, if not on local disk: the key that
/// says so and the store's name.
fn object_store(top: &Map<String, Value>) -> Option<(String, String)> {
    if let Some(configs) = top
        .get("schema_config")
        .and_then(|s| s.get("configs"))
        .and_then(Value::as_array)
        && let Some((i, last)) = configs.iter().enumerate().next_back()
        && let Some(store) = last.get("object_store").and_then(Value::as_str)
    {
        return (store != "filesystem" && store != "inmemory").then(|| {
            (
                format!("schema_config.configs[{i}].object_store"),
                store.to_string(),
            )
        });
    }
    let sections = [
        (
            "common.storage",
            top.get("common").and_then(|c| c.get("storage")),
        ),
        ("storage_config", top.get("storage_config")),
    ];
    for (section, found) in sections {
        if let Some(Value::Object(m)) = found
            && let Some(name) = m.keys().find(|k| OBJECT_STORES.contains(&k.as_str()))
        {
            return Some((format!("{section}.{name}"), name.clone()));
        }
    }
    None
}

/// Loki's keys of an S3 configuration (`common.storage.s3`,
/// `storage_config.aws`) that only tune the client; listed as unused.
const S3_TUNING: &[&str] = &[
    "http_config",
    "sse",
    "sse_encryption",
    "storage_class",
    "backoff_config",
    "signature_version",
    "disable_dualstack",
    "max_retries",
];

/// Translates the S3 sections of `top` (`common.storage.s3`, then
/// `storage_config.aws`, whose keys win) into `storage.s3`. `chosen` is
/// the key that named S3 (for the error when no section configures it).
fn s3_storage(
    t: &mut Translation,
    top: &Map<String, Value>,
    chosen: &str,
) -> Result<(), TranslateError> {
    let sections = [
        (
            "common.storage.s3",
            top.get("common")
                .and_then(|c| c.get("storage"))
                .and_then(|s| s.get("s3")),
        ),
        (
            "storage_config.aws",
            top.get("storage_config").and_then(|s| s.get("aws")),
        ),
    ];
    let mut found = false;
    let mut endpoint: Option<(String, String)> = None;
    let mut insecure = false;
    for (section, value) in sections {
        let Some(value) = value else { continue };
        found = true;
        for (k, v) in object(section, value)? {
            let path = format!("{section}.{k}");
            match k.as_str() {
                "bucketnames" | "bucket_name" | "bucket" => {
                    let names = string(&path, v)?;
                    let names: Vec<&str> = names
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .collect();
                    let [name] = names[..] else {
                        return Err(bad(
                            &path,
                            "exactly one bucket is supported: Larch writes every chunk and index segment to one bucket",
                        ));
                    };
                    t.set("storage.s3.bucket", &path, Value::String(name.to_string()));
                }
                "endpoint" => endpoint = Some((path, string(&format!("{section}.{k}"), v)?)),
                "insecure" => insecure = v.as_bool().unwrap_or(false) || v.as_str() == Some("true"),
                "region" | "access_key_id" | "secret_access_key" | "session_token" => {
                    t.set(&format!("storage.s3.{k}"), &path, v.clone());
                }
                "s3forcepathstyle" => t.set("storage.s3.force_path_style", &path, v.clone()),
                "s3" if v.as_str().is_some_and(|u| !u.is_empty()) => {
                    return Err(bad(
                        &path,
                        "the s3:// URL form is not translated: give bucketnames, region, endpoint, \
                         access_key_id and secret_access_key instead",
                    ));
                }
                "s3" => {}
                k if S3_TUNING.contains(&k) => t.unused(path),
                _ => {
                    return Err(bad(
                        &path,
                        "this S3 setting is not translated; remove it or configure Larch's storage.s3",
                    ));
                }
            }
        }
    }
    if !found {
        return Err(bad(
            chosen,
            "chunks in s3, but neither common.storage.s3 nor storage_config.aws configures the bucket",
        ));
    }
    if let Some((path, e)) = endpoint {
        let host = e.split("://").last().unwrap_or("").trim_end_matches('/');
        // AWS's own host names are AWS's default endpoint (with the
        // region); any other is an S3-compatible service.
        if !e.is_empty() && !host.ends_with("amazonaws.com") {
            let url = if e.contains("://") {
                e.clone()
            } else if insecure {
                format!("http://{e}")
            } else {
                format!("https://{e}")
            };
            t.set("storage.s3.endpoint", &path, Value::String(url));
        }
    }
    t.set("storage.backend", chosen, Value::String("s3".into()));
    Ok(())
}

/// Translates a Loki configuration document.
pub fn translate(doc: &Value) -> Result<Translation, TranslateError> {
    let mut t = Translation::default();
    let Some(top) = doc.as_object() else {
        return Err(bad("", "the configuration must be a mapping of keys"));
    };
    let chunks_in = object_store(top);
    match &chunks_in {
        None => {}
        Some((key, store)) if store == "s3" || store == "aws" => s3_storage(&mut t, top, key)?,
        Some((key, store)) => {
            return Err(bad(
                key,
                format!(
                    "chunks in {store} are not translated from a Loki configuration (S3 and the filesystem are); \
                     configure Larch's storage: block (backend s3, gcs, azure or filesystem) instead"
                ),
            ));
        }
    }
    // Sections of the object store in use are translated above; the
    // others are unused.
    let translated = |section: &str, name: &str| {
        chunks_in
            .as_ref()
            .is_some_and(|(_, s)| s == "s3" || s == "aws")
            && ((section == "common.storage" && name == "s3")
                || (section == "storage_config" && name == "aws"))
    };
    // Loki requires X-Scope-OrgID unless told otherwise.
    t.set("auth_enabled", "auth_enabled", Value::Bool(true));
    let mut path_prefix = None;
    let mut chunks_dir = None;
    let mut rules = RuleDirs::default();
    for (key, value) in top {
        match key.as_str() {
            "auth_enabled" => t.set("auth_enabled", key, value.clone()),
            "target" => match value.as_str() {
                Some("all" | "write" | "read" | "backend") => t.set("target", key, value.clone()),
                _ => {
                    return Err(bad(
                        key,
                        format!("{value} is not a target of Larch's: all, write, read or backend"),
                    ));
                }
            },
            "server" => server(&mut t, value)?,
            "common" => {
                let m = object("common", value)?;
                for (k, v) in m {
                    let path = format!("common.{k}");
                    match k.as_str() {
                        "path_prefix" => path_prefix = Some(string(&path, v)?),
                        "replication_factor" if v.as_u64() == Some(1) => {}
                        "storage" => {
                            for (sk, sv) in object(&path, v)? {
                                if sk == "filesystem" {
                                    for (fk, fv) in object("common.storage.filesystem", sv)? {
                                        if fk == "chunks_directory" {
                                            chunks_dir = Some(string(
                                                "common.storage.filesystem.chunks_directory",
                                                fv,
                                            )?);
                                        } else if fk == "rules_directory" {
                                            let key = "common.storage.filesystem.rules_directory";
                                            rules.common =
                                                Some((string(key, fv)?, key.to_string()));
                                        } else {
                                            t.unused(format!("common.storage.filesystem.{fk}"));
                                        }
                                    }
                                } else if !translated("common.storage", sk) {
                                    t.unused(format!("common.storage.{sk}"));
                                }
                            }
                        }
                        _ => t.unused(path),
                    }
                }
            }
            "storage_config" => {
                for (k, v) in object(key, value)? {
                    if k == "filesystem" {
                        for (fk, fv) in object("storage_config.filesystem", v)? {
                            if fk == "directory" {
                                chunks_dir.get_or_insert(string(
                                    "storage_config.filesystem.directory",
                                    fv,
                                )?);
                            } else {
                                t.unused(format!("storage_config.filesystem.{fk}"));
                            }
                        }
                    } else if !translated("storage_config", k) {
                        t.unused(format!("storage_config.{k}"));
                    }
                }
            }
            "limits_config" => {
                for (k, v) in object(key, value)? {
                    let path = format!("limits_config.{k}");
                    if SAME_LIMITS.contains(&k.as_str()) {
                        t.set(&format!("limits.{k}"), &path, v.clone());
                    } else if k == "max_global_streams_per_user" {
                        t.set("limits.max_streams_per_tenant", &path, v.clone());
                    } else if k == "query_timeout" {
                        t.set("query.timeout", &path, v.clone());
                    } else {
                        t.unused(path);
                    }
                }
            }
            "ingester" => {
                for (k, v) in object(key, value)? {
                    let path = format!("ingester.{k}");
                    if let Some((_, larch)) = INGESTER.iter().find(|(loki, _)| loki == k) {
                        t.set(&format!("ingester.{larch}"), &path, v.clone());
                    } else if k == "chunk_encoding" {
                        // Loki's lz4 variants differ only in its own block
                        // size; Larch cuts blocks at `block_size` whatever
                        // the codec.
                        match v.as_str() {
                            Some(c @ ("snappy" | "lz4" | "zstd" | "none")) => {
                                t.set("ingester.chunk_encoding", &path, Value::from(c));
                            }
                            Some("lz4-64k" | "lz4-256k" | "lz4-1M" | "lz4-4M") => {
                                t.set("ingester.chunk_encoding", &path, Value::from("lz4"));
                            }
                            _ => t.unused(format!(
                                "{path} ({v}: Larch's chunks are snappy, lz4, zstd or none)"
                            )),
                        }
                    } else {
                        t.unused(path);
                    }
                }
            }
            "compactor" => {
                t.set(
                    "compactor.retention_enabled",
                    "compactor.retention_enabled",
                    Value::Bool(false),
                );
                for (k, v) in object(key, value)? {
                    let path = format!("compactor.{k}");
                    match k.as_str() {
                        "retention_enabled" => {
                            t.set("compactor.retention_enabled", &path, v.clone())
                        }
                        "compaction_interval" => {
                            t.set("ingester.compaction_interval", &path, v.clone());
                            t.set("compactor.interval", &path, v.clone());
                        }
                        "delete_request_cancel_period" | "delete_max_interval" => {
                            t.set(&path, &path, v.clone());
                        }
                        _ => t.unused(path),
                    }
                }
            }
            "querier" => {
                for (k, v) in object(key, value)? {
                    let path = format!("querier.{k}");
                    if k == "max_concurrent" {
                        t.set("query.max_concurrent", &path, v.clone());
                    } else {
                        t.unused(path);
                    }
                }
            }
            "runtime_config" => {
                for (k, v) in object(key, value)? {
                    let path = format!("runtime_config.{k}");
                    match k.as_str() {
                        "file" | "period" => {
                            t.set(&format!("runtime_config.{k}"), &path, v.clone())
                        }
                        _ => t.unused(path),
                    }
                }
            }
            "ruler" => ruler(&mut t, value, &mut rules)?,
            "ruler_storage" => {
                let m = object(key, value)?;
                let backend = m
                    .get("backend")
                    .map(|b| string("ruler_storage.backend", b))
                    .transpose()?;
                for (k, v) in m {
                    let path = format!("ruler_storage.{k}");
                    match k.as_str() {
                        "backend" => {}
                        "local" if backend.as_deref() == Some("local") => {
                            local_directory(&mut t, &path, v, &mut rules.storage)?
                        }
                        _ => t.unused(path),
                    }
                }
                if backend.is_some_and(|b| b != "local") {
                    bucket_rules(&mut t, "ruler_storage.backend");
                }
            }
            _ => t.unused(key.clone()),
        }
    }
    if let Some((dir, key)) = rules.ruler.or(rules.storage).or(rules.common) {
        t.set("ruler.rule_path", &key, Value::String(dir));
    }
    if !top.contains_key("compactor") {
        // Loki applies no retention unless its compactor is told to.
        t.set(
            "compactor.retention_enabled",
            "compactor.retention_enabled",
            Value::Bool(false),
        );
    }
    match (path_prefix, chunks_dir) {
        (Some(p), _) => t.set("data_dir", "common.path_prefix", Value::String(p)),
        (None, Some(c)) => {
            let parent = std::path::Path::new(&c)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.display().to_string())
                .unwrap_or(c);
            t.set(
                "data_dir",
                "storage_config.filesystem.directory",
                Value::String(parent),
            );
        }
        (None, None) => {}
    }
    t.unused.sort();
    Ok(t)
}

/// Where a Loki file keeps its rule groups on local disk, by where it
/// says so (the directory and its key), most specific first.
#[derive(Default)]
struct RuleDirs {
    /// `ruler.storage.local.directory`.
    ruler: Option<(String, String)>,
    /// `ruler_storage.local.directory`.
    storage: Option<(String, String)>,
    /// `common.storage.filesystem.rules_directory`.
    common: Option<(String, String)>,
}

/// `<path>` is a `local:` block of a rule storage: its `directory`.
fn local_directory(
    t: &mut Translation,
    path: &str,
    value: &Value,
    found: &mut Option<(String, String)>,
) -> Result<(), TranslateError> {
    for (k, v) in object(path, value)? {
        let key = format!("{path}.{k}");
        if k == "directory" {
            *found = Some((string(&key, v)?, key));
        } else {
            t.unused(key);
        }
    }
    Ok(())
}

/// A rule storage in object storage (Loki's `s3`, `gcs`...) at `key`: the
/// rule groups go to the store's own bucket (`storage:`), under `rules/`;
/// the block naming Loki's bucket is listed as unused.
fn bucket_rules(t: &mut Translation, key: &str) {
    t.set("ruler.storage.type", key, Value::String("bucket".into()));
}

/// Loki's `ruler:` block.
fn ruler(t: &mut Translation, value: &Value, rules: &mut RuleDirs) -> Result<(), TranslateError> {
    let m = object("ruler", value)?;
    for (k, v) in m {
        let path = format!("ruler.{k}");
        match k.as_str() {
            k if SAME_RULER.contains(&k) => t.set(&path, &path, v.clone()),
            "alertmanager_client" => {
                for (ck, cv) in object(&path, v)? {
                    let key = format!("{path}.{ck}");
                    if ALERTMANAGER_CLIENT.contains(&ck.as_str()) {
                        t.set_at(&["ruler", "alertmanager_client", ck.as_str()], &key, cv.clone());
                    } else {
                        t.unused(key);
                    }
                }
            }
            "storage" => {
                let s = object(&path, v)?;
                let kind = s.get("type").map(|b| string("ruler.storage.type", b)).transpose()?;
                let local = matches!(kind.as_deref(), None | Some("local"));
                for (sk, sv) in s {
                    let key = format!("{path}.{sk}");
                    match sk.as_str() {
                        "type" if local => {}
                        "type" => bucket_rules(t, &key),
                        "local" if local => local_directory(t, &key, sv, &mut rules.ruler)?,
                        _ => t.unused(key),
                    }
                }
            }
            "rule_path" => t.unused(format!(
                "{path} (Loki's scratch copy of the rules; they are read from the rule storage's directory)"
            )),
            "remote_write" => remote_write(t, &path, v)?,
            _ => t.unused(path),
        }
    }
    Ok(())
}

/// Loki's `ruler.remote_write`.
fn remote_write(t: &mut Translation, path: &str, value: &Value) -> Result<(), TranslateError> {
    let m = object(path, value)?;
    let enabled = m.get("enabled").and_then(Value::as_bool) == Some(true);
    for (k, v) in m {
        let key = format!("{path}.{k}");
        match k.as_str() {
            "enabled" | "add_org_id_header" => {
                t.set_at(&["ruler", "remote_write", k.as_str()], &key, v.clone())
            }
            "client" | "clients" if !enabled => {
                t.unused(format!("{key} (remote_write.enabled is not true)"))
            }
            "client" => remote_write_client(t, &["ruler", "remote_write", "client"], &key, v)?,
            "clients" => {
                for (name, c) in object(&key, v)? {
                    remote_write_client(
                        t,
                        &["ruler", "remote_write", "clients", name.as_str()],
                        &format!("{key}.{name}"),
                        c,
                    )?;
                }
            }
            _ => t.unused(key),
        }
    }
    Ok(())
}

/// One Prometheus `remote_write` client at `path` (Loki's) into `larch`.
fn remote_write_client(
    t: &mut Translation,
    larch: &[&str],
    path: &str,
    value: &Value,
) -> Result<(), TranslateError> {
    let sub = |more: &[&str]| -> Vec<String> {
        larch.iter().chain(more).map(|s| s.to_string()).collect()
    };
    let set = |t: &mut Translation, parts: Vec<String>, key: &str, v: &Value| {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        t.set_at(&parts, key, v.clone());
    };
    // An empty client still exists (and fails Larch's check for its URL).
    set(t, sub(&[]), path, &Value::Object(Map::new()));
    for (k, v) in object(path, value)? {
        let key = format!("{path}.{k}");
        match k.as_str() {
            k if REMOTE_WRITE_CLIENT.contains(&k) => set(t, sub(&[k]), &key, v),
            "basic_auth" => {
                for (bk, bv) in object(&key, v)? {
                    let bkey = format!("{key}.{bk}");
                    if bk == "username" || bk == "password" {
                        set(t, sub(&["basic_auth", bk.as_str()]), &bkey, bv);
                    } else {
                        t.unused(bkey);
                    }
                }
            }
            "queue_config" => {
                for (qk, qv) in object(&key, v)? {
                    let qkey = format!("{key}.{qk}");
                    if QUEUE_CONFIG.contains(&qk.as_str()) {
                        set(t, sub(&["queue_config", qk.as_str()]), &qkey, qv);
                    } else {
                        t.unused(qkey);
                    }
                }
            }
            _ => t.unused(key),
        }
    }
    Ok(())
}

fn server(t: &mut Translation, value: &Value) -> Result<(), TranslateError> {
    let m = object("server", value)?;
    let mut http = ("0.0.0.0".to_string(), 3100u64);
    let mut grpc = ("0.0.0.0".to_string(), 9095u64);
    let (mut http_set, mut grpc_set) = (false, false);
    for (k, v) in m {
        let path = format!("server.{k}");
        match k.as_str() {
            "http_listen_address" => {
                let a = string(&path, v)?;
                if !a.is_empty() {
                    http.0 = a;
                }
                http_set = true;
            }
            "http_listen_port" => {
                http.1 = port(&path, v)?;
                http_set = true;
            }
            "grpc_listen_address" => {
                let a = string(&path, v)?;
                if !a.is_empty() {
                    grpc.0 = a;
                }
                grpc_set = true;
            }
            "grpc_listen_port" => {
                grpc.1 = port(&path, v)?;
                grpc_set = true;
            }
            "log_level" => t.log_level = Some(string(&path, v)?),
            "log_format" => t.log_format = Some(string(&path, v)?),
            _ => t.unused(path),
        }
    }
    let join = |(host, port): (String, u64)| {
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    if http_set {
        t.set(
            "http_addr",
            "server.http_listen_port",
            Value::String(join(http)),
        );
    }
    if grpc_set {
        t.set(
            "grpc_addr",
            "server.grpc_listen_port",
            Value::String(join(grpc)),
        );
    }
    Ok(())
}

fn object<'a>(key: &str, v: &'a Value) -> Result<&'a Map<String, Value>, TranslateError> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match v {
        Value::Object(m) => Ok(m),
        // `limits_config:` with nothing under it.
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        other => Err(bad(key, format!("expected a mapping, not {other}"))),
    }
}

fn string(key: &str, v: &Value) -> Result<String, TranslateError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(bad(key, format!("expected a string, not {other}"))),
    }
}

fn port(key: &str, v: &Value) -> Result<u64, TranslateError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.filter(|p| *p <= 65535)
        .ok_or_else(|| bad(key, format!("expected a port number, not {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn detection() {
        assert!(is_loki(&yaml("server:\n  http_listen_port: 3100\n")));
        assert!(is_loki(&yaml("limits_config: {}\n")));
        assert!(!is_loki(&yaml("http_addr: 0.0.0.0:3100\nlimits: {}\n")));
        assert!(!is_loki(&yaml("auth_enabled: true\ningester: {}\n")));
        assert!(!is_loki(&Value::Null));
    }

    #[test]
    fn ports_paths_limits_and_unused_keys() {
        let t = translate(&yaml(
            "server:\n  http_listen_port: 3200\n  grpc_listen_port: 9096\n  log_level: warn\n  http_server_read_timeout: 30s\n\
             common:\n  path_prefix: /tmp/loki\n  replication_factor: 1\n  ring:\n    kvstore:\n      store: inmemory\n\
             limits_config:\n  max_global_streams_per_user: 10\n  retention_period: 744h\n  max_query_parallelism: 32\n\
             schema_config:\n  configs: []\n",
        ))
        .unwrap();
        assert_eq!(
            Value::Object(t.larch.clone()),
            json!({
                "auth_enabled": true,
                "http_addr": "0.0.0.0:3200",
                "grpc_addr": "0.0.0.0:9096",
                "data_dir": "/tmp/loki",
                "limits": {"max_streams_per_tenant": 10, "retention_period": "744h"},
                "compactor": {"retention_enabled": false},
            })
        );
        assert_eq!(
            t.unused,
            [
                "common.ring",
                "limits_config.max_query_parallelism",
                "schema_config",
                "server.http_server_read_timeout",
            ]
        );
        assert_eq!(t.log_level.as_deref(), Some("warn"));
        assert_eq!(
            t.loki_key("limits.max_streams_per_tenant"),
            Some("limits_config.max_global_streams_per_user")
        );
    }

    #[test]
    fn delete_settings() {
        let t = translate(&yaml(
            "compactor:\n  retention_enabled: true\n  delete_request_cancel_period: 1h\n  delete_max_interval: 2h\n\
             limits_config:\n  deletion_mode: filter-only\n",
        ))
        .unwrap();
        let l = Value::Object(t.larch.clone());
        assert_eq!(
            l["compactor"],
            json!({"retention_enabled": true, "delete_request_cancel_period": "1h", "delete_max_interval": "2h"})
        );
        assert_eq!(l["limits"], json!({"deletion_mode": "filter-only"}));
        assert!(t.unused.is_empty(), "{:?}", t.unused);
    }

    #[test]
    fn storage_directories_and_switches() {
        let t = translate(&yaml(
            "auth_enabled: false\nstorage_config:\n  filesystem:\n    directory: /var/loki/chunks\n  tsdb_shipper:\n    cache_ttl: 24h\n\
             compactor:\n  retention_enabled: true\n  working_directory: /var/loki/compactor\n\
             ingester:\n  chunk_encoding: gzip\n  chunk_target_size: 1MB\n\
             runtime_config:\n  file: /etc/loki/overrides.yaml\n  period: 5s\n",
        ))
        .unwrap();
        let l = Value::Object(t.larch.clone());
        assert_eq!(l["data_dir"], json!("/var/loki"));
        assert_eq!(l["auth_enabled"], json!(false));
        assert_eq!(l["compactor"], json!({"retention_enabled": true}));
        assert_eq!(l["ingester"], json!({"chunk_target_size": "1MB"}));
        assert_eq!(
            l["runtime_config"],
            json!({"file": "/etc/loki/overrides.yaml", "period": "5s"})
        );
        assert_eq!(
            t.unused,
            [
                "compactor.working_directory",
                "ingester.chunk_encoding (\"gzip\": Larch's chunks are snappy, lz4, zstd or none)",
                "storage_config.tsdb_shipper",
            ]
        );
    }

    #[test]
    fn chunk_encodings_are_translated() {
        for (loki, larch) in [
            ("snappy", "snappy"),
            ("lz4", "lz4"),
            ("lz4-256k", "lz4"),
            ("zstd", "zstd"),
            ("none", "none"),
        ] {
            let t = translate(&yaml(&format!(
                "auth_enabled: false\ningester:\n  chunk_encoding: {loki}\n"
            )))
            .unwrap();
            assert_eq!(
                Value::Object(t.larch.clone())["ingester"],
                json!({"chunk_encoding": larch}),
                "{loki}"
            );
            assert!(t.unused.is_empty(), "{loki}: {:?}", t.unused);
        }
    }

    #[test]
    fn s3_is_translated() {
        let t = translate(&yaml(
            "schema_config:\n  configs:\n  - object_store: s3\n\
             common:\n  storage:\n    s3:\n      bucketnames: b\n      endpoint: minio:9000\n      insecure: true\n      region: r\n      access_key_id: k\n\
             storage_config:\n  aws:\n    secret_access_key: s\n    s3forcepathstyle: true\n    region: r2\n    sse:\n      type: SSE-S3\n",
        ))
        .unwrap();
        let l = Value::Object(t.larch.clone());
        assert_eq!(
            l["storage"],
            json!({"backend": "s3", "s3": {
                "bucket": "b", "endpoint": "http://minio:9000", "region": "r2",
                "access_key_id": "k", "secret_access_key": "s", "force_path_style": true,
            }})
        );
        assert_eq!(t.unused, ["schema_config", "storage_config.aws.sse"]);
        assert_eq!(
            t.loki_key("storage.s3.region"),
            Some("storage_config.aws.region")
        );
        // Without a schema, the configured store is the one; AWS's own
        // host names are its default endpoint.
        let t = translate(&yaml(
            "storage_config:\n  aws:\n    bucketnames: b\n    endpoint: s3.eu-west-1.amazonaws.com\n",
        ))
        .unwrap();
        assert_eq!(
            Value::Object(t.larch.clone())["storage"],
            json!({"backend": "s3", "s3": {"bucket": "b"}})
        );
    }

    #[test]
    fn object_storage_not_translated_is_refused_not_ignored() {
        let e = translate(&yaml(
            "schema_config:\n  configs:\n  - from: 2020-10-24\n    object_store: filesystem\n  - from: 2024-01-01\n    object_store: gcs\n",
        ))
        .unwrap_err();
        assert_eq!(e.key, "schema_config.configs[1].object_store");
        assert!(e.reason.contains("chunks in gcs"), "{e}");
        let e = translate(&yaml(
            "common:\n  storage:\n    azure:\n      account_name: a\n",
        ))
        .unwrap_err();
        assert_eq!(e.key, "common.storage.azure");
        let e = translate(&yaml("storage_config:\n  aws:\n    s3: s3://k:s@r/b\n")).unwrap_err();
        assert_eq!(e.key, "storage_config.aws.s3");
        let e = translate(&yaml("storage_config:\n  aws:\n    bucketnames: a,b\n")).unwrap_err();
        assert_eq!(e.key, "storage_config.aws.bucketnames");
        let e =
            translate(&yaml("schema_config:\n  configs:\n  - object_store: aws\n")).unwrap_err();
        assert_eq!(e.key, "schema_config.configs[0].object_store");
        let e = translate(&yaml("target: querier\n")).unwrap_err();
        assert_eq!(e.key, "target");
        // The schema decides when it names the local disk.
        assert!(translate(&yaml(
            "schema_config:\n  configs:\n  - object_store: filesystem\nstorage_config:\n  aws:\n    s3: s3://x\n"
        ))
        .is_ok());
    }

    /// Every key of Larch's `limits`, found through serde so that a key
    /// added later is covered, is taken from Loki's `limits_config`.
    #[test]
    fn every_larch_limit_is_mapped() {
        let Value::Object(limits) =
            serde_json::to_value(larch_store::config::Limits::default()).unwrap()
        else {
            panic!("limits are a mapping");
        };
        assert!(limits.contains_key("discover_log_levels"));
        for (key, value) in limits {
            let loki = match key.as_str() {
                "max_streams_per_tenant" => "max_global_streams_per_user",
                k => k,
            };
            let t = translate(&json!({"limits_config": {loki: value.clone()}})).unwrap();
            assert!(t.unused.is_empty(), "{loki}: {:?}", t.unused);
            assert_eq!(t.larch["limits"][&key], value, "{loki}");
            assert_eq!(
                t.loki_key(&format!("limits.{key}")),
                Some(format!("limits_config.{loki}").as_str())
            );
        }
    }

    /// Loki's `ruler:` block as Loki's reference spells it, translated into
    /// a `ruler:` block Larch reads and accepts.
    #[test]
    fn ruler_block() {
        let t = translate(&yaml(
            r#"
ruler:
  alertmanager_url: http://am-1:9093,http://am-2:9093
  enable_alertmanager_v2: true
  alertmanager_client:
    basic_auth_username: u
    basic_auth_password: p
    tls_ca_path: /ca.pem
  external_url: http://grafana:3000
  datasource_uid: loki-uid
  external_labels:
    cluster: prod
  evaluation_interval: 30s
  poll_interval: 2m
  enable_api: false
  resend_delay: 2m
  for_outage_tolerance: 2h
  for_grace_period: 10m
  notification_timeout: 5s
  rule_path: /loki/rules-temp
  storage:
    type: local
    local:
      directory: /loki/rules
  ring:
    kvstore:
      store: inmemory
  wal:
    dir: /loki/ruler-wal
  remote_write:
    enabled: true
    add_org_id_header: false
    config_refresh_period: 10s
    clients:
      prom.prod:
        url: http://prom:9090/api/v1/write
        name: prom
        remote_timeout: 10s
        headers:
          X-Team: a
        basic_auth:
          username: w
          password_file: /pw
        queue_config:
          capacity: 500
          max_shards: 4
          min_backoff: 50ms
common:
  storage:
    filesystem:
      chunks_directory: /loki/chunks
      rules_directory: /elsewhere
"#,
        ))
        .unwrap();
        let ruler = &t.larch["ruler"];
        assert_eq!(
            ruler,
            &json!({
                "alertmanager_url": "http://am-1:9093,http://am-2:9093",
                "alertmanager_client": {"basic_auth_username": "u", "basic_auth_password": "p"},
                "external_url": "http://grafana:3000",
                "datasource_uid": "loki-uid",
                "external_labels": {"cluster": "prod"},
                "evaluation_interval": "30s",
                "poll_interval": "2m",
                "enable_api": false,
                "resend_delay": "2m",
                "for_outage_tolerance": "2h",
                "notification_timeout": "5s",
                "rule_path": "/loki/rules",
                "remote_write": {
                    "enabled": true,
                    "add_org_id_header": false,
                    "clients": {"prom.prod": {
                        "url": "http://prom:9090/api/v1/write",
                        "remote_timeout": "10s",
                        "headers": {"X-Team": "a"},
                        "basic_auth": {"username": "w"},
                        "queue_config": {"capacity": 500, "min_backoff": "50ms"},
                    }},
                },
            })
        );
        assert_eq!(
            t.unused,
            [
                "ruler.alertmanager_client.tls_ca_path",
                "ruler.enable_alertmanager_v2",
                "ruler.for_grace_period",
                "ruler.remote_write.clients.prom.prod.basic_auth.password_file",
                "ruler.remote_write.clients.prom.prod.name",
                "ruler.remote_write.clients.prom.prod.queue_config.max_shards",
                "ruler.remote_write.config_refresh_period",
                "ruler.ring",
                "ruler.rule_path (Loki's scratch copy of the rules; they are read from the rule storage's directory)",
                "ruler.wal",
            ]
        );
        assert_eq!(
            t.loki_key("ruler.rule_path"),
            Some("ruler.storage.local.directory")
        );
        assert_eq!(
            t.loki_key("ruler.remote_write.clients.prom.prod.queue_config.capacity"),
            Some("ruler.remote_write.clients.prom.prod.queue_config.capacity")
        );
        // Larch reads it (Loki's notation kept) and accepts it.
        let c: larch_store::ruler::config::RulerConfig =
            serde_json::from_value(ruler.clone()).unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.alertmanager_url.0,
            ["http://am-1:9093", "http://am-2:9093"]
        );
        assert_eq!(
            c.evaluation_interval,
            larch_config::HumanDuration::from_secs(30)
        );
        let clients = c.remote_write.all_clients();
        assert_eq!(clients[0].0, "prom.prod");
        assert_eq!(clients[0].1.queue_config.capacity, 500);
        assert_eq!(clients[0].1.queue_config.max_samples_per_send, 2000);
    }

    /// Where rule groups are found: the ruler's own local storage, else
    /// `ruler_storage`'s, else the common filesystem's; never a bucket, and
    /// never clients that Loki would not use.
    #[test]
    fn rule_directories_and_disabled_remote_write() {
        let rules = |text: &str| {
            let t = translate(&yaml(text)).unwrap();
            (
                t.larch.get("ruler").map(|r| r["rule_path"].clone()),
                t.unused,
            )
        };
        let common = "common:\n  storage:\n    filesystem:\n      rules_directory: /c\n";
        assert_eq!(rules(common), (Some(json!("/c")), vec![]));
        let storage = "ruler_storage:\n  backend: local\n  local:\n    directory: /s\n";
        assert_eq!(
            rules(&format!("{common}{storage}")),
            (Some(json!("/s")), vec![])
        );
        let ruler = "ruler:\n  storage:\n    local:\n      directory: /r\n";
        assert_eq!(
            rules(&format!("{common}{storage}{ruler}")),
            (Some(json!("/r")), vec![])
        );
        // A bucket: the store's own, its Loki block listed as unused.
        let storage_type = |text: &str| {
            let t = translate(&yaml(text)).unwrap();
            (t.larch["ruler"]["storage"]["type"].clone(), t.unused)
        };
        assert_eq!(
            storage_type("ruler_storage:\n  backend: s3\n  s3:\n    bucket_name: rules\n"),
            (json!("bucket"), vec!["ruler_storage.s3".to_string()])
        );
        assert_eq!(
            storage_type("ruler:\n  storage:\n    type: gcs\n    gcs:\n      bucket_name: r\n"),
            (json!("bucket"), vec!["ruler.storage.gcs".to_string()])
        );
        let t = translate(&yaml("ruler:\n  storage:\n    type: azure\n")).unwrap();
        let c: larch_store::ruler::config::RulerConfig =
            serde_json::from_value(t.larch["ruler"].clone()).unwrap();
        assert_eq!(
            c.storage.kind,
            larch_store::ruler::config::RuleStorageType::Bucket
        );
        // Loki's default: remote write off, its clients unused.
        let t = translate(&yaml(
            "ruler:\n  remote_write:\n    clients:\n      p:\n        url: http://p/api/v1/write\n",
        ))
        .unwrap();
        assert_eq!(t.larch.get("ruler"), None);
        assert_eq!(
            t.unused,
            ["ruler.remote_write.clients (remote_write.enabled is not true)"]
        );
    }

    #[test]
    fn bad_shapes_name_the_loki_key() {
        assert_eq!(
            translate(&yaml("server:\n  http_listen_port: 99999\n")).unwrap_err(),
            bad(
                "server.http_listen_port",
                "expected a port number, not 99999"
            )
        );
        assert!(translate(&yaml("limits_config: 3\n")).is_err());
        assert!(translate(&yaml("- 1\n")).is_err());
        // An empty section is no section.
        assert!(translate(&yaml("limits_config:\nserver:\n")).is_ok());
    }
}
