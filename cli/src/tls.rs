//! How `larch` reaches the store: TCP directly or through an HTTP proxy
//! (`--proxy-url`, a `CONNECT` tunnel), then TLS for `https://` and
//! `wss://` (rustls with ring) with logcli's options: `--ca-cert`,
//! `--cert`/`--key` (a client certificate for mTLS), `--tls-skip-verify`.
//!
//! One [`Transport`] serves both the HTTP client (as a hyper connector,
//! wrapped by hyper-rustls) and the live tail's WebSocket
//! ([`Transport::connect`]), so both take the same path.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// TLS and proxy settings (the global flags).
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// CA bundle (PEM); default the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Its key (PEM).
    pub key: Option<PathBuf>,
    /// Accept any server certificate.
    pub skip_verify: bool,
    /// `http://host:port` of an HTTP proxy.
    pub proxy_url: Option<String>,
}

/// Why TLS or the proxy cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Connections to the store.
#[derive(Clone)]
pub struct Transport {
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<(String, u16)>,
    timeout: Duration,
}

impl Transport {
    /// Reads the certificate files and checks the proxy address.
    pub fn new(cfg: &TransportConfig, timeout: Duration) -> Result<Transport, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError(format!("TLS: {e}")))?;
        let builder = if cfg.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &cfg.ca_cert {
                Some(path) => {
                    for c in certs(path)? {
                        roots
                            .add(c)
                            .map_err(|e| TransportError(format!("{}: {e}", path.display())))?;
                    }
                }
                None => {
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let tls = match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => {
                let k = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    TransportError(format!(
                        "--key {}: no usable private key: {e}",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(certs(cert)?, k)
                    .map_err(|e| TransportError(format!("--cert/--key: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TransportError(
                    "--cert and --key must be given together".into(),
                ));
            }
        };
        let proxy = match &cfg.proxy_url {
            Some(p) if !p.is_empty() => Some(proxy_addr(p)?),
            _ => None,
        };
        Ok(Transport {
            tls: Arc::new(tls),
            proxy,
            timeout,
        })
    }

    /// The TLS configuration (hyper-rustls sets ALPN on its own copy).
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// A TCP connection to `host:port`, through the proxy's tunnel if one
    /// is set.
    pub async fn tcp(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let work = async {
            match &self.proxy {
                None => {
                    let s = TcpStream::connect((host, port)).await?;
                    s.set_nodelay(true)?;
                    Ok(s)
                }
                Some((ph, pp)) => {
                    let mut s = TcpStream::connect((ph.as_str(), *pp)).await?;
                    s.set_nodelay(true)?;
                    let target = if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    };
                    s.write_all(
                        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
                    )
                    .await?;
                    let head = read_head(&mut s).await?;
                    let status = head.split_whitespace().nth(1).unwrap_or("");
                    if status != "200" {
                        return Err(std::io::Error::other(format!(
                            "the proxy refused the tunnel to {target}: {}",
                            head.lines().next().unwrap_or("")
                        )));
                    }
                    Ok(s)
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
    }

    /// A stream to the host of `url` (`ws://`, `wss://`, `http://`,
    /// `https://`), with TLS for the secure schemes.
    pub async fn connect(&self, url: &Uri) -> std::io::Result<Box<dyn Stream>> {
        let secure = matches!(url.scheme_str(), Some("https" | "wss"));
        let host = url
            .host()
            .ok_or_else(|| std::io::Error::other("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tcp = self.tcp(&host, port).await?;
        if !secure {
            return Ok(Box::new(tcp));
        }
        let name = ServerName::try_from(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }
}

/// A byte stream to the store.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// Reads a response head (up to the empty line), at most 16 KiB.
async fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || s.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other("the proxy's answer ended early"));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn proxy_addr(p: &str) -> Result<(String, u16), TransportError> {
    let uri: Uri = p
        .parse()
        .map_err(|e| TransportError(format!("--proxy-url {p:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(TransportError(format!(
            "--proxy-url {p:?}: only http:// proxies are supported"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| TransportError(format!("--proxy-url {p:?}: no host")))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        uri.port_u16().unwrap_or(80),
    ))
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TransportError(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TransportError(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The hyper connector: plain TCP (or the proxy's tunnel); hyper-rustls
/// adds TLS for `https://`.
impl tower_service::Service<Uri> for Transport {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let secure = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
            this.tcp(&host, port).await.map(TokioIo::new)
        })
    }
}

/// `--tls-skip-verify`: any certificate is accepted (signatures are still
/// checked, so the connection is encrypted, but to anyone).
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        assert_eq!(
            proxy_addr("http://proxy:3128").unwrap(),
            ("proxy".to_string(), 3128)
        );
        assert_eq!(proxy_addr("http://[::1]").unwrap(), ("::1".to_string(), 80));
        assert!(proxy_addr("socks5://p:1").is_err());
    }

    #[test]
    fn cert_and_key_go_together() {
        let e = Transport::new(
            &TransportConfig {
                cert: Some("/c".into()),
                ..TransportConfig::default()
            },
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(e.0.contains("together"), "{e}");
        let e = Transport::new(
            &TransportConfig {
                ca_cert: Some("/nonexistent/ca.pem".into()),
                ..TransportConfig::default()
            },
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(e.0.contains("/nonexistent/ca.pem"), "{e}");
    }
}
