//! `larch query --parallel-duration --parallel-max-workers
//! --part-path-prefix --merge-parts`: the range in parts, fetched at once,
//! printed in order; part files named as logcli names them, kept across
//! runs and not fetched twice.

use crate::fixture::fixture;

/// The fixture's six lines, oldest first.
const LINES: [&str; 6] = [
    "GET /users 200",
    "POST /login 200",
    "GET /orders 500 error",
    "GET /users 404 error",
    "  padded line  ",
    "rendered page",
];

#[test]
fn parts_fetched_at_once_print_in_order() {
    let f = fixture();
    let q = r#"{env=~".+"}"#;
    // Two-second parts, three at a time; the limit does not apply.
    let args = |extra: &[&str]| {
        let mut a = vec![
            "query",
            "-q",
            "-o",
            "raw",
            "--limit",
            "2",
            "--parallel-duration",
            "2s",
            "--parallel-max-workers",
            "3",
        ];
        a.extend(extra);
        a.push(q);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        f.ranged(&a).run()
    };
    let r = run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let want_backward: Vec<&str> = LINES.iter().rev().copied().collect();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), want_backward);
    let r = run(&["--forward"]);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), LINES);

    // Into part files: nothing on stdout, one file per part of the minute.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("web").display().to_string();
    let r = run(&["--forward", "--part-path-prefix", &prefix]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 30, "{names:?}");
    let start = chrono::DateTime::from_timestamp_nanos(f.base);
    let first = format!(
        "web_{}_{}.part",
        start.format("%Y%m%dT%H%M%S"),
        (start + chrono::Duration::seconds(2)).format("%Y%m%dT%H%M%S")
    );
    assert_eq!(names[0], first);
    assert!(
        names.iter().all(|n| n.ends_with(".part")),
        "no temporary file left"
    );
    let content = std::fs::read_to_string(dir.path().join(&first)).unwrap();
    assert_eq!(content, "GET /users 200\n", "the part of seconds 0 to 2");

    // Again, merged: complete parts are not fetched again (said on
    // stderr without -q), printed in order, then deleted.
    let a = args(&["--forward", "--part-path-prefix", &prefix, "--merge-parts"]);
    let a: Vec<&str> = a
        .iter()
        .filter(|s| *s != "-q")
        .map(String::as_str)
        .collect();
    let r = f.ranged(&a).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), LINES);
    assert_eq!(
        r.stderr.matches("already downloaded").count(),
        30,
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // --keep-parts keeps them; one worker makes one part of the range.
    let r = f
        .ranged(&[
            "query",
            "-q",
            "-o",
            "raw",
            "--limit",
            "2",
            "--forward",
            "--part-path-prefix",
            &prefix,
            "--merge-parts",
            "--keep-parts",
            q,
        ])
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        LINES[..2],
        "one worker keeps --limit"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
