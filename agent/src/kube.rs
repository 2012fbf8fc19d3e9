//! Pod metadata from the Kubernetes API: a cache of this node's pods,
//! filled by list and kept current by watch.
//!
//! The agent asks only for pods bound to its node
//! (`fieldSelector=spec.nodeName=<node>`), so the cache holds tens of pods,
//! not the cluster. The loop is the usual informer: list (remember the
//! `resourceVersion`), watch from there (`ADDED`, `MODIFIED`, `DELETED`,
//! `BOOKMARK`), and relist after a `410 Gone` or any error, with backoff.
//! Deleted pods stay in the cache for ten minutes, because their log files
//! are still being drained (and a short-lived pod may be gone before its
//! file is first read).
//!
//! Pods are found by UID and, for static pods (whose log directory is named
//! after the config hash), by the `kubernetes.io/config.hash` /
//! `kubernetes.io/config.mirror` annotation.
//!
//! In a cluster the API server is `https://$KUBERNETES_SERVICE_HOST:$PORT`,
//! authenticated with the service account token (re-read before every
//! request: projected tokens rotate) and verified with its CA.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::{KubeConfig, KubeMode};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::metrics::{Counter, Registry};
use larch_go::labels::sanitize_label_name;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the agent knows of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Node it runs on.
    pub node_name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// Kind of the controlling owner (`ReplicaSet`, `DaemonSet`, …).
    pub controller_kind: Option<String>,
    /// Name of the controlling owner.
    pub controller_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerRef>,
}

#[derive(Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
struct PodSpec {
    #[serde(default, rename = "nodeName")]
    node_name: String,
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

#[derive(Deserialize)]
struct PodList {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

impl From<Pod> for PodMeta {
    fn from(p: Pod) -> PodMeta {
        let owner = p
            .metadata
            .owner_references
            .into_iter()
            .find(|o| o.controller == Some(true));
        PodMeta {
            namespace: p.metadata.namespace,
            name: p.metadata.name,
            uid: p.metadata.uid,
            node_name: p.spec.node_name,
            labels: p.metadata.labels,
            annotations: p.metadata.annotations,
            controller_kind: owner.as_ref().map(|o| o.kind.clone()),
            controller_name: owner.map(|o| o.name),
        }
    }
}

struct Entry {
    meta: Arc<PodMeta>,
    deleted: Option<Instant>,
}

/// The pods of this node, by UID (and config hash for static pods).
#[derive(Default)]
pub struct KubeCache {
    pods: RwLock<HashMap<String, Entry>>,
}

const DELETED_TTL: Duration = Duration::from_secs(600);

fn keys(m: &PodMeta) -> impl Iterator<Item = &str> {
    std::iter::once(m.uid.as_str())
        .chain(
            m.annotations
                .get("kubernetes.io/config.hash")
                .map(|s| s.as_str()),
        )
        .chain(
            m.annotations
                .get("kubernetes.io/config.mirror")
                .map(|s| s.as_str()),
        )
        .filter(|k| !k.is_empty())
}

impl KubeCache {
    /// An empty cache.
    pub fn new() -> Self {
        KubeCache::default()
    }

    /// The pod whose log directory carries `uid`.
    pub fn pod(&self, uid: &str) -> Option<Arc<PodMeta>> {
        let pods = self.pods.read().unwrap_or_else(|p| p.into_inner());
        pods.get(uid).map(|e| e.meta.clone())
    }

    /// Number of pods cached (including recently deleted ones).
    pub fn len(&self) -> usize {
        self.pods.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn upsert(&self, m: PodMeta) {
        let m = Arc::new(m);
        let mut pods = self.pods.write().unwrap_or_else(|p| p.into_inner());
        for k in keys(&m) {
            pods.insert(
                k.to_string(),
                Entry {
                    meta: m.clone(),
                    deleted: None,
                },
            );
        }
    }

    fn delete(&self, m: &PodMeta) {
        let now = Instant::now();
        let mut pods = self.pods.write().unwrap_or_else(|p| p.into_inner());
        for k in keys(m) {
            if let Some(e) = pods.get_mut(k) {
                e.deleted = Some(now);
            }
        }
        pods.retain(|_, e| {
            e.deleted
                .is_none_or(|t| now.duration_since(t) < DELETED_TTL)
        });
    }

    fn replace(&self, list: Vec<PodMeta>) {
        let now = Instant::now();
        let mut pods = self.pods.write().unwrap_or_else(|p| p.into_inner());
        // Pods missing from a fresh list were deleted while we were not
        // watching; keep them for the drain period like any deleted pod.
        for e in pods.values_mut() {
            if e.deleted.is_none() {
                e.deleted = Some(now);
            }
        }
        for m in list {
            let m = Arc::new(m);
            for k in keys(&m) {
                pods.insert(
                    k.to_string(),
                    Entry {
                        meta: m.clone(),
                        deleted: None,
                    },
                );
            }
        }
        pods.retain(|_, e| {
            e.deleted
                .is_none_or(|t| now.duration_since(t) < DELETED_TTL)
        });
    }
}

/// Adds `__meta_kubernetes_*` labels (Prometheus' names) for relabeling.
pub fn meta_labels(m: &PodMeta, container: &str, out: &mut Labels) {
    out.set("__meta_kubernetes_namespace", &m.namespace);
    out.set("__meta_kubernetes_pod_name", &m.name);
    out.set("__meta_kubernetes_pod_uid", &m.uid);
    out.set("__meta_kubernetes_pod_node_name", &m.node_name);
    out.set("__meta_kubernetes_pod_container_name", container);
    for (k, v) in &m.labels {
        let n = sanitize_label_name(k);
        out.set(&format!("__meta_kubernetes_pod_label_{n}"), v);
        out.set(&format!("__meta_kubernetes_pod_labelpresent_{n}"), "true");
    }
    for (k, v) in &m.annotations {
        let n = sanitize_label_name(k);
        out.set(&format!("__meta_kubernetes_pod_annotation_{n}"), v);
    }
    if let (Some(kind), Some(name)) = (&m.controller_kind, &m.controller_name) {
        out.set("__meta_kubernetes_pod_controller_kind", kind);
        out.set("__meta_kubernetes_pod_controller_name", name);
    }
}

/// The controller's name, without the pod-template hash a Deployment's
/// ReplicaSet carries (`cart-7d9f8c6b5` → `cart`).
pub fn controller_base_name(m: &PodMeta) -> Option<String> {
    let name = m.controller_name.as_deref()?;
    if m.controller_kind.as_deref() == Some("ReplicaSet")
        && let Some((base, hash)) = name.rsplit_once('-')
        && (5..=10).contains(&hash.len())
        && hash
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !base.is_empty()
    {
        return Some(base.to_string());
    }
    Some(name.to_string())
}

/// The labels Promtail's Helm chart derives from pod metadata, used when no
/// `relabel_configs` are given: `app` (first of `app.kubernetes.io/name`,
/// `app`, the controller's name, the pod's name), `instance`
/// (`app.kubernetes.io/instance` or `instance`), `component`
/// (`app.kubernetes.io/component` or `component`) and `job`
/// (`<namespace>/<app>`).
pub fn default_labels(m: &PodMeta, out: &mut Labels) {
    let first = |keys: &[&str]| {
        keys.iter()
            .filter_map(|k| m.labels.get(*k))
            .find(|v| !v.is_empty())
            .cloned()
    };
    let app = first(&["app.kubernetes.io/name", "app"])
        .or_else(|| controller_base_name(m))
        .unwrap_or_else(|| m.name.clone());
    if let Some(i) = first(&["app.kubernetes.io/instance", "instance"]) {
        out.set("instance", &i);
    }
    if let Some(c) = first(&["app.kubernetes.io/component", "component"]) {
        out.set("component", &c);
    }
    out.set("job", &format!("{}/{app}", m.namespace));
    out.set("app", &app);
}

/// How to reach the API server.
#[derive(Clone, Debug)]
pub struct KubeAccess {
    /// Base URL, e.g. `https://10.0.0.1:443`.
    pub api_server: String,
    /// Bearer token file.
    pub token_file: Option<PathBuf>,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
}

/// Decides from the configuration and the environment whether to use the
/// API; `Ok(None)` means off.
pub fn access(cfg: &KubeConfig) -> Result<Option<KubeAccess>> {
    if cfg.mode == KubeMode::Off {
        return Ok(None);
    }
    let sa = Path::new(SA_DIR);
    let in_cluster_url = match (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) {
        (Ok(h), Ok(p)) if !h.is_empty() => Some(if h.contains(':') {
            format!("https://[{h}]:{p}")
        } else {
            format!("https://{h}:{p}")
        }),
        _ => None,
    };
    let api_server = match (&cfg.api_server, in_cluster_url) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(u)) => u,
        (None, None) => {
            if cfg.mode == KubeMode::On {
                return Err(Error::Config(
                    "kubernetes.mode is on but no API server is known: set kubernetes.api_server or run in a cluster".into(),
                ));
            }
            return Ok(None);
        }
    };
    let default_token = sa.join("token");
    let token_file = cfg
        .token_file
        .clone()
        .or_else(|| default_token.exists().then_some(default_token));
    let default_ca = sa.join("ca.crt");
    let ca_file = cfg.ca_file.clone().or_else(|| {
        (api_server.starts_with("https://") && default_ca.exists()).then_some(default_ca)
    });
    if cfg.mode == KubeMode::Auto && cfg.api_server.is_none() && token_file.is_none() {
        return Ok(None);
    }
    Ok(Some(KubeAccess {
        api_server,
        token_file,
        ca_file,
    }))
}

type KubeClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

struct Watch {
    client: KubeClient,
    access: KubeAccess,
    node: String,
    cache: Arc<KubeCache>,
    errors: Counter,
    events: Counter,
}

fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Watch {
    fn request(&self, path_and_query: &str) -> Result<hyper::Request<Empty<Bytes>>> {
        let url = format!("{}{path_and_query}", self.access.api_server);
        let mut req = hyper::Request::get(&url).header(hyper::header::ACCEPT, "application/json");
        if let Some(t) = &self.access.token_file {
            let token = std::fs::read_to_string(t).map_err(|e| Error::io("read token", t, e))?;
            req = req.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            );
        }
        req.body(Empty::new()).map_err(|e| Error::Kube {
            url,
            message: e.to_string(),
        })
    }

    fn selector(&self) -> String {
        encode_query(&format!("spec.nodeName={}", self.node))
    }

    async fn list(&self) -> Result<String> {
        let q = format!("/api/v1/pods?fieldSelector={}", self.selector());
        let req = self.request(&q)?;
        let url = req.uri().to_string();
        let kerr = |message: String| Error::Kube {
            url: url.clone(),
            message,
        };
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .map_err(|_| kerr("timed out".into()))?
            .map_err(|e| kerr(e.to_string()))?;
        let status = resp.status();
        let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .map_err(|_| kerr("timed out reading the pod list".into()))?
            .map_err(|e| kerr(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(kerr(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            )));
        }
        let list: PodList =
            serde_json::from_slice(&body).map_err(|e| kerr(format!("bad pod list: {e}")))?;
        let n = list.items.len();
        self.cache
            .replace(list.items.into_iter().map(PodMeta::from).collect());
        tracing::info!(pods = n, node = %self.node, "Listed this node's pods.");
        Ok(list.metadata.resource_version)
    }

    /// Watches from `rv`; returns the last resource version seen, or
    /// `None` when the version is too old (relist).
    async fn watch(&self, mut rv: String) -> Result<Option<String>> {
        let q = format!(
            "/api/v1/pods?fieldSelector={}&watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={}",
            self.selector(),
            encode_query(&rv)
        );
        let req = self.request(&q)?;
        let url = req.uri().to_string();
        let kerr = |message: String| Error::Kube {
            url: url.clone(),
            message,
        };
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .map_err(|_| kerr("timed out".into()))?
            .map_err(|e| kerr(e.to_string()))?;
        if resp.status() == hyper::StatusCode::GONE {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(kerr(resp.status().to_string()));
        }
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // The server closes the watch after timeoutSeconds; a silent
            // connection for longer than that is dead.
            let frame = match tokio::time::timeout(Duration::from_secs(330), body.frame()).await {
                Err(_) => return Err(kerr("watch went silent".into())),
                Ok(None) => return Ok(Some(rv)),
                Ok(Some(Err(e))) => return Err(kerr(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            if buf.len() > 16 << 20 {
                return Err(kerr("watch event larger than 16 MiB".into()));
            }
            while let Some(nl) = memchr::memchr(b'\n', &buf) {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if line.iter().all(|c| c.is_ascii_whitespace()) {
                    continue;
                }
                let ev: WatchEvent = match serde_json::from_slice(&line) {
                    Ok(ev) => ev,
                    Err(e) => {
                        self.errors.inc();
                        tracing::warn!(error = %e, "Unreadable watch event; skipping it.");
                        continue;
                    }
                };
                self.events.inc();
                match ev.kind.as_str() {
                    "ERROR" => {
                        let code = ev.object.get("code").and_then(|c| c.as_u64());
                        if code == Some(410) {
                            return Ok(None);
                        }
                        return Err(kerr(format!("watch error: {}", ev.object)));
                    }
                    kind => {
                        let pod: Pod = match serde_json::from_value(ev.object) {
                            Ok(p) => p,
                            Err(e) => {
                                self.errors.inc();
                                tracing::warn!(error = %e, "Unreadable pod in watch event; skipping it.");
                                continue;
                            }
                        };
                        if !pod.metadata.resource_version.is_empty() {
                            rv = pod.metadata.resource_version.clone();
                        }
                        match kind {
                            "ADDED" | "MODIFIED" => self.cache.upsert(pod.into()),
                            "DELETED" => self.cache.delete(&pod.into()),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

/// Starts the list/watch loop on the current Tokio runtime; it runs until
/// the runtime shuts down.
pub fn spawn(access: KubeAccess, node: String, registry: &Registry) -> Result<Arc<KubeCache>> {
    let connector = crate::client::https_connector(&access.api_server, access.ca_file.as_deref())?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let cache = Arc::new(KubeCache::new());
    let w = Watch {
        client,
        access,
        node,
        cache: cache.clone(),
        errors: registry.counter(
            "larch_agent_kubernetes_errors_total",
            "Failed requests to, and unreadable answers from, the Kubernetes API.",
        ),
        events: registry.counter(
            "larch_agent_kubernetes_watch_events_total",
            "Pod watch events received.",
        ),
    };
    tokio::spawn(async move {
        let mut attempt = 0u32;
        let mut rand = crate::time::now_nanos() as u64 | 1;
        loop {
            let result = async {
                let mut rv = w.list().await?;
                loop {
                    match w.watch(rv).await? {
                        Some(next) => rv = next,
                        None => rv = w.list().await?,
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = result {
                w.errors.inc();
                let d = crate::client::backoff(
                    attempt,
                    Duration::from_millis(500),
                    Duration::from_secs(30),
                    &mut rand,
                );
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, retry_in = ?d, "Kubernetes API request failed.");
                tokio::time::sleep(d).await;
            }
        }
    });
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> PodMeta {
        PodMeta {
            namespace: "shop".into(),
            name: "cart-7d9f8c6b5-x2x4z".into(),
            uid: "u1".into(),
            node_name: "n1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            controller_kind: owner.map(|o| o.0.to_string()),
            controller_name: owner.map(|o| o.1.to_string()),
        }
    }

    #[test]
    fn default_labels_follow_the_helm_chart() {
        let mut l = Labels::new();
        default_labels(
            &meta(
                &[
                    ("app.kubernetes.io/name", "cart"),
                    ("app", "x"),
                    ("component", "api"),
                ],
                None,
            ),
            &mut l,
        );
        assert_eq!(
            l.to_text(),
            r#"{app="cart", component="api", job="shop/cart"}"#
        );
        let mut l = Labels::new();
        default_labels(&meta(&[], Some(("ReplicaSet", "cart-7d9f8c6b5"))), &mut l);
        assert_eq!(l.get("app"), Some("cart"));
        let mut l = Labels::new();
        default_labels(&meta(&[], Some(("DaemonSet", "node-exporter"))), &mut l);
        assert_eq!(l.get("app"), Some("node-exporter"));
        let mut l = Labels::new();
        default_labels(&meta(&[], None), &mut l);
        assert_eq!(l.get("app"), Some("cart-7d9f8c6b5-x2x4z"));
    }

    #[test]
    fn meta_labels_are_sanitized() {
        let mut l = Labels::new();
        meta_labels(
            &meta(
                &[("app.kubernetes.io/name", "cart")],
                Some(("ReplicaSet", "rs")),
            ),
            "c",
            &mut l,
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_label_app_kubernetes_io_name"),
            Some("cart")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"),
            Some("true")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_controller_kind"),
            Some("ReplicaSet")
        );
        assert_eq!(l.get("__meta_kubernetes_pod_container_name"), Some("c"));
    }

    #[test]
    fn cache_keeps_deleted_pods_and_static_pod_hashes() {
        let c = KubeCache::new();
        let mut m = meta(&[], None);
        m.annotations
            .insert("kubernetes.io/config.hash".into(), "abc".into());
        c.upsert(m.clone());
        assert!(c.pod("u1").is_some());
        assert_eq!(c.pod("abc").unwrap().name, m.name);
        c.delete(&m);
        assert!(c.pod("u1").is_some(), "kept for draining");
        c.replace(vec![]);
        assert!(c.pod("u1").is_some());
    }

    #[test]
    fn access_modes() {
        let off = KubeConfig {
            mode: KubeMode::Off,
            ..KubeConfig::default()
        };
        assert!(access(&off).unwrap().is_none());
        let on = KubeConfig {
            mode: KubeMode::On,
            api_server: Some("http://127.0.0.1:1/".into()),
            ..KubeConfig::default()
        };
        let a = access(&on).unwrap().unwrap();
        assert_eq!(a.api_server, "http://127.0.0.1:1");
        assert_eq!(encode_query("spec.nodeName=n 1"), "spec.nodeName%3Dn%201");
    }
}
