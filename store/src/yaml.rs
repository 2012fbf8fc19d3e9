//! YAML reading for the store's configuration file.
//!
//! Every error names the key path (`limits.retention_period`) and the line
//! and column of the value or key at fault, whatever part of the code
//! raised it: a type mismatch, an unknown key, or a value our own
//! `Deserialize` implementations refused (a duration without a unit). The
//! reader tracks the node being read, so the position is that of the node
//! even when the error is raised after it was consumed.
//!
//! YAML 1.2 rules: `yes`/`no`/`on`/`off` are strings, not booleans, so a
//! boolean key given one of them is an error instead of a guess. Error
//! messages never quote the file's lines (a neighbouring line may hold a
//! secret).
//!
//! The agent reads its files the same way (`larch_agent`'s `yaml`
//! module); the two are kept alike.

use serde::de::DeserializeOwned;

/// A YAML document that does not fit the expected type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}{}", path_prefix(.path), position(*.line, *.column))]
pub struct YamlError {
    /// The key path of the value at fault (`labels.stream`,
    /// `pipeline_stages[0].json`); empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Line of the value at fault (1-based); 0 if unknown.
    pub line: usize,
    /// Column of the value at fault (1-based); 0 if unknown.
    pub column: usize,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line} column {column}")
    }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Reads `text` as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut track = serde_path_to_error::Track::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    })
    .map_err(|e| error(track.path(), &e))
}

fn error(path: serde_path_to_error::Path, e: &serde_saphyr::Error) -> YamlError {
    use serde_saphyr::MessageFormatter as _;
    let e = e.without_snippet();
    let known = path
        .iter()
        .all(|s| !matches!(s, serde_path_to_error::Segment::Unknown));
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((0, 0));
    YamlError {
        path: if known && path.iter().next().is_some() {
            one_line(&path.to_string())
        } else {
            String::new()
        },
        message: one_line(&serde_saphyr::DefaultMessageFormatter.format_message(e)),
        line,
        column,
    }
}

/// `s` with control characters escaped: paths and messages quote keys and
/// values from the file, and an error stays one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        flag: bool,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Item {
        Named(BTreeMap<String, u32>),
        Empty {},
    }

    #[test]
    fn errors_carry_the_path_and_the_position() {
        let e = from_str::<Doc>("flag: true\nflgx: 1\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = from_str::<Doc>("items:\n  - empty: {}\n  - named:\n      a: 1\n      b: x\n")
            .unwrap_err();
        assert_eq!(e.path, "items[1].named.b");
        assert_eq!((e.line, e.column), (5, 10), "{e}");
        assert!(
            e.to_string().starts_with("items[1].named.b: ")
                && e.to_string().ends_with(" at line 5 column 10"),
            "{e}"
        );
    }

    #[test]
    fn yaml_1_1_booleans_are_not_booleans() {
        assert!(from_str::<Doc>("flag: yes\n").is_err());
        assert!(from_str::<Doc>("flag: true\n").unwrap().flag);
    }

    #[test]
    fn control_characters_in_messages_are_escaped() {
        let e = from_str::<Doc>("\"a\\nb\": 1\n").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
