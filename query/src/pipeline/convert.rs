//! Value conversions for label filters, `unwrap` and the query API, with
//! Go's rules and error texts from `larch-go`; the error texts end up in
//! `__error_details__`, so they are carried as strings.

pub use larch_go::duration::seconds as duration_seconds;

/// Go's `time.ParseDuration` (`1h30m`, `-1.5s`, `500ms`) in nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    larch_go::duration::parse_go_duration(s)
        .map(|d| d.as_nanos())
        .map_err(|e| e.to_string())
}

/// go-humanize's `ParseBytes`: `1.5KB`, `2KiB`, `1024`, `2,048`, `3mb`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    larch_go::bytes::parse_bytes(s).map_err(|e| e.to_string())
}

/// Go's `strconv.ParseFloat(s, 64)`.
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    larch_go::strconv::parse_float(s).map_err(|e| e.to_string())
}
