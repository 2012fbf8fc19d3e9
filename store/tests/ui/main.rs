//! The web UI in a real browser: Debian's headless Chromium, driven over
//! WebDriver (`chromedriver`, through the `fantoccini` client), against a
//! real `larch-store` with data pushed through the push API. Each step is
//! what a person does: load `/`, type a query and press Ctrl+Enter, open
//! a line and filter for or out one of its labels, metadata or parsed
//! fields, draw a metric query, make a parse error, follow a live tail,
//! open the URL of a view again, go through a whole session by keyboard
//! alone; and, with tokens on, sign in with a token when the store asks
//! for one.
//!
//! A screenshot of every step is written to `target/ui-screenshots/`
//! (kept by the test run; the README's picture is one of them).
//!
//! Chromium and chromedriver are installed by `scripts/install-test-deps`
//! (`apt-get install chromium chromium-driver`); without them the test
//! fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use larch_testkit::tokens::new_token;
use larch_testkit::{ProcessBuilder, StoreBuilder, StoreProcess, free_port, now_ns};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a step may take to show its result.
const PATIENCE: Duration = Duration::from_secs(15);

/// A minute in nanoseconds.
const MIN: i64 = 60_000_000_000;

/// WebDriver's key codes.
const CTRL: &str = "\u{E009}";
const SHIFT: &str = "\u{E008}";
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";
const BACKSPACE: &str = "\u{E003}";
const TAB: &str = "\u{E004}";
const UP: &str = "\u{E013}";
const DOWN: &str = "\u{E015}";
/// Releases the modifier keys held down.
const RELEASE: &str = "\u{E000}";

/// Where the screenshots go: `<target>/ui-screenshots/`, beside the
/// profile directory this test was built into.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/ui-<hash>
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One log line to push: its time (ns), text and structured metadata.
struct Line {
    ts: i64,
    text: String,
    metadata: Vec<(String, String)>,
}

impl Line {
    fn new(ts: i64, text: impl Into<String>) -> Line {
        Line {
            ts,
            text: text.into(),
            metadata: Vec::new(),
        }
    }

    /// A line with its level as `detected_level` metadata.
    fn at_level(ts: i64, level: &str, text: impl Into<String>) -> Line {
        Line::new(ts, text).meta("detected_level", level)
    }

    /// The line with one more structured metadata entry.
    fn meta(mut self, name: &str, value: &str) -> Line {
        self.metadata.push((name.to_string(), value.to_string()));
        self
    }
}

/// Lines `"<prefix> <i>"` for `i` in `range`, one nanosecond apart from now.
fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<Line> {
    let first = now_ns();
    range
        .enumerate()
        .map(|(k, i)| Line::new(first + k as i64, format!("{prefix} {i}")))
        .collect()
}

/// Pushes `lines` to the stream of `labels` in one request, with extra
/// request `headers` (a tenant, a token); fails the test unless the store
/// takes them (204).
fn push_with(
    store: &StoreProcess,
    headers: &[(&str, &str)],
    labels: &[(&str, &str)],
    lines: &[Line],
) {
    let values: Vec<Value> = lines
        .iter()
        .map(|l| {
            if l.metadata.is_empty() {
                json!([l.ts.to_string(), l.text])
            } else {
                let meta: serde_json::Map<String, Value> = l
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!([l.ts.to_string(), l.text, meta])
            }
        })
        .collect();
    let stream: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let body = json!({"streams": [{"stream": stream, "values": values}]});
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let r = store
        .request(
            "POST",
            "/loki/api/v1/push",
            &all,
            body.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// Pushes `lines` to the stream of `labels` for the default tenant.
fn push(store: &StoreProcess, labels: &[(&str, &str)], lines: &[Line]) {
    push_with(store, &[], labels, lines)
}

/// The labels of the test's usual streams: `{app, env="test"}`.
fn app(app: &str) -> [(&str, &str); 2] {
    [("app", app), ("env", "test")]
}

/// A store of its own (from `builder`) and a browser on its page.
async fn store_and_page(builder: StoreBuilder) -> (StoreProcess, Browser) {
    let store = builder.start();
    let b = Browser::open(&store, "/", &[]).await;
    (store, b)
}

/// Where the keyboard's focus is: the element's id (or class), its text,
/// and whether a focus indicator (an outline or a box shadow) is drawn.
const FOCUSED: &str = "const e = document.activeElement; const s = getComputedStyle(e); \
    return { id: e.id || e.className, text: e.textContent.trim().slice(0, 80), \
    ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none' };";

struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    // Dropped after the client: the driver and the browser's profile.
    _driver: larch_testkit::Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser with Chromium flags of its own (`--force-dark-mode`) on
    /// the store's page at `path`, its script loaded.
    async fn open(store: &StoreProcess, path: &str, extra: &[&str]) -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run scripts/install-test-deps (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = free_port();
        let driver = ProcessBuilder::new("chromedriver", CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .ready(port, "/status")
            .start();
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,820",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        let b = Browser {
            client,
            base: store.addr(),
            shots: screenshot_dir(),
            _driver: driver,
            _profile: profile,
        };
        b.goto(path).await;
        b
    }

    /// Opens `path` of the store afresh and waits for the page's script.
    async fn goto(&self, path: &str) {
        self.client.goto("about:blank").await.unwrap();
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.until(
            "the page's script",
            "return !!document.querySelector('#range option');",
        )
        .await;
    }

    /// Runs `script` (a function body) in the page; its return value.
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` returns something truthy; that value.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let state = self
                    .js("return document.body.innerText.slice(0, 2000);")
                    .await;
                panic!("waited {PATIENCE:?} for {what}; the page shows:\n{state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Clicks the element `css` selects.
    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Picks the option `value` of the `<select>` with id `select`.
    async fn choose(&self, select: &str, value: &str) {
        self.click(&format!("#{select} option[value='{value}']"))
            .await;
    }

    /// Replaces the text of the input `css` selects by typing `text`.
    async fn fill(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(&format!("{CTRL}a{RELEASE}{BACKSPACE}{text}"))
            .await
            .unwrap();
    }

    /// Presses `keys` on whatever has the focus, as a keyboard does: each
    /// key down and up in turn, modifiers (Ctrl, Shift) held from where
    /// they are named to the end.
    async fn press(&self, keys: &str) {
        let modifiers = [CTRL, SHIFT].map(|m| m.chars().next().unwrap());
        let mut seq = KeyActions::new("keyboard".to_string());
        let mut held = Vec::new();
        for c in keys.chars() {
            seq = seq.then(KeyAction::Down { value: c });
            if modifiers.contains(&c) {
                held.push(c);
            } else {
                seq = seq.then(KeyAction::Up { value: c });
            }
        }
        for c in held.into_iter().rev() {
            seq = seq.then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(seq).await.unwrap();
    }

    /// Where the focus is (see [`FOCUSED`]), checked to be `id` (an id or
    /// a class name) with its focus indicator drawn.
    async fn focus_is(&self, id: &str) -> Value {
        let f = self.js(FOCUSED).await;
        assert_eq!(f["id"], json!(id), "the focus: {f}");
        assert_eq!(f["ring"], json!(true), "a visible focus indicator: {f}");
        f
    }

    /// Replaces the editor's text by typing, as a person would, and runs
    /// the query with Ctrl+Enter.
    async fn type_query(&self, query: &str, run: bool) {
        let q = self.client.find(Locator::Css("#query")).await.unwrap();
        q.click().await.unwrap();
        q.send_keys(&format!("{CTRL}a{RELEASE}{BACKSPACE}"))
            .await
            .unwrap();
        q.send_keys(query).await.unwrap();
        // What was typed is what the editor holds (completion may have
        // offered choices on the way; none was taken).
        assert_eq!(self.query().await, query);
        if run {
            q.send_keys(&format!("{CTRL}{ENTER}{RELEASE}"))
                .await
                .unwrap();
        }
    }

    /// The editor's text.
    async fn query(&self) -> String {
        let v = self
            .js("return document.querySelector('#query').value;")
            .await;
        v.as_str().unwrap().to_string()
    }

    /// The log lines shown, top to bottom.
    async fn lines(&self) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll('#logs .log-line')].map(e => e.textContent);")
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// Waits until `n` log lines are shown; those lines.
    async fn wait_lines(&self, n: usize) -> Vec<String> {
        self.until(
            &format!("{n} lines"),
            &format!("return document.querySelectorAll('#logs li').length === {n};"),
        )
        .await;
        self.lines().await
    }

    /// Waits until the status line starts with `prefix`.
    async fn wait_status(&self, prefix: &str) {
        self.until(
            &format!("the status {prefix:?}"),
            &format!(
                "return document.querySelector('#status').textContent.startsWith({});",
                json!(prefix)
            ),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }
}

/// Values with a quote, a backslash and letters beyond ASCII: the filter
/// buttons must quote them as LogQL reads them.
const REGION: &str = r#"ü "q" \s"#;
const USER: &str = r#"Zoë "the" \admin"#;
const PATH: &str = r#"C:\tmp "x" é"#;

/// The lines of the filter-button steps: two streams of `app="filters"`,
/// with a user in structured metadata and a JSON body (status, path),
/// pushed oldest first; their texts in that order.
fn push_filter_lines(store: &StoreProcess, now: i64) -> Vec<String> {
    let lines: Vec<(&str, &str, &str, &str)> = vec![
        ("eu", USER, "200", "/ok"),
        ("eu", "bob", "500", PATH),
        (REGION, USER, "200", PATH),
        (REGION, "bob", "404", "/missing"),
        (REGION, "bob", "200", "/b"),
    ];
    let mut texts = Vec::new();
    for (i, (region, user, status, path)) in lines.into_iter().enumerate() {
        let text = json!({"status": status, "path": path}).to_string();
        let ts = now - (10 - i as i64) * 1_000_000_000;
        push(
            store,
            &[("app", "filters"), ("region", region)],
            &[Line::new(ts, text.clone()).meta("user", user)],
        );
        texts.push(text);
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_browser() {
    let store = StoreProcess::builder().start();
    let now = now_ns();
    let levels = ["info", "info", "warn", "info", "error"];
    let texts: Vec<String> = (0..30)
        .map(|i| format!("level={} msg=\"request {i}\" took={i}ms", levels[i % 5]))
        .collect();
    let batch: Vec<Line> = (0..30)
        .map(|i| Line::at_level(now - (30 - i as i64) * MIN, levels[i % 5], &texts[i]))
        .collect();
    push(&store, &app("shop"), &batch);
    let filter_texts = push_filter_lines(&store, now);

    let b = Browser::open(&store, "/", &[]).await;

    // 1. Load `/`, type a query, Ctrl+Enter: the pushed lines, newest
    // first, each with its level, and the volume histogram by level.
    b.type_query(r#"{app="shop"}"#, true).await;
    let lines = b.wait_lines(30).await;
    assert_eq!(lines[0], texts[29], "newest first");
    assert_eq!(lines[29], texts[0]);
    let level = b
        .js("return document.querySelector('#logs li').className;")
        .await;
    assert_eq!(level, json!("log lvl-error"), "texts[29] is an error line");
    b.until(
        "the histogram's error bars",
        "return document.querySelectorAll('#histogram rect.bar.lvl-error').length;",
    )
    .await;
    let stats = b
        .until(
            "the statistics",
            "return document.querySelector('#stats').textContent;",
        )
        .await;
    assert!(stats.as_str().unwrap().contains("30 returned"), "{stats}");
    let url = b.url().await;
    assert!(url.contains("query=%7Bapp%3D%22shop%22%7D"), "{url}");
    b.shot("01-logs").await;

    // 2. Open the newest line: its labels and structured metadata, and a
    // button that filters for a value, which edits the query and runs it.
    b.click("#logs li .log-head").await;
    let details = b
        .until(
            "the line's details",
            "return document.querySelector('#logs li .log-details')?.innerText;",
        )
        .await;
    let details = details.as_str().unwrap();
    assert!(
        details.contains("env") && details.contains("detected_level"),
        "{details}"
    );
    b.shot("02-details").await;
    b.click("#logs li .log-details button[data-filter='out'][data-name='detected_level']")
        .await;
    let query = b
        .until(
            "the edited query",
            "const v = document.querySelector('#query').value; return v.includes('detected_level') && v;",
        )
        .await;
    assert_eq!(query, json!(r#"{app="shop"} | detected_level!="error""#));
    b.until(
        "24 lines without errors",
        "return document.querySelectorAll('#logs li').length === 24 && !document.querySelector('#logs li.lvl-error');",
    )
    .await;

    // 2b. Filter buttons on stream labels, structured metadata and parsed
    // fields, written as Grafana's Explore writes them: a stream label as
    // a matcher of the selector; metadata and parsed fields as a label
    // filter after the last parser or label filter; values quoted as
    // LogQL reads them. Each edit runs, and shows exactly the lines that
    // match (so the store parsed the quoting as meant).
    filter_buttons(&b, &filter_texts).await;

    // 3. A metric query draws a graph with a legend entry per series.
    b.type_query(
        r#"sum by (detected_level) (count_over_time({app="shop"}[5m]))"#,
        true,
    )
    .await;
    b.until(
        "three lines in the graph",
        "return document.querySelectorAll('#graph svg path.line').length === 3;",
    )
    .await;
    let legend = b
        .js("return [...document.querySelectorAll('#graph .legend button')].map(b => b.textContent);")
        .await;
    assert_eq!(
        legend,
        json!([
            r#"{detected_level="error"}"#,
            r#"{detected_level="info"}"#,
            r#"{detected_level="warn"}"#
        ])
    );
    assert_eq!(b.lines().await.len(), 0);
    b.shot("03-graph").await;

    // An instant query is a table.
    b.choose("type", "instant").await;
    b.type_query(r#"sum(count_over_time({app="shop"}[1h]))"#, true)
        .await;
    let cell = b
        .until(
            "the table",
            "return document.querySelector('#table td.num')?.textContent;",
        )
        .await;
    assert_eq!(cell, json!("30"));
    b.choose("type", "range").await;

    // 4. A parse error is shown at its column, as the store reports it.
    b.type_query(r#"{app="shop"} |= "#, false).await;
    let msg = b
        .until(
            "the parse error",
            "const e = document.querySelector('#parse-error'); return !e.hidden && e.textContent;",
        )
        .await;
    assert_eq!(
        msg,
        json!(
            "parse error at line 1, col 17: syntax error: unexpected $end, expecting STRING or ip"
        )
    );
    let mark = b
        .until(
            "the error mark",
            "return document.querySelector('#highlight mark.err')?.dataset.offset;",
        )
        .await;
    assert_eq!(mark, json!("16"), "column 17 is offset 16");
    b.shot("04-parse-error").await;

    // 5. Live tail, for another tenant: a line pushed to it while the page
    // follows shows up on top (the tenant travels in the WebSocket's
    // subprotocols); one pushed to the default tenant does not.
    b.type_query(r#"{app="live"}"#, false).await;
    b.until(
        "the parse error to go",
        "return document.querySelector('#parse-error').hidden;",
    )
    .await;
    let tenant = b.client.find(Locator::Css("#tenant")).await.unwrap();
    tenant.send_keys("team-live").await.unwrap();
    b.click("#live").await;
    b.wait_status("Live tail live").await;
    push(
        &store,
        &app("live"),
        &[Line::at_level(now_ns(), "info", "for the default tenant")],
    );
    push_with(
        &store,
        &[("X-Scope-OrgID", "team-live")],
        &app("live"),
        &[Line::at_level(now_ns(), "warn", "pushed during the test")],
    );
    b.until(
        "the live line",
        "return document.querySelector('#logs .log-line')?.textContent === 'pushed during the test';",
    )
    .await;
    assert_eq!(b.lines().await, ["pushed during the test"]);
    let url = b.url().await;
    assert!(
        url.contains("live=1") && url.contains("tenant=team-live"),
        "{url}"
    );
    b.shot("05-live-tail").await;
    b.click("#live").await;
    tenant
        .send_keys(&format!("{CTRL}a{RELEASE}{BACKSPACE}\t"))
        .await
        .unwrap();
    b.until(
        "the default tenant",
        "return !location.search.includes('tenant=');",
    )
    .await;

    // 6. The URL reproduces the view: another range and order, opened
    // afresh from its address; back returns to the previous view.
    b.type_query(r#"{app="shop"} |= "request 1""#, false).await;
    b.choose("range", "3h").await;
    b.choose("direction", "forward").await;
    b.click("#run").await;
    // "request 1" and "request 10".."request 19", oldest first.
    b.until(
        "11 lines",
        "return document.querySelectorAll('#logs li').length === 11;",
    )
    .await;
    let shown = b.lines().await;
    assert_eq!(shown[0], texts[1]);
    let url = b.url().await;
    assert!(
        url.contains("from=now-3h") && url.contains("direction=forward"),
        "{url}"
    );
    // Back: the run before (choosing the range ran it, newest first).
    b.client.back().await.unwrap();
    b.until(
        "the view before",
        "return document.querySelector('#direction').value === 'backward' && document.querySelectorAll('#logs li').length === 11;",
    )
    .await;
    assert_eq!(b.lines().await[0], texts[19]);
    b.client.forward().await.unwrap();
    b.until(
        "the view after",
        "return document.querySelector('#direction').value === 'forward' && document.querySelectorAll('#logs li').length === 11;",
    )
    .await;
    assert_eq!(b.lines().await, shown);
    // The address alone, opened afresh.
    b.client.goto("about:blank").await.unwrap();
    b.client.goto(&url).await.unwrap();
    assert_eq!(b.wait_lines(11).await, shown);
    let controls = b
        .js("return ['query', 'range', 'direction'].map(id => document.getElementById(id).value);")
        .await;
    assert_eq!(
        controls,
        json!([r#"{app="shop"} |= "request 1""#, "3h", "forward"])
    );
    b.shot("06-url").await;

    // 7. The whole session again by keyboard alone.
    keyboard_session(&b, &texts).await;

    b.client.close().await.unwrap();
}

/// Step 2b of [`the_ui_in_a_browser`]: the + and − buttons of an opened
/// line on `{app="filters"} | json` (see [`push_filter_lines`]).
async fn filter_buttons(b: &Browser, texts: &[String]) {
    // The edits as functions of the page's own module, on queries a
    // person may have typed: where each kind of filter goes.
    let edits = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/ui/logql.js').then((m) => done([
               m.addFilter('{app=\"a\"}', 'label', 'env', 'x', false),
               m.addFilter('{ app=\"a\" }', 'label', 'env', 'x', true),
               m.addFilter('{app=\"a\", env=\"x\"} |= \"y\"', 'label', 'env', 'x', true),
               m.addFilter('{app=\"a\"} |= \"y\"', 'metadata', 'user', 'bob', false),
               m.addFilter('{app=\"a\"} |= \"y\" | logfmt | line_format \"{{.msg}}\"', 'parsed', 'level', 'info', false),
               m.addFilter('{app=\"a\"} | json | level=\"info\" != \"z\"', 'parsed', 'level', 'info', true),
               m.addFilter('{app=\"a\"} | json | level!=\"info\"', 'parsed', 'level', 'info', true),
               m.addFilter('', 'label', 'app', 'a', false),
             ]), (e) => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        edits,
        json!([
            r#"{app="a", env="x"}"#,
            r#"{ app="a", env!="x" }"#,
            r#"{app="a", env!="x"} |= "y""#,
            r#"{app="a"} | user="bob" |= "y""#,
            r#"{app="a"} |= "y" | logfmt | level="info" | line_format "{{.msg}}""#,
            r#"{app="a"} | json | level!="info" != "z""#,
            r#"{app="a"} | json | level!="info""#,
            r#"{app="a"}"#,
        ])
    );

    // Presses a + (`in`) or − (`out`) button of the shown line `text`,
    // opening the line first.
    async fn press(b: &Browser, text: &str, filter: &str, kind: &str, name: &str) {
        let li = b
            .js(&format!(
                "const li = [...document.querySelectorAll('#logs li')].find(li => li.querySelector('.log-line').textContent === {});
                 if (!li.querySelector('.log-details')) li.querySelector('.log-head').click();
                 return [...document.querySelectorAll('#logs li')].indexOf(li) + 1;",
                json!(text)
            ))
            .await;
        b.click(&format!(
            "#logs li:nth-child({li}) .log-details button[data-filter='{filter}'][data-kind='{kind}'][data-name='{name}']"
        ))
        .await;
    }
    // The query after an edit, and exactly the lines it shows.
    async fn shows(b: &Browser, query: &str, want: &[&String]) {
        b.until(
            "the edited query",
            &format!(
                "return document.querySelector('#query').value === {};",
                json!(query)
            ),
        )
        .await;
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        if want.is_empty() {
            b.wait_status("No lines in this range.").await;
        } else {
            b.until(
                "the matching lines",
                &format!(
                    "return JSON.stringify([...document.querySelectorAll('#logs .log-line')].map(e => e.textContent)) === {};",
                    json!(serde_json::to_string(&want).unwrap())
                ),
            )
            .await;
        }
        let error = b
            .js("return [document.querySelector('#error').hidden, document.querySelector('#parse-error').hidden];")
            .await;
        assert_eq!(error, json!([true, true]), "no error for {query}");
    }

    b.type_query(r#"{app="filters"} | json"#, true).await;
    let all: Vec<&String> = texts.iter().rev().collect();
    shows(b, r#"{app="filters"} | json"#, &all).await;
    // The parsed fields and metadata are there to filter on.
    press(b, &texts[2], "in", "label", "region").await;
    let q1 = r#"{app="filters", region="ü \"q\" \\s"} | json"#;
    shows(b, q1, &[&texts[4], &texts[3], &texts[2]]).await;
    let focus = b.js("return document.activeElement.id;").await;
    assert_eq!(focus, json!("results"), "the focus stays with the results");
    b.shot("02b-filter-label").await;
    press(b, &texts[3], "out", "parsed", "status").await;
    let q2 = format!(r#"{q1} | status!="404""#);
    shows(b, &q2, &[&texts[4], &texts[2]]).await;
    press(b, &texts[2], "in", "metadata", "user").await;
    let q3 = format!(r#"{q2} | user="Zoë \"the\" \\admin""#);
    shows(b, &q3, &[&texts[2]]).await;
    press(b, &texts[2], "in", "parsed", "path").await;
    let q4 = format!(r#"{q3} | path="C:\\tmp \"x\" é""#);
    shows(b, &q4, &[&texts[2]]).await;
    b.shot("02c-filter-parsed").await;
    // Filtering out the value filtered for replaces that filter.
    press(b, &texts[2], "out", "parsed", "path").await;
    let q5 = format!(r#"{q3} | path!="C:\\tmp \"x\" é""#);
    shows(b, &q5, &[]).await;
    // The same values for the other lines of the streams: one filter out
    // of a stream label.
    b.type_query(r#"{app="filters"} | json"#, true).await;
    shows(b, r#"{app="filters"} | json"#, &all).await;
    press(b, &texts[2], "out", "label", "region").await;
    shows(
        b,
        r#"{app="filters", region!="ü \"q\" \\s"} | json"#,
        &[&texts[1], &texts[0]],
    )
    .await;
}

/// Step 7 of [`the_ui_in_a_browser`]: a session by keyboard alone, from a
/// fresh page: focus order, completion, running, opening a line, its
/// filter buttons and a live tail with pause, each focused control with a
/// visible focus indicator.
async fn keyboard_session(b: &Browser, texts: &[String]) {
    b.goto("/").await;
    b.focus_is("query").await;
    // Shift+Tab goes back to the header's controls; Tab returns.
    b.press(&format!("{SHIFT}{TAB}")).await;
    b.focus_is("token-button").await;
    b.press(&format!("{SHIFT}{TAB}")).await;
    b.focus_is("tenant").await;
    b.press(&format!("{TAB}{TAB}")).await;
    b.focus_is("query").await;

    // Completion: `{` offers label names, Escape closes the list, and
    // Ctrl+Space opens it again; arrows move, Enter takes a name; Tab
    // takes a value.
    let list_open = "const l = document.querySelector('#suggestions'); return !l.hidden && [...l.children].map(li => li.textContent);";
    let active = "return document.getElementById(document.querySelector('#query').getAttribute('aria-activedescendant'))?.textContent;";
    b.press("{").await;
    b.until("label names offered", list_open).await;
    b.press(ESCAPE).await;
    let closed = b
        .js("return [document.querySelector('#suggestions').hidden, document.querySelector('#query').getAttribute('aria-expanded')];")
        .await;
    assert_eq!(closed, json!([true, "false"]));
    b.press(&format!("{CTRL} ")).await;
    let names = b.until("label names again", list_open).await;
    let at = names
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "app")
        .unwrap();
    b.press(&DOWN.repeat(at + 1)).await;
    b.press(UP).await;
    assert_eq!(b.js(active).await, json!("app"), "{names}");
    b.press(ENTER).await;
    b.until(
        "the name taken",
        "return document.querySelector('#query').value === '{app';",
    )
    .await;
    b.press("=").await;
    let values = b.until("values of app", list_open).await;
    let at = values
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "shop")
        .unwrap();
    b.press(&DOWN.repeat(at)).await;
    assert_eq!(b.js(active).await, json!("shop"));
    b.press(TAB).await;
    b.press("}").await;
    assert_eq!(b.query().await, r#"{app="shop"}"#);
    b.focus_is("query").await;
    b.press(&format!("{CTRL}{ENTER}")).await;
    assert_eq!(b.wait_lines(30).await[0], texts[29]);

    // Tab through the controls in order; a line limit typed in, and the
    // run button pressed with Enter.
    for id in ["range", "type", "limit"] {
        b.press(TAB).await;
        b.focus_is(id).await;
    }
    b.press(&format!("{CTRL}a")).await;
    b.press("5").await;
    for id in ["step", "direction", "run"] {
        b.press(TAB).await;
        b.focus_is(id).await;
    }
    b.press(ENTER).await;
    let five: Vec<String> = texts.iter().rev().take(5).cloned().collect();
    b.until(
        "5 lines and more to load",
        "return document.querySelectorAll('#logs li').length === 5 && !document.querySelector('#more').hidden;",
    )
    .await;
    assert_eq!(b.lines().await, five);
    b.press(TAB).await;
    b.focus_is("live").await;
    b.press(TAB).await;
    b.focus_is("log-head").await;
    b.press(&format!("{SHIFT}{TAB}")).await;
    b.focus_is("live").await;
    b.press(TAB).await;

    // A line opens with Enter, closes with Space, opens again.
    let expanded = "const h = document.querySelector('#logs li .log-head'); const d = h.parentElement.querySelector('.log-details'); return [h.getAttribute('aria-expanded'), !!d && !d.hidden];";
    b.press(ENTER).await;
    assert_eq!(b.js(expanded).await, json!(["true", true]));
    b.press(" ").await;
    assert_eq!(b.js(expanded).await, json!(["false", false]));
    b.press(ENTER).await;
    assert_eq!(b.js(expanded).await, json!(["true", true]));
    b.shot("17-keyboard-details").await;
    // Its buttons are next in the Tab order: the − of detected_level.
    let k = b
        .js("return [...document.querySelectorAll('#logs li .log-details button')].findIndex(x => x.dataset.filter === 'out' && x.dataset.name === 'detected_level') + 1;")
        .await;
    let k = k.as_u64().unwrap() as usize;
    assert!(k > 0);
    b.press(&TAB.repeat(k)).await;
    let f = b.focus_is("").await;
    assert_eq!(f["text"], json!("−"));
    let label = b
        .js("return document.activeElement.getAttribute('aria-label');")
        .await;
    assert_eq!(label, json!("Filter out detected_level=error"));
    b.press(ENTER).await;
    b.until(
        "the filtered query",
        "return document.querySelector('#query').value === '{app=\"shop\"} | detected_level!=\"error\"';",
    )
    .await;
    let no_errors: Vec<String> = [28, 27, 26, 25, 23]
        .iter()
        .map(|&i| texts[i].clone())
        .collect();
    b.until(
        "5 lines without errors",
        "return document.querySelectorAll('#logs li').length === 5 && !document.querySelector('#logs li.lvl-error');",
    )
    .await;
    assert_eq!(b.lines().await, no_errors);
    // The focus went to the results: Tab goes on to their first line.
    let focus = b.js("return document.activeElement.id;").await;
    assert_eq!(focus, json!("results"));
    b.press(TAB).await;
    b.focus_is("log-head").await;

    // Live tail started, paused, resumed and stopped from the keyboard.
    b.press(&format!("{SHIFT}{TAB}")).await;
    b.focus_is("live").await;
    b.press(" ").await;
    b.wait_status("Live tail live").await;
    b.press(TAB).await;
    b.focus_is("pause").await;
    b.press(" ").await;
    b.wait_status("Live tail paused").await;
    let pause = b
        .js("const p = document.querySelector('#pause'); return [p.getAttribute('aria-pressed'), p.textContent];")
        .await;
    assert_eq!(pause, json!(["true", "Resume"]));
    b.shot("18-keyboard-paused").await;
    b.press(ENTER).await;
    b.wait_status("Live tail live").await;
    b.focus_is("pause").await;
    b.press(&format!("{SHIFT}{TAB}")).await;
    b.focus_is("live").await;
    b.press(ENTER).await;
    b.until(
        "the tail stopped",
        "return document.querySelector('#live').getAttribute('aria-pressed') === 'false' && document.querySelector('#pause').hidden;",
    )
    .await;
    b.focus_is("live").await;
}

/// The editor completes label names and values from the store; "Load
/// more" pages through a result larger than the line limit; a live tail
/// pauses, keeps at most 1000 waiting lines and shows at most 1000; an
/// absolute range chosen in the picker runs, is in the URL, and the URL
/// alone gives the same view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_paging_tail_buffer_and_absolute_range() {
    let (store, b) = store_and_page(StoreProcess::builder()).await;
    let now = now_ns();
    let texts: Vec<String> = (0..30).map(|i| format!("request {i}")).collect();
    let batch: Vec<Line> = (0..30)
        .map(|i| Line::at_level(now - (30 - i as i64) * MIN, "info", &texts[i]))
        .collect();
    push(&store, &app("shop"), &batch);
    push(
        &store,
        &app("shelf"),
        &[Line::at_level(now - MIN, "info", "on the shelf")],
    );

    // 1. Completion: a label name, then a value, chosen from the lists the
    // store gives, with the keyboard.
    let q = b.client.find(Locator::Css("#query")).await.unwrap();
    q.click().await.unwrap();
    q.send_keys("{a").await.unwrap();
    let first = b
        .until(
            "label names offered",
            "const l = document.querySelector('#suggestions'); return !l.hidden && l.querySelector('li[aria-selected=true]')?.textContent;",
        )
        .await;
    assert_eq!(first, json!("app"));
    let names = b
        .js("return [...document.querySelectorAll('#suggestions li')].map(li => li.textContent);")
        .await;
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_str().unwrap().contains('a')),
        "{names}"
    );
    b.shot("09-complete-label").await;
    q.send_keys(TAB).await.unwrap();
    assert_eq!(b.query().await, "{app");
    q.send_keys("=\"sh").await.unwrap();
    let offered = b
        .until(
            "values of app offered",
            "const l = document.querySelector('#suggestions'); return !l.hidden && l.children.length === 2 && [...l.children].map(li => li.textContent);",
        )
        .await;
    assert_eq!(offered, json!(["shelf", "shop"]));
    b.shot("10-complete-value").await;
    q.send_keys(&format!("{DOWN}{ENTER}")).await.unwrap();
    b.until(
        "the value taken",
        "return document.querySelector('#suggestions').hidden && document.querySelector('#query').value === '{app=\"shop\"';",
    )
    .await;
    q.send_keys("}").await.unwrap();
    assert_eq!(b.query().await, r#"{app="shop"}"#);

    // 2. Load more: a limit of 10 over 30 lines; each page asks again for
    // the boundary line and shows it once.
    b.fill("#limit", "10").await;
    b.click("#run").await;
    b.until(
        "the first page",
        "return document.querySelectorAll('#logs li').length === 10 && !document.querySelector('#more').hidden;",
    )
    .await;
    let more = b.client.find(Locator::Css("#more")).await.unwrap();
    more.click().await.unwrap();
    b.until(
        "the second page",
        "return document.querySelectorAll('#logs li').length === 19 && !document.querySelector('#more').disabled;",
    )
    .await;
    b.shot("11-load-more").await;
    for want in [28, 30] {
        more.click().await.unwrap();
        b.until(
            &format!("{want} lines"),
            &format!("return document.querySelectorAll('#logs li').length === {want} && !document.querySelector('#more').disabled;"),
        )
        .await;
    }
    b.until(
        "no more to load",
        "return document.querySelector('#more').hidden;",
    )
    .await;
    let shown = b.lines().await;
    let newest_first: Vec<String> = texts.iter().rev().cloned().collect();
    assert_eq!(shown, newest_first, "every line once, newest first");

    // 3. Live tail: paused, lines wait, at most 1000 of them; resumed, the
    // page shows the newest 1000.
    b.type_query(r#"{app="flood"}"#, false).await;
    b.click("#live").await;
    b.wait_status("Live tail live").await;
    let flood = [("app", "flood")];
    push(&store, &flood, &numbered("before the pause", 0..1));
    b.wait_lines(1).await;
    b.click("#pause").await;
    b.wait_status("Live tail paused, 0 waiting").await;
    // 1600 lines in four pushes while paused: the page keeps the newest
    // 1000 waiting and counts the 600 it let go. Each push waits until the
    // page has the one before: a push of 400 lines is four frames, well
    // inside the store's ten-frame queue per tail, so the store itself
    // drops nothing (a slow client's drops are the store's own test).
    for (k, want) in [
        "400 waiting: 401 lines received.",
        "800 waiting: 801 lines received.",
        "1000 waiting: 1201 lines received, 200 dropped.",
        "1000 waiting: 1601 lines received, 600 dropped.",
    ]
    .into_iter()
    .enumerate()
    {
        push(&store, &flood, &numbered("flood", k * 400..(k + 1) * 400));
        b.until(
            want,
            &format!(
                "return document.querySelector('#status').textContent === 'Live tail paused, {want}';"
            ),
        )
        .await;
    }
    assert_eq!(
        b.lines().await,
        ["before the pause 0"],
        "nothing shown while paused"
    );
    b.shot("12-tail-paused").await;
    b.click("#pause").await;
    b.until(
        "the waiting lines shown",
        "return document.querySelector('#status').textContent.startsWith('Live tail live') && document.querySelectorAll('#logs li').length === 1000;",
    )
    .await;
    let lines = b.lines().await;
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[0], "flood 1599", "newest on top");
    assert_eq!(lines[999], "flood 600");
    b.shot("13-tail-bounded").await;
    b.click("#live").await;

    // 4. An absolute range from the picker: lines 10 to 19 of the shop.
    b.type_query(r#"{app="shop"}"#, false).await;
    b.choose("range", "custom").await;
    b.until(
        "the absolute inputs",
        "return !document.querySelector('#absolute').hidden;",
    )
    .await;
    let (from_ms, to_ms) = (
        (now - 20 * MIN) / 1_000_000 - 30_000,
        (now - 11 * MIN) / 1_000_000 + 30_000,
    );
    // datetime-local inputs take local time to the second.
    let set = format!(
        "const local = (ms) => {{ const d = new Date(ms); const p = (n) => String(n).padStart(2, '0'); \
         return `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}`; }}; \
         document.querySelector('#from').value = local({from_ms}); document.querySelector('#to').value = local({to_ms}); \
         return [Math.floor({from_ms} / 1000) * 1000, Math.floor({to_ms} / 1000) * 1000];"
    );
    let bounds = b.js(&set).await;
    b.click("#run").await;
    let in_range: Vec<String> = (10..20).rev().map(|i| texts[i].clone()).collect();
    assert_eq!(b.wait_lines(10).await, in_range);
    let url = b.url().await;
    assert!(
        url.contains(&format!("from={}", bounds[0])) && url.contains(&format!("to={}", bounds[1])),
        "{url} {bounds}"
    );
    b.shot("14-absolute-range").await;
    // The address alone, opened afresh: the same lines and controls.
    b.client.goto("about:blank").await.unwrap();
    b.client.goto(&url).await.unwrap();
    assert_eq!(b.wait_lines(10).await, in_range);
    let controls = b
        .js("return [document.querySelector('#range').value, document.querySelector('#absolute').hidden, document.querySelector('#from').value !== '', document.querySelector('#limit').value];")
        .await;
    assert_eq!(controls, json!(["custom", false, true, "10"]));
    b.client.close().await.unwrap();
}
/// Readable in light and dark mode: the page follows the system's scheme,
/// and log lines, the query and the buttons keep a contrast of at least
/// 4.5:1 (WCAG AA) against what is behind them in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readable_in_light_and_dark_mode() {
    let store = StoreProcess::builder().start();
    let now = now_ns();
    push(
        &store,
        &app("shop"),
        &[
            Line::at_level(now - 3_000_000_000, "info", "level=info msg=ok"),
            Line::at_level(now - 2_000_000_000, "warn", "level=warn msg=slow"),
            Line::at_level(now - 1_000_000_000, "error", "level=error msg=failed"),
        ],
    );
    // Relative luminance and contrast as WCAG defines them, of an
    // element's text against the first opaque background behind it.
    const CONTRAST: &str = "const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; const a = c.match(/[\\d.]+/g); if (a && (a.length < 4 || Number(a[3]) > 0.9)) return c; } return 'rgb(255, 255, 255)'; };
        const ratio = (el) => { const f = lum(getComputedStyle(el).color), b = lum(bg(el)); return (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05); };
        const sel = ['#logs .log-line', '#logs li.lvl-error .log-level', '#logs li.lvl-warn .log-level', '#logs li.lvl-info .log-level', '#logs .log-time', '#highlight', '#run', '#status', 'label[for=range]'];
        return { dark: matchMedia('(prefers-color-scheme: dark)').matches, body: lum(bg(document.body)), ratios: Object.fromEntries(sel.map((s) => [s, ratio(document.querySelector(s))])) };";
    for (dark, extra) in [(false, &[][..]), (true, &["--force-dark-mode"][..])] {
        let b = Browser::open(&store, "/?query=%7Bapp%3D%22shop%22%7D", extra).await;
        b.wait_lines(3).await;
        let got = b.js(CONTRAST).await;
        assert_eq!(got["dark"], json!(dark), "{got}");
        let body = got["body"].as_f64().unwrap();
        if dark {
            assert!(body < 0.1, "a dark page: {got}");
        } else {
            assert!(body > 0.8, "a light page: {got}");
        }
        for (sel, r) in got["ratios"].as_object().unwrap() {
            assert!(
                r.as_f64().unwrap() >= 4.5,
                "{sel} in {}: {got}",
                if dark { "dark" } else { "light" }
            );
        }
        b.shot(if dark { "16-dark" } else { "15-light" }).await;
        b.client.close().await.unwrap();
    }
}

/// With tokens on: the page loads without one, the first query is refused
/// and the page asks for a token; signed in, the query runs with it, and
/// the token is in the tab's session storage, never in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, e1) = new_token("ui-reader", "team-a", "read");
    let (writer, e2) = new_token("ui-writer", "team-a", "write");
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, format!("tokens:\n{e1}{e2}")).unwrap();
    let (store, b) = store_and_page(
        StoreProcess::builder()
            .config(format!("auth:\n  tokens_file: {}\n", tokens_file.display())),
    )
    .await;
    let auth = format!("Bearer {writer}");
    push_with(
        &store,
        &[("Authorization", &auth)],
        &[("app", "vault")],
        &[Line::new(now_ns(), "behind a token")],
    );

    b.type_query(r#"{app="vault"}"#, true).await;
    b.until(
        "the token dialog",
        "return document.querySelector('#token-dialog').open;",
    )
    .await;
    let error = b
        .js("return document.querySelector('#error').textContent;")
        .await;
    assert!(
        error.as_str().unwrap().contains("requires a token"),
        "{error}"
    );
    b.shot("07-sign-in").await;
    let input = b.client.find(Locator::Css("#token-input")).await.unwrap();
    input.send_keys(&reader).await.unwrap();
    b.click("#token-dialog button[value='ok']").await;
    assert_eq!(b.wait_lines(1).await, ["behind a token"]);
    let button = b
        .js("return document.querySelector('#token-button').textContent;")
        .await;
    assert_eq!(button, json!("Token set"));
    let kept = b.js("return sessionStorage.getItem('larch.token');").await;
    assert_eq!(kept, json!(reader));
    let url = b.url().await;
    assert!(!url.contains(&reader), "{url}");
    b.shot("08-signed-in").await;
    b.client.close().await.unwrap();
}

/// The page and its files over HTTP: types, the security policy, ETags.
#[test]
fn files_over_http() {
    let store = StoreProcess::builder().start();
    let get = |path: &str, headers: &[(&str, &str)]| {
        larch_testkit::http::get(store.http, path, headers).unwrap()
    };
    let page = get("/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self'"),
        "{csp}"
    );
    assert!(
        page.text()
            .contains("<script type=\"module\" src=\"/ui/main.js\"></script>")
    );
    let js = get("/ui/main.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("content-encoding"), Some("gzip"));
    let etag = js.header("etag").unwrap().to_string();
    let again = get("/ui/main.js", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(get("/ui/nothing.js", &[]).status, 404);
    assert_eq!(get("/ui/../Cargo.toml", &[]).status, 404);
    // The page's size: small enough to load at once on any link.
    let total: usize = [
        "/",
        "/ui/style.css",
        "/ui/main.js",
        "/ui/editor.js",
        "/ui/logql.js",
        "/ui/logs.js",
        "/ui/chart.js",
    ]
    .iter()
    .map(|p| get(p, &[("Accept-Encoding", "gzip")]).body.len())
    .sum();
    assert!(total < 64 * 1024, "{total} bytes");
}

/// A browser's WebSocket carries the tenant (and a token) as subprotocol
/// entries; the store treats them as the headers they stand for and
/// answers with the `larch` subprotocol.
#[tokio::test]
async fn tail_credentials_from_subprotocols() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let store = StoreProcess::builder().start();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let url = format!(
        "ws://127.0.0.1:{}/loki/api/v1/tail?query=%7Bapp%3D%22ws%22%7D&start={}",
        store.http,
        now_ns() - 60_000_000_000
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!(
            "larch, larch.tenant.{}, larch.bearer.{}",
            hex("team-ws"),
            hex("t0ken")
        )
        .parse()
        .unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "larch"
    );
    push(&store, &app("ws"), &[Line::new(now_ns(), "default tenant")]);
    push_with(
        &store,
        &[("X-Scope-OrgID", "team-ws")],
        &app("ws"),
        &[Line::new(now_ns(), "team-ws line")],
    );
    let text = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(m)) if m.is_text() => return m.into_text().unwrap().to_string(),
                Some(Ok(_)) => continue, // pings
                other => panic!("the tail ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a tail message");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["streams"][0]["values"][0][1], "team-ws line", "{v}");
}
