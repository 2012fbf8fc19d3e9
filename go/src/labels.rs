//! Prometheus' and Loki's label and metric names: what a valid name is,
//! and how a key that is not one is turned into one.
//!
//! Loki's push validation, Promtail's relabelling and stage options,
//! Prometheus' rule files and LogQL's printer all ask the same question
//! (`model.LabelName.IsValid` in its legacy, ASCII form: `[a-zA-Z_][a-zA-Z0-9_]*`),
//! and Loki's parsers, Promtail's Kubernetes discovery and Loki's OTLP
//! translation all map keys such as `app.kubernetes.io/name` to label
//! names one character at a time. Nothing here allocates except
//! [`sanitize_label_name`], which returns a new string.

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, ASCII
/// only (a name with any other byte, UTF-8 letters included, is not).
/// Names starting with `__` are valid here; where they are reserved, the
/// caller says so.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`
/// (a label name, plus `:` anywhere).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Appends `key` to `out` with every character outside `[a-zA-Z0-9_]`
/// replaced by one `_` (a multi-byte UTF-8 character too gives one `_`),
/// and a `_` first when `out` is empty and `key` starts with a digit. So
/// into an empty `out` it writes a valid label name whenever `key` is not
/// empty; appended after a valid prefix it keeps the name valid. `key` is
/// taken as it is (no trimming).
pub fn push_sanitized(key: &str, out: &mut String) {
    if out.is_empty() && key.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    out.reserve(key.len());
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}

/// `key` as a label name ([`push_sanitized`] into a new string):
/// `app.kubernetes.io/name` becomes `app_kubernetes_io_name`, `9lives`
/// becomes `_9lives`. Empty stays empty.
pub fn sanitize_label_name(key: &str) -> String {
    let mut out = String::new();
    push_sanitized(key, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn label_names() {
        for ok in [
            "a",
            "_",
            "__name__",
            "_x",
            "app_name",
            "A9",
            "__tenant_id__",
        ] {
            assert!(is_valid_label_name(ok), "{ok:?}");
        }
        for bad in [
            "", "1x", "9", "a.b", "a-b", "a:b", "é", "aé", " a", "a ", "a\0",
        ] {
            assert!(!is_valid_label_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn metric_names() {
        for ok in ["namespace:log_lines:rate1m", "_x", ":", "a:b", "up"] {
            assert!(is_valid_metric_name(ok), "{ok:?}");
        }
        for bad in ["", "1x", "a-b", "a.b", "é"] {
            assert!(!is_valid_metric_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn sanitizes() {
        assert_eq!(
            sanitize_label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "");
        assert_eq!(sanitize_label_name("é-x"), "__x");
        assert_eq!(sanitize_label_name(" a "), "_a_");
        let mut out = String::from("prefix_");
        push_sanitized("9a.b", &mut out);
        assert_eq!(out, "prefix_9a_b");
    }

    proptest! {
        #[test]
        fn names_agree_with_the_regex(name in "\\PC{0,6}|[a-zA-Z0-9_:.é-]{0,6}") {
            let label = regex::Regex::new("^[a-zA-Z_][a-zA-Z0-9_]*$").unwrap();
            let metric = regex::Regex::new("^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
            prop_assert_eq!(is_valid_label_name(&name), label.is_match(&name));
            prop_assert_eq!(is_valid_metric_name(&name), metric.is_match(&name));
        }

        #[test]
        fn sanitized_names_are_valid(key in "\\PC{1,8}|[a-zA-Z0-9_:./é-]{1,8}") {
            let s = sanitize_label_name(&key);
            prop_assert!(is_valid_label_name(&s), "{:?} -> {:?}", key, s);
            prop_assert_eq!(s.chars().count(), key.chars().count() + usize::from(key.as_bytes()[0].is_ascii_digit()));
            if is_valid_label_name(&key) {
                prop_assert_eq!(s, key);
            }
        }
    }
}
