//! `larch push`: sending lines from stdin to the store as one stream.
//!
//! Lines go to `POST /loki/api/v1/push` as snappy-compressed protobuf
//! (`logproto.PushRequest`), the format Promtail and the agent use. They are
//! batched like Promtail batches: a request leaves when its lines reach
//! `--batch-size` bytes, when `--batch-wait` has passed since the batch's
//! first line, or at the end of input, so that `tail -f app.log | larch
//! push ...` delivers promptly and `larch push < big.log` sends few large
//! requests.
//!
//! stdin is read on a thread of its own into a bounded channel, so a slow
//! store slows the reader down instead of filling memory, and the batch
//! timer runs while the reader waits for input.
//!
//! Timestamps: the time each line was read, made strictly increasing so
//! that identical lines read within one clock tick are not dropped as
//! duplicates; or, with `--with-timestamps`, the first word of each line
//! (any notation `--from` accepts). A line that is not UTF-8 is sent with
//! its bad bytes replaced by U+FFFD and counted in a warning. Errors stop
//! the push after sending what came before: the message says which lines
//! were not sent, and the server's text says what it refused.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use larch_proto::logproto;
use prost::Message;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::time::{NANOS_PER_SEC, Zone, now_ns, parse_time};

/// Lines buffered between the stdin thread and the sender.
const CHANNEL_LINES: usize = 4096;

/// What `larch push` was asked to do.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Stream labels in Prometheus text, already validated.
    pub labels: String,
    /// Send when a batch's lines reach this many bytes.
    pub batch_bytes: usize,
    /// Send when a batch's first line is this old.
    pub batch_wait: Duration,
    /// Each line starts with its timestamp and a space.
    pub with_timestamps: bool,
    /// Zone for zone-less timestamps.
    pub zone: Zone,
}

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushSummary {
    /// Lines accepted by the store.
    pub lines: u64,
    /// Bytes of those lines.
    pub bytes: u64,
    /// Requests sent.
    pub requests: u64,
    /// Lines whose invalid UTF-8 was replaced.
    pub replaced: u64,
}

/// Checks `--labels` and returns the canonical text sent to the store.
pub fn check_labels(text: &str) -> Result<String> {
    let pairs =
        larch_query::parse_labels(text).map_err(|e| anyhow!("invalid --labels {text:?}: {e}"))?;
    if pairs.iter().all(|(_, v)| v.is_empty()) {
        bail!(
            "invalid --labels {text:?}: at least one label with a non-empty value is needed, \
             e.g. --labels '{{app=\"myapp\"}}'"
        );
    }
    let set = larch_query::LabelSet::from_unique_pairs(pairs)
        .map_err(|e| anyhow!("invalid --labels {text:?}: {e}"))?;
    Ok(set.to_string())
}

/// One batch being filled.
struct Batch {
    entries: Vec<logproto::Entry>,
    bytes: usize,
    first_line: u64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            entries: Vec::new(),
            bytes: 0,
            first_line: 1,
        }
    }
}

/// Pushes every line of `input`.
pub async fn run_push<R: BufRead + Send + 'static>(
    client: &Client,
    opts: &PushOptions,
    input: R,
    err: &mut impl Write,
) -> Result<PushSummary> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(CHANNEL_LINES);
    std::thread::spawn(move || read_lines(input, tx));

    let mut summary = PushSummary::default();
    let mut batch = Batch::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut line_no: u64 = 0;
    let mut last_ts = i64::MIN;
    loop {
        let msg = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => {
                    send(client, opts, &mut batch, &mut summary).await?;
                    deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let raw = match msg {
            None => break,
            Some(Ok(raw)) => raw,
            Some(Err(e)) => {
                send(client, opts, &mut batch, &mut summary).await?;
                return Err(e).context(format!(
                    "reading stdin after line {line_no}; the lines before were pushed"
                ));
            }
        };
        line_no += 1;
        if batch.entries.is_empty() {
            batch.first_line = line_no;
        }
        let mut text = match String::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => {
                summary.replaced += 1;
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        let ts = if opts.with_timestamps {
            match split_timestamp(&text, opts.zone) {
                Ok((ts, rest)) => {
                    text.drain(..rest);
                    ts
                }
                Err(e) => {
                    send(client, opts, &mut batch, &mut summary).await?;
                    bail!("line {line_no}: {e}; it and the lines after it were not pushed");
                }
            }
        } else {
            let ts = now_ns().max(last_ts.saturating_add(1));
            last_ts = ts;
            ts
        };
        batch.bytes += text.len();
        batch.entries.push(logproto::Entry {
            timestamp: Some(logproto::Timestamp {
                seconds: ts.div_euclid(NANOS_PER_SEC),
                nanos: ts.rem_euclid(NANOS_PER_SEC) as i32,
            }),
            line: text,
            structured_metadata: Vec::new(),
            parsed: Vec::new(),
        });
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + opts.batch_wait);
        }
        if batch.bytes >= opts.batch_bytes {
            send(client, opts, &mut batch, &mut summary).await?;
            deadline = None;
        }
    }
    send(client, opts, &mut batch, &mut summary).await?;
    if summary.replaced > 0 {
        writeln!(
            err,
            "warning: {} lines were not valid UTF-8; their invalid bytes were replaced by U+FFFD",
            summary.replaced
        )?;
    }
    Ok(summary)
}

/// Reads `input` line by line (without the `\n` or `\r\n`) into `tx`.
fn read_lines<R: BufRead>(mut input: R, tx: mpsc::Sender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut buf = Vec::new();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                if tx.blocking_send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// Reads the leading timestamp of `line`; returns it and where the rest of
/// the line starts (after one space).
fn split_timestamp(line: &str, zone: Zone) -> Result<(i64, usize), String> {
    let end = line.find(' ').unwrap_or(line.len());
    let word = &line[..end];
    let ts = parse_time(word, zone).map_err(|e| format!("no timestamp at the start: {e}"))?;
    Ok((ts, (end + 1).min(line.len())))
}

/// Sends the batch, if it has lines, and empties it.
async fn send(
    client: &Client,
    opts: &PushOptions,
    batch: &mut Batch,
    summary: &mut PushSummary,
) -> Result<()> {
    if batch.entries.is_empty() {
        return Ok(());
    }
    let n = batch.entries.len() as u64;
    let first = batch.first_line;
    let req = logproto::PushRequest {
        streams: vec![logproto::Stream {
            labels: opts.labels.clone(),
            entries: std::mem::take(&mut batch.entries),
            hash: 0,
        }],
        format: String::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .context("compressing the push request")?;
    client
        .post(
            "/loki/api/v1/push",
            "application/x-protobuf",
            Bytes::from(body),
        )
        .await
        .with_context(|| {
            format!(
                "pushing lines {first} to {}; {} lines were pushed before",
                first + n - 1,
                summary.lines
            )
        })?;
    summary.lines += n;
    summary.bytes += batch.bytes as u64;
    summary.requests += 1;
    batch.bytes = 0;
    Ok(())
}

/// The end-of-push report.
pub fn summary_text(s: &PushSummary) -> String {
    let plural = if s.requests == 1 { "" } else { "s" };
    format!(
        "Pushed {} lines ({}) in {} request{plural}.",
        s.lines,
        crate::output::human_bytes(s.bytes),
        s.requests
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_and_made_canonical() {
        assert_eq!(
            check_labels(r#"{job="x",app="a b"}"#).unwrap(),
            r#"{app="a b", job="x"}"#
        );
        for (bad, why) in [
            ("app=x", "invalid --labels"),
            ("{}", "at least one label"),
            (r#"{app=""}"#, "at least one label"),
            (r#"{app="a",app="b"}"#, "invalid --labels"),
            (r#"{app="a""#, "invalid --labels"),
        ] {
            let e = check_labels(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn leading_timestamps() {
        assert_eq!(
            split_timestamp("1700000000 hello world", Zone::Utc),
            Ok((1_700_000_000 * NANOS_PER_SEC, 11))
        );
        assert_eq!(
            split_timestamp("2024-05-01T10:00:00Z", Zone::Utc),
            Ok((1_714_557_600 * NANOS_PER_SEC, 20))
        );
        assert!(
            split_timestamp("hello world", Zone::Utc)
                .unwrap_err()
                .starts_with("no timestamp at the start")
        );
    }

    #[test]
    fn lines_are_split_without_terminators() {
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(&b"a\r\nb\n\nc"[..], tx);
        let mut got = Vec::new();
        while let Ok(Ok(l)) = rx.try_recv() {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got, ["a", "b", "", "c"]);
    }

    #[test]
    fn summary() {
        let s = PushSummary {
            lines: 3,
            bytes: 1500,
            requests: 1,
            replaced: 0,
        };
        assert_eq!(summary_text(&s), "Pushed 3 lines (1.5 kB) in 1 request.");
    }
}
