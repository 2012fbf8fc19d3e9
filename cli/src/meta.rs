//! The metadata subcommands: `labels`, `series`, `stats`, `volume`,
//! `volume_range`, `detected-fields`, and `fmt`.
//!
//! Each is one request and one answer. Lists print one item per line
//! (`default`, `raw`) or one JSON value per line (`jsonl`), so that they
//! pipe into `sort`, `grep` and `jq` alike. `stats` prints logcli's
//! `{ bytes: ..., chunks: ... }` block; volumes print like metric results.
//! `fmt` formats LogQL with Larch's own parser and printer (no store
//! needed), or asks the store's `format_query` with `--server`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, path_segment};
use crate::loki::{Envelope, IndexStats, Labels};
use crate::output::{Mode, human_bytes, labels_text, write_json};
use crate::time::seconds_param;

/// A time range, Unix ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Range {
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("start", self.start.to_string()),
            ("end", self.end.to_string()),
        ]
    }
}

/// What `detected-fields` asks for.
#[derive(Debug, Clone)]
pub struct DetectedFieldsQuery {
    /// The log query whose lines are sampled.
    pub query: String,
    /// A field whose values are listed instead of the fields.
    pub field: Option<String>,
    /// Most fields or values.
    pub limit: usize,
    /// Most lines sampled.
    pub line_limit: usize,
    /// Step, ns.
    pub step: i64,
}

#[derive(Deserialize)]
struct DetectedFields {
    #[serde(default)]
    fields: Vec<DetectedField>,
}

#[derive(Deserialize, serde::Serialize)]
struct DetectedField {
    label: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    cardinality: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parsers: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct DetectedValues {
    #[serde(default)]
    values: Vec<String>,
}

/// `larch detected-fields <query> [field]`: the fields found in a sample
/// of the query's lines, as logcli prints them (`label: ...  type: ...
/// cardinality: ...`, sorted; `-o raw` the store's JSON, `-o jsonl` one
/// object per field), or the values of one field, one per line.
pub async fn detected_fields(
    client: &Client,
    q: &DetectedFieldsQuery,
    range: Range,
    mode: Mode,
    out: &mut impl Write,
) -> Result<()> {
    let mut params = vec![
        ("query", q.query.clone()),
        ("limit", q.limit.to_string()),
        ("line_limit", q.line_limit.to_string()),
        ("step", seconds_param(q.step)),
    ];
    params.extend(range.params());
    if let Some(field) = &q.field {
        let path = format!("/loki/api/v1/detected_field/{}/values", path_segment(field));
        let resp: DetectedValues = client.get_json(&path, &params).await?;
        for v in resp.values {
            match mode {
                Mode::Jsonl => writeln!(out, "{}", Value::String(v))?,
                Mode::Default | Mode::Raw => writeln!(out, "{v}")?,
            }
        }
        out.flush()?;
        return Ok(());
    }
    let raw: Value = client
        .get_json("/loki/api/v1/detected_fields", &params)
        .await?;
    if mode == Mode::Raw {
        writeln!(out, "{raw}")?;
        out.flush()?;
        return Ok(());
    }
    let resp: DetectedFields = serde_json::from_value(raw)
        .map_err(|e| anyhow!("the store's detected fields are not what Loki sends: {e}"))?;
    let mut lines: Vec<String> = resp
        .fields
        .iter()
        .map(|f| match mode {
            Mode::Jsonl => serde_json::to_string(f).unwrap_or_default(),
            _ => format!(
                "label: {}\t\ttype: {}\t\tcardinality: {}",
                f.label, f.kind, f.cardinality
            ),
        })
        .collect();
    lines.sort();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    Ok(())
}

/// `larch labels [name]`: label names, or the values of `name`.
pub async fn labels(
    client: &Client,
    name: Option<&str>,
    selector: Option<&str>,
    range: Range,
    mode: Mode,
    out: &mut impl Write,
) -> Result<()> {
    let path = match name {
        Some(n) => format!("/loki/api/v1/label/{}/values", path_segment(n)),
        None => "/loki/api/v1/labels".to_string(),
    };
    let mut params = range.params();
    if let Some(q) = selector {
        params.push(("query", q.to_string()));
    }
    let resp: Envelope<Vec<String>> = client.get_json(&path, &params).await?;
    for item in resp.data.unwrap_or_default() {
        match mode {
            Mode::Jsonl => writeln!(out, "{}", Value::String(item))?,
            Mode::Default | Mode::Raw => writeln!(out, "{item}")?,
        }
    }
    out.flush()?;
    Ok(())
}

/// `larch series <matcher>`: the label sets of matching streams.
pub async fn series(
    client: &Client,
    matcher: &str,
    range: Range,
    analyze: bool,
    mode: Mode,
    out: &mut impl Write,
) -> Result<()> {
    let mut params = vec![("match[]", matcher.to_string())];
    params.extend(range.params());
    let resp: Envelope<Vec<Labels>> = client.get_json("/loki/api/v1/series", &params).await?;
    let series = resp.data.unwrap_or_default();
    if analyze {
        write_analysis(out, &series, mode)?;
    } else {
        for s in &series {
            match mode {
                Mode::Jsonl => writeln!(out, "{}", serde_json::to_string(s)?)?,
                Mode::Default | Mode::Raw => writeln!(out, "{}", labels_text(s))?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `--analyze-labels`: per label name, how many values it takes and in
/// how many streams it appears, most values first; a table, or with
/// `jsonl` one `{"label":..,"unique_values":..,"found_in_streams":..}`
/// per name.
fn write_analysis(out: &mut impl Write, series: &[Labels], mode: Mode) -> Result<()> {
    let mut names: BTreeMap<&str, (BTreeSet<&str>, usize)> = BTreeMap::new();
    for s in series {
        for (k, v) in s {
            let e = names.entry(k).or_default();
            e.0.insert(v);
            e.1 += 1;
        }
    }
    let mut rows: Vec<(&str, usize, usize)> = names
        .iter()
        .map(|(k, (values, streams))| (*k, values.len(), *streams))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if mode == Mode::Jsonl {
        for (name, values, streams) in rows {
            let row = serde_json::json!({
                "label": name,
                "unique_values": values,
                "found_in_streams": streams,
            });
            writeln!(out, "{row}")?;
        }
        return Ok(());
    }
    writeln!(out, "Total Streams:  {}", series.len())?;
    writeln!(out, "Unique Labels:  {}", rows.len())?;
    writeln!(out)?;
    let head = ("Label Name", "Unique Values", "Found In Streams");
    let w0 = rows
        .iter()
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max(head.0.len());
    let w1 = head.1.len();
    writeln!(out, "{:w0$}  {:w1$}  {}", head.0, head.1, head.2)?;
    for (name, values, streams) in rows {
        writeln!(out, "{name:w0$}  {values:<w1$}  {streams}")?;
    }
    Ok(())
}

/// `larch stats <query>`: what a query would read, from the index.
pub async fn stats(
    client: &Client,
    query: &str,
    range: Range,
    mode: Mode,
    out: &mut impl Write,
) -> Result<()> {
    let mut params = vec![("query", query.to_string())];
    params.extend(range.params());
    let s: IndexStats = client.get_json("/loki/api/v1/index/stats", &params).await?;
    match mode {
        Mode::Jsonl => writeln!(
            out,
            r#"{{"streams":{},"chunks":{},"bytes":{},"entries":{}}}"#,
            s.streams, s.chunks, s.bytes, s.entries
        )?,
        Mode::Default | Mode::Raw => write!(
            out,
            "{{\n  bytes:   {}\n  chunks:  {}\n  streams: {}\n  entries: {}\n}}\n",
            human_bytes(s.bytes),
            s.chunks,
            s.streams,
            s.entries
        )?,
    }
    out.flush()?;
    Ok(())
}

/// Options of `volume` and `volume_range`.
#[derive(Debug, Clone, Default)]
pub struct VolumeOptions {
    /// Most series.
    pub limit: usize,
    /// Group by these labels instead of the selector's.
    pub target_labels: Vec<String>,
    /// `aggregateBy=labels` rather than per series.
    pub by_labels: bool,
    /// `volume_range`: the step, ns.
    pub step: Option<i64>,
}

#[derive(Deserialize)]
struct VolumeData {
    #[serde(default)]
    result: Value,
}

/// `larch volume <query>` (and `volume_range` when `opts.step` is set):
/// bytes per series, as a vector (matrix).
pub async fn volume(
    client: &Client,
    query: &str,
    range: Range,
    opts: &VolumeOptions,
    mode: Mode,
    out: &mut impl Write,
) -> Result<()> {
    let mut params = vec![("query", query.to_string())];
    params.extend(range.params());
    params.push(("limit", opts.limit.to_string()));
    if !opts.target_labels.is_empty() {
        params.push(("targetLabels", opts.target_labels.join(",")));
    }
    if opts.by_labels {
        params.push(("aggregateBy", "labels".to_string()));
    }
    let path = match opts.step {
        Some(step) => {
            params.push(("step", seconds_param(step)));
            "/loki/api/v1/index/volume_range"
        }
        None => "/loki/api/v1/index/volume",
    };
    let resp: Envelope<VolumeData> = client.get_json(path, &params).await?;
    let result = resp
        .data
        .map(|d| d.result)
        .filter(|r| !r.is_null())
        .unwrap_or_else(|| Value::Array(Vec::new()));
    write_json(out, mode, &result)?;
    out.flush()?;
    Ok(())
}

/// `larch fmt`: the query in canonical form, by Larch's parser, or by the
/// store when `client` is given.
pub async fn fmt(client: Option<&Client>, query: &[u8], out: &mut impl Write) -> Result<()> {
    let text = match client {
        None => {
            let expr = larch_query::logql::parse_expr_bytes(query)?;
            larch_query::logql::check_expr(&expr)?;
            expr.to_string()
        }
        Some(c) => {
            let q =
                std::str::from_utf8(query).map_err(|_| anyhow!("the query is not valid UTF-8"))?;
            let resp: Envelope<String> = c
                .get_json("/loki/api/v1/format_query", &[("query", q.to_string())])
                .await?;
            resp.data.unwrap_or_default()
        }
    };
    writeln!(out, "{}", text.trim_end())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn analysis_table() {
        let series = [
            set(&[("app", "a"), ("pod", "p1")]),
            set(&[("app", "a"), ("pod", "p2")]),
            set(&[("app", "b"), ("pod", "p3"), ("env", "dev")]),
        ];
        let mut out = Vec::new();
        write_analysis(&mut out, &series, Mode::Default).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Total Streams:  3\n\
             Unique Labels:  3\n\
             \n\
             Label Name  Unique Values  Found In Streams\n\
             pod         3              3\n\
             app         2              3\n\
             env         1              1\n"
        );
        let mut out = Vec::new();
        write_analysis(&mut out, &series[2..], Mode::Jsonl).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"found_in_streams\":1,\"label\":\"app\",\"unique_values\":1}\n\
             {\"found_in_streams\":1,\"label\":\"env\",\"unique_values\":1}\n\
             {\"found_in_streams\":1,\"label\":\"pod\",\"unique_values\":1}\n"
        );
    }

    #[tokio::test]
    async fn fmt_locally() {
        let mut out = Vec::new();
        fmt(None, br#"sum by(app)(rate({app="a"}|="x"[5m]))"#, &mut out)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sum by (app)(rate({app=\"a\"} |= \"x\"[5m]))\n"
        );
        let e = fmt(None, b"{app=", &mut Vec::new()).await.unwrap_err();
        assert!(e.to_string().starts_with("parse error"), "{e}");
    }
}
