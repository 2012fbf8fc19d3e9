//! Several write nodes: who they are, which of them own a stream, and how
//! a push reaches its owners (see ARCHITECTURE.md, "Several write nodes").
//!
//! * [`ClusterConfig`]: `cluster:` (members, DNS name, identity,
//!   replication factor, the inter-node client's bounds).
//! * [`ring`]: ownership by rendezvous hashing of (tenant, fingerprint).
//! * [`membership`]: the current member set, a watch refreshed from the
//!   static list or the DNS name and the members' readiness.
//! * [`forward`]: splitting a validated push by owner, writing the local
//!   share, forwarding the rest (`larch.Replica/Push`) and waiting for a
//!   quorum.
//! * [`stats`]: index statistics with the replicas' copies counted once.

pub mod forward;
pub mod membership;
pub mod ring;
pub mod stats;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use larch_config::{ByteSize, HumanDuration};

pub use membership::{Cluster, Members};

/// `cluster:`: the write nodes that share streams. Off while neither
/// `members` nor `dns` is set (one write node, or the single binary).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The write nodes' gRPC addresses (`host:9095`), this node's
    /// included: a static list.
    pub members: Vec<String>,
    /// A DNS name listing the write nodes (a Kubernetes headless
    /// Service, which publishes only ready pods), as `name:port` or
    /// `name` (then `grpc_addr`'s port); resolved again every
    /// `refresh_period`. Used instead of `members`.
    pub dns: String,
    /// This node's identity among the members (`host:port`); empty (the
    /// default): the hostname and `grpc_addr`'s port. A member whose
    /// address resolves to one of this host's addresses with the same
    /// port is this node too.
    #[serde(rename = "self")]
    pub self_addr: String,
    /// How many write nodes own each stream (default 1). A push is
    /// acknowledged once `replication_factor / 2 + 1` of them have it in
    /// their WAL.
    pub replication_factor: usize,
    /// How often the member list is resolved again and the members asked
    /// whether they are ready (default 5s).
    pub refresh_period: HumanDuration,
    /// Longest a forwarded push (or a readiness probe) may take (default
    /// 10s).
    pub forward_timeout: HumanDuration,
    /// Most forwarded pushes in flight from this node at once (default
    /// 64); more wait for a slot within `forward_timeout`.
    pub max_forward_concurrency: usize,
    /// Largest forwarded push, encoded (default 100MiB, the largest body
    /// a tenant may send).
    pub max_forward_message_size: ByteSize,
    /// A file holding the token sent to the other members
    /// (`Authorization: Bearer`), read before every request, for members
    /// with `auth.tokens_file`: an administrator's token. Unset: read
    /// nodes use `read.write_node_token_file`, write nodes send none.
    pub token_file: Option<PathBuf>,
    /// TLS of the connections to the other members (gRPC).
    pub tls: ClientTlsConfig,
    /// How long a leaving write node keeps answering queries
    /// (`larch.Querier`) after it flushed its heads, so that every
    /// reader's view of the bucket lists its last chunks before it stops
    /// answering for them. Unset (the default): the longer of
    /// `refresh_period` and `read.index_refresh_period`, plus 2s (see
    /// `Config::leave_linger`). Taken from what `shutdown_timeout` leaves
    /// after the flush.
    pub leave_linger: Option<HumanDuration>,
}

/// `cluster.tls`: the client side of node-to-node gRPC, named as Loki's
/// `grpc_client_config` names it. On when `tls_enabled` is true, or when
/// the store's own `tls.cert_file` is set (the members then serve TLS on
/// their gRPC port); `tls_ca_path` is then required. The client
/// certificate and key are read again when they change (checked every
/// `refresh_period`).
pub use crate::tls_client::ClientTlsConfig;

/// Default maximum forwarded message: the largest body any tenant may
/// send (`push::body::MAX_BODY`'s order).
const DEFAULT_MAX_FORWARD: u64 = 100 << 20;

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            members: Vec::new(),
            dns: String::new(),
            self_addr: String::new(),
            replication_factor: 1,
            refresh_period: HumanDuration::from_secs(5),
            forward_timeout: HumanDuration::from_secs(10),
            max_forward_concurrency: 64,
            max_forward_message_size: ByteSize(DEFAULT_MAX_FORWARD),
            token_file: None,
            tls: ClientTlsConfig::default(),
            leave_linger: None,
        }
    }
}

impl ClusterConfig {
    /// Whether several write nodes are configured.
    pub fn enabled(&self) -> bool {
        !self.members.is_empty() || !self.dns.trim().is_empty()
    }

    /// A value that cannot be used: `(key, reason)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.members.is_empty() && !self.dns.trim().is_empty() {
            return Err((
                "cluster.dns",
                "cannot be set together with cluster.members".into(),
            ));
        }
        for m in &self.members {
            if split_host_port(m).is_none() {
                return Err(("cluster.members", format!("{m:?} is not host:port")));
            }
        }
        if self.replication_factor == 0 {
            return Err(("cluster.replication_factor", "must be at least 1".into()));
        }
        if self.refresh_period.is_zero() {
            return Err(("cluster.refresh_period", "must be positive".into()));
        }
        if self.forward_timeout.is_zero() {
            return Err(("cluster.forward_timeout", "must be positive".into()));
        }
        if self.max_forward_concurrency == 0 {
            return Err(("cluster.max_forward_concurrency", "must be positive".into()));
        }
        if self.max_forward_message_size.0 < 1 << 20 {
            return Err((
                "cluster.max_forward_message_size",
                "must be at least 1MiB".into(),
            ));
        }
        if self.enabled() && self.tls.tls_enabled && self.tls.tls_ca_path.is_none() {
            return Err((
                "cluster.tls.tls_ca_path",
                "is required when node-to-node TLS is on".into(),
            ));
        }
        if self.tls.tls_cert_path.is_some() != self.tls.tls_key_path.is_some() {
            return Err((
                "cluster.tls.tls_key_path",
                "tls_cert_path and tls_key_path are set together".into(),
            ));
        }
        Ok(())
    }

    /// Quorum of `rf` owners: more than half.
    pub fn quorum(rf: usize) -> usize {
        rf / 2 + 1
    }
}

/// `host:port` split at its last colon (IPv6 in brackets kept whole).
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_their_key() {
        let mut c = ClusterConfig::default();
        assert!(!c.enabled());
        c.check().unwrap();
        c.members = vec!["a:1".into(), "b".into()];
        assert_eq!(c.check().unwrap_err().0, "cluster.members");
        c.members = vec!["a:1".into(), "b:2".into()];
        c.check().unwrap();
        assert!(c.enabled());
        c.dns = "w".into();
        assert_eq!(c.check().unwrap_err().0, "cluster.dns");
        c.dns.clear();
        c.replication_factor = 0;
        assert_eq!(c.check().unwrap_err().0, "cluster.replication_factor");
    }

    #[test]
    fn quorum_is_more_than_half() {
        assert_eq!(ClusterConfig::quorum(1), 1);
        assert_eq!(ClusterConfig::quorum(2), 2);
        assert_eq!(ClusterConfig::quorum(3), 2);
        assert_eq!(ClusterConfig::quorum(5), 3);
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a:9095"), Some(("a", 9095)));
        assert_eq!(split_host_port("[::1]:9095"), Some(("[::1]", 9095)));
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port(":1"), None);
    }
}
