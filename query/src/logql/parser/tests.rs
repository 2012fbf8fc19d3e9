use super::*;

fn ok(q: &str) -> Expr {
    match parse_expr(q) {
        Ok(e) => e,
        Err(e) => panic!("{q:?} failed: {e}"),
    }
}

fn err(q: &str) -> String {
    match parse_expr(q) {
        Ok(e) => panic!("{q:?} parsed: {e}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn prints_canonical_forms() {
    let cases = [
        (r#"{ foo = "bar" }"#, r#"{foo="bar"}"#),
        (
            r#"{app="foo"} != "foo" or "bar""#,
            r#"{app="foo"} != "foo" != "bar""#,
        ),
        (
            r#"{a="b"} | logfmt | x > 5 and y < 2 or z="q""#,
            r#"{a="b"} | logfmt | ( ( x>5 , y<2 ) or z="q" )"#,
        ),
        ("1 > 1 > 1", "0"),
        (
            r#"sum by (a) (rate({a="b"}[5m] offset 1h))"#,
            r#"sum by (a)(rate({a="b"}[5m] offset 1h0m0s))"#,
        ),
        (
            r#"quantile_over_time(0.99, {a="b"} | unwrap duration(x) | __error__="" [1m]) by (a)"#,
            r#"quantile_over_time(0.99,{a="b"} | unwrap duration(x) | __error__=""[1m]) by (a)"#,
        ),
        (
            r#"rate({a="b"}[5m]) * on (x) group_left (y) rate({c="d"}[5m])"#,
            r#"(rate({a="b"}[5m]) * on (x) group_left (y) rate({c="d"}[5m]))"#,
        ),
        ("vector(1) + 2", "(vector(1.000000) + 2)"),
    ];
    for (q, want) in cases {
        assert_eq!(ok(q).to_string(), want, "{q}");
    }
}

#[test]
fn comma_takes_the_rest() {
    let e = ok(r#"{a="b"} | x="1" or y="2", z="3""#);
    assert_eq!(e.to_string(), r#"{a="b"} | ( x="1" or ( y="2" , z="3" ) )"#);
}

#[test]
fn errors_like_loki() {
    assert_eq!(
        err(r#"{foo="bar""#),
        "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"
    );
    assert_eq!(
        err(r#"{foo="bar"} |~"#),
        "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip"
    );
    assert_eq!(
        err(r#"min({ foo = "bar" }[5m])"#),
        "parse error at line 0, col 20: syntax error: unexpected RANGE"
    );
    assert_eq!(
        err(r#"label_replace(rate({ foo = "bar" }[5m]),"")"#),
        "parse error at line 1, col 43: syntax error: unexpected ), expecting ,"
    );
    assert_eq!(
        err(r#"sum(count_over_time({foo="bar"}[5m])) by (foo) or 1"#),
        "parse error : unexpected literal for right leg of logical/set binary operation (or): 1.000000"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let cases = vec![
        format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        vec!["1"; 5000].join(" ^ "),
        format!("{}1{}", "sum(".repeat(5000), ")".repeat(5000)),
        format!(
            r#"sum(rate({{a="b"}}[1m])){}"#,
            " + sum(rate({a=\"b\"}[1m]))".repeat(400)
        ),
        format!(r#"{{a="b"}} | {}"#, vec!["x=1"; 2000].join(", ")),
        format!(r#"{{a="b"}} | {}x=1{}"#, "(".repeat(5000), ")".repeat(5000)),
        format!(
            r#"rate({}{{a="b"}}[1m]{})"#,
            "(".repeat(5000),
            ")".repeat(5000)
        ),
    ];
    // The stack of a default thread, whatever RUST_MIN_STACK says.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for q in cases {
                let e = err(&q);
                assert!(e.contains("nests too deeply"), "{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn large_queries_parse_in_linear_time() {
    // Each is close to the 128 KiB limit; exponential or quadratic work
    // would take minutes, linear work takes milliseconds.
    let sel = r#"{app="a"}"#;
    let cases = vec![
        format!("{sel}{}", r#" |= "x""#.repeat(15_000)),
        format!("{sel} |= \"a\"{}", r#" or "b""#.repeat(15_000)),
        format!("{sel} | x=1{}", " and y=2".repeat(200)),
        format!("{sel} | {}", "1.1.".repeat(30_000)),
        format!("{sel} | x > 1{}", "d1".repeat(60_000)),
        format!("{}1", "1 + ".repeat(30_000)),
        format!("{sel} {}", "rate ".repeat(25_000)),
        format!("{sel} | json {}", "a, ".repeat(40_000)),
        format!("{{{}a=\"b\"}}", "a=~\"x\", ".repeat(10_000)),
        "#".repeat(131_000),
        "\"".repeat(131_000),
        "(".repeat(131_000),
        "[".repeat(131_000),
        "-".repeat(131_000),
        format!("{sel} | logfmt {}", "--strict ".repeat(14_000)),
        format!("{sel} | regexp \"{}\"", "(?P<a>x)".repeat(15_000)),
    ];
    for q in cases {
        assert!(q.len() < MAX_QUERY_BYTES, "{}", q.len());
        let start = std::time::Instant::now();
        let _ = parse_expr(&q);
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{took:?} for a query starting {:?}",
            &q[..40.min(q.len())]
        );
    }
}

#[test]
fn input_size_limit() {
    let q = format!("{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
    assert_eq!(
        err(&q),
        format!(
            "parse error : input size too long ({} > {MAX_QUERY_BYTES})",
            q.len()
        )
    );
}

#[test]
fn syntax_error_expectations() {
    let cases = [
        (
            "{",
            "parse error at line 1, col 2: syntax error: unexpected $end, expecting IDENTIFIER or }",
        ),
        (
            "{a",
            "parse error at line 1, col 3: syntax error: unexpected $end, expecting = or =~ or !~ or !=",
        ),
        (
            "{a=",
            "parse error at line 1, col 4: syntax error: unexpected $end, expecting STRING",
        ),
        (
            r#"{a="b","#,
            "parse error at line 1, col 8: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
        (
            r#"{a="b"} |= ip"#,
            "parse error at line 1, col 12: syntax error: unexpected IDENTIFIER, expecting STRING or ip",
        ),
        (
            r#"{a="b"} |= ip("x""#,
            "parse error at line 1, col 18: syntax error: unexpected $end, expecting )",
        ),
        (
            r#"{a="b"} |= "x" or"#,
            "parse error at line 1, col 18: syntax error: unexpected $end, expecting STRING or ip",
        ),
        (
            r#"{a="b"} | regexp"#,
            "parse error at line 1, col 17: syntax error: unexpected $end, expecting STRING",
        ),
        (
            r#"{a="b"} | label_format a"#,
            "parse error at line 1, col 25: syntax error: unexpected $end, expecting =",
        ),
        (
            r#"{a="b"} | label_format a="#,
            "parse error at line 1, col 26: syntax error: unexpected $end, expecting IDENTIFIER or STRING",
        ),
        (
            r#"{a="b"} | drop"#,
            "parse error at line 1, col 15: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
        (
            r#"{a="b"} | x > 1 and"#,
            "parse error at line 1, col 20: syntax error: unexpected $end, expecting IDENTIFIER or (",
        ),
        (
            r#"{a="b"} | x =~ 1"#,
            "parse error at line 1, col 16: syntax error: unexpected NUMBER, expecting STRING",
        ),
        (
            r#"{a="b"} | x > -y"#,
            "parse error at line 1, col 16: syntax error: unexpected IDENTIFIER, expecting NUMBER",
        ),
        (
            r#"{a="b"} | unwrap x"#,
            "parse error at line 1, col 11: syntax error: unexpected unwrap",
        ),
        (
            r#"rate({a="b"} | unwrap"#,
            "parse error at line 1, col 22: syntax error: unexpected $end, expecting IDENTIFIER or BYTES_CONV or DURATION_CONV or DURATION_SECONDS_CONV",
        ),
        (
            r#"rate({a="b"} | unwrap x)"#,
            "parse error at line 1, col 24: syntax error: unexpected ), expecting RANGE or |",
        ),
        (
            r#"rate({a="b"} | unwrap x | json"#,
            "parse error at line 1, col 27: syntax error: unexpected json, expecting IDENTIFIER or (",
        ),
        (
            r#"rate({a="b"}[1m] x)"#,
            "parse error at line 1, col 18: syntax error: unexpected IDENTIFIER, expecting )",
        ),
        (
            r#"rate({a="b"}[1m] offset x)"#,
            "parse error at line 1, col 25: syntax error: unexpected IDENTIFIER, expecting DURATION",
        ),
        (
            r#"rate(({a="b"}) x)"#,
            "parse error at line 1, col 16: syntax error: unexpected IDENTIFIER, expecting RANGE",
        ),
        (
            r#"rate(x)"#,
            "parse error at line 1, col 6: syntax error: unexpected IDENTIFIER, expecting NUMBER or { or (",
        ),
        (
            r#"rate(1 {a="b"}[1m])"#,
            "parse error at line 1, col 8: syntax error: unexpected {, expecting ,",
        ),
        (
            r#"sum by (a"#,
            "parse error at line 1, col 10: syntax error: unexpected $end, expecting , or )",
        ),
        (
            r#"sum by (a) x"#,
            "parse error at line 1, col 12: syntax error: unexpected IDENTIFIER, expecting (",
        ),
        (
            r#"1 + on x"#,
            "parse error at line 1, col 8: syntax error: unexpected IDENTIFIER, expecting (",
        ),
        (
            r#"1 + on (a"#,
            "parse error at line 1, col 10: syntax error: unexpected $end, expecting , or )",
        ),
        (
            r#"1 +"#,
            "parse error at line 1, col 4: syntax error: unexpected $end",
        ),
        (
            r#"vector()"#,
            "parse error at line 1, col 8: syntax error: unexpected ), expecting NUMBER",
        ),
        (
            r#"sum(1) by (a) by (b)"#,
            "parse error at line 1, col 15: syntax error: unexpected by",
        ),
        (
            "{a=\"b\"}\n  |= x",
            "parse error at line 2, col 6: syntax error: unexpected IDENTIFIER, expecting STRING or ip",
        ),
        (
            r#"{a="b"} |= "x" |= "y" ]"#,
            "parse error at line 1, col 23: syntax error: unexpected ]",
        ),
        (
            r#"{a="b"} @"#,
            "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER",
        ),
        (
            r#"{a='b'}"#,
            "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting STRING",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(err(q), want, "{q}");
    }
}

#[test]
fn deferred_errors_in_validation_order() {
    // The outer node's own error comes before its operands'.
    assert_eq!(
        err(r#"sum(3, rate({a="b"}[1m]) by (x))"#),
        "parse error : unsupported parameter for operation sum(3,"
    );
    // Left before right.
    assert_eq!(
        err(r#"rate({a="b"}[1m]) by (x) + rate({a=~".*"}[1m])"#),
        "parse error : grouping not allowed for rate aggregation"
    );
    assert_eq!(
        err(r#"rate({a=~".*"}[1m]) + rate({a="b"}[1m]) by (x)"#),
        parse_expr(r#"{a=~".*"}"#).unwrap_err().to_string()
    );
    // A syntax error anywhere wins over deferred errors.
    assert!(err(r#"sum(3, rate({a="b"}[1m])) +"#).contains("syntax error"));
    // Immediate errors (matcher regexes) win over later syntax errors.
    assert_eq!(
        err(r#"{a=~"("} |="#),
        "parse error : error parsing regexp: missing closing ): `(`"
    );
    assert_eq!(
        err(r#"{a="b"} | regexp "(x)""#),
        "parse error : invalid regexp parser: at least one named capture must be supplied"
    );
    assert_eq!(
        err(r#"{a="b"} | pattern "<a><b>""#),
        "parse error : invalid pattern parser: found consecutive capture '<a><b>': invalid expression"
    );
    assert_eq!(
        err("vector(0x1)"),
        r#"parse error : unable to parse vectorExpr as a float: strconv.ParseFloat: parsing "0x1": invalid syntax"#
    );
    assert_eq!(
        err(r#"quantile_over_time(0x1, {a="b"} | unwrap x [1m])"#),
        r#"parse error : invalid parameter for operation quantile_over_time: strconv.ParseFloat: parsing "0x1": invalid syntax"#
    );
    assert_eq!(
        err(r#"{a="b"} / 2"#),
        "parse error : unexpected type for left leg of binary operation (/): *syntax.MatchersExpr"
    );
    assert_eq!(
        err(r#"2 * {a="b"} |= "x""#),
        "parse error : unexpected type for right leg of binary operation (*): *syntax.PipelineExpr"
    );
}

#[test]
fn keywords_functions_and_names() {
    // Case-insensitive keywords and functions.
    assert_eq!(
        ok(r#"SUM BY (a) (Rate({x="y"} |= "a" | JSON [1m]))"#).to_string(),
        r#"sum by (a)(rate({x="y"} |= "a" | json[1m]))"#
    );
    // Function words are names when not called.
    assert_eq!(
        ok(r#"{rate="a", sum="b", ip="c", bytes="d"} | vector > 1 | count_over_time="x""#)
            .to_string(),
        r#"{rate="a", sum="b", ip="c", bytes="d"} | vector>1 | count_over_time="x""#
    );
    assert_eq!(
        ok(r#"sum by (rate, bytes) (rate({a="b"} | unwrap bytes [1m]))"#).to_string(),
        r#"sum by (rate,bytes)(rate({a="b"} | unwrap bytes[1m]))"#
    );
    // Plain keywords are never names.
    assert!(err(r#"{by="a"}"#).contains("unexpected by"));
    assert!(err(r#"{json="a"}"#).contains("unexpected json"));
}

#[test]
fn ranges_offsets_and_unwraps() {
    let same = [
        r#"count_over_time({a="b"} |= "x" [5m])"#,
        r#"count_over_time({a="b"}[5m] |= "x")"#,
        r#"count_over_time(({a="b"} |= "x")[5m])"#,
        r#"count_over_time(({a="b"} |= "x" [5m]))"#,
    ];
    let want = ok(same[0]);
    for q in same {
        assert_eq!(ok(q), want, "{q}");
    }
    assert_eq!(
        ok(r#"sum_over_time({a="b"}[5m] offset -30s | logfmt | unwrap duration_seconds(d) | d > 1s)"#)
            .to_string(),
        r#"sum_over_time({a="b"} | logfmt | unwrap duration_seconds(d) | d>1s[5m] offset -30s)"#
    );
    assert_eq!(
        ok(r#"rate(({a="b"})[1m] offset 1h | unwrap x)"#).to_string(),
        r#"rate({a="b"} | unwrap x[1m] offset 1h0m0s)"#
    );
    // `[..]` only takes Prometheus durations; offsets and filters also Go's.
    assert!(err(r#"rate({a="b"}[1.5m])"#).contains(r#"unknown unit "." in duration "1.5m""#));
    assert_eq!(
        ok(r#"rate({a="b"}[1d] offset 1.5m)"#).to_string(),
        r#"rate({a="b"}[1d] offset 1m30s)"#
    );
}

#[test]
fn label_filter_grouping() {
    let cases = [
        (r#"| a=1 or b=2 and c=3"#, "| ( a==1 or ( b==2 , c==3 ) )"),
        (r#"| a=1 and b=2 or c=3"#, "| ( ( a==1 , b==2 ) or c==3 )"),
        (r#"| a=1, b=2 or c=3"#, "| ( a==1 , ( b==2 or c==3 ) )"),
        (r#"| a=1 b=2 or c=3"#, "| ( a==1 , ( b==2 or c==3 ) )"),
        (r#"| (a=1 or b=2) c=3"#, "| ( ( a==1 or b==2 ) , c==3 )"),
        (r#"| a="x" or b=~"y""#, r#"| ( a="x" or b=~"y" )"#),
        (
            r#"| a >= 2.5KiB, b < 5ms, c != ip("::1")"#,
            "| ( a>=2560B , ( b<5ms , c!=ip(\"::1\") ) )",
        ),
    ];
    for (f, want) in cases {
        let q = format!(r#"{{x="y"}} {f}"#);
        assert_eq!(ok(&q).to_string(), format!(r#"{{x="y"}} {want}"#), "{q}");
    }
}

#[test]
fn entry_points() {
    assert_eq!(
        parse_sample_expr(r#"{a="b"}"#).unwrap_err().to_string(),
        "only sample expression supported"
    );
    assert_eq!(
        parse_log_selector(r#"rate({a="b"}[1m])"#, true)
            .unwrap_err()
            .to_string(),
        "only log selector is supported"
    );
    assert!(parse_log_selector(r#"{a=~".*"}"#, false).is_ok());
    assert!(parse_log_selector(r#"{a=~".*"}"#, true).is_err());
    assert_eq!(
        parse_matchers(r#"{a="b"} |= "x""#, true)
            .unwrap_err()
            .to_string(),
        "only label matchers are supported"
    );
    assert_eq!(parse_matchers(r#"{a="b", c!~"d"}"#, true).unwrap().len(), 2);
    assert_eq!(
        parse_expr_bytes(b"{app=~\"\xa0\xa1\"}")
            .unwrap_err()
            .to_string(),
        "parse error at line 1, col 7: invalid UTF-8 encoding"
    );
    assert!(parse_expr_bytes(br#"{app="x"}"#).is_ok());
    // A comment-only query.
    assert_eq!(
        err("# nothing here"),
        "parse error at line 1, col 15: syntax error: unexpected $end"
    );
}

#[test]
fn binary_operations() {
    assert_eq!(ok("2 ^ 3 ^ 2").to_string(), "512");
    assert_eq!(ok("1 + 2 * 3").to_string(), "7");
    assert_eq!(ok("-1 ^ 2").to_string(), "1");
    assert_eq!(ok("1 / 0").to_string(), "NaN");
    let q = r#"rate({a="b"}[1m]) > bool 1 * 2 or rate({c="d"}[1m]) unless on () vector(1)"#;
    assert_eq!(
        ok(q).to_string(),
        r#"((rate({a="b"}[1m]) > bool 2) or (rate({c="d"}[1m]) unless on ()  vector(1.000000)))"#
    );
    assert_eq!(
        ok(r#"rate({a="b"}[1m]) / ignoring (x) group_left () sum(rate({a="b"}[1m]))"#).to_string(),
        r#"(rate({a="b"}[1m]) / ignoring (x) group_left sum(rate({a="b"}[1m])))"#
    );
    assert!(err("bool 1").contains("unexpected bool"));
    assert!(err(r#"sum(rate({a="b"}[1m])) by (x) bool > 1"#).contains("unexpected bool"));
}
