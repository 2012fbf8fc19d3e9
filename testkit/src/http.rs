//! One small HTTP/1.1 client for servers on 127.0.0.1: a request on its
//! own connection ([`request`], [`get`]), or requests in turn on one
//! keep-alive [`Connection`]. Bodies are read by `Content-Length`, by
//! chunks (`Transfer-Encoding: chunked`, decoded), or to the end of the
//! connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
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

/// A keep-alive HTTP/1.1 connection: requests are sent one after the
/// other, each response read whole before the next request.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> std::io::Result<Connection> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Connection {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
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
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        read_response(&mut self.reader, method == "HEAD")
    }
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
