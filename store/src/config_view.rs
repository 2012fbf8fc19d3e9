//! The effective configuration as people read it: `larch-store
//! --print-config` and `GET /config` (Loki's endpoint), YAML with every
//! default filled in and secrets hidden.
//!
//! A [`ConfigView`] holds the configuration and the defaults as generic
//! values, taken once by the binary (which knows the whole file: the
//! store's keys and the embedded agent's section). `GET /config` takes
//! Loki's `mode`: none for the whole configuration, `defaults` for the
//! defaults, `diff` (Loki's code; its documentation says `diffs`, also
//! accepted) for the keys whose value differs from the default.
//!
//! Secrets: the value of every key whose name has a part (split at `_`,
//! `-` and `.`) such as `secret`, `password`, `token` or `key` is shown as
//! `<secret>` ([`is_secret_key`] has the exact list). Empty values stay
//! empty, so that a reader sees which secrets are set. Paths to files
//! holding a secret (`key_file`) are hidden too: the rule errs on the side
//! of hiding.

use serde::Serialize;
use serde_json::{Map, Value};

/// What replaces a secret's value.
pub const REDACTED: &str = "<secret>";

/// Whether a key holds a secret: one of its parts (split at `_`, `-`,
/// `.`) is `secret`, `password`, `passwd`, `token`, `key`, `credential`,
/// `credentials` or `apikey`, compared without case. So
/// `secret_access_key`, `bearer_token`, `password`, `key_file`,
/// `api_key` are secrets; `max_label_names_per_series`, `keys`,
/// `monkey` are not.
pub fn is_secret_key(name: &str) -> bool {
    name.split(['_', '-', '.']).any(|part| {
        matches!(
            part.to_ascii_lowercase().as_str(),
            "secret"
                | "password"
                | "passwd"
                | "token"
                | "key"
                | "credential"
                | "credentials"
                | "apikey"
        )
    })
}

/// `value` with every secret hidden, at any depth.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !is_empty(v) {
                        match v {
                            // A map of secrets (`headers: {Authorization: ..}`
                            // under a secret key) hides its values, keeps
                            // its keys.
                            Value::Object(inner) => Value::Object(
                                inner
                                    .iter()
                                    .map(|(k, _)| (k.clone(), Value::String(REDACTED.into())))
                                    .collect(),
                            ),
                            _ => Value::String(REDACTED.into()),
                        }
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// The keys of `current` whose value differs from `defaults` (objects
/// compared key by key; anything else whole). `None` when nothing differs.
pub fn diff(current: &Value, defaults: &Value) -> Option<Value> {
    match (current, defaults) {
        (Value::Object(c), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, v) in c {
                match d.get(k) {
                    Some(dv) => {
                        if let Some(changed) = diff(v, dv) {
                            out.insert(k.clone(), changed);
                        }
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (c, d) if c == d => None,
        (c, _) => Some(c.clone()),
    }
}

/// Which view `GET /config?mode=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The effective configuration (no `mode`).
    Current,
    /// The defaults (`mode=defaults`).
    Defaults,
    /// What differs from the defaults (`mode=diff` or `mode=diffs`).
    Diff,
}

impl Mode {
    /// Reads Loki's `mode` parameter; other values are refused with the
    /// accepted ones named.
    pub fn parse(mode: Option<&str>) -> Result<Mode, String> {
        match mode {
            None | Some("") => Ok(Mode::Current),
            Some("defaults") => Ok(Mode::Defaults),
            Some("diff") | Some("diffs") => Ok(Mode::Diff),
            Some(other) => Err(format!(
                "invalid mode {other:?}: expected defaults or diff (or none)"
            )),
        }
    }
}

/// A configuration and its defaults, ready to print.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigView {
    current: Value,
    defaults: Value,
}

/// A configuration that serde cannot turn into a value (never happens for
/// the store's types; reported rather than unwrapped).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the configuration: {0}")]
pub struct RenderError(String);

impl ConfigView {
    /// The view of `current` beside `defaults` (any serializable
    /// configuration: the store's [`Config`](crate::config::Config), or a
    /// binary's that embeds it).
    pub fn new<T: Serialize>(current: &T, defaults: &T) -> Result<ConfigView, RenderError> {
        let to_value = |v: &T| serde_json::to_value(v).map_err(|e| RenderError(e.to_string()));
        Ok(ConfigView {
            current: to_value(current)?,
            defaults: to_value(defaults)?,
        })
    }

    /// The configuration in `mode`, secrets hidden, as YAML.
    pub fn render(&self, mode: Mode) -> Result<String, RenderError> {
        let value = match mode {
            Mode::Current => self.current.clone(),
            Mode::Defaults => self.defaults.clone(),
            Mode::Diff => diff(&self.current, &self.defaults).unwrap_or(Value::Object(Map::new())),
        };
        let value = strip_nulls(redact(&value));
        if value.as_object().is_some_and(Map::is_empty) {
            return Ok("{}\n".to_string());
        }
        let mut text =
            larch_config::yaml::to_string(&value).map_err(|e| RenderError(e.to_string()))?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// `value` without object entries whose value is null (an optional key
/// that is not set reads better absent than as `null`).
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for k in [
            "secret_access_key",
            "password",
            "bearer_token",
            "key_file",
            "api_key",
            "session-token",
            "client.credentials",
            "SECRET",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "max_label_names_per_series",
            "keys",
            "monkey",
            "access_key_id_x",
            "tokens_file_path_",
        ] {
            // `access_key_id_x` has the part `key`: hidden.
            assert_eq!(is_secret_key(k), k.split('_').any(|p| p == "key"), "{k}");
        }
    }

    #[test]
    fn redaction_at_any_depth_keeps_empty_values_and_keys() {
        let v = json!({
            "a": {"secret_access_key": "s3cr3t", "endpoint": "x", "password": ""},
            "list": [{"token": "t"}],
            "headers_secret": {"Authorization": "Bearer x"},
            "n": 3
        });
        assert_eq!(
            redact(&v),
            json!({
                "a": {"secret_access_key": REDACTED, "endpoint": "x", "password": ""},
                "list": [{"token": REDACTED}],
                "headers_secret": {"Authorization": REDACTED},
                "n": 3
            })
        );
    }

    #[test]
    fn modes() {
        let mut c = Config {
            http_addr: "127.0.0.1:1".into(),
            ..Config::default()
        };
        c.limits.max_line_size = larch_config::ByteSize(1000);
        let view = ConfigView::new(&c, &Config::default()).unwrap();
        let full = view.render(Mode::Current).unwrap();
        assert!(full.contains("http_addr: 127.0.0.1:1"), "{full}");
        assert!(full.contains("grpc_addr: 0.0.0.0:9095"), "{full}");
        // Read back, the printed configuration is the configuration.
        let back: Config = larch_config::yaml::from_str(&full).unwrap();
        assert_eq!(back, c);
        let d = view.render(Mode::Diff).unwrap();
        let back: Value = larch_config::yaml::from_str(&d).unwrap();
        assert_eq!(
            back,
            json!({"http_addr": "127.0.0.1:1", "limits": {"max_line_size": "1KB"}})
        );
        let defaults = view.render(Mode::Defaults).unwrap();
        assert!(defaults.contains("http_addr: 0.0.0.0:3100"), "{defaults}");
        let same = ConfigView::new(&Config::default(), &Config::default()).unwrap();
        assert_eq!(same.render(Mode::Diff).unwrap(), "{}\n");
        assert_eq!(Mode::parse(Some("diffs")), Ok(Mode::Diff));
        assert!(Mode::parse(Some("all")).is_err());
    }
}
