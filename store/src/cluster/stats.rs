//! Index statistics of streams that several replicas hold
//! (`index/stats`, `index/volume`, `volume_range`).
//!
//! With a replication factor above 1 every line of a stream is in up to
//! `rf` write nodes' memory, and each of them flushes its own chunks of it
//! (`<max_seq>-<crc>-<writer>`) until the compactor merges them. Summing
//! every piece would count each line `rf` times. Statistics are read from
//! sizes alone (no chunk is opened), so the copies are removed by where
//! they come from: a stream's pieces (chunks, and summaries of a member's
//! unflushed data named after its writer id) whose time ranges overlap
//! form a group; a group with pieces of several writers holds replicas of
//! the same entries, and counts as its largest writer's share (the most
//! complete copy). Pieces of one writer, and groups of one writer, are
//! summed as before. This is exact when the replicas hold the same entries
//! and an estimate otherwise (a replica that missed a push is not the one
//! counted; two writers holding different entries at overlapping times,
//! which replication does not produce, count as the larger).

use crate::index::ChunkRef;
use crate::ingester::stream::{RangeStats, StreamState, prorate};

/// The writer a chunk id names: `<max_seq>-<crc>-<writer>` (empty for the
/// single node's `<max_seq>-<crc>`); the summaries of a member's
/// unflushed data are `unflushed-<i>-<writer>`.
pub fn writer_of(id: &str) -> &str {
    id.splitn(3, '-').nth(2).unwrap_or("")
}

/// The id of the summary `i` of a member's unflushed data (never read,
/// never named by any index; see [`writer_of`]).
pub fn unflushed_id(i: usize, writer: &str) -> String {
    format!("unflushed-{i}-{writer}")
}

/// Summaries of a stream's unflushed data (sealed chunks, written but
/// unpublished ones, the open chunk): `(mint, maxt, entries, raw bytes)`.
pub fn unflushed(st: &StreamState) -> Vec<(i64, i64, u64, u64)> {
    let mut out: Vec<(i64, i64, u64, u64)> = st
        .sealed
        .iter()
        .chain(st.pending.iter().map(|(c, _)| c))
        .map(|c| (c.mint, c.maxt, c.entries, c.raw_bytes()))
        .collect();
    out.extend(st.open_summary());
    out
}

/// The summaries of `st`'s unflushed data as chunk references of
/// `writer` (for a stream merged from several nodes' answers).
pub fn unflushed_refs(st: &StreamState, writer: &str) -> Vec<ChunkRef> {
    unflushed(st)
        .into_iter()
        .enumerate()
        .map(|(i, (mint, maxt, entries, raw))| ChunkRef {
            id: unflushed_id(i, writer),
            mint,
            maxt,
            entries,
            bytes: 0,
            max_seq: 0,
            raw_bytes: raw,
        })
        .collect()
}

/// One piece of a stream overlapping the range, prorated.
struct Piece<'a> {
    mint: i64,
    maxt: i64,
    bytes: u64,
    entries: u64,
    writer: &'a str,
}

/// Chunks, bytes and entries of `st` within `[start, end)`. `own`: this
/// node's writer id when replicas are to be counted once (a replication
/// factor above 1); its unflushed data is its own piece. `None`: every
/// piece is summed ([`StreamState::range_stats`]).
pub fn range_stats(st: &StreamState, start: i64, end: i64, own: Option<&str>) -> RangeStats {
    let Some(own) = own else {
        return st.range_stats(start, end);
    };
    let overlaps = |mint: i64, maxt: i64| maxt >= start && mint < end;
    // The common case, one writer: nothing to remove.
    let mut writers = st
        .chunks
        .iter()
        .filter(|c| overlaps(c.mint, c.maxt))
        .map(|c| writer_of(&c.id));
    let single = match writers.next() {
        None => true,
        Some(first) => {
            let first_is_own = first == own;
            let has_unflushed = unflushed(st).iter().any(|u| overlaps(u.0, u.1));
            writers.all(|w| w == first) && (first_is_own || !has_unflushed)
        }
    };
    if single {
        return st.range_stats(start, end);
    }
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    let mut add = |mint: i64, maxt: i64, bytes: u64, entries: u64, writer| {
        if overlaps(mint, maxt) {
            pieces.push(Piece {
                mint,
                maxt,
                bytes: prorate(bytes, mint, maxt, start, end),
                entries: prorate(entries, mint, maxt, start, end),
                writer,
            });
        }
    };
    for c in &st.chunks {
        add(c.mint, c.maxt, c.raw_bytes, c.entries, writer_of(&c.id));
    }
    for (mint, maxt, entries, raw) in unflushed(st) {
        add(mint, maxt, raw, entries, own);
    }
    dedupe(pieces)
}

/// Sums `pieces`, each overlapping group of several writers counted as its
/// largest writer's share.
fn dedupe(mut pieces: Vec<Piece<'_>>) -> RangeStats {
    pieces.sort_by_key(|p| (p.mint, p.maxt));
    let mut total = RangeStats::default();
    let mut i = 0;
    // Per writer of the group: (writer, chunks, bytes, entries).
    let mut shares: Vec<(&str, u64, u64, u64)> = Vec::new();
    while i < pieces.len() {
        let mut hi = pieces[i].maxt;
        let mut j = i;
        shares.clear();
        while j < pieces.len() && (j == i || pieces[j].mint <= hi) {
            let p = &pieces[j];
            hi = hi.max(p.maxt);
            match shares.iter_mut().find(|s| s.0 == p.writer) {
                Some(s) => {
                    s.1 += 1;
                    s.2 = s.2.saturating_add(p.bytes);
                    s.3 = s.3.saturating_add(p.entries);
                }
                None => shares.push((p.writer, 1, p.bytes, p.entries)),
            }
            j += 1;
        }
        if let Some(best) = shares.iter().max_by_key(|s| (s.3, s.2, s.1)) {
            total.chunks = total.chunks.saturating_add(best.1);
            total.bytes = total.bytes.saturating_add(best.2);
            total.entries = total.entries.saturating_add(best.3);
        }
        i = j;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, mint: i64, maxt: i64, entries: u64) -> ChunkRef {
        ChunkRef {
            id: id.into(),
            mint,
            maxt,
            entries,
            bytes: 1,
            max_seq: 1,
            raw_bytes: entries * 10,
        }
    }

    fn stats(chunks: Vec<ChunkRef>, own: Option<&str>) -> RangeStats {
        let st = StreamState {
            chunks,
            ..StreamState::default()
        };
        range_stats(&st, 0, 1000, own)
    }

    #[test]
    fn writer_of_reads_the_suffix() {
        assert_eq!(
            writer_of("00000001-0000abcd-w0123456789ab"),
            "w0123456789ab"
        );
        assert_eq!(writer_of("00000001-0000abcd"), "");
        assert_eq!(writer_of(&unflushed_id(3, "w1")), "w1");
        assert_eq!(writer_of("unflushed-0-larch-write-0"), "larch-write-0");
    }

    #[test]
    fn replicas_count_once_and_disjoint_pieces_add_up() {
        // Three writers hold the same 100 entries, cut differently.
        let replicas = vec![
            chunk("1-a-wa", 0, 49, 50),
            chunk("2-a-wa", 50, 99, 50),
            chunk("1-b-wb", 0, 99, 100),
            chunk("unflushed-0-wc", 0, 99, 100),
        ];
        let r = stats(replicas.clone(), Some("wself"));
        assert_eq!((r.entries, r.bytes), (100, 1000));
        // Without deduplication every copy counts.
        assert_eq!(stats(replicas, None).entries, 300);
        // A stream that moved (RF=1, owner down): disjoint ranges add up.
        let moved = vec![chunk("1-a-wa", 0, 49, 50), chunk("1-b-wb", 60, 99, 40)];
        assert_eq!(stats(moved, Some("wself")).entries, 90);
        // The most complete replica is the one counted.
        let gap = vec![chunk("1-a-wa", 0, 99, 100), chunk("1-b-wb", 0, 99, 97)];
        assert_eq!(stats(gap, Some("wself")).entries, 100);
    }

    #[test]
    fn one_writer_is_summed_as_before() {
        let one = vec![chunk("1-a-wa", 0, 99, 100), chunk("2-a-wa", 50, 150, 10)];
        assert_eq!(stats(one.clone(), Some("wa")), stats(one, None));
    }
}
