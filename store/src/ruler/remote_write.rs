//! Prometheus remote write 1.0 of the ruler's series: a bounded queue per
//! client, a sender task, retries with exponential backoff.
//!
//! A request is a snappy-compressed (block format) protobuf
//! `WriteRequest` ([`larch_proto::prometheus`]) with the headers the
//! specification asks for, one tenant per request (`X-Scope-OrgID` with
//! `add_org_id_header`). Samples of one series are sent in time order,
//! labels sorted. Answers: 2xx is done; 5xx, a transport failure or the
//! timeout is retried, waiting `min_backoff` doubled up to `max_backoff`,
//! for as long as it takes (while new samples wait in the bounded queue);
//! 429 likewise only with `retry_on_http_429`; any other 4xx drops the
//! request's samples (`reason="rejected"`), since sending them again would
//! be refused again. A full queue drops new samples (`queue_full`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use larch_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{Notify, watch};

use super::config::RemoteWriteClient;
use super::eval::RwSample;
use super::http::HttpClient;
use super::metrics::one;
use crate::metrics::Metrics;

/// One destination.
pub struct RemoteWriter {
    name: String,
    cfg: RemoteWriteClient,
    add_org_id: bool,
    queue: Mutex<VecDeque<RwSample>>,
    wake: Notify,
    client: HttpClient,
    metrics: Arc<Metrics>,
}

fn failed(m: &Metrics, client: &str, reason: &str, n: usize) {
    m.ruler
        .samples_failed
        .get_or_create(&vec![
            ("client", client.to_string()),
            ("reason", reason.to_string()),
        ])
        .inc_by(n as u64);
}

/// Encodes samples (of one tenant) as a snappy-compressed `WriteRequest`:
/// one series per label set, samples in time order.
pub fn encode(samples: &[RwSample]) -> Vec<u8> {
    let mut series: BTreeMap<&[(String, String)], Vec<Sample>> = BTreeMap::new();
    for s in samples {
        series.entry(&s.labels).or_default().push(Sample {
            value: s.value,
            timestamp: s.ts_ms,
        });
    }
    let req = WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.timestamp);
                TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    samples,
                }
            })
            .collect(),
    };
    let raw = req.encode_to_vec();
    // Compressing a buffer we allocated cannot fail but for its size
    // (far beyond a batch).
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

impl RemoteWriter {
    /// A writer for one configured client (its `tls_config` read now).
    pub fn new(
        name: String,
        cfg: RemoteWriteClient,
        add_org_id: bool,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<RemoteWriter> {
        let client = HttpClient::new(
            &cfg.tls_config.client(),
            &format!("ruler.remote_write.clients.{name}.tls_config"),
        )?;
        Ok(RemoteWriter {
            name,
            cfg,
            add_org_id,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            client,
            metrics,
        })
    }

    /// Queues samples; never waits. Those that do not fit are dropped
    /// and counted.
    pub fn push(&self, samples: &[RwSample]) {
        if samples.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        let room = self.cfg.queue_config.capacity.saturating_sub(q.len());
        let take = samples.len().min(room);
        q.extend(samples[..take].iter().cloned());
        let len = q.len();
        drop(q);
        if take < samples.len() {
            failed(
                &self.metrics,
                &self.name,
                "queue_full",
                samples.len() - take,
            );
        }
        self.set_len(len);
        self.wake.notify_one();
    }

    fn set_len(&self, len: usize) {
        self.metrics
            .ruler
            .remote_write_queue_length
            .get_or_create(&one("client", &self.name))
            .set(len as i64);
    }

    /// The next request: up to `max_samples_per_send` samples of the
    /// oldest sample's tenant (or of every tenant without
    /// `add_org_id_header`).
    fn take(&self) -> Vec<RwSample> {
        let mut q = self.queue.lock();
        let max = self.cfg.queue_config.max_samples_per_send;
        let Some(first) = q.front() else {
            return Vec::new();
        };
        let tenant = first.tenant.clone();
        let mut batch = Vec::new();
        let mut rest = VecDeque::with_capacity(q.len());
        while let Some(s) = q.pop_front() {
            if batch.len() < max && (!self.add_org_id || s.tenant == tenant) {
                batch.push(s);
            } else {
                rest.push_back(s);
            }
            if batch.len() >= max {
                rest.extend(q.drain(..));
            }
        }
        *q = rest;
        let len = q.len();
        drop(q);
        self.set_len(len);
        batch
    }

    fn headers(&self, tenant: &str, attempt: u32) -> Vec<(String, String)> {
        let mut h = vec![
            ("content-encoding".to_string(), "snappy".to_string()),
            (
                "content-type".to_string(),
                "application/x-protobuf".to_string(),
            ),
            (
                "user-agent".to_string(),
                format!("larch-ruler/{}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "x-prometheus-remote-write-version".to_string(),
                "0.1.0".to_string(),
            ),
        ];
        for (k, v) in &self.cfg.headers {
            if !k.eq_ignore_ascii_case("x-scope-orgid") {
                h.push((k.clone(), v.clone()));
            }
        }
        if self.add_org_id {
            h.push(("x-scope-orgid".to_string(), tenant.to_string()));
        }
        if let Some(b) = &self.cfg.basic_auth {
            let auth = super::config::ClientAuth {
                basic_auth_username: b.username.clone(),
                basic_auth_password: b.password.clone(),
                ..Default::default()
            };
            if let Some(v) = auth.header() {
                h.push(("authorization".to_string(), v));
            }
        }
        if attempt > 0 {
            h.push(("retry-attempt".to_string(), attempt.to_string()));
        }
        h
    }

    /// Sends until `stop` turns true; then sends what is queued within
    /// `grace`, and counts the rest as failed (`shutdown`).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, grace: Duration) {
        loop {
            loop {
                let batch = self.take();
                if batch.is_empty() {
                    break;
                }
                if !self.send(&batch, &mut stop).await {
                    break;
                }
            }
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let (_tx, mut never) = watch::channel(false);
        let _ = tokio::time::timeout(grace, async {
            loop {
                let batch = self.take();
                if batch.is_empty() || !self.send(&batch, &mut never).await {
                    break;
                }
            }
        })
        .await;
        let left = {
            let mut q = self.queue.lock();
            let n = q.len();
            q.clear();
            n
        };
        if left > 0 {
            failed(&self.metrics, &self.name, "shutdown", left);
            self.set_len(0);
        }
    }

    /// Sends one batch, retrying; false if `stop` came first (the batch is
    /// then counted as failed).
    async fn send(&self, batch: &[RwSample], stop: &mut watch::Receiver<bool>) -> bool {
        let body = Bytes::from(encode(batch));
        let tenant = batch.first().map(|s| s.tenant.as_str()).unwrap_or("");
        let q = &self.cfg.queue_config;
        let mut backoff = q.min_backoff.0;
        let mut attempt = 0u32;
        loop {
            let result = self
                .client
                .post(
                    &self.cfg.url,
                    &self.headers(tenant, attempt),
                    body.clone(),
                    self.cfg.remote_timeout.0,
                )
                .await;
            let retry_reason = match result {
                Ok(a) if a.status.is_success() => {
                    self.metrics
                        .ruler
                        .samples_sent
                        .get_or_create(&one("client", &self.name))
                        .inc_by(batch.len() as u64);
                    return true;
                }
                Ok(a)
                    if a.status.is_client_error()
                        && !(a.status.as_u16() == 429 && q.retry_on_http_429) =>
                {
                    failed(&self.metrics, &self.name, "rejected", batch.len());
                    tracing::warn!(
                        client = %self.name,
                        status = a.status.as_u16(),
                        samples = batch.len(),
                        error = %a.body.trim(),
                        "The remote write receiver refused samples; they are dropped."
                    );
                    return true;
                }
                Ok(a) => format!("{}: {}", a.status, a.body.trim()),
                Err(e) => e,
            };
            attempt += 1;
            self.metrics
                .ruler
                .remote_write_retries
                .get_or_create(&one("client", &self.name))
                .inc();
            if attempt == 1 || attempt.is_multiple_of(20) {
                tracing::warn!(
                    client = %self.name,
                    attempt,
                    error = %retry_reason,
                    "Remote write failed; retrying with backoff."
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => {
                    failed(&self.metrics, &self.name, "shutdown", batch.len());
                    return false;
                }
            }
            backoff = (backoff * 2).min(q.max_backoff.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tenant: &str, name: &str, ts: i64, v: f64) -> RwSample {
        RwSample {
            tenant: tenant.into(),
            labels: vec![("__name__".into(), name.into()), ("a".into(), "1".into())],
            ts_ms: ts,
            value: v,
        }
    }

    #[test]
    fn encodes_a_write_request() {
        let body = encode(&[
            s("t", "x", 2, 2.0),
            s("t", "y", 1, 5.0),
            s("t", "x", 1, 1.0),
        ]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        let x = &req.timeseries[0];
        assert_eq!(x.labels[0].name, "__name__");
        assert_eq!(x.labels[0].value, "x");
        assert_eq!(
            x.samples
                .iter()
                .map(|s| (s.timestamp, s.value))
                .collect::<Vec<_>>(),
            [(1, 1.0), (2, 2.0)]
        );
    }

    #[test]
    fn queue_is_bounded_and_batches_by_tenant() {
        let m = Arc::new(Metrics::new());
        let mut cfg = RemoteWriteClient::default();
        cfg.queue_config.capacity = 4;
        cfg.queue_config.max_samples_per_send = 2;
        let w = RemoteWriter::new("c".into(), cfg, true, m.clone()).unwrap();
        w.push(&[
            s("a", "x", 1, 1.0),
            s("b", "x", 1, 1.0),
            s("a", "y", 1, 1.0),
        ]);
        w.push(&[s("a", "z", 1, 1.0), s("a", "w", 1, 1.0)]);
        let text = m.render();
        assert!(
            text.contains(
                r#"larch_ruler_remote_write_samples_failed_total{client="c",reason="queue_full"} 1"#
            ),
            "{text}"
        );
        let b = w.take();
        assert_eq!(
            b.iter().map(|s| s.tenant.as_str()).collect::<Vec<_>>(),
            ["a", "a"]
        );
        let b = w.take();
        assert_eq!(
            b.iter().map(|s| s.tenant.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(w.take().len(), 1);
        assert!(w.take().is_empty());
    }
}
