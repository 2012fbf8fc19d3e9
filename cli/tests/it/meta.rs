//! `labels`, `series`, `stats`, `volume`, `volume_range` and `fmt`.

use crate::fixture::fixture;
use crate::support::{StoreExt, larch};

#[test]
fn labels_and_values() {
    let f = fixture();
    let r = f.ranged(&["labels", "-q"]).run();
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "app\nenv\npod\nservice_name\n", "")
    );

    let r = f.ranged(&["labels", "app"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "api\nweb\n");
    assert_eq!(
        r.stderr,
        format!(
            "{}/loki/api/v1/label/app/values?start={}&end={}\n",
            f.store.addr(),
            f.base,
            f.base + 60 * crate::support::SEC
        )
    );

    let r = f.ranged(&["labels", "-q", "-o", "jsonl", "pod"]).run();
    assert_eq!(r.stdout, "\"a\"\n\"b\"\n");

    let r = f
        .ranged(&["labels", "-q", "--query", r#"{app="web"}"#])
        .run();
    assert_eq!(r.stdout, "app\nenv\nservice_name\n");

    // Nothing in an old range: no output, success.
    let r = f
        .larch(&["labels", "-q", "--from", "2020-01-01", "--to", "2020-01-02"])
        .run();
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

#[test]
fn series_and_analysis() {
    let f = fixture();
    let r = f.ranged(&["series", "-q", r#"{app="api"}"#]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{app="api", env="prod", pod="a", service_name="api"}"#,
            r#"{app="api", env="prod", pod="b", service_name="api"}"#
        ]
    );

    let r = f
        .ranged(&["series", "-q", "-o", "jsonl", r#"{app="web"}"#])
        .run();
    assert_eq!(
        r.stdout,
        "{\"app\":\"web\",\"env\":\"dev\",\"service_name\":\"web\"}\n"
    );

    let r = f
        .ranged(&["series", "-q", "--analyze-labels", r#"{env=~".+"}"#])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "Total Streams:  3\n\
         Unique Labels:  4\n\
         \n\
         Label Name    Unique Values  Found In Streams\n\
         app           2              3\n\
         env           2              3\n\
         pod           2              2\n\
         service_name  2              3\n"
    );

    // A pipeline is not a series selector: the server's words.
    let r = f.ranged(&["series", "-q", r#"{app="api"} |= "x""#]).run();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("Error: 400 Bad Request: "),
        "{}",
        r.stderr
    );
}

#[test]
fn index_stats() {
    let f = fixture();
    let r = f.ranged(&["stats", "-q", r#"{app="api"}"#]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", r.stdout);
    assert_eq!(lines[0], "{");
    // 14 + 21 + 15 + 15 + 20 bytes of lines.
    assert_eq!(lines[1], "  bytes:   85 B");
    assert!(lines[2].starts_with("  chunks:  "), "{}", r.stdout);
    assert_eq!(lines[3], "  streams: 2");
    assert_eq!(lines[4], "  entries: 5");
    assert_eq!(lines[5], "}");

    let r = f
        .ranged(&["stats", "-q", "-o", "jsonl", r#"{app="web"}"#])
        .run();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (
            v["streams"].as_u64(),
            v["entries"].as_u64(),
            v["bytes"].as_u64()
        ),
        (Some(1), Some(1), Some(13))
    );
}

#[test]
fn volumes() {
    let f = fixture();
    let r = f.ranged(&["volume", "-q", r#"{app="api"}"#]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let series = v.as_array().unwrap();
    let bytes: u64 = series
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(bytes, 85, "{}", r.stdout);

    let r = f
        .ranged(&[
            "volume",
            "-q",
            "-o",
            "jsonl",
            "--targetLabels",
            "pod",
            r#"{app="api"}"#,
        ])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    let mut got: Vec<(String, String)> = r
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["metric"]["pod"].as_str().unwrap().to_string(),
                v["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, [("a".into(), "50".into()), ("b".into(), "35".into())]);

    let r = f
        .ranged(&["volume_range", "-q", "--step", "1m", r#"{app="web"}"#])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let total: u64 = v.as_array().unwrap()[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 13, "{}", r.stdout);
}

#[test]
fn fmt_locally_and_by_the_store() {
    let q = r#"sum by(app)(rate({app="a"}|="x"[5m]))"#;
    let r = larch(&["fmt"]).stdin(q).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "sum by (app)(rate({app=\"a\"} |= \"x\"[5m]))\n");
    let r = larch(&["fmt", q]).run();
    assert_eq!(r.stdout, "sum by (app)(rate({app=\"a\"} |= \"x\"[5m]))\n");

    let r = larch(&["fmt"]).stdin("{app=").run();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "Error: {}\n",
            larch_query::logql::parse_expr("{app=").unwrap_err()
        )
    );

    let f = fixture();
    let addr = f.store.addr();
    let r = larch(&["fmt", "-q", "--server", "--addr", &addr, q]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let (status, body) = f
        .store
        .get("/loki/api/v1/format_query?query=sum%20by(app)(rate(%7Bapp%3D%22a%22%7D%7C%3D%22x%22%5B5m%5D))");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r.stdout, format!("{}\n", v["data"].as_str().unwrap()));
}

#[test]
fn raw_mode_of_metadata_commands_is_the_default_text() {
    // `-o raw` only changes log lines; lists, tables and JSON results
    // print as in default mode. Checked for every subcommand.
    let f = fixture();
    let at = crate::support::secs(f.base + 60 * crate::support::SEC);
    let commands: Vec<(Vec<&str>, bool)> = vec![
        (vec!["labels"], true),
        (vec!["labels", "app"], true),
        (vec!["series", r#"{app="api"}"#], true),
        (vec!["series", "--analyze-labels", r#"{app="api"}"#], true),
        (vec!["stats", r#"{app="api"}"#], true),
        (vec!["volume", r#"{app="api"}"#], true),
        (vec!["volume_range", "--step", "1m", r#"{app="api"}"#], true),
        (
            vec![
                "instant-query",
                "--now",
                &at,
                r#"count_over_time({app="web"}[10m])"#,
            ],
            false,
        ),
        (
            vec![
                "query",
                "--step",
                "10s",
                r#"count_over_time({app="web"}[10s])"#,
            ],
            true,
        ),
    ];
    for (args, ranged) in commands {
        let run = |mode: &str| {
            let mut a = args.clone();
            a.extend(["-q", "-o", mode]);
            if ranged {
                f.ranged(&a).run()
            } else {
                f.larch(&a).run()
            }
        };
        let (d, r) = (run("default"), run("raw"));
        assert_eq!(d.code, 0, "{args:?}: {d:?}");
        assert!(!d.stdout.is_empty(), "{args:?}");
        assert_eq!(r.stdout, d.stdout, "{args:?}");
        // And jsonl is one JSON value per line.
        let j = run("jsonl");
        assert_eq!(j.code, 0, "{args:?}: {j:?}");
        for line in j.stdout.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{args:?}: {line:?}: {e}"));
        }
    }
}
