//! The configuration file of the `larch-store` binary: every key of the
//! store's [`Config`] at the top level, as the store library reads them,
//! plus `agent:`, the embedded agent of the all-in-one mode (the keys of
//! `larch-agent`'s own file).
//!
//! The store's keys are read by [`Config`]'s own deserializer, so unknown
//! keys, bad values and their messages (key path, line and column) are
//! exactly the library's. serde's `flatten` cannot be used for this: a
//! flattened struct ignores `deny_unknown_fields`, and its errors lose
//! their positions. Instead the map of the file is handed to [`Config`]
//! through a wrapper ([`AgentTap`]) that takes the `agent` entry out as it
//! goes by; every other key, and its value, reaches [`Config`] untouched,
//! inside the YAML reader, which is what locates errors.

use std::fmt;

use larch_agent::AgentConfig;
use larch_store::config::{Config, ConfigError};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The key of the embedded agent's section.
const AGENT: &str = "agent";

/// The file's contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerConfig {
    /// The store's keys.
    pub store: Config,
    /// An agent run inside the store process (the all-in-one mode); none
    /// by default. Its `store` defaults to this store's HTTP address.
    pub agent: Option<AgentConfig>,
}

/// A configuration file as read: Larch's own, or Loki's translated (see
/// [`crate::loki`]).
#[derive(Debug, Default)]
pub struct Loaded {
    /// The configuration.
    pub config: ServerConfig,
    /// Whether the file was Loki's.
    pub loki: bool,
    /// Loki's keys that have no effect (empty for Larch's files).
    pub unused: Vec<String>,
    /// Loki's `server.log_level`, `server.log_format`.
    pub log_level: Option<String>,
    /// See `log_level`.
    pub log_format: Option<String>,
}

impl ServerConfig {
    /// Reads a YAML file; missing keys take their defaults. Errors name
    /// the key and the line.
    /// `${VAR}` references are expanded first with `expand_env`.
    pub fn from_yaml_file(
        path: &std::path::Path,
        expand_env: bool,
    ) -> Result<ServerConfig, ConfigError> {
        larch_store::config::read_yaml_file_with(path, expand_env)
    }

    /// Reads a configuration file, Larch's or Loki's: Loki's is
    /// recognised by its keys and translated; errors name the Loki key.
    /// `${VAR}` references are expanded first with `expand_env`, in either.
    pub fn load_file(path: &std::path::Path, expand_env: bool) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let text = if expand_env {
            larch_config::expand_env(&text).map_err(|error| ConfigError::Expand {
                path: path.to_path_buf(),
                error,
            })?
        } else {
            text
        };
        // Only a document that reads as a mapping with Loki's keys is
        // Loki's; anything else (also YAML that does not parse) gets the
        // store's reader and its located errors.
        let doc: Option<serde_json::Value> = serde_saphyr::from_str(&text).ok();
        let Some(doc) = doc.filter(crate::loki::is_loki) else {
            return Ok(Loaded {
                config: ServerConfig::from_yaml_file(path, expand_env)?,
                ..Loaded::default()
            });
        };
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            key: format!("{} (Loki configuration {})", key, path.display()),
            reason,
        };
        let t = crate::loki::translate(&doc).map_err(|e| invalid(e.key, e.reason))?;
        let value = serde_json::Value::Object(t.larch.clone());
        let config: ServerConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let larch = e.path().to_string();
            let key = t.loki_key(&larch).unwrap_or(&larch).to_string();
            invalid(key, e.into_inner().to_string())
        })?;
        Ok(Loaded {
            config,
            loki: true,
            unused: t.unused,
            log_level: t.log_level,
            log_format: t.log_format,
        })
    }

    /// The configuration as a generic value: the store's keys, and
    /// `agent` when there is one (what `/config` and `--print-config`
    /// print).
    pub fn view(&self) -> Result<larch_store::config_view::ConfigView, ConfigError> {
        let defaults = ServerConfig {
            store: Config::default(),
            agent: self.agent.as_ref().map(|_| AgentConfig::default()),
        };
        larch_store::config_view::ConfigView::new(&Shape(self), &Shape(&defaults)).map_err(|e| {
            ConfigError::Invalid {
                key: String::new(),
                reason: e.to_string(),
            }
        })
    }

    /// The store's checks, then the agent's; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store.validate()?;
        if let Some(agent) = &self.agent {
            agent.validate().map_err(|e| ConfigError::Invalid {
                key: AGENT.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// The file's shape for printing: the store's keys and `agent`.
struct Shape<'a>(&'a ServerConfig);

impl serde::Serialize for Shape<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let store = serde_json::to_value(&self.0.store).map_err(S::Error::custom)?;
        let serde_json::Value::Object(store) = store else {
            return Err(S::Error::custom(
                "the store's configuration is not a mapping",
            ));
        };
        let mut map = serializer.serialize_map(Some(store.len() + 1))?;
        for (k, v) in &store {
            map.serialize_entry(k, v)?;
        }
        if let Some(agent) = &self.0.agent {
            map.serialize_entry(AGENT, agent)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ServerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ServerConfig, D::Error> {
        deserializer.deserialize_map(FileVisitor)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = ServerConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of configuration keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServerConfig, A::Error> {
        let mut agent = None;
        let store = Config::deserialize(de::value::MapAccessDeserializer::new(AgentTap {
            map,
            agent: &mut agent,
        }))?;
        Ok(ServerConfig {
            store,
            agent: agent.flatten(),
        })
    }
}

/// The file's map as [`Config`] sees it: without the `agent` entry, which
/// is read into `agent` (`Some(None)` for `agent: null`).
struct AgentTap<'a, A> {
    map: A,
    agent: &'a mut Option<Option<AgentConfig>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for AgentTap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = seed;
        loop {
            match self.map.next_key_seed(KeySeed(seed))? {
                None => return Ok(None),
                Some(Key::Other(v)) => return Ok(Some(v)),
                Some(Key::Agent(unused)) => {
                    if self.agent.is_some() {
                        return Err(de::Error::duplicate_field(AGENT));
                    }
                    *self.agent = Some(self.map.next_value()?);
                    seed = unused;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key of the file: `agent`, or one of [`Config`]'s (read by its seed).
enum Key<K, V> {
    /// The agent's key; the seed is handed back for the next key.
    Agent(K),
    /// Any other key, as [`Config`]'s seed read it.
    Other(V),
}

/// Reads a key as an identifier and passes any but `agent` on to
/// [`Config`]'s seed, inside the reader's own call, so that an unknown
/// key is reported at its line and column.
struct KeySeed<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<K> {
    type Value = Key<K, K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor(self.0))
    }
}

struct KeyVisitor<K>(K);

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KeyVisitor<K> {
    type Value = Key<K, K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a configuration key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if key == AGENT {
            return Ok(Key::Agent(self.0));
        }
        let key: de::value::StrDeserializer<'_, E> = key.into_deserializer();
        self.0.deserialize(key).map(Key::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ServerConfig, String> {
        larch_config::yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    fn parse_store(yaml: &str) -> Result<Config, String> {
        larch_config::yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn store_keys_and_agent_section() {
        let c = parse(
            "http_addr: 127.0.0.1:1\nagent:\n  pods_dir: /pods\n  batch_wait: 100ms\nlimits:\n  max_line_size: 1KB\n",
        )
        .unwrap();
        assert_eq!(c.store.http_addr, "127.0.0.1:1");
        assert_eq!(c.store.limits.max_line_size.0, 1000);
        let agent = c.agent.as_ref().unwrap();
        assert_eq!(agent.pods_dir, std::path::Path::new("/pods"));
        assert_eq!(agent.batch_wait.0, std::time::Duration::from_millis(100));
        c.validate().unwrap();
        // Without `agent:`, the file reads as the store's alone.
        let text = "grpc_addr: 127.0.0.1:2\noverrides:\n  t:\n    ingestion_rate_mb: 9\n";
        assert_eq!(
            parse(text).unwrap(),
            ServerConfig {
                store: parse_store(text).unwrap(),
                agent: None
            }
        );
        assert_eq!(parse("agent: null\n").unwrap().agent, None);
        assert_eq!(
            parse("agent: {}\n").unwrap().agent,
            Some(AgentConfig::default())
        );
    }

    /// Unknown keys, bad values and their positions read exactly as the
    /// store library reports them, wherever `agent:` stands.
    #[test]
    fn store_errors_keep_their_key_and_position() {
        for bad in [
            "htp_addr: x\n",
            "http_addr: x\ndata_dir: /d\nhtp_addr: y\n",
            "limits:\n  max_lines: 1\n",
            "overrides:\n  t:\n    max_lines: 1\n",
            "limits:\n  retention_period: 1e30\n",
            "max_tenants: -1\n",
            "http_addr: [1]\n",
        ] {
            let want = parse_store(bad).unwrap_err();
            assert_eq!(parse(bad).unwrap_err(), want, "{bad:?}");
            // The same error with the agent's section before it, lines
            // shifted by its two lines.
            let shifted = parse(&format!("agent:\n  pods_dir: /p\n{bad}")).unwrap_err();
            let want_shifted = parse_store(&format!("# one\n# two\n{bad}")).unwrap_err();
            assert_eq!(shifted, want_shifted, "{bad:?}");
        }
        let e = parse("http_addr: x\nagent:\n  pods_dir: /p\nhtp_addr: y\n").unwrap_err();
        assert!(
            e.starts_with("htp_addr: unknown field `htp_addr`, expected one of http_addr"),
            "{e}"
        );
        assert!(e.ends_with("at line 4 column 1"), "{e}");
    }

    /// What the agent's section read as an ordinary struct field gives.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AgentOnly {
        #[allow(dead_code)] // read for its errors
        agent: Option<AgentConfig>,
    }

    /// Errors in the agent's section are the agent's own, with their key
    /// and position, as if it were a plain field.
    #[test]
    fn agent_errors_are_the_agents() {
        for bad in [
            "agent:\n  batch_wiat: 1s\n",
            "agent:\n  batch_wait: soon\n",
            "agent:\n  pods_dir: [1]\n",
            "agent: 3\n",
        ] {
            let want = larch_config::yaml::from_str::<AgentOnly>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(parse(bad).unwrap_err(), want, "{bad:?}");
        }
        let e = parse("http_addr: x\nagent:\n  pods_dir: /p\n  batch_wiat: 1s\n").unwrap_err();
        assert!(
            e.starts_with("agent.batch_wiat: unknown field `batch_wiat`"),
            "{e}"
        );
        assert!(e.ends_with("at line 4 column 3"), "{e}");
        let e = parse("agent: {}\nagent: {}\n").unwrap_err();
        assert!(e.contains("duplicate mapping key: agent"), "{e}");
        let e = parse("- a\n").unwrap_err();
        assert!(
            e.contains("mapping") && e.ends_with("at line 1 column 1"),
            "{e}"
        );
    }

    #[test]
    fn validation_covers_store_and_agent() {
        let c = parse("limits:\n  ingestion_rate_mb: 0\n").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("limits.ingestion_rate_mb"), "{e}");
        let c = parse("agent:\n  batch_size: 0\n").unwrap();
        let e = c.validate().unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "agent"),
            "{e}"
        );
        assert!(e.to_string().contains("batch_size"), "{e}");
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("larch.yaml");
        std::fs::write(&path, "\n  \n").unwrap();
        assert_eq!(
            ServerConfig::from_yaml_file(&path, true).unwrap(),
            ServerConfig::default()
        );
        std::fs::write(&path, "agent:\n  pods_dir: /p\nhtp: 1\n").unwrap();
        let e = ServerConfig::from_yaml_file(&path, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "invalid config file {}: htp: unknown field `htp`",
                path.display()
            )),
            "{e}"
        );
        assert!(e.ends_with("at line 3 column 1"), "{e}");
    }
}
