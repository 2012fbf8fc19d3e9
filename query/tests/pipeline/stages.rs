//! Pipeline stages with Loki's behaviours, taken from the engine scripts
//! in `shared/conformance/logqltest` (parsers, label filters, formatters,
//! conversions).

use std::sync::Arc;

use larch_query::pipeline::{
    CmpOp, Conversion, LabelCategory, LabelFilterSpec, LabelFmtSpec, LineFilterOp, LineFilterSpec,
    NameOrMatcher, Pipeline, StageSpec, Unwrap, UnwrapSpec,
};
use larch_query::{LabelSet, MatchOp, Matcher};

fn meta(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (n, v) in pairs {
        buf.push(n.len() as u8);
        buf.extend_from_slice(n.as_bytes());
        buf.push(v.len() as u8);
        buf.extend_from_slice(v.as_bytes());
    }
    buf
}

/// Runs one entry; returns (line, labels text) or None when dropped.
fn run_with(
    stream: &[(&str, &str)],
    md: &[(&str, &str)],
    stages: &[StageSpec],
    line: &str,
) -> Option<(String, String)> {
    let p = Pipeline::new(stages).unwrap();
    let mut sp = p.for_stream(Arc::new(LabelSet::from_pairs(stream.iter().copied())));
    let m = meta(md);
    let (l, lb) = sp.process(1_000_000_000, line.as_bytes(), &m)?;
    Some((
        String::from_utf8(l.to_vec()).unwrap(),
        lb.to_label_set().to_string(),
    ))
}

fn run(stages: &[StageSpec], line: &str) -> Option<(String, String)> {
    run_with(&[("app", "a")], &[], stages, line)
}

fn labels(stages: &[StageSpec], line: &str) -> String {
    run(stages, line).unwrap().1
}

fn logfmt() -> StageSpec {
    StageSpec::Logfmt {
        strict: false,
        keep_empty: false,
        params: vec![],
    }
}

fn json() -> StageSpec {
    StageSpec::Json { params: vec![] }
}

fn string_filter(name: &str, op: MatchOp, v: &str) -> StageSpec {
    StageSpec::LabelFilter(LabelFilterSpec::String {
        name: name.into(),
        op,
        value: v.into(),
    })
}

#[test]
fn logfmt_edge_cases() {
    let line = "a-b=1 9x=2 dup=first dup=second msg=\"hi there\" empty=";
    assert_eq!(
        labels(&[logfmt()], line),
        r#"{_9x="2", a_b="1", app="a", dup="first", msg="hi there"}"#
    );
    let keep = StageSpec::Logfmt {
        strict: false,
        keep_empty: true,
        params: vec![],
    };
    assert_eq!(
        labels(&[keep], line),
        r#"{_9x="2", a_b="1", app="a", dup="first", empty="", msg="hi there"}"#
    );
    // Malformed: lenient keeps the good pairs; strict fails the line.
    assert_eq!(
        labels(&[logfmt()], r#"good=1 bad="unterminated"#),
        r#"{app="a", good="1"}"#
    );
    let strict = StageSpec::Logfmt {
        strict: true,
        keep_empty: false,
        params: vec![],
    };
    let l = labels(&[strict], r#"good=1 bad="unterminated"#);
    assert!(l.contains(r#"__error__="LogfmtParserErr""#), "{l}");
    assert!(l.contains("unterminated quoted value"), "{l}");
    let params = StageSpec::Logfmt {
        strict: false,
        keep_empty: false,
        params: vec![
            ("level".into(), "level".into()),
            ("code".into(), "status".into()),
        ],
    };
    assert_eq!(
        labels(&[params], "level=info status=200 msg=hi"),
        r#"{app="a", code="200", level="info"}"#
    );
}

#[test]
fn clash_precedence_stream_metadata_parsed() {
    let got = run_with(
        &[("app", "a"), ("sl", "s"), ("sm", "s"), ("tri", "s")],
        &[("md", "m"), ("sm", "m"), ("tri", "m")],
        &[logfmt()],
        "sl=p md=p tri=p",
    )
    .unwrap()
    .1;
    assert_eq!(
        got,
        r#"{app="a", md="m", md_extracted="p", sl="s", sl_extracted="p", sm="s", sm_extracted="m", tri="s", tri_extracted="p"}"#
    );
    // Without a parser the metadata value keeps `k_extracted`.
    let got = run_with(&[("app", "a"), ("k", "s")], &[("k", "m")], &[], "x")
        .unwrap()
        .1;
    assert_eq!(got, r#"{app="a", k="s", k_extracted="m"}"#);
}

#[test]
fn json_all_fields() {
    let line = r#"{"lvl":"warn","obj":{"x":1,"y":{"z":2}},"ok":true,"no":false,"nil":null,"arr":[1,2],"f":1.5}"#;
    assert_eq!(
        labels(&[json()], line),
        r#"{app="a", f="1.5", lvl="warn", no="false", obj_x="1", obj_y_z="2", ok="true"}"#
    );
    let got = run_with(
        &[("app", "a"), ("level", "stream")],
        &[],
        &[json()],
        r#"{"level":"parsed","a.b":1,"dup":"first","dup":"second"}"#,
    )
    .unwrap()
    .1;
    assert_eq!(
        got,
        r#"{a_b="1", app="a", dup="first", level="stream", level_extracted="parsed"}"#
    );
    let bad = labels(&[json()], "broken");
    assert!(bad.contains(r#"__error__="JSONParserErr""#), "{bad}");
    assert!(bad.contains("__error_details__"), "{bad}");
    // Escapes are decoded.
    assert_eq!(
        labels(&[json()], r#"{"m":"a\"b\u00e9"}"#),
        r#"{app="a", m="a\"bé"}"#
    );
}

#[test]
fn json_paths() {
    let stage = StageSpec::Json {
        params: vec![
            ("who".into(), "user.id".into()),
            ("tag".into(), "tags[0]".into()),
            ("age".into(), "user.age".into()),
            ("obj".into(), "user".into()),
            ("q".into(), r#"user["name"]"#.into()),
        ],
    };
    assert_eq!(
        labels(
            &[stage],
            r#"{"user":{"id":"u1","name":"alice"},"tags":["x","y"]}"#
        ),
        r#"{age="", app="a", obj="{\"id\":\"u1\",\"name\":\"alice\"}", q="alice", tag="x", who="u1"}"#
    );
    let err = Pipeline::new(&[StageSpec::Json {
        params: vec![("bad".into(), "user[".into())],
    }])
    .unwrap_err();
    assert!(err.to_string().contains("cannot parse expression"), "{err}");
}

#[test]
fn regexp_pattern_unpack() {
    let re = StageSpec::Regexp(r"(?P<method>\w+) (?P<path>\S+) (?P<status>\d+)".into());
    assert_eq!(
        labels(&[re], "GET /home 200"),
        r#"{app="a", method="GET", path="/home", status="200"}"#
    );
    let got = run_with(
        &[("app", "a"), ("method", "stream")],
        &[],
        &[StageSpec::Regexp(r"(?P<method>\w+) (?P<path>\S+)".into())],
        "PUT /x",
    )
    .unwrap()
    .1;
    assert_eq!(
        got,
        r#"{app="a", method="stream", method_extracted="PUT", path="/x"}"#
    );
    for (src, msg) in [
        ("nocapture", "at least one named capture must be supplied"),
        ("(?P<x>.)(?P<x>.)", "duplicate extracted label name"),
        ("(", "error parsing regexp"),
    ] {
        let e = Pipeline::new(&[StageSpec::Regexp(src.into())]).unwrap_err();
        assert!(e.to_string().contains(msg), "{e}");
    }
    assert_eq!(
        labels(
            &[StageSpec::Pattern("<method> <_> <status>".into())],
            "GET /home 200"
        ),
        r#"{app="a", method="GET", status="200"}"#
    );
    let e = Pipeline::new(&[StageSpec::Pattern("no captures here".into())]).unwrap_err();
    assert!(e.to_string().contains("at least one capture is required"));
    // unpack: string fields become labels, `_entry` replaces the line and
    // feeds a following parser.
    let (line, l) = run_with(
        &[("app", "a"), ("lvl", "stream")],
        &[],
        &[StageSpec::Unpack, logfmt()],
        r#"{"lvl":"packed","num":5,"_entry":"code=42"}"#,
    )
    .unwrap();
    assert_eq!(line, "code=42");
    assert_eq!(
        l,
        r#"{app="a", code="42", lvl="stream", lvl_extracted="packed"}"#
    );
    let bad = labels(&[StageSpec::Unpack], "not json");
    assert!(bad.contains("JSONParserErr"));
}

#[test]
fn label_filters_in_the_pipeline() {
    let f = |spec: LabelFilterSpec| StageSpec::LabelFilter(spec);
    let took = |op, secs: i64| {
        f(LabelFilterSpec::Duration {
            name: "took".into(),
            op,
            value_ns: secs * 1_000_000_000,
        })
    };
    assert!(run(&[logfmt(), took(CmpOp::Gt, 1)], "took=2s").is_some());
    assert!(run(&[logfmt(), took(CmpOp::Gt, 1)], "took=500ms").is_none());
    // A conversion failure keeps the line with LabelFilterErr; an
    // __error__="" filter then drops it.
    let l = labels(&[logfmt(), took(CmpOp::Gt, 1)], "took=90");
    assert!(
        l.contains("LabelFilterErr") && l.contains("missing unit in duration"),
        "{l}"
    );
    assert!(
        run(
            &[
                logfmt(),
                took(CmpOp::Gt, 1),
                string_filter("__error__", MatchOp::Eq, "")
            ],
            "took=90"
        )
        .is_none()
    );
    // A filter before the parser cannot drop the later error.
    let l = labels(
        &[
            string_filter("__error__", MatchOp::Eq, ""),
            logfmt(),
            took(CmpOp::Gt, 1),
        ],
        "took=oops",
    );
    assert!(l.contains("LabelFilterErr"));
    // Numbers: a bare number converts both sides, 200.0 == 200.
    let code = f(LabelFilterSpec::Number {
        name: "code".into(),
        op: CmpOp::Eq,
        value: 200.0,
    });
    assert!(run(&[logfmt(), code.clone()], "code=200.0").is_some());
    assert!(run(&[logfmt(), code], "code=-5").is_none());
    // Structured metadata joins the labels without a parser.
    assert!(
        run_with(
            &[("app", "a")],
            &[("lvl", "error")],
            &[string_filter("lvl", MatchOp::Eq, "error")],
            "msg"
        )
        .is_some()
    );
    // and binds tighter than or (the tree says so).
    let or = f(LabelFilterSpec::Or(
        Box::new(LabelFilterSpec::String {
            name: "x".into(),
            op: MatchOp::Eq,
            value: "1".into(),
        }),
        Box::new(LabelFilterSpec::And(
            Box::new(LabelFilterSpec::String {
                name: "y".into(),
                op: MatchOp::Eq,
                value: "1".into(),
            }),
            Box::new(LabelFilterSpec::String {
                name: "z".into(),
                op: MatchOp::Eq,
                value: "1".into(),
            }),
        )),
    ));
    assert!(run(&[logfmt(), or.clone()], "x=1 y=0 z=0").is_some());
    assert!(run(&[logfmt(), or.clone()], "x=0 y=1 z=1").is_some());
    assert!(run(&[logfmt(), or], "x=0 y=1 z=0").is_none());
}

#[test]
fn formatters_and_label_stages() {
    let (line, _) = run_with(
        &[("app", "a"), ("level", "error")],
        &[],
        &[StageSpec::LineFormat("L={{.level}}".into())],
        "x",
    )
    .unwrap();
    assert_eq!(line, "L=error");
    let (line, _) = run(&[StageSpec::LineFormat("V={{.missing}}".into())], "x").unwrap();
    assert_eq!(line, "V=");
    let e = Pipeline::new(&[StageSpec::LineFormat("{{ nosuchfunc }}".into())]).unwrap_err();
    assert!(e.to_string().contains("not defined"), "{e}");
    let e = Pipeline::new(&[StageSpec::LabelFormat(vec![LabelFmtSpec::Template {
        dst: "x".into(),
        template: "{{".into(),
    }])])
    .unwrap_err();
    assert!(e.to_string().contains("unclosed action"), "{e}");
    // label_format: rename moves; template keeps the source.
    let s = [("app", "a"), ("method", "get")];
    let lf = |specs: Vec<LabelFmtSpec>| {
        run_with(&s, &[], &[StageSpec::LabelFormat(specs)], "msg")
            .unwrap()
            .1
    };
    assert_eq!(
        lf(vec![LabelFmtSpec::Rename {
            dst: "verb".into(),
            src: "method".into()
        }]),
        r#"{app="a", verb="get"}"#
    );
    assert_eq!(
        lf(vec![LabelFmtSpec::Template {
            dst: "route".into(),
            template: "{{.method}}-ok".into()
        }]),
        r#"{app="a", method="get", route="get-ok"}"#
    );
    assert_eq!(
        lf(vec![LabelFmtSpec::Template {
            dst: "method".into(),
            template: "{{.method}}!".into()
        }]),
        r#"{app="a", method="get!"}"#
    );
    // decolorize strips what printf put in.
    let (line, _) = run_with(
        &[("app", "a"), ("msg", "hello")],
        &[],
        &[
            StageSpec::LineFormat("{{ printf \"\\x1b[31m%s\\x1b[0m\" .msg }}".into()),
            StageSpec::Decolorize,
        ],
        "plaintext",
    )
    .unwrap();
    assert_eq!(line, "hello");
    // drop / keep.
    let s = [("app", "a"), ("code", "500"), ("zone", "eu")];
    let d = |v: Vec<NameOrMatcher>| run_with(&s, &[], &[StageSpec::Drop(v)], "m").unwrap().1;
    assert_eq!(
        d(vec![
            NameOrMatcher::Name("code".into()),
            NameOrMatcher::Name("zone".into())
        ]),
        r#"{app="a"}"#
    );
    assert_eq!(
        d(vec![NameOrMatcher::Matcher(
            Matcher::new("code", MatchOp::Eq, "200").unwrap()
        )]),
        r#"{app="a", code="500", zone="eu"}"#
    );
    let k = |v: Vec<NameOrMatcher>| run_with(&s, &[], &[StageSpec::Keep(v)], "m").unwrap().1;
    assert_eq!(
        k(vec![NameOrMatcher::Name("zone".into())]),
        r#"{zone="eu"}"#
    );
    assert_eq!(
        k(vec![NameOrMatcher::Matcher(
            Matcher::new("code", MatchOp::Eq, "200").unwrap()
        )]),
        "{}"
    );
    // keep never drops the error labels; drop __error__ does.
    let l = run_with(
        &s,
        &[],
        &[
            json(),
            StageSpec::Keep(vec![NameOrMatcher::Name("zone".into())]),
        ],
        "x",
    )
    .unwrap()
    .1;
    assert!(l.contains("__error__") && l.contains("zone"), "{l}");
    let l = run_with(
        &s,
        &[],
        &[
            json(),
            StageSpec::Drop(vec![NameOrMatcher::Name("__error__".into())]),
        ],
        "x",
    )
    .unwrap()
    .1;
    assert!(!l.contains("JSONParserErr"), "{l}");
}

#[test]
fn line_filters_after_stages() {
    let stages = [
        StageSpec::LineFormat("L={{.level}}".into()),
        StageSpec::LineFilter(LineFilterSpec::new(LineFilterOp::Contains, "L=error")),
    ];
    assert!(run_with(&[("app", "a"), ("level", "error")], &[], &stages, "x").is_some());
    assert!(run_with(&[("app", "a"), ("level", "warn")], &[], &stages, "x").is_none());
}

#[test]
fn unwrap_conversions() {
    let p = Pipeline::new(&[logfmt()]).unwrap();
    let mut sp = p.for_stream(Arc::new(LabelSet::from_pairs([("unit", "x")])));
    let cases: &[(Conversion, &str, Option<f64>)] = &[
        (Conversion::Bytes, "b=1KiB", Some(1024.0)),
        (Conversion::Bytes, "b=2,048", Some(2048.0)),
        (Conversion::Bytes, "b=1.5B", Some(1.0)),
        (Conversion::Duration, "b=1h30m", Some(5400.0)),
        (Conversion::Duration, "b=-5s", Some(-5.0)),
        (Conversion::Float, "b=2.5", Some(2.5)),
        (Conversion::Float, "noise", None),
    ];
    for (conv, line, want) in cases {
        let u = Unwrap::new(&UnwrapSpec {
            label: "b".into(),
            conversion: *conv,
            post_filters: vec![],
        })
        .unwrap();
        sp.process(0, line.as_bytes(), &[]).unwrap();
        let mut lb = sp.labels().clone();
        assert_eq!(u.extract(&mut lb), *want, "{line}");
        assert!(!lb.has_err());
    }
    // Failure: sample with SampleExtractionErr, unless filtered.
    let u = Unwrap::new(&UnwrapSpec {
        label: "b".into(),
        conversion: Conversion::Duration,
        post_filters: vec![],
    })
    .unwrap();
    sp.process(0, b"b=1d", &[]).unwrap();
    let mut lb = sp.labels().clone();
    assert_eq!(u.extract(&mut lb), Some(0.0));
    assert_eq!(lb.err(), "SampleExtractionErr");
    let filtered = Unwrap::new(&UnwrapSpec {
        label: "b".into(),
        conversion: Conversion::Duration,
        post_filters: vec![LabelFilterSpec::String {
            name: "__error__".into(),
            op: MatchOp::Eq,
            value: "".into(),
        }],
    })
    .unwrap();
    let mut lb = sp.labels().clone();
    lb.reset_err();
    lb.reset_err_details();
    sp.process(0, b"b=1d", &[]).unwrap();
    let mut lb2 = sp.labels().clone();
    assert_eq!(filtered.extract(&mut lb2), None);
    assert_eq!(
        lb.get_with_category("b"),
        Some(("1d", LabelCategory::Parsed))
    );
}
