//! `larch`: query a Larch store (or any Loki) from the terminal.
//!
//! The command line follows logcli, Loki's own client, so that its users
//! need nothing new: the same subcommands (`query`, `instant-query`,
//! `labels`, `series`, `stats`, `volume`, `volume_range`,
//! `detected-fields`, `fmt`), the same flags and environment variables,
//! the same three output modes, paging of large results by timestamp,
//! large downloads in parallel parts, and the same split between results
//! on stdout and everything else on stderr. Each subcommand takes (and its
//! `--help` lists) only the flags that apply to it. `push` is Larch's
//! addition: lines from stdin into a stream, as the agent would send them;
//! `rules` checks and manages the ruler's rule groups, as lokitool and
//! cortextool do.
//!
//! This file only wires things together: [`args`] reads the command line,
//! [`client`] speaks HTTP, [`query`] and [`tail`] run log queries,
//! [`parallel`] the downloads in parts,
//! [`meta`] the one-shot metadata calls, [`push`] the upload, [`rules`]
//! the rule groups, [`output`] and [`progress`] decide what the terminal
//! sees, [`loki`] decodes the API's JSON, and [`time`] reads and prints
//! times.
//!
//! Exit status: 0 on success (also when stdout is closed early, as by
//! `| head`), 1 on any error with `Error: <message>` on stderr (a log line
//! with `--log-format logfmt|json`, see [`diag`]), where the message of a
//! failed request is the server's own text; 2 for a command line clap
//! cannot read.

mod args;
mod client;
mod diag;
mod loki;
mod meta;
mod output;
mod parallel;
mod progress;
mod push;
mod query;
mod rules;
mod tail;
mod time;
mod tls;

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use args::{
    Cli, ColorChoice, Command, Global, LabelArgs, OutputArg, PrintArgs, RangeArgs, ZoneArg,
};
use client::{Client, ClientConfig, DEFAULT_ADDR};
use meta::Range;
use output::LogFormat;
use query::Sinks;
use time::{Zone, now_ns, parse_duration, parse_time};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = diag::init(cli.global.log_format) {
        eprintln!("Error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            diag::failed(&mut io::stderr(), &e);
            ExitCode::FAILURE
        }
    }
}

/// Whether the error is stdout having been closed by the reader.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The first non-empty value among the environment variables `names`.
fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn client_config(g: &Global) -> ClientConfig {
    ClientConfig {
        addr: g
            .addr
            .clone()
            .or_else(|| env_first(&["LARCH_ADDR", "LOKI_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDR.to_string()),
        org_id: g
            .org_id
            .clone()
            .or_else(|| env_first(&["LARCH_ORG_ID", "LOKI_ORG_ID"])),
        headers: g.headers.clone(),
        retries: g.retries,
        quiet: g.quiet,
        transport: tls::TransportConfig {
            ca_cert: g.ca_cert.clone(),
            cert: g.cert.clone(),
            key: g.key.clone(),
            skip_verify: g.tls_skip_verify,
            proxy_url: g.proxy_url.clone(),
        },
        username: g.username.clone(),
        password: g.password.clone(),
        bearer_token: g.bearer_token.clone(),
        bearer_token_file: g.bearer_token_file.clone(),
        auth_header: Some(g.auth_header.clone()),
    }
}

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    }
}

fn log_format(output: OutputArg, print: &PrintArgs, zone: Zone, labels: &LabelArgs) -> LogFormat {
    LogFormat {
        mode: output.output,
        zone,
        ts_format: print.output_timestamp_format,
        color: print.colored_output || use_color(print.color),
        no_labels: labels.no_labels,
        include: labels.include_label.clone(),
        exclude: labels.exclude_label.clone(),
        include_common: labels.include_common_labels,
        labels_length: labels.labels_length,
    }
}

fn zone(z: &ZoneArg) -> Result<Zone> {
    Zone::parse(&z.timezone).map_err(|e| anyhow!("--timezone: {e}"))
}

/// `--from`/`--to`/`--since` as a range ending now by default.
fn resolve_range(r: &RangeArgs, now: i64) -> Result<Range> {
    let zone = zone(&r.zone)?;
    let end = match &r.to {
        Some(t) => parse_time(t, zone).map_err(|e| anyhow!("--to: {e}"))?,
        None => now,
    };
    let start = match &r.from {
        Some(f) => parse_time(f, zone).map_err(|e| anyhow!("--from: {e}"))?,
        None => end.saturating_sub(parse_duration(&r.since).map_err(|e| anyhow!("--since: {e}"))?),
    };
    if start >= end {
        bail!("the range is empty: the start (--from or --since) must be before the end (--to)");
    }
    Ok(Range { start, end })
}

fn duration_flag(name: &str, v: &str) -> Result<i64> {
    parse_duration(v).map_err(|e| anyhow!("{name}: {e}"))
}

async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    let now = now_ns();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut err = io::stderr();
    let client = || Client::new(&client_config(g));

    match &cli.command {
        Command::Query(a) => {
            let client = client()?;
            let zone = zone(&a.range.zone)?;
            let format = log_format(a.output, &a.print, zone, &a.labels);
            let range = resolve_range(&a.range, now)?;
            let mut sinks = Sinks {
                out: &mut out,
                err: &mut err,
                quiet: g.quiet,
            };
            if a.tail {
                let q = tail::TailQuery {
                    query: a.query.clone(),
                    start: range.start,
                    limit: a.limit,
                    delay_for: a.delay_for,
                };
                return tail::run_tail(&client, &q, &format, &mut sinks).await;
            }
            if a.batch == 0 {
                bail!("--batch must be at least 1");
            }
            let q = query::RangeQuery {
                query: a.query.clone(),
                start: range.start,
                end: range.end,
                limit: a.limit,
                batch: a.batch,
                forward: a.forward,
                step: a
                    .step
                    .as_deref()
                    .map(|s| duration_flag("--step", s))
                    .transpose()?,
                interval: a
                    .interval
                    .as_deref()
                    .map(|s| duration_flag("--interval", s))
                    .transpose()?,
                stats: a.stats,
            };
            let p = &a.parallel;
            let parallel = parallel::Parallel {
                duration: duration_flag("--parallel-duration", &p.parallel_duration)?,
                workers: p.parallel_max_workers,
                prefix: p.part_path_prefix.clone(),
                overwrite: p.overwrite_completed_parts,
                merge: p.merge_parts,
                keep: p.keep_parts,
            };
            if parallel.workers == 0 {
                bail!("--parallel-max-workers must be at least 1");
            }
            if parallel.applies() {
                return parallel::run(&client, &q, &format, &parallel, &mut sinks).await;
            }
            let tty = io::stderr().is_terminal();
            let mut progress = progress::Progress::new(a.progress || (tty && !g.quiet), tty, zone);
            query::run_range(&client, &q, &format, &mut progress, &mut sinks).await
        }
        Command::InstantQuery(a) => {
            let client = client()?;
            let zone = zone(&a.zone)?;
            let format = log_format(a.output, &a.print, zone, &a.labels);
            let time = match &a.now {
                Some(t) => parse_time(t, zone).map_err(|e| anyhow!("--now: {e}"))?,
                None => now,
            };
            let q = query::InstantQuery {
                query: a.query.clone(),
                time,
                limit: a.limit,
                forward: a.forward,
                stats: a.stats,
            };
            let mut sinks = Sinks {
                out: &mut out,
                err: &mut err,
                quiet: g.quiet,
            };
            query::run_instant(&client, &q, &format, &mut sinks).await
        }
        Command::Labels(a) => {
            let range = resolve_range(&a.range, now)?;
            let c = client()?;
            meta::labels(
                &c,
                a.name.as_deref(),
                a.query.as_deref(),
                range,
                a.output.output,
                &mut out,
            )
            .await
        }
        Command::Series(a) => {
            let range = resolve_range(&a.range, now)?;
            let c = client()?;
            meta::series(
                &c,
                &a.matcher,
                range,
                a.analyze_labels,
                a.output.output,
                &mut out,
            )
            .await
        }
        Command::Stats(a) => {
            let range = resolve_range(&a.range, now)?;
            let c = client()?;
            meta::stats(&c, &a.query, range, a.output.output, &mut out).await
        }
        Command::Volume(a) => {
            let range = resolve_range(&a.range, now)?;
            let opts = meta::VolumeOptions {
                limit: a.limit,
                target_labels: a.target_labels.clone(),
                by_labels: a.aggregate_by_labels,
                step: None,
            };
            let c = client()?;
            meta::volume(&c, &a.query, range, &opts, a.output.output, &mut out).await
        }
        Command::VolumeRange(a) => {
            let v = &a.volume;
            let range = resolve_range(&v.range, now)?;
            let opts = meta::VolumeOptions {
                limit: v.limit,
                target_labels: v.target_labels.clone(),
                by_labels: v.aggregate_by_labels,
                step: Some(duration_flag("--step", &a.step)?),
            };
            let c = client()?;
            meta::volume(&c, &v.query, range, &opts, v.output.output, &mut out).await
        }
        Command::DetectedFields(a) => {
            let range = resolve_range(&a.range, now)?;
            let q = meta::DetectedFieldsQuery {
                query: a.query.clone(),
                field: a.field.clone(),
                limit: a.limit,
                line_limit: a.line_limit,
                step: duration_flag("--step", &a.step)?,
            };
            let c = client()?;
            meta::detected_fields(&c, &q, range, a.output.output, &mut out).await
        }
        Command::Push(a) => {
            let zone = zone(&a.zone)?;
            let labels = push::check_labels(&a.labels)?;
            let batch_bytes = larch_go::units::parse_bytes(&a.batch_size)
                .map_err(|e| anyhow!("--batch-size {:?}: {e}", a.batch_size))?;
            let opts = push::PushOptions {
                labels,
                batch_bytes: usize::try_from(batch_bytes.max(1)).unwrap_or(usize::MAX),
                batch_wait: Duration::from_nanos(
                    u64::try_from(duration_flag("--batch-wait", &a.batch_wait)?).unwrap_or(0),
                ),
                with_timestamps: a.with_timestamps,
                zone,
            };
            let c = client()?;
            let input = io::BufReader::with_capacity(64 * 1024, io::stdin());
            let summary = push::run_push(&c, &opts, input, &mut err).await?;
            if !g.quiet {
                writeln!(err, "{}", push::summary_text(&summary))?;
            }
            Ok(())
        }
        Command::Fmt(a) => {
            let text = match &a.query {
                Some(q) => q.clone().into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the query from stdin")?;
                    buf
                }
            };
            let c = if a.server { Some(client()?) } else { None };
            meta::fmt(c.as_ref(), &text, &mut out).await
        }
        Command::Rules(cmd) => rules::run(cmd, client, &mut out, &mut err, g.quiet).await,
    }
}
