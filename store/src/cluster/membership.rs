//! The current member set: the static list (`cluster.members`) or the
//! addresses of the DNS name (`cluster.dns`), resolved again every
//! `refresh_period`, less the members that do not answer
//! `larch.Replica/Ready` or answer that they are leaving. This node is a
//! member while it is not leaving. Members that answer that they are
//! leaving are kept apart ([`Members::leaving`]): they own nothing and
//! take no pushes, but still answer queries for what they held until they
//! exit, so the read path asks them too ([`Members::query_targets`]). The
//! set is published as a watch ([`Cluster::members`]); the write path and
//! the read path take the set current when they start.
//!
//! The clients of the other members live here too (one lazily connected
//! gRPC channel per address, on a small runtime of the cluster's own, so
//! blocking callers on the store's threads can use them).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use super::{ClusterConfig, split_host_port};
use crate::objstore::bucket::OwnRuntime;

/// A member set: addresses and identities, sorted by identity, and which
/// one is this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Members' gRPC addresses, in the order of `ids`.
    pub all: Vec<String>,
    /// Members' identities (`cluster.self`, or hostname:grpc port; the
    /// address for a node that does not say), sorted, one per member:
    /// ownership is computed from them ([`super::ring`]), so a node that
    /// comes back with another address (a pod's new IP) keeps its
    /// streams.
    pub ids: Vec<String>,
    /// This node's index in `all` (`None` for a read node, or while
    /// leaving).
    pub me: Option<usize>,
    /// How many write nodes the configuration names (the static list, or
    /// what the DNS name resolved to), ready or not: the replication
    /// factor is capped by it, not by the ready ones, so a cluster that
    /// lost members refuses writes it cannot replicate (as Loki's ring).
    pub candidates: usize,
    /// Addresses of the other nodes that answer `Ready` as leaving: not
    /// members (no ownership, no forwarded pushes), but their query
    /// service still answers for the data they held, flushed or not,
    /// until they exit (see ARCHITECTURE.md, "Leaving").
    pub leaving: Vec<String>,
}

impl Members {
    /// The replication factor in force: `rf`, at most the candidates.
    pub fn replication_factor(&self, rf: usize) -> usize {
        rf.min(self.candidates.max(self.all.len())).max(1)
    }
}

impl Members {
    /// The other members.
    pub fn others(&self) -> impl Iterator<Item = &String> {
        self.all
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != self.me)
            .map(|(_, m)| m)
    }

    /// The nodes a query asks for their unflushed and recently published
    /// data: the other members, then the leaving nodes that still answer.
    pub fn query_targets(&self) -> impl Iterator<Item = (&String, bool)> {
        self.others()
            .map(|m| (m, false))
            .chain(self.leaving.iter().map(|m| (m, true)))
    }
}

/// What a node answers to `larch.Replica/Ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Probe {
    /// It takes streams; its identity (empty when it does not say).
    Ready(String),
    /// It is leaving but still answers queries; its identity.
    Leaving(String),
    /// Not ready, or no answer.
    Unavailable,
}

/// Membership and the clients of the other members.
pub struct Cluster {
    /// The configuration (`cluster:`).
    pub config: ClusterConfig,
    /// This node's identity (`cluster.self`, or hostname:grpc port).
    pub self_addr: String,
    /// Whether this node is a member (a write node) or only asks them.
    pub is_member: bool,
    grpc_port: u16,
    token_file: Option<PathBuf>,
    leaving: AtomicBool,
    members: tokio::sync::watch::Sender<Arc<Members>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// TLS to the other members (`cluster.tls`, or the store's `tls:`).
    connector:
        Option<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>>,
    /// The TLS setup, with the client certificate read again when its
    /// files change (kept here: its watcher ends when it is dropped).
    _tls: Option<crate::tls_client::ClientTls>,
    /// `larch_cluster_members`.
    members_gauge: prometheus_client::metrics::gauge::Gauge,
    /// Permits for forwarded pushes in flight.
    pub forward_slots: Arc<tokio::sync::Semaphore>,
    handle: tokio::runtime::Handle,
    _runtime: OwnRuntime,
}

/// Longest a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Cluster {
    /// Starts membership for a node whose gRPC address is `grpc_addr`:
    /// the first refresh is done before it returns (bounded by the probe
    /// timeout), later ones every `refresh_period` on the cluster's
    /// runtime. `token_file` is sent to the members; with `tls` (the
    /// store serves TLS, so its members do) or `cluster.tls.tls_enabled`
    /// the members are reached over TLS.
    pub fn start(
        config: &ClusterConfig,
        grpc_addr: &str,
        is_member: bool,
        token_file: Option<PathBuf>,
        tls: bool,
        members_gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> std::io::Result<Arc<Cluster>> {
        let tls_setup = (tls || config.tls.tls_enabled)
            .then(|| {
                crate::tls_client::ClientTls::load(
                    &config.tls,
                    "cluster.tls",
                    crate::tls_client::Roots::Required,
                    config.refresh_period.0,
                )
            })
            .transpose()?;
        let connector = tls_setup.as_ref().map(|t| t.grpc_connector());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("larch-cluster")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let grpc_port = split_host_port(grpc_addr).map_or(9095, |(_, p)| p);
        let self_addr = if config.self_addr.trim().is_empty() {
            format!("{}:{grpc_port}", hostname())
        } else {
            config.self_addr.trim().to_string()
        };
        let (tx, _) = tokio::sync::watch::channel(Arc::new(Members::default()));
        let cluster = Arc::new(Cluster {
            config: config.clone(),
            self_addr,
            is_member,
            grpc_port,
            token_file,
            leaving: AtomicBool::new(false),
            members: tx,
            channels: Mutex::new(HashMap::new()),
            connector,
            _tls: tls_setup,
            members_gauge,
            forward_slots: Arc::new(tokio::sync::Semaphore::new(config.max_forward_concurrency)),
            handle: handle.clone(),
            _runtime: OwnRuntime::new(runtime),
        });
        let c = cluster.clone();
        handle.block_on(async move { c.refresh().await });
        let weak = Arc::downgrade(&cluster);
        let period = config.refresh_period.0;
        handle.spawn(async move {
            let mut wait = period;
            loop {
                tokio::time::sleep(wait).await;
                let Some(c) = weak.upgrade() else { return };
                c.refresh().await;
                // While some named node is not a member (starting, or
                // down), look again sooner: a cold start converges in a
                // second rather than a period.
                let m = c.members();
                let missing = m.all.len() < m.candidates && !c.is_leaving();
                wait = if missing {
                    period.min(Duration::from_secs(1))
                } else {
                    period
                };
            }
        });
        Ok(cluster)
    }

    /// The member set now.
    pub fn members(&self) -> Arc<Members> {
        self.members.borrow().clone()
    }

    /// A watch of the member set.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Arc<Members>> {
        self.members.subscribe()
    }

    /// The cluster's runtime (for blocking callers and forwarded pushes).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Whether this node is leaving (takes no new streams).
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Leaves: this node is no longer a member of its own set at once,
    /// and answers `Ready` with false, so the others stop sending it
    /// streams at their next refresh.
    pub fn leave(&self) {
        if !self.leaving.swap(true, Ordering::AcqRel) {
            tracing::info!(node = %self.self_addr, "Leaving the cluster: new streams go to the other members.");
            let mut m = (*self.members()).clone();
            if let Some(i) = m.me.take()
                && i < m.all.len()
                && i < m.ids.len()
            {
                m.all.remove(i);
                m.ids.remove(i);
            }
            self.members_gauge
                .set(i64::try_from(m.all.len()).unwrap_or(i64::MAX));
            self.members.send_replace(Arc::new(m));
        }
    }

    /// The addresses the configuration names now.
    async fn candidates(&self) -> Vec<String> {
        if self.config.dns.trim().is_empty() {
            return self.config.members.clone();
        }
        let name = self.config.dns.trim();
        let target = if split_host_port(name).is_some() {
            name.to_string()
        } else {
            format!("{name}:{}", self.grpc_port)
        };
        match tokio::net::lookup_host(target.clone()).await {
            Ok(addrs) => addrs
                .map(|a| a.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            Err(e) => {
                tracing::warn!(name = %target, error = %e, "Resolving cluster.dns failed; the member set is kept.");
                self.members().all.clone()
            }
        }
    }

    /// This host's addresses, to recognise itself in a list of addresses.
    async fn own_ips(&self) -> Vec<IpAddr> {
        let Some((host, _)) = split_host_port(&self.self_addr) else {
            return Vec::new();
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        match tokio::net::lookup_host((host, 0)).await {
            Ok(a) => a.map(|s| s.ip()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn is_self(&self, addr: &str, own_ips: &[IpAddr]) -> bool {
        if !self.is_member {
            return false;
        }
        if addr == self.self_addr {
            return true;
        }
        match addr.parse::<std::net::SocketAddr>() {
            Ok(sa) => sa.port() == self.grpc_port && own_ips.contains(&sa.ip()),
            Err(_) => false,
        }
    }

    /// Resolves the candidates and asks each other one whether it is
    /// ready; publishes the set if it changed.
    pub async fn refresh(&self) {
        let candidates = self.candidates().await;
        let own = self.own_ips().await;
        let leaving = self.is_leaving();
        let mut probes = Vec::new();
        // (identity, address)
        let mut all: Vec<(String, String)> = Vec::new();
        let mut leavers: Vec<(String, String)> = Vec::new();
        let mut me_addr = None;
        let mut named = candidates.len();
        let mut self_listed = candidates.iter().any(|c| self.is_self(c, &own));
        for c in candidates {
            if self.is_self(&c, &own) {
                if !leaving && me_addr.is_none() {
                    me_addr = Some(c.clone());
                    all.push((self.self_addr.clone(), c));
                }
                continue;
            }
            let probe = self.probe(c.clone());
            probes.push(async move { (c, probe.await) });
        }
        for (c, ready) in futures_util::future::join_all(probes).await {
            match ready {
                // A node that answers with this node's identity is this
                // node under another of its addresses.
                Probe::Ready(id) | Probe::Leaving(id) if self.is_member && id == self.self_addr => {
                    self_listed = true
                }
                Probe::Ready(id) => all.push((if id.is_empty() { c.clone() } else { id }, c)),
                Probe::Leaving(id) => leavers.push((if id.is_empty() { c.clone() } else { id }, c)),
                Probe::Unavailable => {}
            }
        }
        if self.is_member && !self_listed {
            named += 1;
        }
        if self.is_member && me_addr.is_none() && !leaving {
            // Not in the list (a static list naming this node otherwise):
            // it still owns streams, under its own name.
            me_addr = Some(self.self_addr.clone());
            all.push((self.self_addr.clone(), self.self_addr.clone()));
        }
        // One address per identity (two would be the same node: the first
        // in address order is kept).
        all.sort();
        all.dedup_by(|a, b| a.0 == b.0);
        // A leaver is asked once, and not as well as a member of the same
        // identity (the same node under another address).
        leavers.sort();
        leavers.dedup_by(|a, b| a.0 == b.0);
        leavers.retain(|(id, _)| !all.iter().any(|(m, _)| m == id));
        let leaving: Vec<String> = leavers.into_iter().map(|(_, a)| a).collect();
        let me = me_addr.and_then(|a| all.iter().position(|x| x.1 == a));
        self.members_gauge
            .set(i64::try_from(all.len()).unwrap_or(i64::MAX));
        let (ids, all): (Vec<String>, Vec<String>) = all.into_iter().unzip();
        let next = Members {
            all,
            ids,
            me,
            candidates: named,
            leaving,
        };
        self.members.send_if_modified(|cur| {
            if **cur == next {
                return false;
            }
            tracing::info!(members = ?next.all, identities = ?next.ids, leaving = ?next.leaving, "The cluster's member set changed.");
            *cur = Arc::new(next);
            true
        });
    }

    /// Whether the node at `addr` is ready, leaving (but answering), or
    /// neither.
    async fn probe(&self, addr: String) -> Probe {
        let Ok(ch) = self.channel(&addr) else {
            return Probe::Unavailable;
        };
        let mut client = larch_proto::larch::replica_client::ReplicaClient::new(ch);
        let mut req = tonic::Request::new(larch_proto::larch::ReadyRequest {});
        if self.authorize(&mut req).is_err() {
            return Probe::Unavailable;
        }
        match tokio::time::timeout(PROBE_TIMEOUT, client.ready(req)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                if r.ready {
                    Probe::Ready(r.identity)
                } else if r.leaving {
                    Probe::Leaving(r.identity)
                } else {
                    Probe::Unavailable
                }
            }
            _ => Probe::Unavailable,
        }
    }

    /// Adds the token of `token_file` to a request.
    pub fn authorize<T>(&self, req: &mut tonic::Request<T>) -> Result<(), String> {
        if let Some(path) = &self.token_file {
            // Read at every request, so a rotated token is used at once.
            let token = std::fs::read_to_string(path)
                .map_err(|e| format!("cluster token file {}: {e}", path.display()))?;
            let value = format!("Bearer {}", token.trim())
                .parse()
                .map_err(|_| format!("cluster token file {}: not a token", path.display()))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(())
    }

    /// The channel to `addr` (connected on first use).
    pub fn channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.lock().get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.connector.is_some() {
            "https"
        } else {
            "http"
        };
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("{scheme}://{addr}")
        };
        let _guard = self.handle.enter();
        let ep = Endpoint::from_shared(uri)
            .map_err(|e| format!("member {addr}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(self.config.forward_timeout.0);
        let ch = match &self.connector {
            Some(c) => ep.connect_with_connector_lazy(c.clone()),
            None => ep.connect_lazy(),
        };
        let mut map = self.channels.lock();
        // Bounded by the addresses configuration and DNS name give; drop
        // the clients of addresses gone from the set.
        if map.len() > 1024 {
            map.clear();
        }
        Ok(map.entry(addr.to_string()).or_insert(ch).clone())
    }
}

/// The host's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else
/// `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replication_factor_is_capped_by_the_named_nodes_not_the_ready_ones() {
        let m = Members {
            all: vec!["a:1".into()],
            ids: vec!["a".into()],
            me: Some(0),
            candidates: 3,
            leaving: Vec::new(),
        };
        assert_eq!(m.replication_factor(3), 3);
        assert_eq!(m.replication_factor(5), 3);
        assert_eq!(m.replication_factor(1), 1);
        let alone = Members {
            all: vec!["a:1".into()],
            ids: vec!["a".into()],
            me: Some(0),
            candidates: 0,
            leaving: Vec::new(),
        };
        assert_eq!(alone.replication_factor(3), 1);
    }

    #[test]
    fn queries_ask_the_other_members_and_the_leaving_nodes() {
        let m = Members {
            all: vec!["a:1".into(), "b:1".into()],
            ids: vec!["a".into(), "b".into()],
            me: Some(0),
            candidates: 3,
            leaving: vec!["c:1".into()],
        };
        let t: Vec<(&String, bool)> = m.query_targets().collect();
        assert_eq!(t, [(&"b:1".to_string(), false), (&"c:1".to_string(), true)]);
        // A leaver owns nothing: the write path sees the members alone.
        assert_eq!(m.others().collect::<Vec<_>>(), [&"b:1".to_string()]);
    }
}
