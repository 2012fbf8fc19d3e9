//! The label endpoints answered from the label index: time ranges over
//! heads and flushed chunks, label values that need escaping, and answers
//! large enough to be sent in pieces, each checked against the answer of
//! the per-stream path (a `query` selector that every stream matches).

use larch_testkit::http::percent;

use super::support::*;

fn get(p: &StoreProcess, path: &str) -> Response {
    let r = request(p.http, "GET", path, &[], b"").unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r
}

fn data(p: &StoreProcess, path: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&get(p, path).body).unwrap();
    assert_eq!(v["status"], "success", "{path}: {v}");
    v["data"].clone()
}

fn push(p: &StoreProcess, labels: &str, ts: i64, line: &str) {
    let r = request(
        p.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(labels, ts, &[line.to_string()]),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{labels}: {}", r.text());
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A `start`/`end` pair in ns.
fn range(start: i64, end: i64) -> String {
    format!("start={start}&end={end}")
}

#[test]
fn values_and_names_over_heads_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let p = StoreProcess::start(dir.path(), &[]);
    let now = now_ns();
    let (old, new) = (now - 3 * 3_600_000_000_000, now - 60_000_000_000);
    push(&p, r#"{app="old", pod="a-1", zone="west"}"#, old, "flushed");
    let r = request(p.http, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    push(&p, r#"{app="new", pod="b-1"}"#, new, "in the head");

    let minute = 60_000_000_000;
    let cases = [
        // (start, end, pods, names)
        (
            old - minute,
            now + minute,
            vec!["a-1", "b-1"],
            vec!["app", "pod", "service_name", "zone"],
        ),
        (
            old - minute,
            old + minute,
            vec!["a-1"],
            vec!["app", "pod", "service_name", "zone"],
        ),
        (
            new - minute,
            now + minute,
            vec!["b-1"],
            vec!["app", "pod", "service_name"],
        ),
        // `end` is exclusive, `start` inclusive.
        (
            old,
            new,
            vec!["a-1"],
            vec!["app", "pod", "service_name", "zone"],
        ),
        (
            old + 1,
            new + 1,
            vec!["b-1"],
            vec!["app", "pod", "service_name"],
        ),
        (old + minute, new - minute, vec![], vec![]),
    ];
    for (start, end, pods, names) in cases {
        let q = range(start, end);
        let got = strings(&data(&p, &format!("/loki/api/v1/label/pod/values?{q}")));
        assert_eq!(got, pods, "pod values over {q}");
        // The per-stream path says the same.
        let all = percent(r#"{pod=~".+"}"#);
        let by_streams = strings(&data(
            &p,
            &format!("/loki/api/v1/label/pod/values?{q}&query={all}"),
        ));
        assert_eq!(by_streams, pods, "pod values of {{pod=~\".+\"}} over {q}");
        let got = strings(&data(&p, &format!("/loki/api/v1/labels?{q}")));
        assert_eq!(got, names, "names over {q}");
        let by_streams = strings(&data(&p, &format!("/loki/api/v1/labels?{q}&query={all}")));
        assert_eq!(by_streams, names, "names of {{pod=~\".+\"}} over {q}");
    }
    let q = range(old - minute, now + minute);
    assert_eq!(
        strings(&data(&p, &format!("/loki/api/v1/label/zone/values?{q}"))),
        vec!["west"]
    );
    assert_eq!(
        strings(&data(&p, &format!("/loki/api/v1/label/nope/values?{q}"))),
        Vec::<String>::new()
    );
    // A tenant that never pushed has no names and no values.
    let r = request(
        p.http,
        "GET",
        &format!("/loki/api/v1/label/pod/values?{q}"),
        &[("X-Scope-OrgID", "nobody")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], serde_json::json!([]));
}

#[test]
fn values_that_need_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let p = StoreProcess::start(dir.path(), &[]);
    let ts = now_ns() - 60_000_000_000;
    // As pushed (label text escapes) and as they must read back.
    let odd = [
        (r#"quote \" in"#, "quote \" in"),
        (r#"back \\ slash"#, "back \\ slash"),
        (r#"new \n line"#, "new \n line"),
        ("tab \\t and \\u0001", "tab \t and \u{1}"),
        ("é, 漢字, 😀 <&>", "é, 漢字, 😀 <&>"),
        ("plain", "plain"),
    ];
    for (i, (text, _)) in odd.iter().enumerate() {
        push(
            &p,
            &format!(r#"{{app="odd", v="{text}"}}"#),
            ts + i as i64,
            "x",
        );
    }
    let mut want: Vec<&str> = odd.iter().map(|(_, v)| *v).collect();
    want.sort_unstable();
    let got = strings(&data(&p, "/loki/api/v1/label/v/values"));
    assert_eq!(got, want);
    let series = data(
        &p,
        &format!("/loki/api/v1/series?match[]={}", percent(r#"{app="odd"}"#)),
    );
    let got: Vec<&str> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["v"].as_str().unwrap())
        .collect();
    assert_eq!(got, want, "series come in the order of their label sets");
}

#[test]
fn large_answers_are_sent_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let p = StoreProcess::start(dir.path(), &[]);
    let ts = now_ns() - 60_000_000_000;
    // 4000 streams of two apps, pod names of about 40 bytes: over 160 KB
    // of values, in more than one piece.
    let streams: Vec<(String, Vec<(i64, &str)>)> = (0..4000)
        .map(|i| {
            (
                format!(
                    r#"{{app="app-{}", pod="pod-{:08x}-{i}-abcdefghijklmnopqrstuvw"}}"#,
                    i % 2,
                    (i as u32).wrapping_mul(2_654_435_761)
                ),
                vec![(ts + i, "x")],
            )
        })
        .collect();
    let r = request(
        p.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &larch_testkit::push::protobuf(streams),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());

    let r = get(&p, "/loki/api/v1/label/pod/values");
    assert!(r.body.len() > 160_000, "{} bytes", r.body.len());
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let got = strings(&v["data"]);
    assert_eq!(got.len(), 4000);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    let by_streams = strings(&data(
        &p,
        &format!(
            "/loki/api/v1/label/pod/values?query={}",
            percent(r#"{app=~"app-.*"}"#)
        ),
    ));
    assert_eq!(got, by_streams);
    // Only one app's half.
    let half = strings(&data(
        &p,
        &format!(
            "/loki/api/v1/label/pod/values?query={}",
            percent(r#"{app="app-1"}"#)
        ),
    ));
    assert_eq!(half.len(), 2000);
    assert!(half.iter().all(|v| got.binary_search(v).is_ok()));

    // Every series, in label order, also in pieces.
    let r = get(
        &p,
        &format!("/loki/api/v1/series?match[]={}", percent(r#"{app=~".+"}"#)),
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let series = v["data"].as_array().unwrap();
    assert_eq!(series.len(), 4000);
    let keys: Vec<(String, String)> = series
        .iter()
        .map(|s| {
            (
                s["app"].as_str().unwrap().to_string(),
                s["pod"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in label order");

    // A small answer still comes whole, with its length.
    let r = get(&p, "/loki/api/v1/label/app/values");
    assert!(r.header("content-length").is_some());
    assert_eq!(r.json()["data"], serde_json::json!(["app-0", "app-1"]));
}
