//! Tenant ids: from the `X-Scope-OrgID` header (gRPC metadata
//! `x-scope-orgid`), validated with Loki's rules before they name anything
//! on disk.

use std::fmt;
use std::sync::Arc;

/// The tenant of requests without `X-Scope-OrgID` when auth is disabled,
/// as in Loki.
pub const DEFAULT_TENANT: &str = "fake";

/// Longest tenant id Loki accepts.
const MAX_LEN: usize = 150;

/// A validated tenant id: 1 to 150 characters from `[A-Za-z0-9!-_.*'()]`,
/// and neither `.` nor `..`. Safe to use as a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(Arc<str>);

/// Why a tenant id was refused; texts as Loki's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// No header and auth is enabled.
    #[error("no org id")]
    Missing,
    /// Longer than 150 characters.
    #[error("tenant ID is too long: max 150 characters")]
    TooLong,
    /// `.` or `..`.
    #[error("tenant ID is '.' or '..'")]
    Unsafe,
    /// A character outside the allowed set.
    #[error("tenant ID '{0}' contains unsupported character '{1}'")]
    BadChar(String, char),
    /// Several tenants (`a|b`) where one is required (push).
    #[error("multiple org IDs present")]
    Multiple,
}

impl TenantId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<TenantId, TenantError> {
        if id.is_empty() {
            return Err(TenantError::Missing);
        }
        if id.contains('|') {
            return Err(TenantError::Multiple);
        }
        if id.len() > MAX_LEN {
            return Err(TenantError::TooLong);
        }
        if id == "." || id == ".." {
            return Err(TenantError::Unsafe);
        }
        if let Some(c) = id.chars().find(|&c| !allowed(c)) {
            return Err(TenantError::BadChar(id.to_string(), c));
        }
        Ok(TenantId(Arc::from(id)))
    }

    /// The tenant of a request: the header value if present, else
    /// [`DEFAULT_TENANT`] unless `auth_enabled`.
    pub fn from_header(value: Option<&str>, auth_enabled: bool) -> Result<TenantId, TenantError> {
        match value.map(str::trim) {
            Some(v) if !v.is_empty() => TenantId::new(v),
            _ if auth_enabled => Err(TenantError::Missing),
            _ => Ok(TenantId(Arc::from(DEFAULT_TENANT))),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(TenantId::new("team-a_1.(x)*'!").is_ok());
        assert_eq!(TenantId::new(".."), Err(TenantError::Unsafe));
        assert_eq!(
            TenantId::new("a/b"),
            Err(TenantError::BadChar("a/b".into(), '/'))
        );
        assert_eq!(TenantId::new(&"x".repeat(151)), Err(TenantError::TooLong));
        assert_eq!(TenantId::new("a|b"), Err(TenantError::Multiple));
    }

    #[test]
    fn header_defaults() {
        assert_eq!(TenantId::from_header(None, false).unwrap().as_str(), "fake");
        assert_eq!(
            TenantId::from_header(Some(" "), true),
            Err(TenantError::Missing)
        );
        assert_eq!(
            TenantId::from_header(Some("t1"), true).unwrap().as_str(),
            "t1"
        );
    }
}
