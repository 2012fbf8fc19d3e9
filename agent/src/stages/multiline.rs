//! The `multiline` stage: joins lines into blocks (stack traces) that start
//! with a line matching `firstline`.
//!
//! A block is released when the next first line arrives, when it reaches
//! `max_lines`, when no line has arrived for `max_wait_time`, or when its
//! file is finished. Lines are joined with `\n`; the block keeps the
//! labels and timestamp of its first line. While a block is held, the
//! file's saved position stays at the block's first byte, so a restart
//! rebuilds the block instead of losing its head.

use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage};
use larch_config::HumanDuration;

fn default_max_wait() -> HumanDuration {
    // Promtail's default.
    HumanDuration::from_secs(3)
}
fn default_max_lines() -> usize {
    // Promtail's default.
    128
}

/// Settings of the `multiline` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regex matching the first line of a block.
    pub firstline: String,
    /// Release a block after this long without a new line. Default 3s.
    #[serde(default = "default_max_wait")]
    pub max_wait_time: HumanDuration,
    /// Release a block at this many lines. Default 128.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
}

pub(crate) struct MultilineState {
    block: Entry,
    lines: usize,
    last: Instant,
    active: bool,
}

pub(crate) struct MultilineStage {
    firstline: Regex,
    max_wait: Duration,
    max_lines: usize,
}

impl MultilineStage {
    pub fn new(c: &MultilineConfig) -> Result<Self, String> {
        if c.max_lines == 0 {
            return Err("max_lines must be greater than 0".into());
        }
        Ok(MultilineStage {
            firstline: larch_go::regex::compile(&c.firstline, false)
                .map_err(|e| format!("invalid firstline: {e}"))?,
            max_wait: c.max_wait_time.0,
            max_lines: c.max_lines,
        })
    }
}

fn state(fs: &mut FileState) -> &mut MultilineState {
    if !matches!(fs, FileState::Multiline(_)) {
        *fs = FileState::Multiline(Box::new(MultilineState {
            block: Entry::default(),
            lines: 0,
            last: Instant::now(),
            active: false,
        }));
    }
    match fs {
        FileState::Multiline(s) => s,
        // Just set above.
        _ => unreachable!("multiline state was just created"),
    }
}

fn start_block(st: &mut MultilineState, e: &Entry) {
    let b = &mut st.block;
    b.ts = e.ts;
    b.line.clone_from(&e.line);
    b.labels.copy_from(&e.labels);
    b.metadata.copy_from(&e.metadata);
    b.extracted.copy_from(&e.extracted);
    b.start = e.start;
    b.decoded = e.decoded;
    st.lines = 1;
    st.active = true;
    st.last = Instant::now();
}

impl Stage for MultilineStage {
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let st = state(fs);
        if self.firstline.is_match(&e.line) || !st.active {
            if st.active {
                st.active = false;
                next(&mut st.block);
            }
            start_block(st, e);
        } else {
            st.block.line.push('\n');
            st.block.line.push_str(&e.line);
            st.lines += 1;
            st.last = Instant::now();
        }
        if st.lines >= self.max_lines {
            st.active = false;
            next(&mut st.block);
        }
    }

    fn tick(&mut self, fs: &mut FileState, now: Instant, next: &mut dyn FnMut(&mut Entry)) {
        if let FileState::Multiline(st) = fs
            && st.active
            && now.duration_since(st.last) >= self.max_wait
        {
            st.active = false;
            next(&mut st.block);
        }
    }

    fn flush(&mut self, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if let FileState::Multiline(st) = fs
            && st.active
        {
            st.active = false;
            next(&mut st.block);
        }
    }

    fn pending_start(&self, fs: &FileState) -> Option<u64> {
        match fs {
            FileState::Multiline(st) if st.active => Some(st.block.start),
            _ => None,
        }
    }

    fn reset(&mut self, fs: &mut FileState) {
        if let FileState::Multiline(st) = fs {
            st.active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::time::{Duration, Instant};

    #[test]
    fn joins_blocks() {
        let (mut p, _) = pipeline("- multiline:\n    firstline: '^\\d{4}-'\n    max_lines: 3\n");
        let out = run_lines(
            &mut p,
            vec![
                entry("2024- start one", &[]),
                entry("  at a", &[]),
                entry("  at b", &[]),
                entry("  at c", &[]),
                entry("2024- start two", &[]),
                entry("  at d", &[]),
            ],
        );
        let lines: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(
            lines,
            vec![
                "2024- start one\n  at a\n  at b",
                "  at c",
                "2024- start two\n  at d"
            ]
        );
    }

    #[test]
    fn releases_after_max_wait_and_reports_held_offset() {
        let (mut p, _) = pipeline("- multiline:\n    firstline: '^S'\n    max_wait_time: 10ms\n");
        let mut fs = p.new_file();
        let mut out = Vec::new();
        let mut e = entry("S1", &[]);
        e.start = 100;
        p.process(&mut fs, &mut e, &mut |e| out.push(e.line.clone()));
        assert_eq!(p.pending_start(&fs), Some(100));
        p.tick(&mut fs, Instant::now(), &mut |e| out.push(e.line.clone()));
        assert!(out.is_empty());
        p.tick(
            &mut fs,
            Instant::now() + Duration::from_millis(20),
            &mut |e| out.push(e.line.clone()),
        );
        assert_eq!(out, vec!["S1"]);
        assert_eq!(p.pending_start(&fs), None);
    }
}
