//! The ruler's outgoing HTTP: a pooled HTTP/1.1 client per destination
//! (Alertmanagers, each remote write receiver, the query node, the ruler
//! node the rules API is forwarded to), `http://` or `https://` with that
//! destination's TLS settings (`crate::tls_client`), a timeout per request,
//! and a bound on every answer read: 4 KiB of a POST's (enough for an error
//! message), what the caller allows of a GET's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::tls_client::{ClientTls, ClientTlsConfig, Roots};

/// How often a client certificate's files are checked for a change.
const CERT_RELOAD: Duration = Duration::from_secs(10);

/// How much of an answer's body is kept.
const MAX_ANSWER: usize = 4096;

/// An answer: status and the start of the body.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// The body's first bytes, as text.
    pub body: String,
}

/// A pooled HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Kept for its client certificate's watcher.
    _tls: Arc<ClientTls>,
}

impl HttpClient {
    /// A client (connections kept alive and reused) for `http://` URLs
    /// and `https://` ones with the TLS settings `tls` (the system's roots
    /// when it names no CA); `key` names the settings' block in errors.
    pub fn new(tls: &ClientTlsConfig, key: &str) -> std::io::Result<HttpClient> {
        let tls = Arc::new(ClientTls::load(
            tls,
            key,
            Roots::SystemDefault,
            CERT_RELOAD,
        )?);
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(tls.http_connector()),
            _tls: tls,
        })
    }

    /// GETs `url` with `headers`, reading at most `max_body` bytes of the
    /// answer (a longer one is an error); an error is a transport failure,
    /// the timeout or a body too large, as text.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
        max_body: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = hyper::Request::get(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("invalid request to {url}: {e}"))?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {url}: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// POSTs `body` to `url` with `headers`; an error is a transport
    /// failure or the timeout, as text.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::post(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("invalid request to {url}: {e}"))?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status();
            let body = match Limited::new(resp.into_body(), MAX_ANSWER).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

/// Why a request sent with [`HttpClient::send`] has no answer.
#[derive(Debug)]
pub enum Failure {
    /// The connection failed or broke.
    Transport(String),
    /// No whole answer within the timeout.
    Timeout(Duration),
    /// The answer's body was longer than allowed.
    TooLarge(usize),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(e) => f.write_str(e),
            Failure::Timeout(t) => write!(f, "no answer within {t:?}"),
            Failure::TooLarge(n) => write!(f, "the answer is larger than {n} bytes"),
        }
    }
}

impl HttpClient {
    /// Sends `req`, reading at most `max_body` bytes of the answer, all
    /// within `timeout`: the status, the headers and the body.
    pub async fn send(
        &self,
        req: hyper::Request<Full<Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), Failure> {
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Failure::Transport(chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        Failure::TooLarge(max_body)
                    } else {
                        Failure::Transport(format!("reading the answer: {e}"))
                    }
                })?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout(timeout)),
        }
    }
}

/// An error and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
