//! Recognising a file again: device, inode and a fingerprint of its first
//! bytes.
//!
//! Device and inode say "the same file" while the agent runs, but an inode
//! freed by a deleted file is soon reused by a new one, so across restarts
//! (and after copytruncate) the agent also compares a hash of the first
//! [`FP_MAX`] bytes. A file shorter than that has a shorter fingerprint,
//! which grows as the file does; a fingerprint matches a file if the file's
//! first `len` bytes hash to it.

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// Bytes covered by a full fingerprint. A CRI line starts with a
/// nanosecond timestamp, so the first 128 bytes of two different files
/// practically never agree.
pub const FP_MAX: u32 = 128;

/// Hash of a file's first `len` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of bytes hashed (0 for an empty file).
    pub len: u32,
    /// xxh3-64 of those bytes.
    pub hash: u64,
}

fn read_prefix(file: &File, len: usize, buf: &mut [u8; FP_MAX as usize]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < len {
        let n = file.read_at(&mut buf[got..len], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

impl Fingerprint {
    /// Fingerprints the first `min(size, FP_MAX)` bytes of `file`.
    pub fn of(file: &File, size: u64) -> std::io::Result<Fingerprint> {
        let mut buf = [0u8; FP_MAX as usize];
        let want = size.min(FP_MAX as u64) as usize;
        let got = read_prefix(file, want, &mut buf)?;
        Ok(Fingerprint {
            len: got as u32,
            hash: xxhash_rust::xxh3::xxh3_64(&buf[..got]),
        })
    }

    /// True when the file's first `self.len` bytes still hash to `self`.
    pub fn matches(&self, file: &File) -> std::io::Result<bool> {
        let mut buf = [0u8; FP_MAX as usize];
        let got = read_prefix(file, self.len as usize, &mut buf)?;
        Ok(got == self.len as usize && xxhash_rust::xxh3::xxh3_64(&buf[..got]) == self.hash)
    }

    /// Re-checks the fingerprint against a file that now has `size` bytes:
    /// `Some(updated)` if the file still starts with the same bytes (the
    /// fingerprint extended if the file grew past it), `None` if its start
    /// changed, i.e. it was truncated and rewritten.
    pub fn recheck(&self, file: &File, size: u64) -> std::io::Result<Option<Fingerprint>> {
        if size < self.len as u64 {
            return Ok(None);
        }
        let mut buf = [0u8; FP_MAX as usize];
        let want = size.min(FP_MAX as u64) as usize;
        let got = read_prefix(file, want, &mut buf)?;
        if got < self.len as usize
            || xxhash_rust::xxh3::xxh3_64(&buf[..self.len as usize]) != self.hash
        {
            return Ok(None);
        }
        Ok(Some(Fingerprint {
            len: got as u32,
            hash: xxhash_rust::xxh3::xxh3_64(&buf[..got]),
        }))
    }

    /// True once the fingerprint covers [`FP_MAX`] bytes.
    pub fn is_full(&self) -> bool {
        self.len >= FP_MAX
    }
}

/// Device and inode of an open file.
pub fn dev_ino(file: &File) -> std::io::Result<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino(), m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn grows_and_detects_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&p)
            .unwrap();
        f.write_all(b"hello").unwrap();
        let fp = Fingerprint::of(&f, 5).unwrap();
        assert_eq!(fp.len, 5);
        assert!(fp.matches(&f).unwrap());
        f.write_all(&[b'x'; 300]).unwrap();
        let grown = fp.recheck(&f, 305).unwrap().unwrap();
        assert!(grown.is_full());
        assert!(grown.matches(&f).unwrap());
        f.set_len(0).unwrap();
        assert_eq!(grown.recheck(&f, 0).unwrap(), None);
        f.write_all(&[b'y'; 400]).unwrap();
        assert_eq!(grown.recheck(&f, 400).unwrap(), None);
        assert!(!grown.matches(&f).unwrap());
    }
}
