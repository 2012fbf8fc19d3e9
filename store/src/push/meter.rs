//! Memory for decoding pushes, bounded by limits rather than by what a
//! client sends.
//!
//! A push body can ask for far more memory than its size: a 400 KB gzip
//! stream inflates to 400 MiB, a protobuf entry of two bytes becomes a
//! 64-byte [`PushEntry`](super::PushEntry), an OTLP resource attribute is
//! copied into every record below it. So every decoder charges what it is
//! about to allocate to a [`Meter`] first:
//!
//! * the body as it arrives, then each decompressed buffer as it grows;
//! * every decoded structure (entries, strings, label and metadata pairs),
//!   before it is allocated, either exactly or as an upper bound taken from
//!   a scan of the bytes (see each decoder).
//!
//! A meter draws on the store's [`DecodeBudget`], one count of bytes shared
//! by every request being decoded (`push.max_decode_memory`). A request
//! that alone would need more than the whole budget can never be decoded:
//! 413. A request that does not fit beside the others in flight is refused
//! with 503 and retried by the client; nothing waits for memory, so two
//! requests can never wait on each other. What a request holds is returned
//! when its meter is dropped, after the push is stored (the decoded push,
//! its validated form and its WAL record live until then).
//!
//! The meter also carries the per-request limits that decoders check while
//! they decode: the decompressed size and the line size (see
//! [`Meter::line`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{DecodeError, Line};

/// The memory all decodes in flight may hold, in bytes.
#[derive(Debug)]
pub struct DecodeBudget {
    limit: usize,
    used: AtomicUsize,
}

impl DecodeBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<DecodeBudget> {
        Arc::new(DecodeBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held by requests now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` if they fit beside what is held; otherwise nothing.
    fn take(&self, bytes: usize) -> bool {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_add(bytes).filter(|&n| n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// What a decoder may do with a line longer than `max_line_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineLimit {
    /// The longest line kept whole, in bytes; 0 means no limit.
    pub max: usize,
    /// Keep the first `max` bytes of a longer line (else keep none).
    pub truncate: bool,
}

impl LineLimit {
    /// No limit.
    pub const NONE: LineLimit = LineLimit {
        max: 0,
        truncate: false,
    };
}

/// One request's share of the [`DecodeBudget`] and its decoding limits.
#[derive(Debug)]
pub struct Meter {
    budget: Option<Arc<DecodeBudget>>,
    /// Most bytes this request may hold (the whole budget, or `usize::MAX`).
    max: usize,
    held: usize,
    /// Largest body after decompression.
    pub max_decompressed: usize,
    /// What to do with long lines.
    pub line_limit: LineLimit,
}

impl Meter {
    /// A meter drawing on `budget`.
    pub fn new(
        budget: &Arc<DecodeBudget>,
        max_decompressed: usize,
        line_limit: LineLimit,
    ) -> Meter {
        Meter {
            budget: Some(budget.clone()),
            max: budget.limit,
            held: 0,
            max_decompressed,
            line_limit,
        }
    }

    /// A meter with no budget behind it and only the given caps: it counts
    /// what a decode holds and refuses a request needing more than `max`
    /// bytes. For tests, tools and fuzzing.
    pub fn standalone(max: usize, max_decompressed: usize, line_limit: LineLimit) -> Meter {
        Meter {
            budget: None,
            max,
            held: 0,
            max_decompressed,
            line_limit,
        }
    }

    /// A meter without limits (tests and tools that decode trusted input).
    pub fn unlimited() -> Meter {
        Meter::standalone(usize::MAX, usize::MAX, LineLimit::NONE)
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes this request may still charge, budget permitting.
    pub fn room(&self) -> usize {
        self.max - self.held
    }

    /// Charges `bytes` about to be allocated: 413 if this request would
    /// then hold more than the whole budget, 503 if the budget has no room
    /// for them now.
    pub fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        let want = self
            .held
            .checked_add(bytes)
            .filter(|&w| w <= self.max)
            .ok_or_else(|| too_much_memory(self.max))?;
        if let Some(b) = &self.budget
            && !b.take(bytes)
        {
            return Err(DecodeError::Busy(format!(
                "push request denied: the store is decoding other requests and has no memory left for this one (decode memory limit: {} bytes), retry later",
                b.limit
            )));
        }
        self.held = want;
        Ok(())
    }

    /// Charges `n` values of `T` (their inline size only).
    pub fn charge_items<T>(&mut self, n: usize) -> Result<(), DecodeError> {
        self.charge(n.saturating_mul(std::mem::size_of::<T>()))
    }

    /// Returns what is held beyond `bytes` to the budget (after a decode
    /// frees its buffers).
    pub fn release_to(&mut self, bytes: usize) {
        if bytes < self.held {
            if let Some(b) = &self.budget {
                b.give_back(self.held - bytes);
            }
            self.held = bytes;
        }
    }

    /// Pushes onto `v`, charging any growth of its capacity first.
    pub fn push<T>(&mut self, v: &mut Vec<T>, item: T) -> Result<(), DecodeError> {
        if v.len() == v.capacity() {
            let add = v.capacity().max(4);
            self.charge_items::<T>(add)?;
            v.reserve_exact(add);
        }
        v.push(item);
        Ok(())
    }

    /// Copies `text` as a line under the line limit: the whole text, or
    /// (when it is longer than the limit) its first `max` bytes cut at a
    /// character boundary if the limit truncates, else nothing. Returns the
    /// line and how many bytes of `text` were left out, so that validation
    /// can still name the original length. Charges the copy.
    pub fn line(&mut self, text: &str) -> Result<(String, usize), DecodeError> {
        let keep = self.line_keep(text);
        self.charge(keep)?;
        Ok((text[..keep].to_string(), text.len() - keep))
    }

    /// Like [`Meter::line`] for `text`, a part of the (charged) buffer
    /// `buf`: the line is a slice of `buf`, so nothing new is allocated or
    /// charged.
    pub fn line_slice(&self, buf: &bytes::Bytes, text: &str) -> (Line, usize) {
        let keep = self.line_keep(text);
        (Line::slice_of(buf, &text[..keep]), text.len() - keep)
    }

    /// Like [`Meter::line`] for a string already allocated (and charged):
    /// cuts it in place and frees what it left out.
    pub fn clip_line(&mut self, mut text: String) -> (String, usize) {
        let keep = self.line_keep(&text);
        let omitted = text.len() - keep;
        if omitted > 0 {
            text.truncate(keep);
            text.shrink_to_fit();
        }
        (text, omitted)
    }

    /// Bytes of `text` kept as a line.
    fn line_keep(&self, text: &str) -> usize {
        let LineLimit { max, truncate } = self.line_limit;
        if max == 0 || text.len() <= max {
            return text.len();
        }
        if !truncate {
            return 0;
        }
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        cut
    }

    /// Copies a string (a label or metadata name or value), charging it.
    pub fn string(&mut self, text: &str) -> Result<String, DecodeError> {
        self.charge(text.len())?;
        Ok(text.to_string())
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.release_to(0);
    }
}

/// 413 for a request that needs more memory than the whole budget.
fn too_much_memory(limit: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "request body too large: decoding it needs more than {limit} bytes of memory, the most one push request may use; split it into smaller requests"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_and_releases() {
        let budget = DecodeBudget::new(1000);
        let mut a = Meter::new(&budget, 100, LineLimit::NONE);
        let mut b = Meter::new(&budget, 100, LineLimit::NONE);
        a.charge(600).unwrap();
        assert_eq!(budget.used(), 600);
        // b does not fit beside a now: 503.
        assert!(matches!(b.charge(500), Err(DecodeError::Busy(_))));
        assert_eq!(b.held(), 0);
        b.charge(400).unwrap();
        // More than the whole budget for one request: 413.
        assert!(matches!(a.charge(401), Err(DecodeError::TooLarge(_))));
        a.release_to(100);
        assert_eq!(budget.used(), 500);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn overflowing_charges_are_refused() {
        let mut m = Meter::unlimited();
        m.charge(usize::MAX - 1).unwrap();
        assert!(m.charge(2).is_err());
        assert!(m.charge_items::<u64>(usize::MAX).is_err());
    }

    #[test]
    fn pushes_charge_capacity() {
        let mut m = Meter::standalone(1 << 20, 0, LineLimit::NONE);
        let mut v: Vec<u64> = Vec::new();
        for i in 0..100 {
            m.push(&mut v, i).unwrap();
        }
        assert!(
            m.held() >= v.capacity() * 8,
            "{} < {}",
            m.held(),
            v.capacity() * 8
        );
        let mut small = Meter::standalone(64, 0, LineLimit::NONE);
        let mut v: Vec<u64> = Vec::new();
        let err = (0..100).try_for_each(|i| small.push(&mut v, i));
        assert!(matches!(err, Err(DecodeError::TooLarge(_))));
    }

    #[test]
    fn lines_under_the_limit() {
        let limit = |max, truncate| Meter::standalone(1 << 20, 0, LineLimit { max, truncate });
        let mut m = limit(4, false);
        assert_eq!(m.line("abcd").unwrap(), ("abcd".to_string(), 0));
        assert_eq!(m.line("abcdé").unwrap(), (String::new(), 6));
        let mut m = limit(4, true);
        assert_eq!(m.line("abcdé").unwrap(), ("abcd".to_string(), 2));
        assert_eq!(m.line("abcé").unwrap(), ("abc".to_string(), 2));
        assert_eq!(m.clip_line("abcé".to_string()), ("abc".to_string(), 2));
        let mut m = limit(0, false);
        assert_eq!(m.line("abcdé").unwrap(), ("abcdé".to_string(), 0));
    }
}
