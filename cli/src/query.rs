//! `larch query` and `larch instant-query`: running a LogQL query and
//! printing its answer, paging past the server's per-query maximum.
//!
//! Paging works as logcli's does. Each request asks for at most `--batch`
//! lines. When a batch is full, the next request resumes at the timestamp of
//! the batch's last line: backward queries move `end` to that timestamp plus
//! 1 ns (`end` is exclusive), forward queries move `start` to it. Several
//! lines may share that timestamp and the server may have cut the batch in
//! the middle of them, so the boundary is fetched again and the lines
//! already printed there (same labels, timestamp and line) are skipped.
//! Paging ends when the limit is reached, when a batch comes back smaller
//! than asked (the range is exhausted), or with a metric result.
//!
//! One consequence is checked rather than looped on: if a whole batch
//! shares one timestamp, resuming at it would fetch the same batch again,
//! so `larch` stops with an error asking for a larger `--batch`.
//!
//! [`Pager`] holds that state and is independent of HTTP, so it is tested
//! on its own.

use std::collections::HashSet;
use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::client::Client;
use crate::loki::{Labels, QueryResponse, QueryResult, Stream};
use crate::output::{LogFormat, labels_text, write_stats};
use crate::progress::Progress;
use crate::time::seconds_param;

/// A range query as given on the command line.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// LogQL.
    pub query: String,
    /// Inclusive start, Unix ns.
    pub start: i64,
    /// Exclusive end, Unix ns.
    pub end: i64,
    /// Most lines to print; 0 = all.
    pub limit: usize,
    /// Most lines per request.
    pub batch: usize,
    /// Oldest first.
    pub forward: bool,
    /// `step` of metric queries, ns.
    pub step: Option<i64>,
    /// `interval` of log queries, ns.
    pub interval: Option<i64>,
    /// Print `data.stats` to stderr.
    pub stats: bool,
}

/// An instant query.
#[derive(Debug, Clone)]
pub struct InstantQuery {
    /// LogQL.
    pub query: String,
    /// Evaluation time, Unix ns.
    pub time: i64,
    /// Most lines (log queries are refused by Loki at an instant, but a
    /// server may answer them).
    pub limit: usize,
    /// Oldest first.
    pub forward: bool,
    /// Print `data.stats` to stderr.
    pub stats: bool,
}

/// One request of a paging query: `start`, `end` and `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
    /// Lines to ask for.
    pub limit: usize,
}

/// An entry printed last in a batch, remembered to skip it when the next
/// batch returns it again.
type Seen = (Labels, i64, String);

/// The paging state of a range query (see the module docs).
#[derive(Debug)]
pub struct Pager {
    limit: usize,
    batch: usize,
    forward: bool,
    start: i64,
    end: i64,
    printed: usize,
    requests: usize,
    boundary: HashSet<Seen>,
    boundary_ts: Option<i64>,
    done: bool,
}

impl Pager {
    /// A pager over `[start, end)`; `limit` 0 means all lines.
    pub fn new(start: i64, end: i64, limit: usize, batch: usize, forward: bool) -> Pager {
        let batch = match (limit, batch) {
            (0, b) => b.max(1),
            (l, b) => b.clamp(1, l),
        };
        Pager {
            limit,
            batch,
            forward,
            start,
            end,
            printed: 0,
            requests: 0,
            boundary: HashSet::new(),
            boundary_ts: None,
            done: false,
        }
    }

    /// The next request, or `None` when paging is over.
    pub fn next_page(&self) -> Option<Page> {
        if self.done {
            return None;
        }
        let want = if self.limit == 0 {
            self.batch
        } else {
            (self.limit - self.printed + self.boundary.len()).min(self.batch)
        };
        Some(Page {
            start: self.start,
            end: self.end,
            limit: want,
        })
    }

    /// Takes the streams of the answer to `page` and returns the entries to
    /// print, as `(stream, entry)` indices in print order.
    pub fn accept(&mut self, page: Page, streams: &[Stream]) -> Result<Vec<(usize, usize)>> {
        self.requests += 1;
        let mut all: Vec<(i64, usize, usize)> = streams
            .iter()
            .enumerate()
            .flat_map(|(si, s)| {
                s.entries
                    .iter()
                    .enumerate()
                    .map(move |(ei, e)| (e.ts, si, ei))
            })
            .collect();
        if self.forward {
            all.sort_by_key(|&(ts, _, _)| ts);
        } else {
            all.sort_by_key(|&(ts, _, _)| std::cmp::Reverse(ts));
        }
        let returned = all.len();
        let key = |si: usize, ei: usize| -> Seen {
            let s = &streams[si];
            (
                s.labels.clone(),
                s.entries[ei].ts,
                s.entries[ei].line.clone(),
            )
        };
        let mut print: Vec<(usize, usize)> = all
            .iter()
            .filter(|&&(ts, si, ei)| {
                Some(ts) != self.boundary_ts || !self.boundary.contains(&key(si, ei))
            })
            .map(|&(_, si, ei)| (si, ei))
            .collect();
        if self.limit > 0 {
            print.truncate(self.limit - self.printed);
        }
        self.printed += print.len();

        let last_ts = all.last().map(|&(ts, _, _)| ts);
        if let Some(last) = last_ts {
            self.boundary = all
                .iter()
                .rev()
                .take_while(|&&(ts, _, _)| ts == last)
                .map(|&(_, si, ei)| key(si, ei))
                .collect();
            self.boundary_ts = Some(last);
            if self.forward {
                self.start = last;
            } else {
                self.end = last.saturating_add(1);
            }
        }
        self.done = returned < page.limit
            || returned == 0
            || (self.limit > 0 && self.printed >= self.limit);
        if !self.done && self.boundary.len() >= self.batch {
            bail!(
                "all {} lines of the last batch share one timestamp, so the next batch would \
                 repeat them; use a --batch larger than {}",
                self.boundary.len(),
                self.boundary.len()
            );
        }
        Ok(print)
    }

    /// Lines accepted for printing so far.
    pub fn printed(&self) -> usize {
        self.printed
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Whether another request will follow.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The timestamp paging has reached.
    pub fn position(&self) -> i64 {
        if self.forward { self.start } else { self.end }
    }
}

/// Where a query's results and messages go.
pub struct Sinks<'a, O: Write, E: Write> {
    /// Results.
    pub out: &'a mut O,
    /// Messages (URLs, common labels, stats, progress).
    pub err: &'a mut E,
    /// `-q`: no messages.
    pub quiet: bool,
}

fn direction(forward: bool) -> String {
    if forward { "forward" } else { "backward" }.to_string()
}

/// Runs a range query, paging as needed.
pub async fn run_range<O: Write, E: Write>(
    client: &Client,
    q: &RangeQuery,
    format: &LogFormat,
    progress: &mut Progress,
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    let mut pager = Pager::new(q.start, q.end, q.limit, q.batch, q.forward);
    let mut last_common: Option<Labels> = None;
    while let Some(page) = pager.next_page() {
        let mut params = vec![
            ("query", q.query.clone()),
            ("limit", page.limit.to_string()),
            ("start", page.start.to_string()),
            ("end", page.end.to_string()),
            ("direction", direction(q.forward)),
        ];
        if let Some(step) = q.step {
            params.push(("step", seconds_param(step)));
        }
        if let Some(interval) = q.interval {
            params.push(("interval", seconds_param(interval)));
        }
        // The request goes on its own line, and the progress line stays
        // visible while the answer is awaited.
        let url = client.url("/loki/api/v1/query_range", &params);
        progress.clear(sinks.err);
        client.echo_url(sinks.err, &url);
        progress.redraw(sinks.err);
        let resp: QueryResponse = client.get_json_url(&url).await?;
        progress.clear(sinks.err);
        if q.stats
            && let Some(stats) = &resp.stats
        {
            write_stats(sinks.err, stats)?;
        }
        match &resp.result {
            QueryResult::Metric { result, .. } => {
                format.write_metric(sinks.out, result)?;
                sinks.out.flush()?;
                return Ok(());
            }
            QueryResult::Streams(streams) => {
                let order = pager.accept(page, streams)?;
                print_entries(format, streams, &order, &mut last_common, sinks)?;
            }
        }
        if !pager.done() {
            progress.update(
                sinks.err,
                pager.printed(),
                pager.requests(),
                pager.position(),
            );
        }
    }
    progress.clear(sinks.err);
    Ok(())
}

/// Runs an instant query.
pub async fn run_instant<O: Write, E: Write>(
    client: &Client,
    q: &InstantQuery,
    format: &LogFormat,
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    let params = [
        ("query", q.query.clone()),
        ("limit", q.limit.to_string()),
        ("time", q.time.to_string()),
        ("direction", direction(q.forward)),
    ];
    let resp: QueryResponse = client.get_json("/loki/api/v1/query", &params).await?;
    if q.stats
        && let Some(stats) = &resp.stats
    {
        write_stats(sinks.err, stats)?;
    }
    match &resp.result {
        QueryResult::Metric { result, .. } => format.write_metric(sinks.out, result)?,
        QueryResult::Streams(streams) => {
            let mut pager = Pager::new(i64::MIN, i64::MAX, q.limit, usize::MAX, q.forward);
            let page = Page {
                start: i64::MIN,
                end: i64::MAX,
                limit: usize::MAX,
            };
            let order = pager.accept(page, streams)?;
            print_entries(format, streams, &order, &mut None, sinks)?;
        }
    }
    sinks.out.flush().context("writing results")?;
    Ok(())
}

/// Prints one batch: common labels to stderr when they changed, then the
/// entries in `order`.
fn print_entries<O: Write, E: Write>(
    format: &LogFormat,
    streams: &[Stream],
    order: &[(usize, usize)],
    last_common: &mut Option<Labels>,
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    let labels = format.batch_labels(streams.iter().map(|s| &s.labels), true);
    if !sinks.quiet
        && !labels.common.is_empty()
        && format.mode == crate::output::Mode::Default
        && last_common.as_ref() != Some(&labels.common)
    {
        writeln!(sinks.err, "Common labels: {}", labels_text(&labels.common))?;
    }
    *last_common = Some(labels.common.clone());
    for &(si, ei) in order {
        let e = &streams[si].entries[ei];
        format.write_entry(sinks.out, &labels, si, e.ts, &e.line)?;
    }
    sinks.out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::Entry;

    /// A pretend store: `(labels, ts, line)` rows answered the way Loki
    /// answers a range query (`start <= ts < end`, direction, limit).
    fn answer(rows: &[(&str, i64, &str)], page: Page, forward: bool) -> Vec<Stream> {
        let mut hits: Vec<_> = rows
            .iter()
            .filter(|r| r.1 >= page.start && r.1 < page.end)
            .collect();
        hits.sort_by_key(|r| if forward { r.1 } else { -r.1 });
        hits.truncate(page.limit);
        let mut streams: Vec<Stream> = Vec::new();
        for (app, ts, line) in hits {
            let labels: Labels = [("app".to_string(), app.to_string())].into();
            let e = Entry {
                ts: *ts,
                line: line.to_string(),
            };
            match streams.iter_mut().find(|s| s.labels == labels) {
                Some(s) => s.entries.push(e),
                None => streams.push(Stream {
                    labels,
                    entries: vec![e],
                }),
            }
        }
        streams
    }

    fn run(
        rows: &[(&str, i64, &str)],
        limit: usize,
        batch: usize,
        forward: bool,
    ) -> (Vec<String>, Vec<Page>) {
        let mut pager = Pager::new(0, 1000, limit, batch, forward);
        let mut printed = Vec::new();
        let mut pages = Vec::new();
        while let Some(page) = pager.next_page() {
            pages.push(page);
            let streams = answer(rows, page, forward);
            for (si, ei) in pager.accept(page, &streams).unwrap() {
                printed.push(streams[si].entries[ei].line.clone());
            }
            assert!(pages.len() < 100, "paging does not end");
        }
        (printed, pages)
    }

    fn rows() -> Vec<(&'static str, i64, &'static str)> {
        vec![
            ("a", 10, "a10"),
            ("b", 10, "b10"),
            ("a", 20, "a20"),
            ("a", 30, "a30"),
            ("b", 30, "b30"),
            ("b", 30, "b30-2"),
            ("a", 40, "a40"),
            ("a", 50, "a50"),
        ]
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn backward_paging_prints_every_line_once() {
        for batch in [4, 5, 100] {
            let (printed, _) = run(&rows(), 0, batch, false);
            assert_eq!(printed.len(), 8, "batch {batch}: {printed:?}");
            assert_eq!(
                sorted(printed.clone()),
                sorted(rows().iter().map(|r| r.2.to_string()).collect()),
                "batch {batch}"
            );
            assert_eq!(&printed[..2], ["a50", "a40"]);
        }
    }

    #[test]
    fn forward_paging_prints_every_line_once() {
        for batch in [4, 5, 100] {
            let (printed, _) = run(&rows(), 0, batch, true);
            assert_eq!(printed.len(), 8, "batch {batch}: {printed:?}");
            assert_eq!(&printed[6..], ["a40", "a50"]);
        }
    }

    #[test]
    fn limits_are_exact_and_requests_shrink() {
        let (printed, pages) = run(&rows(), 5, 3, false);
        assert_eq!(printed, ["a50", "a40", "a30", "b30", "b30-2"]);
        // 50, 40, 30 | end 31: the three lines at 30, one already printed.
        assert_eq!(
            pages,
            [
                Page {
                    start: 0,
                    end: 1000,
                    limit: 3
                },
                Page {
                    start: 0,
                    end: 31,
                    limit: 3
                }
            ]
        );
        let (printed, pages) = run(&rows(), 4, 3, true);
        assert_eq!(printed, ["a10", "b10", "a20", "a30"]);
        // 10, 10, 20 | start 20: one line still wanted, plus the boundary.
        assert_eq!(
            pages[1],
            Page {
                start: 20,
                end: 1000,
                limit: 2
            }
        );
        let (printed, pages) = run(&rows(), 3, 1000, true);
        assert_eq!(printed, ["a10", "b10", "a20"]);
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].limit, 3);
    }

    #[test]
    fn short_batch_ends_paging() {
        let (_, pages) = run(&rows(), 0, 100, false);
        assert_eq!(pages.len(), 1);
        let (printed, pages) = run(&[], 30, 10, false);
        assert!(printed.is_empty());
        assert_eq!(pages.len(), 1);
    }

    #[test]
    fn a_batch_of_one_timestamp_is_an_error_not_a_loop() {
        let same: Vec<_> = [("a", 5, "1"), ("a", 5, "2"), ("a", 5, "3"), ("a", 4, "0")].to_vec();
        let mut pager = Pager::new(0, 1000, 0, 2, false);
        let page = pager.next_page().unwrap();
        let streams = answer(&same, page, false);
        let err = pager.accept(page, &streams).unwrap_err().to_string();
        assert!(err.contains("use a --batch larger than 2"), "{err}");
        let (printed, _) = run(&same, 0, 4, false);
        assert_eq!(printed.len(), 4);
    }
}
