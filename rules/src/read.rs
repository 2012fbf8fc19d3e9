//! Reading rule YAML: the document into raw nodes with their positions
//! (serde-saphyr's `Spanned`), then every check into typed groups.

use std::collections::{BTreeMap, HashSet};

use larch_go::duration::{Duration, parse_prometheus_duration};
use larch_go::template::{Dialect, Template};
use larch_query::logql::{Expr, check_expr, parse_expr};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::{Position, Rule, RuleError, RuleGroup, RuleKind};
use larch_go::labels::{is_valid_label_name, is_valid_metric_name};

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Option<Vec<S<RawGroup>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<S<String>>,
    #[serde(default)]
    interval: Option<S<String>>,
    #[serde(default)]
    query_offset: Option<S<String>>,
    #[serde(default)]
    evaluation_delay: Option<S<String>>,
    #[serde(default)]
    limit: Option<S<u64>>,
    #[serde(default)]
    align_evaluation_time_on_interval: Option<S<bool>>,
    #[serde(default)]
    source_tenants: Option<S<Vec<String>>>,
    #[serde(default)]
    rules: Option<Vec<S<RawRule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<S<String>>,
    #[serde(default)]
    alert: Option<S<String>>,
    #[serde(default)]
    expr: Option<S<String>>,
    #[serde(default, rename = "for")]
    r#for: Option<S<String>>,
    #[serde(default)]
    keep_firing_for: Option<S<String>>,
    #[serde(default)]
    labels: Option<S<BTreeMap<String, String>>>,
    #[serde(default)]
    annotations: Option<S<BTreeMap<String, String>>>,
}

fn pos(l: &Location) -> Position {
    Position {
        line: l.line() as usize,
        column: l.column() as usize,
    }
}

fn at<T>(s: &S<T>) -> Position {
    pos(&s.referenced)
}

/// Parses YAML into `T`; a reader error becomes one [`RuleError`].
fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, Vec<RuleError>> {
    serde_saphyr::from_str_with_options(text, larch_config::yaml::options()).map_err(|e| {
        let position = e.location().map(|l| pos(&l)).unwrap_or_default();
        vec![RuleError::new(larch_config::yaml::describe(&e), position)]
    })
}

/// Reads a rule file (`groups: [...]`), as the ruler's directory holds one
/// per namespace and `larch rules lint` checks them. Every problem is
/// reported, sorted by position.
pub fn read_file(text: &str) -> Result<Vec<RuleGroup>, Vec<RuleError>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Option<RawFile> = parse(text)?;
    let groups = raw.and_then(|r| r.groups).unwrap_or_default();
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(groups.len());
    let mut seen = HashSet::new();
    for g in groups {
        let position = at(&g);
        match group(g.value, position, &mut errors) {
            Some(g) => {
                if !seen.insert(g.name.clone()) {
                    errors.push(RuleError::new(
                        format!("groupname: \"{}\" is repeated in the same file", g.name),
                        position,
                    ));
                }
                out.push(g);
            }
            None => continue,
        }
    }
    finish(out, errors)
}

/// Reads one group (the body of `POST /loki/api/v1/rules/{namespace}`).
pub fn read_group(text: &str) -> Result<RuleGroup, Vec<RuleError>> {
    let raw: S<RawGroup> = parse(text)?;
    let position = at(&raw);
    let mut errors = Vec::new();
    let g = group(raw.value, position, &mut errors);
    match g {
        Some(g) if errors.is_empty() => Ok(g),
        _ => Err(sorted(errors)),
    }
}

/// Reads a map of namespaces to groups (what `GET /loki/api/v1/rules`
/// answers).
pub fn read_namespaces(text: &str) -> Result<BTreeMap<String, Vec<RuleGroup>>, Vec<RuleError>> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let raw: Option<BTreeMap<String, Vec<S<RawGroup>>>> = parse(text)?;
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (ns, groups) in raw.unwrap_or_default() {
        let mut list = Vec::with_capacity(groups.len());
        for g in groups {
            let position = at(&g);
            if let Some(g) = group(g.value, position, &mut errors) {
                list.push(g);
            }
        }
        out.insert(ns, list);
    }
    finish(out, errors)
}

fn finish<T>(value: T, errors: Vec<RuleError>) -> Result<T, Vec<RuleError>> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(sorted(errors))
    }
}

fn sorted(mut errors: Vec<RuleError>) -> Vec<RuleError> {
    errors.sort_by_key(|e| e.position);
    errors
}

fn duration(s: &S<String>, key: &str, errors: &mut Vec<RuleError>) -> Option<Duration> {
    match parse_prometheus_duration(s.value.trim()) {
        Ok(d) if d.as_nanos() >= 0 => Some(d),
        Ok(_) => {
            errors.push(RuleError::new(
                format!("{key}: a duration must not be negative"),
                at(s),
            ));
            None
        }
        Err(e) => {
            errors.push(RuleError::new(format!("{key}: {}", e.0), at(s)));
            None
        }
    }
}

/// Checks a group; `None` only when the problem leaves nothing to return
/// (errors are pushed either way).
fn group(raw: RawGroup, position: Position, errors: &mut Vec<RuleError>) -> Option<RuleGroup> {
    let name = match &raw.name {
        Some(n) if !n.value.is_empty() => n.value.clone(),
        Some(n) => {
            errors.push(RuleError::new(
                "invalid rules configuration: rule group name must not be empty",
                at(n),
            ));
            String::new()
        }
        None => {
            errors.push(RuleError::new(
                "invalid rules configuration: rule group name must not be empty",
                position,
            ));
            String::new()
        }
    };
    let interval = raw
        .interval
        .as_ref()
        .and_then(|i| duration(i, "interval", errors))
        .filter(|d| d.as_nanos() > 0);
    let offset = match (&raw.query_offset, &raw.evaluation_delay) {
        (Some(o), _) | (None, Some(o)) => duration(o, "query_offset", errors),
        (None, None) => None,
    }
    .filter(|d| d.as_nanos() > 0);
    if let Some(t) = &raw.source_tenants
        && !t.value.is_empty()
    {
        errors.push(RuleError::new(
            "source_tenants: federated rule groups (rules over other tenants' data) are not supported",
            at(t),
        ));
    }
    let mut rules = Vec::new();
    for r in raw.rules.unwrap_or_default() {
        let rp = at(&r);
        if let Some(rule) = rule(r.value, rp, &name, errors) {
            rules.push(rule);
        }
    }
    Some(RuleGroup {
        name,
        interval,
        query_offset: offset,
        limit: raw.limit.map_or(0, |l| l.value),
        align_evaluation_time_on_interval: raw
            .align_evaluation_time_on_interval
            .is_some_and(|a| a.value),
        rules,
    })
}

fn rule(
    raw: RawRule,
    position: Position,
    group: &str,
    errors: &mut Vec<RuleError>,
) -> Option<Rule> {
    let before = errors.len();
    let kind_name = match (&raw.alert, &raw.record) {
        (Some(_), Some(r)) => {
            errors.push(RuleError::new(
                "only one of 'record' and 'alert' must be set",
                at(r),
            ));
            None
        }
        (None, None) => {
            errors.push(RuleError::new(
                "one of 'record' or 'alert' must be set",
                position,
            ));
            None
        }
        (Some(a), None) if a.value.trim().is_empty() => {
            errors.push(RuleError::new(
                "invalid alert name: must not be empty",
                at(a),
            ));
            None
        }
        (Some(a), None) => Some(("alert", a.value.clone())),
        (None, Some(r)) if !is_valid_metric_name(&r.value) => {
            errors.push(RuleError::new(
                format!("invalid recording rule name: {}", r.value),
                at(r),
            ));
            None
        }
        (None, Some(r)) => Some(("record", r.value.clone())),
    };
    let expr = match &raw.expr {
        Some(e) if !e.value.trim().is_empty() => {
            if let Some((kind, name)) = &kind_name {
                check_query(&e.value, kind, name, group, at(e), errors);
            }
            e.value.clone()
        }
        Some(e) => {
            errors.push(RuleError::new("field 'expr' must be set in rule", at(e)));
            String::new()
        }
        None => {
            errors.push(RuleError::new("field 'expr' must be set in rule", position));
            String::new()
        }
    };
    let labels = raw
        .labels
        .as_ref()
        .map(|l| l.value.clone())
        .unwrap_or_default();
    if let Some(l) = &raw.labels {
        for k in l.value.keys() {
            if !is_valid_label_name(k) || k == "__name__" {
                errors.push(RuleError::new(format!("invalid label name: {k}"), at(l)));
            }
        }
    }
    let annotations = raw
        .annotations
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    let kind = match kind_name {
        Some(("alert", alert)) => {
            if let Some(a) = &raw.annotations {
                for k in a.value.keys() {
                    if !is_valid_label_name(k) {
                        errors.push(RuleError::new(
                            format!("invalid annotation name: {k}"),
                            at(a),
                        ));
                    }
                }
            }
            let template_name = format!("__alert_{alert}");
            for (what, map) in [("label", &raw.labels), ("annotation", &raw.annotations)] {
                if let Some(m) = map {
                    for (k, v) in &m.value {
                        if let Err(e) = Template::parse(&template_name, v, &Dialect::PROMETHEUS) {
                            errors.push(RuleError::new(format!("{what} {k:?}: {e}"), at(m)));
                        }
                    }
                }
            }
            let r#for = raw
                .r#for
                .as_ref()
                .and_then(|f| duration(f, "for", errors))
                .unwrap_or(Duration::ZERO);
            let keep_firing_for = raw
                .keep_firing_for
                .as_ref()
                .and_then(|f| duration(f, "keep_firing_for", errors))
                .unwrap_or(Duration::ZERO);
            RuleKind::Alerting {
                alert,
                r#for,
                keep_firing_for,
                annotations,
            }
        }
        Some((_, record)) => {
            if let Some(a) = &raw.annotations {
                errors.push(RuleError::new(
                    "invalid field 'annotations' in recording rule",
                    at(a),
                ));
            }
            if let Some(f) = &raw.r#for {
                errors.push(RuleError::new(
                    "invalid field 'for' in recording rule",
                    at(f),
                ));
            }
            if let Some(f) = &raw.keep_firing_for {
                errors.push(RuleError::new(
                    "invalid field 'keep_firing_for' in recording rule",
                    at(f),
                ));
            }
            RuleKind::Recording { record }
        }
        None => return None,
    };
    if errors.len() > before {
        return None;
    }
    Some(Rule { kind, expr, labels })
}

/// Parses and checks a rule's query: a LogQL metric query.
fn check_query(
    q: &str,
    kind: &str,
    name: &str,
    group: &str,
    position: Position,
    errors: &mut Vec<RuleError>,
) {
    let result = parse_expr(q).and_then(|e| {
        check_expr(&e)?;
        Ok(e)
    });
    let message = match result {
        Ok(Expr::Sample(_)) => return,
        Ok(Expr::Log(_)) => {
            "a rule needs a metric query (such as rate({...}[5m])), not a log query".to_string()
        }
        Err(e) => e.to_string(),
    };
    errors.push(RuleError::new(
        format!("could not parse expression for {kind} '{name}' in group '{group}': {message}"),
        position,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"groups:
  - name: shop
    interval: 30s
    limit: 10
    rules:
      - alert: ShopErrors
        expr: |
          sum by (namespace) (count_over_time({namespace="shop"} |= "error" [1m])) > 1
        for: 2m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.namespace }}: {{ $value | humanize }} errors"
      - record: shop:lines:rate1m
        expr: sum(rate({namespace="shop"}[1m]))
        labels:
          team: a
"#;

    #[test]
    fn reads_a_file() {
        let groups = read_file(FILE).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.name, "shop");
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 10);
        assert_eq!(g.rules.len(), 2);
        let RuleKind::Alerting {
            alert,
            r#for,
            keep_firing_for,
            annotations,
        } = &g.rules[0].kind
        else {
            panic!("{:?}", g.rules[0]);
        };
        assert_eq!(alert, "ShopErrors");
        assert_eq!(*r#for, Duration::from_secs(120));
        assert_eq!(*keep_firing_for, Duration::from_secs(60));
        assert!(annotations["summary"].contains("$value"));
        assert!(g.rules[0].expr.ends_with("> 1\n"));
        assert_eq!(g.rules[1].name(), "shop:lines:rate1m");
        assert_eq!(g.rules[1].labels["team"], "a");
        assert_eq!(read_file("").unwrap(), vec![]);
        assert_eq!(read_file("groups: []\n").unwrap(), vec![]);
    }

    fn errors(text: &str) -> Vec<String> {
        read_file(text)
            .unwrap_err()
            .iter()
            .map(RuleError::located)
            .collect()
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let text = r#"groups:
  - name: a
    rules:
      - alert: A
        record: b
        expr: sum(rate({a="1"}[1m]))
      - expr: sum(rate({a="1"}[1m]))
      - record: "bad name"
        expr: sum(rate({a="1"}[1m]))
      - record: ok
        expr: 'sum(rate({a="1"}[1m])'
        annotations: {x: y}
        for: 1m
      - alert: B
        expr: '{a="1"}'
        labels: {"bad-label": x, __name__: y}
        annotations: {s: "{{ nosuch }}"}
  - name: a
"#;
        let got = errors(text);
        let want = [
            "5:17: only one of 'record' and 'alert' must be set",
            "7:9: one of 'record' or 'alert' must be set",
            "8:17: invalid recording rule name: bad name",
            "11:15: could not parse expression for record 'ok' in group 'a': parse error at line 1, col 22: syntax error: unexpected $end",
            "12:22: invalid field 'annotations' in recording rule",
            "13:14: invalid field 'for' in recording rule",
            "15:15: could not parse expression for alert 'B' in group 'a': a rule needs a metric query (such as rate({...}[5m])), not a log query",
            "16:17: invalid label name: __name__",
            "16:17: invalid label name: bad-label",
            "17:22: annotation \"s\": template: __alert_B:1: function \"nosuch\" not defined",
            "18:5: groupname: \"a\" is repeated in the same file",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn reader_errors_stop_at_the_first() {
        let e = errors("groups:\n  - name: a\n    rulez: []\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("3:5: unknown field `rulez`"), "{e:?}");
        let e = errors("groups:\n  - name: a\n    limit: many\n");
        assert!(e[0].starts_with("3:12: "), "{e:?}");
        let e = errors("groups: [\n");
        assert_eq!(e.len(), 1, "{e:?}");
        let e = errors("groups:\n  - name: a\n    interval: 5 minutes\n");
        assert_eq!(
            e,
            ["3:15: interval: unknown unit \" minutes\" in duration \"5 minutes\""]
        );
    }

    #[test]
    fn reads_one_group_and_namespaces() {
        let g = read_group("name: g\nrules:\n  - record: r\n    expr: sum(rate({a=\"b\"}[1m]))\n")
            .unwrap();
        assert_eq!(g.rules[0].name(), "r");
        let e = read_group("name: \"\"\n").unwrap_err();
        assert_eq!(
            e[0].message,
            "invalid rules configuration: rule group name must not be empty"
        );
        let ns = read_namespaces("ns1:\n  - name: g\n    rules: []\nns2: []\n").unwrap();
        assert_eq!(ns.len(), 2);
        assert_eq!(ns["ns1"][0].name, "g");
        assert!(read_group("- a\n").is_err());
        // Grafana's newer keys are understood.
        let g = read_group("name: g\nquery_offset: 1m\nalign_evaluation_time_on_interval: true\n")
            .unwrap();
        assert_eq!(g.query_offset, Some(Duration::from_secs(60)));
        assert!(g.align_evaluation_time_on_interval);
        let e = read_group("name: g\nsource_tenants: [a]\n").unwrap_err();
        assert!(e[0].message.contains("not supported"), "{e:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_text_reads_or_fails(text in "\\PC{0,200}") {
            let _ = read_file(&text);
            let _ = read_group(&text);
            let _ = read_namespaces(&text);
        }
    }
}
