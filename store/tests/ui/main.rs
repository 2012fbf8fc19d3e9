//! The web UI in a real browser: Debian's headless Chromium, driven over
//! WebDriver (`chromedriver`, through the `fantoccini` client), against a
//! real `larch-store` with data pushed through the push API. Each step is
//! what a person does: load `/`, type a query and press Ctrl+Enter, open
//! a line and filter on one of its labels, draw a metric query, make a
//! parse error, follow a live tail, and open the URL of a view again; and,
//! with tokens on, sign in with a token when the store asks for one.
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

use fantoccini::{Client, ClientBuilder, Locator};
use larch_testkit::{ProcessBuilder, StoreProcess, free_port, now_ns};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a step may take to show its result.
const PATIENCE: Duration = Duration::from_secs(15);

/// WebDriver's key codes.
const CTRL: &str = "\u{E009}";
const ENTER: &str = "\u{E007}";
const BACKSPACE: &str = "\u{E003}";
const TAB: &str = "\u{E004}";
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

struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    // Dropped after the client: the driver and the browser's profile.
    _driver: larch_testkit::Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: String) -> Browser {
        Browser::start_with(base, &[]).await
    }

    /// A browser with Chromium flags of its own (`--force-dark-mode`).
    async fn start_with(base: String, extra: &[&str]) -> Browser {
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
        Browser {
            client,
            base,
            shots: screenshot_dir(),
            _driver: driver,
            _profile: profile,
        }
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
        let held = self
            .js("return document.querySelector('#query').value;")
            .await;
        assert_eq!(held, json!(query));
        if run {
            q.send_keys(&format!("{CTRL}{ENTER}{RELEASE}"))
                .await
                .unwrap();
        }
    }

    /// The log lines shown, top to bottom.
    async fn lines(&self) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll('#logs .log-line')].map(e => e.textContent);")
            .await;
        serde_json::from_value(v).unwrap()
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }
}

fn push(store: &StoreProcess, app: &str, lines: &[(i64, &str, &str)]) {
    push_as(store, None, app, lines)
}

fn push_as(store: &StoreProcess, tenant: Option<&str>, app: &str, lines: &[(i64, &str, &str)]) {
    let values: Vec<Value> = lines
        .iter()
        .map(|(ts, level, line)| json!([ts.to_string(), line, {"detected_level": level}]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app, "env": "test"}, "values": values}]});
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let r = larch_testkit::http::request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_browser() {
    let store = StoreProcess::builder().start();
    let now = now_ns();
    let min = 60_000_000_000i64;
    let levels = ["info", "info", "warn", "info", "error"];
    let texts: Vec<String> = (0..30)
        .map(|i| format!("level={} msg=\"request {i}\" took={i}ms", levels[i % 5]))
        .collect();
    let batch: Vec<(i64, &str, &str)> = (0..30)
        .map(|i| {
            (
                now - (30 - i as i64) * min,
                levels[i % 5],
                texts[i].as_str(),
            )
        })
        .collect();
    push(&store, "shop", &batch);

    let b = Browser::start(store.addr()).await;

    // 1. Load `/`, type a query, Ctrl+Enter: the pushed lines, newest
    // first, each with its level, and the volume histogram by level.
    b.client.goto(&format!("{}/", b.base)).await.unwrap();
    b.until(
        "the page's script",
        "return !!document.querySelector('#range option');",
    )
    .await;
    b.type_query(r#"{app="shop"}"#, true).await;
    b.until(
        "30 lines",
        "return document.querySelectorAll('#logs li').length === 30;",
    )
    .await;
    let lines = b.lines().await;
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
    b.client
        .find(Locator::Css("#logs li .log-head"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    b.client
        .find(Locator::Css(
            "#logs li .log-details button[data-filter='out'][data-name='detected_level']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    b.client
        .find(Locator::Css("#type option[value='instant']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.type_query(r#"sum(count_over_time({app="shop"}[1h]))"#, true)
        .await;
    let cell = b
        .until(
            "the table",
            "return document.querySelector('#table td.num')?.textContent;",
        )
        .await;
    assert_eq!(cell, json!("30"));
    b.client
        .find(Locator::Css("#type option[value='range']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

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
    b.client
        .find(Locator::Css("#live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "the tail to open",
        "return document.querySelector('#status').textContent.startsWith('Live tail live');",
    )
    .await;
    push(
        &store,
        "live",
        &[(now_ns(), "info", "for the default tenant")],
    );
    push_as(
        &store,
        Some("team-live"),
        "live",
        &[(now_ns(), "warn", "pushed during the test")],
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
    b.client
        .find(Locator::Css("#live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    b.client
        .find(Locator::Css("#range option[value='3h']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.client
        .find(Locator::Css("#direction option[value='forward']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.client
        .find(Locator::Css("#run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    b.until(
        "the same 11 lines",
        "return document.querySelectorAll('#logs li').length === 11;",
    )
    .await;
    assert_eq!(b.lines().await, shown);
    let controls = b
        .js("return ['query', 'range', 'direction'].map(id => document.getElementById(id).value);")
        .await;
    assert_eq!(
        controls,
        json!([r#"{app="shop"} |= "request 1""#, "3h", "forward"])
    );
    b.shot("06-url").await;

    b.client.close().await.unwrap();
}

/// Pushes lines `"<prefix> <i>"` for `i` in `range` to one stream, one
/// nanosecond apart, in one request.
fn push_many(store: &StoreProcess, app: &str, prefix: &str, range: std::ops::Range<usize>) {
    let first = now_ns();
    let values: Vec<Value> = range
        .enumerate()
        .map(|(k, i)| json!([(first + k as i64).to_string(), format!("{prefix} {i}")]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let r = larch_testkit::http::request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The editor completes label names and values from the store; "Load
/// more" pages through a result larger than the line limit; a live tail
/// pauses, keeps at most 1000 waiting lines and shows at most 1000; an
/// absolute range chosen in the picker runs, is in the URL, and the URL
/// alone gives the same view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_paging_tail_buffer_and_absolute_range() {
    let store = StoreProcess::builder().start();
    let now = now_ns();
    let min = 60_000_000_000i64;
    let texts: Vec<String> = (0..30).map(|i| format!("request {i}")).collect();
    let batch: Vec<(i64, &str, &str)> = (0..30)
        .map(|i| (now - (30 - i as i64) * min, "info", texts[i].as_str()))
        .collect();
    push(&store, "shop", &batch);
    push(&store, "shelf", &[(now - min, "info", "on the shelf")]);
    let b = Browser::start(store.addr()).await;
    b.client.goto(&format!("{}/", b.base)).await.unwrap();
    b.until(
        "the page's script",
        "return !!document.querySelector('#range option');",
    )
    .await;

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
    let value = b.js("return document.querySelector('#query').value;").await;
    assert_eq!(value, json!("{app"));
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
    let value = b.js("return document.querySelector('#query').value;").await;
    assert_eq!(value, json!(r#"{app="shop"}"#));

    // 2. Load more: a limit of 10 over 30 lines; each page asks again for
    // the boundary line and shows it once.
    b.client
        .find(Locator::Css("#limit"))
        .await
        .unwrap()
        .send_keys(&format!("{CTRL}a{RELEASE}{BACKSPACE}10"))
        .await
        .unwrap();
    b.client
        .find(Locator::Css("#run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    b.client
        .find(Locator::Css("#live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "the tail to open",
        "return document.querySelector('#status').textContent.startsWith('Live tail live');",
    )
    .await;
    push_many(&store, "flood", "before the pause", 0..1);
    b.until(
        "the first live line",
        "return document.querySelectorAll('#logs li').length === 1;",
    )
    .await;
    let pause = b.client.find(Locator::Css("#pause")).await.unwrap();
    pause.click().await.unwrap();
    b.until(
        "the tail paused",
        "return document.querySelector('#status').textContent.startsWith('Live tail paused, 0 waiting');",
    )
    .await;
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
        push_many(&store, "flood", "flood", k * 400..(k + 1) * 400);
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
    pause.click().await.unwrap();
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
    b.client
        .find(Locator::Css("#live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // 4. An absolute range from the picker: lines 10 to 19 of the shop.
    b.type_query(r#"{app="shop"}"#, false).await;
    b.client
        .find(Locator::Css("#range option[value='custom']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "the absolute inputs",
        "return !document.querySelector('#absolute').hidden;",
    )
    .await;
    let (from_ms, to_ms) = (
        (now - 20 * min) / 1_000_000 - 30_000,
        (now - 11 * min) / 1_000_000 + 30_000,
    );
    // datetime-local inputs take local time to the second.
    let set = format!(
        "const local = (ms) => {{ const d = new Date(ms); const p = (n) => String(n).padStart(2, '0'); \
         return `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}`; }}; \
         document.querySelector('#from').value = local({from_ms}); document.querySelector('#to').value = local({to_ms}); \
         return [Math.floor({from_ms} / 1000) * 1000, Math.floor({to_ms} / 1000) * 1000];"
    );
    let bounds = b.js(&set).await;
    b.client
        .find(Locator::Css("#run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "10 lines in the absolute range",
        "return document.querySelectorAll('#logs li').length === 10;",
    )
    .await;
    let in_range: Vec<String> = (10..20).rev().map(|i| texts[i].clone()).collect();
    assert_eq!(b.lines().await, in_range);
    let url = b.url().await;
    assert!(
        url.contains(&format!("from={}", bounds[0])) && url.contains(&format!("to={}", bounds[1])),
        "{url} {bounds}"
    );
    b.shot("14-absolute-range").await;
    // The address alone, opened afresh: the same lines and controls.
    b.client.goto("about:blank").await.unwrap();
    b.client.goto(&url).await.unwrap();
    b.until(
        "the same 10 lines",
        "return document.querySelectorAll('#logs li').length === 10;",
    )
    .await;
    assert_eq!(b.lines().await, in_range);
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
        "shop",
        &[
            (now - 3_000_000_000, "info", "level=info msg=ok"),
            (now - 2_000_000_000, "warn", "level=warn msg=slow"),
            (now - 1_000_000_000, "error", "level=error msg=failed"),
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
        let b = Browser::start_with(store.addr(), extra).await;
        b.client
            .goto(&format!("{}/?query=%7Bapp%3D%22shop%22%7D", b.base))
            .await
            .unwrap();
        b.until(
            "three lines",
            "return document.querySelectorAll('#logs li').length === 3;",
        )
        .await;
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

/// A token of `larch-store token new` for `tenant` with `access`, and
/// its entry for the tokens file.
fn new_token(name: &str, tenant: &str, access: &str) -> (String, String) {
    let out = std::process::Command::new(larch_testkit::binary("larch-store"))
        .args([
            "token",
            "new",
            "--name",
            name,
            "--tenants",
            tenant,
            "--access",
            access,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (token, rest) = text.split_once('\n').unwrap();
    let entry: String = rest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    (token.to_string(), entry)
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
    let store = StoreProcess::builder()
        .config(format!("auth:\n  tokens_file: {}\n", tokens_file.display()))
        .start();
    let body = json!({"streams": [{"stream": {"app": "vault"}, "values": [[now_ns().to_string(), "behind a token"]]}]});
    let auth = format!("Bearer {writer}");
    let r = larch_testkit::http::request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());

    let b = Browser::start(store.addr()).await;
    b.client.goto(&format!("{}/", b.base)).await.unwrap();
    b.until(
        "the page's script",
        "return !!document.querySelector('#range option');",
    )
    .await;
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
    b.client
        .find(Locator::Css("#token-dialog button[value='ok']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "the line behind the token",
        "return document.querySelectorAll('#logs li').length === 1;",
    )
    .await;
    assert_eq!(b.lines().await, ["behind a token"]);
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
    push(&store, "ws", &[(now_ns(), "info", "default tenant")]);
    push_as(
        &store,
        Some("team-ws"),
        "ws",
        &[(now_ns(), "info", "team-ws line")],
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
