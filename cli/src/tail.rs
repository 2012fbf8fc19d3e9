//! `larch query --tail`: following new lines over Loki's WebSocket
//! `/loki/api/v1/tail`.
//!
//! The request carries `query`, `limit`, `start` (the server first sends
//! up to `limit` recent lines from `start` on) and `delay_for`. Every text
//! message is a frame `{"streams":[...],"dropped_entries":[...]}`; its
//! lines are printed oldest first with each stream's full labels (there is
//! no common set to factor out of a stream that never ends), and dropped
//! entries are reported on stderr because they are lines the user will not
//! see. A refused upgrade (a bad query answers 400 before the WebSocket
//! starts) gives the server's message; a close with any code but 1000
//! (normal) gives its reason and exit 1, so a tail that stops because the
//! store shut down (1001) or hit a limit (1011) does not look like
//! success; Ctrl-C closes the connection politely and exits 0.

use std::io::Write;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::client::{Client, ClientError, server_message};
use crate::loki::TailFrame;
use crate::output::{LogFormat, labels_text};
use crate::query::Sinks;
use crate::time::{TsFormat, format_ts};

/// A live tail request.
#[derive(Debug, Clone)]
pub struct TailQuery {
    /// LogQL log query.
    pub query: String,
    /// Recent lines sent first, Unix ns.
    pub start: i64,
    /// Most recent lines sent first.
    pub limit: usize,
    /// Seconds the server waits for late lines (0 to 5).
    pub delay_for: u32,
}

/// Follows `q` until the server ends the stream or the user interrupts.
pub async fn run_tail<O: Write, E: Write>(
    client: &Client,
    q: &TailQuery,
    format: &LogFormat,
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    let params = [
        ("query", q.query.clone()),
        ("limit", q.limit.to_string()),
        ("start", q.start.to_string()),
        ("delay_for", q.delay_for.to_string()),
    ];
    let url = client.ws_url("/loki/api/v1/tail", &params);
    let short = client.url("/loki/api/v1/tail", &[]);
    if client.echo() {
        writeln!(sinks.err, "{url}")?;
    }
    // Ctrl-C is watched from here on, so that an interrupt arriving while
    // a frame is printed is not lost (nor kills the process mid-line).
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut req = url.as_str().into_client_request()?;
    for (name, value) in client.headers() {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let uri = req.uri().clone();
    let stream = client
        .transport()
        .connect(&uri)
        .await
        .map_err(|e| ClientError::Connect {
            url: short.clone(),
            reason: e.to_string(),
        })?;
    let mut ws = match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, _)) => ws,
        Err(WsError::Http(resp)) => {
            let status = resp.status();
            let body = resp.body().as_deref().unwrap_or_default();
            return Err(ClientError::Status {
                status,
                message: server_message(status, body),
            }
            .into());
        }
        Err(WsError::Io(e)) => {
            return Err(ClientError::Connect {
                url: short,
                reason: e.to_string(),
            }
            .into());
        }
        Err(e) => bail!("cannot start the live tail at {short}: {e}"),
    };
    loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = interrupt.recv() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
        };
        match msg {
            Some(Ok(Message::Text(text))) => print_frame(format, text.as_bytes(), sinks)?,
            Some(Ok(Message::Binary(bytes))) => print_frame(format, &bytes, sinks)?,
            Some(Ok(Message::Close(frame))) => {
                return match frame {
                    Some(f) if f.code != CloseCode::Normal => {
                        bail!("the live tail ended: {} ({})", f.reason, u16::from(f.code))
                    }
                    _ => Ok(()),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the live tail connection to {short} failed: {e}"),
            None => bail!("the store closed the live tail connection to {short}"),
        }
    }
}

/// Prints one frame's lines, oldest first, and reports dropped entries.
fn print_frame<O: Write, E: Write>(
    format: &LogFormat,
    bytes: &[u8],
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    let frame: TailFrame = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("unexpected live tail message: {e}"))?;
    let labels = format.batch_labels(frame.streams.iter().map(|s| &s.labels), false);
    let mut order: Vec<(i64, usize, usize)> = frame
        .streams
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.entries
                .iter()
                .enumerate()
                .map(move |(ei, e)| (e.ts, si, ei))
        })
        .collect();
    order.sort_by_key(|&(ts, _, _)| ts);
    for (_, si, ei) in order {
        let e = &frame.streams[si].entries[ei];
        format.write_entry(sinks.out, &labels, si, e.ts, &e.line)?;
    }
    sinks.out.flush()?;
    if let Some(dropped) = frame.dropped_entries.filter(|d| !d.is_empty()) {
        writeln!(
            sinks.err,
            "The store dropped {} entries because this client read too slowly:",
            dropped.len()
        )?;
        for d in dropped {
            writeln!(
                sinks.err,
                "{} {}",
                format_ts(d.timestamp, format.zone, TsFormat::Rfc3339Nano),
                labels_text(&d.labels)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_print_oldest_first_with_full_labels() {
        let frame = br#"{"streams":[
            {"stream":{"app":"a","env":"p"},"values":[["3000000000","third"]]},
            {"stream":{"app":"b","env":"p"},"values":[["1000000000","first"],["2000000000","second"]]}],
            "dropped_entries":[{"timestamp":"500000000","labels":{"app":"c"}}]}"#;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut sinks = Sinks {
            out: &mut out,
            err: &mut err,
            quiet: false,
        };
        print_frame(&LogFormat::default(), frame, &mut sinks).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:01Z {app=\"b\", env=\"p\"} first\n\
             1970-01-01T00:00:02Z {app=\"b\", env=\"p\"} second\n\
             1970-01-01T00:00:03Z {app=\"a\", env=\"p\"} third\n"
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "The store dropped 1 entries because this client read too slowly:\n\
             1970-01-01T00:00:00.5Z {app=\"c\"}\n"
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut sinks = Sinks {
            out: &mut out,
            err: &mut err,
            quiet: false,
        };
        let e = print_frame(&LogFormat::default(), b"{not json", &mut sinks).unwrap_err();
        assert!(e.to_string().starts_with("unexpected live tail message"));
    }
}
