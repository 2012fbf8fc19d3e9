//! Failed authentication attempts per client address.
//!
//! Each address may fail `max_failures` times per window (a minute); past
//! that, its requests are answered 429 without looking at their
//! credentials until the window ends. The table holds at most
//! [`MAX_ADDRESSES`] addresses: when it is full, expired windows are
//! dropped, and if none has expired every address beyond it shares one
//! overflow window, so memory stays bounded whatever a client sends from
//! how many addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most addresses tracked one by one.
pub const MAX_ADDRESSES: usize = 10_000;

/// Length of a window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failures per address.
pub struct FailureLimiter {
    max_failures: u32,
    table: Mutex<Table>,
}

struct Table {
    by_addr: HashMap<IpAddr, Window>,
    overflow: Window,
}

impl FailureLimiter {
    /// `max_failures` per address and window; 0 disables the limit.
    pub fn new(max_failures: u32) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            table: Mutex::new(Table {
                by_addr: HashMap::new(),
                overflow: Window {
                    started: Instant::now(),
                    failures: 0,
                },
            }),
        }
    }

    /// `Some(wait)` when `addr` is over its limit now.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        if self.max_failures == 0 {
            return None;
        }
        let t = self.table.lock();
        let w = t
            .by_addr
            .get(&addr)
            .copied()
            .or_else(|| (t.by_addr.len() >= MAX_ADDRESSES).then_some(t.overflow))?;
        let age = now.saturating_duration_since(w.started);
        (age < WINDOW && w.failures >= self.max_failures).then(|| WINDOW - age)
    }

    /// Records a failure of `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let mut t = self.table.lock();
        if !t.by_addr.contains_key(&addr) && t.by_addr.len() >= MAX_ADDRESSES {
            t.by_addr
                .retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
        }
        let w = if t.by_addr.contains_key(&addr) || t.by_addr.len() < MAX_ADDRESSES {
            t.by_addr.entry(addr).or_insert(Window {
                started: now,
                failures: 0,
            })
        } else {
            &mut t.overflow
        };
        if now.saturating_duration_since(w.started) >= WINDOW {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Addresses tracked one by one.
    pub fn tracked(&self) -> usize {
        self.table.lock().by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.blocked(a, t0).is_none());
            l.failed(a, t0);
        }
        assert!(l.blocked(a, t0).is_some());
        assert!(l.blocked(b, t0).is_none());
        assert!(l.blocked(a, t0 + WINDOW).is_none());
        l.failed(a, t0 + WINDOW);
        assert!(l.blocked(a, t0 + WINDOW).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let l = FailureLimiter::new(2);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let addr = IpAddr::from(i.to_be_bytes());
            l.failed(addr, t0);
            l.failed(addr, t0);
        }
        assert_eq!(l.tracked(), MAX_ADDRESSES);
        // The overflow window is shared, and over its limit.
        let late = IpAddr::from((MAX_ADDRESSES as u32 + 1000).to_be_bytes());
        assert!(l.blocked(late, t0).is_some());
        // Once windows expire, new addresses get their own again.
        let later = t0 + WINDOW + Duration::from_secs(1);
        l.failed(late, later);
        assert_eq!(l.tracked(), 1);
        assert!(l.blocked(late, later).is_none());
    }

    #[test]
    fn zero_disables() {
        let l = FailureLimiter::new(0);
        let a: IpAddr = "::1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            l.failed(a, t0);
        }
        assert!(l.blocked(a, t0).is_none());
    }
}
