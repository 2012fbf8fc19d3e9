//! Relabel rules, with Prometheus' and Promtail's semantics.
//!
//! Rules run once per file when it is opened, over the file's target
//! labels: the path labels (`namespace`, `pod`, `container`, `node_name`),
//! and, with Kubernetes metadata, `__meta_kubernetes_*` labels. A rule with
//! action `drop` (or a failed `keep`) means the file is not tailed at all.
//! After the rules, labels starting with `__` are removed.
//!
//! Supported actions: `replace` (default), `keep`, `drop`, `labelmap`,
//! `labeldrop`, `labelkeep`, `lowercase`, `uppercase`, `hashmod`. Regexes
//! are fully anchored as in Prometheus; replacements use `$1`, `${1}` or
//! `${name}`.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::Labels;
use larch_go::labels::is_valid_label_name;

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` to `replacement` expanded with the match.
    #[default]
    Replace,
    /// Keep the target only if the joined source labels match.
    Keep,
    /// Drop the target if the joined source labels match.
    Drop,
    /// Copy every label whose name matches to the name `replacement`.
    Labelmap,
    /// Remove every label whose name matches.
    Labeldrop,
    /// Remove every label whose name does not match.
    Labelkeep,
    /// Set `target_label` to the lower-cased joined source labels.
    Lowercase,
    /// Set `target_label` to the upper-cased joined source labels.
    Uppercase,
    /// Set `target_label` to a hash of the joined source labels modulo
    /// `modulus`.
    Hashmod,
}

fn default_separator() -> String {
    ";".into()
}
fn default_regex() -> String {
    "(.*)".into()
}
fn default_replacement() -> String {
    "$1".into()
}

/// One relabel rule as written in YAML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values. Default `;`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Anchored regular expression. Default `(.*)`.
    #[serde(default = "default_regex")]
    pub regex: String,
    /// Label written by `replace`, `lowercase`, `uppercase`, `hashmod`.
    #[serde(default)]
    pub target_label: String,
    /// Replacement text. Default `$1`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// The action. Default `replace`.
    #[serde(default)]
    pub action: RelabelAction,
    /// Divisor of `hashmod`.
    #[serde(default)]
    pub modulus: u64,
}

struct Rule {
    cfg: RelabelConfig,
    regex: Regex,
}

/// Compiled relabel rules.
pub struct Relabeler {
    rules: Vec<Rule>,
}

impl Relabeler {
    /// Compiles and checks the rules.
    pub fn new(configs: &[RelabelConfig]) -> Result<Self> {
        let mut rules = Vec::with_capacity(configs.len());
        for (i, cfg) in configs.iter().enumerate() {
            let err = |m: String| Error::Config(format!("relabel_configs[{i}]: {m}"));
            // Prometheus' relabel regexes are RE2, anchored as `^(?s:…)$`.
            let regex = larch_go::regex::compile(&cfg.regex, true)
                .map_err(|e| err(format!("invalid regex {:?}: {e}", cfg.regex)))?;
            match cfg.action {
                RelabelAction::Replace
                | RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::Hashmod
                    if cfg.target_label.is_empty() =>
                {
                    return Err(err(format!("action {:?} needs target_label", cfg.action)));
                }
                RelabelAction::Keep | RelabelAction::Drop if cfg.source_labels.is_empty() => {
                    return Err(err(format!("action {:?} needs source_labels", cfg.action)));
                }
                _ => {}
            }
            if cfg.action == RelabelAction::Hashmod && cfg.modulus == 0 {
                return Err(err("action hashmod needs a modulus greater than 0".into()));
            }
            if matches!(
                cfg.action,
                RelabelAction::Lowercase | RelabelAction::Uppercase
            ) && !is_valid_label_name(&cfg.target_label)
            {
                return Err(err(format!("invalid target_label {:?}", cfg.target_label)));
            }
            rules.push(Rule {
                cfg: cfg.clone(),
                regex,
            });
        }
        Ok(Relabeler { rules })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules to `labels`; returns false if the target is dropped.
    pub fn apply(&self, labels: &mut Labels) -> bool {
        for rule in &self.rules {
            let cfg = &rule.cfg;
            let input = || {
                let mut s = String::new();
                for (i, name) in cfg.source_labels.iter().enumerate() {
                    if i > 0 {
                        s.push_str(&cfg.separator);
                    }
                    s.push_str(labels.get(name).unwrap_or(""));
                }
                s
            };
            match cfg.action {
                RelabelAction::Keep => {
                    if !rule.regex.is_match(&input()) {
                        return false;
                    }
                }
                RelabelAction::Drop => {
                    if rule.regex.is_match(&input()) {
                        return false;
                    }
                }
                RelabelAction::Replace => {
                    let value = input();
                    let Some(caps) = rule.regex.captures(&value) else {
                        continue;
                    };
                    let mut target = String::new();
                    caps.expand(&cfg.target_label, &mut target);
                    let mut result = String::new();
                    caps.expand(&cfg.replacement, &mut result);
                    if !is_valid_label_name(&target) {
                        continue;
                    }
                    if result.is_empty() {
                        labels.remove(&target);
                    } else {
                        labels.set(&target, &result);
                    }
                }
                RelabelAction::Lowercase => {
                    let v = input().to_lowercase();
                    labels.set(&cfg.target_label, &v);
                }
                RelabelAction::Uppercase => {
                    let v = input().to_uppercase();
                    labels.set(&cfg.target_label, &v);
                }
                RelabelAction::Hashmod => {
                    let h = xxhash_rust::xxh3::xxh3_64(input().as_bytes()) % cfg.modulus;
                    labels.set(&cfg.target_label, &h.to_string());
                }
                RelabelAction::Labelmap => {
                    let mut add: Vec<(String, String)> = Vec::new();
                    for (n, v) in labels.iter() {
                        if let Some(caps) = rule.regex.captures(n) {
                            let mut name = String::new();
                            caps.expand(&cfg.replacement, &mut name);
                            if is_valid_label_name(&name) {
                                add.push((name, v.to_string()));
                            }
                        }
                    }
                    for (n, v) in add {
                        labels.set(&n, &v);
                    }
                }
                RelabelAction::Labeldrop => labels.retain(|n, _| !rule.regex.is_match(n)),
                RelabelAction::Labelkeep => labels.retain(|n, _| rule.regex.is_match(n)),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Relabeler {
        let cfg: Vec<RelabelConfig> = larch_config::yaml::from_str(yaml).unwrap();
        Relabeler::new(&cfg).unwrap()
    }

    #[test]
    fn replace_keep_drop_labelmap() {
        let r = rules(
            r#"
- source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name, __meta_kubernetes_pod_label_app]
  regex: ';*([^;]+);*'
  target_label: app
- action: labelmap
  regex: __meta_kubernetes_pod_label_(.+)
- source_labels: [namespace]
  regex: kube-.*
  action: drop
- source_labels: [namespace, app]
  separator: /
  target_label: job
"#,
        );
        let mut l = Labels::from_pairs([
            ("namespace", "shop"),
            ("__meta_kubernetes_pod_label_app", "cart"),
        ]);
        assert!(r.apply(&mut l));
        assert_eq!(l.get("app"), Some("cart"));
        assert_eq!(l.get("job"), Some("shop/cart"));
        assert_eq!(l.get("app"), Some("cart"));
        let mut sys = Labels::from_pairs([("namespace", "kube-system")]);
        assert!(!r.apply(&mut sys));
    }

    #[test]
    fn keep_and_labeldrop_and_case() {
        let r = rules(
            r#"
- source_labels: [container]
  regex: app|sidecar
  action: keep
- action: labeldrop
  regex: tmp_.*
- source_labels: [container]
  target_label: upper
  action: uppercase
- source_labels: [container]
  target_label: shard
  action: hashmod
  modulus: 4
"#,
        );
        let mut l = Labels::from_pairs([("container", "app"), ("tmp_x", "1")]);
        assert!(r.apply(&mut l));
        assert_eq!(l.get("tmp_x"), None);
        assert_eq!(l.get("upper"), Some("APP"));
        assert!(l.get("shard").unwrap().parse::<u64>().unwrap() < 4);
        let mut other = Labels::from_pairs([("container", "db")]);
        assert!(!r.apply(&mut other));
    }

    #[test]
    fn empty_replacement_removes_and_bad_configs_fail() {
        let r = rules("- source_labels: [a]\n  regex: x\n  target_label: b\n  replacement: ''\n");
        let mut l = Labels::from_pairs([("a", "x"), ("b", "1")]);
        assert!(r.apply(&mut l));
        assert_eq!(l.get("b"), None);
        let bad: Vec<RelabelConfig> =
            larch_config::yaml::from_str("- regex: '('\n  target_label: x\n").unwrap();
        let e = Relabeler::new(&bad).err().unwrap().to_string();
        assert!(
            e.contains("relabel_configs[0]") && e.contains("invalid regex"),
            "{e}"
        );
        let bad: Vec<RelabelConfig> = larch_config::yaml::from_str("- action: keep\n").unwrap();
        assert!(Relabeler::new(&bad).is_err());
        assert!(larch_config::yaml::from_str::<Vec<RelabelConfig>>("- actoin: keep\n").is_err());
    }
}
