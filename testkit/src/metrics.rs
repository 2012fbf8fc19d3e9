//! Metrics in the Prometheus text format, as a map.

use std::collections::BTreeMap;

/// The samples of a Prometheus text exposition: `name{labels}` (as
/// written) → value. Comments and unparsable lines are left out.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `GET /metrics` on 127.0.0.1:`port`, parsed; empty when it does not
/// answer 200.
pub fn scrape(port: u16) -> BTreeMap<String, f64> {
    match crate::http::get(port, "/metrics", &[]) {
        Ok(r) if r.status == 200 => parse(&r.text()),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let m = parse("# HELP x y\n# TYPE x counter\nx_total 3\ny{a=\"b c\"} 1.5\nbad\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["x_total"], 3.0);
        assert_eq!(m["y{a=\"b c\"}"], 1.5);
    }
}
