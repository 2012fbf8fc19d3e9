//! `ip("…")` matching, shared by the line filter (`|= ip("…")`) and the
//! label filter (`addr = ip("…")`).
//!
//! A pattern is one address (`192.168.1.5`, `::1`), a CIDR prefix
//! (`10.0.0.0/8`) or an inclusive range (`10.0.0.1-10.0.0.9`), IPv4 or IPv6.
//! IPv4 and IPv6 never match each other, not even IPv4-mapped IPv6
//! addresses (Go's `netip` rules, which Loki uses).
//!
//! Matching a line scans it once, left to right, for text that looks like
//! an address: a digit followed within three bytes by `.` starts an IPv4
//! candidate, a short run of hex digits followed by `:` an IPv6 one. The
//! candidate is the longest run of address characters from there; if it
//! parses and falls in the pattern the line matches, otherwise the scan
//! resumes after the run. This is the scan Loki does, so lines with odd
//! address-like text give the same verdict.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A compiled `ip("…")` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPattern {
    v6: bool,
    lo: u128,
    hi: u128,
}

/// Why an `ip()` pattern was refused, in Loki's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ip: invalid pattern: {0:?}")]
pub struct IpPatternError(pub String);

fn addr_bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v4) => (false, u32::from(v4) as u128),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

impl IpPattern {
    /// Compiles a pattern: an address, a CIDR prefix or `a-b` range.
    pub fn new(pattern: &str) -> Result<IpPattern, IpPatternError> {
        let err = || IpPatternError(pattern.to_string());
        if let Some(a) = parse_addr(pattern) {
            let (v6, bits) = addr_bits(a);
            return Ok(IpPattern {
                v6,
                lo: bits,
                hi: bits,
            });
        }
        if let Some((addr, len)) = pattern.split_once('/') {
            let a = parse_addr(addr).ok_or_else(err)?;
            let (v6, bits) = addr_bits(a);
            let width: u32 = if v6 { 128 } else { 32 };
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                return Err(err());
            }
            let plen: u32 = len.parse().map_err(|_| err())?;
            if plen > width || (len.len() > 1 && len.starts_with('0')) {
                return Err(err());
            }
            let host_bits = width - plen;
            let mask: u128 = if host_bits == 0 {
                0
            } else if host_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            return Ok(IpPattern {
                v6,
                lo: bits & !mask,
                hi: bits | mask,
            });
        }
        if let Some((a, b)) = pattern.split_once('-') {
            let a = parse_addr(a).ok_or_else(err)?;
            let b = parse_addr(b).ok_or_else(err)?;
            let (v6a, lo) = addr_bits(a);
            let (v6b, hi) = addr_bits(b);
            if v6a != v6b || lo > hi {
                return Err(err());
            }
            return Ok(IpPattern { v6: v6a, lo, hi });
        }
        Err(err())
    }

    fn contains(&self, a: IpAddr) -> bool {
        let (v6, bits) = addr_bits(a);
        v6 == self.v6 && self.lo <= bits && bits <= self.hi
    }

    /// Whether `text` holds an address inside the pattern.
    pub fn matches(&self, text: &[u8]) -> bool {
        let n = text.len();
        let at = |i: usize| -> u8 { text.get(i).copied().unwrap_or(0) };
        let mut i = 0;
        while i < n {
            let charset: Option<fn(u8) -> bool> =
                if i + 3 < n && ipv4_hint(text[i], text[i + 1], text[i + 2], text[i + 3]) {
                    Some(is_v4_char)
                } else if ipv6_hint([at(i), at(i + 1), at(i + 2), at(i + 3), at(i + 4)]) {
                    Some(is_v6_char)
                } else {
                    None
                };
            if let Some(cs) = charset {
                let len = text[i..].iter().take_while(|&&b| cs(b)).count();
                let found = std::str::from_utf8(&text[i..i + len])
                    .ok()
                    .and_then(parse_addr)
                    .is_some_and(|a| self.contains(a));
                if found {
                    return true;
                }
                i += len;
            }
            i += 1;
        }
        false
    }
}

fn is_v4_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

fn is_v6_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

fn ipv4_hint(a: u8, b: u8, c: u8, d: u8) -> bool {
    a.is_ascii_digit() && (b == b'.' || c == b'.' || d == b'.')
}

fn ipv6_hint(p: [u8; 5]) -> bool {
    let h = |b: u8| b.is_ascii_hexdigit();
    (p[0] == b':' && p[1] == b':' && h(p[2]))
        || (h(p[0]) && p[1] == b':')
        || (h(p[0]) && h(p[1]) && p[2] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && p[3] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && h(p[3]) && p[4] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_cidr_and_range() {
        let p = IpPattern::new("192.168.1.0/24").unwrap();
        assert!(p.matches(b"src 192.168.1.10 ok"));
        assert!(!p.matches(b"src 10.0.0.9 ok"));
        assert!(!p.matches(b"no ip here"));
        let r = IpPattern::new("192.168.1.1-192.168.1.9").unwrap();
        assert!(r.matches(b"192.168.1.5"));
        assert!(!r.matches(b"192.168.1.10"));
        let one = IpPattern::new("192.168.1.5").unwrap();
        assert!(one.matches(b"addr=192.168.1.5"));
        let v6 = IpPattern::new("2001:db8::/32").unwrap();
        assert!(v6.matches(b"2001:db8::1"));
        assert!(!v6.matches(b"192.168.1.5"));
    }

    #[test]
    fn address_inside_longer_text() {
        let p = IpPattern::new("10.0.0.0/8").unwrap();
        assert!(p.matches(b"client 10.0.0.7:80"));
        assert!(!p.matches(b"client 192.168.1.5:80"));
    }

    #[test]
    fn bad_patterns() {
        for bad in [
            "",
            "notanip",
            "bogus",
            "10.0.0.0/33",
            "10.0.0.9-10.0.0.1",
            "1.2.3.4-::1",
        ] {
            let e = IpPattern::new(bad).unwrap_err();
            assert!(e.to_string().starts_with("ip: invalid pattern"), "{bad}");
        }
    }

    #[test]
    fn families_do_not_mix() {
        let p = IpPattern::new("::ffff:1.2.3.4").unwrap();
        assert!(!p.matches(b"1.2.3.4"));
    }
}
