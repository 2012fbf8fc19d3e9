//! `larch query` and `larch instant-query`: every output mode, label
//! options, direction, limits, paging, metric results, colours, stats.

use crate::fixture::fixture;
use crate::support::{SEC, StoreExt, base_time, secs, start_store, start_store_with};

#[test]
fn default_output_factors_out_common_labels() {
    let f = fixture();
    let r = f.ranged(&["query", r#"{app="api"}"#]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "{} {{pod=\"a\"}} padded line\n\
             {} {{pod=\"b\"}} GET /users 404 error\n\
             {} {{pod=\"a\"}} GET /orders 500 error\n\
             {} {{pod=\"b\"}} POST /login 200\n\
             {} {{pod=\"a\"}} GET /users 200\n",
            f.t(5),
            f.t(4),
            f.t(3),
            f.t(2),
            f.t(1)
        )
    );
    // The request (replayable with curl), then the common labels.
    assert_eq!(
        r.stderr,
        format!(
            "{}/loki/api/v1/query_range?query=%7Bapp%3D%22api%22%7D&limit=30&start={}&end={}&direction=backward\n\
             Common labels: {{app=\"api\", env=\"prod\", service_name=\"api\"}}\n",
            f.store.addr(),
            f.base,
            f.base + 60 * SEC
        )
    );

    // Streams of different label sets are padded to one width; -q leaves
    // stderr empty.
    let r = f
        .ranged(&["query", "-q", "--limit", "3", r#"{env=~"prod|dev"}"#])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "");
    let web = r#"{app="web", env="dev", service_name="web"}"#;
    let (a, b) = (
        r#"{app="api", env="prod", pod="a", service_name="api"}"#,
        r#"{app="api", env="prod", pod="b", service_name="api"}"#,
    );
    let w = a.len();
    assert_eq!(
        r.stdout,
        format!(
            "{} {web:w$} rendered page\n{} {a} padded line\n{} {b} GET /users 404 error\n",
            f.t(6),
            f.t(5),
            f.t(4)
        )
    );
}

#[test]
fn raw_jsonl_and_label_options() {
    let f = fixture();
    let q = r#"{app="api"} |= "error""#;

    let r = f
        .ranged(&["query", "-q", "-o", "raw", "--forward", q])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "GET /orders 500 error\nGET /users 404 error\n");

    // Raw keeps the line as stored, spaces included.
    let r = f
        .ranged(&["query", "-q", "-o", "raw", r#"{pod="a"} |= "padded""#])
        .run();
    assert_eq!(r.stdout, "  padded line  \n");

    let r = f.ranged(&["query", "-q", "-o", "jsonl", q]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "{{\"labels\":{{\"app\":\"api\",\"env\":\"prod\",\"pod\":\"b\",\"service_name\":\"api\"}},\"line\":\"GET /users 404 error\",\"timestamp\":\"{}\"}}\n\
             {{\"labels\":{{\"app\":\"api\",\"env\":\"prod\",\"pod\":\"a\",\"service_name\":\"api\"}},\"line\":\"GET /orders 500 error\",\"timestamp\":\"{}\"}}\n",
            f.t(4),
            f.t(3)
        )
    );

    let r = f
        .ranged(&[
            "query",
            "-q",
            "-o",
            "jsonl",
            "--no-labels",
            "--limit",
            "1",
            q,
        ])
        .run();
    assert_eq!(
        r.stdout,
        format!(
            "{{\"line\":\"GET /users 404 error\",\"timestamp\":\"{}\"}}\n",
            f.t(4)
        )
    );

    let r = f.ranged(&["query", "-q", "--no-labels", q]).run();
    assert_eq!(
        r.stdout,
        format!(
            "{} GET /users 404 error\n{} GET /orders 500 error\n",
            f.t(4),
            f.t(3)
        )
    );

    let r = f
        .ranged(&[
            "query",
            "-q",
            "--include-common-labels",
            "--exclude-label",
            "env",
            q,
        ])
        .run();
    assert_eq!(
        r.stdout,
        format!(
            "{} {{app=\"api\", pod=\"b\", service_name=\"api\"}} GET /users 404 error\n\
             {} {{app=\"api\", pod=\"a\", service_name=\"api\"}} GET /orders 500 error\n",
            f.t(4),
            f.t(3)
        )
    );

    let r = f
        .ranged(&[
            "query",
            "--include-label",
            "app",
            "--include-label",
            "pod",
            q,
        ])
        .run();
    assert_eq!(
        r.stdout,
        format!(
            "{} {{app=\"api\", pod=\"b\"}} GET /users 404 error\n\
             {} {{app=\"api\", pod=\"a\"}} GET /orders 500 error\n",
            f.t(4),
            f.t(3)
        )
    );
    assert!(
        r.stderr
            .ends_with("Common labels: {env=\"prod\", service_name=\"api\"}\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn colours_only_when_asked_or_on_a_terminal() {
    let f = fixture();
    let q = r#"{app="web"}"#;
    let r = f.ranged(&["query", "-q", "--color", "always", q]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let (line, rest) = r.stdout.split_once(' ').unwrap();
    assert_eq!(line, format!("\x1b[34m{}\x1b[0m", f.t(6)));
    assert!(
        rest.starts_with("\x1b[") && rest.ends_with("{}\x1b[0m rendered page\n"),
        "{rest:?}"
    );
    // Piped stdout is not a terminal: no colours by default.
    let r = f.ranged(&["query", "-q", q]).run();
    assert_eq!(r.stdout, format!("{} {{}} rendered page\n", f.t(6)));
}

#[test]
fn paging_goes_past_the_servers_maximum() {
    // The store allows 5 lines per query; 23 lines, two per timestamp
    // (the last one alone), so batches end in the middle of a timestamp.
    let store = start_store_with("limits:\n  max_entries_limit_per_query: 5\n");
    let b = base_time();
    let lines: Vec<(i64, String)> = (0..23)
        .map(|i| (b + (i / 2) as i64 * SEC, format!("line {i:02}")))
        .collect();
    let values: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    store.push(None, &[(&[("app", "page")], &values)]);
    let addr = store.addr();
    let (from, to) = (secs(b), secs(b + 60 * SEC));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "query", "--addr", &addr, "--from", &from, "--to", &to, "-o", "raw",
        ];
        args.extend_from_slice(extra);
        args.push(r#"{app="page"}"#);
        crate::support::larch(&args).run()
    };
    let all: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();

    // Everything, oldest first, in batches of 5: each line exactly once.
    let r = run(&["-q", "--forward", "--limit", "0", "--batch", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), all);

    // Newest first, 13 lines: exactly the 13 newest, newest first. Lines
    // sharing a timestamp come in the store's order, so compare as sets.
    let r = run(&["-q", "--limit", "13", "--batch", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut got: Vec<&str> = r.stdout.lines().collect();
    let mut want: Vec<&str> = all[10..].iter().map(String::as_str).collect();
    assert_eq!(got.len(), 13, "{got:?}");
    assert_eq!(got[0], "line 22");
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Every request is echoed on stderr, and --progress reports between
    // batches even though stderr is a pipe.
    let r = run(&["--forward", "--limit", "0", "--batch", "5", "--progress"]);
    assert_eq!(r.code, 0, "{r:?}");
    let requests = r.stderr.lines().filter(|l| l.starts_with(&addr)).count();
    let progress: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains(" lines from "))
        .collect();
    // 5 new lines, then 4 new per batch (one repeated at the boundary).
    assert_eq!(requests, 6, "{}", r.stderr);
    assert_eq!(progress.len(), 5, "{}", r.stderr);
    assert!(
        progress[0].starts_with("5 lines from 1 request, reached "),
        "{progress:?}"
    );
    assert!(
        progress[1].starts_with("9 lines from 2 requests, reached "),
        "{progress:?}"
    );
    // Without --progress and with stderr piped: no progress lines.
    let r = run(&["--forward", "--limit", "0", "--batch", "5"]);
    assert!(!r.stderr.contains(" lines from "), "{}", r.stderr);

    // Asking for more than the server allows in one request is the
    // server's error, with its text.
    let r = run(&["-q", "--limit", "20", "--batch", "10"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "Error: 400 Bad Request: max entries limit per query exceeded, limit > max_entries_limit_per_query (10 > 5)\n"
    );
}

#[test]
fn metric_queries_print_json() {
    let f = fixture();
    // Instant query: a vector.
    let at = secs(f.base + 60 * SEC);
    let r = f
        .larch(&[
            "instant-query",
            "-q",
            "--now",
            &at,
            r#"sum by (pod) (count_over_time({app="api"}[10m]))"#,
        ])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let t = (f.base / SEC + 60) as f64;
    let mut got: Vec<(String, f64, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["pod"].as_str().unwrap().to_string(),
                s["value"][0].as_f64().unwrap(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("a".to_string(), t, "3".to_string()),
            ("b".to_string(), t, "2".to_string())
        ]
    );
    // Indented like logcli.
    assert!(
        r.stdout
            .starts_with("[\n  {\n    \"metric\": {\n      \"pod\": "),
        "{}",
        r.stdout
    );

    // jsonl: one series per line.
    let r = f
        .larch(&[
            "instant-query",
            "-q",
            "-o",
            "jsonl",
            "--now",
            &at,
            r#"sum by (pod) (count_over_time({app="api"}[10m]))"#,
        ])
        .run();
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines.iter().all(|l| l["metric"]["pod"].is_string()),
        "{}",
        r.stdout
    );

    // A scalar.
    let r = f
        .larch(&["instant-query", "-q", "-o", "jsonl", "--now", &at, "1+1"])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[1], "2");

    // Range query: a matrix; every line counted once with a 10s step and
    // a 10s range.
    let r = f
        .ranged(&[
            "query",
            "-q",
            "--step",
            "10s",
            r#"sum by (app) (count_over_time({env=~".+"}[10s]))"#,
        ])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let series = v.as_array().unwrap();
    let total = |app: &str| -> f64 {
        series.iter().find(|s| s["metric"]["app"] == app).unwrap()["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!((total("api"), total("web")), (5.0, 1.0), "{}", r.stdout);

    // Instant queries of log selectors are refused by the server.
    let r = f.larch(&["instant-query", "-q", r#"{app="api"}"#]).run();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: 400 Bad Request: log queries are not supported as an instant query type, please change your query to a range query type\n"
    );
}

#[test]
fn stats_go_to_stderr() {
    let f = fixture();
    let r = f
        .ranged(&["query", "-q", "--stats", "-o", "raw", r#"{app="web"}"#])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "rendered page\n");
    assert!(
        r.stderr.lines().any(|l| l.starts_with("Summary.ExecTime ")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("Summary.TotalLinesProcessed ")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // `larch query ... | head -1`: once the reader is gone, larch stops
    // without an error. 3000 lines of 100 bytes overflow any pipe buffer.
    use std::io::BufRead;
    let store = start_store();
    let b = base_time();
    let lines: Vec<(i64, String)> = (0..3000)
        .map(|i| (b + i * 1_000_000, format!("{i:05}{}", "x".repeat(95))))
        .collect();
    let values: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    store.push(None, &[(&[("app", "big")], &values)]);
    let addr = store.addr();
    let (from, to) = (secs(b), secs(b + 60 * SEC));
    let mut child = crate::support::larch(&[
        "query",
        "-q",
        "--addr",
        &addr,
        "--from",
        &from,
        "--to",
        &to,
        "--limit",
        "0",
        "-o",
        "raw",
        "--forward",
        r#"{app="big"}"#,
    ])
    .spawn();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, format!("00000{}\n", "x".repeat(95)));
    // The reader (and the pipe) are gone now.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
