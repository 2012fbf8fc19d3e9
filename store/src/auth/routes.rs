//! The one table that says what every route of the store does: read,
//! write or administer, and whether it acts for a tenant.
//!
//! The HTTP middleware and the gRPC layer both classify a request by its
//! raw path (the path the router matches, before any decoding) through
//! [`classify`]; a path that no row names is [`Action::Admin`], so a route
//! added to a router without a row here is refused to every token but an
//! administrator's. The test below reads the router's source and fails for
//! any route without a row of its own.
//!
//! A pattern is matched segment by segment: `{}` matches one segment, a
//! final `*` matches the rest of the path (nothing included).

use axum::http::Method;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Reads logs or metadata of a tenant (queries, labels, tail), or the
    /// store's own status.
    Read,
    /// Writes logs (push, OTLP, gRPC push).
    Write,
    /// Changes what the store holds or how it runs: rules, deletes,
    /// flush, shutdown. Also every path the table does not know.
    Admin,
}

impl Action {
    /// The metric and log label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Admin => "admin",
        }
    }
}

/// Whether a route acts for tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// It needs a tenant (`X-Scope-OrgID`, or the token's only one), which
    /// the token must hold.
    Tenant,
    /// It reads or does nothing tenant-specific (`/ready`, `/metrics`,
    /// build info, `format_query`, `/flush`).
    Store,
}

/// One row: a path pattern, the action of a GET or HEAD, the action of
/// any other method, the scope, and whether `a|b` tenants are accepted.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The path pattern.
    pub pattern: &'static str,
    /// GET and HEAD.
    pub get: Action,
    /// Every other method.
    pub other: Action,
    /// Tenant or store.
    pub scope: Scope,
    /// Whether several tenants (`X-Scope-OrgID: a|b`) may be named.
    pub multi_tenant: bool,
}

const fn read(pattern: &'static str, multi_tenant: bool) -> Route {
    Route {
        pattern,
        get: Action::Read,
        other: Action::Read,
        scope: Scope::Tenant,
        multi_tenant,
    }
}

const fn write(pattern: &'static str) -> Route {
    Route {
        pattern,
        get: Action::Write,
        other: Action::Write,
        scope: Scope::Tenant,
        multi_tenant: false,
    }
}

/// Reading is `read`, changing is `admin` (rules, alerts).
const fn managed(pattern: &'static str) -> Route {
    Route {
        pattern,
        get: Action::Read,
        other: Action::Admin,
        scope: Scope::Tenant,
        multi_tenant: false,
    }
}

const fn admin(pattern: &'static str, scope: Scope) -> Route {
    Route {
        pattern,
        get: Action::Admin,
        other: Action::Admin,
        scope,
        multi_tenant: false,
    }
}

const fn store(pattern: &'static str, action: Action) -> Route {
    Route {
        pattern,
        get: action,
        other: action,
        scope: Scope::Store,
        multi_tenant: false,
    }
}

/// Every route of the HTTP API and of the gRPC services. `multi_tenant`
/// marks the routes that answer for several tenants
/// (`multi_tenant_queries_enabled`); authorisation checks every tenant
/// named, whatever the route.
pub const ROUTES: &[Route] = &[
    // Writes.
    write("/loki/api/v1/push"),
    write("/api/prom/push"),
    write("/otlp/v1/logs"),
    write("/logproto.Pusher/Push"),
    // Queries (several tenants allowed where Loki allows them).
    read("/loki/api/v1/query", true),
    read("/loki/api/v1/query_range", true),
    read("/api/prom/query", true),
    read("/loki/api/v1/labels", true),
    read("/loki/api/v1/label", true),
    read("/loki/api/v1/label/{}/values", true),
    read("/api/prom/label", true),
    read("/api/prom/label/{}/values", true),
    read("/loki/api/v1/series", true),
    read("/api/prom/series", true),
    read("/loki/api/v1/index/stats", false),
    read("/loki/api/v1/index/volume", false),
    read("/loki/api/v1/index/volume_range", false),
    read("/loki/api/v1/detected_labels", false),
    read("/loki/api/v1/detected_fields", false),
    read("/loki/api/v1/detected_field/{}/values", false),
    read("/loki/api/v1/patterns", false),
    read("/loki/api/v1/tail", false),
    read("/api/prom/tail", false),
    read("/loki/api/v1/drilldown-limits", false),
    // A write node's unflushed data, asked for by read nodes: any tenant's
    // (named in the message, not in a header), so an administrator's.
    store("/larch.Querier/*", Action::Admin),
    store("/larch.Replica/*", Action::Admin),
    // Rules and alerts: read with GET, administer otherwise.
    managed("/loki/api/v1/rules"),
    managed("/loki/api/v1/rules/*"),
    managed("/api/prom/rules"),
    managed("/api/prom/rules/*"),
    managed("/prometheus/api/v1/rules"),
    managed("/prometheus/api/v1/alerts"),
    // Deletes, flush, shutdown.
    admin("/loki/api/v1/delete", Scope::Tenant),
    admin("/loki/api/v1/delete/*", Scope::Tenant),
    admin("/flush", Scope::Store),
    admin("/ingester/flush", Scope::Store),
    admin("/ingester/shutdown", Scope::Store),
    // The store's own status; `auth.unauthenticated_paths` opens them by
    // default.
    store("/ready", Action::Read),
    // Prometheus' scrape when `/metrics` is closed: any token that reads.
    store("/metrics", Action::Read),
    store("/loki/api/v1/status/buildinfo", Action::Read),
    store("/loki/api/v1/format_query", Action::Read),
    store("/grpc.health.v1.Health/*", Action::Read),
    store("/services", Action::Read),
    // The effective configuration and the runtime overrides (tenant
    // names, limits): an administrator's.
    store("/config", Action::Admin),
    store("/runtime_config", Action::Admin),
    // The web UI's page and files: public (see [`is_public`]).
    store("/", Action::Read),
    store("/ui/{}", Action::Read),
];

/// Whether `path` is served to anyone, tokens or not: the web UI's page
/// and its embedded files, which hold no data (the UI asks for the token
/// and sends it with every API call it makes).
pub fn is_public(path: &str) -> bool {
    path == "/"
        || path
            .strip_prefix("/ui/")
            .is_some_and(|f| !f.is_empty() && !f.contains('/'))
}

/// What a request is: its action, scope and whether several tenants may be
/// named. A path without a row is an administrator's, for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// The action.
    pub action: Action,
    /// The scope.
    pub scope: Scope,
    /// Whether `a|b` is accepted.
    pub multi_tenant: bool,
    /// The row's pattern, or `None` for a path without one.
    pub pattern: Option<&'static str>,
}

/// The class of `method path`.
pub fn classify(method: &Method, path: &str) -> Class {
    match lookup(path) {
        Some(r) => Class {
            action: if method == Method::GET || method == Method::HEAD {
                r.get
            } else {
                r.other
            },
            scope: r.scope,
            multi_tenant: r.multi_tenant,
            pattern: Some(r.pattern),
        },
        None => Class {
            action: Action::Admin,
            scope: Scope::Store,
            multi_tenant: false,
            pattern: None,
        },
    }
}

/// The row whose pattern matches `path`.
pub fn lookup(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| matches(r.pattern, path))
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (Some("*"), _) => return true,
            (Some("{}"), Some(seg)) if !seg.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches(
            "/loki/api/v1/label/{}/values",
            "/loki/api/v1/label/app/values"
        ));
        assert!(!matches(
            "/loki/api/v1/label/{}/values",
            "/loki/api/v1/label//values"
        ));
        assert!(!matches("/loki/api/v1/query", "/loki/api/v1/query/"));
        assert!(!matches("/loki/api/v1/query", "/loki/api/v1/query_range"));
        assert!(matches(
            "/loki/api/v1/rules/*",
            "/loki/api/v1/rules/ns/group"
        ));
        assert!(matches("/loki/api/v1/rules/*", "/loki/api/v1/rules/"));
        assert!(!matches("/loki/api/v1/rules/*", "/loki/api/v1/rulesx"));
        assert!(matches("/logproto.Pusher/*", "/logproto.Pusher/Push"));
    }

    #[test]
    fn actions_by_method() {
        let c = classify(&Method::GET, "/loki/api/v1/rules/ns");
        assert_eq!((c.action, c.scope), (Action::Read, Scope::Tenant));
        assert_eq!(
            classify(&Method::POST, "/loki/api/v1/rules/ns").action,
            Action::Admin
        );
        assert_eq!(
            classify(&Method::DELETE, "/loki/api/v1/rules/ns/g").action,
            Action::Admin
        );
        assert_eq!(
            classify(&Method::POST, "/loki/api/v1/query").action,
            Action::Read
        );
        assert_eq!(
            classify(&Method::GET, "/loki/api/v1/push").action,
            Action::Write
        );
        assert_eq!(
            classify(&Method::GET, "/loki/api/v1/delete").action,
            Action::Admin
        );
        assert_eq!(classify(&Method::POST, "/flush").scope, Scope::Store);
        // The store's metrics are a read of the store, for no tenant.
        let c = classify(&Method::GET, "/metrics");
        assert_eq!((c.action, c.scope), (Action::Read, Scope::Store));
    }

    #[test]
    fn unknown_paths_are_admin() {
        for p in [
            "/nope",
            "/loki/api/v1/push/",
            "//loki/api/v1/query",
            "/loki/api/v1/%71uery",
            "/logproto.Other/Push",
        ] {
            let c = classify(&Method::GET, p);
            assert_eq!((c.action, c.pattern), (Action::Admin, None), "{p}");
        }
    }

    /// Every `.route("…")` of the HTTP router has a row of its own.
    #[test]
    fn every_router_path_has_a_row() {
        let source = include_str!("../server/mod.rs");
        let mut n = 0;
        for part in source.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            // The router's `{name}` captures are one segment.
            let concrete: String = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            assert!(lookup(&concrete).is_some(), "route {path} has no row");
            n += 1;
        }
        assert!(n >= 25, "only {n} routes found in the router's source");
        // And the gRPC service.
        assert_eq!(
            classify(&Method::POST, "/logproto.Pusher/Push").action,
            Action::Write
        );
        let c = classify(&Method::POST, "/larch.Querier/Scan");
        assert_eq!((c.action, c.scope), (Action::Admin, Scope::Store));
    }
}
