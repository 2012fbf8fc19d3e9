//! The compactor (`target: backend`): merges a tenant's segments of a day
//! into one, drops chunks past the tenant's `retention_period`, and
//! deletes what it superseded once the grace period has passed
//! (ARCHITECTURE.md, "Consistency").
//!
//! It also applies the delete requests whose cancel period has passed
//! (tenants in `filter-and-delete` mode): every live chunk a request
//! touches is rewritten without its lines, the days naming it get a
//! superseding segment naming the replacement, and the request is then
//! marked processed; a crash before the mark repeats the work on chunks
//! that no longer hold the lines, which changes nothing.
//!
//! Runs as a single replica (documented; nothing enforces it): two compactors
//! would each write a superseding segment, both valid, and each delete
//! only what a live segment no longer names, so the view stays whole; but
//! they would do the work twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use larch_query::Columns;

use super::bucket::{Bucket, Listed};
use super::{layout, segment, terms};
use crate::chunk::{ChunkFile, ChunkHeader, DecodedBlock, EncodedBlock, HeadBlock, chunk_parts};
use crate::cluster::stats::writer_of;
use crate::config::DeletionMode;
use crate::deletes::{Deletes, OwnedBlock, Request, StreamFilter};
use crate::index::IndexRecord;
use crate::ingester::Ingester;
use crate::ingester::flusher::Msg;
use crate::tenant::TenantId;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Days whose segments were merged into one.
    pub merged_days: u64,
    /// Chunks dropped by retention.
    pub expired_chunks: u64,
    /// Segments deleted.
    pub deleted_segments: u64,
    /// Chunks deleted.
    pub deleted_chunks: u64,
    /// Chunks rewritten without the lines of delete requests.
    pub rewritten_chunks: u64,
    /// Lines removed for delete requests.
    pub deleted_lines: u64,
    /// Delete requests marked processed.
    pub processed_requests: u64,
    /// Term indexes written.
    pub term_indexes: u64,
    /// Their bytes.
    pub term_index_bytes: u64,
    /// Term indexes deleted.
    pub deleted_terms: u64,
    /// Groups of overlapping chunks of one stream from several writers
    /// (replicas) merged into one.
    pub merged_replica_groups: u64,
    /// Runs of consecutive small chunks of one stream merged into one.
    pub merged_small_runs: u64,
}

struct Seg {
    listed: Listed,
    name: String,
    seg: segment::Segment,
}

/// One compaction of every tenant and day; `now_ms` decides retention and
/// the grace period.
pub fn run_once(
    bucket: &Bucket,
    config: &crate::config::Config,
    deletes: &Deletes,
    writer: &str,
    now_ms: i64,
) -> std::io::Result<RunReport> {
    let mut report = RunReport::default();
    deletes.refresh()?;
    let period_ms = i64::try_from(config.compactor.delete_request_cancel_period.0.as_millis())
        .unwrap_or(i64::MAX);
    let due = deletes.due(now_ms, period_ms);
    let grace_ms = i64::try_from(config.compactor.deletion_delay.0.as_millis()).unwrap_or(i64::MAX);
    let with_segments: Vec<TenantId> = bucket
        .list_dirs(layout::SEGMENTS)?
        .iter()
        .filter_map(|n| TenantId::new(n).ok())
        .collect();
    // Requests of a tenant with nothing in the bucket have nothing to
    // rewrite.
    for (t, r) in &due {
        if !with_segments.contains(t)
            && config.limits_for(t.as_str()).deletion_mode == DeletionMode::FilterAndDelete
        {
            deletes.mark_processed(t, &r.id, now_ms)?;
            report.processed_requests += 1;
        }
    }
    for tenant in with_segments {
        let period = config.limits_for(tenant.as_str()).retention_period;
        let cutoff = (!period.is_zero()).then(|| {
            now_ms
                .saturating_mul(1_000_000)
                .saturating_sub(period.as_nanos_i64())
        });
        let mut by_day: BTreeMap<i64, Vec<Seg>> = BTreeMap::new();
        for l in bucket.list(&layout::segment_prefix(&tenant))? {
            let Some((_, day, seg_name)) = layout::parse_segment_key(&l.key) else {
                continue;
            };
            let bytes = match bucket.get(&l.key) {
                Ok(b) => b,
                Err(e) if super::bucket::is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            let Ok(seg) = segment::decode(&bytes) else {
                tracing::error!(key = %l.key, "Not an index segment; the compactor leaves it alone.");
                continue;
            };
            by_day.entry(day).or_default().push(Seg {
                listed: l,
                name: seg_name,
                seg,
            });
        }
        let reqs: Vec<Arc<Request>> = due
            .iter()
            .filter(|(t, _)| *t == tenant)
            .filter(|_| {
                config.limits_for(tenant.as_str()).deletion_mode == DeletionMode::FilterAndDelete
            })
            .map(|(_, r)| r.clone())
            .collect();
        let block_size = config.ingester.block_size.0 as usize;
        let replaced = if reqs.is_empty() {
            HashMap::new()
        } else {
            rewrite_for_deletes(
                bucket,
                &tenant,
                &by_day,
                &reqs,
                (block_size, config.ingester.encoding()),
                writer,
                &mut report,
            )?
        };
        for (day, segs) in &by_day {
            compact_day(
                bucket,
                config,
                &tenant,
                *day,
                segs,
                cutoff,
                now_ms,
                grace_ms,
                &replaced,
                config.compactor.term_index,
                &mut report,
            )?;
        }
        // Every day naming a rewritten chunk now names its replacement.
        for r in reqs {
            deletes.mark_processed(&tenant, &r.id, now_ms)?;
            report.processed_requests += 1;
            tracing::info!(tenant = %tenant, request_id = %r.id, "Delete request processed.");
        }
    }
    Ok(report)
}

/// The chunks of a tenant that hold lines of `reqs`, rewritten without
/// them: new chunk objects written (durable before any segment names
/// them), and for each old `(fp, id)` its replacement's record, or `None`
/// when every line went.
fn rewrite_for_deletes(
    bucket: &Bucket,
    tenant: &TenantId,
    by_day: &BTreeMap<i64, Vec<Seg>>,
    reqs: &[Arc<Request>],
    (block_size, encoding): (usize, crate::chunk::Encoding),
    writer: &str,
    report: &mut RunReport,
) -> std::io::Result<HashMap<(u64, String), Option<IndexRecord>>> {
    let mut labels: HashMap<u64, Arc<larch_query::LabelSet>> = HashMap::new();
    let mut chunks: BTreeMap<(u64, String), crate::index::ChunkRef> = BTreeMap::new();
    for segs in by_day.values() {
        let superseded: HashSet<&str> = segs
            .iter()
            .flat_map(|s| s.seg.supersedes.iter().map(String::as_str))
            .collect();
        for s in segs
            .iter()
            .filter(|s| !superseded.contains(s.name.as_str()))
        {
            for r in &s.seg.records {
                match r {
                    IndexRecord::Stream { fp, labels: l } => {
                        labels.entry(*fp).or_insert_with(|| Arc::new(l.clone()));
                    }
                    IndexRecord::Chunk { fp, chunk } => {
                        chunks.insert((*fp, chunk.id.clone()), chunk.clone());
                    }
                    _ => {}
                }
            }
        }
    }
    let mut out = HashMap::new();
    for ((fp, id), c) in chunks {
        let Some(l) = labels.get(&fp) else {
            continue;
        };
        let Some(mut filter) = StreamFilter::new(reqs, l, c.mint, c.maxt.saturating_add(1)) else {
            continue;
        };
        let key = layout::chunk_key(tenant, fp, &id);
        let bytes = match bucket.get(&key) {
            Ok(b) => b,
            Err(e) if super::bucket::is_not_found(&e) => {
                return Err(std::io::Error::other(format!(
                    "chunk {key}, named by a live segment, is missing"
                )));
            }
            Err(e) => return Err(e),
        };
        let file = ChunkFile::parse(bytes.to_vec())
            .map_err(|e| std::io::Error::other(format!("chunk {key} does not parse: {e}")))?;
        let mut blocks: Vec<EncodedBlock> = Vec::new();
        let mut head = HeadBlock::with_encoding(encoding);
        let mut kept = OwnedBlock::default();
        let (mut removed, mut entries, mut mint, mut maxt) = (0u64, 0u64, i64::MAX, i64::MIN);
        for meta in &file.blocks {
            let mut d = DecodedBlock::default();
            d.decode(&file.bytes, meta, Columns::ALL)
                .map_err(|e| std::io::Error::other(format!("chunk {key}: {e}")))?;
            let view = d.view(Columns::ALL);
            let view = if filter.filter(&view, &mut kept) {
                removed += (view.len() - kept.timestamps.len()) as u64;
                kept.view()
            } else {
                view
            };
            for i in 0..view.len() {
                let ts = view.timestamps[i];
                head.append(ts, view.line(i), view.metadata(i));
                entries += 1;
                mint = mint.min(ts);
                maxt = maxt.max(ts);
                if head.size() >= block_size {
                    blocks.push(head.cut());
                }
            }
        }
        if !head.is_empty() {
            blocks.push(head.cut());
        }
        if removed == 0 {
            continue;
        }
        report.deleted_lines += removed;
        if entries == 0 {
            out.insert((fp, id), None);
            continue;
        }
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        let header = ChunkHeader {
            labels: l.to_string(),
            fingerprint: fp,
            min_seq: 0,
            max_seq: c.max_seq,
            replaces: vec![id.clone()],
        };
        let parts = chunk_parts(&header, &refs);
        let new_id = format!("{:016x}-{:08x}-{writer}", c.max_seq, parts.index_crc);
        let mut buf = Vec::with_capacity(usize::try_from(parts.size).unwrap_or(0));
        parts.write_to(&mut buf, &refs)?;
        bucket.put(&layout::chunk_key(tenant, fp, &new_id), buf.into())?;
        let chunk = crate::index::ChunkRef {
            id: new_id,
            mint,
            maxt,
            entries,
            bytes: parts.size,
            max_seq: c.max_seq,
            raw_bytes: blocks.iter().map(|b| b.meta.lines_size).sum(),
        };
        report.rewritten_chunks += 1;
        out.insert((fp, id), Some(IndexRecord::Chunk { fp, chunk }));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn compact_day(
    bucket: &Bucket,
    config: &crate::config::Config,
    tenant: &TenantId,
    day: i64,
    segs: &[Seg],
    cutoff: Option<i64>,
    now_ms: i64,
    grace_ms: i64,
    replaced: &HashMap<(u64, String), Option<IndexRecord>>,
    term_index: bool,
    report: &mut RunReport,
) -> std::io::Result<()> {
    // Which segment supersedes which, among those listed.
    let mut superseded_by: HashMap<&str, &Seg> = HashMap::new();
    for s in segs {
        for x in &s.seg.supersedes {
            superseded_by.insert(x.as_str(), s);
        }
    }
    let live: Vec<&Seg> = segs
        .iter()
        .filter(|s| !superseded_by.contains_key(s.name.as_str()))
        .collect();
    let named_by = |set: &[&Seg]| -> HashSet<(u64, String)> {
        set.iter()
            .flat_map(|s| s.seg.records.iter())
            .filter_map(|r| match r {
                IndexRecord::Chunk { fp, chunk } => Some((*fp, chunk.id.clone())),
                _ => None,
            })
            .collect()
    };
    // Deletes whose grace period has passed: superseded segments, and the
    // chunks they name that no live segment names. Chunks first, so that a
    // crash leaves a segment that still lists what is left to delete.
    let live_chunks = named_by(&live);
    for s in segs {
        let Some(by) = superseded_by.get(s.name.as_str()) else {
            continue;
        };
        if now_ms.saturating_sub(by.listed.modified_ms) < grace_ms {
            continue;
        }
        for (fp, id) in named_by(&[s]) {
            if !live_chunks.contains(&(fp, id.clone())) && !chunk_in_other_days(segs, &fp, &id) {
                bucket.delete(&layout::chunk_key(tenant, fp, &id))?;
                report.deleted_chunks += 1;
            }
        }
        // Its term index, unless a live segment names the same one (a
        // rebuild over the same chunks has the same bytes and name).
        if let Some((t, _)) = &s.seg.terms
            && !live
                .iter()
                .any(|l| l.seg.terms.as_ref().is_some_and(|(n, _)| n == t))
        {
            bucket.delete(&layout::terms_key(tenant, day, t))?;
            report.deleted_terms += 1;
        }
        bucket.delete(&s.listed.key)?;
        report.deleted_segments += 1;
    }
    // Merge when there is more than one live segment or something expired.
    let mut records: Vec<IndexRecord> = Vec::new();
    let mut streams: BTreeMap<u64, IndexRecord> = BTreeMap::new();
    let mut seen: HashSet<(u64, String)> = HashSet::new();
    let mut expired = 0u64;
    let mut rewritten = 0u64;
    for s in &live {
        for r in &s.seg.records {
            match r {
                IndexRecord::Stream { fp, .. } => {
                    streams.entry(*fp).or_insert_with(|| r.clone());
                }
                IndexRecord::Chunk { fp, chunk } => {
                    if !seen.insert((*fp, chunk.id.clone())) {
                        continue;
                    }
                    // A chunk rewritten for a delete request: its
                    // replacement, or nothing when every line went.
                    let r = match replaced.get(&(*fp, chunk.id.clone())) {
                        None => r,
                        Some(None) => {
                            rewritten += 1;
                            continue;
                        }
                        Some(Some(new)) => {
                            rewritten += 1;
                            new
                        }
                    };
                    let IndexRecord::Chunk { chunk, .. } = r else {
                        continue;
                    };
                    if cutoff.is_some_and(|c| chunk.maxt < c) {
                        expired += 1;
                        continue;
                    }
                    records.push(r.clone());
                }
                _ => {}
            }
        }
    }
    let (records, replica_groups) = merge_replicas(bucket, config, tenant, &streams, records);
    let (records, small_runs) = merge_small_runs(bucket, config, tenant, &streams, records);
    // A day with one live segment is rewritten only to give it a term
    // index it lacks, for a chunk a delete request rewrote, or for chunks
    // merged (replicas' copies, runs of small chunks).
    let needs_terms =
        term_index && !records.is_empty() && !(live.len() == 1 && live[0].seg.terms.is_some());
    let merged = rewritten + replica_groups + small_runs;
    if live.len() <= 1 && expired == 0 && merged == 0 && !needs_terms {
        return Ok(());
    }
    let used: HashSet<u64> = records
        .iter()
        .filter_map(|r| match r {
            IndexRecord::Chunk { fp, .. } => Some(*fp),
            _ => None,
        })
        .collect();
    let mut out: Vec<IndexRecord> = streams
        .into_iter()
        .filter(|(fp, _)| used.contains(fp))
        .map(|(_, r)| r)
        .collect();
    out.extend(records);
    // Supersede every listed segment of the day, live or not, so that no
    // leftover can come back once its first successor is deleted.
    let mut names: Vec<String> = segs.iter().map(|s| s.name.clone()).collect();
    names.sort();
    // The term index first: a segment never names an object that is not
    // there yet.
    let terms = if term_index {
        build_terms(bucket, tenant, day, &out, report)?
    } else {
        None
    };
    if terms.is_none() && live.len() <= 1 && expired == 0 && merged == 0 {
        // Nothing but an index to add, and no chunk could be indexed. (The
        // outputs of a merge, written above, must be named: they are.)
        return Ok(());
    }
    let (bytes, name) = segment::encode_with_terms(
        "compactor",
        day,
        &names,
        &out,
        terms.as_ref().map(|(n, s)| (n.as_str(), *s)),
    );
    bucket.put(&layout::segment_key(tenant, day, &name), bytes.into())?;
    report.merged_days += 1;
    report.expired_chunks += expired;
    report.merged_replica_groups += replica_groups;
    report.merged_small_runs += small_runs;
    tracing::info!(tenant = %tenant, day, segments = live.len(), expired_chunks = expired, small_runs, "Compacted a day's index segments.");
    Ok(())
}

/// Builds and writes the term index of the chunks `records` name;
/// (name, size), or `None` when no chunk could be read. A chunk that
/// cannot be read whole (missing, damaged) is left out: queries read it
/// through its block filters.
fn build_terms(
    bucket: &Bucket,
    tenant: &TenantId,
    day: i64,
    records: &[IndexRecord],
    report: &mut RunReport,
) -> std::io::Result<Option<(String, u64)>> {
    let mut builder = terms::Builder::new();
    let mut block = DecodedBlock::default();
    let cols = larch_query::Columns {
        lines: true,
        lengths: true,
        metadata: false,
    };
    for r in records {
        let IndexRecord::Chunk { fp, chunk } = r else {
            continue;
        };
        let key = layout::chunk_key(tenant, *fp, &chunk.id);
        let bytes = match bucket.get_uncached(&key) {
            Ok(b) => b,
            Err(e) if super::bucket::is_not_found(&e) => {
                tracing::warn!(key = %key, "A chunk a segment names is missing; the term index leaves it out.");
                continue;
            }
            Err(e) => return Err(e),
        };
        let file = match ChunkFile::parse(bytes.to_vec()) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "A chunk cannot be read whole; the term index leaves it out.");
                continue;
            }
        };
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(file.blocks.len());
        let mut ok = true;
        for meta in &file.blocks {
            if let Err(e) = block.decode(&file.bytes, meta, cols) {
                tracing::warn!(key = %key, error = %e, "A chunk has a damaged block; the term index leaves it out.");
                ok = false;
                break;
            }
            lines.push(std::mem::take(&mut block.lines));
        }
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        if ok && !builder.add_chunk(*fp, &chunk.id, &refs) {
            tracing::warn!(tenant = %tenant, day, "A day has more blocks than one term index covers; the rest is read through block filters.");
            break;
        }
    }
    if builder.blocks() == 0 {
        return Ok(None);
    }
    let (bytes, name) = builder.finish("compactor");
    let size = bytes.len() as u64;
    bucket.put(&layout::terms_key(tenant, day, &name), bytes.into())?;
    report.term_indexes += 1;
    report.term_index_bytes += size;
    Ok(Some((name, size)))
}

/// Largest group of replica chunks merged at once (bytes stored): the
/// group is decoded whole in memory.
const MAX_REPLICA_GROUP: u64 = 64 << 20;

/// The chunk records of `records` by stream, each stream's in time order
/// (start, end, id), and the other records as they came.
fn chunks_by_stream(
    records: Vec<IndexRecord>,
) -> (BTreeMap<u64, Vec<crate::index::ChunkRef>>, Vec<IndexRecord>) {
    let mut by_fp: BTreeMap<u64, Vec<crate::index::ChunkRef>> = BTreeMap::new();
    let mut rest = Vec::with_capacity(records.len());
    for r in records {
        match r {
            IndexRecord::Chunk { fp, chunk } => by_fp.entry(fp).or_default().push(chunk),
            other => rest.push(other),
        }
    }
    for chunks in by_fp.values_mut() {
        chunks.sort_by(|a, b| (a.mint, a.maxt, &a.id).cmp(&(b.mint, b.maxt, &b.id)));
    }
    (by_fp, rest)
}

/// The labels of stream `fp`, from its record in `streams`.
fn labels_of(streams: &BTreeMap<u64, IndexRecord>, fp: u64) -> Option<String> {
    match streams.get(&fp) {
        Some(IndexRecord::Stream { labels, .. }) => Some(labels.to_string()),
        _ => None,
    }
}

/// Several write nodes holding a stream (`cluster.replication_factor`
/// above 1, or a stream that moved) each flush their own chunks of it:
/// the same entries stored up to three times. Every group of a stream's
/// chunks whose time ranges overlap and that come from more than one
/// writer is merged into chunks of at most `ingester.chunk_target_size`
/// with identical entries stored once, as the read path merges them
/// anyway. The outputs are written (PUT) before the caller writes the
/// segment naming them; their inputs then leave the view and are deleted
/// after the grace period like any superseded chunk. A group that fails
/// to read whole (a missing or damaged input, entries differing from
/// their records) is left as it is. Chunks spanning midnight stay out
/// (another day's segment names them too). Returns the records with
/// each merged group replaced by its outputs, and the number of groups.
fn merge_replicas(
    bucket: &Bucket,
    config: &crate::config::Config,
    tenant: &TenantId,
    streams: &BTreeMap<u64, IndexRecord>,
    records: Vec<IndexRecord>,
) -> (Vec<IndexRecord>, u64) {
    let (by_fp, mut out) = chunks_by_stream(records);
    let mut groups = 0;
    for (fp, chunks) in by_fp {
        let labels = labels_of(streams, fp);
        // Groups of overlapping time ranges.
        let mut group: Vec<crate::index::ChunkRef> = Vec::new();
        let mut group_max = i64::MIN;
        let mut flush_group = |group: &mut Vec<crate::index::ChunkRef>,
                               out: &mut Vec<IndexRecord>| {
            let g = std::mem::take(group);
            let writers: HashSet<&str> = g.iter().map(|c| writer_of(&c.id)).collect();
            let spans_days = g.iter().any(|c| {
                let d = layout::days(c.mint, c.maxt);
                d.start() != d.end()
            });
            let bytes: u64 = g.iter().map(|c| c.bytes).sum();
            if let (true, Some(labels)) = (
                g.len() >= 2 && writers.len() >= 2 && !spans_days && bytes <= MAX_REPLICA_GROUP,
                labels.as_ref(),
            ) {
                match merge_group(bucket, config, tenant, fp, labels, &g) {
                    Ok(merged) => {
                        groups += 1;
                        out.extend(
                            merged
                                .into_iter()
                                .map(|chunk| IndexRecord::Chunk { fp, chunk }),
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, stream = %labels, error = %e, "Merging the replicas' chunks of a stream failed; they stay as they are.");
                    }
                }
            }
            out.extend(g.into_iter().map(|chunk| IndexRecord::Chunk { fp, chunk }));
        };
        for c in chunks {
            if !group.is_empty() && c.mint > group_max {
                flush_group(&mut group, &mut out);
                group_max = i64::MIN;
            }
            group_max = group_max.max(c.maxt);
            group.push(c);
        }
        if !group.is_empty() {
            flush_group(&mut group, &mut out);
        }
    }
    (out, groups)
}

/// A stream that receives little data gets a small chunk at every flush
/// of its write node; over a day that is many objects and many records to
/// read per query. Every run of consecutive small chunks of a stream (the
/// run selection of the single-node compactor,
/// [`crate::ingester::compact::small_runs`]: each under a quarter of
/// `ingester.chunk_target_size`, together at most that) is merged like a
/// replica group ([`merge_group`]): decoded whole, identical entries once,
/// written as new `-compactor` chunks listing what they replace, before
/// the caller's superseding segment names them; the inputs leave the view
/// with that segment and are deleted after the grace period. Chunks
/// spanning midnight end a run (another day's segment names them too); a
/// run that fails to read whole stays as it is. Returns the records with
/// each merged run replaced by its output, and the number of runs.
fn merge_small_runs(
    bucket: &Bucket,
    config: &crate::config::Config,
    tenant: &TenantId,
    streams: &BTreeMap<u64, IndexRecord>,
    records: Vec<IndexRecord>,
) -> (Vec<IndexRecord>, u64) {
    let target = config.ingester.chunk_target_size.0;
    let (by_fp, mut out) = chunks_by_stream(records);
    let mut merged_runs = 0;
    for (fp, chunks) in by_fp {
        let labels = labels_of(streams, fp);
        let mut gone: HashSet<String> = HashSet::new();
        if let Some(labels) = &labels {
            let spans_days = |c: &crate::index::ChunkRef| {
                let d = layout::days(c.mint, c.maxt);
                d.start() != d.end()
            };
            for piece in chunks.split(spans_days) {
                for run in crate::ingester::compact::small_runs(piece, target) {
                    match merge_group(bucket, config, tenant, fp, labels, &run) {
                        Ok(merged) => {
                            merged_runs += 1;
                            gone.extend(run.iter().map(|c| c.id.clone()));
                            out.extend(
                                merged
                                    .into_iter()
                                    .map(|chunk| IndexRecord::Chunk { fp, chunk }),
                            );
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %tenant, stream = %labels, error = %e, "Merging a run of small chunks of a stream failed; they stay as they are.");
                        }
                    }
                }
            }
        }
        out.extend(
            chunks
                .into_iter()
                .filter(|c| !gone.contains(&c.id))
                .map(|chunk| IndexRecord::Chunk { fp, chunk }),
        );
    }
    (out, merged_runs)
}

/// Reads every input of a group whole, merges the entries (identical
/// ones once) and writes them as new chunks.
fn merge_group(
    bucket: &Bucket,
    config: &crate::config::Config,
    tenant: &TenantId,
    fp: u64,
    labels: &str,
    group: &[crate::index::ChunkRef],
) -> std::io::Result<Vec<crate::index::ChunkRef>> {
    use crate::chunk::{
        ChunkFile, ChunkHeader, DecodedBlock, EncodedBlock, HeadBlock, chunk_parts,
    };
    use larch_query::Columns;
    let mut inputs = Vec::new();
    for c in group {
        let file = ChunkFile::parse(bucket.get(&layout::chunk_key(tenant, fp, &c.id))?.to_vec())
            .map_err(std::io::Error::other)?;
        let mut n = 0u64;
        for meta in &file.blocks {
            let mut d = DecodedBlock::default();
            d.decode(&file.bytes, meta, Columns::ALL)
                .map_err(std::io::Error::other)?;
            n += d.ts.len() as u64;
            inputs.push(d);
        }
        if n != c.entries {
            return Err(std::io::Error::other(format!(
                "chunk {} holds {n} entries, its record names {}",
                c.id, c.entries
            )));
        }
    }
    let mut merged = DecodedBlock::default();
    crate::ingester::read::merge(&inputs, &mut merged);
    drop(inputs);
    let block_size = usize::try_from(config.ingester.block_size.0).unwrap_or(usize::MAX);
    let target = config.ingester.chunk_target_size.0;
    let max_seq = group.iter().map(|c| c.max_seq).max().unwrap_or(0);
    let view = merged.view(Columns::ALL);
    let mut outputs = Vec::new();
    let mut blocks: Vec<EncodedBlock> = Vec::new();
    let mut head = HeadBlock::with_encoding(config.ingester.encoding());
    let mut write = |blocks: &mut Vec<EncodedBlock>| -> std::io::Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        let header = ChunkHeader {
            labels: labels.to_string(),
            fingerprint: fp,
            min_seq: 0,
            max_seq,
            replaces: group.iter().map(|c| c.id.clone()).collect(),
        };
        let parts = chunk_parts(&header, &refs);
        let id = format!("{max_seq:016x}-{:08x}-compactor", parts.index_crc);
        let mut bytes = Vec::with_capacity(usize::try_from(parts.size).unwrap_or(0));
        parts.write_to(&mut bytes, &refs)?;
        bucket.put(&layout::chunk_key(tenant, fp, &id), bytes.into())?;
        outputs.push(crate::index::ChunkRef {
            id,
            mint: blocks.first().map_or(0, |b| b.meta.mint),
            maxt: blocks.iter().map(|b| b.meta.maxt).max().unwrap_or(0),
            entries: blocks.iter().map(|b| u64::from(b.meta.entries)).sum(),
            bytes: parts.size,
            max_seq,
            raw_bytes: blocks.iter().map(|b| b.meta.lines_size).sum(),
        });
        blocks.clear();
        Ok(())
    };
    let mut size = 0u64;
    for i in 0..view.len() {
        head.append(view.timestamps[i], view.line(i), view.metadata(i));
        if head.size() >= block_size {
            let b = head.cut();
            size += b.bytes.len() as u64;
            blocks.push(b);
            if size >= target {
                write(&mut blocks)?;
                size = 0;
            }
        }
    }
    if !head.is_empty() {
        blocks.push(head.cut());
    }
    write(&mut blocks)?;
    Ok(outputs)
}

/// Whether a chunk is named by a live segment of another day (a chunk
/// spanning midnight). Only this day's segments are at hand: a chunk of
/// another day is recognised by its time range in this day's record.
fn chunk_in_other_days(segs: &[Seg], fp: &u64, id: &str) -> bool {
    segs.iter()
        .flat_map(|s| s.seg.records.iter())
        .any(|r| match r {
            IndexRecord::Chunk { fp: f, chunk } if f == fp && chunk.id == id => {
                let d = layout::days(chunk.mint, chunk.maxt);
                d.start() != d.end()
            }
            _ => false,
        })
}

/// Runs the compactor until [`Msg::Stop`]; `FlushAll` runs it at once.
pub fn run(ing: Arc<Ingester>, rx: Receiver<Msg>) {
    let period = ing
        .config
        .compactor
        .interval
        .0
        .max(Duration::from_millis(10));
    let mut first = true;
    loop {
        let mut done = Vec::new();
        if !first {
            match rx.recv_timeout(period) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Msg::FlushAll(d)) => done.push(d),
                Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        first = false;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let result = match run_once(
            &ing.bucket,
            &ing.config,
            &ing.deletes,
            &ing.writer_id,
            now_ms,
        ) {
            Ok(r) => {
                ing.metrics.deletes.deleted_lines.inc_by(r.deleted_lines);
                ing.metrics
                    .objstore
                    .compactor_expired_chunks
                    .inc_by(r.expired_chunks);
                ing.metrics
                    .objstore
                    .compactor_term_indexes
                    .inc_by(r.term_indexes);
                ing.metrics
                    .objstore
                    .compactor_term_index_bytes
                    .inc_by(r.term_index_bytes);
                for (kind, n) in [
                    ("segment", r.deleted_segments),
                    ("chunk", r.deleted_chunks),
                    ("terms", r.deleted_terms),
                ] {
                    ing.metrics
                        .objstore
                        .compactor_deleted
                        .get_or_create(&vec![("kind", kind.to_string())])
                        .inc_by(n);
                }
                "success"
            }
            Err(e) => {
                tracing::error!(error = %e, "A compaction run failed; it is tried again at the next interval.");
                "error"
            }
        };
        ing.metrics
            .objstore
            .compactions
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
        let (received, processed) = ing.deletes.counts();
        ing.metrics.deletes.set_counts(received, processed);
        for d in done {
            let _ = d.send(());
        }
    }
}
