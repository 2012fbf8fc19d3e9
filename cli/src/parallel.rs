//! `larch query --parallel-duration --parallel-max-workers
//! --part-path-prefix --merge-parts`: large downloads as logcli makes them.
//!
//! With `--parallel-max-workers` above 1 the range is cut into parts of
//! `--parallel-duration`, newest first (oldest first with `--forward`),
//! and that many parts are fetched at once, each paged as an ordinary
//! query and with every line (`--limit` does not apply). With
//! `--part-path-prefix P` each part goes to its own file,
//! `P_<start>_<end>.part` (UTC, `20240501T100000`), written as
//! `<name>.tmp`, synced and renamed when complete; a part whose complete
//! file exists is not fetched again (unless `--overwrite-completed-parts`),
//! so an interrupted download resumes where it stopped. `--merge-parts`
//! prints the parts to stdout in range order as they complete and
//! deletes them (unless `--keep-parts`).
//!
//! Where logcli, given several workers and no prefix, prints the parts'
//! lines interleaved as they arrive, `larch` writes them to a temporary
//! directory and merges them in order: the same lines, in a usable order,
//! with memory bounded by one batch per worker. With one worker the whole
//! range is one part (into its file if a prefix is given).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;

use crate::client::Client;
use crate::output::LogFormat;
use crate::progress::Progress;
use crate::query::{RangeQuery, Sinks, run_range};

/// The parallel flags, read.
#[derive(Debug, Clone)]
pub struct Parallel {
    /// Length of a part, ns.
    pub duration: i64,
    /// Parts fetched at once.
    pub workers: usize,
    /// `--part-path-prefix`.
    pub prefix: Option<String>,
    /// `--overwrite-completed-parts`.
    pub overwrite: bool,
    /// `--merge-parts`.
    pub merge: bool,
    /// `--keep-parts`.
    pub keep: bool,
}

impl Parallel {
    /// Whether the query needs this module at all (else it is an ordinary
    /// query to stdout).
    pub fn applies(&self) -> bool {
        self.workers > 1 || self.prefix.is_some()
    }
}

/// The parts of `[start, end)` in fetch (and print) order: newest first,
/// or oldest first when `forward`.
pub fn parts(start: i64, end: i64, duration: i64, forward: bool) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if duration <= 0 || start >= end {
        return out;
    }
    if forward {
        let mut s = start;
        while s < end {
            let e = s.saturating_add(duration).min(end);
            out.push((s, e));
            s = e;
        }
    } else {
        let mut e = end;
        while e > start {
            let s = e.saturating_sub(duration).max(start);
            out.push((s, e));
            e = s;
        }
    }
    out
}

/// `<prefix>_<start>_<end>.part`, times in UTC as `20060102T150405`.
pub fn part_path(prefix: &str, start: i64, end: i64) -> PathBuf {
    let t = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).format("%Y%m%dT%H%M%S");
    PathBuf::from(format!("{prefix}_{}_{}.part", t(start), t(end)))
}

/// Runs a range query in parts (see the module docs).
pub async fn run<O: Write, E: Write>(
    client: &Client,
    q: &RangeQuery,
    format: &LogFormat,
    p: &Parallel,
    sinks: &mut Sinks<'_, O, E>,
) -> Result<()> {
    if p.duration <= 0 {
        bail!("--parallel-duration must be positive");
    }
    let workers = p.workers.max(1);
    let mut q = q.clone();
    let ranges = if workers > 1 {
        // Every line of every part: a limit per part would cut holes.
        q.limit = 0;
        parts(q.start, q.end, p.duration, q.forward)
    } else {
        vec![(q.start, q.end)]
    };
    // Without a prefix, the parts go to a directory of our own, merged.
    let scratch = match &p.prefix {
        Some(_) => None,
        None => Some(ScratchDir::new()?),
    };
    let prefix = match (&p.prefix, &scratch) {
        (Some(prefix), _) => prefix.clone(),
        (None, Some(dir)) => dir.0.join("part").display().to_string(),
        (None, None) => unreachable!("a scratch directory exists without a prefix"),
    };
    let (merge, keep) = match scratch {
        Some(_) => (true, false),
        None => (p.merge, p.keep),
    };
    // Part files are read back, never shown on a terminal: no colours.
    let file_format = LogFormat {
        color: false,
        ..format.clone()
    };
    let quiet = sinks.quiet;
    let jobs = ranges.into_iter().map(|(start, end)| {
        let part = RangeQuery {
            start,
            end,
            ..q.clone()
        };
        let path = part_path(&prefix, start, end);
        let file_format = &file_format;
        async move {
            fetch_part(client, &part, file_format, &path, p.overwrite, quiet)
                .await
                .with_context(|| format!("part {}", path.display()))?;
            Ok::<PathBuf, anyhow::Error>(path)
        }
    });
    // `buffered` runs up to `workers` parts at once and hands them back in
    // range order, which is the order they are merged in.
    let mut done = futures_util::stream::iter(jobs).buffered(workers);
    while let Some(path) = done.next().await {
        let path = path?;
        if merge {
            let mut f = std::fs::File::open(&path)
                .with_context(|| format!("opening part {}", path.display()))?;
            std::io::copy(&mut f, sinks.out).context("writing results")?;
            sinks.out.flush().context("writing results")?;
            if !keep {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing part {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Fetches one part into `path` (through `<path>.tmp`, synced and renamed
/// when complete); nothing when the complete file exists and may be kept.
async fn fetch_part(
    client: &Client,
    q: &RangeQuery,
    format: &LogFormat,
    path: &Path,
    overwrite: bool,
    quiet: bool,
) -> Result<()> {
    let mut err = std::io::stderr();
    if !overwrite && path.exists() {
        if !quiet {
            writeln!(
                err,
                "Skip range: {} - {}: already downloaded",
                q.start, q.end
            )?;
        }
        return Ok(());
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let result = async {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        let mut progress = Progress::new(false, false, format.zone);
        let mut sinks = Sinks {
            out: &mut out,
            err: &mut err,
            quiet,
        };
        run_range(client, q, format, &mut progress, &mut sinks).await?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        // A part that failed leaves nothing that looks like data.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A directory of this process' own, removed with its contents when
/// dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        let name = format!(
            "larch-query-{}-{}",
            std::process::id(),
            crate::time::now_ns()
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir)
            .with_context(|| format!("creating the part directory {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn parts_cover_the_range_once_in_order() {
        assert_eq!(
            parts(0, 5 * H / 2, H, false),
            [(3 * H / 2, 5 * H / 2), (H / 2, 3 * H / 2), (0, H / 2)]
        );
        assert_eq!(
            parts(0, 5 * H / 2, H, true),
            [(0, H), (H, 2 * H), (2 * H, 5 * H / 2)]
        );
        assert_eq!(parts(0, H, H, true), [(0, H)]);
        assert!(parts(5, 5, H, true).is_empty());
        assert!(parts(0, H, 0, true).is_empty());
        // No overflow at the ends of time.
        assert_eq!(parts(i64::MAX - 10, i64::MAX, H, true).len(), 1);
        assert_eq!(parts(i64::MIN, i64::MIN + 10, H, false).len(), 1);
    }

    #[test]
    fn part_names_are_logclis() {
        let start = 1_714_557_600_000_000_000; // 2024-05-01T10:00:00Z
        assert_eq!(
            part_path("/tmp/dl/api", start, start + H),
            Path::new("/tmp/dl/api_20240501T100000_20240501T110000.part")
        );
    }
}
