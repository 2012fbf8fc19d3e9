//! Pushing batches to the store over Loki's HTTP push API or gRPC, and
//! deciding what a failure means.
//!
//! * HTTP: `POST <store>/loki/api/v1/push`, body snappy-compressed
//!   protobuf, `Content-Type: application/x-protobuf`, `X-Scope-OrgID`
//!   when a tenant is set. 2xx is success.
//! * gRPC: `logproto.Pusher/Push` with metadata `x-scope-orgid`. The batch
//!   is already protobuf, so a pass-through codec hands its bytes to tonic
//!   without decoding and re-encoding them.
//!
//! Classification: only a 400 (gRPC `InvalidArgument`) is permanent. It is
//! the store's verdict on the entries themselves: Loki and the store keep
//! the valid entries of such a push and list the rejected ones, one reason
//! per entry, and [`rejected_count`] reads how many from the text; sending
//! them again cannot help. A 413 (gRPC `OutOfRange`, or
//! `ResourceExhausted` about a message's size) means the request is larger
//! than the store, or a proxy in front of it, accepts: the sender splits
//! the batch. Everything else is retried with backoff and the positions
//! stay put: 429 and 5xx (the store will take the data later), timeouts and
//! connection errors, and also 401, 403, 404 and any other status, which a
//! misconfigured tenant, token, URL or gateway produces, and which an
//! operator fixes without the lines being lost meanwhile.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{AgentConfig, StoreUrl};
use crate::error::{Error, Result};

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// Try again later (429, 5xx, network).
    Retry {
        /// Status code (HTTP, or gRPC code name) or `error`.
        status: String,
        /// What the store or the network said.
        message: String,
    },
    /// The store rejected the entries for good.
    Reject {
        /// Status code.
        status: String,
        /// The store's explanation (lists rejected entries).
        message: String,
    },
    /// The request is too large to be accepted as it is: split it.
    TooLarge {
        /// Status code.
        status: String,
        /// What the store or the proxy said.
        message: String,
    },
}

impl PushError {
    /// The status label for metrics.
    pub fn status(&self) -> &str {
        match self {
            PushError::Retry { status, .. }
            | PushError::Reject { status, .. }
            | PushError::TooLarge { status, .. } => status,
        }
    }
}

type HttpsClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How the agent proves who it is to the store: secrets are read from
/// their files before every push, so a rotated Kubernetes Secret is used
/// without a restart.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// None.
    #[default]
    None,
    /// `Authorization: Bearer <file content>`.
    Bearer(std::path::PathBuf),
    /// `Authorization: Basic`, the password from a file.
    Basic {
        /// The user name.
        username: String,
        /// The password's file.
        password_file: std::path::PathBuf,
    },
}

impl Credentials {
    fn from_config(cfg: &AgentConfig) -> Credentials {
        match (&cfg.bearer_token_file, &cfg.basic_auth) {
            (Some(p), _) => Credentials::Bearer(p.clone()),
            (None, Some(b)) => Credentials::Basic {
                username: b.username.clone(),
                password_file: b.password_file.clone(),
            },
            (None, None) => Credentials::None,
        }
    }

    /// The `Authorization` value now (the files read again); an error is
    /// retried like a failed push, so the batch and positions stay put.
    pub async fn header(
        &self,
    ) -> std::result::Result<Option<hyper::header::HeaderValue>, PushError> {
        let read = |path: std::path::PathBuf| async move {
            tokio::fs::read_to_string(&path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| PushError::Retry {
                    status: "credentials".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                })
        };
        let value = match self {
            Credentials::None => return Ok(None),
            Credentials::Bearer(p) => format!("Bearer {}", read(p.clone()).await?),
            Credentials::Basic {
                username,
                password_file,
            } => {
                use base64::Engine;
                let password = read(password_file.clone()).await?;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"))
                )
            }
        };
        let mut v = hyper::header::HeaderValue::from_str(&value).map_err(|_| PushError::Retry {
            status: "credentials".into(),
            message: "the token or password file holds characters a header cannot carry".into(),
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }
}

/// A client for one store.
#[derive(Clone)]
pub enum Client {
    /// HTTP(S) push API.
    Http {
        /// HTTP client (connection pool).
        client: Box<HttpsClient>,
        /// Full push URL.
        url: hyper::Uri,
        /// Tenant header value.
        tenant: Option<hyper::header::HeaderValue>,
        /// Token or password.
        credentials: Credentials,
        /// Per-request timeout.
        timeout: Duration,
    },
    /// gRPC `logproto.Pusher/Push`.
    Grpc {
        /// The gRPC channel (connects lazily, reconnects by itself).
        channel: tonic::transport::Channel,
        /// Tenant metadata value.
        tenant: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        /// Token or password.
        credentials: Credentials,
        /// Per-request timeout.
        timeout: Duration,
    },
}

/// The TLS client configuration for the store: roots from `tls_ca_file`
/// (else the system's), the client certificate of `tls_cert_file` and
/// `tls_key_file` if set.
fn store_tls(cfg: &AgentConfig) -> Result<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.tls_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io("read CA file", path, e))?;
            for cert in rustls_pemfile_certs(&pem) {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Config(format!(
                    "{}: no PEM certificates found",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Config(
                    "TLS: no CA certificates found on the system; set tls_ca_file".into(),
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(cert).map_err(|e| Error::io("read tls_cert_file", cert, e))?;
            let certs = rustls_pemfile_certs(&pem);
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "{}: no PEM certificates found",
                    cert.display()
                )));
            }
            let kpem = std::fs::read(key).map_err(|e| Error::io("read tls_key_file", key, e))?;
            let k = rustls::pki_types::PrivateKeyDer::from_pem_slice(&kpem).map_err(|e| {
                Error::Config(format!("{}: no usable private key: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(certs, k)
                .map_err(|e| Error::Config(format!("tls_cert_file/tls_key_file: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A connector for the store: TLS for `https://` (HTTP/1.1, or HTTP/2
/// only for gRPC), plain TCP for `http://`.
fn store_connector(
    cfg: &AgentConfig,
    url: &str,
    grpc: bool,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>> {
    let tls = if url.starts_with("https://") {
        store_tls(cfg)?
    } else {
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.timeout.0));
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let b = match &cfg.tls_server_name {
        Some(name) => b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
            rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| Error::Config(format!("tls_server_name {name:?}: {e}")))?,
        )),
        None => b,
    };
    Ok(if grpc {
        b.enable_http2().wrap_connector(http)
    } else {
        b.enable_http1().wrap_connector(http)
    })
}

/// Builds a connector for `url`: TLS with the roots in `ca_file`, or the
/// system roots for an `https://` URL; for `http://` no roots are loaded
/// (parsing the system bundle costs memory on every node for nothing).
pub(crate) fn https_connector(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let with_roots = |roots: rustls::RootCertStore| -> Result<rustls::ClientConfig> {
        Ok(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Config(format!("TLS: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let builder = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io("read CA file", path, e))?;
            let mut roots = rustls::RootCertStore::empty();
            let mut n = 0;
            for cert in rustls_pemfile_certs(&pem) {
                if roots.add(cert).is_ok() {
                    n += 1;
                }
            }
            if n == 0 {
                return Err(Error::Config(format!(
                    "{}: no PEM certificates found",
                    path.display()
                )));
            }
            builder.with_tls_config(with_roots(roots)?)
        }
        None if url.starts_with("https://") => builder
            .with_provider_and_native_roots(provider.clone())
            .map_err(|e| {
                Error::Config(format!(
                    "TLS: cannot load the system's CA certificates: {e}"
                ))
            })?,
        None => builder.with_tls_config(with_roots(rustls::RootCertStore::empty())?),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    Ok(builder.https_or_http().enable_http1().wrap_connector(http))
}

/// The certificates in a PEM bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .collect()
}

impl Client {
    /// A client for the configured store.
    pub fn new(cfg: &AgentConfig) -> Result<Client> {
        let timeout = cfg.timeout.0;
        let credentials = Credentials::from_config(cfg);
        match cfg.store_url()? {
            StoreUrl::Http(url) => {
                let uri: hyper::Uri = url
                    .parse()
                    .map_err(|e| Error::Config(format!("store: {e}")))?;
                let connector = store_connector(cfg, &url, false)?;
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector);
                let tenant = (!cfg.tenant_id.is_empty())
                    .then(|| hyper::header::HeaderValue::from_str(&cfg.tenant_id))
                    .transpose()
                    .map_err(|e| Error::Config(format!("tenant_id: {e}")))?;
                Ok(Client::Http {
                    client: Box::new(client),
                    url: uri,
                    tenant,
                    credentials,
                    timeout,
                })
            }
            StoreUrl::Grpc(url) => {
                let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| Error::Config(format!("store {url}: {e}")))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true);
                let tenant = (!cfg.tenant_id.is_empty())
                    .then(|| cfg.tenant_id.parse())
                    .transpose()
                    .map_err(|_| Error::Config("tenant_id: not valid in gRPC metadata".into()))?;
                let channel = if url.starts_with("https://") {
                    endpoint.connect_with_connector_lazy(store_connector(cfg, &url, true)?)
                } else {
                    endpoint.connect_lazy()
                };
                Ok(Client::Grpc {
                    channel,
                    tenant,
                    credentials,
                    timeout,
                })
            }
        }
    }

    /// True if batches for this client must be snappy-compressed.
    pub fn wants_snappy(&self) -> bool {
        matches!(self, Client::Http { .. })
    }

    /// Pushes one batch body.
    pub async fn push(&self, body: Bytes) -> std::result::Result<String, PushError> {
        match self {
            Client::Http {
                client,
                url,
                tenant,
                credentials,
                timeout,
            } => {
                let auth = credentials.header().await?;
                let mut req = hyper::Request::post(url.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
                    .header(
                        hyper::header::USER_AGENT,
                        concat!("larch-agent/", env!("CARGO_PKG_VERSION")),
                    );
                if let Some(t) = tenant {
                    req = req.header("X-Scope-OrgID", t.clone());
                }
                if let Some(a) = auth {
                    req = req.header(hyper::header::AUTHORIZATION, a);
                }
                let req = req.body(Full::new(body)).map_err(|e| PushError::Retry {
                    status: "error".into(),
                    message: e.to_string(),
                })?;
                let call = async {
                    let resp = client.request(req).await.map_err(|e| PushError::Retry {
                        status: "error".into(),
                        message: format!("{e}{}", source_chain(&e)),
                    })?;
                    let status = resp.status();
                    let text = match resp.into_body().collect().await {
                        Ok(b) => {
                            let b = b.to_bytes();
                            String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned()
                        }
                        Err(e) => format!("(body unreadable: {e})"),
                    };
                    let code = status.as_u16().to_string();
                    if status.is_success() {
                        Ok(code)
                    } else {
                        Err(classify_http(status.as_u16(), text))
                    }
                };
                match tokio::time::timeout(*timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(PushError::Retry {
                        status: "timeout".into(),
                        message: format!("no answer within {timeout:?}"),
                    }),
                }
            }
            Client::Grpc {
                channel,
                tenant,
                credentials,
                timeout,
            } => {
                let auth = credentials
                    .header()
                    .await?
                    .and_then(|v| tonic::metadata::MetadataValue::try_from(v.as_bytes()).ok());
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                let call = async {
                    grpc.ready().await.map_err(|e| PushError::Retry {
                        status: "error".into(),
                        message: format!("{e}{}", source_chain(&e)),
                    })?;
                    let mut req = tonic::Request::new(body);
                    if let Some(t) = tenant {
                        req.metadata_mut().insert("x-scope-orgid", t.clone());
                    }
                    if let Some(a) = auth {
                        req.metadata_mut().insert("authorization", a);
                    }
                    req.set_timeout(*timeout);
                    let path = hyper::http::uri::PathAndQuery::from_static("/logproto.Pusher/Push");
                    grpc.unary(req, path, RawCodec)
                        .await
                        .map(|_| "OK".to_string())
                        .map_err(classify_status)
                };
                match tokio::time::timeout(*timeout + Duration::from_secs(1), call).await {
                    Ok(r) => r,
                    Err(_) => Err(PushError::Retry {
                        status: "timeout".into(),
                        message: format!("no answer within {timeout:?}"),
                    }),
                }
            }
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What an HTTP error status means for the batch.
pub fn classify_http(code: u16, message: String) -> PushError {
    let status = code.to_string();
    match code {
        400 => PushError::Reject { status, message },
        413 => PushError::TooLarge { status, message },
        _ => PushError::Retry { status, message },
    }
}

fn classify_status(s: tonic::Status) -> PushError {
    use tonic::Code;
    let status = format!("{:?}", s.code());
    let message = s.message().to_string();
    let about_size = || {
        let m = message.to_ascii_lowercase();
        [
            "too large",
            "larger than",
            "message length",
            "exceeds",
            "burst",
        ]
        .iter()
        .any(|w| m.contains(w))
    };
    match s.code() {
        Code::InvalidArgument => PushError::Reject { status, message },
        Code::OutOfRange => PushError::TooLarge { status, message },
        Code::ResourceExhausted if about_size() => PushError::TooLarge { status, message },
        _ => PushError::Retry { status, message },
    }
}

/// Counts the entries a Loki-style 400 says were rejected; `None` when it
/// cannot tell, and then the caller counts the whole batch (an upper
/// bound, logged with the store's full text).
///
/// Loki (and the store) answer one line per rejected entry for validation
/// failures (`entry for stream '…' has timestamp too old: …`, `max entry
/// size '…' bytes exceeded …`, structured metadata limits) and
/// `total ignored: N out of M` after the itemized `entry with timestamp …
/// ignored` lines of an ingester rejection. Any other line is a stream- or
/// request-level refusal whose size the text does not give.
pub fn rejected_count(text: &str) -> Option<usize> {
    const PER_ENTRY: [&str; 2] = ["entry for stream '", "max entry size '"];
    let mut total = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("entry with timestamp ") {
            continue;
        }
        if let Some(i) = line.find("total ignored: ") {
            let rest = &line[i + "total ignored: ".len()..];
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            total += n.parse::<usize>().ok()?;
        } else if PER_ENTRY.iter().any(|p| line.starts_with(p))
            || (line.starts_with("stream '") && line.contains("structured metadata"))
        {
            total += 1;
        } else {
            return None;
        }
    }
    (total > 0).then_some(total)
}

/// A tonic codec whose requests are protobuf bytes made by the batcher and
/// whose response (`PushResponse`, an empty message) is skipped.
#[derive(Clone, Copy, Default)]
pub(crate) struct RawCodec;

pub(crate) struct RawEncoder;
pub(crate) struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> std::result::Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> std::result::Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Exponential backoff with jitter: attempt `n` (0-based) waits a random
/// time in `[d/2, d]` where `d = min(max, min * 2^n)`, so agents that lost
/// the store together do not come back together.
pub fn backoff(n: u32, min: Duration, max: Duration, rand: &mut u64) -> Duration {
    let d = min.saturating_mul(1u32 << n.min(20)).min(max);
    // xorshift64*
    *rand ^= *rand >> 12;
    *rand ^= *rand << 25;
    *rand ^= *rand >> 27;
    let r = rand.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.5 + 0.5 * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rejected_entries() {
        let body = "entry with timestamp 2024-01-01 ignored, reason: 'x',\nuser 'fake', total ignored: 3 out of 10 for stream: {a=\"b\"}\nuser 'fake', total ignored: 2 out of 2 for stream: {a=\"c\"}\n";
        assert_eq!(rejected_count(body), Some(5));
        assert_eq!(
            rejected_count("error at least one label pair is required per stream"),
            None
        );
        let body = "entry for stream '{a=\"b\"}' has timestamp too old: 2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-02T00:00:00Z\nentry for stream '{a=\"b\"}' has timestamp too new: 2030-01-01T00:00:00Z\n";
        assert_eq!(rejected_count(body), Some(2));
        assert_eq!(
            rejected_count(&format!(
                "{body}stream '{{a=\"b\"}}' has label value too long: 'x'"
            )),
            None
        );
        assert_eq!(rejected_count(""), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut r = 0x1234_5678_9abc_def0;
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for n in 0..10 {
            let d = backoff(n, min, max, &mut r);
            let cap = min.saturating_mul(1 << n).min(max);
            assert!(d >= cap / 2 && d <= cap, "{n}: {d:?} vs {cap:?}");
        }
        let a = backoff(3, min, max, &mut r);
        let b = backoff(3, min, max, &mut r);
        assert_ne!(a, b, "jitter");
    }

    #[test]
    fn http_statuses_classify() {
        let c = |code| classify_http(code, String::new());
        assert!(matches!(c(400), PushError::Reject { .. }));
        assert!(matches!(c(413), PushError::TooLarge { .. }));
        for code in [401, 403, 404, 405, 408, 409, 415, 429, 500, 502, 503, 504] {
            assert!(matches!(c(code), PushError::Retry { .. }), "{code}");
        }
    }

    #[test]
    fn grpc_codes_classify() {
        assert!(matches!(
            classify_status(tonic::Status::invalid_argument("x")),
            PushError::Reject { .. }
        ));
        assert!(matches!(
            classify_status(tonic::Status::out_of_range(
                "Error, decoded message length too large"
            )),
            PushError::TooLarge { .. }
        ));
        assert!(matches!(
            classify_status(tonic::Status::resource_exhausted(
                "request body too large: exceeds the limit"
            )),
            PushError::TooLarge { .. }
        ));
        assert!(matches!(
            classify_status(tonic::Status::resource_exhausted(
                "ingestion rate limit exceeded for user fake"
            )),
            PushError::Retry { .. }
        ));
        for s in [
            tonic::Status::unauthenticated("x"),
            tonic::Status::permission_denied("x"),
            tonic::Status::not_found("x"),
            tonic::Status::failed_precondition("x"),
            tonic::Status::unimplemented("x"),
        ] {
            assert!(matches!(classify_status(s), PushError::Retry { .. }));
        }
        assert!(matches!(
            classify_status(tonic::Status::resource_exhausted("x")),
            PushError::Retry { .. }
        ));
        assert!(matches!(
            classify_status(tonic::Status::unavailable("x")),
            PushError::Retry { .. }
        ));
    }
}
