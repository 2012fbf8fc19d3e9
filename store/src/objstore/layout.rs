//! Object keys (ARCHITECTURE.md, "Object layout").
//!
//! ```text
//! chunks/<tenant>/<fp:016x>/<id>.chunk
//! segments/<tenant>/<day>/<name>.seg
//! terms/<tenant>/<day>/<name>.terms
//! ```
//! Tenant ids and chunk ids are validated before they reach a key, so a
//! key never leaves its prefix.

use crate::tenant::TenantId;

/// Nanoseconds in a day: the period of index segments.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// The key of a chunk.
pub fn chunk_key(tenant: &TenantId, fp: u64, id: &str) -> String {
    format!("chunks/{}/{fp:016x}/{id}.chunk", tenant.as_str())
}

/// Where every tenant's segments are.
pub const SEGMENTS: &str = "segments/";

/// The prefix of a tenant's segments.
pub fn segment_prefix(tenant: &TenantId) -> String {
    format!("{SEGMENTS}{}/", tenant.as_str())
}

/// The key of a segment.
pub fn segment_key(tenant: &TenantId, day: i64, name: &str) -> String {
    format!("{SEGMENTS}{}/{day}/{name}.seg", tenant.as_str())
}

/// The key of a term index.
pub fn terms_key(tenant: &TenantId, day: i64, name: &str) -> String {
    format!("terms/{}/{day}/{name}.terms", tenant.as_str())
}

/// `(tenant, day, name)` of a segment key; `None` for anything else.
pub fn parse_segment_key(key: &str) -> Option<(TenantId, i64, String)> {
    let rest = key.strip_prefix(SEGMENTS)?;
    let mut parts = rest.split('/');
    let tenant = TenantId::new(parts.next()?).ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let name = parts.next()?.strip_suffix(".seg")?;
    if parts.next().is_some() || !crate::index::valid_chunk_id(name) {
        return None;
    }
    Some((tenant, day, name.to_string()))
}

/// The day of a timestamp.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_NS)
}

/// Every day `[mint, maxt]` overlaps.
pub fn days(mint: i64, maxt: i64) -> std::ops::RangeInclusive<i64> {
    let (a, b) = (day_of(mint), day_of(maxt.max(mint)));
    a..=b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back() {
        let t = TenantId::new("team-a").unwrap();
        let k = segment_key(&t, 20_000, "w1-00000000000000ff-0a0b0c0d");
        assert_eq!(
            parse_segment_key(&k),
            Some((t.clone(), 20_000, "w1-00000000000000ff-0a0b0c0d".into()))
        );
        assert_eq!(parse_segment_key("segments/team-a/x/y.seg"), None);
        assert_eq!(parse_segment_key("segments/../1/y.seg"), None);
        assert_eq!(
            chunk_key(&t, 255, "c"),
            "chunks/team-a/00000000000000ff/c.chunk"
        );
        assert_eq!(day_of(-1), -1);
        assert_eq!(days(0, DAY_NS), 0..=1);
        assert_eq!(days(5, 3), 0..=0);
    }
}
