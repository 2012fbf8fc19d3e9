//! Who may do what: tokens mapped to tenants and actions, checked on every
//! HTTP and gRPC request before any handler runs.
//!
//! Off unless `auth.tokens_file` is set; then every request but those to
//! `auth.unauthenticated_paths` (`/ready`, `/metrics`, build info by
//! default) must carry a token, as `Authorization: Bearer <token>` or as
//! the password of basic auth (what Grafana's data source and most push
//! clients send), on HTTP and as gRPC metadata. One decision,
//! [`Authorizer::check`], is used by both protocols:
//!
//! 1. an address over its limit of failed attempts gets 429;
//! 2. no credentials, or a token the file does not list: 401;
//! 3. the route's action ([`routes::classify`], one table for every route)
//!    not allowed by the token's access: 403;
//! 4. for a route that acts for tenants, every tenant `X-Scope-OrgID`
//!    names (`a|b` for several) must be one of the token's, else 403; a
//!    token of one tenant implies it when the header is absent (the header
//!    is then set for the handler); a token of several needs the header
//!    (401 `no org id`).
//!
//! [`http_layer`] (axum middleware) and [`GrpcAuthLayer`] (a tower layer
//! of the gRPC server) only adapt the answer to their protocol. The tokens
//! file is reloaded when it changes ([`watch`]); a file that cannot be
//! read or parsed keeps the last good one in use.

pub mod limiter;
pub mod metrics;
pub mod routes;
pub mod tokens;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::tenant::TenantId;
use larch_config::HumanDuration;
use limiter::FailureLimiter;
use routes::{Action, Scope};
use tokens::TokenSet;

/// `auth:` in the configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The tokens file (see [`tokens`]). Unset (the default): no tokens
    /// are asked for, and `X-Scope-OrgID` is trusted as sent, as in Loki.
    pub tokens_file: Option<PathBuf>,
    /// Paths served without a token (exact paths). Default `/ready`,
    /// `/metrics` and `/loki/api/v1/status/buildinfo`, so that probes and
    /// Prometheus keep working; empty them to require a token there too.
    pub unauthenticated_paths: Vec<String>,
    /// Failed attempts (unknown tokens) a client address may make per
    /// minute before its requests are answered 429 until the minute ends.
    /// Default 30; 0: no limit.
    pub max_failures_per_minute: u32,
    /// How often the tokens file and the TLS files are checked for
    /// changes. Default 1s.
    pub reload_interval: HumanDuration,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            tokens_file: None,
            unauthenticated_paths: vec![
                "/ready".into(),
                "/metrics".into(),
                "/loki/api/v1/status/buildinfo".into(),
            ],
            max_failures_per_minute: 30,
            reload_interval: HumanDuration::from_secs(1),
        }
    }
}

/// Why the authoriser could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The tokens file could not be read.
    #[error("cannot read auth.tokens_file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The tokens file is not valid.
    #[error("invalid auth.tokens_file {path}: {error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        error: tokens::TokensError,
    },
}

/// A request let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The tenant the token implies (it holds only one) when the request
    /// named none: the handler sees it as `X-Scope-OrgID`.
    pub implied_tenant: Option<TenantId>,
    /// The token's name (`None` on an unauthenticated path).
    pub token: Option<Arc<str>>,
}

/// A request refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// 401, 403 or 429.
    pub status: StatusCode,
    /// The metric label.
    pub reason: &'static str,
    /// What the client is told.
    pub message: String,
    /// Seconds until a rate-limited address may try again.
    pub retry_after: Option<u64>,
}

impl Denied {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Denied {
        Denied {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The tokens in use, the route table and the failure limiter.
pub struct Authorizer {
    path: PathBuf,
    tokens: RwLock<Arc<TokenSet>>,
    open: Vec<String>,
    limiter: FailureLimiter,
    metrics: Arc<Metrics>,
}

impl Authorizer {
    /// The authoriser of `config`, or `None` when no tokens file is set.
    /// Reads the file (an error if it cannot be used) and starts watching
    /// it.
    pub fn start(
        config: &AuthConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Authorizer>>, AuthError> {
        let Some(path) = &config.tokens_file else {
            return Ok(None);
        };
        let set = load(path)?;
        metrics
            .security
            .tokens
            .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
        let auth = Arc::new(Authorizer {
            path: path.clone(),
            tokens: RwLock::new(Arc::new(set)),
            open: config.unauthenticated_paths.clone(),
            limiter: FailureLimiter::new(config.max_failures_per_minute),
            metrics,
        });
        watch::spawn(
            "tokens file",
            vec![path.clone()],
            config.reload_interval.0,
            Arc::downgrade(&auth),
        )
        .map_err(|error| AuthError::Read {
            path: path.clone(),
            error,
        })?;
        Ok(Some(auth))
    }

    /// Decides on a request: `method path` with `headers`, from `peer`
    /// (for the failure limit). `protocol` (`http`, `grpc`) labels the
    /// metrics.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        protocol: &'static str,
    ) -> Result<Allowed, Denied> {
        let result = self.decide(method, path, headers, peer);
        match &result {
            Ok(Allowed { token: Some(t), .. }) => {
                let action = routes::classify(method, path).action;
                self.metrics
                    .security
                    .allowed
                    .get_or_create(&vec![
                        ("token", t.to_string()),
                        ("action", action.as_str().to_string()),
                    ])
                    .inc();
            }
            Ok(_) => {}
            Err(d) => {
                self.metrics
                    .security
                    .denied
                    .get_or_create(&vec![
                        ("reason", d.reason.to_string()),
                        ("protocol", protocol.to_string()),
                    ])
                    .inc();
                tracing::debug!(reason = d.reason, %method, path, peer = ?peer, protocol, "Request refused.");
            }
        }
        result
    }

    fn decide(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Allowed, Denied> {
        if self.open.iter().any(|p| p == path) || routes::is_public(path) {
            return Ok(Allowed {
                implied_tenant: None,
                token: None,
            });
        }
        let now = Instant::now();
        if let Some(addr) = peer
            && let Some(wait) = self.limiter.blocked(addr, now)
        {
            let mut d = Denied::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed authentication attempts from this address; try again later",
            );
            d.retry_after = Some(wait.as_secs().max(1));
            return Err(d);
        }
        let Some(presented) = credentials(headers) else {
            return Err(Denied::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "unauthorized: this store requires a token, sent as 'Authorization: Bearer <token>' or as the password of basic auth",
            ));
        };
        let set = self.tokens.read().clone();
        let Some(token) = set.find(&presented) else {
            if let Some(addr) = peer {
                self.limiter.failed(addr, now);
            }
            return Err(Denied::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "unauthorized: invalid token",
            ));
        };
        let class = routes::classify(method, path);
        if !token.access.allows(class.action) {
            return Err(Denied::new(
                StatusCode::FORBIDDEN,
                "action_not_allowed",
                format!(
                    "forbidden: token '{}' has {} access; {method} {} needs {}",
                    token.name,
                    token.access.as_str(),
                    class.pattern.unwrap_or("this path"),
                    match class.action {
                        Action::Read => "read",
                        Action::Write => "write",
                        Action::Admin => "admin",
                    }
                ),
            ));
        }
        let allowed = |implied_tenant| {
            Ok(Allowed {
                implied_tenant,
                token: Some(token.name.clone()),
            })
        };
        if class.scope == Scope::Store {
            return allowed(None);
        }
        let org = headers
            .get("x-scope-orgid")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .filter(|v| !v.is_empty());
        match org {
            Some(org) => {
                for t in org.split('|').map(str::trim) {
                    if !token.holds(t) {
                        return Err(Denied::new(
                            StatusCode::FORBIDDEN,
                            "tenant_not_allowed",
                            format!(
                                "forbidden: token '{}' may not act for tenant '{}'",
                                token.name,
                                t.chars().take(160).collect::<String>()
                            ),
                        ));
                    }
                }
                allowed(None)
            }
            None => match token.tenants.as_slice() {
                [only] => allowed(Some(only.clone())),
                _ => Err(Denied::new(
                    StatusCode::UNAUTHORIZED,
                    "no_org_id",
                    "no org id",
                )),
            },
        }
    }

    /// The tokens in use.
    pub fn tokens(&self) -> Arc<TokenSet> {
        self.tokens.read().clone()
    }
}

impl watch::Reload for Authorizer {
    fn reload(&self) -> Result<String, String> {
        match load(&self.path) {
            Ok(set) => {
                let n = set.len();
                *self.tokens.write() = Arc::new(set);
                self.metrics
                    .security
                    .tokens
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
                self.metrics.security.reloaded("tokens", true);
                Ok(format!("{n} token(s)"))
            }
            Err(e) => {
                self.metrics.security.reloaded("tokens", false);
                Err(e.to_string())
            }
        }
    }
}

fn load(path: &std::path::Path) -> Result<TokenSet, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|error| AuthError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    TokenSet::parse(&text).map_err(|error| AuthError::Invalid {
        path: path.to_path_buf(),
        error,
    })
}

/// The token a request presents: `Authorization: Bearer <token>`, or the
/// password of `Authorization: Basic` (the user name is not checked).
pub fn credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => return None,
    };
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return (!rest.is_empty()).then(|| rest.to_vec());
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = &decoded[colon + 1..];
        return (!password.is_empty()).then(|| password.to_vec());
    }
    None
}

/// The client address of an axum request, when the server recorded it.
fn peer_of(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<crate::server::listen::Peer>>()
        .map(|c| c.0.0.ip())
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// The HTTP side: refuses a request with the decision's status and text,
/// or lets it through with the implied tenant set as `X-Scope-OrgID`.
pub async fn http_layer(
    State(auth): State<Arc<Authorizer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = peer_of(&req);
    let path = req.uri().path().to_string();
    match auth.check(req.method(), &path, req.headers(), peer, "http") {
        Ok(allowed) => {
            if let Some(t) = allowed.implied_tenant
                && let Ok(v) = HeaderValue::from_str(t.as_str())
            {
                req.headers_mut().insert("x-scope-orgid", v);
            }
            next.run(req).await
        }
        Err(d) => {
            let mut resp = (
                d.status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{}\n", d.message),
            )
                .into_response();
            if d.status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"larch\""),
                );
            }
            if let Some(s) = d.retry_after
                && let Ok(v) = HeaderValue::from_str(&s.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// The gRPC side, a tower layer of the gRPC server: refuses a call with
/// `Unauthenticated` (401), `PermissionDenied` (403) or
/// `ResourceExhausted` (429).
#[derive(Clone)]
pub struct GrpcAuthLayer {
    auth: Option<Arc<Authorizer>>,
}

impl GrpcAuthLayer {
    /// The layer; `None` lets every call through.
    pub fn new(auth: Option<Arc<Authorizer>>) -> GrpcAuthLayer {
        GrpcAuthLayer { auth }
    }
}

impl<S> tower_layer::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// See [`GrpcAuthLayer`].
#[derive(Clone)]
pub struct GrpcAuth<S> {
    auth: Option<Arc<Authorizer>>,
    inner: S,
}

type GrpcBody = tonic::body::Body;

impl<S, B> tower_service::Service<axum::http::Request<B>> for GrpcAuth<S>
where
    S: tower_service::Service<axum::http::Request<B>, Response = axum::http::Response<GrpcBody>>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<GrpcBody>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<axum::http::Response<GrpcBody>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        let Some(auth) = &self.auth else {
            return futures_util::future::Either::Left(self.inner.call(req));
        };
        let peer = req
            .extensions()
            .get::<crate::server::listen::Peer>()
            .map(|p| p.0.ip());
        let path = req.uri().path().to_string();
        match auth.check(req.method(), &path, req.headers(), peer, "grpc") {
            Ok(allowed) => {
                if let Some(t) = allowed.implied_tenant
                    && let Ok(v) = HeaderValue::from_str(t.as_str())
                {
                    req.headers_mut().insert("x-scope-orgid", v);
                }
                futures_util::future::Either::Left(self.inner.call(req))
            }
            Err(d) => {
                let status = match d.status {
                    StatusCode::FORBIDDEN => tonic::Status::permission_denied(d.message),
                    StatusCode::TOO_MANY_REQUESTS => tonic::Status::resource_exhausted(d.message),
                    _ => tonic::Status::unauthenticated(d.message),
                };
                futures_util::future::Either::Right(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokens::{Access, entry_yaml, new_token};

    struct Fixture {
        auth: Arc<Authorizer>,
        _dir: tempfile::TempDir,
        reader: String,
        writer: String,
        admin: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (reader, rh) = new_token().unwrap();
        let (writer, wh) = new_token().unwrap();
        let (admin, ah) = new_token().unwrap();
        let text = format!(
            "tokens:\n{}{}{}",
            entry_yaml("reader", &rh, &["a".into(), "b".into()], Access::Read),
            entry_yaml("writer", &wh, &["a".into()], Access::Write),
            entry_yaml("admin", &ah, &[], Access::Admin),
        );
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, text).unwrap();
        let auth = Authorizer::start(
            &AuthConfig {
                tokens_file: Some(path),
                max_failures_per_minute: 3,
                ..AuthConfig::default()
            },
            Arc::new(Metrics::new()),
        )
        .unwrap()
        .unwrap();
        Fixture {
            auth,
            _dir: dir,
            reader,
            writer,
            admin,
        }
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn bearer(t: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {t}"))
    }

    #[test]
    fn decisions() {
        let f = fixture();
        let check = |m: Method, p: &str, h: HeaderMap| f.auth.check(&m, p, &h, None, "http");
        let status =
            |r: Result<Allowed, Denied>| r.map(|_| 200).unwrap_or_else(|d| d.status.as_u16());
        let q = "/loki/api/v1/query_range";
        assert_eq!(status(check(Method::GET, q, headers(&[]))), 401);
        assert_eq!(
            status(check(Method::GET, q, headers(&[bearer("nope")]))),
            401
        );
        assert_eq!(status(check(Method::GET, "/ready", headers(&[]))), 200);
        assert_eq!(status(check(Method::GET, "/metrics", headers(&[]))), 200);
        // Several tenants: the header is needed, and must name held ones.
        let r = check(Method::GET, q, headers(&[bearer(&f.reader)]));
        assert_eq!(r.unwrap_err().message, "no org id");
        let ok = |org: &str| {
            status(check(
                Method::GET,
                q,
                headers(&[bearer(&f.reader), ("x-scope-orgid", org.into())]),
            ))
        };
        assert_eq!(ok("a"), 200);
        assert_eq!(ok("a|b"), 200);
        assert_eq!(ok("a|c"), 403);
        assert_eq!(ok("c"), 403);
        // Read-only cannot push; a writer cannot read; one tenant implied.
        assert_eq!(
            status(check(
                Method::POST,
                "/loki/api/v1/push",
                headers(&[bearer(&f.reader), ("x-scope-orgid", "a".into())])
            )),
            403
        );
        assert_eq!(
            status(check(Method::GET, q, headers(&[bearer(&f.writer)]))),
            403
        );
        let w = check(
            Method::POST,
            "/loki/api/v1/push",
            headers(&[bearer(&f.writer)]),
        )
        .unwrap();
        assert_eq!(w.implied_tenant.unwrap().as_str(), "a");
        assert_eq!(w.token.as_deref(), Some("writer"));
        // Admin: store-wide actions without a tenant, unknown paths too.
        assert_eq!(
            status(check(Method::POST, "/flush", headers(&[bearer(&f.admin)]))),
            200
        );
        assert_eq!(
            status(check(Method::POST, "/flush", headers(&[bearer(&f.reader)]))),
            403
        );
        assert_eq!(
            status(check(
                Method::GET,
                "/unknown",
                headers(&[bearer(&f.reader)])
            )),
            403
        );
        assert_eq!(
            status(check(Method::GET, "/unknown", headers(&[bearer(&f.admin)]))),
            200
        );
        // Rules: read with GET, admin otherwise; deletes admin.
        let org = ("x-scope-orgid", "a".to_string());
        assert_eq!(
            status(check(
                Method::GET,
                "/loki/api/v1/rules",
                headers(&[bearer(&f.reader), org.clone()])
            )),
            200
        );
        assert_eq!(
            status(check(
                Method::POST,
                "/loki/api/v1/rules/ns",
                headers(&[bearer(&f.reader), org.clone()])
            )),
            403
        );
        assert_eq!(
            status(check(
                Method::POST,
                "/loki/api/v1/delete",
                headers(&[bearer(&f.reader), org])
            )),
            403
        );
        // Basic auth with the token as password.
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("grafana:{}", f.reader));
        assert_eq!(ok("b"), 200);
        assert_eq!(
            status(check(
                Method::GET,
                q,
                headers(&[
                    ("authorization", format!("Basic {basic}")),
                    ("x-scope-orgid", "b".into())
                ])
            )),
            200
        );
    }

    #[test]
    fn failures_are_limited_per_address() {
        let f = fixture();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let h = headers(&[bearer("guess")]);
        let q = "/loki/api/v1/labels";
        for _ in 0..3 {
            assert_eq!(
                f.auth
                    .check(&Method::GET, q, &h, Some(a), "http")
                    .unwrap_err()
                    .status,
                401
            );
        }
        let d = f
            .auth
            .check(&Method::GET, q, &h, Some(a), "http")
            .unwrap_err();
        assert_eq!(
            (d.status, d.reason),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert!(d.retry_after.is_some());
        // Another address is not affected.
        let good = headers(&[bearer(&f.writer)]);
        assert!(
            f.auth
                .check(&Method::POST, "/loki/api/v1/push", &good, Some(b), "http")
                .is_ok()
        );
        let text = f.auth.metrics.render();
        assert!(
            text.contains(
                "larch_auth_denied_requests_total{reason=\"rate_limited\",protocol=\"http\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("larch_auth_denied_requests_total{reason=\"invalid_credentials\",protocol=\"http\"} 3"), "{text}");
        assert!(!text.contains(&f.writer), "a token in the metrics");
    }

    #[test]
    fn credentials_forms() {
        let c = |v: &str| credentials(&headers(&[("authorization", v.to_string())]));
        assert_eq!(c("Bearer abc").as_deref(), Some(&b"abc"[..]));
        assert_eq!(c("bearer  abc ").as_deref(), Some(&b"abc"[..]));
        assert_eq!(c("Bearer ").as_deref(), None);
        let b = base64::engine::general_purpose::STANDARD.encode("u:p:q");
        assert_eq!(c(&format!("Basic {b}")).as_deref(), Some(&b"p:q"[..]));
        let empty = base64::engine::general_purpose::STANDARD.encode("u:");
        assert_eq!(c(&format!("Basic {empty}")), None);
        assert_eq!(c("Basic !!!"), None);
        assert_eq!(c("Digest x"), None);
        assert_eq!(c("Bearer"), None);
    }
}
