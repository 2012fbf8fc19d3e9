//! A write node publishes its journal as index segments (ARCHITECTURE.md,
//! "The writer's journal").
//!
//! For each tenant with journal chunk records not yet named by a segment:
//! one segment per day those chunks overlap, each naming the chunks and
//! the labels of their streams; once every segment is durable, a
//! `published` record is appended to the journal and the chunks leave
//! memory (they are read from the bucket from then on).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

use crate::index::{ChunkRef, IndexRecord};
use crate::ingester::Ingester;
use crate::ingester::tenant::Tenant;

use super::{layout, segment};

/// Publishes every tenant's unpublished journal records. Stops at the
/// first failure (the rest waits for the next try).
pub fn publish_all(ing: &Ingester) -> std::io::Result<()> {
    for tenant in ing.tenants() {
        if ing.out_of_time() {
            return Ok(());
        }
        publish(ing, &tenant)?;
    }
    if ing.publish_floor() != u64::MAX {
        // Journal records from before the restart are all published.
        ing.set_publish_floor(u64::MAX);
    }
    Ok(())
}

/// The segments naming `chunks` (one per day), with their day.
pub fn segments_for(
    writer: &str,
    chunks: &[(u64, ChunkRef)],
    labels: &HashMap<u64, IndexRecord>,
) -> Vec<(i64, Vec<u8>, String)> {
    let mut by_day: BTreeMap<i64, Vec<&(u64, ChunkRef)>> = BTreeMap::new();
    for c in chunks {
        for day in layout::days(c.1.mint, c.1.maxt) {
            by_day.entry(day).or_default().push(c);
        }
    }
    by_day
        .into_iter()
        .map(|(day, cs)| {
            let mut records = Vec::with_capacity(cs.len() * 2);
            let mut named = HashSet::new();
            for (fp, _) in &cs {
                if named.insert(*fp)
                    && let Some(r) = labels.get(fp)
                {
                    records.push(r.clone());
                }
            }
            records.extend(cs.iter().map(|(fp, c)| IndexRecord::Chunk {
                fp: *fp,
                chunk: c.clone(),
            }));
            let (bytes, name) = segment::encode(writer, day, &[], &records);
            (day, bytes, name)
        })
        .collect()
}

fn publish(ing: &Ingester, tenant: &Tenant) -> std::io::Result<()> {
    let chunks: Vec<(u64, ChunkRef)> = tenant.unpublished.lock().clone();
    if chunks.is_empty() {
        return Ok(());
    }
    let mut labels = HashMap::new();
    for (fp, _) in &chunks {
        if let Some(s) = tenant.get(*fp) {
            labels.insert(
                *fp,
                IndexRecord::Stream {
                    fp: *fp,
                    labels: s.labels.to_set(),
                },
            );
        }
    }
    let mut last = String::new();
    for (day, bytes, name) in segments_for(&ing.writer_id, &chunks, &labels) {
        let key = layout::segment_key(&tenant.id, day, &name);
        ing.bucket.put(&key, bytes.into())?;
        ing.metrics.objstore.segments_published.inc();
        last = name;
    }
    tenant.append(&[IndexRecord::Published { id: last }])?;
    // Only this thread adds records, so the first `chunks.len()` are the
    // ones just published.
    tenant.unpublished.lock().drain(..chunks.len());
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let mut by_fp: HashMap<u64, HashSet<String>> = HashMap::new();
    for (fp, c) in &chunks {
        by_fp.entry(*fp).or_default().insert(c.id.clone());
    }
    for (fp, ids) in by_fp {
        if let Some(s) = tenant.get(fp) {
            let mut st = s.state.lock();
            let was_active = st.is_active();
            st.published(&ids, now);
            if was_active && !st.is_active() {
                tenant.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    tracing::debug!(tenant = %tenant.id, chunks = chunks.len(), "Published an index segment.");
    Ok(())
}
