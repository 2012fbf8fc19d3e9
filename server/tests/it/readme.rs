//! Every command block of README.md (```` ```sh ````), run as written, with
//! its output checked; and every configuration block (```` ```yaml ````)
//! read by the binary it is for.
//!
//! # How a block is run
//!
//! Blocks run with `bash -e -o pipefail` in a fresh network namespace
//! (`unshare --net`, loopback up), so the README's fixed ports (3100, 3101,
//! 9095) belong to the test alone, and in a fresh directory holding a copy
//! of the repository's `larch.yaml`. The blocks of one *session* run one
//! after the other in one shell, so that a block can use what an earlier
//! one started ("with the stack running"); background processes are
//! stopped when the session ends. The directory of the built binaries is
//! first on `PATH` (the README's bare `larch ...` commands).
//!
//! The text of a block is kept verbatim except for these rules, applied
//! line by line:
//!
//! 1. `cargo build ...` is not run: the test kit built the binaries (in
//!    the test's profile) before the test started.
//! 2. `./target/release/` is the directory of those binaries.
//! 3. `cargo run --release --bin NAME -- ARGS` runs `NAME ARGS` from that
//!    directory. `larch-store` runs for as long as it is stopped, so it is
//!    started in the background instead, and the session waits for its
//!    `/ready` on port 3100 before going on.
//! 4. `./scripts/test-all` is not run: it is the command this test is part
//!    of.
//!
//! A block the tables below do not know fails the test, as does a block
//! that changed beyond its first line's match: a new command in the README
//! comes with its expected output here.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a session may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// A fenced block of the README.
#[derive(Debug, Clone)]
struct Block {
    /// Its first line in README.md (1-based), for messages.
    line: usize,
    /// The text between the fences.
    text: String,
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The blocks fenced as ```` ```lang ````.
fn blocks(text: &str, lang: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => {
                current = Some(Block {
                    line: i + 2,
                    text: String::new(),
                })
            }
            Some(_) if line.trim_end() == "```" => out.extend(current.take()),
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```{lang} block");
    out
}

/// What one `sh` block of the README is: its session, how its first line
/// starts, and what its output must contain.
struct Case {
    session: &'static str,
    first_line: &'static str,
    expect: &'static [&'static str],
}

/// Every `sh` block, in README order.
const CASES: &[Case] = &[
    Case {
        session: "stack",
        first_line: "# 1. Run the all-in-one stack",
        expect: &[],
    },
    Case {
        session: "stack",
        first_line: "mkdir -p pods/default_hello_0/app",
        expect: &["hello from a pod", "\"pushed directly\""],
    },
    Case {
        session: "stack",
        first_line: "larch-store token new --name agents-prod --tenants team-a --access write",
        expect: &[
            "# Add under `tokens:` in auth.tokens_file",
            "  sha256: ",
            "  access: write\n",
        ],
    },
    Case {
        session: "stack",
        first_line: "curl -s localhost:3100/services",
        expect: &[
            "server => Running\n",
            "ui => Running\n",
            "agent => Running\n",
            // the diff: larch.yaml's agent section
            "  http_addr: 127.0.0.1:3101\n",
            "  pods_dir: ./pods\n",
            // two lines of the effective configuration
            "shutdown_timeout: 20s\n",
            "  timeout: 5m\n",
            "larch-store 0.1.0 (Loki API 3.5.0)\n",
        ],
    },
    Case {
        session: "together",
        first_line: "cargo build --release --bin larch-store --bin larch-agent --bin larch",
        expect: &[
            "hello larch 1\n",
            "hello larch 2\n",
            "hello larch 3\n",
            "larch_agent_sent_entries_total",
        ],
    },
    Case {
        session: "stack",
        first_line: "export LARCH_ADDR=http://127.0.0.1:3100",
        expect: &[
            // push, then the filtered query
            "Pushed 2 lines",
            "level=error msg=\"job failed\" code=3\n",
            // -o jsonl
            r#""line":"level=info msg=\"job started\"""#,
            // the metric query and the instant query
            "\"level\": \"error\"",
            "\"2\"",
            // labels, label values, series, stats, volume
            "service_name\nbatch-job\n",
            "Total Streams:  1",
            "entries: 2",
            // detected fields and one field's values
            "label: code\t",
            "label: level\t",
            // the parallel download, oldest first
            "level=info msg=\"job started\"\nlevel=error msg=\"job failed\" code=3\n",
            // fmt
            "{app=\"a\"} |= \"x\"\n",
        ],
    },
    Case {
        session: "stack",
        first_line: "# The health check Grafana runs.",
        expect: &[r#""value":[4000000000,"2"]"#],
    },
    Case {
        session: "stack",
        first_line: "cat > shop.yaml <<'RULES'",
        expect: &["checkout", r#""status":"success""#],
    },
];

/// A block made runnable by the rules of the module documentation.
fn runnable(block: &str, bin: &Path) -> String {
    let bin = bin.display().to_string();
    let mut out = String::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        let replaced = if trimmed.starts_with("cargo build ") {
            format!(": rule 1, not run: {trimmed}")
        } else if trimmed.starts_with("./scripts/test-all") {
            format!(": rule 4, not run: {trimmed}")
        } else if let Some(rest) = trimmed.strip_prefix("cargo run --release --bin larch-store -- ")
        {
            format!(
                "{bin}/larch-store {rest} > larch-store.out 2>&1 &\n\
                 for _ in $(seq 300); do curl -sf localhost:3100/ready >/dev/null && break; sleep 0.1; done\n\
                 curl -sf localhost:3100/ready >/dev/null"
            )
        } else if let Some(rest) = trimmed.strip_prefix("cargo run --release --bin ") {
            let (name, args) = rest.split_once(" -- ").unwrap_or((rest, ""));
            format!("{bin}/{name} {args}")
        } else {
            line.replace("./target/release/", &format!("{bin}/"))
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

/// Runs one session's blocks in a fresh network namespace and directory;
/// the output of each block, in order.
fn run_session(name: &str, blocks: &[(&Block, &Case)], bin: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("larch.yaml"), dir.path().join("larch.yaml")).unwrap();
    let mut script = String::from(
        "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT\n\
         ip link set lo up\n",
    );
    for (i, (b, _)) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@block {i}@@'\n"));
        script.push_str(&runnable(&b.text, bin));
    }
    script.push_str(&format!("echo '@@block {}@@'\n", blocks.len()));
    let path = dir.path().join("session.sh");
    std::fs::write(&path, &script).unwrap();
    let mut child = Command::new("unshare")
        .args(["--net", "--", "bash", "-e", "-o", "pipefail"])
        .arg(&path)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("TZ", "UTC")
        .env_remove("LARCH_ADDR")
        .env_remove("LOKI_ADDR")
        .env_remove("LARCH_ORG_ID")
        .env_remove("LOKI_ORG_ID")
        .env_remove("LARCH_CONFIG")
        .env_remove("LARCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs the README's blocks");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("session {name} still ran after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let store_log = std::fs::read_to_string(dir.path().join("larch-store.out")).unwrap_or_default();
    assert!(
        status.success(),
        "session {name} failed ({status}); stdout:\n{out}\nstderr:\n{err}\nstore:\n{store_log}"
    );
    // The blocks' stdout split at the markers; stderr belongs to the
    // session (a block's messages, such as push summaries, are checked
    // against it).
    let mut parts = Vec::new();
    for i in 0..blocks.len() {
        let start = format!("@@block {i}@@\n");
        let end = format!("@@block {}@@\n", i + 1);
        let a = out.find(&start).unwrap() + start.len();
        let b = out.find(&end).unwrap();
        parts.push(format!("{}{}", &out[a..b], err));
    }
    parts
}

#[test]
fn every_command_block_works_as_written() {
    let text = readme();
    let sh = blocks(&text, "sh");
    assert_eq!(
        sh.len(),
        CASES.len(),
        "README.md has {} sh blocks and this test knows {}: give each new block its expected output",
        sh.len(),
        CASES.len()
    );
    let pairs: Vec<(&Block, &Case)> = sh.iter().zip(CASES).collect();
    for (b, c) in &pairs {
        assert!(
            b.text.starts_with(c.first_line),
            "README.md line {}: the block starts with {:?}, expected {:?}",
            b.line,
            b.text.lines().next().unwrap_or(""),
            c.first_line
        );
    }
    let bin = larch_testkit::binary("larch-store")
        .parent()
        .unwrap()
        .to_path_buf();
    // Both sessions at once: each has its own network namespace.
    let sessions: Vec<&str> = {
        let mut s: Vec<&str> = CASES.iter().map(|c| c.session).collect();
        s.dedup();
        s.sort();
        s.dedup();
        s
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|&name| {
                let members: Vec<(&Block, &Case)> = pairs
                    .iter()
                    .filter(|(_, c)| c.session == name)
                    .copied()
                    .collect();
                let bin = &bin;
                scope.spawn(move || {
                    let outputs = run_session(name, &members, bin);
                    for ((b, c), out) in members.iter().zip(outputs) {
                        for want in c.expect {
                            assert!(
                                out.contains(want),
                                "README.md line {}: {want:?} not in the output:\n{out}",
                                b.line
                            );
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}

/// The YAML blocks are configurations their binary accepts: the agent's
/// file (`larch-agent --check-config`), the store's (`larch-store
/// --check-config`) and the runtime overrides file (named by a store
/// configuration).
#[test]
fn every_configuration_block_is_valid() {
    let text = readme();
    let yaml = blocks(&text, "yaml");
    assert_eq!(
        yaml.len(),
        4,
        "README.md's yaml blocks changed: check each here"
    );
    let dir = tempfile::tempdir().unwrap();
    for b in &yaml {
        let file = dir.path().join("block.yaml");
        std::fs::write(&file, &b.text).unwrap();
        let out = if b.text.starts_with("# agent.yaml") {
            Command::new(larch_testkit::binary("larch-agent"))
                .arg("--check-config")
                .arg("--config")
                .arg(&file)
                .output()
                .unwrap()
        } else if b.text.starts_with("# store.yaml") || b.text.starts_with("# larch.yaml") {
            Command::new(larch_testkit::binary("larch-store"))
                .arg("--check-config")
                .arg("--config")
                .arg(&file)
                .env_remove("LARCH_CONFIG")
                .output()
                .unwrap()
        } else if b.text.starts_with("# overrides.yaml") {
            let main = dir.path().join("larch.yaml");
            std::fs::write(
                &main,
                format!("runtime_config:\n  file: {}\n", file.display()),
            )
            .unwrap();
            Command::new(larch_testkit::binary("larch-store"))
                .arg("--check-config")
                .arg("--config")
                .arg(&main)
                .env_remove("LARCH_CONFIG")
                .output()
                .unwrap()
        } else {
            panic!(
                "README.md line {}: a yaml block this test does not know",
                b.line
            );
        };
        assert!(
            out.status.success(),
            "README.md line {}: {}",
            b.line,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_rules_keep_the_rest_verbatim() {
    let bin = Path::new("/b");
    assert_eq!(
        runnable(
            "cargo build --release --bin x\n./target/release/larch-agent --pods-dir ./pods &\n  ./scripts/test-all\ncargo run --release --bin larch -- query '{a=\"b\"}'\necho ./target/release/x\n",
            bin
        ),
        ": rule 1, not run: cargo build --release --bin x\n/b/larch-agent --pods-dir ./pods &\n: rule 4, not run: ./scripts/test-all\n/b/larch query '{a=\"b\"}'\necho /b/x\n"
    );
    let store = runnable(
        "cargo run --release --bin larch-store -- --config larch.yaml",
        bin,
    );
    assert!(
        store.starts_with("/b/larch-store --config larch.yaml > larch-store.out 2>&1 &\n"),
        "{store}"
    );
}
