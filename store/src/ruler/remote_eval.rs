//! Remote evaluation (`ruler.evaluation.mode: remote`): each rule's query
//! is an instant query to another node's API (`GET
//! <query_frontend.address>/loki/api/v1/query`, the group's tenant as
//! `X-Scope-OrgID`), for a ruler on a node that holds no data of its own:
//! the `backend` node of the SimpleScalable mode asks the read nodes, which
//! see the bucket and the write nodes' unflushed data.
//!
//! The answer is Loki's JSON (`vector` or `scalar`), read into the same
//! samples local evaluation gives; anything else, a non-2xx answer (its
//! text is the rule's error, as a local failure's would be), a transport
//! failure or the timeout makes the rule's evaluation fail, counted and
//! shown in the rule's health like a local failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::alert::Labels;
use super::config::QueryFrontendConfig;
use super::eval::{CompiledGroup, RuleResult};
use super::http::HttpClient;

/// Most bytes of one answer read: far more than any rule's result within
/// the series limit, far less than would strain memory.
const MAX_ANSWER: usize = 16 << 20;

/// The client of one query API.
pub struct RemoteQuerier {
    query_url: String,
    token_file: Option<PathBuf>,
    timeout: Duration,
    client: HttpClient,
}

impl RemoteQuerier {
    /// A querier of `cfg.address` (its TLS settings read now).
    pub fn new(cfg: &QueryFrontendConfig) -> std::io::Result<RemoteQuerier> {
        let client = HttpClient::new(&cfg.tls(), "ruler.evaluation.query_frontend")?;
        Ok(RemoteQuerier {
            query_url: format!("{}/loki/api/v1/query", cfg.address.trim_end_matches('/')),
            token_file: cfg.token_file.clone(),
            timeout: cfg.timeout.0,
            client,
        })
    }

    /// Every rule's query at `ts_ms - query_offset`, in order.
    pub async fn query_all(&self, group: &CompiledGroup, ts_ms: i64) -> Vec<RuleResult> {
        let offset = group.group.query_offset.map_or(0, |d| d.as_millis());
        let at_ns = (ts_ms - offset).saturating_mul(1_000_000);
        let mut headers = vec![
            ("x-scope-orgid".to_string(), group.key.tenant.clone()),
            (
                "user-agent".to_string(),
                format!("larch-ruler/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        let token = match &self.token_file {
            Some(path) => match tokio::fs::read_to_string(path).await {
                Ok(t) => Some(t.trim().to_string()),
                Err(e) => {
                    let err = format!(
                        "reading ruler.evaluation.query_frontend.token_file {}: {e}",
                        path.display()
                    );
                    return group
                        .group
                        .rules
                        .iter()
                        .map(|_| (Err(err.clone()), 0.0))
                        .collect();
                }
            },
            None => None,
        };
        if let Some(t) = token {
            headers.push(("authorization".to_string(), format!("Bearer {t}")));
        }
        let mut out = Vec::with_capacity(group.group.rules.len());
        for rule in &group.group.rules {
            let started = Instant::now();
            let query: String =
                form_urlencoded(&[("query", &rule.expr), ("time", &at_ns.to_string())]);
            let url = format!("{}?{query}", self.query_url);
            let result = match self
                .client
                .get(&url, &headers, self.timeout, MAX_ANSWER)
                .await
            {
                Ok((status, body)) if status.is_success() => parse_answer(&body),
                Ok((status, body)) => {
                    let text = String::from_utf8_lossy(&body);
                    Err(format!("{}: {}", status.as_u16(), text.trim()))
                }
                Err(e) => Err(e),
            };
            out.push((result, started.elapsed().as_secs_f64()));
        }
        out
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// A sample value as Loki writes it (`"1"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
fn value(v: &serde_json::Value) -> Result<f64, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("a sample value is not a string: {v}"))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|_| format!("a sample value is not a number: {t:?}")),
    }
}

/// The samples of an instant query's JSON answer (labels sorted,
/// `__name__` dropped), as local evaluation gives them.
pub fn parse_answer(body: &[u8]) -> Result<Vec<(Labels, f64)>, String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("the query API's answer is not JSON: {e}"))?;
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"]
                .as_array()
                .ok_or("the query API's vector has no result list")?;
            let mut out = Vec::with_capacity(result.len());
            for s in result {
                let mut labels: Labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| k.as_str() != "__name__")
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.sort();
                out.push((labels, value(&s["value"][1])?));
            }
            Ok(out)
        }
        Some("scalar") => Ok(vec![(Vec::new(), value(&data["result"][1])?)]),
        _ => Err("the query did not return a vector".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_local_samples() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"b":"2","__name__":"x","a":"1"},"value":[1700000000.5,"3"]},
            {"metric":{},"value":[1700000000.5,"+Inf"]}],"stats":{}}}"#;
        let got = parse_answer(body).unwrap();
        assert_eq!(
            got[0],
            (
                vec![("a".into(), "1".into()), ("b".into(), "2".into())],
                3.0
            )
        );
        assert_eq!(got[1], (vec![], f64::INFINITY));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"NaN"]}}"#;
        assert!(parse_answer(scalar).unwrap()[0].1.is_nan());
        let streams = br#"{"status":"success","data":{"resultType":"streams","result":[]}}"#;
        assert_eq!(
            parse_answer(streams).unwrap_err(),
            "the query did not return a vector"
        );
        assert!(parse_answer(b"<html>").is_err());
        let bad = br#"{"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert!(parse_answer(bad).unwrap_err().contains("not a number"));
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            form_urlencoded(&[("query", "sum(rate({a=\"b c\"}[1m])) > 0"), ("time", "1")]),
            "query=sum%28rate%28%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29%20%3E%200&time=1"
        );
    }
}
