//! Per-tenant ingestion rate limiting: a token bucket of bytes per tenant
//! (`ingestion_rate_mb` refill per second, `ingestion_burst_size_mb`
//! capacity), as Loki's local rate limiter.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

/// Token buckets by tenant.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// Takes `bytes` from `tenant`'s bucket if it holds enough; otherwise
    /// takes nothing and returns false. `rate` and `burst` are bytes per
    /// second and bytes.
    pub fn allow(&self, tenant: &str, bytes: u64, rate: f64, burst: f64) -> bool {
        self.allow_at(tenant, bytes, rate, burst, Instant::now())
    }

    fn allow_at(&self, tenant: &str, bytes: u64, rate: f64, burst: f64, now: Instant) -> bool {
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.to_string()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        let want = bytes as f64;
        if want <= b.tokens {
            b.tokens -= want;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        assert!(l.allow_at("a", 600, 100.0, 1000.0, t0));
        assert!(!l.allow_at("a", 600, 100.0, 1000.0, t0));
        assert!(
            l.allow_at("b", 600, 100.0, 1000.0, t0),
            "tenants are independent"
        );
        assert!(l.allow_at("a", 600, 100.0, 1000.0, t0 + Duration::from_secs(2)));
        assert!(
            !l.allow_at("a", 2000, 100.0, 1000.0, t0 + Duration::from_secs(100)),
            "over burst never passes"
        );
    }
}
