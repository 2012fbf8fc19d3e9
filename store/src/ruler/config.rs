//! The `ruler:` block of the store's configuration, with Loki's key names
//! and defaults where Loki has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::ConfigError;
use crate::tls_client::ClientTlsConfig;
use larch_config::HumanDuration;

/// The ruler: where rule groups are kept, how often they run, and where
/// alerts and recorded samples go.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulerConfig {
    /// Run the ruler in this process (default true). Off, rule groups are
    /// neither evaluated nor served: in the SimpleScalable mode only the
    /// `backend` node runs it, so that alerts are sent once, not once per
    /// node.
    pub enabled: bool,
    /// Where rules' queries run (Loki's `ruler.evaluation`).
    pub evaluation: EvaluationConfig,
    /// Serve the rules API (`/loki/api/v1/rules...`, `/api/prom/rules...`,
    /// `/prometheus/api/v1/rules` and `/alerts`). Default true, as Loki.
    pub enable_api: bool,
    /// Where rule groups are kept (`storage.type`: `local`, the
    /// directory `rule_path`; `bucket`, the store's bucket).
    pub storage: RuleStorageConfig,
    /// Directory of the rule groups with `storage.type: local`:
    /// `<rule_path>/<tenant>/<namespace>.yaml`,
    /// each a rule file (`groups:`). Read every `poll_interval` and after
    /// every change made through the API, which writes here. Empty (the
    /// default): `<data_dir>/rules`.
    pub rule_path: PathBuf,
    /// Interval of groups that set none (Loki: 1m).
    pub evaluation_interval: HumanDuration,
    /// How often the rule store (`rule_path`, or the bucket) is read again
    /// for changes made by hand or by another node (Loki: 1m).
    pub poll_interval: HumanDuration,
    /// Alertmanager base URLs (`http://alertmanager:9093`), as a list or
    /// comma-separated; alerts are posted to `<url>/api/v2/alerts` of every
    /// one. Empty (the default): alerts are evaluated and shown in the API,
    /// but sent nowhere.
    pub alertmanager_url: UrlList,
    /// How requests to Alertmanager authenticate.
    pub alertmanager_client: ClientAuth,
    /// Alerts waiting to be sent; past it the oldest are dropped
    /// (`larch_ruler_notifications_dropped_total`). Loki: 10000.
    pub notification_queue_capacity: usize,
    /// Longest one request to an Alertmanager may take (Loki: 10s).
    pub notification_timeout: HumanDuration,
    /// A firing alert is sent again when this much time has passed since
    /// it was last sent (Loki and Prometheus: 1m); Alertmanager considers
    /// it resolved `4 × max(resend_delay, group interval)` after the last
    /// send.
    pub resend_delay: HumanDuration,
    /// Alert state saved before a restart is restored only if the store
    /// was down for less than this (Prometheus: 1h); older state is
    /// dropped and alerts start over as pending.
    pub for_outage_tolerance: HumanDuration,
    /// Base of the alerts' `generatorURL` (Grafana's URL), and
    /// `$externalURL` in templates. Empty: no `generatorURL`.
    pub external_url: String,
    /// The Grafana data source `generatorURL` links point to (Loki's
    /// `datasource_uid`).
    pub datasource_uid: String,
    /// Labels added to every alert and every written series that does not
    /// have them (`$externalLabels` in templates).
    pub external_labels: BTreeMap<String, String>,
    /// Group evaluations running at once, on the blocking pool; more wait
    /// (and count as missed if they wait past their next turn). Default: the
    /// number of cores.
    pub max_concurrent_evaluations: usize,
    /// Most rule groups per tenant (Loki's `ruler_max_rule_groups_per_tenant`);
    /// 0: no limit. Default 1000.
    pub max_rule_groups_per_tenant: usize,
    /// Most rules per group (Loki's `ruler_max_rules_per_rule_group`); 0:
    /// no limit. Default 200.
    pub max_rules_per_rule_group: usize,
    /// Recording rules' samples (and `ALERTS`, `ALERTS_FOR_STATE`) sent with
    /// Prometheus remote write.
    pub remote_write: RemoteWriteConfig,
    /// This ruler's name in the bucket: with `storage.type: bucket` its
    /// alert state is the object `ruler-state/<instance_id>.json`. Empty
    /// (the default): the host's name (a StatefulSet pod's name, stable
    /// across restarts).
    pub instance_id: String,
    /// With `enabled: false`: the base URL of the node that runs the ruler
    /// (`http://larch-backend:3100`); this node then answers the rules API
    /// by forwarding each request there, with the caller's `X-Scope-OrgID`
    /// and `Authorization`. Empty (the default): no rules API.
    pub api_forward_url: String,
    /// Longest a forwarded rules API request may take (default 30s).
    pub api_forward_timeout: HumanDuration,
    /// TLS of the forwarded requests, for an `https://` `api_forward_url`:
    /// `tls_ca_path` (else the system's roots), `tls_cert_path` and
    /// `tls_key_path` for a ruler node that asks for a client certificate,
    /// `tls_server_name`.
    pub api_forward_client: ClientTlsConfig,
}

/// `ruler.storage` (Loki's key).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuleStorageConfig {
    /// `local` (the default) or `bucket`.
    #[serde(rename = "type")]
    pub kind: RuleStorageType,
}

/// `ruler.storage.type`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleStorageType {
    /// The directory `ruler.rule_path`, one folder per tenant.
    #[default]
    Local,
    /// `rules/<tenant>/<namespace>.yaml` in the store's bucket
    /// (`storage.backend`), shared by every node of the bucket. Loki's
    /// object store names (`s3`, `gcs`, `azure`, `filesystem`) mean the
    /// same: the bucket the store already has.
    #[serde(alias = "s3", alias = "gcs", alias = "azure", alias = "filesystem")]
    Bucket,
}

impl Default for RulerConfig {
    fn default() -> RulerConfig {
        RulerConfig {
            enabled: true,
            evaluation: EvaluationConfig::default(),
            enable_api: true,
            storage: RuleStorageConfig::default(),
            rule_path: PathBuf::new(),
            evaluation_interval: HumanDuration::from_secs(60),
            poll_interval: HumanDuration::from_secs(60),
            alertmanager_url: UrlList::default(),
            alertmanager_client: ClientAuth::default(),
            notification_queue_capacity: 10_000,
            notification_timeout: HumanDuration::from_secs(10),
            resend_delay: HumanDuration::from_secs(60),
            for_outage_tolerance: HumanDuration::from_secs(3600),
            external_url: String::new(),
            datasource_uid: String::new(),
            external_labels: BTreeMap::new(),
            max_concurrent_evaluations: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            // Bounds on what tenants may make the ruler hold: far above
            // what one team writes, far below what would strain memory.
            max_rule_groups_per_tenant: 1000,
            max_rules_per_rule_group: 200,
            remote_write: RemoteWriteConfig::default(),
            instance_id: String::new(),
            api_forward_url: String::new(),
            api_forward_timeout: HumanDuration::from_secs(30),
            api_forward_client: ClientTlsConfig::default(),
        }
    }
}

/// Where the ruler runs its queries (Loki's `ruler.evaluation` keys).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// `local` (the default): with the query engine in this process, over
    /// this node's data. `remote`: as instant queries to
    /// `query_frontend.address`, a node that sees every line (the read
    /// nodes' Service), for a ruler on a node that holds no data itself.
    pub mode: EvaluationMode,
    /// The node `remote` evaluation asks.
    pub query_frontend: QueryFrontendConfig,
}

/// `ruler.evaluation.mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EvaluationMode {
    /// In this process.
    #[default]
    Local,
    /// Through another node's query API.
    Remote,
}

/// `ruler.evaluation.query_frontend`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryFrontendConfig {
    /// Base URL of the query API (`http://larch-read:3100`); the ruler asks
    /// `<address>/loki/api/v1/query` with the group's tenant as
    /// `X-Scope-OrgID`.
    pub address: String,
    /// A file holding a bearer token with read access to every tenant
    /// that has rules (read at each evaluation, so a rotated token is
    /// used at once); none: no `Authorization` header.
    pub token_file: Option<PathBuf>,
    /// Longest one query may take (default 1m).
    pub timeout: HumanDuration,
    /// Require TLS: `address` must then be `https://` (which alone turns
    /// TLS on). Loki's key; the `tls_*` keys below are its client's too.
    pub tls_enabled: bool,
    /// CA certificates (PEM) the query node's certificate is checked
    /// against; unset: the system's roots.
    pub tls_ca_path: Option<PathBuf>,
    /// Client certificate (PEM), for a query node that asks for one.
    pub tls_cert_path: Option<PathBuf>,
    /// Its key.
    pub tls_key_path: Option<PathBuf>,
    /// Name the query node's certificate is checked for; empty: the host
    /// of `address`.
    pub tls_server_name: String,
}

impl Default for QueryFrontendConfig {
    fn default() -> QueryFrontendConfig {
        QueryFrontendConfig {
            address: String::new(),
            token_file: None,
            timeout: HumanDuration::from_secs(60),
            tls_enabled: false,
            tls_ca_path: None,
            tls_cert_path: None,
            tls_key_path: None,
            tls_server_name: String::new(),
        }
    }
}

impl QueryFrontendConfig {
    /// The TLS settings.
    pub fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            tls_enabled: self.tls_enabled,
            tls_ca_path: self.tls_ca_path.clone(),
            tls_cert_path: self.tls_cert_path.clone(),
            tls_key_path: self.tls_key_path.clone(),
            tls_server_name: self.tls_server_name.clone(),
        }
    }
}

/// URLs given as a YAML list or as one comma-separated string.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct UrlList(pub Vec<String>);

impl<'de> Deserialize<'de> for UrlList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UrlList, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let list = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::to_string).collect(),
            Raw::Many(v) => v,
        };
        Ok(UrlList(
            list.into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ))
    }
}

/// How a client authenticates (Loki's `alertmanager_client` keys).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuth {
    /// Basic authentication user.
    pub basic_auth_username: String,
    /// Basic authentication password.
    pub basic_auth_password: String,
    /// Scheme of `credentials` in the `Authorization` header (default
    /// `Bearer`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Credentials sent as `Authorization: <type> <credentials>`.
    pub credentials: String,
    /// CA certificates (PEM) an `https://` Alertmanager's certificate is
    /// checked against; unset: the system's roots.
    pub tls_ca_path: Option<PathBuf>,
    /// Client certificate (PEM), for an Alertmanager that asks for one.
    pub tls_cert_path: Option<PathBuf>,
    /// Its key.
    pub tls_key_path: Option<PathBuf>,
    /// Name the Alertmanager's certificate is checked for; empty: the
    /// host of its URL.
    pub tls_server_name: String,
}

impl ClientAuth {
    /// The TLS settings.
    pub fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            tls_enabled: false,
            tls_ca_path: self.tls_ca_path.clone(),
            tls_cert_path: self.tls_cert_path.clone(),
            tls_key_path: self.tls_key_path.clone(),
            tls_server_name: self.tls_server_name.clone(),
        }
    }

    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        if !self.credentials.is_empty() {
            let kind = if self.kind.is_empty() {
                "Bearer"
            } else {
                &self.kind
            };
            return Some(format!("{kind} {}", self.credentials));
        }
        if !self.basic_auth_username.is_empty() {
            let raw = format!("{}:{}", self.basic_auth_username, self.basic_auth_password);
            return Some(format!("Basic {}", STANDARD.encode(raw)));
        }
        None
    }
}

/// Remote write of recorded samples (Loki's `ruler.remote_write`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// Send samples (default false; then recording rules' results are
    /// shown nowhere but in the rules API's health).
    pub enabled: bool,
    /// Shorthand for a single client with default settings: its URL
    /// (`http://prometheus:9090/api/v1/write`).
    pub url: String,
    /// One client (Loki's older key).
    pub client: Option<RemoteWriteClient>,
    /// Clients by name; every sample goes to each.
    pub clients: BTreeMap<String, RemoteWriteClient>,
    /// Send the tenant as `X-Scope-OrgID` (default true, as Loki), so a
    /// multi-tenant receiver (Mimir, Cortex) keeps tenants apart.
    pub add_org_id_header: bool,
}

impl Default for RemoteWriteConfig {
    fn default() -> RemoteWriteConfig {
        RemoteWriteConfig {
            enabled: false,
            url: String::new(),
            client: None,
            clients: BTreeMap::new(),
            add_org_id_header: true,
        }
    }
}

impl RemoteWriteConfig {
    /// Every configured client with its name (`default` for `url` and
    /// `client`).
    pub fn all_clients(&self) -> Vec<(String, RemoteWriteClient)> {
        let mut out = Vec::new();
        if !self.url.is_empty() {
            out.push((
                "default".to_string(),
                RemoteWriteClient {
                    url: self.url.clone(),
                    ..RemoteWriteClient::default()
                },
            ));
        }
        if let Some(c) = &self.client {
            let name = if out.is_empty() { "default" } else { "client" };
            out.push((name.to_string(), c.clone()));
        }
        for (name, c) in &self.clients {
            out.push((name.clone(), c.clone()));
        }
        out
    }
}

/// One remote write destination (Prometheus' `remote_write` keys that
/// apply).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteClient {
    /// The receiver's write URL.
    pub url: String,
    /// Longest one request may take (Prometheus: 30s).
    pub remote_timeout: HumanDuration,
    /// Extra request headers (`X-Scope-OrgID` is the ruler's own and is
    /// ignored here).
    pub headers: BTreeMap<String, String>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// The queue and its retries.
    pub queue_config: QueueConfig,
    /// TLS of an `https://` receiver (Prometheus' `tls_config`).
    pub tls_config: PromTlsConfig,
}

/// Prometheus' `tls_config` of a remote write client.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PromTlsConfig {
    /// CA certificates (PEM); unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its key.
    pub key_file: Option<PathBuf>,
    /// Name the receiver's certificate is checked for; empty: the URL's
    /// host.
    pub server_name: String,
}

impl PromTlsConfig {
    /// The same settings in the store's client shape.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            tls_enabled: false,
            tls_ca_path: self.ca_file.clone(),
            tls_cert_path: self.cert_file.clone(),
            tls_key_path: self.key_file.clone(),
            tls_server_name: self.server_name.clone(),
        }
    }
}

impl Default for RemoteWriteClient {
    fn default() -> RemoteWriteClient {
        RemoteWriteClient {
            url: String::new(),
            remote_timeout: HumanDuration::from_secs(30),
            headers: BTreeMap::new(),
            basic_auth: None,
            queue_config: QueueConfig::default(),
            tls_config: PromTlsConfig::default(),
        }
    }
}

/// Basic authentication.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    /// User.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The bounded queue of samples waiting to be sent, and how failures are
/// retried (Prometheus' `queue_config` keys and defaults).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples the queue holds; past it new samples are dropped and
    /// counted (`reason="queue_full"`). Prometheus: 10000.
    pub capacity: usize,
    /// Most samples per request (Prometheus: 2000).
    pub max_samples_per_send: usize,
    /// First wait after a failed request, doubled each time (Prometheus:
    /// 30ms).
    pub min_backoff: HumanDuration,
    /// Longest wait between retries (Prometheus: 5s).
    pub max_backoff: HumanDuration,
    /// Retry requests answered 429 like 5xx (default false, as
    /// Prometheus: they are dropped and counted).
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            capacity: 10_000,
            max_samples_per_send: 2000,
            min_backoff: HumanDuration(std::time::Duration::from_millis(30)),
            max_backoff: HumanDuration::from_secs(5),
            retry_on_http_429: false,
        }
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// An `http://` or `https://` URL with a host; its TLS settings (`tls`:
/// their key and them) are checked too, and `tls_enabled` needs `https://`.
fn check_url(key: &str, url: &str, tls: (&str, &ClientTlsConfig)) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| invalid(key, format!("{url:?} is not an http:// or https:// URL")))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(key, format!("{url:?} has no host")));
    }
    let (tls_key, tls) = tls;
    tls.validate(tls_key).map_err(|e| invalid(tls_key, e))?;
    if tls.tls_enabled && !url.starts_with("https://") {
        return Err(invalid(
            format!("{tls_key}.tls_enabled"),
            format!("needs an https:// URL, not {url:?}"),
        ));
    }
    Ok(())
}

impl RulerConfig {
    /// The rule directory: `rule_path`, or `<data_dir>/rules`.
    pub fn rule_dir(&self, data_dir: &Path) -> PathBuf {
        if self.rule_path.as_os_str().is_empty() {
            data_dir.join("rules")
        } else {
            self.rule_path.clone()
        }
    }

    /// The name of this ruler's alert state in the bucket:
    /// `instance_id`, or the host's name.
    pub fn instance(&self) -> String {
        if self.instance_id.is_empty() {
            crate::cluster::membership::hostname()
        } else {
            self.instance_id.clone()
        }
    }

    /// Checks what types cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.api_forward_url.is_empty() {
            if self.enabled {
                return Err(invalid(
                    "ruler.api_forward_url",
                    "is only used with ruler.enabled: false (a node that runs the ruler serves its own API)",
                ));
            }
            check_url(
                "ruler.api_forward_url",
                &self.api_forward_url,
                ("ruler.api_forward_client", &self.api_forward_client),
            )?;
            if self.api_forward_timeout.is_zero() {
                return Err(invalid("ruler.api_forward_timeout", "must be positive"));
            }
        }
        for (key, d) in [
            ("ruler.evaluation_interval", self.evaluation_interval),
            ("ruler.poll_interval", self.poll_interval),
            ("ruler.notification_timeout", self.notification_timeout),
            ("ruler.resend_delay", self.resend_delay),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be positive"));
            }
        }
        let qf = &self.evaluation.query_frontend;
        match self.evaluation.mode {
            EvaluationMode::Remote => {
                check_url(
                    "ruler.evaluation.query_frontend.address",
                    &qf.address,
                    ("ruler.evaluation.query_frontend", &qf.tls()),
                )?;
                if qf.timeout.is_zero() {
                    return Err(invalid(
                        "ruler.evaluation.query_frontend.timeout",
                        "must be positive",
                    ));
                }
            }
            EvaluationMode::Local if !qf.address.is_empty() => {
                return Err(invalid(
                    "ruler.evaluation.query_frontend.address",
                    "is only used with ruler.evaluation.mode: remote",
                ));
            }
            EvaluationMode::Local => {}
        }
        for (i, url) in self.alertmanager_url.0.iter().enumerate() {
            check_url(
                &format!("ruler.alertmanager_url[{i}]"),
                url,
                ("ruler.alertmanager_client", &self.alertmanager_client.tls()),
            )?;
        }
        if self.notification_queue_capacity == 0 {
            return Err(invalid(
                "ruler.notification_queue_capacity",
                "must be positive",
            ));
        }
        if self.max_concurrent_evaluations == 0 {
            return Err(invalid(
                "ruler.max_concurrent_evaluations",
                "must be positive",
            ));
        }
        for k in self.external_labels.keys() {
            if !larch_go::labels::is_valid_label_name(k) {
                return Err(invalid(
                    format!("ruler.external_labels.{k}"),
                    "not a valid label name",
                ));
            }
        }
        let rw = &self.remote_write;
        let clients = rw.all_clients();
        if rw.enabled && clients.is_empty() {
            return Err(invalid(
                "ruler.remote_write",
                "remote write is enabled but no client is configured (url, client or clients)",
            ));
        }
        if !rw.enabled && !clients.is_empty() {
            return Err(invalid(
                "ruler.remote_write.enabled",
                "clients are configured but remote write is not enabled; set enabled: true",
            ));
        }
        for (name, c) in &clients {
            let key = format!("ruler.remote_write.clients.{name}");
            check_url(
                &format!("{key}.url"),
                &c.url,
                (&format!("{key}.tls_config"), &c.tls_config.client()),
            )?;
            let q = &c.queue_config;
            if q.capacity == 0 || q.max_samples_per_send == 0 {
                return Err(invalid(
                    format!("{key}.queue_config"),
                    "capacity and max_samples_per_send must be positive",
                ));
            }
            if q.min_backoff.is_zero() || q.max_backoff < q.min_backoff {
                return Err(invalid(
                    format!("{key}.queue_config"),
                    "min_backoff must be positive and at most max_backoff",
                ));
            }
            if c.remote_timeout.is_zero() {
                return Err(invalid(format!("{key}.remote_timeout"), "must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> RulerConfig {
        larch_config::yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn urls_as_list_or_comma_separated() {
        let c = parse("alertmanager_url: http://a:9093, http://b:9093\n");
        assert_eq!(c.alertmanager_url.0, ["http://a:9093", "http://b:9093"]);
        let c = parse("alertmanager_url: [http://a:9093]\n");
        assert_eq!(c.alertmanager_url.0, ["http://a:9093"]);
        c.validate().unwrap();
        // https, with the client's TLS keys checked.
        let c = parse(
            "alertmanager_url: https://a:9093\nalertmanager_client:\n  tls_ca_path: /ca.pem\n",
        );
        c.validate().unwrap();
        let c = parse(
            "alertmanager_url: https://a:9093\nalertmanager_client:\n  tls_cert_path: /c.pem\n",
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("ruler.alertmanager_client.tls_cert_path is set without tls_key_path"),
            "{e}"
        );
        let c = parse("alertmanager_url: ftp://a\n");
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("not an http:// or https:// URL")
        );
        let c = parse(
            "evaluation:\n  mode: remote\n  query_frontend:\n    address: http://read:3100\n    tls_enabled: true\n",
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("ruler.evaluation.query_frontend.tls_enabled"),
            "{e}"
        );
        let c = parse(
            "remote_write:\n  enabled: true\n  clients:\n    p:\n      url: https://p/api/v1/write\n      tls_config: {ca_file: /ca.pem, server_name: prom.example}\n",
        );
        c.validate().unwrap();
        assert_eq!(
            c.remote_write.all_clients()[0]
                .1
                .tls_config
                .client()
                .tls_server_name,
            "prom.example"
        );
    }

    #[test]
    fn remote_write_clients() {
        let c = parse(
            "remote_write:\n  enabled: true\n  url: http://p:9090/api/v1/write\n  clients:\n    mimir:\n      url: http://m/api/v1/push\n      queue_config: {capacity: 5}\n",
        );
        c.validate().unwrap();
        let all = c.remote_write.all_clients();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "default");
        assert_eq!(all[1].1.queue_config.capacity, 5);
        assert_eq!(all[1].1.queue_config.max_samples_per_send, 2000);
        let c = parse("remote_write:\n  enabled: true\n");
        assert!(c.validate().is_err());
        let c = parse("remote_write:\n  url: http://p/api/v1/write\n");
        assert!(c.validate().unwrap_err().to_string().contains("enabled"));
    }

    #[test]
    fn defaults() {
        let c = RulerConfig::default();
        c.validate().unwrap();
        assert!(c.enable_api);
        assert_eq!(c.rule_dir(Path::new("/d")), Path::new("/d/rules"));
        assert_eq!(c.evaluation_interval, HumanDuration::from_secs(60));
        assert!(larch_config::yaml::from_str::<RulerConfig>("rule_pth: x\n").is_err());
    }

    #[test]
    fn evaluation_modes() {
        let c = RulerConfig::default();
        assert!(c.enabled);
        assert_eq!(c.evaluation.mode, EvaluationMode::Local);
        let c = parse(
            "enabled: true\nevaluation:\n  mode: remote\n  query_frontend:\n    address: http://larch-read:3100\n    token_file: /t\n",
        );
        c.validate().unwrap();
        assert_eq!(c.evaluation.mode, EvaluationMode::Remote);
        assert_eq!(
            c.evaluation.query_frontend.timeout,
            HumanDuration::from_secs(60)
        );
        let e = parse("evaluation:\n  mode: remote\n")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("query_frontend.address"), "{e}");
        let e = parse("evaluation:\n  query_frontend:\n    address: http://r:3100\n")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("mode: remote"), "{e}");
        assert!(larch_config::yaml::from_str::<RulerConfig>("evaluation:\n  mode: far\n").is_err());
        assert!(!parse("enabled: false\n").enabled);
    }

    #[test]
    fn storage_and_forwarding() {
        assert_eq!(RulerConfig::default().storage.kind, RuleStorageType::Local);
        for kind in ["bucket", "s3", "gcs", "azure", "filesystem"] {
            let c = parse(&format!("storage:\n  type: {kind}\n"));
            assert_eq!(c.storage.kind, RuleStorageType::Bucket, "{kind}");
        }
        assert!(larch_config::yaml::from_str::<RulerConfig>("storage:\n  type: swift\n").is_err());
        let c = parse("enabled: false\napi_forward_url: http://larch-backend:3100\n");
        c.validate().unwrap();
        let e = parse("api_forward_url: http://larch-backend:3100\n")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("enabled: false"), "{e}");
        let e = parse("enabled: false\napi_forward_url: larch-backend:3100\n")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        assert_eq!(parse("instance_id: r1\n").instance(), "r1");
        assert!(!RulerConfig::default().instance().is_empty());
    }

    #[test]
    fn auth_header() {
        let a = ClientAuth {
            basic_auth_username: "u".into(),
            basic_auth_password: "p".into(),
            ..ClientAuth::default()
        };
        assert_eq!(a.header().unwrap(), "Basic dTpw");
        let a = ClientAuth {
            credentials: "t".into(),
            ..ClientAuth::default()
        };
        assert_eq!(a.header().unwrap(), "Bearer t");
        assert_eq!(ClientAuth::default().header(), None);
    }
}
