//! Queries over several tenants (`X-Scope-OrgID: a|b`, with
//! `multi_tenant_queries_enabled`), as Loki answers them: every stream
//! carries the label `__tenant_id__` with its tenant, and matchers on
//! that label choose the tenants read (they are taken out of the selector
//! before the tenant's own index is asked, so `{__tenant_id__="a"}` alone
//! selects every stream of `a`).
//!
//! A stream that has a `__tenant_id__` label of its own keeps its value
//! under `original___tenant_id__` (Loki's `original_` prefix), and a
//! matcher on `original___tenant_id__` is asked of the tenant's index as
//! one on `__tenant_id__`, so what a result shows selects it again. (A
//! stream's own `original___tenant_id__` is then shown replaced, as Loki
//! replaces it.)
//!
//! [`MultiTenantSource`] is a [`LogSource`] over the ingester: the engine
//! runs unchanged, and grouping, filters and formatting see
//! `__tenant_id__` like any stream label.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use parking_lot::Mutex;

use larch_query::{
    Block, LabelSet, LogSource, Matcher, ScanRequest, ScanStats, SourceError, StreamInfo,
};

use super::Ingester;
use crate::tenant::TenantId;

/// The label naming a stream's tenant in multi-tenant results.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// Where a stream's own `__tenant_id__` is shown in multi-tenant results.
pub const ORIGINAL_TENANT_LABEL: &str = "original___tenant_id__";

/// A tenant's stream labels as a multi-tenant answer shows them: its own
/// `__tenant_id__` (if any) moved to `original___tenant_id__`, then
/// `__tenant_id__` set to its tenant.
pub fn shown_labels(own: &LabelSet, tenant: &str) -> LabelSet {
    let mut labels = own.clone();
    if let Some(v) = labels.remove(TENANT_LABEL) {
        labels.insert(ORIGINAL_TENANT_LABEL.to_string(), v);
    }
    labels.insert(TENANT_LABEL.to_string(), tenant.to_string());
    labels
}

/// Splits a multi-tenant query's matchers: those on `__tenant_id__`
/// (choosing tenants), and those asked of each tenant's index, where a
/// matcher on `original___tenant_id__` becomes one on the stream's own
/// `__tenant_id__`.
pub fn split_matchers(matchers: &[Matcher]) -> (Vec<Matcher>, Vec<Matcher>) {
    let mut by_tenant = Vec::new();
    let mut own = Vec::new();
    for m in matchers {
        if m.name == TENANT_LABEL {
            by_tenant.push(m.clone());
        } else if m.name == ORIGINAL_TENANT_LABEL {
            let mut m = m.clone();
            m.name = TENANT_LABEL.to_string();
            own.push(m);
        } else {
            own.push(m.clone());
        }
    }
    (by_tenant, own)
}

/// The tenants of a request: one, or several separated by `|` when
/// `multi` allows it (duplicates dropped, order kept).
pub fn parse_tenants(
    value: Option<&str>,
    auth_enabled: bool,
    multi: bool,
) -> Result<Vec<TenantId>, crate::tenant::TenantError> {
    let v = value.map(str::trim).unwrap_or("");
    if !multi || !v.contains('|') {
        return TenantId::from_header(value, auth_enabled).map(|t| vec![t]);
    }
    let mut out: Vec<TenantId> = Vec::new();
    for part in v.split('|') {
        let t = TenantId::new(part.trim())?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Several tenants of one ingester as one source.
pub struct MultiTenantSource<'a> {
    ingester: &'a Ingester,
    tenants: Vec<TenantId>,
    /// Every stream listed, by the id it is shown with: its tenant and its
    /// own labels (which the shown ones do not always give back).
    listed: Mutex<HashMap<u64, (TenantId, StreamInfo)>>,
}

impl<'a> MultiTenantSource<'a> {
    /// The streams of `tenants` in `ingester`.
    pub fn new(ingester: &'a Ingester, tenants: Vec<TenantId>) -> MultiTenantSource<'a> {
        MultiTenantSource {
            ingester,
            tenants,
            listed: Mutex::new(HashMap::new()),
        }
    }
}

impl LogSource for MultiTenantSource<'_> {
    fn streams(
        &self,
        _tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError> {
        let (by_tenant, rest) = split_matchers(matchers);
        let mut out = Vec::new();
        let mut listed = self.listed.lock();
        for t in &self.tenants {
            if !by_tenant.iter().all(|m| m.matches(t.as_str())) {
                continue;
            }
            for s in self.ingester.streams(t.as_str(), &rest, start, end)? {
                let labels = shown_labels(&s.labels, t.as_str());
                let id = labels.fingerprint();
                listed.insert(id, (t.clone(), s));
                out.push(StreamInfo {
                    id,
                    labels: Arc::new(labels),
                });
            }
        }
        Ok(out)
    }

    fn scan(
        &self,
        _tenant: &str,
        stream: &StreamInfo,
        request: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        // Only a stream `streams` listed, of a tenant the request named.
        let Some((tenant, own)) = self.listed.lock().get(&stream.id).cloned() else {
            return Ok(ScanStats::default());
        };
        self.ingester.scan(tenant.as_str(), &own, request, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_of_a_header() {
        let ids = |v: &str, multi| {
            parse_tenants(Some(v), true, multi)
                .map(|ts| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert_eq!(ids("a|b|a", true).unwrap(), ["a", "b"]);
        assert_eq!(ids("a", true).unwrap(), ["a"]);
        assert_eq!(ids("a|b", false).unwrap_err(), "multiple org IDs present");
        assert!(ids("a||b", true).is_err());
        assert!(ids("a|b/c", true).is_err());
    }

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        let mut l = LabelSet::default();
        for (n, v) in pairs {
            l.insert(n.to_string(), v.to_string());
        }
        l
    }

    #[test]
    fn a_streams_own_tenant_label_is_kept_as_original() {
        assert_eq!(
            shown_labels(&set(&[("app", "x")]), "a"),
            set(&[("app", "x"), ("__tenant_id__", "a")])
        );
        assert_eq!(
            shown_labels(&set(&[("app", "x"), ("__tenant_id__", "mine")]), "a"),
            set(&[
                ("app", "x"),
                ("__tenant_id__", "a"),
                ("original___tenant_id__", "mine")
            ])
        );
        let m = |n: &str, v: &str| Matcher::new(n, larch_query::MatchOp::Eq, v).unwrap();
        let (by_tenant, own) = split_matchers(&[
            m("app", "x"),
            m("__tenant_id__", "a"),
            m("original___tenant_id__", "mine"),
        ]);
        assert_eq!(by_tenant, [m("__tenant_id__", "a")]);
        assert_eq!(own, [m("app", "x"), m("__tenant_id__", "mine")]);
    }
}
