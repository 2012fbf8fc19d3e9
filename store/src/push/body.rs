//! Request bodies: content encodings and size limits.
//!
//! Sizes are checked as bytes arrive, never after: a body is refused once
//! it passes its limit ([`too_large`]), and decompression stops one byte
//! past the decompressed limit ([`too_large_decompressed`]), so a small
//! gzip bomb costs at most the limit, charged to the request's [`Meter`]
//! as the output grows.

use std::io::Read;

use super::DecodeError;
use super::meter::Meter;

/// Largest request body Loki accepts before decompression
/// (`distributor.max_recv_msg_size`: 100 MiB). The store's own bound is
/// usually lower: see [`max_decompressed`].
pub const MAX_BODY: usize = 100 << 20;

/// How many times the tenant's ingestion burst a body may hold once
/// decompressed. A request is refused whole (413) when the bytes it would
/// store exceed the burst, so a body that can succeed carries at most one
/// burst of lines and metadata; the rest is framing (timestamps, JSON
/// punctuation and escapes, label text repeated per stream) and entries
/// that validation rejects, which eight times leave room for even for
/// short lines.
pub const DECOMPRESSED_PER_BURST: usize = 8;

/// The smallest decompressed limit, whatever the burst.
pub const MIN_DECOMPRESSED: usize = 8 << 20;

/// The decompressed-size limit for a tenant whose ingestion burst is
/// `burst_bytes`: [`DECOMPRESSED_PER_BURST`] bursts, at least
/// [`MIN_DECOMPRESSED`], at most [`MAX_BODY`] and at most what one request
/// may hold of the decode budget (`budget`). The same limit applies to the
/// body as received, which is never larger than what it decompresses to
/// beyond a few bytes of framing.
pub fn max_decompressed(burst_bytes: f64, budget: usize) -> usize {
    let by_burst = if burst_bytes.is_finite() && burst_bytes > 0.0 {
        (burst_bytes * DECOMPRESSED_PER_BURST as f64).min(MAX_BODY as f64) as usize
    } else {
        0
    };
    by_burst.clamp(MIN_DECOMPRESSED, MAX_BODY).min(budget)
}

/// Undoes `Content-Encoding` (`gzip`, `deflate`, `snappy`, none), charging
/// the decompressed bytes to `meter` as they are produced and stopping past
/// `meter.max_decompressed`.
///
/// For protobuf pushes `snappy` is a no-op because the body is snappy
/// anyway; the protobuf decoder undoes that layer itself.
pub fn decode_content_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    meter: &mut Meter,
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    let enc = encoding.map(str::trim).unwrap_or("");
    match enc.to_ascii_lowercase().as_str() {
        "" | "identity" | "snappy" => Ok(std::borrow::Cow::Borrowed(body)),
        "gzip" | "x-gzip" => {
            read_limited(flate2::read::MultiGzDecoder::new(body), "gzip", meter).map(Into::into)
        }
        "deflate" => {
            // HTTP's "deflate" is zlib-wrapped; some clients send raw
            // deflate. Try zlib first, then raw.
            let held = meter.held();
            match read_limited(flate2::read::ZlibDecoder::new(body), "deflate", meter) {
                Ok(v) => Ok(v.into()),
                Err(DecodeError::BadRequest(_)) => {
                    // The failed attempt's buffer is gone.
                    meter.release_to(held);
                    read_limited(flate2::read::DeflateDecoder::new(body), "deflate", meter)
                        .map(Into::into)
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(DecodeError::bad(format!(
            "Content-Encoding {enc:?} not supported"
        ))),
    }
}

/// Reads `reader` to its end into a buffer charged to `meter` as it grows,
/// refusing output beyond `meter.max_decompressed`.
pub fn read_limited(
    mut reader: impl Read,
    what: &str,
    meter: &mut Meter,
) -> Result<Vec<u8>, DecodeError> {
    const FIRST: usize = 64 << 10;
    let cap = meter.max_decompressed;
    let mut out: Vec<u8> = Vec::new();
    let mut len = 0usize;
    loop {
        if len == out.len() {
            if len > cap {
                return Err(too_large_decompressed(len, cap));
            }
            // Double (at least 64 KiB), up to one byte past the limit.
            let add = out.len().max(FIRST).min(cap.saturating_add(1) - len);
            meter.charge(add)?;
            out.reserve_exact(add);
            out.resize(len + add, 0);
        }
        match reader.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecodeError::bad(format!("{what} decompression error: {e}"))),
        }
    }
    if len > cap {
        return Err(too_large_decompressed(len, cap));
    }
    out.truncate(len);
    Ok(out)
}

/// Loki's text for a body over its limit as received.
pub fn too_large(size: usize, limit: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "request body too large: message size too large than max ({size} vs {limit})"
    ))
}

/// Loki's text for a body over its limit once decompressed (`size` is how
/// far decompression went before stopping).
pub fn too_large_decompressed(size: usize, limit: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "request body too large: decompressed message size too large than max ({size} vs {limit})"
    ))
}

/// Whether a `Content-Type` means JSON. `None` when the header is absent
/// or has no media type, which Loki rejects with `mime: no media type`.
pub fn is_json(content_type: Option<&str>) -> Result<bool, DecodeError> {
    let ct = content_type.unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.is_empty() {
        return Err(DecodeError::bad("mime: no media type"));
    }
    if !media.contains('/') {
        return Err(DecodeError::bad("mime: expected slash after first token"));
    }
    Ok(media.eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::meter::LineLimit;
    use std::io::Write;

    fn decode(enc: &str, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
        decode_content_encoding(Some(enc), body, &mut Meter::unlimited()).map(|c| c.into_owned())
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn gzip_and_deflate() {
        assert_eq!(decode("gzip", &gzip(b"hello")).unwrap(), b"hello");

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"zlib").unwrap();
        let z = z.finish().unwrap();
        assert_eq!(decode("deflate", &z).unwrap(), b"zlib");

        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw").unwrap();
        let raw = raw.finish().unwrap();
        assert_eq!(decode("deflate", &raw).unwrap(), b"raw");
    }

    #[test]
    fn bad_encodings() {
        assert!(decode("gzip", b"not gzip").is_err());
        let e = decode("br", b"x").unwrap_err();
        assert_eq!(e.to_string(), "Content-Encoding \"br\" not supported");
    }

    #[test]
    fn decompression_stops_past_the_limit_and_charges_what_it_holds() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let mut m = Meter::standalone(usize::MAX, 1 << 20, LineLimit::NONE);
        let e = decode_content_encoding(Some("gzip"), &bomb, &mut m).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooLarge(
                "request body too large: decompressed message size too large than max (1048577 vs 1048576)"
                    .into()
            )
        );
        assert!(m.held() <= (1 << 20) + 1, "{}", m.held());
        // Exactly at the limit is fine, and charged.
        let exact = gzip(&vec![b'b'; 1 << 20]);
        let mut m = Meter::standalone(usize::MAX, 1 << 20, LineLimit::NONE);
        let out = decode_content_encoding(Some("gzip"), &exact, &mut m).unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert!(m.held() >= 1 << 20);
        // A meter smaller than the output refuses it (413: it never fits).
        let mut m = Meter::standalone(256 << 10, 1 << 20, LineLimit::NONE);
        let e = decode_content_encoding(Some("gzip"), &exact, &mut m).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("request body too large: decoding it needs more than"),
            "{e}"
        );
    }

    #[test]
    fn limits_follow_the_burst() {
        assert_eq!(max_decompressed(6_000_000.0, usize::MAX), 48_000_000);
        assert_eq!(max_decompressed(1.0, usize::MAX), MIN_DECOMPRESSED);
        assert_eq!(max_decompressed(1e12, usize::MAX), MAX_BODY);
        assert_eq!(max_decompressed(6_000_000.0, 1 << 20), 1 << 20);
        assert_eq!(max_decompressed(f64::NAN, usize::MAX), MIN_DECOMPRESSED);
    }

    #[test]
    fn content_types() {
        assert!(is_json(Some("application/json; charset=utf-8")).unwrap());
        assert!(!is_json(Some("application/x-protobuf")).unwrap());
        assert!(!is_json(Some("application/jsonn")).unwrap());
        assert_eq!(
            is_json(None).unwrap_err().to_string(),
            "mime: no media type"
        );
    }
}
