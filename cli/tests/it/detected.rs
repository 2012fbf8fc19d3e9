//! `larch detected-fields`: the fields the store finds in a sample of a
//! query's lines, printed as logcli prints them, and one field's values.

use crate::support::{SEC, StoreExt, base_time, secs};

#[test]
fn fields_and_values() {
    // Level discovery on (the test kit's stores have it off): the level
    // the store stores is one of the fields.
    let store = larch_testkit::StoreProcess::builder().start();
    let b = base_time();
    store.push(
        None,
        &[(
            &[("app", "pay")],
            &[
                (b + SEC, "level=info user=alice took=12ms"),
                (b + 2 * SEC, "level=error user=bob took=1.5s"),
                (b + 3 * SEC, "level=info user=carol took=3ms"),
            ],
        )],
    );
    let (from, to) = (secs(b), secs(b + 60 * SEC));
    let addr = store.addr();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "detected-fields",
            "-q",
            "--addr",
            &addr,
            "--from",
            &from,
            "--to",
            &to,
        ];
        args.extend(extra);
        args.push(r#"{app="pay"}"#);
        crate::support::larch(&args).run()
    };
    let r = run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "sorted as logcli sorts them");
    for want in [
        "label: level\t\ttype: string\t\tcardinality: 2",
        "label: took\t\ttype: duration\t\tcardinality: 3",
        "label: user\t\ttype: string\t\tcardinality: 3",
    ] {
        assert!(lines.contains(&want), "{want:?} in {lines:?}");
    }
    // The level the store detects is a field too, as in Loki.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("label: detected_level\t")),
        "{lines:?}"
    );
    let r = run(&["-o", "jsonl"]);
    let user: serde_json::Value = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["label"] == "user")
        .unwrap();
    assert_eq!(user["parsers"], serde_json::json!(["logfmt"]));
    assert_eq!(user["cardinality"], 3);
    let r = run(&["-o", "raw"]);
    let raw: serde_json::Value = serde_json::from_str(r.stdout.trim_end()).unwrap();
    assert_eq!(
        raw["fields"].as_array().unwrap().len(),
        lines.len(),
        "{raw}"
    );

    // One field's values: the field name follows the query.
    let mut args = vec![
        "detected-fields",
        "-q",
        "--addr",
        &addr,
        "--from",
        &from,
        "--to",
        &to,
        r#"{app="pay"}"#,
        "user",
    ];
    let r = crate::support::larch(&args).run();
    assert_eq!(r.code, 0, "{r:?}");
    let mut values: Vec<&str> = r.stdout.lines().collect();
    values.sort();
    assert_eq!(values, ["alice", "bob", "carol"]);
    // Loki's words for a bad query.
    args[8] = "{app=";
    let r = crate::support::larch(&args).run();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("Error: 400 Bad Request: parse error"),
        "{}",
        r.stderr
    );
}
