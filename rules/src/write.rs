//! Writing rule YAML: only keys Grafana's strict decoder knows, `limit`
//! only when set and `for` only when not zero, multi-line texts as literal
//! blocks.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_saphyr::LitString;

use crate::{RuleGroup, RuleKind};

/// A text: a literal block when it spans lines.
#[derive(Serialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Block(LitString),
}

fn text(s: &str) -> Text {
    if s.contains('\n') {
        Text::Block(LitString(s.to_string()))
    } else {
        Text::Plain(s.to_string())
    }
}

#[derive(Serialize)]
struct WireGroup {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_offset: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
    #[serde(skip_serializing_if = "is_false")]
    align_evaluation_time_on_interval: bool,
    rules: Vec<WireRule>,
}

#[derive(Serialize)]
struct WireRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    expr: Text,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    r#for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, Text>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, Text>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn texts(m: &BTreeMap<String, String>) -> BTreeMap<String, Text> {
    m.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

fn wire(g: &RuleGroup) -> WireGroup {
    let nonzero = |d: larch_go::duration::Duration| {
        (d.as_nanos() != 0).then(|| d.fmt_prometheus().to_string())
    };
    WireGroup {
        name: g.name.clone(),
        interval: g.interval.map(|d| d.fmt_prometheus().to_string()),
        query_offset: g.query_offset.and_then(nonzero),
        limit: g.limit,
        align_evaluation_time_on_interval: g.align_evaluation_time_on_interval,
        rules: g
            .rules
            .iter()
            .map(|r| match &r.kind {
                RuleKind::Alerting {
                    alert,
                    r#for,
                    keep_firing_for,
                    annotations,
                } => WireRule {
                    record: None,
                    alert: Some(alert.clone()),
                    expr: text(&r.expr),
                    r#for: nonzero(*r#for),
                    keep_firing_for: nonzero(*keep_firing_for),
                    labels: texts(&r.labels),
                    annotations: texts(annotations),
                },
                RuleKind::Recording { record } => WireRule {
                    record: Some(record.clone()),
                    alert: None,
                    expr: text(&r.expr),
                    r#for: None,
                    keep_firing_for: None,
                    labels: texts(&r.labels),
                    annotations: BTreeMap::new(),
                },
            })
            .collect(),
    }
}

fn to_yaml<T: Serialize>(v: &T) -> String {
    // Serialising plain strings, maps and lists into a String cannot fail.
    serde_saphyr::to_string(v).unwrap_or_default()
}

/// One group (`GET /loki/api/v1/rules/{namespace}/{group}`).
pub fn write_group(g: &RuleGroup) -> String {
    to_yaml(&wire(g))
}

/// A rule file: `groups:` with every group.
pub fn write_file(groups: &[RuleGroup]) -> String {
    #[derive(Serialize)]
    struct File {
        groups: Vec<WireGroup>,
    }
    to_yaml(&File {
        groups: groups.iter().map(wire).collect(),
    })
}

/// Namespaces to their groups (`GET /loki/api/v1/rules`).
pub fn write_namespaces(ns: &BTreeMap<String, Vec<RuleGroup>>) -> String {
    let m: BTreeMap<&str, Vec<WireGroup>> = ns
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(wire).collect()))
        .collect();
    to_yaml(&m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_file, read_group, read_namespaces};

    const FILE: &str = r#"groups:
  - name: shop
    interval: 90s
    limit: 3
    rules:
      - alert: "Shop: errors"
        expr: |
          sum by (namespace) (count_over_time({namespace="shop"} |= "error" [1m]))
            > 1
        for: 2m
        labels: {severity: page, quoted: "a: b"}
        annotations:
          summary: "{{ $labels.namespace }}: {{ $value }}"
          description: |
            Line one.
            Line two.
      - record: shop:lines:rate1m
        expr: sum(rate({namespace="shop"}[1m]))
  - name: other
    rules: []
"#;

    #[test]
    fn round_trips() {
        let groups = read_file(FILE).unwrap();
        let text = write_file(&groups);
        assert_eq!(read_file(&text).unwrap(), groups, "{text}");
        assert!(text.contains("interval: 1m30s"), "{text}");
        assert!(!text.contains("keep_firing_for"), "{text}");
        assert!(!text.contains("limit: 0"), "{text}");
        let one = write_group(&groups[0]);
        assert_eq!(read_group(&one).unwrap(), groups[0], "{one}");
        let mut ns = BTreeMap::new();
        ns.insert("team/a".to_string(), groups.clone());
        ns.insert("b".to_string(), vec![groups[1].clone()]);
        let text = write_namespaces(&ns);
        assert_eq!(read_namespaces(&text).unwrap(), ns, "{text}");
    }
}
