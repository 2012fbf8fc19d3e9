//! TLS for the HTTP and gRPC ports (rustls with ring): `tls:` in the
//! configuration, with the names of Prometheus' web configuration.
//!
//! ```yaml
//! tls:
//!   cert_file: /etc/larch/tls/tls.crt
//!   key_file: /etc/larch/tls/tls.key
//!   client_ca_file: /etc/larch/tls/ca.crt          # optional
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   min_version: TLS12                             # TLS12 (default) or TLS13
//! ```
//!
//! The files are read again when they change (cert-manager rotates
//! certificates in place): a new rustls configuration is built and served
//! to every connection accepted from then on, while open connections keep
//! theirs. A set of files that does not load (a key that does not match
//! the certificate, a half-written file) keeps the last good
//! configuration in use, with an error in the log and
//! `larch_auth_reloads_total{file="tls",result="failure"}`.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use serde::{Deserialize, Serialize};

use crate::auth::watch;
use crate::metrics::Metrics;

/// Which client certificates the server asks for, as Prometheus' web
/// configuration (and Go's `tls.ClientAuthType`) names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ClientAuthType {
    /// None asked for (the default).
    #[default]
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA.
    RequireAnyClientCert,
    /// Verified against `client_ca_file` when given, not required.
    VerifyClientCertIfGiven,
    /// Required and verified against `client_ca_file` (mTLS).
    RequireAndVerifyClientCert,
}

/// Oldest TLS version accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    TLS12,
    /// TLS 1.3 only.
    TLS13,
}

/// `tls:` in the configuration. TLS is on when `cert_file` is set, for
/// both ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA bundle (PEM) client certificates are verified against.
    pub client_ca_file: Option<PathBuf>,
    /// Which client certificates are asked for.
    pub client_auth_type: ClientAuthType,
    /// Oldest TLS version accepted.
    pub min_version: TlsVersion,
}

impl TlsConfig {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Checks the combination of keys (not the files): `(key, reason)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let any = self.key_file.is_some()
            || self.client_ca_file.is_some()
            || self.client_auth_type != ClientAuthType::NoClientCert;
        if !self.enabled() {
            return if any {
                Err((
                    "tls.cert_file",
                    "is required when any other tls key is set".into(),
                ))
            } else {
                Ok(())
            };
        }
        if self.key_file.is_none() {
            return Err(("tls.key_file", "is required with tls.cert_file".into()));
        }
        let verifies = matches!(
            self.client_auth_type,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        );
        if verifies && self.client_ca_file.is_none() {
            return Err((
                "tls.client_ca_file",
                format!(
                    "is required with client_auth_type {:?}",
                    self.client_auth_type
                ),
            ));
        }
        if self.client_ca_file.is_some() && self.client_auth_type == ClientAuthType::NoClientCert {
            return Err((
                "tls.client_auth_type",
                "client_ca_file is set but client_auth_type is NoClientCert; choose VerifyClientCertIfGiven or RequireAndVerifyClientCert".into(),
            ));
        }
        Ok(())
    }

    fn files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// TLS that cannot be set up; the text names the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Which listener a configuration is for (they differ in ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2.
    Http,
    /// gRPC (HTTP/2 only).
    Grpc,
}

impl Protocol {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

struct Configs {
    http: Arc<ServerConfig>,
    grpc: Arc<ServerConfig>,
}

/// The current server configurations, reloaded when the files change.
pub struct TlsServer {
    config: TlsConfig,
    current: RwLock<Configs>,
    metrics: Arc<Metrics>,
}

impl TlsServer {
    /// Loads `config`'s files (`None` when TLS is off) and starts watching
    /// them every `interval`.
    pub fn start(
        config: &TlsConfig,
        interval: std::time::Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<TlsServer>>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        config
            .check()
            .map_err(|(k, r)| TlsError(format!("{k}: {r}")))?;
        let configs = build(config)?;
        let server = Arc::new(TlsServer {
            config: config.clone(),
            current: RwLock::new(configs),
            metrics,
        });
        watch::spawn(
            "TLS certificate",
            config.files(),
            interval,
            Arc::downgrade(&server),
        )
        .map_err(|e| TlsError(format!("cannot watch the TLS files: {e}")))?;
        Ok(Some(server))
    }

    /// The configuration for a new connection of `protocol`.
    pub fn config(&self, protocol: Protocol) -> Arc<ServerConfig> {
        let c = self.current.read();
        match protocol {
            Protocol::Http => c.http.clone(),
            Protocol::Grpc => c.grpc.clone(),
        }
    }
}

impl watch::Reload for TlsServer {
    fn reload(&self) -> Result<String, String> {
        match build(&self.config) {
            Ok(c) => {
                *self.current.write() = c;
                self.metrics.security.reloaded("tls", true);
                Ok("certificate, key and client CA".into())
            }
            Err(e) => {
                self.metrics.security.reloaded("tls", false);
                Err(e.0)
            }
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read {what} {}: {e}", path.display())))
}

/// The certificates of a PEM file (an error if there are none).
pub fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, "certificate file")?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// A CA bundle as a root store.
pub fn load_roots(path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A certificate chain and its key, checked to belong together.
pub fn load_certified_key(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = load_certs(cert)?;
    let pem = read(key, "key file")?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError(format!("{}: no usable private key: {e}", key.display())))?;
    let ck = CertifiedKey::from_der(certs, key_der, &provider())
        .map_err(|e| TlsError(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(ck))
}

/// Serves one certified key (a new resolver is built at each reload).
#[derive(Debug)]
struct OneKey(Arc<CertifiedKey>);

impl ResolvesServerCert for OneKey {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn build(c: &TlsConfig) -> Result<Configs, TlsError> {
    let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) else {
        return Err(TlsError(
            "tls.cert_file and tls.key_file are required".into(),
        ));
    };
    let ck = load_certified_key(cert, key)?;
    let provider = provider();
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match c.client_auth_type {
        ClientAuthType::NoClientCert => None,
        ClientAuthType::RequestClientCert => Some(Arc::new(AnyClientCert {
            mandatory: false,
            provider: provider.clone(),
        })),
        ClientAuthType::RequireAnyClientCert => Some(Arc::new(AnyClientCert {
            mandatory: true,
            provider: provider.clone(),
        })),
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            let ca = c
                .client_ca_file
                .as_ref()
                .ok_or_else(|| TlsError("tls.client_ca_file is required".into()))?;
            let roots = Arc::new(load_roots(ca)?);
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if c.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(
                b.build()
                    .map_err(|e| TlsError(format!("{}: {e}", ca.display())))?,
            )
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match c.min_version {
        TlsVersion::TLS12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::TLS13 => &[&rustls::version::TLS13],
    };
    let make = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, TlsError> {
        let b = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError(format!("TLS: {e}")))?;
        let b = match &verifier {
            Some(v) => b.with_client_cert_verifier(v.clone()),
            None => b.with_no_client_auth(),
        };
        let mut cfg = b.with_cert_resolver(Arc::new(OneKey(ck.clone())));
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    };
    Ok(Configs {
        http: make(&[b"h2", b"http/1.1"])?,
        grpc: make(&[b"h2"])?,
    })
}

/// Accepts any client certificate (`RequestClientCert`,
/// `RequireAnyClientCert`): the chain is not verified, but the handshake
/// signature still proves the client holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for connections between nodes with the same
/// `tls:` settings: the server is verified against `client_ca_file` (the
/// cluster's CA), and the node's own certificate and key are presented as
/// its client certificate. ALPN `h2` (gRPC).
pub fn node_client_config(c: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) else {
        return Err(TlsError(
            "tls.cert_file and tls.key_file are required".into(),
        ));
    };
    let ca = c
        .client_ca_file
        .as_ref()
        .ok_or_else(|| TlsError("tls.client_ca_file is required to verify other nodes".into()))?;
    let roots = load_roots(ca)?;
    let certs = load_certs(cert)?;
    let pem = read(key, "key file")?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError(format!("{}: no usable private key: {e}", key.display())))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key_der)
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_combinations() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert!(TlsConfig::default().check().is_ok());
        let c = TlsConfig {
            key_file: p("k"),
            ..TlsConfig::default()
        };
        assert_eq!(c.check().unwrap_err().0, "tls.cert_file");
        let c = TlsConfig {
            cert_file: p("c"),
            ..TlsConfig::default()
        };
        assert_eq!(c.check().unwrap_err().0, "tls.key_file");
        let c = TlsConfig {
            cert_file: p("c"),
            key_file: p("k"),
            client_auth_type: ClientAuthType::RequireAndVerifyClientCert,
            ..TlsConfig::default()
        };
        assert_eq!(c.check().unwrap_err().0, "tls.client_ca_file");
        let c = TlsConfig {
            cert_file: p("c"),
            key_file: p("k"),
            client_ca_file: p("ca"),
            ..TlsConfig::default()
        };
        assert_eq!(c.check().unwrap_err().0, "tls.client_auth_type");
        let c = TlsConfig {
            cert_file: p("c"),
            key_file: p("k"),
            client_auth_type: ClientAuthType::RequireAnyClientCert,
            ..TlsConfig::default()
        };
        assert!(c.check().is_ok());
    }

    #[test]
    fn names_as_prometheus_spells_them() {
        let c: TlsConfig = larch_config::yaml::from_str(
            "cert_file: a\nkey_file: b\nclient_ca_file: c\nclient_auth_type: VerifyClientCertIfGiven\nmin_version: TLS13\n",
        )
        .unwrap();
        assert_eq!(c.client_auth_type, ClientAuthType::VerifyClientCertIfGiven);
        assert_eq!(c.min_version, TlsVersion::TLS13);
        assert!(larch_config::yaml::from_str::<TlsConfig>("client_auth_type: Verify\n").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let c = TlsConfig {
            cert_file: Some("/nonexistent/tls.crt".into()),
            key_file: Some("/nonexistent/tls.key".into()),
            ..TlsConfig::default()
        };
        let e = build(&c).err().unwrap().0;
        assert!(e.contains("/nonexistent/tls.crt"), "{e}");
    }
}
