//! Parsers on free-form input: never a panic, always a verdict.

use std::sync::Arc;

use larch_query::LabelSet;
use larch_query::pipeline::{Pipeline, StageSpec};
use proptest::prelude::*;

fn stages() -> Vec<Vec<StageSpec>> {
    vec![
        vec![StageSpec::Json { params: vec![] }],
        vec![StageSpec::Json {
            params: vec![("a".into(), "a.b[0]".into()), ("c".into(), "c".into())],
        }],
        vec![StageSpec::Logfmt {
            strict: false,
            keep_empty: true,
            params: vec![],
        }],
        vec![StageSpec::Logfmt {
            strict: true,
            keep_empty: false,
            params: vec![("k".into(), "k".into())],
        }],
        vec![StageSpec::Pattern("<a> <_> [<b>] <c>".into())],
        vec![
            StageSpec::Unpack,
            StageSpec::Logfmt {
                strict: false,
                keep_empty: false,
                params: vec![],
            },
        ],
        vec![
            StageSpec::Regexp("(?P<x>[a-z]+)=(?P<y>\\S*)".into()),
            StageSpec::LineFormat("{{.x}}|{{ .y | upper }}|{{ __line__ | trunc 3 }}".into()),
            StageSpec::Decolorize,
        ],
    ]
}

fn jsonish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just("\""),
            Just(":"),
            Just(","),
            Just("\\"),
            Just("\\u00e9"),
            Just("\\ud800"),
            Just("a"),
            Just("1"),
            Just("-"),
            Just("true"),
            Just("null"),
            Just(" "),
            Just("="),
            Just("\x1b[31m"),
            Just("é"),
            Just("_entry"),
            Just("k"),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parsers_never_panic(line in prop_oneof![jsonish(), any::<String>()]) {
        let labels = Arc::new(LabelSet::from_pairs([("app", "a"), ("k", "s")]));
        for s in stages() {
            let p = Pipeline::new(&s).unwrap();
            let mut sp = p.for_stream(labels.clone());
            if let Some((_, lb)) = sp.process(0, line.as_bytes(), b"\x01k\x01m") {
                // Every label the pipeline produced is valid UTF-8 text
                // with a non-empty name.
                let set = lb.to_label_set();
                prop_assert!(set.iter().all(|l| !l.name.is_empty()));
            }
        }
    }
}
