//! Talking HTTP to the store (or to Loki).
//!
//! One [`Client`] per run: the base address (`--addr`, which may carry a
//! path prefix such as `http://gateway/loki`), the tenant header
//! (`X-Scope-OrgID`), extra headers, and a hyper connection pool, so that a
//! paging query reuses one connection. Every GET is echoed to stderr
//! unless `-q`, as logcli does, so that a query can be replayed with curl.
//!
//! Failures keep the server's words: Loki answers errors with a plain-text
//! body (`parse error at line 1, col 5: ...`), sometimes JSON with a
//! `message`; [`ClientError::Status`] carries that text unchanged. 429, 5xx
//! and connection failures are retried `--retries` times with a doubling
//! back-off; other statuses are final.
//!
//! `http://` and `https://` are spoken, directly or through an HTTP proxy
//! ([`crate::tls`]); credentials are sent as logcli sends them: a bearer
//! token (`--bearer-token`, `--bearer-token-file`) or basic auth
//! (`--username`, `--password`), in the `Authorization` header unless
//! `--auth-header` names another.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::tls::{Transport, TransportConfig};
use serde::de::DeserializeOwned;

/// The address used when neither `--addr`, `LARCH_ADDR` nor `LOKI_ADDR`
/// is set (Loki's and the store's default port).
pub const DEFAULT_ADDR: &str = "http://localhost:3100";

/// How long to wait for a TCP connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between retries; doubled each time up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--addr` is not a usable address.
    #[error("invalid address {addr:?}: {reason}")]
    Address {
        /// What was given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--header` or `--org-id` value cannot be sent.
    #[error(
        "invalid header {0:?}: expected 'Name: value' with a valid name and a value of visible ASCII"
    )]
    Header(String),
    /// TLS, proxy or credentials settings that cannot be used.
    #[error("{0}")]
    Setup(String),
    /// No TCP connection could be made.
    #[error(
        "cannot connect to {url}: {reason} (is the store running there? set --addr or LARCH_ADDR)"
    )]
    Connect {
        /// Where.
        url: String,
        /// The system's words.
        reason: String,
    },
    /// The connection broke during the request.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server answered with a non-2xx status; `message` is its text.
    #[error("{status}: {message}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The server's message.
        message: String,
    },
    /// A 2xx answer that is not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// Where.
        url: String,
        /// What did not fit.
        reason: String,
    },
}

impl ClientError {
    fn retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Transport { .. } => true,
            ClientError::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            _ => false,
        }
    }
}

/// What a [`Client`] is built from (the global flags).
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Base address, `http://host:port[/prefix]`.
    pub addr: String,
    /// Tenant (`X-Scope-OrgID`).
    pub org_id: Option<String>,
    /// Extra headers, `Name: value`.
    pub headers: Vec<String>,
    /// Retries of 429, 5xx and connection failures.
    pub retries: u32,
    /// Do not echo request URLs to stderr.
    pub quiet: bool,
    /// TLS and proxy.
    pub transport: TransportConfig,
    /// Basic auth user name.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// File holding the bearer token.
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// The header credentials go in (default `Authorization`).
    pub auth_header: Option<String>,
}

/// The credentials header, as logcli builds it: a bearer token wins over
/// basic auth; a token and a token file together are an error.
fn credentials(cfg: &ClientConfig) -> Result<Option<(HeaderName, HeaderValue)>, ClientError> {
    let token = match (&cfg.bearer_token, &cfg.bearer_token_file) {
        (Some(_), Some(_)) => {
            return Err(ClientError::Setup(
                "at most one of --bearer-token and --bearer-token-file may be given".into(),
            ));
        }
        (Some(t), None) => Some(t.trim().to_string()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    ClientError::Setup(format!(
                        "cannot read --bearer-token-file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let value = match (token, &cfg.username, &cfg.password) {
        (Some(t), _, _) => format!("Bearer {t}"),
        (None, Some(u), p) => {
            use base64::Engine;
            let p = p.as_deref().unwrap_or("");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        }
        (None, None, Some(_)) => {
            return Err(ClientError::Setup(
                "--password needs --username (LOKI_USERNAME)".into(),
            ));
        }
        (None, None, None) => return Ok(None),
    };
    let name = cfg.auth_header.as_deref().unwrap_or("Authorization");
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| ClientError::Header(format!("--auth-header {name}")))?;
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| ClientError::Setup("the credentials cannot be sent in a header".into()))?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// A client for one store.
pub struct Client {
    base: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    http: HyperClient<hyper_rustls::HttpsConnector<Transport>, Full<Bytes>>,
    transport: Transport,
    retries: u32,
    quiet: bool,
}

impl Client {
    /// Checks the address and headers and builds the connection pool.
    pub fn new(cfg: &ClientConfig) -> Result<Client, ClientError> {
        let base = check_addr(&cfg.addr)?;
        let mut headers = vec![(
            hyper::header::USER_AGENT,
            HeaderValue::from_static(concat!("larch/", env!("CARGO_PKG_VERSION"))),
        )];
        if let Some(org) = cfg.org_id.as_deref().filter(|o| !o.is_empty()) {
            let v = HeaderValue::from_str(org)
                .map_err(|_| ClientError::Header(format!("X-Scope-OrgID: {org}")))?;
            headers.push((HeaderName::from_static("x-scope-orgid"), v));
        }
        if let Some(h) = credentials(cfg)? {
            headers.push(h);
        }
        for h in &cfg.headers {
            headers.push(parse_header(h)?);
        }
        let transport =
            Transport::new(&cfg.transport, CONNECT_TIMEOUT).map_err(|e| ClientError::Setup(e.0))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*transport.tls()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(transport.clone());
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            base,
            headers,
            http,
            transport,
            retries: cfg.retries,
            quiet: cfg.quiet,
        })
    }

    /// The full URL of `path` with `params` (form-encoded).
    pub fn url(&self, path: &str, params: &[(&str, String)]) -> String {
        let qs = serde_urlencoded::to_string(params).unwrap_or_default();
        if qs.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{qs}", self.base)
        }
    }

    /// The `ws://` (`wss://` for `https://`) URL of `path` with `params`.
    pub fn ws_url(&self, path: &str, params: &[(&str, String)]) -> String {
        let url = self.url(path, params);
        if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            url
        }
    }

    /// How connections are made (the live tail uses it too).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Headers sent with every request (tenant, `--header`, user agent).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Whether request URLs are echoed to stderr.
    pub fn echo(&self) -> bool {
        !self.quiet
    }

    /// GETs `path`, echoing the URL to stderr unless quiet, and decodes
    /// the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.url(path, params);
        self.echo_url(&mut std::io::stderr(), &url);
        self.get_json_url(&url).await
    }

    /// Writes `url` to `err` unless quiet: like logcli, every request is
    /// shown so that it can be replayed with curl.
    pub fn echo_url(&self, err: &mut impl Write, url: &str) {
        if !self.quiet {
            crate::diag::request(err, url);
        }
    }

    /// GETs a URL made by [`Client::url`] (without echoing it) and decodes
    /// the JSON answer.
    pub async fn get_json_url<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        let body = self.send(Method::GET, url, None).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url: url.split('?').next().unwrap_or(url).to_string(),
            reason: e.to_string(),
        })
    }

    /// GETs `path`; returns the answer's body.
    pub async fn get(&self, path: &str) -> Result<Bytes, ClientError> {
        let url = self.url(path, &[]);
        self.echo_url(&mut std::io::stderr(), &url);
        self.send(Method::GET, &url, None).await
    }

    /// DELETEs `path`; returns the answer's body.
    pub async fn delete(&self, path: &str) -> Result<Bytes, ClientError> {
        let url = self.url(path, &[]);
        self.send(Method::DELETE, &url, None).await
    }

    /// POSTs `body` to `path`; returns the answer's body.
    pub async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let url = self.url(path, &[]);
        self.send(Method::POST, &url, Some((content_type, body)))
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Bytes, ClientError> {
        let mut backoff = MIN_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.send_once(method.clone(), url, body.clone()).await {
                Err(e) if attempt < self.retries && e.retryable() => {
                    attempt += 1;
                    if !self.quiet {
                        crate::diag::retrying(
                            &mut std::io::stderr(),
                            &e,
                            backoff,
                            attempt,
                            self.retries,
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Bytes, ClientError> {
        let short = url.split('?').next().unwrap_or(url).to_string();
        let uri: Uri = url.parse().map_err(|e| ClientError::Address {
            addr: url.to_string(),
            reason: format!("{e}"),
        })?;
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let payload = match body {
            Some((ct, bytes)) => {
                req = req.header(hyper::header::CONTENT_TYPE, ct);
                bytes
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| ClientError::Transport {
                url: short.clone(),
                reason: e.to_string(),
            })?;
        let resp = self.http.request(req).await.map_err(|e| {
            let reason = root_cause(&e);
            if e.is_connect() {
                ClientError::Connect {
                    url: short.clone(),
                    reason,
                }
            } else {
                ClientError::Transport {
                    url: short.clone(),
                    reason,
                }
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport {
                url: short.clone(),
                reason: format!("reading the answer: {}", root_cause(&e)),
            })?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(ClientError::Status {
                status,
                message: server_message(status, &bytes),
            })
        }
    }
}

/// The innermost error's text: "Connection refused (os error 111)" rather
/// than "client error (Connect)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The message of an error answer: the plain-text body Loki sends, or the
/// `message` of a JSON body, or the status' reason if the body is empty.
pub fn server_message(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(m) = v.get("message").and_then(|m| m.as_str())
    {
        return m.to_string();
    }
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text.to_string()
    }
}

/// Validates `--addr` and returns it without a trailing `/`.
fn check_addr(addr: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::Address {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let lower = addr.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(bad(
            "the address must start with http:// or https:// (for example http://localhost:3100)",
        ));
    }
    let uri: Uri = addr.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad(
            "the address may have a path prefix but no query string",
        ));
    }
    Ok(addr.trim_end_matches('/').to_string())
}

/// Reads `Name: value`.
fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), ClientError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| ClientError::Header(h.to_string()))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| ClientError::Header(h.to_string()))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| ClientError::Header(h.to_string()))?;
    Ok((name, value))
}

/// Percent-encodes one path segment (a label name in `label/<name>/values`).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(addr: &str) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            ..ClientConfig::default()
        }
    }

    #[test]
    fn addresses() {
        let c = Client::new(&cfg("http://127.0.0.1:3100/")).unwrap();
        assert_eq!(
            c.url("/loki/api/v1/labels", &[("start", "1".into())]),
            "http://127.0.0.1:3100/loki/api/v1/labels?start=1"
        );
        let c = Client::new(&cfg("http://gw:80/loki")).unwrap();
        assert_eq!(
            c.ws_url(
                "/loki/api/v1/tail",
                &[("query", "{a=\"b\"} |= \"x y\"".into())]
            ),
            "ws://gw:80/loki/loki/api/v1/tail?query=%7Ba%3D%22b%22%7D+%7C%3D+%22x+y%22"
        );
        let err = |a: &str| Client::new(&cfg(a)).err().unwrap().to_string();
        let c = Client::new(&cfg("https://loki:443/prefix")).unwrap();
        assert_eq!(
            c.ws_url("/loki/api/v1/tail", &[]),
            "wss://loki:443/prefix/loki/api/v1/tail"
        );
        assert!(err("localhost:3100").contains("must start with http://"));
        assert!(err("http://").contains("invalid address"));
        assert!(err("http://h:1/?x=1").contains("no query string"));
    }

    #[test]
    fn headers() {
        let c = Client::new(&ClientConfig {
            addr: DEFAULT_ADDR.into(),
            org_id: Some("team-a".into()),
            headers: vec!["Authorization: Bearer abc".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        let h: Vec<_> = c
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert!(h.contains(&"x-scope-orgid: team-a".to_string()), "{h:?}");
        assert!(
            h.contains(&"authorization: Bearer abc".to_string()),
            "{h:?}"
        );
        for bad in ["no colon", "bad name: x", "X: \u{1}"] {
            let e = Client::new(&ClientConfig {
                addr: DEFAULT_ADDR.into(),
                headers: vec![bad.into()],
                ..ClientConfig::default()
            })
            .err()
            .unwrap();
            assert!(matches!(e, ClientError::Header(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_as_logcli_sends_them() {
        let header = |c: ClientConfig| {
            credentials(&c)
                .unwrap()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        };
        assert_eq!(header(ClientConfig::default()), None);
        assert_eq!(
            header(ClientConfig {
                username: Some("u".into()),
                password: Some("p".into()),
                ..ClientConfig::default()
            })
            .as_deref(),
            Some("authorization: Basic dTpw")
        );
        assert_eq!(
            header(ClientConfig {
                username: Some("u".into()),
                bearer_token: Some("t".into()),
                auth_header: Some("X-Auth".into()),
                ..ClientConfig::default()
            })
            .as_deref(),
            Some("x-auth: Bearer t")
        );
        assert!(
            credentials(&ClientConfig {
                bearer_token: Some("t".into()),
                bearer_token_file: Some("/f".into()),
                ..ClientConfig::default()
            })
            .is_err()
        );
        assert!(
            credentials(&ClientConfig {
                password: Some("p".into()),
                ..ClientConfig::default()
            })
            .is_err()
        );
    }

    #[test]
    fn server_messages() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            server_message(s, b"parse error at line 1, col 2: x\n"),
            "parse error at line 1, col 2: x"
        );
        assert_eq!(server_message(s, br#"{"message":"nope"}"#), "nope");
        assert_eq!(server_message(s, br#"{"other":1}"#), r#"{"other":1}"#);
        assert_eq!(server_message(s, b""), "Bad Request");
    }

    #[test]
    fn path_segments() {
        assert_eq!(path_segment("app_name"), "app_name");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn unreachable_address_is_a_clear_error() {
        // Nothing listens on a port we just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(&ClientConfig {
            addr: format!("http://127.0.0.1:{port}"),
            quiet: true,
            ..ClientConfig::default()
        })
        .unwrap();
        let e = c
            .get_json::<serde_json::Value>("/loki/api/v1/labels", &[])
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot connect to http://127.0.0.1:{port}/loki/api/v1/labels: "
            )),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
    }
}
