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
