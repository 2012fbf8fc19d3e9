//! One small HTTP/1.1 client for servers on 127.0.0.1: a request on its
//! own connection ([`request`], [`get`]), or requests in turn on one
//! keep-alive [`Connection`]. Bodies are read by `Content-Length`, by
//! chunks (`Transfer-Encoding: chunked`, decoded), or to the end of the
//! connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a read may wait for the server.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the status and body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Asserts the status is 200 and returns the body as JSON.
    pub fn ok_json(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", self.text());
        self.json()
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a new connection (`Connection: close`): `method path`
/// with `headers` and `body` (its `Content-Length` is added).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut c = Connection::connect(port)?;
    c.send(method, path, headers, body, true)
}

/// `GET path` on a new connection.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    request(port, "GET", path, headers, b"")
}

/// How to reach a server over TLS: the CA its certificate is checked
/// against, the name it must carry, and optionally a client certificate.
#[derive(Clone, Debug)]
pub struct Tls {
    /// CA bundle (PEM).
    pub ca: PathBuf,
    /// Client certificate and key (PEM), for servers that ask for one.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name checked in the server's certificate (`127.0.0.1`, or a
    /// DNS name).
    pub server_name: String,
}

impl Tls {
    /// Trusts `ca`, checks `127.0.0.1`, presents no certificate.
    pub fn new(ca: impl Into<PathBuf>) -> Tls {
        Tls {
            ca: ca.into(),
            client: None,
            server_name: "127.0.0.1".into(),
        }
    }

    /// Presents `cert` and `key`.
    pub fn with_client(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Tls {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// The rustls configuration (read from the files now).
    pub fn client_config(&self) -> std::io::Result<Arc<rustls::ClientConfig>> {
        use rustls::pki_types::pem::PemObject;
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let certs = |p: &Path| -> std::io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
            rustls::pki_types::CertificateDer::pem_file_iter(p)
                .map_err(|e| bad(format!("{}: {e}", p.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("{}: {e}", p.display())))
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&self.ca)? {
            roots.add(c).map_err(|e| bad(e.to_string()))?;
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots);
        let mut cfg = match &self.client {
            Some((cert, key)) => {
                let k = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| bad(format!("{}: {e}", key.display())))?;
                b.with_client_auth_cert(certs(cert)?, k)
                    .map_err(|e| bad(e.to_string()))?
            }
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// One request over TLS on a new connection (see [`request`]).
pub fn request_tls(
    port: u16,
    tls: &Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut c = Connection::connect_tls(port, tls)?;
    c.send(method, path, headers, body, true)
}

/// A byte stream: TCP, or TLS over TCP.
pub trait Stream: Read + Write + Send + std::fmt::Debug {}
impl<T: Read + Write + Send + std::fmt::Debug> Stream for T {}

/// A keep-alive HTTP/1.1 connection: requests are sent one after the
/// other, each response read whole before the next request.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<Box<dyn Stream>>,
}

impl Connection {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> std::io::Result<Connection> {
        let s = tcp(port)?;
        Ok(Connection {
            reader: BufReader::new(Box::new(s)),
        })
    }

    /// Connects to 127.0.0.1:`port`, waiting up to `timeout` for each
    /// read (for requests known to be slow, such as a benchmark's cold
    /// queries).
    pub fn connect_with_timeout(port: u16, timeout: Duration) -> std::io::Result<Connection> {
        let s = tcp(port)?;
        s.set_read_timeout(Some(timeout))?;
        Ok(Connection {
            reader: BufReader::new(Box::new(s)),
        })
    }

    /// Connects to 127.0.0.1:`port` and makes the TLS handshake (an error
    /// if the server refuses it, e.g. without a client certificate it
    /// requires).
    pub fn connect_tls(port: u16, tls: &Tls) -> std::io::Result<Connection> {
        let mut s = tcp(port)?;
        let name = rustls::pki_types::ServerName::try_from(tls.server_name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut conn = rustls::ClientConnection::new(tls.client_config()?, name)
            .map_err(std::io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut s)?;
        }
        // TLS 1.3: a refused client certificate is reported after the
        // handshake, with the first read of the response.
        Ok(Connection {
            reader: BufReader::new(Box::new(rustls::StreamOwned::new(conn, s))),
        })
    }

    /// Sends a request and reads its response; the connection stays open.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        self.send(method, path, headers, body, false)
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        close: bool,
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        let w = self.reader.get_mut();
        w.write_all(&out)?;
        w.flush()?;
        read_response(&mut self.reader, method == "HEAD")
    }
}

fn tcp(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(s)
}

/// Reads one response from `r`. `head_only`: the request was `HEAD`, so
/// no body follows whatever the headers say.
pub fn read_response(r: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("the response ended in its header".to_string()));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {l:?}")))?;
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        resp.body = read_chunked(r)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// Reads a chunked body (and its trailer) from `r`, decoded.
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(size, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size line {line:?}"),
            )
        })?;
        if n == 0 {
            // Trailer fields, up to an empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(out);
                }
            }
        }
        let start = out.len();
        out.resize(start + n, 0);
        r.read_exact(&mut out[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// Decodes a whole chunked body held in memory (`Transfer-Encoding:
/// chunked` framing).
pub fn dechunk(body: &[u8]) -> std::io::Result<Vec<u8>> {
    read_chunked(&mut std::io::Cursor::new(body))
}

/// Percent-encodes all but RFC 3986's unreserved characters, for a
/// query-string value or a path segment.
pub fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&...` with names and values percent-encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("?");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent(k));
        out.push('=');
        out.push_str(&percent(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Response {
        read_response(&mut std::io::Cursor::new(raw), false).unwrap()
    }

    #[test]
    fn bodies_by_length_by_chunks_and_to_the_end() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA");
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        assert_eq!(r.header("x-a"), Some("b"));
        let r = parse(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!((r.status, r.text().as_str()), (400, "abc0123456789"));
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
        assert_eq!(r.text(), "until the end");
        let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert!(r.body.is_empty());
    }

    #[test]
    fn a_keep_alive_connection_reads_responses_in_turn() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n";
        let mut r = std::io::Cursor::new(&raw[..]);
        let got: Vec<(u16, String)> = (0..3)
            .map(|_| read_response(&mut r, false).unwrap())
            .map(|r| (r.status, r.text()))
            .collect();
        assert_eq!(
            got,
            [(200, "a".into()), (204, String::new()), (200, "b".into())]
        );
        assert!(read_response(&mut r, false).is_err());
    }

    #[test]
    fn bad_responses_are_errors() {
        for raw in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(read_response(&mut std::io::Cursor::new(raw), false).is_err());
        }
    }

    #[test]
    fn dechunk_and_percent() {
        assert_eq!(dechunk(b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert_eq!(percent(r#"{app="a b"}~"#), "%7Bapp%3D%22a%20b%22%7D~");
        assert_eq!(query_string(&[("q", "x y"), ("n", "1")]), "?q=x%20y&n=1");
    }
}
