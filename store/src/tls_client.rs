//! The client side of TLS, for every connection the store opens to another
//! server: the members of its cluster (gRPC over HTTP/2), and the ruler's
//! Alertmanagers, remote write receivers, query node and forwarded rules
//! API (HTTP/1.1).
//!
//! One [`ClientTlsConfig`] shape everywhere, with Loki's key names
//! (`tls_ca_path`, `tls_cert_path`, `tls_key_path`, `tls_server_name`).
//! The CA is read once, at start; without one, the system's roots are
//! used where a public certificate is plausible (an Alertmanager outside
//! the cluster), and refused where it is not (node to node). The client
//! certificate and key are read again when their files change, so a
//! renewed certificate is presented on new connections without a restart;
//! a version that does not load is logged and the last good one kept, as
//! for the server's own certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};

/// The client side of a TLS connection, named as Loki names its client
/// blocks' keys (`grpc_client_config`, `alertmanager_client`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// Use TLS even where the address does not say so (node-to-node
    /// gRPC: members named by `host:port`); for URLs, `https://` says so,
    /// and `tls_enabled` with an `http://` URL is refused.
    pub tls_enabled: bool,
    /// CA certificates (PEM) the server's certificate is checked against;
    /// unset: the system's roots (node to node: required).
    pub tls_ca_path: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (mTLS).
    pub tls_cert_path: Option<PathBuf>,
    /// Its key.
    pub tls_key_path: Option<PathBuf>,
    /// Name the server's certificate is checked for; empty: the host part
    /// of the address (an IP address is checked against the certificate's
    /// IP SANs).
    pub tls_server_name: String,
}

impl ClientTlsConfig {
    /// Whether any TLS setting is given.
    pub fn is_set(&self) -> bool {
        self.tls_enabled
            || self.tls_ca_path.is_some()
            || self.tls_cert_path.is_some()
            || self.tls_key_path.is_some()
            || !self.tls_server_name.trim().is_empty()
    }

    /// Checks what types cannot: a certificate needs its key and the other
    /// way round, a server name must be one; `key` names the block.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(_), None) => {
                return Err(format!("{key}.tls_cert_path is set without tls_key_path"));
            }
            (None, Some(_)) => {
                return Err(format!("{key}.tls_key_path is set without tls_cert_path"));
            }
            _ => {}
        }
        let name = self.tls_server_name.trim();
        if !name.is_empty() && ServerName::try_from(name.to_string()).is_err() {
            return Err(format!(
                "{key}.tls_server_name {name:?} is not a DNS name or an IP address"
            ));
        }
        Ok(())
    }
}

/// A loaded client TLS setup: the rustls configuration, the fixed server
/// name if any, and the watched client certificate.
pub struct ClientTls {
    config: rustls::ClientConfig,
    server_name: Option<ServerName<'static>>,
    /// Kept here: its watcher ends when the last holder drops it.
    cert: Option<Arc<ClientCert>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("client_cert", &self.cert.as_ref().map(|c| &c.cert))
            .finish()
    }
}

/// Whether a configuration without `tls_ca_path` may fall back to the
/// system's roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The CA must be given (servers with private certificates only).
    Required,
    /// The system's roots when no CA is given.
    SystemDefault,
}

impl ClientTls {
    /// Reads `c`: the CA (or the system's roots, as `roots` allows), the
    /// client certificate (watched every `interval`); `key` names the
    /// block in errors (`cluster.tls`, `ruler.alertmanager_client`).
    pub fn load(
        c: &ClientTlsConfig,
        key: &str,
        roots: Roots,
        interval: Duration,
    ) -> std::io::Result<ClientTls> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        c.validate(key).map_err(std::io::Error::other)?;
        let err = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
            std::io::Error::other(format!("{key}.{what} {}: {e}", p.display()))
        };
        let mut store = rustls::RootCertStore::empty();
        match (&c.tls_ca_path, roots) {
            (Some(ca), _) => {
                let certs =
                    CertificateDer::pem_file_iter(ca).map_err(|e| err("tls_ca_path", ca, &e))?;
                for cert in certs {
                    let cert = cert.map_err(|e| err("tls_ca_path", ca, &e))?;
                    store.add(cert).map_err(|e| err("tls_ca_path", ca, &e))?;
                }
                if store.is_empty() {
                    return Err(err("tls_ca_path", ca, &"no PEM certificate found"));
                }
            }
            (None, Roots::Required) => {
                return Err(std::io::Error::other(format!(
                    "{key}.tls_ca_path is required for TLS"
                )));
            }
            (None, Roots::SystemDefault) => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot use is passed over,
                    // as every TLS client does with its system's bundle.
                    let _ = store.add(cert);
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(store);
        let (config, cert) = match (&c.tls_cert_path, &c.tls_key_path) {
            (Some(cert), Some(k)) => {
                let first =
                    ClientCert::read(cert, k).map_err(|e| err("tls_cert_path", cert, &e))?;
                let resolver = Arc::new(ClientCert {
                    cert: cert.clone(),
                    key: k.clone(),
                    current: parking_lot::RwLock::new(first),
                });
                crate::auth::watch::spawn(
                    "client certificate",
                    vec![cert.clone(), k.clone()],
                    interval,
                    Arc::downgrade(&resolver),
                )?;
                (
                    builder.with_client_cert_resolver(resolver.clone()),
                    Some(resolver),
                )
            }
            _ => (builder.with_no_client_auth(), None),
        };
        let name = c.tls_server_name.trim();
        let server_name = if name.is_empty() {
            None
        } else {
            Some(
                ServerName::try_from(name.to_string())
                    .map_err(|e| std::io::Error::other(format!("{key}.tls_server_name: {e}")))?,
            )
        };
        Ok(ClientTls {
            config,
            server_name,
            cert,
        })
    }

    /// The connector of node-to-node gRPC: TLS only, HTTP/2 (ALPN `h2`).
    pub fn grpc_connector(&self) -> HttpsConnector<HttpConnector> {
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.config.clone())
            .https_only();
        let b = match &self.server_name {
            Some(n) => {
                b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(n.clone()))
            }
            None => b,
        };
        b.enable_http2().wrap_connector(plain())
    }

    /// The connector of an HTTP/1.1 client: `https://` URLs over TLS,
    /// `http://` ones in the clear.
    pub fn http_connector(&self) -> HttpsConnector<HttpConnector> {
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.config.clone())
            .https_or_http();
        let b = match &self.server_name {
            Some(n) => {
                b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(n.clone()))
            }
            None => b,
        };
        b.enable_http1().wrap_connector(plain())
    }

    /// Whether a client certificate is presented.
    pub fn has_client_cert(&self) -> bool {
        self.cert.is_some()
    }
}

/// The TCP connector under TLS: any scheme (TLS decides), no delay, a
/// connect timeout.
fn plain() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http
}

/// A client certificate with its key, read again when the files change.
#[derive(Debug)]
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
    current: parking_lot::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ClientCert {
    fn read(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
        crate::server::tls::load_certified_key(cert, key).map_err(|e| e.0)
    }
}

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl crate::auth::watch::Reload for ClientCert {
    fn reload(&self) -> Result<String, String> {
        let k = ClientCert::read(&self.cert, &self.key)?;
        *self.current.write() = k;
        Ok("client certificate and key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client certificate is read again when its files change; a
    /// version that does not load leaves the last good one in use.
    #[test]
    fn the_client_certificate_is_reloaded_when_it_changes() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        let pki = larch_testkit::pki::Pki::create(dir.path());
        let c = ClientTlsConfig {
            tls_enabled: true,
            tls_ca_path: Some(pki.ca.clone()),
            tls_cert_path: Some(pki.client_cert.clone()),
            tls_key_path: Some(pki.client_key.clone()),
            tls_server_name: String::new(),
        };
        let tls = ClientTls::load(
            &c,
            "cluster.tls",
            Roots::Required,
            Duration::from_millis(20),
        )
        .unwrap();
        let cert = tls.cert.clone().unwrap();
        let der = |p: &std::path::Path| CertificateDer::from_pem_file(p).unwrap().to_vec();
        let current = || cert.current.read().cert[0].to_vec();
        let first = der(&pki.client_cert);
        assert_eq!(current(), first);
        // Another certificate and key put in place (key first, as a
        // rotation may: the pair does not match for a moment).
        let next = der(&pki.rogue_cert);
        std::fs::rename(&pki.rogue_key, &pki.client_key).unwrap();
        std::fs::rename(&pki.rogue_cert, &pki.client_cert).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while current() != next {
            assert!(std::time::Instant::now() < deadline, "never reloaded");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(&pki.client_cert, "not a certificate").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(current(), next, "a broken file replaced the good one");
    }

    #[test]
    fn a_certificate_needs_its_key_and_node_to_node_needs_a_ca() {
        let c = ClientTlsConfig {
            tls_cert_path: Some("c.pem".into()),
            ..ClientTlsConfig::default()
        };
        assert!(c.validate("x").unwrap_err().contains("x.tls_cert_path"));
        let c = ClientTlsConfig {
            tls_enabled: true,
            ..ClientTlsConfig::default()
        };
        let e = ClientTls::load(&c, "cluster.tls", Roots::Required, Duration::from_secs(1))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("cluster.tls.tls_ca_path is required"),
            "{e}"
        );
        let t = ClientTls::load(
            &c,
            "ruler.alertmanager_client",
            Roots::SystemDefault,
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!t.has_client_cert());
        let c = ClientTlsConfig {
            tls_server_name: "not a name".into(),
            ..ClientTlsConfig::default()
        };
        assert!(c.validate("x").unwrap_err().contains("x.tls_server_name"));
    }
}
