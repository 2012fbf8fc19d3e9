//! YAML reading and writing for every configuration file.
//!
//! Every error names the key path (`limits.retention_period`,
//! `pipeline_stages[1].json.source`) and the line and column of the value
//! or key at fault, whatever part of the code raised it: a type mismatch,
//! an unknown key, or a value a `Deserialize` implementation refused (a
//! duration without a unit). The reader tracks the node being read, so the
//! position is that of the node even when the error is raised after it was
//! consumed.
//!
//! YAML 1.2 rules: `yes`/`no`/`on`/`off` are strings, not booleans, so a
//! boolean key given one of them is an error instead of a guess. Enums are
//! one-key maps (`- json: {…}`), which is also how pipeline stages are
//! written.
//!
//! Messages say what is wrong with the file and nothing else: they never
//! quote the file's lines (a neighbouring line may hold a secret), control
//! characters from keys and values are escaped so that an error stays one
//! line, and the reader's advice to the programmer (which option would
//! have allowed a duplicate key) is left out.

use std::borrow::Cow;

use serde::Serialize;
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

/// Writes `value` as a YAML document (`--print-config`); it reads back
/// with [`from_str`]. An error has neither path nor position.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError {
        path: String::new(),
        message: one_line(&e.to_string()),
        line: 0,
        column: 0,
    })
}

fn error(path: serde_path_to_error::Path, e: &serde_saphyr::Error) -> YamlError {
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
        message: one_line(&message(e)),
        line,
        column,
    }
}

/// What is wrong, in the reader's words for users (not its words for the
/// programmer, which name its options and Rust types), with the duplicate
/// key named plainly.
fn message(mut e: &serde_saphyr::Error) -> Cow<'_, str> {
    use serde_saphyr::{Error, MessageFormatter as _};
    // The error behind an alias or a snippet is the one to describe.
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = e {
        e = error;
    }
    match e {
        Error::DuplicateMappingKey { key: Some(k), .. } => {
            Cow::Owned(format!("duplicate mapping key: {k}"))
        }
        Error::DuplicateMappingKey { key: None, .. } => Cow::Borrowed("duplicate mapping key"),
        other => serde_saphyr::UserMessageFormatter.format_message(other),
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

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        flag: bool,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
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
        let e = from_str::<Doc>("flag: yes\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "flag: invalid boolean (true or false expected) at line 1 column 7"
        );
        assert!(from_str::<Doc>("flag: true\n").unwrap().flag);
    }

    #[test]
    fn control_characters_in_messages_are_escaped() {
        let e = from_str::<Doc>("\"a\\nb\": 1\n").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    /// Messages say what is wrong with the file, not which option of the
    /// reader would have accepted it.
    #[test]
    fn messages_give_no_advice_about_the_reader() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)] // read for its errors
        struct Named {
            name: String,
            #[serde(default)]
            flag: bool,
        }
        for (text, want) in [
            (
                "name: a\nname: b\n",
                "duplicate mapping key: name at line 2 column 1",
            ),
            (
                "x: &x {name: a, name: b}\n",
                "duplicate mapping key: name at line 1 column 17",
            ),
            (
                "name: a\n---\nname: b\n",
                "only single YAML document expected but multiple found at line 3",
            ),
            (
                "name: ~\n",
                "name: null is not allowed here at line 1 column 7",
            ),
            (
                "name: a\nflag: on\n",
                "flag: invalid boolean (true or false expected) at line 2 column 7",
            ),
        ] {
            let e = from_str::<Named>(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            for advice in [
                "Options", "Policy", "policy", "Option<", "from_str", "strict",
            ] {
                assert!(!e.contains(advice), "{text:?}: {e}");
            }
        }
    }

    #[test]
    fn enums_round_trip_as_one_key_maps() {
        let d = Doc {
            flag: false,
            items: vec![Item::Empty {}, Item::Named([("a".into(), 1)].into())],
        };
        let text = to_string(&d).unwrap();
        assert!(
            text.contains("- empty:") && text.contains("- named:"),
            "{text}"
        );
        assert_eq!(from_str::<Doc>(&text).unwrap(), d);
    }
}
