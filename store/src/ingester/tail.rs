//! Live tail: acknowledged entries fanned out to `/loki/api/v1/tail`
//! connections.
//!
//! The WAL writer publishes each applied stream batch once its record is
//! durable, but only while someone subscribes, so the write path pays
//! nothing otherwise. The channel is bounded: a subscriber that falls more
//! than `CAPACITY` events behind loses the oldest and learns how many it
//! missed (the tail handler reports them as `dropped_entries`), so a slow
//! client never makes the store buffer without bound.

use std::sync::Arc;

use larch_query::LabelSet;
use tokio::sync::broadcast;

use crate::tenant::TenantId;
use crate::wal::record::WalEntry;

/// Events buffered per subscriber before the oldest are dropped.
const CAPACITY: usize = 4096;

/// New entries of one stream.
#[derive(Debug)]
pub struct TailEvent {
    /// Tenant.
    pub tenant: TenantId,
    /// Stream labels.
    pub labels: Arc<LabelSet>,
    /// The entries, as stored.
    pub entries: Vec<WalEntry>,
}

/// The fan-out channel.
pub struct Tail {
    tx: broadcast::Sender<Arc<TailEvent>>,
}

impl Tail {
    /// A channel with no subscribers.
    pub fn new() -> Tail {
        let (tx, _) = broadcast::channel(CAPACITY);
        Tail { tx }
    }

    /// Whether anyone listens.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new subscription (events from now on).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TailEvent>> {
        self.tx.subscribe()
    }

    /// Sends an event to every subscriber.
    pub fn publish(&self, event: Arc<TailEvent>) {
        let _ = self.tx.send(event);
    }
}

impl Default for Tail {
    fn default() -> Tail {
        Tail::new()
    }
}
