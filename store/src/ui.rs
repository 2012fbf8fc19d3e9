//! The web UI: a LogQL editor, log and metric results, live tail, served
//! at `/` by the store itself, so that a first look at the data needs
//! nothing else.
//!
//! The page is plain HTML, CSS and JavaScript modules in `store/ui/`,
//! compiled into the binary with `include_bytes!` (no build step, no
//! network at run time). The browser talks to the same Loki API every
//! other client uses; nothing here is a private API.
//!
//! Every response carries a strict Content-Security-Policy (scripts,
//! styles, images and connections from this origin only; no inline
//! script or style, no frames), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. Files are revalidated on every load
//! (`Cache-Control: no-cache`) against a strong `ETag` (a hash of the
//! bytes), so an upgrade is seen at once and an unchanged file costs a
//! 304; text files are sent gzip-compressed to clients that accept it,
//! compressed once on first request.

use std::sync::OnceLock;

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every UI response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One file of the UI.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `store/ui/` (a test checks that none is missing).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("state.js", JS),
    asset!("logql.js", JS),
    asset!("editor.js", JS),
    asset!("timerange.js", JS),
    asset!("logs.js", JS),
    asset!("chart.js", JS),
    asset!("table.js", JS),
    asset!("tail.js", JS),
    asset!("format.js", JS),
];

/// What is computed once per file: its ETag and, when it pays, its gzip
/// form.
struct Prepared {
    etag: HeaderValue,
    gzip: Option<Vec<u8>>,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| Prepared {
                etag: etag(a.body),
                gzip: gzip(a),
            })
            .collect()
    })
}

fn etag(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_64(body);
    // Hex digits and quotes: always a valid header value.
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The gzip form of a text file if it is smaller by a useful margin.
fn gzip(a: &Asset) -> Option<Vec<u8>> {
    use std::io::Write;
    if !a.content_type.starts_with("text/") && !a.content_type.starts_with("image/svg") {
        return None;
    }
    if a.body.len() < 1024 {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(a.body).ok()?;
    let out = enc.finish().ok()?;
    (out.len() + 256 < a.body.len()).then_some(out)
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{file}`: a script, the style sheet, the icon.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "404 page not found\n",
        )
            .into_response();
    };
    let (asset, prep) = (&ASSETS[i], &prepared()[i]);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/").as_bytes() == prep.etag.as_bytes())
        });
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|c| {
                let mut parts = c.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00"));
                coding.eq_ignore_ascii_case("gzip") && !refused
            })
        });
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match (&prep.gzip, accepts_gzip) {
            (Some(gz), true) => {
                let mut r = gz.clone().into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            _ => asset.body.into_response(),
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, prep.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    security_headers(h);
    resp
}

/// The headers every UI response carries.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The WebSocket subprotocol the UI offers for live tail, and the store
/// selects.
pub const WEBSOCKET_PROTOCOL: &str = "larch";

/// Prefix of the subprotocol entry carrying the tenant, hex-encoded.
const TENANT_PROTOCOL: &str = "larch.tenant.";
/// Prefix of the subprotocol entry carrying the bearer token,
/// hex-encoded.
const BEARER_PROTOCOL: &str = "larch.bearer.";

/// Middleware: the credentials of a browser's WebSocket handshake.
///
/// A browser cannot set headers on a WebSocket handshake, so the UI's
/// live tail offers its tenant and token as subprotocol entries
/// (`larch.tenant.<hex>`, `larch.bearer.<hex>`, beside `larch`; never in
/// the URL, where logs and proxies would keep them). For an upgrade
/// request that has no `X-Scope-OrgID` (or no `Authorization`), this turns
/// them into those headers, so that the tenant check and any
/// authentication see an ordinary request. It must wrap every other
/// layer. Requests without the entries pass unchanged.
pub async fn websocket_credentials(mut req: Request, next: Next) -> Response {
    let offered = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(offered) = offered {
        for entry in offered.split(',').map(str::trim) {
            let (name, value) = if let Some(hex) = entry.strip_prefix(TENANT_PROTOCOL) {
                ("x-scope-orgid", unhex(hex).map(|t| t.to_string()))
            } else if let Some(hex) = entry.strip_prefix(BEARER_PROTOCOL) {
                ("authorization", unhex(hex).map(|t| format!("Bearer {t}")))
            } else {
                continue;
            };
            let Some(Ok(value)) = value.map(|v| HeaderValue::from_str(&v)) else {
                continue;
            };
            if !req.headers().contains_key(name) {
                req.headers_mut()
                    .insert(header::HeaderName::from_static(name), value);
            }
        }
    }
    next.run(req).await
}

/// Hex (either case) to UTF-8 text; `None` if it is not.
fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 16 * 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `store/ui/` is served, and nothing else is listed.
    #[test]
    fn every_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    /// No inline script or style anywhere (the CSP would block it), and
    /// no address outside this origin.
    #[test]
    fn nothing_inline_or_remote() {
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            if a.name.ends_with(".html") {
                assert!(!text.contains("<script>"), "{}: inline script", a.name);
                assert!(!text.contains("style="), "{}: inline style", a.name);
                assert!(!text.contains("<style"), "{}: inline style", a.name);
                assert!(!has_event_attribute(&text), "{}: event attribute", a.name);
                assert!(text.contains("charset=\"utf-8\""), "{}", a.name);
            }
            for remote in ["http://", "https://", "//cdn", "eval("] {
                let hits: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(remote) && !l.contains("www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{}: {remote} in {hits:?}", a.name);
            }
        }
    }

    /// Whether `html` has an attribute such as `onclick=`.
    fn has_event_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn hex_credentials() {
        assert_eq!(unhex("7465616d2d61").as_deref(), Some("team-a"));
        assert_eq!(unhex("7465616D2D61").as_deref(), Some("team-a"));
        assert_eq!(unhex("746"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("ff"), None);
        assert_eq!(unhex("").as_deref(), Some(""));
    }

    #[test]
    fn etags_and_gzip() {
        let mut h = HeaderMap::new();
        let r = serve("main.js", &h);
        assert_eq!(r.status(), StatusCode::OK);
        let tag = r.headers()[header::ETAG].clone();
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        h.insert(header::IF_NONE_MATCH, tag.clone());
        assert_eq!(serve("main.js", &h).status(), StatusCode::NOT_MODIFIED);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        let r = serve("main.js", &h);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(
            serve("main.js", &h)
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
