//! The block matcher against naive per-line evaluation, on random blocks
//! and random filter chains.

use larch_query::pipeline::{BlockMatcher, LineFilterArg, LineFilterOp, LineFilterSpec};
use proptest::prelude::*;

fn line() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("A"),
            Just("B"),
            Just(" "),
            Just("\n"),
            Just("1"),
            Just("."),
            Just("10.0.0.1"),
            Just("İ"),
            Just("i"),
            Just("k"),
            Just("\u{212A}"),
            Just("é"),
            Just("É"),
        ],
        0..10,
    )
    .prop_map(|v| v.concat())
}

fn text_arg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(""),
        Just("a"),
        Just("ab"),
        Just("ba"),
        Just("b\na"),
        Just("ik"),
        Just("é"),
        Just("a a"),
        Just("1."),
    ]
    .prop_map(String::from)
}

fn regex_arg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("(?i)ab"),
        Just("(?i)ik"),
        Just("(?i)é"),
        Just("a|ba"),
        Just(".*"),
        Just(".+"),
        Just("a.b"),
        Just("a+b"),
        Just("^a"),
        Just("b$"),
        Just(r"\bab\b"),
        Just(r"\d\.\d"),
        Just("(?s)a.*b"),
        Just("[ab]{2}"),
        Just("a?"),
        Just("x*"),
        Just(r"(ab|ba)\b"),
    ]
    .prop_map(String::from)
}

fn pattern_arg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a<_>"),
        Just("<_>ab<_>"),
        Just("<_> b"),
        Just("ab"),
        Just("a<_>b"),
    ]
    .prop_map(String::from)
}

fn filter() -> impl Strategy<Value = LineFilterSpec> {
    let op = prop_oneof![
        Just(LineFilterOp::Contains),
        Just(LineFilterOp::NotContains),
        Just(LineFilterOp::Regex),
        Just(LineFilterOp::NotRegex),
        Just(LineFilterOp::Pattern),
        Just(LineFilterOp::NotPattern),
    ];
    (op, 1usize..3).prop_flat_map(|(op, n)| {
        let arg = match op {
            LineFilterOp::Contains | LineFilterOp::NotContains => prop_oneof![
                4 => text_arg().prop_map(LineFilterArg::Text),
                1 => prop_oneof![Just("10.0.0.0/8"), Just("10.0.0.1")]
                    .prop_map(|s| LineFilterArg::Ip(s.to_string())),
            ]
            .boxed(),
            LineFilterOp::Regex | LineFilterOp::NotRegex => {
                regex_arg().prop_map(LineFilterArg::Text).boxed()
            }
            LineFilterOp::Pattern | LineFilterOp::NotPattern => {
                pattern_arg().prop_map(LineFilterArg::Text).boxed()
            }
        };
        proptest::collection::vec(arg, n..=n).prop_map(move |args| LineFilterSpec { op, args })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn block_scan_equals_per_line(
        lines in proptest::collection::vec(line(), 0..24),
        chain in proptest::collection::vec(filter(), 0..3),
        cut in 0usize..4,
    ) {
        let m = BlockMatcher::new(&chain).unwrap();
        let mut buf = Vec::new();
        let mut offsets = vec![0u32];
        for l in &lines {
            buf.extend_from_slice(l.as_bytes());
            offsets.push(buf.len() as u32);
        }
        let lo = cut.min(lines.len());
        let hi = lines.len().saturating_sub(cut).max(lo);
        let mut got = Vec::new();
        m.matching_in(&buf, &offsets, lo..hi, &mut got);
        let want: Vec<u32> = (lo..hi)
            .filter(|&i| m.matches_line(lines[i].as_bytes()))
            .map(|i| i as u32)
            .collect();
        prop_assert_eq!(got, want);
    }
}
