//! A bounded disk cache of remote objects and byte ranges.
//!
//! Objects are immutable, so an entry never goes stale: an entry is a file
//! named by the hash of its key and range, holding a small header (the
//! key, the range, a checksum of the bytes) and the bytes. A read checks
//! the header and the checksum; an entry that fails is removed and the
//! bytes fetched again, so a damaged cache never serves wrong bytes.
//! Entries are evicted least recently used first once the total passes
//! `max_size`. The directory is emptied when the store starts (what a
//! restart loses is refetched on demand).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;

use super::metrics::ObjstoreMetrics;

const MAGIC: &[u8; 8] = b"LRCHCAC1";

/// The cache.
pub struct DiskCache {
    dir: PathBuf,
    max: u64,
    metrics: ObjstoreMetrics,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    tick: u64,
    total: u64,
    /// Entry id -> (size, last use).
    entries: HashMap<u64, (u64, u64)>,
    /// Last use -> entry id.
    order: BTreeMap<u64, u64>,
}

fn entry_id(key: &str, range: Option<&Range<u64>>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key.as_bytes());
    if let Some(r) = range {
        h.update(&r.start.to_le_bytes());
        h.update(&r.end.to_le_bytes());
    } else {
        h.update(b"whole");
    }
    h.digest()
}

fn header(key: &str, range: Option<&Range<u64>>, bytes: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(key.len() + 40);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&(key.len() as u32).to_le_bytes());
    h.extend_from_slice(key.as_bytes());
    let (a, b) = range.map_or((u64::MAX, u64::MAX), |r| (r.start, r.end));
    h.extend_from_slice(&a.to_le_bytes());
    h.extend_from_slice(&b.to_le_bytes());
    h.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    h
}

impl DiskCache {
    /// A cache in `dir` (emptied) of at most `max` bytes.
    pub fn open(dir: &Path, max: u64, metrics: ObjstoreMetrics) -> std::io::Result<DiskCache> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir)?;
        metrics.cache_bytes.set(0);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            max,
            metrics,
            inner: Mutex::new(Lru::default()),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}"))
    }

    /// The cached bytes of `key` (the whole object with `range` `None`).
    pub fn get(&self, key: &str, range: Option<Range<u64>>) -> Option<Bytes> {
        let id = entry_id(key, range.as_ref());
        let known = {
            let mut l = self.inner.lock();
            l.tick += 1;
            let tick = l.tick;
            match l.entries.get_mut(&id) {
                Some(e) => {
                    let old = std::mem::replace(&mut e.1, tick);
                    l.order.remove(&old);
                    l.order.insert(tick, id);
                    true
                }
                None => false,
            }
        };
        if !known {
            self.metrics.cache_misses.inc();
            return None;
        }
        let got = std::fs::read(self.path(id)).ok().and_then(|data| {
            let want = header(key, range.as_ref(), &[]);
            // The header up to the checksum, then the checksum of the rest.
            let fixed = want.len() - 4;
            if data.len() < want.len() || data[..fixed] != want[..fixed] {
                return None;
            }
            let crc = u32::from_le_bytes(data[fixed..fixed + 4].try_into().ok()?);
            let body = &data[want.len()..];
            (crc32fast::hash(body) == crc).then(|| Bytes::copy_from_slice(body))
        });
        match got {
            Some(b) => {
                self.metrics.cache_hits.inc();
                Some(b)
            }
            None => {
                self.remove(id);
                self.metrics.cache_misses.inc();
                None
            }
        }
    }

    /// Keeps `bytes` for `key` and `range`; evicts the least recently used
    /// entries past the bound. Failures only cost a later refetch.
    pub fn put(&self, key: &str, range: Option<Range<u64>>, bytes: &[u8]) {
        let size = bytes.len() as u64;
        if size > self.max / 4 {
            return;
        }
        let id = entry_id(key, range.as_ref());
        let path = self.path(id);
        let tmp = path.with_extension("tmp");
        let mut data = header(key, range.as_ref(), bytes);
        data.extend_from_slice(bytes);
        if std::fs::write(&tmp, &data)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let evict = {
            let mut l = self.inner.lock();
            l.tick += 1;
            let tick = l.tick;
            if let Some((old_size, old_tick)) = l.entries.insert(id, (size, tick)) {
                l.order.remove(&old_tick);
                l.total -= old_size;
            }
            l.order.insert(tick, id);
            l.total += size;
            let mut evict = Vec::new();
            while l.total > self.max {
                let Some((&t, &victim)) = l.order.iter().next() else {
                    break;
                };
                l.order.remove(&t);
                if let Some((s, _)) = l.entries.remove(&victim) {
                    l.total -= s;
                }
                evict.push(victim);
            }
            self.metrics.cache_bytes.set(l.total as i64);
            evict
        };
        for v in evict {
            let _ = std::fs::remove_file(self.path(v));
        }
    }

    fn remove(&self, id: u64) {
        let mut l = self.inner.lock();
        if let Some((s, t)) = l.entries.remove(&id) {
            l.order.remove(&t);
            l.total -= s;
            self.metrics.cache_bytes.set(l.total as i64);
        }
        drop(l);
        let _ = std::fs::remove_file(self.path(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_evicts_and_never_serves_damage() {
        let dir = tempfile::tempdir().unwrap();
        let m = ObjstoreMetrics::default();
        let c = DiskCache::open(dir.path(), 400, m.clone()).unwrap();
        assert!(c.get("a", Some(0..10)).is_none());
        c.put("a", Some(0..10), &[1; 100]);
        c.put("b", None, &[2; 100]);
        assert_eq!(
            c.get("a", Some(0..10)).unwrap(),
            Bytes::from(vec![1u8; 100])
        );
        assert!(c.get("a", Some(0..11)).is_none());
        // "b" is now the least recently used: three more evict it.
        c.put("c", None, &[3; 100]);
        c.put("d", None, &[4; 100]);
        c.put("e", None, &[5; 100]);
        assert!(c.get("b", None).is_none());
        assert!(c.get("a", Some(0..10)).is_some());
        assert_eq!(m.cache_bytes.get(), 400);
        // A flipped byte is a miss, and the entry is gone.
        let p = c.path(entry_id("e", None));
        let mut data = std::fs::read(&p).unwrap();
        let n = data.len();
        data[n - 1] ^= 1;
        std::fs::write(&p, data).unwrap();
        assert!(c.get("e", None).is_none());
        assert!(!p.exists());
        assert!(m.cache_hits.get() >= 2);
    }
}
