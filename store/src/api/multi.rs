//! Queries over several tenants (`X-Scope-OrgID: a|b`, with
//! `multi_tenant_queries_enabled`), as Loki answers them: every stream
//! carries the label `__tenant_id__` with its tenant, and matchers on
//! that label choose the tenants read (they are taken out of the selector
//! before the tenant's own index is asked, so `{__tenant_id__="a"}` alone
//! selects every stream of `a`).
//!
//! [`MultiTenantSource`] is a [`LogSource`] over the ingester: the engine
//! runs unchanged, and grouping, filters and formatting see
//! `__tenant_id__` like any stream label.

use std::ops::ControlFlow;
use std::sync::Arc;

use larch_query::{
    Block, LabelSet, LogSource, Matcher, ScanRequest, ScanStats, SourceError, StreamInfo,
};

use crate::ingester::Ingester;
use crate::tenant::TenantId;

/// The label naming a stream's tenant in multi-tenant results.
pub const TENANT_LABEL: &str = "__tenant_id__";

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
    /// The ingester.
    pub ingester: &'a Ingester,
    /// The tenants named by the request.
    pub tenants: Vec<TenantId>,
}

impl LogSource for MultiTenantSource<'_> {
    fn streams(
        &self,
        _tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError> {
        let (by_tenant, rest): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| m.name == TENANT_LABEL);
        let rest: Vec<Matcher> = rest.into_iter().cloned().collect();
        let mut out = Vec::new();
        for t in &self.tenants {
            if !by_tenant.iter().all(|m| m.matches(t.as_str())) {
                continue;
            }
            for s in self.ingester.streams(t.as_str(), &rest, start, end)? {
                let mut labels = (*s.labels).clone();
                labels.insert(TENANT_LABEL.to_string(), t.as_str().to_string());
                out.push(StreamInfo {
                    id: labels.fingerprint(),
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
        let mut labels: LabelSet = (*stream.labels).clone();
        let Some(tenant) = labels.remove(TENANT_LABEL) else {
            return Ok(ScanStats::default());
        };
        // Only a tenant the request named (a stream listed by `streams`).
        if !self.tenants.iter().any(|t| t.as_str() == tenant) {
            return Ok(ScanStats::default());
        }
        let own = StreamInfo {
            id: labels.fingerprint(),
            labels: Arc::new(labels),
        };
        self.ingester.scan(&tenant, &own, request, visit)
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
}
