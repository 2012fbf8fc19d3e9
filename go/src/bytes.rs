//! Byte sizes as Loki reads and prints them.
//!
//! Loki reads sizes with go-humanize's `ParseBytes` (bytes label filters,
//! `unwrap bytes()`, the template function `bytes`, `flagext.ByteSize` in
//! its configuration): a decimal number, `,` separators allowed, then an
//! optional unit, decimal (`kB` = 1000) or binary (`KiB` = 1024),
//! case-insensitive. It prints them with humanize's `Bytes` (`10GB`,
//! `2.6kB`), rounded to one decimal.

use crate::strconv::parse_float;

/// A byte size text that cannot be read; the message follows humanize's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BytesError(pub String);

/// Parses a byte size like Loki's bytes filters (humanize `ParseBytes`):
/// a decimal number (`,` separators allowed) followed by an optional unit
/// among `B kB KB KiB MB MiB GB GiB TB TiB PB PiB EB EiB` and their
/// one-letter forms, case-insensitive, optionally after spaces.
pub fn parse_bytes(s: &str) -> Result<u64, BytesError> {
    let num_end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map_or(s.len(), |(i, _)| i);
    let num: String = s[..num_end].chars().filter(|&c| c != ',').collect();
    let f = parse_float(&num).map_err(|e| BytesError(e.to_string()))?;
    // humanize lower-cases with Unicode rules (`strings.ToLower`).
    let unit = s[num_end..].trim().to_lowercase();
    const K: f64 = 1000.0;
    const KI: f64 = 1024.0;
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "kib" | "ki" => KI,
        "kb" | "k" => K,
        "mib" | "mi" => KI * KI,
        "mb" | "m" => K * K,
        "gib" | "gi" => KI * KI * KI,
        "gb" | "g" => K * K * K,
        "tib" | "ti" => KI.powi(4),
        "tb" | "t" => K.powi(4),
        "pib" | "pi" => KI.powi(5),
        "pb" | "p" => K.powi(5),
        "eib" | "ei" => KI.powi(6),
        "eb" | "e" => K.powi(6),
        _ => return Err(BytesError(format!("unhandled size name: {unit}"))),
    };
    let v = f * mult;
    if v >= u64::MAX as f64 {
        return Err(BytesError(format!("too large: {s}")));
    }
    // Float to integer conversion truncates like Go's uint64(f).
    Ok(v as u64)
}

/// Formats a byte size like humanize `Bytes` with the space removed, as
/// Loki prints bytes filters: `10GB`, `2.6kB`, `512B`. The form is rounded
/// to one decimal, so it does not always read back to the same number; see
/// [`format_bytes_exact`].
pub fn format_bytes(v: u64) -> String {
    if v < 10 {
        return format!("{v}B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((v as f64).ln() / 1000f64.ln()).floor();
    let e_idx = (e as usize).min(SIZES.len() - 1);
    let val = ((v as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1}{}", SIZES[e_idx])
    } else {
        format!("{val:.0}{}", SIZES[e_idx])
    }
}

/// Like [`format_bytes`] when that form reads back to exactly `v`, else
/// the plain count with unit `B` (`2560B`), so that printing a query never
/// changes its meaning. Zero is `0kB`: `0B` lexes as an empty binary
/// literal (Go's `0b` prefix).
pub fn format_bytes_exact(v: u64) -> String {
    if v == 0 {
        return "0kB".to_string();
    }
    let human = format_bytes(v);
    if parse_bytes(&human) == Ok(v) {
        human
    } else {
        format!("{v}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_bytes("2.5KiB"), Ok(2560));
        assert_eq!(parse_bytes("1kb"), Ok(1000));
        assert_eq!(parse_bytes("1,000 B"), Ok(1000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("KB").is_err());
        assert_eq!(format_bytes(10_000_000_000), "10GB");
        assert_eq!(format_bytes(2560), "2.6kB");
        assert_eq!(format_bytes(5), "5B");
        assert_eq!(format_bytes_exact(2560), "2560B");
        assert_eq!(format_bytes_exact(1_500_000), "1.5MB");
    }

    #[test]
    fn humanize_forms() {
        assert_eq!(parse_bytes("1KB"), Ok(1000));
        assert_eq!(parse_bytes("1.5KB"), Ok(1500));
        assert_eq!(parse_bytes("2Kb"), Ok(2000));
        assert_eq!(parse_bytes("2,048"), Ok(2048));
        assert_eq!(parse_bytes("1.5B"), Ok(1));
        assert_eq!(parse_bytes("3mb"), Ok(3_000_000));
        assert_eq!(parse_bytes("1PiB"), Ok(1 << 50));
        assert_eq!(
            parse_bytes("1XB").unwrap_err().to_string(),
            "unhandled size name: xb"
        );
        assert_eq!(
            parse_bytes("oops").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"\": invalid syntax"
        );
    }
}
