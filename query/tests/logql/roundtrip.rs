//! `parse(print(tree)) == tree` over generated syntax trees.
//!
//! The generator builds trees the parser can produce: names that are not
//! keywords, operators with their allowed operands and aggregations that
//! pass Loki's rules, literal operations already folded, negative line
//! filters without `or` (the parser splits those). Within that space the
//! printer must write a text that reads back to exactly the same tree.

use larch_query::logql::{
    BinOp, BinOpKind, Cardinality, CmpOp, Duration, Expr, Grouping, LabelExtraction, LabelFilter,
    LabelFormat, LabelReplace, LineFilter, LineFilterOp, LineFilterValue, LogExpr, LogRange,
    NamedMatcher, RangeAggregation, RangeOp, ReplaceRegex, SampleExpr, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp, parse_expr,
};
use larch_query::{MatchOp, Matcher};
use proptest::prelude::*;

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "and",
    "or",
    "unless",
    "json",
    "logfmt",
    "regexp",
    "unpack",
    "pattern",
    "unwrap",
    "line_format",
    "label_format",
    "decolorize",
    "drop",
    "keep",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}",
        "[A-Za-z_][A-Za-z0-9_]{0,10}",
        // Function words are plain names outside function position.
        Just("rate".to_string()),
        Just("bytes".to_string()),
        Just("ip".to_string()),
        Just("duration".to_string()),
    ]
    .prop_filter("keyword", |n| {
        !KEYWORDS.contains(&n.to_lowercase().as_str())
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("\"quoted\" \\ back\\slash\n\ttab".to_string()),
        Just("\u{a0}\u{200b}é😀\x01\x7f".to_string()),
    ]
}

fn regex_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ".+",
        "a|b",
        "(?i)err.*",
        "[a-z]+",
        "x{2,3}",
        "{",
        r"\d+",
        "",
        "foo.*bar",
    ])
    .prop_map(str::to_string)
}

fn matcher() -> impl Strategy<Value = Matcher> {
    (name(), 0..4usize, text(), regex_text()).prop_map(|(n, op, t, re)| match op {
        0 => Matcher::new(n, MatchOp::Eq, t).unwrap(),
        1 => Matcher::new(n, MatchOp::NotEq, t).unwrap(),
        2 => Matcher::new(n, MatchOp::Re, re).unwrap(),
        _ => Matcher::new(n, MatchOp::NotRe, re).unwrap(),
    })
}

/// Matchers that pass Loki's "at least one non-empty matcher" rule.
fn selector() -> impl Strategy<Value = Vec<Matcher>> {
    (name(), "[a-z]{1,5}", prop::collection::vec(matcher(), 0..3)).prop_map(|(n, v, rest)| {
        let mut ms = vec![Matcher::new(n, MatchOp::Eq, v).unwrap()];
        ms.extend(rest);
        ms
    })
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1i64..100_000).prop_map(Duration::from_secs),
        any::<i64>().prop_map(Duration::from_nanos),
        (-1_000_000i64..1_000_000).prop_map(Duration::from_millis),
    ]
}

fn cmp() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::NotEq,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Lt,
        CmpOp::Le,
    ])
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        Just(0.5),
        Just(1e21),
        Just(1e-7),
    ]
}

fn label_filter_leaf() -> impl Strategy<Value = LabelFilter> {
    prop_oneof![
        matcher().prop_map(LabelFilter::Matcher),
        (
            name(),
            any::<bool>(),
            prop::sample::select(vec!["1.2.3.4", "10.0.0.0/8", "::1", "1.1.1.1-1.1.1.9"])
        )
            .prop_map(|(name, ne, p)| LabelFilter::Ip {
                name,
                op: if ne { CmpOp::NotEq } else { CmpOp::Eq },
                pattern: p.to_string(),
            }),
        (name(), cmp(), finite()).prop_map(|(name, op, value)| LabelFilter::Number {
            name,
            op,
            value
        }),
        (name(), cmp(), duration()).prop_map(|(name, op, value)| LabelFilter::Duration {
            name,
            op,
            value
        }),
        (name(), cmp(), any::<u32>()).prop_map(|(name, op, v)| LabelFilter::Bytes {
            name,
            op,
            value: u64::from(v) * 1000,
        }),
        (name(), cmp(), any::<u64>()).prop_map(|(name, op, v)| LabelFilter::Bytes {
            name,
            op,
            value: v >> 12,
        }),
    ]
}

fn label_filter() -> impl Strategy<Value = LabelFilter> {
    label_filter_leaf().prop_recursive(3, 12, 2, |inner| {
        (inner.clone(), inner, any::<bool>()).prop_map(|(a, b, or)| {
            if or {
                LabelFilter::Or(Box::new(a), Box::new(b))
            } else {
                LabelFilter::And(Box::new(a), Box::new(b))
            }
        })
    })
}

fn line_filter() -> impl Strategy<Value = LineFilter> {
    let value = prop_oneof![
        text().prop_map(LineFilterValue::Text),
        Just(LineFilterValue::Ip("10.0.0.0/8".into())),
    ];
    (0..6usize, prop::collection::vec(value, 1..4)).prop_map(|(op, mut values)| {
        let op = [
            LineFilterOp::Contains,
            LineFilterOp::NotContains,
            LineFilterOp::Regex,
            LineFilterOp::NotRegex,
            LineFilterOp::Pattern,
            LineFilterOp::NotPattern,
        ][op];
        if !op.is_positive() {
            values.truncate(1);
        }
        LineFilter { op, values }
    })
}

fn extraction() -> impl Strategy<Value = LabelExtraction> {
    (name(), text()).prop_map(|(label, expr)| LabelExtraction { label, expr })
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        3 => line_filter().prop_map(Stage::LineFilter),
        1 => prop::collection::vec(extraction(), 0..3).prop_map(|params| Stage::Json { params }),
        1 => (any::<bool>(), any::<bool>(), prop::collection::vec(extraction(), 0..3))
            .prop_map(|(strict, keep_empty, params)| Stage::Logfmt { strict, keep_empty, params }),
        1 => name().prop_map(|n| Stage::Regexp(format!("(?P<{n}>[a-z]+) x"))),
        1 => (name(), name())
            .prop_filter("distinct", |(a, b)| a != b)
            .prop_map(|(a, b)| Stage::Pattern(format!("<{a}> - <_> [<{b}>]"))),
        1 => Just(Stage::Unpack),
        1 => Just(Stage::Decolorize),
        3 => label_filter().prop_map(Stage::LabelFilter),
        1 => text().prop_map(Stage::LineFormat),
        1 => prop::collection::vec(
            (name(), name(), text(), any::<bool>()).prop_map(|(dst, src, t, rename)| {
                if rename {
                    LabelFormat::Rename { dst, src }
                } else {
                    LabelFormat::Template { dst, template: t }
                }
            }),
            1..3
        )
        .prop_map(Stage::LabelFormat),
        1 => (any::<bool>(), prop::collection::vec(
            prop_oneof![name().prop_map(NamedMatcher::Name), matcher().prop_map(NamedMatcher::Matcher)],
            1..3
        ))
        .prop_map(|(drop, ns)| if drop { Stage::Drop(ns) } else { Stage::Keep(ns) }),
    ]
}

/// `| keep a != "x"` reads as a keep matcher, in Loki too: no parse gives
/// a drop/keep list ending in a bare name followed by `!=`/`!~`.
fn producible(stages: &[Stage]) -> bool {
    stages.windows(2).all(|w| match w {
        [Stage::Drop(ns) | Stage::Keep(ns), Stage::LineFilter(f)] => {
            !(matches!(ns.last(), Some(NamedMatcher::Name(_)))
                && matches!(f.op, LineFilterOp::NotContains | LineFilterOp::NotRegex))
        }
        _ => true,
    })
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (selector(), prop::collection::vec(stage(), 0..5))
        .prop_filter("not producible", |(_, stages)| producible(stages))
        .prop_map(|(matchers, stages)| LogExpr { matchers, stages })
}

fn grouping() -> impl Strategy<Value = Grouping> {
    (any::<bool>(), prop::collection::vec(name(), 0..3))
        .prop_map(|(without, labels)| Grouping { without, labels })
}

fn range_aggregation() -> impl Strategy<Value = SampleExpr> {
    let unwrap = (
        name(),
        prop::sample::select(vec![
            None,
            Some(UnwrapConversion::Bytes),
            Some(UnwrapConversion::Duration),
            Some(UnwrapConversion::DurationSeconds),
        ]),
        prop::collection::vec(label_filter(), 0..2),
    )
        .prop_map(|(label, conversion, post_filters)| Unwrap {
            label,
            conversion,
            post_filters,
        });
    (
        prop::sample::select(RangeOp::ALL.to_vec()),
        log_expr(),
        (0i64..10_000_000).prop_map(Duration::from_millis),
        prop_oneof![Just(Duration::ZERO), duration()],
        prop::option::of(unwrap),
        prop::option::of(grouping()),
        0.0f64..2.0,
    )
        .prop_map(|(op, log, range, offset, unwrap, grouping, phi)| {
            // Pick what the function allows.
            let unwrap = match (op.allows_lines(), op.allows_unwrap()) {
                (true, true) => unwrap,
                (true, false) => None,
                _ => Some(unwrap.unwrap_or(Unwrap {
                    label: "v".into(),
                    conversion: None,
                    post_filters: vec![],
                })),
            };
            SampleExpr::RangeAggregation(RangeAggregation {
                op,
                param: (op == RangeOp::QuantileOverTime).then_some(phi),
                range: LogRange {
                    log,
                    range,
                    offset,
                    unwrap,
                },
                grouping: grouping.filter(|_| op.allows_grouping()),
            })
        })
}

fn leaf() -> impl Strategy<Value = SampleExpr> {
    prop_oneof![
        4 => range_aggregation(),
        1 => finite().prop_map(SampleExpr::Literal),
        1 => prop_oneof![(0u32..1000).prop_map(f64::from), 0.0f64..1e6].prop_map(SampleExpr::Vector),
    ]
}

fn vector_matching() -> impl Strategy<Value = VectorMatching> {
    (
        any::<bool>(),
        prop::collection::vec(name(), 0..3),
        0..3usize,
        prop::collection::vec(name(), 0..2),
    )
        .prop_map(|(on, labels, card, include)| {
            let card = [
                Cardinality::OneToOne,
                Cardinality::ManyToOne,
                Cardinality::OneToMany,
            ][card];
            let include = if card == Cardinality::OneToOne {
                vec![]
            } else {
                include
            };
            VectorMatching {
                on,
                labels,
                card,
                include,
            }
        })
}

fn is_literal(e: &SampleExpr) -> bool {
    matches!(e, SampleExpr::Literal(_))
}

fn sample_expr() -> impl Strategy<Value = SampleExpr> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (
                prop::sample::select(VectorOp::ALL.to_vec()),
                1i64..100,
                grouping(),
                inner.clone(),
            )
                .prop_map(|(op, k, grouping, e)| {
                    let grouping = match op {
                        VectorOp::Sort | VectorOp::SortDesc => Grouping {
                            labels: vec![],
                            ..grouping
                        },
                        VectorOp::ApproxTopk => Grouping::default(),
                        _ => grouping,
                    };
                    SampleExpr::VectorAggregation(VectorAggregation {
                        op,
                        param: op.takes_param().then_some(k),
                        grouping,
                        expr: Box::new(e),
                    })
                }),
            (
                prop::sample::select(BinOpKind::ALL.to_vec()),
                inner.clone(),
                inner.clone(),
                any::<bool>(),
                vector_matching(),
            )
                .prop_filter("literal legs", |(op, l, r, _, _)| {
                    !(is_literal(l) && is_literal(r))
                        && !(op.is_set_op() && (is_literal(l) || is_literal(r)))
                })
                .prop_map(|(op, l, r, return_bool, matching)| {
                    SampleExpr::BinOp(BinOp {
                        op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                        return_bool,
                        matching,
                    })
                }),
            (inner, text(), text(), text()).prop_map(|(e, dst, replacement, src)| {
                SampleExpr::LabelReplace(LabelReplace {
                    expr: Box::new(e),
                    dst,
                    replacement,
                    src,
                    regex: ReplaceRegex::new("(.*)-x").unwrap(),
                })
            }),
        ]
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        log_expr().prop_map(Expr::Log),
        sample_expr().prop_map(Expr::Sample)
    ]
}

proptest! {
    // 512 cases by default; PROPTEST_CASES raises it for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn print_then_parse_gives_the_same_tree(e in expr()) {
        let printed = e.to_string();
        let again = parse_expr(&printed)
            .unwrap_or_else(|err| panic!("printed query does not parse: {printed}\n{err}"));
        prop_assert_eq!(again, e, "printed: {}", printed);
    }

    /// Whatever the bytes, the parser returns; the fuzz property holds.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        larch_query::logql::fuzz_one(s.as_bytes());
    }

    /// Query-like text built from LogQL's own tokens.
    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(prop::sample::select(vec![
        "{", "}", "(", ")", "[5m]", "[", "]", ",", "|", "|=", "!=", "|~", "!~", "|>", "!>", "=", "==",
        "=~", ">", ">=", "<", "<=", "+", "-", "*", "/", "%", "^", "a", "b", "\"x\"", "`y`", "1", "0.5",
        "5m", "-1h", "10KB", "sum", "rate", "by", "without", "bool", "on", "ignoring", "group_left",
        "group_right", "offset", "or", "and", "unless", "json", "logfmt", "--strict", "regexp",
        "pattern", "unpack", "unwrap", "bytes", "duration", "ip", "line_format", "label_format",
        "drop", "keep", "decolorize", "topk", "vector", "label_replace", "count_over_time",
        "quantile_over_time", "#", "\n", " ",
    ]), 0..40)) {
        larch_query::logql::fuzz_one(toks.join(" ").as_bytes());
        larch_query::logql::fuzz_one(toks.concat().as_bytes());
    }
}
