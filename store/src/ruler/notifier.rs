//! Sending alerts to Alertmanager's API v2 (`POST <url>/api/v2/alerts`).
//!
//! Evaluations put the alerts due into a bounded queue and never wait; a
//! sender task takes batches of up to 64 and posts each to every
//! configured Alertmanager, retrying a failed post three times with
//! growing pauses within `notification_timeout`. A batch no Alertmanager
//! took is counted and dropped: a firing alert is sent again at its next
//! resend anyway. A full queue drops its oldest alerts (counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::eval::AmAlert;
use super::http::HttpClient;
use super::metrics::one;
use crate::metrics::Metrics;

/// Most alerts per request (Prometheus' batch size).
const BATCH: usize = 64;
/// Attempts per Alertmanager and batch.
const ATTEMPTS: u32 = 3;

/// The queue and the sender.
pub struct Notifier {
    queue: Mutex<VecDeque<AmAlert>>,
    capacity: usize,
    wake: Notify,
    /// `(base URL as configured, alerts endpoint)`.
    targets: Vec<(String, String)>,
    auth: Option<String>,
    timeout: Duration,
    client: HttpClient,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// A notifier for `urls` (base URLs), through `client`.
    pub fn new(
        urls: &[String],
        auth: Option<String>,
        capacity: usize,
        timeout: Duration,
        client: HttpClient,
        metrics: Arc<Metrics>,
    ) -> Notifier {
        Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            wake: Notify::new(),
            targets: urls
                .iter()
                .map(|u| {
                    (
                        u.clone(),
                        format!("{}/api/v2/alerts", u.trim_end_matches('/')),
                    )
                })
                .collect(),
            auth,
            timeout,
            client,
            metrics,
        }
    }

    /// Queues alerts to send; never waits.
    pub fn send(&self, alerts: Vec<AmAlert>) {
        if alerts.is_empty() || self.targets.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        for a in alerts {
            if q.len() >= self.capacity {
                q.pop_front();
                self.metrics.ruler.notifications_dropped.inc();
            }
            q.push_back(a);
        }
        self.metrics
            .ruler
            .notification_queue_length
            .set(q.len() as i64);
        drop(q);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<AmAlert> {
        let mut q = self.queue.lock();
        let n = q.len().min(BATCH);
        let batch: Vec<AmAlert> = q.drain(..n).collect();
        self.metrics
            .ruler
            .notification_queue_length
            .set(q.len() as i64);
        batch
    }

    /// Sends until `stop` turns true, then sends what is queued (within
    /// `grace`).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, grace: Duration) {
        loop {
            loop {
                let batch = self.take();
                if batch.is_empty() {
                    break;
                }
                self.post(&batch).await;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let _ = tokio::time::timeout(grace, async {
            loop {
                let batch = self.take();
                if batch.is_empty() {
                    break;
                }
                self.post(&batch).await;
            }
        })
        .await;
    }

    async fn post(&self, batch: &[AmAlert]) {
        let body = match serde_json::to_vec(batch) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "Cannot encode alerts for Alertmanager.");
                return;
            }
        };
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "user-agent".to_string(),
                format!("larch-ruler/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if let Some(a) = &self.auth {
            headers.push(("authorization".to_string(), a.clone()));
        }
        for (base, url) in &self.targets {
            let mut pause = Duration::from_millis(100);
            let mut last = String::new();
            let mut ok = false;
            for attempt in 1..=ATTEMPTS {
                match self
                    .client
                    .post(url, &headers, body.clone(), self.timeout)
                    .await
                {
                    Ok(a) if a.status.is_success() => {
                        ok = true;
                        break;
                    }
                    Ok(a) => {
                        last = format!("{}: {}", a.status, a.body.trim());
                        // A 4xx will not change on retry.
                        if a.status.is_client_error() {
                            break;
                        }
                    }
                    Err(e) => last = e,
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
            if ok {
                self.metrics
                    .ruler
                    .notifications_sent
                    .get_or_create(&one("alertmanager", base))
                    .inc_by(batch.len() as u64);
            } else {
                self.metrics
                    .ruler
                    .notification_errors
                    .get_or_create(&one("alertmanager", base))
                    .inc();
                tracing::warn!(
                    alertmanager = %base,
                    alerts = batch.len(),
                    error = %last,
                    "Alertmanager did not take alerts; firing alerts are sent again at their next resend."
                );
            }
        }
    }
}
