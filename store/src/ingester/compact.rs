//! Compaction and deferred deletion of chunk files.
//!
//! Streams that receive little data flush a small chunk every idle period;
//! over days that is many files and many index records to read per query.
//! Every `compaction_interval` the flusher merges each run of consecutive
//! small chunks of a stream (each under a quarter of the target size,
//! together at most the target) into one: entries merged by timestamp with
//! duplicates removed, cut again into blocks, written durably, then
//! recorded in the index together with the deletion of the inputs in one
//! append. The new chunk's `max_seq` is the largest of its inputs', so WAL
//! replay keeps skipping exactly what it skipped before.
//!
//! The output's header lists the chunks it replaces, so that recovery
//! (`ingester::recover`) can tell a compaction's inputs from chunks the
//! index lost. A run holding a chunk known to be damaged is not compacted
//! (its intact blocks stay readable where they are), and a run is given up
//! when any input fails to decode whole (every block, every entry its
//! record names): the inputs are retired only for an output that holds
//! everything they held.
//!
//! Files that leave the index (compacted or expired) are deleted only after
//! a grace period longer than any query may run, so a query that took its
//! snapshot before the swap still finds them. Files no index record names
//! are dealt with when the store starts (`ingester::recover`).

use std::time::{Duration, Instant};

use larch_query::Columns;
use parking_lot::Mutex;

use super::Ingester;
use super::read::merge;
use super::stream::Stream;
use super::tenant::Tenant;
use crate::chunk::{ChunkFile, ChunkHeader, DecodedBlock, EncodedBlock, HeadBlock, chunk_parts};
use crate::config::DeletionMode;
use crate::deletes::StreamFilter;
use crate::index::{ChunkRef, IndexRecord};
use crate::objstore::Bucket;

/// Chunk objects to delete once their deadline passes.
#[derive(Default)]
pub struct Graveyard {
    files: Mutex<Vec<(Instant, String)>>,
}

impl Graveyard {
    /// Schedules the chunk at `key` for deletion after `grace`.
    pub fn bury(&self, key: String, grace: Duration) {
        self.files.lock().push((Instant::now() + grace, key));
    }

    /// Deletes every chunk whose time has come (all of them with `all`).
    pub fn sweep(&self, bucket: &Bucket, all: bool) {
        let now = Instant::now();
        let due: Vec<String> = {
            let mut files = self.files.lock();
            let (due, keep): (Vec<_>, Vec<_>) =
                files.drain(..).partition(|(t, _)| all || *t <= now);
            *files = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        for key in due {
            let res = match bucket.local_path(&key) {
                Some(p) => match std::fs::remove_file(&p) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
                None => bucket.delete(&key),
            };
            if let Err(e) = res {
                tracing::warn!(key, error = %e, "Could not delete a retired chunk.");
            }
        }
    }
}

/// How long a retired chunk file outlives its index record: longer than
/// the query timeout, so running queries can finish reading it.
pub fn grace(ing: &Ingester) -> Duration {
    ing.config.query.timeout.0 + Duration::from_secs(60)
}

/// Merges runs of small chunks in every stream of every tenant; stops
/// between two streams when a shutdown's deadline has passed.
pub fn compact_all(ing: &Ingester) {
    let target = ing.config.ingester.chunk_target_size.0;
    for tenant in ing.tenants() {
        for s in tenant.all() {
            if ing.out_of_time() {
                return;
            }
            let chunks = s.state.lock().chunks.clone();
            for run in small_runs(&chunks, target) {
                if run.iter().any(|c| {
                    ing.health
                        .is_damaged(&ing.chunk_location(&tenant.id, s.fp, &c.id))
                }) {
                    continue;
                }
                if let Err(e) = compact_run(ing, &tenant, &s, &run, None) {
                    tracing::warn!(tenant = %tenant.id, stream = %s.labels, error = %e, "Compacting chunks failed; will retry.");
                }
            }
        }
    }
}

/// Runs of two or more consecutive chunks, each under a quarter of
/// `target`, together at most `target` (file sizes). The one selection of
/// what to merge, here and in the bucket's compactor
/// (`objstore::compactor`).
pub(crate) fn small_runs(chunks: &[ChunkRef], target: u64) -> Vec<Vec<ChunkRef>> {
    let mut runs = Vec::new();
    let mut cur: Vec<ChunkRef> = Vec::new();
    let mut size = 0;
    for c in chunks {
        if c.bytes * 4 < target && size + c.bytes <= target {
            size += c.bytes;
            cur.push(c.clone());
            continue;
        }
        if cur.len() >= 2 {
            runs.push(std::mem::take(&mut cur));
        }
        cur.clear();
        size = 0;
        if c.bytes * 4 < target {
            size = c.bytes;
            cur.push(c.clone());
        }
    }
    if cur.len() >= 2 {
        runs.push(cur);
    }
    runs
}

/// Merges `run` into one chunk (see the module docs); with `filter`, the
/// entries it deletes are left out, and nothing is written when it
/// deletes none. Returns the entries left out.
fn compact_run(
    ing: &Ingester,
    tenant: &Tenant,
    stream: &Stream,
    run: &[ChunkRef],
    filter: Option<&mut StreamFilter>,
) -> std::io::Result<u64> {
    // Decode every block of every input.
    let mut inputs = Vec::new();
    for c in run {
        let path = ing.chunk_location(&tenant.id, stream.fp, &c.id);
        let key = ing.chunk_key(&tenant.id, stream.fp, &c.id);
        let decoded = (|| -> std::io::Result<Vec<DecodedBlock>> {
            let file =
                ChunkFile::parse(ing.bucket.get(&key)?.to_vec()).map_err(std::io::Error::other)?;
            let mut out = Vec::with_capacity(file.blocks.len());
            for meta in &file.blocks {
                let mut d = DecodedBlock::default();
                d.decode(&file.bytes, meta, Columns::ALL)
                    .map_err(std::io::Error::other)?;
                out.push(d);
            }
            // The inputs are retired: they must hand over every entry
            // their records name.
            let n: u64 = out.iter().map(|d| d.ts.len() as u64).sum();
            if n != c.entries {
                return Err(std::io::Error::other(format!(
                    "its blocks hold {n} entries, its index record names {}",
                    c.entries
                )));
            }
            Ok(out)
        })();
        match decoded {
            Ok(d) => inputs.extend(d),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    ing.report_damaged_chunk(&tenant.id, &path, "block", &e.to_string());
                }
                return Err(e);
            }
        }
    }
    let mut merged = DecodedBlock::default();
    merge(&inputs, &mut merged);
    drop(inputs);
    let mut view = merged.view(Columns::ALL);
    let mut kept = crate::deletes::OwnedBlock::default();
    let mut removed = 0u64;
    if let Some(f) = filter {
        if !f.filter(&view, &mut kept) {
            return Ok(0);
        }
        removed = (view.len() - kept.timestamps.len()) as u64;
        view = kept.view();
    }
    if view.is_empty() {
        // Everything deleted: the inputs only leave the index.
        retire(ing, tenant, stream, run, Vec::new())?;
        return Ok(removed);
    }

    // Cut again at the configured block size.
    let block_size = ing.config.ingester.block_size.0 as usize;
    let mut blocks: Vec<EncodedBlock> = Vec::new();
    let mut head = HeadBlock::with_encoding(ing.config.ingester.encoding());
    for i in 0..view.len() {
        head.append(view.timestamps[i], view.line(i), view.metadata(i));
        if head.size() >= block_size {
            blocks.push(head.cut());
        }
    }
    if !head.is_empty() {
        blocks.push(head.cut());
    }
    let refs: Vec<&EncodedBlock> = blocks.iter().collect();
    let max_seq = run.iter().map(|c| c.max_seq).max().unwrap_or(0);
    let header = ChunkHeader {
        labels: stream.labels.to_string(),
        fingerprint: stream.fp,
        min_seq: 0,
        max_seq,
        replaces: run.iter().map(|c| c.id.clone()).collect(),
    };
    let parts = chunk_parts(&header, &refs);
    let id = format!("{max_seq:016x}-{:08x}", parts.index_crc);
    let key = ing.chunk_key(&tenant.id, stream.fp, &id);
    let mut bytes = Vec::with_capacity(usize::try_from(parts.size).unwrap_or(0));
    parts.write_to(&mut bytes, &refs)?;
    ing.bucket.put(&key, bytes.into())?;
    let chunk = ChunkRef {
        id,
        mint: view.timestamps.first().copied().unwrap_or(0),
        maxt: view.timestamps.last().copied().unwrap_or(0),
        entries: view.len() as u64,
        bytes: parts.size,
        max_seq,
        raw_bytes: blocks.iter().map(|b| b.meta.lines_size).sum(),
    };
    retire(ing, tenant, stream, run, vec![chunk])?;
    Ok(removed)
}

/// Records `added` in place of `run` in the index (one append), swaps them
/// in the stream, and schedules the inputs' objects for deletion.
fn retire(
    ing: &Ingester,
    tenant: &Tenant,
    stream: &Stream,
    run: &[ChunkRef],
    added: Vec<ChunkRef>,
) -> std::io::Result<()> {
    let mut records: Vec<IndexRecord> = added
        .iter()
        .map(|c| IndexRecord::Chunk {
            fp: stream.fp,
            chunk: c.clone(),
        })
        .collect();
    records.extend(run.iter().map(|c| IndexRecord::Delete {
        fp: stream.fp,
        id: c.id.clone(),
    }));
    tenant.append(&records)?;
    {
        let mut st = stream.state.lock();
        st.chunks.retain(|c| !run.iter().any(|r| r.id == c.id));
        for c in added {
            st.add_chunk(c);
        }
    }
    for c in run {
        ing.graveyard
            .bury(ing.chunk_key(&tenant.id, stream.fp, &c.id), grace(ing));
    }
    ing.metrics
        .chunks_deleted
        .get_or_create(&ing.metrics.tenant_label(tenant.id.as_str()))
        .inc_by(run.len() as u64);
    Ok(())
}

/// Applies the delete requests whose cancel period has passed, for tenants
/// in `filter-and-delete` mode: every chunk of a selected stream that
/// overlaps a request's range and holds a deleted line is rewritten
/// without it (as a compaction of one chunk, with the same durability:
/// the output is written before the index record that swaps it in, the
/// input deleted after the grace period), then the request is marked
/// processed. Unflushed data is flushed first, so the lines leave memory
/// as chunks that are then rewritten.
pub fn apply_deletes(ing: &Ingester) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let period_ms = i64::try_from(
        ing.config
            .compactor
            .delete_request_cancel_period
            .0
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let due: Vec<_> = ing
        .deletes
        .due(now_ms, period_ms)
        .into_iter()
        .filter(|(t, _)| {
            ing.config.limits_for(t.as_str()).deletion_mode == DeletionMode::FilterAndDelete
        })
        .collect();
    if due.is_empty() {
        return;
    }
    super::flusher::cycle(ing, true);
    for (tid, req) in due {
        if ing.out_of_time() {
            return;
        }
        let mut complete = true;
        let mut removed = 0u64;
        if let Some(tenant) = ing.existing_tenant(&tid) {
            for s in tenant.all() {
                let labels = s.labels.to_arc();
                if !req.compiled.selects(&labels) {
                    continue;
                }
                let (chunks, unflushed) = {
                    let st = s.state.lock();
                    let chunks: Vec<ChunkRef> = st
                        .chunks
                        .iter()
                        .filter(|c| c.maxt >= req.start_ns() && c.mint <= req.end_ns())
                        .cloned()
                        .collect();
                    (chunks, !st.open.is_empty() || !st.sealed.is_empty())
                };
                // Lines still in memory (a write failed): the next run.
                complete &= !unflushed;
                for c in chunks {
                    if ing
                        .health
                        .is_damaged(&ing.chunk_location(&tid, s.fp, &c.id))
                    {
                        tracing::error!(tenant = %tid, stream = %s.labels, chunk = %c.id, "A chunk a delete request covers is damaged; the request stays unprocessed (its lines stay hidden from queries).");
                        complete = false;
                        continue;
                    }
                    let Some(mut f) = StreamFilter::new(
                        std::slice::from_ref(&req),
                        &labels,
                        c.mint,
                        c.maxt.saturating_add(1),
                    ) else {
                        continue;
                    };
                    match compact_run(ing, &tenant, &s, std::slice::from_ref(&c), Some(&mut f)) {
                        Ok(n) => removed += n,
                        Err(e) => {
                            complete = false;
                            tracing::warn!(tenant = %tid, stream = %s.labels, error = %e, "Rewriting a chunk for a delete request failed; will retry.");
                        }
                    }
                }
            }
        }
        ing.metrics.deletes.deleted_lines.inc_by(removed);
        if !complete {
            continue;
        }
        match ing.deletes.mark_processed(&tid, &req.id, now_ms) {
            Ok(()) => {
                tracing::info!(tenant = %tid, request_id = %req.id, lines = removed, "Delete request processed.")
            }
            Err(e) => {
                tracing::warn!(tenant = %tid, request_id = %req.id, error = %e, "Could not mark a delete request processed; will retry.")
            }
        }
    }
    let (received, processed) = ing.deletes.counts();
    ing.metrics.deletes.set_counts(received, processed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, bytes: u64) -> ChunkRef {
        ChunkRef {
            id: id.into(),
            mint: 0,
            maxt: 0,
            entries: 1,
            bytes,
            max_seq: 1,
            raw_bytes: 1,
        }
    }

    #[test]
    fn runs_of_small_chunks() {
        let chunks = vec![
            c("a", 10),
            c("b", 10),
            c("big", 500),
            c("c", 10),
            c("d", 20),
            c("e", 10),
            c("f", 30),
        ];
        let runs = small_runs(&chunks, 100);
        let ids: Vec<Vec<&str>> = runs
            .iter()
            .map(|r| r.iter().map(|c| c.id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["a", "b"], vec!["c", "d", "e"]]);
        assert!(small_runs(&[c("a", 10)], 100).is_empty());
    }
}
