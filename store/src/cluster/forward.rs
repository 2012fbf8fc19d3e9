//! The write path across members: a validated push is split by owner, the
//! share this node owns goes to its own WAL, every other share is
//! forwarded to its owner over `larch.Replica/Push`, all at once; the push
//! is acknowledged as soon as every stream is in the WAL of a quorum
//! (`replication_factor / 2 + 1`) of its owners: the other shares still
//! go on to their owners, but a slow or frozen owner does not hold the
//! push up (its share arrives when it answers, or is lost with it and the
//! quorum's copies serve the stream). An owner that does not
//! answer (down, leaving, timed out, its WAL failing) is replaced by the
//! stream's next candidate in hash order until the quorum is reached or
//! no candidate is left (so with `replication_factor: 1` a stream whose
//! owner is down goes to the next node). A forwarded push is written by
//! its receiver and never forwarded again.
//!
//! Bounds: at most `cluster.max_forward_concurrency` forwarded pushes in
//! flight from this node, each at most `max_forward_message_size` encoded
//! and `forward_timeout` long (waiting for a slot included).

use std::collections::BTreeMap;
use std::sync::Arc;

use larch_proto::logproto;
use prost::Message;

use super::{Cluster, ClusterConfig, ring};
use crate::ingester::{Ingester, WriteError, WriteOutcome};
use crate::tenant::TenantId;
use crate::validate::{ValidStream, Validated};

/// Why a replicated push was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// This node refused it as a whole (the tenant may not push).
    #[error(transparent)]
    Local(WriteError),
    /// Some stream is not in the WAL of a quorum of its owners: 5xx (or
    /// 429 when every owner that failed was over a limit), and the client
    /// retries.
    #[error("{message}")]
    Quorum {
        /// Whether every failure was a limit (429) rather than a node
        /// failing (503).
        limited: bool,
        /// Loki-style text.
        message: String,
    },
}

/// What one member did with its share.
enum NodeResult {
    /// In its WAL (entries it rejected by its stored state are in the
    /// outcome's messages).
    Stored(WriteOutcome),
    /// Not stored: the reason, and whether it was a limit.
    Failed { message: String, limited: bool },
    /// Refused as a whole, for a reason every member shares.
    Refused(WriteError),
}

/// The push request carrying `streams` (labels text, entries with their
/// structured metadata).
pub fn to_push_request<'a>(
    streams: impl Iterator<Item = &'a ValidStream>,
) -> logproto::PushRequest {
    logproto::PushRequest {
        streams: streams
            .map(|s| logproto::Stream {
                labels: s.labels.to_string(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| logproto::Entry {
                        timestamp: Some(logproto::Timestamp {
                            seconds: e.ts.div_euclid(1_000_000_000),
                            nanos: e.ts.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: e.line.text().into_owned(),
                        structured_metadata: larch_query::decode_metadata(&e.meta)
                            .map(|(n, v)| logproto::LabelPair {
                                name: n.to_string(),
                                value: v.to_string(),
                            })
                            .collect(),
                        parsed: Vec::new(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    }
}

/// Writes `validated` to a quorum of each stream's owners (see the module
/// documentation). The outcome merges what the members reported (each
/// message once).
pub async fn replicate(
    ing: &Arc<Ingester>,
    cluster: &Arc<Cluster>,
    tenant: &TenantId,
    validated: Validated,
) -> Result<WriteOutcome, ReplicateError> {
    let streams = Arc::new(validated.streams);
    if streams.is_empty() {
        return Ok(WriteOutcome::default());
    }
    let members = cluster.members();
    if members.all.is_empty() {
        return Err(ReplicateError::Quorum {
            limited: false,
            message: "at least 1 live replicas required, could only find 0: no write node is ready"
                .into(),
        });
    }
    let rf = members.replication_factor(cluster.config.replication_factor);
    let quorum = ClusterConfig::quorum(rf);
    if members.all.len() < quorum {
        return Err(ReplicateError::Quorum {
            limited: false,
            message: format!(
                "at least {quorum} live replicas required, could only find {}",
                members.all.len()
            ),
        });
    }
    // One identity per address (the set keeps them in step).
    let ids = &members.ids[..members.ids.len().min(members.all.len())];
    let rf = rf.min(ids.len());
    let candidates: Vec<Vec<usize>> = streams
        .iter()
        .map(|s| ring::candidates(ids, tenant.as_str(), s.fp))
        .collect();
    let mut next = vec![rf; streams.len()];
    let mut stored = vec![0usize; streams.len()];
    // Shares sent and not answered yet, per stream.
    let mut in_flight = vec![0usize; streams.len()];
    let mut last_error: Vec<Option<String>> = vec![None; streams.len()];
    let mut limited_only = true;
    let mut outcome = WriteOutcome::default();
    let mut seen_messages = std::collections::HashSet::new();
    let mut first: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        for &m in &c[..rf] {
            first.entry(m).or_default().push(i);
        }
    }
    // Each share is its own task, so the shares a quorum does not wait
    // for still reach their owners after the push is acknowledged (a
    // dropped JoinHandle detaches its task).
    let send = |m: usize, idx: Vec<usize>| {
        let (ing, cluster, tenant) = (ing.clone(), cluster.clone(), tenant.clone());
        let (streams, members) = (streams.clone(), members.clone());
        tokio::spawn(async move {
            let r = if Some(m) == members.me {
                store_locally(&ing, &tenant, &streams, &idx).await
            } else {
                let r = forward(&cluster, &members.all[m], &tenant, &streams, &idx).await;
                let result = match r {
                    NodeResult::Stored(_) => "ok",
                    _ => "failed",
                };
                forwarded(&ing, result);
                r
            };
            if let NodeResult::Failed { message, .. } = &r {
                tracing::warn!(member = %members.all[m], error = %message, "A member did not store its share of a push.");
            }
            (m, idx, r)
        })
    };
    let mut tasks = futures_util::stream::FuturesUnordered::new();
    for (m, idx) in first {
        for &i in &idx {
            in_flight[i] += 1;
        }
        tasks.push(send(m, idx));
    }
    // Answered as soon as every stream is in a quorum of WALs, as Loki's
    // distributor: a slow or frozen owner delays nothing while the others
    // answer, and its share still arrives when it wakes.
    while (0..streams.len()).any(|i| stored[i] < quorum) {
        let Some(joined) = futures_util::StreamExt::next(&mut tasks).await else {
            break;
        };
        let (m, idx, r) = match joined {
            Ok(done) => done,
            Err(e) => {
                return Err(ReplicateError::Quorum {
                    limited: false,
                    message: format!("a share of the push was lost: {e}"),
                });
            }
        };
        for &i in &idx {
            in_flight[i] -= 1;
        }
        match r {
            NodeResult::Stored(o) => {
                for &i in &idx {
                    stored[i] += 1;
                }
                for msg in o.errors {
                    if seen_messages.insert(msg.clone()) {
                        outcome.errors.push(msg);
                    }
                }
                outcome.unlisted_errors += o.unlisted_errors;
                for (reason, (e, b)) in o.discarded {
                    let d = outcome.discarded.entry(reason).or_default();
                    d.0 += e;
                    d.1 += b;
                }
                outcome.duplicates += o.duplicates;
                outcome.accepted += o.accepted;
            }
            NodeResult::Failed { message, limited } => {
                limited_only &= limited;
                // The streams still short of a quorum go to their next
                // candidates, one more for each copy missing.
                let mut retry: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for &i in &idx {
                    last_error[i] = Some(format!("{}: {message}", members.all[m]));
                    let want = quorum.saturating_sub(stored[i] + in_flight[i]);
                    for _ in 0..want {
                        if let Some(&c) = candidates[i].get(next[i]) {
                            retry.entry(c).or_default().push(i);
                            next[i] += 1;
                        }
                    }
                }
                for (c, idx) in retry {
                    for &i in &idx {
                        in_flight[i] += 1;
                    }
                    tasks.push(send(c, idx));
                }
            }
            NodeResult::Refused(e) => return Err(ReplicateError::Local(e)),
        }
    }
    if let Some(i) = (0..streams.len()).find(|&i| stored[i] < quorum) {
        return Err(ReplicateError::Quorum {
            limited: limited_only,
            message: format!(
                "at least {quorum} live replicas required for stream {}, could only write to {}: {}",
                streams[i].labels,
                stored[i],
                last_error[i].as_deref().unwrap_or("no member left to try")
            ),
        });
    }
    Ok(outcome)
}

fn forwarded(ing: &Ingester, result: &str) {
    ing.metrics
        .cluster_forwards
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
}

async fn store_locally(
    ing: &Arc<Ingester>,
    tenant: &TenantId,
    streams: &[ValidStream],
    idx: &[usize],
) -> NodeResult {
    let v = Validated {
        streams: idx.iter().map(|&i| streams[i].clone()).collect(),
        ..Validated::default()
    };
    match ing.push(tenant, v).await {
        Ok(o) => NodeResult::Stored(o),
        Err(WriteError::Tenant(r)) => NodeResult::Refused(WriteError::Tenant(r)),
        Err(e) => NodeResult::Failed {
            message: e.to_string(),
            limited: false,
        },
    }
}

async fn forward(
    cluster: &Arc<Cluster>,
    addr: &str,
    tenant: &TenantId,
    streams: &[ValidStream],
    idx: &[usize],
) -> NodeResult {
    let failed = |message: String, limited: bool| NodeResult::Failed { message, limited };
    let req = to_push_request(idx.iter().map(|&i| &streams[i]));
    let max = usize::try_from(cluster.config.max_forward_message_size.0).unwrap_or(usize::MAX);
    if req.encoded_len() > max {
        return failed(
            format!(
                "the forwarded push is {} bytes, over cluster.max_forward_message_size ({max} bytes)",
                req.encoded_len()
            ),
            false,
        );
    }
    let channel = match cluster.channel(addr) {
        Ok(c) => c,
        Err(e) => return failed(e, false),
    };
    let mut request = tonic::Request::new(req);
    if let Err(e) = cluster.authorize(&mut request) {
        return failed(e, false);
    }
    match tenant.as_str().parse() {
        Ok(v) => {
            request.metadata_mut().insert("x-scope-orgid", v);
        }
        Err(_) => return failed("the tenant id cannot be sent".into(), false),
    }
    let timeout = cluster.config.forward_timeout.0;
    let slots = cluster.forward_slots.clone();
    let call = async move {
        let _permit = slots
            .acquire_owned()
            .await
            .map_err(|_| tonic::Status::unavailable("the cluster client is closed"))?;
        let mut client = larch_proto::larch::replica_client::ReplicaClient::new(channel)
            .max_encoding_message_size(max)
            .max_decoding_message_size(64 << 10);
        client.push(request).await
    };
    // On the cluster's runtime: its channels belong there.
    let task = cluster
        .handle()
        .spawn(async move { tokio::time::timeout(timeout, call).await });
    match task.await {
        Err(e) => failed(format!("forwarding task failed: {e}"), false),
        Ok(Err(_)) => failed(
            format!("no answer within cluster.forward_timeout ({timeout:?})"),
            false,
        ),
        Ok(Ok(Ok(_))) => NodeResult::Stored(WriteOutcome::default()),
        Ok(Ok(Err(status))) => match status.code() {
            // Some entries refused for good (out of order, too old...):
            // the rest is stored, as the message says.
            tonic::Code::InvalidArgument => NodeResult::Stored(WriteOutcome {
                errors: status
                    .message()
                    .lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect(),
                ..WriteOutcome::default()
            }),
            tonic::Code::ResourceExhausted => failed(status.message().to_string(), true),
            _ => failed(status.message().to_string(), false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::WalEntry;

    #[test]
    fn push_requests_carry_labels_times_and_metadata() {
        let labels = larch_query::LabelSet::from_unique_pairs(vec![
            ("app".to_string(), "a\"b".to_string()),
            ("service_name".to_string(), "x".to_string()),
        ])
        .unwrap();
        let mut meta = Vec::new();
        larch_query::encode_metadata(&mut meta, [("trace", "1"), ("detected_level", "info")]);
        let s = ValidStream {
            fp: labels.fingerprint(),
            labels: std::sync::Arc::new(labels),
            entries: vec![
                WalEntry {
                    ts: -1,
                    line: "before 1970".into(),
                    meta: bytes::Bytes::new(),
                },
                WalEntry {
                    ts: 1_700_000_000_123_456_789,
                    line: "l".into(),
                    meta: meta.into(),
                },
            ],
        };
        let r = to_push_request(std::iter::once(&s));
        let text = &r.streams[0].labels;
        let parsed = larch_query::parse_labels(text).unwrap();
        assert_eq!(
            larch_query::LabelSet::from_unique_pairs(parsed).unwrap(),
            *s.labels
        );
        let e = &r.streams[0].entries;
        let ts = |e: &logproto::Entry| {
            let t = e.timestamp.unwrap();
            t.seconds * 1_000_000_000 + i64::from(t.nanos)
        };
        assert_eq!(ts(&e[0]), -1);
        assert!(e[0].timestamp.unwrap().nanos >= 0);
        assert_eq!(ts(&e[1]), 1_700_000_000_123_456_789);
        assert_eq!(e[1].structured_metadata.len(), 2);
        assert_eq!(e[1].structured_metadata[0].name, "trace");
    }
}
