//! Request bodies: content encodings and size limits.

use std::io::Read;

use super::DecodeError;

/// Largest request body accepted before decompression (Loki's
/// `distributor.max_recv_msg_size`: 100 MiB).
pub const MAX_BODY: usize = 100 << 20;

/// Largest body after decompression. Loki allows 5000 MiB; we bound memory
/// per request more tightly, and a client that needs more can split.
pub const MAX_DECOMPRESSED: usize = 512 << 20;

/// Undoes `Content-Encoding` (`gzip`, `deflate`, `snappy`, none).
///
/// For protobuf pushes `snappy` is a no-op because the body is snappy
/// anyway; the protobuf decoder undoes that layer itself.
pub fn decode_content_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    let enc = encoding.map(str::trim).unwrap_or("");
    match enc.to_ascii_lowercase().as_str() {
        "" | "identity" | "snappy" => Ok(std::borrow::Cow::Borrowed(body)),
        "gzip" | "x-gzip" => {
            read_limited(flate2::read::MultiGzDecoder::new(body), "gzip").map(Into::into)
        }
        "deflate" => {
            // HTTP's "deflate" is zlib-wrapped; some clients send raw
            // deflate. Try zlib first, then raw.
            match read_limited(flate2::read::ZlibDecoder::new(body), "deflate") {
                Ok(v) => Ok(v.into()),
                Err(DecodeError::TooLarge(m)) => Err(DecodeError::TooLarge(m)),
                Err(_) => {
                    read_limited(flate2::read::DeflateDecoder::new(body), "deflate").map(Into::into)
                }
            }
        }
        _ => Err(DecodeError::bad(format!(
            "Content-Encoding {enc:?} not supported"
        ))),
    }
}

fn read_limited(reader: impl Read, what: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut limited = reader.take(MAX_DECOMPRESSED as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::bad(format!("{what} decompression error: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(too_large(MAX_DECOMPRESSED));
    }
    Ok(out)
}

/// Loki's text for an oversized body.
pub fn too_large(limit: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "request body too large: exceeds the limit of {limit} bytes"
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
    use std::io::Write;

    #[test]
    fn gzip_and_deflate() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            &*decode_content_encoding(Some("gzip"), &gz).unwrap(),
            b"hello"
        );

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"zlib").unwrap();
        let z = z.finish().unwrap();
        assert_eq!(
            &*decode_content_encoding(Some("deflate"), &z).unwrap(),
            b"zlib"
        );

        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw").unwrap();
        let raw = raw.finish().unwrap();
        assert_eq!(
            &*decode_content_encoding(Some("deflate"), &raw).unwrap(),
            b"raw"
        );
    }

    #[test]
    fn bad_encodings() {
        assert!(decode_content_encoding(Some("gzip"), b"not gzip").is_err());
        let e = decode_content_encoding(Some("br"), b"x").unwrap_err();
        assert_eq!(e.to_string(), "Content-Encoding \"br\" not supported");
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
