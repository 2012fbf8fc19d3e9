//! The tokens file (`auth.tokens_file`): who may act for which tenants,
//! and how.
//!
//! ```yaml
//! tokens:
//!   - name: agents-prod          # in logs and metrics, never the token
//!     sha256: 9f86d0...          # hex SHA-256 of the token
//!     tenants: [team-a, team-b]  # X-Scope-OrgID must name one of them
//!     access: write              # read | write | read-write | admin
//! ```
//!
//! Only hashes are stored, so the file can be read by more people than
//! the tokens themselves. A presented token is hashed and compared with
//! every entry in constant time ([`TokenSet::find`]).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::routes::Action;
use crate::tenant::TenantId;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Queries, labels, tail, reading rules.
    Read,
    /// Pushes (HTTP, OTLP, gRPC).
    Write,
    /// Both.
    ReadWrite,
    /// Everything: reads, writes, rules, deletes, flush.
    Admin,
}

impl Access {
    /// Whether this access allows `action`.
    pub fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Access::Admin, _)
                | (Access::Read | Access::ReadWrite, Action::Read)
                | (Access::Write | Access::ReadWrite, Action::Write)
        )
    }

    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read-write",
            Access::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Access, String> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            "read-write" => Ok(Access::ReadWrite),
            "admin" => Ok(Access::Admin),
            other => Err(format!(
                "unknown access {other:?}: use read, write, read-write or admin"
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    #[serde(default)]
    tenants: Vec<String>,
    access: Access,
}

/// One token of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Its name (logs, metrics, messages).
    pub name: Arc<str>,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Tenants it may act for.
    pub tenants: Vec<TenantId>,
    /// What it may do.
    pub access: Access,
}

impl Token {
    /// Whether the token holds `tenant`.
    pub fn holds(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t.as_str() == tenant)
    }
}

/// A tokens file that cannot be used; the text names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokensError(pub String);

/// The tokens of one version of the file.
#[derive(Debug, Default)]
pub struct TokenSet {
    tokens: Vec<Token>,
}

/// Longest token accepted from a client; longer ones are not hashed.
const MAX_TOKEN_LEN: usize = 4096;

impl TokenSet {
    /// Parses the file's text; every entry is checked (names unique and
    /// non-empty, hashes 64 hex digits and unique, tenants valid ids, a
    /// tenant for every token but an administrator's).
    pub fn parse(text: &str) -> Result<TokenSet, TokensError> {
        if text.trim().is_empty() {
            return Ok(TokenSet::default());
        }
        let file: File =
            larch_config::yaml::from_str(text).map_err(|e| TokensError(e.to_string()))?;
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut tokens = Vec::with_capacity(file.tokens.len());
        for (i, e) in file.tokens.into_iter().enumerate() {
            let at = |m: String| TokensError(format!("tokens[{i}] ({:?}): {m}", e.name));
            if e.name.trim().is_empty() {
                return Err(TokensError(format!("tokens[{i}]: name is empty")));
            }
            if e.name.len() > 128 || e.name.chars().any(char::is_control) {
                return Err(at(
                    "name must be at most 128 characters, without control characters".into(),
                ));
            }
            if !names.insert(e.name.clone()) {
                return Err(at("a token of this name is listed before".into()));
            }
            let sha256 = parse_hex(&e.sha256).ok_or_else(|| {
                at("sha256 must be 64 hexadecimal digits (the SHA-256 of the token)".into())
            })?;
            if !hashes.insert(sha256) {
                return Err(at("the same sha256 is listed before".into()));
            }
            let mut tenants = Vec::with_capacity(e.tenants.len());
            for t in &e.tenants {
                tenants.push(
                    TenantId::new(t).map_err(|err| {
                        at(format!("tenant {t:?} is not a valid tenant id: {err}"))
                    })?,
                );
            }
            if tenants.is_empty() && e.access != Access::Admin {
                return Err(at(
                    "tenants is empty: name the tenants this token acts for".into()
                ));
            }
            tokens.push(Token {
                name: Arc::from(e.name.as_str()),
                sha256,
                tenants,
                access: e.access,
            });
        }
        Ok(TokenSet { tokens })
    }

    /// The token whose hash is the SHA-256 of `presented`. Every entry is
    /// compared, each in constant time, so the time taken says nothing
    /// about which entry (or how much of one) matched.
    pub fn find(&self, presented: &[u8]) -> Option<&Token> {
        if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
            return None;
        }
        let digest = sha256(presented);
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&t.sha256, &digest) {
                found = Some(t);
            }
        }
        found
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // `black_box` keeps the compiler from turning the fold into an early
    // exit.
    std::hint::black_box(diff) == 0
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (`larch_` and 43 characters of URL-safe base64 of 32
/// random bytes) and its SHA-256 in hex.
pub fn new_token() -> Result<(String, String), TokensError> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| TokensError("the system's random number generator failed".into()))?;
    let token = format!(
        "larch_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = hex(&sha256(token.as_bytes()));
    Ok((token, hash))
}

/// The YAML entry of a token for the tokens file.
pub fn entry_yaml(name: &str, hash: &str, tenants: &[String], access: Access) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"));
    let tenants: Vec<String> = tenants.iter().map(|t| quote(t)).collect();
    format!(
        "  - name: {}\n    sha256: {hash}\n    tenants: [{}]\n    access: {}\n",
        quote(name),
        tenants.join(", "),
        access.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &str) -> String {
        format!("tokens:\n{entries}")
    }

    #[test]
    fn parse_and_find() {
        let (tok, hash) = new_token().unwrap();
        assert!(tok.starts_with("larch_") && tok.len() == 6 + 43, "{tok}");
        let text = file(&entry_yaml(
            "agents",
            &hash,
            &["team-a".into(), "team-b".into()],
            Access::Write,
        ));
        let set = TokenSet::parse(&text).unwrap();
        let t = set.find(tok.as_bytes()).unwrap();
        assert_eq!(&*t.name, "agents");
        assert!(t.holds("team-b") && !t.holds("team-c"));
        assert_eq!(t.access, Access::Write);
        assert!(set.find(b"larch_other").is_none());
        assert!(set.find(b"").is_none());
        assert!(set.find(&vec![b'a'; MAX_TOKEN_LEN + 1]).is_none());
        // Upper-case hex is the same hash.
        let upper = text.replace(&hash, &hash.to_uppercase());
        assert!(
            TokenSet::parse(&upper)
                .unwrap()
                .find(tok.as_bytes())
                .is_some()
        );
    }

    #[test]
    fn access_rules() {
        use Action::*;
        assert!(Access::Read.allows(Read) && !Access::Read.allows(Write));
        assert!(Access::Write.allows(Write) && !Access::Write.allows(Read));
        assert!(Access::ReadWrite.allows(Read) && Access::ReadWrite.allows(Write));
        assert!(!Access::ReadWrite.allows(Admin));
        assert!(Access::Admin.allows(Admin) && Access::Admin.allows(Read));
    }

    #[test]
    fn bad_files_name_the_entry() {
        let h = "a".repeat(64);
        let err = |t: &str| TokenSet::parse(t).unwrap_err().0;
        assert!(
            err(&file(
                "  - name: x\n    sha256: abc\n    tenants: [a]\n    access: read\n"
            ))
            .contains("64 hexadecimal")
        );
        assert!(
            err(&file(&format!(
                "  - name: x\n    sha256: {h}\n    tenants: [a]\n    access: read\n  - name: x\n    sha256: {}\n    tenants: [a]\n    access: read\n",
                "b".repeat(64)
            )))
            .contains("listed before")
        );
        assert!(
            err(&file(&format!(
                "  - name: x\n    sha256: {h}\n    tenants: []\n    access: read\n"
            )))
            .contains("tenants is empty")
        );
        assert!(
            err(&file(&format!(
                "  - name: x\n    sha256: {h}\n    tenants: [a/b]\n    access: read\n"
            )))
            .contains("not a valid tenant")
        );
        assert!(
            err(&file(&format!(
                "  - name: x\n    sha256: {h}\n    tenants: [a]\n    access: all\n"
            )))
            .contains("unknown variant")
        );
        assert!(
            err(&file(&format!(
                "  - name: x\n    sha256: {h}\n    tenant: [a]\n    access: read\n"
            )))
            .contains("unknown field")
        );
        // An administrator's token may hold no tenant (flush only).
        assert!(
            TokenSet::parse(&file(&format!(
                "  - name: x\n    sha256: {h}\n    access: admin\n"
            )))
            .is_ok()
        );
        assert!(TokenSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn known_sha256() {
        assert_eq!(
            hex(&sha256(b"test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
