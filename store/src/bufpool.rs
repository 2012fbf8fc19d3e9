//! Large byte buffers kept between pushes for the next one.
//!
//! Every push needs buffers of about its decompressed size: the
//! decompressed body its lines are slices of, and its WAL record. Made
//! anew for each request, a buffer that size comes from fresh pages: the
//! allocator hands megabyte blocks back to the kernel when they are freed,
//! and the kernel faults every page of the next one in and zeroes it
//! before the push writes over it. A [`BufPool`] keeps a few freed buffers
//! instead, so a steady stream of pushes writes into memory it already
//! has.
//!
//! What a pool keeps is bounded: at most `max_free` buffers of at most
//! `max_capacity` bytes each; a buffer beyond either is freed as before.

use bytes::Bytes;
use parking_lot::Mutex;

/// Buffers given back, for [`BufPool::take`] to hand out again.
#[derive(Debug)]
pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
    max_free: usize,
    max_capacity: usize,
}

impl BufPool {
    /// A pool keeping up to `max_free` buffers of up to `max_capacity`
    /// bytes.
    pub const fn new(max_free: usize, max_capacity: usize) -> BufPool {
        BufPool {
            free: Mutex::new(Vec::new()),
            max_free,
            max_capacity,
        }
    }

    /// A buffer given back earlier, else a new empty one. Its `len` is
    /// what its last user left initialised: clear it to append, or write
    /// over it (see [`BufPool::bytes_from`]).
    pub fn take(&self) -> Vec<u8> {
        self.free.lock().pop().unwrap_or_default()
    }

    /// Keeps `buf` for a later [`BufPool::take`], unless it is larger than
    /// the pool keeps or the pool is full.
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > self.max_capacity {
            return;
        }
        let mut free = self.free.lock();
        if free.len() < self.max_free {
            free.push(buf);
        }
    }

    /// `len` bytes written by `fill` into a buffer from the pool, as
    /// [`Bytes`] that give the buffer back when the last of them (and of
    /// their slices) is dropped. `fill` gets exactly `len` initialised
    /// bytes (zeroed only where the buffer had to grow: a reused buffer is
    /// written over, not cleared first) and returns how many it filled,
    /// or its error.
    pub fn bytes_from<E>(
        &'static self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Bytes, E> {
        let mut buf = self.take();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        match fill(&mut buf[..len]) {
            Ok(n) => Ok(Bytes::from_owner(Pooled {
                len: n.min(len),
                buf,
                pool: self,
            })),
            Err(e) => {
                self.give(buf);
                Err(e)
            }
        }
    }

    /// Buffers held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.free.lock().len()
    }
}

/// The first `len` bytes of a pooled buffer, which goes back to `pool`
/// when dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: &'static BufPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_return_their_buffer_when_the_last_slice_drops() {
        static POOL: BufPool = BufPool::new(2, 1 << 20);
        let b = POOL
            .bytes_from(10, |room| {
                room[..3].copy_from_slice(b"abc");
                Ok::<_, ()>(3)
            })
            .unwrap();
        assert_eq!(&b[..], b"abc");
        let slice = b.slice(1..2);
        drop(b);
        assert_eq!(POOL.held(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], b"b");
        drop(slice);
        assert_eq!(POOL.held(), 1);

        // The buffer comes back with what was written in it, and a second
        // use writes over it without clearing it.
        let again = POOL
            .bytes_from(4, |room| {
                assert_eq!(&room[..3], b"abc");
                room.copy_from_slice(b"wxyz");
                Ok::<_, ()>(4)
            })
            .unwrap();
        assert_eq!(POOL.held(), 0);
        assert_eq!(&again[..], b"wxyz");
    }

    #[test]
    fn a_failed_fill_gives_the_buffer_back() {
        static POOL: BufPool = BufPool::new(2, 1 << 20);
        let r = POOL.bytes_from(16, |_| Err::<usize, _>("corrupt"));
        assert_eq!(r.unwrap_err(), "corrupt");
        assert_eq!(POOL.held(), 1);
    }

    #[test]
    fn keeps_at_most_its_bounds() {
        let pool = BufPool::new(2, 1024);
        pool.give(Vec::with_capacity(4096));
        assert_eq!(pool.held(), 0, "larger than max_capacity");
        pool.give(Vec::new());
        assert_eq!(pool.held(), 0, "nothing to keep");
        for _ in 0..3 {
            pool.give(Vec::with_capacity(512));
        }
        assert_eq!(pool.held(), 2);
        assert!(pool.take().capacity() >= 512);
        assert_eq!(pool.held(), 1);
    }

    #[test]
    fn a_fill_longer_than_asked_is_cut_to_the_room() {
        static POOL: BufPool = BufPool::new(1, 1 << 20);
        let b = POOL.bytes_from(4, |_| Ok::<_, ()>(99)).unwrap();
        assert_eq!(b.len(), 4);
    }
}
