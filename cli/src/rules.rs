//! `larch rules`: the ruler's rule groups from the terminal.
//!
//! `lint` needs no store: it reads rule files with `larch-rules`, the
//! reader the store uses, so a file that lints clean is accepted by the
//! store, and prints every problem as `file:line:column: message` on
//! stdout. `list`, `get`, `diff` and `sync` use the rules API
//! (`/loki/api/v1/rules`), so they work against Loki too. A directory for
//! `diff` and `sync` holds one rule file per namespace,
//! `<namespace>.yaml` (or `.yml`), as the ruler's own directory does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hyper::StatusCode;
use larch_rules::RuleGroup;

use crate::args::RulesCommand;
use crate::client::{Client, ClientError, path_segment};

/// Namespaces and their groups.
type Namespaces = BTreeMap<String, Vec<RuleGroup>>;

const RULES: &str = "/loki/api/v1/rules";

/// Runs one `rules` subcommand.
pub async fn run(
    cmd: &RulesCommand,
    client: impl Fn() -> std::result::Result<Client, ClientError>,
    out: &mut impl Write,
    err: &mut impl Write,
    quiet: bool,
) -> Result<()> {
    match cmd {
        RulesCommand::Lint { files } => lint(files, out, err, quiet),
        RulesCommand::List => {
            let remote = fetch(&client()?).await?;
            if remote.is_empty() && !quiet {
                writeln!(err, "no rule groups")?;
            }
            for (ns, groups) in &remote {
                for g in groups {
                    writeln!(out, "{ns}\t{}\t{} rules", g.name, g.rules.len())?;
                }
            }
            Ok(())
        }
        RulesCommand::Get { namespace, group } => {
            let c = client()?;
            let path = match group {
                Some(g) => format!("{RULES}/{}/{}", path_segment(namespace), path_segment(g)),
                None => format!("{RULES}/{}", path_segment(namespace)),
            };
            let body = c.get(&path).await?;
            out.write_all(&body)?;
            Ok(())
        }
        RulesCommand::Diff { dir } => {
            let local = read_dir(dir)?;
            let remote = fetch(&client()?).await?;
            let changes = plan(&local, &remote);
            if changes.is_empty() {
                if !quiet {
                    writeln!(err, "no differences")?;
                }
                return Ok(());
            }
            for c in &changes {
                print_change(c, out)?;
            }
            Ok(())
        }
        RulesCommand::Sync { dir, dry_run } => {
            let local = read_dir(dir)?;
            let c = client()?;
            let remote = fetch(&c).await?;
            let changes = plan(&local, &remote);
            for ch in &changes {
                writeln!(out, "{}", ch.summary())?;
                if *dry_run {
                    continue;
                }
                match ch {
                    Change::Create { ns, group } | Change::Update { ns, new: group, .. } => {
                        c.post(
                            &format!("{RULES}/{}", path_segment(ns)),
                            "application/yaml",
                            Bytes::from(larch_rules::write_group(group)),
                        )
                        .await
                        .with_context(|| format!("uploading {ns}/{}", group.name))?;
                    }
                    Change::Delete { ns, group } => {
                        c.delete(&format!(
                            "{RULES}/{}/{}",
                            path_segment(ns),
                            path_segment(&group.name)
                        ))
                        .await
                        .with_context(|| format!("deleting {ns}/{}", group.name))?;
                    }
                }
            }
            if !quiet {
                let verb = if *dry_run { "would change" } else { "changed" };
                writeln!(err, "{verb} {} group(s)", changes.len())?;
            }
            Ok(())
        }
    }
}

fn lint(
    files: &[std::path::PathBuf],
    out: &mut impl Write,
    err: &mut impl Write,
    quiet: bool,
) -> Result<()> {
    let mut problems = 0usize;
    let mut bad_files = 0usize;
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        match larch_rules::read_file(&text) {
            Ok(groups) => {
                if !quiet {
                    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                    writeln!(
                        err,
                        "{}: {} group(s), {rules} rule(s), no problems",
                        f.display(),
                        groups.len()
                    )?;
                }
            }
            Err(errors) => {
                bad_files += 1;
                problems += errors.len();
                for e in errors {
                    writeln!(out, "{}:{}", f.display(), e.located())?;
                }
            }
        }
    }
    out.flush()?;
    if problems > 0 {
        bail!("{problems} problem(s) in {bad_files} file(s)");
    }
    Ok(())
}

/// The tenant's groups in the store (none when it answers 404 `no rule
/// groups found`).
async fn fetch(c: &Client) -> Result<Namespaces> {
    let body = match c.get(RULES).await {
        Ok(b) => b,
        Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
            return Ok(Namespaces::new());
        }
        Err(e) => return Err(e.into()),
    };
    let text = std::str::from_utf8(&body).context("the rules API answered with non-UTF-8 text")?;
    larch_rules::read_namespaces(text).map_err(|errors| {
        anyhow!(
            "the store's rule groups do not read: {}",
            errors
                .iter()
                .map(|e| e.located())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// Every `<namespace>.yaml`/`.yml` of a directory; any problem stops with
/// every message.
fn read_dir(dir: &Path) -> Result<Namespaces> {
    let mut out = Namespaces::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(ns) = name
            .strip_suffix(".yaml")
            .or_else(|| name.strip_suffix(".yml"))
            .filter(|ns| !ns.is_empty() && !name.starts_with('.'))
        else {
            continue;
        };
        let path = entry.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match larch_rules::read_file(&text) {
            Ok(groups) => {
                if out.insert(ns.to_string(), groups).is_some() {
                    problems.push(format!(
                        "{}: namespace {ns:?} has both a .yaml and a .yml file",
                        path.display()
                    ));
                }
            }
            Err(errors) => {
                problems.extend(
                    errors
                        .iter()
                        .map(|e| format!("{}:{}", path.display(), e.located())),
                );
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    out.retain(|_, g| !g.is_empty());
    Ok(out)
}

/// One difference between a directory and the store.
#[derive(Debug, PartialEq)]
enum Change {
    Create {
        ns: String,
        group: RuleGroup,
    },
    Update {
        ns: String,
        old: RuleGroup,
        new: RuleGroup,
    },
    Delete {
        ns: String,
        group: RuleGroup,
    },
}

impl Change {
    fn summary(&self) -> String {
        match self {
            Change::Create { ns, group } => format!("+ {ns}/{}", group.name),
            Change::Update { ns, new, .. } => format!("~ {ns}/{}", new.name),
            Change::Delete { ns, group } => format!("- {ns}/{}", group.name),
        }
    }
}

/// What makes `remote` equal to `local`, sorted by namespace and group.
fn plan(local: &Namespaces, remote: &Namespaces) -> Vec<Change> {
    let mut out = Vec::new();
    let empty = Vec::new();
    let mut namespaces: Vec<&String> = local.keys().chain(remote.keys()).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        let l = local.get(ns).unwrap_or(&empty);
        let r = remote.get(ns).unwrap_or(&empty);
        let mut names: Vec<&str> = l.iter().chain(r).map(|g| g.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let lg = l.iter().find(|g| g.name == name);
            let rg = r.iter().find(|g| g.name == name);
            match (lg, rg) {
                (Some(a), None) => out.push(Change::Create {
                    ns: ns.clone(),
                    group: a.clone(),
                }),
                (None, Some(b)) => out.push(Change::Delete {
                    ns: ns.clone(),
                    group: b.clone(),
                }),
                (Some(a), Some(b)) if a != b => out.push(Change::Update {
                    ns: ns.clone(),
                    old: b.clone(),
                    new: a.clone(),
                }),
                _ => {}
            }
        }
    }
    out
}

fn print_change(c: &Change, out: &mut impl Write) -> Result<()> {
    writeln!(out, "{}", c.summary())?;
    let (old, new) = match c {
        Change::Create { group, .. } => (String::new(), larch_rules::write_group(group)),
        Change::Delete { group, .. } => (larch_rules::write_group(group), String::new()),
        Change::Update { old, new, .. } => {
            (larch_rules::write_group(old), larch_rules::write_group(new))
        }
    };
    for line in line_diff(&old, &new) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// A line diff (longest common subsequence): `  ` kept, `- ` removed,
/// `+ ` added. Groups are small, so the quadratic table is fine; past
/// 2,000 lines a side the texts are shown whole instead.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > 2000 || b.len() > 2000 {
        return a
            .iter()
            .map(|l| format!("- {l}"))
            .chain(b.iter().map(|l| format!("+ {l}")))
            .collect();
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn g(name: &str, expr: &str) -> RuleGroup {
        larch_rules::read_group(&format!(
            "name: {name}\nrules:\n  - record: r\n    expr: '{expr}'\n"
        ))
        .unwrap()
    }

    #[test]
    fn plans_creates_updates_deletes() {
        let e1 = "sum(rate({a=\"1\"}[1m]))";
        let e2 = "sum(rate({a=\"2\"}[1m]))";
        let local: Namespaces = [
            (
                "a".to_string(),
                vec![g("same", e1), g("changed", e2), g("new", e1)],
            ),
            ("b".to_string(), vec![g("x", e1)]),
        ]
        .into();
        let remote: Namespaces = [
            (
                "a".to_string(),
                vec![g("same", e1), g("changed", e1), g("old", e1)],
            ),
            ("c".to_string(), vec![g("gone", e1)]),
        ]
        .into();
        let p: Vec<String> = plan(&local, &remote).iter().map(Change::summary).collect();
        assert_eq!(
            p,
            ["~ a/changed", "+ a/new", "- a/old", "+ b/x", "- c/gone"]
        );
        assert!(plan(&local, &local).is_empty());
    }

    #[test]
    fn diffs_lines() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(d, ["  a", "+ x", "- b", "  c", "+ d"]);
        assert_eq!(line_diff("", "a\n"), ["+ a"]);
    }

    #[test]
    fn lint_reports_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'sum(rate({a=\"1\"}[1m])'\n",
        )
        .unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(
            &good,
            larch_rules::write_file(&[g("g", "sum(rate({a=\"1\"}[1m]))")]),
        )
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = lint(&[good.clone(), bad.clone()], &mut out, &mut err, false).unwrap_err();
        assert_eq!(e.to_string(), "1 problem(s) in 1 file(s)");
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(&format!("{}:5:15: could not parse expression for alert 'A' in group 'g': parse error at line 1, col 22", bad.display())),
            "{out}"
        );
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.contains("good.yaml: 1 group(s), 1 rule(s), no problems"),
            "{err}"
        );
        // A directory reads as namespaces.
        std::fs::remove_file(&bad).unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "x: [").unwrap();
        let ns = read_dir(dir.path()).unwrap();
        assert_eq!(ns.keys().collect::<Vec<_>>(), ["good"]);
    }
}
