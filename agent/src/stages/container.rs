//! The `cri` and `docker` stages: container runtime envelopes parsed inside
//! the pipeline.
//!
//! With the default `format: auto` the reader has already decoded the
//! envelope (and marked the entry `decoded`), so these stages pass entries
//! through; they do the work for files read with `format: plain`, which is
//! how a Promtail configuration with `- cri: {}` keeps working unchanged.
//! Partial lines are joined per stream as the reader does.

use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage};
use crate::format::{DockerDecoder, Joined, Joiner, Record, parse_cri};
use crate::labels::Labels;
use larch_config::ByteSize;

fn default_max_partial_lines() -> usize {
    // Promtail's default.
    100
}
fn default_max_partial_line_size() -> ByteSize {
    // The store's line limit.
    ByteSize(256_000)
}

/// Settings of the `cri` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriConfig {
    /// Most partial records joined into one entry. Default 100.
    #[serde(default = "default_max_partial_lines")]
    pub max_partial_lines: usize,
    /// Longest joined entry; longer ones are cut. Default 256KB.
    #[serde(default = "default_max_partial_line_size")]
    pub max_partial_line_size: ByteSize,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            max_partial_lines: default_max_partial_lines(),
            max_partial_line_size: default_max_partial_line_size(),
        }
    }
}

/// Settings of the `docker` stage (none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {}

pub(crate) struct ContainerState {
    joiner: Joiner,
    docker: DockerDecoder,
    /// Labels of the entry whose parts are pending, for a final flush.
    labels: Labels,
}

pub(crate) struct CriStage {
    max: usize,
    max_parts: usize,
    docker: bool,
}

impl CriStage {
    pub fn new(c: &CriConfig) -> Result<Self, String> {
        if c.max_partial_line_size.0 == 0 {
            return Err("max_partial_line_size must be greater than 0".into());
        }
        Ok(CriStage {
            max: c.max_partial_line_size.0 as usize,
            max_parts: c.max_partial_lines,
            docker: false,
        })
    }
}

pub(crate) struct DockerStage(CriStage);

impl DockerStage {
    pub fn new(_: &DockerConfig) -> Self {
        DockerStage(CriStage {
            max: default_max_partial_line_size().0 as usize,
            max_parts: usize::MAX,
            docker: true,
        })
    }
}

fn state<'a>(fs: &'a mut FileState, stage: &CriStage) -> &'a mut ContainerState {
    if !matches!(fs, FileState::Container(_)) {
        *fs = FileState::Container(Box::new(ContainerState {
            joiner: Joiner::new(stage.max, stage.max_parts),
            docker: DockerDecoder::default(),
            labels: Labels::new(),
        }));
    }
    match fs {
        FileState::Container(s) => s,
        // Just set above.
        _ => unreachable!("container state was just created"),
    }
}

fn set_line(e: &mut Entry, text: &[u8]) {
    e.line.clear();
    e.line.push_str(&String::from_utf8_lossy(text));
}

impl Stage for CriStage {
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if e.decoded {
            return next(e);
        }
        let st = state(fs, self);
        let start = e.start;
        let outcome = {
            let line = e.line.as_bytes();
            let rec: Option<Record<'_>> = if self.docker {
                st.docker.parse(line)
            } else {
                parse_cri(line)
            };
            rec.map(|r| (r.stream, st.joiner.push(&r, start)))
        };
        let Some((stream, joined)) = outcome else {
            // Not a record of this format: passed on unchanged, as Promtail does.
            return next(e);
        };
        match joined {
            Joined::Pending => st.labels.copy_from(&e.labels),
            Joined::Ready { ts, .. } => {
                e.ts = ts;
                set_line(e, st.joiner.text());
                e.labels.set("stream", stream.as_str());
                e.extracted.set("stream", stream.as_str());
                e.decoded = true;
                next(e);
            }
        }
    }

    fn flush(&mut self, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let FileState::Container(st) = fs else { return };
        while let Some((stream, ts, _)) = st.joiner.flush_one() {
            let mut e = Entry {
                ts,
                labels: st.labels.clone(),
                decoded: true,
                ..Entry::default()
            };
            set_line(&mut e, st.joiner.text());
            e.labels.set("stream", stream.as_str());
            next(&mut e);
        }
    }

    fn pending_start(&self, fs: &FileState) -> Option<u64> {
        match fs {
            FileState::Container(st) => st.joiner.pending_start(),
            _ => None,
        }
    }

    fn reset(&mut self, fs: &mut FileState) {
        if let FileState::Container(st) = fs {
            st.joiner.reset();
        }
    }
}

impl Stage for DockerStage {
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        self.0.process(e, fs, next)
    }
    fn flush(&mut self, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        self.0.flush(fs, next)
    }
    fn pending_start(&self, fs: &FileState) -> Option<u64> {
        self.0.pending_start(fs)
    }
    fn reset(&mut self, fs: &mut FileState) {
        self.0.reset(fs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn cri_stage_parses_and_joins() {
        let (mut p, _) = pipeline("- cri: {}\n");
        let mut lines = vec![
            entry("2024-01-01T00:00:00Z stdout P hello ", &[("pod", "a")]),
            entry("2024-01-01T00:00:01Z stderr F oops", &[("pod", "a")]),
            entry("2024-01-01T00:00:02Z stdout F world", &[("pod", "a")]),
            entry("not cri", &[("pod", "a")]),
        ];
        for (i, l) in lines.iter_mut().enumerate() {
            l.start = i as u64 * 100;
        }
        let out = run_lines(&mut p, lines);
        let got: Vec<(String, String)> = out
            .iter()
            .map(|e| (e.line.clone(), e.labels.to_text()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("oops".into(), r#"{pod="a", stream="stderr"}"#.into()),
                ("hello world".into(), r#"{pod="a", stream="stdout"}"#.into()),
                ("not cri".into(), r#"{pod="a"}"#.into()),
            ]
        );
        assert_eq!(out[1].ts, 1_704_067_200_000_000_000);
    }

    #[test]
    fn decoded_entries_pass_and_unfinished_parts_flush() {
        let (mut p, _) = pipeline("- docker: {}\n");
        let mut decoded = entry("2024-01-01T00:00:00Z stdout F x", &[]);
        decoded.decoded = true;
        let out = run_lines(
            &mut p,
            vec![
                decoded,
                entry(
                    r#"{"log":"part","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#,
                    &[],
                ),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line, "2024-01-01T00:00:00Z stdout F x");
        assert_eq!(out[1].line, "part");
        let (mut p, _) = pipeline("- cri: {}\n");
        let mut fs = p.new_file();
        let mut e = entry("2024-01-01T00:00:00Z stdout P part", &[]);
        e.start = 42;
        p.process(&mut fs, &mut e, &mut |_| panic!("held"));
        assert_eq!(p.pending_start(&fs), Some(42));
    }
}
