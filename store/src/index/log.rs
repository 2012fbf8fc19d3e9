//! The index log: one append-only file per tenant recording which streams
//! exist and which chunk files hold their data.
//!
//! ```text
//! file    "LRCHIDX\x01" frame*
//! frame   u32le len | u32le crc32(payload) | payload
//! payload u8 kind
//!         1 stream  u64le fp | uvarint npairs { str name | str value }*
//!         2 chunk   u64le fp | str id | varint mint | varint maxt
//!                   | uvarint entries | uvarint bytes | uvarint max_seq
//!                   | uvarint raw bytes
//!         3 delete  u64le fp | str id
//! ```
//! A chunk record is appended (and fsynced) only after its chunk file is
//! durable; so the log never names a chunk that is not on disk. A torn
//! record at the end (a crash mid-append) is dropped on open; the chunk it
//! named is rebuilt from the WAL.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use larch_query::LabelSet;

use crate::encoding::{Malformed, Reader, put_bytes, put_uvarint, put_varint};

const MAGIC: &[u8; 8] = b"LRCHIDX\x01";

/// A chunk as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// File name stem under the stream's directory.
    pub id: String,
    /// Smallest timestamp.
    pub mint: i64,
    /// Largest timestamp.
    pub maxt: i64,
    /// Entries.
    pub entries: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Uncompressed size of its lines.
    pub raw_bytes: u64,
    /// Highest WAL sequence number whose entries it holds.
    pub max_seq: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexRecord {
    /// A stream's labels.
    Stream {
        /// Fingerprint.
        fp: u64,
        /// Labels.
        labels: LabelSet,
    },
    /// A chunk of a stream.
    Chunk {
        /// Stream fingerprint.
        fp: u64,
        /// The chunk.
        chunk: ChunkRef,
    },
    /// A chunk deleted (retention or compaction).
    Delete {
        /// Stream fingerprint.
        fp: u64,
        /// Chunk id.
        id: String,
    },
}

impl IndexRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        match self {
            IndexRecord::Stream { fp, labels } => {
                out.push(1);
                out.extend_from_slice(&fp.to_le_bytes());
                put_uvarint(out, labels.len() as u64);
                for l in labels {
                    put_bytes(out, l.name.as_bytes());
                    put_bytes(out, l.value.as_bytes());
                }
            }
            IndexRecord::Chunk { fp, chunk } => {
                out.push(2);
                out.extend_from_slice(&fp.to_le_bytes());
                put_bytes(out, chunk.id.as_bytes());
                put_varint(out, chunk.mint);
                put_varint(out, chunk.maxt);
                put_uvarint(out, chunk.entries);
                put_uvarint(out, chunk.bytes);
                put_uvarint(out, chunk.max_seq);
                put_uvarint(out, chunk.raw_bytes);
            }
            IndexRecord::Delete { fp, id } => {
                out.push(3);
                out.extend_from_slice(&fp.to_le_bytes());
                put_bytes(out, id.as_bytes());
            }
        }
        let len = (out.len() - start - 8) as u32;
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn decode(payload: &[u8]) -> Result<IndexRecord, Malformed> {
        let mut r = Reader::new(payload);
        let kind = r.take(1, "index record kind")?[0];
        let fp = r.u64le("fingerprint")?;
        match kind {
            1 => {
                let n = r.len("label count", payload.len())?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((
                        r.str("label name")?.to_string(),
                        r.str("label value")?.to_string(),
                    ));
                }
                let labels = LabelSet::from_unique_pairs(pairs).map_err(|_| Malformed {
                    what: "labels",
                    offset: r.pos(),
                })?;
                Ok(IndexRecord::Stream { fp, labels })
            }
            2 => Ok(IndexRecord::Chunk {
                fp,
                chunk: ChunkRef {
                    id: r.str("chunk id")?.to_string(),
                    mint: r.varint("mint")?,
                    maxt: r.varint("maxt")?,
                    entries: r.uvarint("entries")?,
                    bytes: r.uvarint("bytes")?,
                    max_seq: r.uvarint("max seq")?,
                    raw_bytes: r.uvarint("raw bytes")?,
                },
            }),
            3 => Ok(IndexRecord::Delete {
                fp,
                id: r.str("chunk id")?.to_string(),
            }),
            _ => Err(Malformed {
                what: "index record kind",
                offset: 0,
            }),
        }
    }
}

/// An open index log.
pub struct IndexLog {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl IndexLog {
    /// Opens (creating if needed) the log at `path` and returns its
    /// records. A torn or corrupt tail is cut off (and reported).
    pub fn open(path: &Path) -> io::Result<(IndexLog, Vec<IndexRecord>, bool)> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut records = Vec::new();
        let mut damaged = false;
        let mut valid_len = MAGIC.len();
        if bytes.is_empty() {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(path)?;
            f.write_all(MAGIC)?;
            f.sync_all()?;
        } else if bytes.len() >= MAGIC.len() && &bytes[..8] == MAGIC {
            let mut pos = MAGIC.len();
            while pos + 8 <= bytes.len() {
                let len = u32::from_le_bytes([
                    bytes[pos],
                    bytes[pos + 1],
                    bytes[pos + 2],
                    bytes[pos + 3],
                ]) as usize;
                let crc = u32::from_le_bytes([
                    bytes[pos + 4],
                    bytes[pos + 5],
                    bytes[pos + 6],
                    bytes[pos + 7],
                ]);
                let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
                    break;
                };
                if crc32fast::hash(payload) != crc {
                    break;
                }
                match IndexRecord::decode(payload) {
                    Ok(r) => records.push(r),
                    Err(_) => break,
                }
                pos += 8 + len;
                valid_len = pos;
            }
            damaged = valid_len != bytes.len();
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a Larch index log", path.display()),
            ));
        }
        if damaged {
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(valid_len as u64)?;
            f.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok((
            IndexLog {
                path: path.to_path_buf(),
                file,
                buf: Vec::new(),
            },
            records,
            damaged,
        ))
    }

    /// Appends records and makes them durable.
    pub fn append(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        self.buf.clear();
        for r in records {
            r.encode(&mut self.buf);
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()
    }

    /// Replaces the log with exactly `records` (temp file, fsync, rename).
    pub fn rewrite(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        let tmp = self.path.with_extension("idx.tmp");
        let mut buf = MAGIC.to_vec();
        for r in records {
            r.encode(&mut buf);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            crate::wal::sync_dir(dir)?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str) -> ChunkRef {
        ChunkRef {
            id: id.into(),
            mint: -1,
            maxt: 9,
            entries: 3,
            bytes: 100,
            max_seq: 7,
            raw_bytes: 300,
        }
    }

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let (mut log, recs, damaged) = IndexLog::open(&path).unwrap();
        assert!(recs.is_empty() && !damaged);
        let labels = LabelSet::from_pairs([("app", "a")]);
        let written = vec![
            IndexRecord::Stream { fp: 1, labels },
            IndexRecord::Chunk {
                fp: 1,
                chunk: chunk("c1"),
            },
            IndexRecord::Delete {
                fp: 1,
                id: "c1".into(),
            },
        ];
        log.append(&written).unwrap();
        drop(log);
        let (_, recs, damaged) = IndexLog::open(&path).unwrap();
        assert_eq!(recs, written);
        assert!(!damaged);

        // Tear the last record.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let (mut log, recs, damaged) = IndexLog::open(&path).unwrap();
        assert!(damaged);
        assert_eq!(recs, written[..2].to_vec());
        log.append(&[IndexRecord::Chunk {
            fp: 2,
            chunk: chunk("c2"),
        }])
        .unwrap();
        drop(log);
        let (mut log, recs, _) = IndexLog::open(&path).unwrap();
        assert_eq!(recs.len(), 3);
        log.rewrite(&recs[..1]).unwrap();
        drop(log);
        assert_eq!(IndexLog::open(&path).unwrap().1.len(), 1);
    }

    #[test]
    fn foreign_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        fs::write(&path, b"hello world, not an index").unwrap();
        assert!(IndexLog::open(&path).is_err());
    }
}
