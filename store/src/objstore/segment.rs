//! Index segments: an immutable object naming chunks of one tenant and
//! one day (ARCHITECTURE.md, "Object layout").
//!
//! ```text
//! segment := "LRCHSEG\x01" | u32le len | u32le crc32(head) | head | frame*
//!            | u32le crc32(all before) | "LRSEGEND"
//! head    := str writer | varint day | uvarint n { str superseded segment name }*
//!            [ str term-index name | uvarint term-index size ]
//! frame   := an index log frame (`index::log`): 1 stream, 2 chunk
//! ```
//! The term index (`objstore::terms`) is optional: segments written
//! before it existed, and those of write nodes, have none, and a reader
//! that does not know it ignores the rest of the head.
//! A segment is decoded whole when its trailer checks out; otherwise its
//! frames are read as a damaged index log is (every valid frame kept) and
//! the damage is reported to the caller.

use crate::encoding::{Reader, put_bytes, put_uvarint, put_varint};
use crate::index::log::{MAGIC as LOG_MAGIC, scan};
use crate::index::{IndexRecord, valid_chunk_id};

const MAGIC: &[u8; 8] = b"LRCHSEG\x01";
const END: &[u8; 8] = b"LRSEGEND";
const TRAILER: usize = 12;
/// Longest head accepted (names of superseded segments are short, but a
/// compaction of a busy day may list thousands).
const MAX_HEAD: usize = 16 << 20;

/// A decoded segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Who wrote it (a write node's id, or the compactor's).
    pub writer: String,
    /// Its day.
    pub day: i64,
    /// Names of the segments of the same day it supersedes.
    pub supersedes: Vec<String>,
    /// Stream and chunk records.
    pub records: Vec<IndexRecord>,
    /// Whether it was damaged (the records are those that checked out).
    pub damaged: bool,
    /// The term index covering its chunks: (name, size in bytes).
    pub terms: Option<(String, u64)>,
}

/// Encodes a segment; returns its bytes and its name
/// (`<writer>-<max_seq:016x>-<crc:08x>`).
pub fn encode(
    writer: &str,
    day: i64,
    supersedes: &[String],
    records: &[IndexRecord],
) -> (Vec<u8>, String) {
    encode_with_terms(writer, day, supersedes, records, None)
}

/// [`encode`], naming the term index (name, size) that covers the chunks
/// of `records`.
pub fn encode_with_terms(
    writer: &str,
    day: i64,
    supersedes: &[String],
    records: &[IndexRecord],
    terms: Option<(&str, u64)>,
) -> (Vec<u8>, String) {
    let mut head = Vec::new();
    put_bytes(&mut head, writer.as_bytes());
    put_varint(&mut head, day);
    put_uvarint(&mut head, supersedes.len() as u64);
    for s in supersedes {
        put_bytes(&mut head, s.as_bytes());
    }
    if let Some((name, size)) = terms {
        put_bytes(&mut head, name.as_bytes());
        put_uvarint(&mut head, size);
    }
    let mut out = Vec::with_capacity(head.len() + records.len() * 80 + 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
    out.extend_from_slice(&head);
    let mut max_seq = 0;
    for r in records {
        if let IndexRecord::Chunk { chunk, .. } = r {
            max_seq = max_seq.max(chunk.max_seq);
        }
        r.encode(&mut out);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(END);
    (out, format!("{writer}-{max_seq:016x}-{crc:08x}"))
}

/// A segment that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an index segment: {0}")]
pub struct SegmentError(pub &'static str);

/// Decodes a segment (see the module docs).
pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
    if bytes.len() < MAGIC.len() + 8 + TRAILER || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SegmentError("bad magic"));
    }
    let mut r = Reader::new(&bytes[MAGIC.len()..]);
    let len = r.u32le("head").map_err(|_| SegmentError("head"))? as usize;
    let crc = r.u32le("head").map_err(|_| SegmentError("head"))?;
    if len > MAX_HEAD {
        return Err(SegmentError("head length"));
    }
    let head = r.take(len, "head").map_err(|_| SegmentError("head"))?;
    if crc32fast::hash(head) != crc {
        return Err(SegmentError("head checksum"));
    }
    let mut h = Reader::new(head);
    let bad = |_| SegmentError("head");
    let writer = h.str("writer").map_err(bad)?.to_string();
    let day = h.varint("day").map_err(bad)?;
    let n = h.len("superseded", head.len()).map_err(bad)?;
    let mut supersedes = Vec::with_capacity(n);
    for _ in 0..n {
        let s = h.str("superseded").map_err(bad)?;
        if !valid_chunk_id(s) {
            return Err(SegmentError("superseded name"));
        }
        supersedes.push(s.to_string());
    }
    let terms = if h.is_empty() {
        None
    } else {
        let name = h.str("term index").map_err(bad)?;
        let size = h.uvarint("term index").map_err(bad)?;
        if !valid_chunk_id(name) {
            return Err(SegmentError("term index name"));
        }
        Some((name.to_string(), size))
    };
    let frames_start = MAGIC.len() + 8 + len;
    let end = bytes.len() - TRAILER;
    let whole = &bytes[end + 4..] == END
        && bytes
            .get(end..end + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            == Some(crc32fast::hash(&bytes[..end]));
    let region = if whole {
        &bytes[frames_start.min(end)..end]
    } else {
        &bytes[frames_start.min(bytes.len())..]
    };
    let mut buf = Vec::with_capacity(region.len() + LOG_MAGIC.len());
    buf.extend_from_slice(LOG_MAGIC);
    buf.extend_from_slice(region);
    let s = scan(&buf);
    let records = s
        .records
        .into_iter()
        .filter(|r| matches!(r, IndexRecord::Stream { .. } | IndexRecord::Chunk { .. }))
        .collect();
    Ok(Segment {
        writer,
        day,
        supersedes,
        records,
        damaged: !whole || !s.corrupt.is_empty() || s.torn_at.is_some(),
        terms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChunkRef;
    use larch_query::LabelSet;
    use proptest::prelude::*;

    fn records(n: usize) -> Vec<IndexRecord> {
        let mut v = vec![IndexRecord::Stream {
            fp: 7,
            labels: LabelSet::from_pairs([("app", "a")]),
        }];
        for i in 0..n {
            v.push(IndexRecord::Chunk {
                fp: 7,
                chunk: ChunkRef {
                    id: format!("c{i}"),
                    mint: i as i64,
                    maxt: i as i64 + 5,
                    entries: 3,
                    bytes: 100,
                    max_seq: 10 + i as u64,
                    raw_bytes: 300,
                },
            });
        }
        v
    }

    #[test]
    fn reads_back_and_names_by_content() {
        let (bytes, name) = encode("w1", 19_000, &["w0-1-2".into()], &records(3));
        assert!(name.starts_with("w1-000000000000000c-"), "{name}");
        assert!(valid_chunk_id(&name));
        let s = decode(&bytes).unwrap();
        assert_eq!(s.writer, "w1");
        assert_eq!(s.day, 19_000);
        assert_eq!(s.supersedes, vec!["w0-1-2".to_string()]);
        assert_eq!(s.records, records(3));
        assert!(!s.damaged);
        assert_eq!(s.terms, None);
        let (with, named) =
            encode_with_terms("w1", 19_000, &[], &records(3), Some(("compactor-1-2", 77)));
        assert_ne!(named, name);
        let s = decode(&with).unwrap();
        assert_eq!(s.terms, Some(("compactor-1-2".to_string(), 77)));
        assert_eq!(s.records, records(3));
        let (_, other) = encode("w1", 19_000, &[], &records(2));
        assert_ne!(name, other);
        assert!(decode(b"LRCHIDX\x01 not a segment").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Damage never panics, never invents a record, and is reported.
        #[test]
        fn damage_is_reported_and_invents_nothing(
            at in any::<prop::sample::Index>(),
            x in 1u8..=255,
            cut in any::<bool>(),
        ) {
            let recs = records(6);
            let (mut bytes, _) = encode("w1", 1, &[], &recs);
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] ^= x;
            }
            if let Ok(s) = decode(&bytes) {
                prop_assert!(s.damaged);
                for r in &s.records {
                    prop_assert!(recs.contains(r));
                }
            }
        }
    }
}
