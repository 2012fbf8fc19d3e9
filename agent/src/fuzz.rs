//! The property the agent's fuzz target (`agent/fuzz`, target `lines`)
//! checks, shared with the test that replays its committed corpus.
//!
//! Log files are outside input: whatever a container wrote, the agent
//! reads. The first byte of the input picks what the rest (split at `\n`)
//! goes through:
//!
//! * even: the file-format decoders as the reader uses them: format
//!   detection, CRI and docker json-file records, and the joiner of
//!   partial records (small limits, so cutting happens). Joined entries
//!   never exceed the joiner's maximum, and the earliest pending offset
//!   never lies past the record being pushed.
//! * odd: one file's pipeline with every stage that reads the line or
//!   values taken from it (container envelopes, JSON, logfmt, regex,
//!   templates, timestamps in Go layouts, labels, drops, multiline, match,
//!   metrics), then a flush of whatever the stages hold.
//!
//! Either way: never a panic, an overflow or a runaway.

use crate::format::{DockerDecoder, Joined, Joiner, Record, detect, parse_cri};
use crate::labels::Labels;
use crate::metrics::Registry;
use crate::stages::{Entry, Pipeline, parse_stages_yaml};

/// Joined entries are cut at this many bytes.
const JOIN_MAX: usize = 64;
/// Partial records joined at most.
const JOIN_PARTS: usize = 3;

/// Stages that read the line or values extracted from it.
const PIPELINE: &str = r#"
- cri: {}
- docker: {}
- json:
    expressions:
      level:
      msg: message
      first: 'a[0]'
      deep: 'b.c[1].d'
      t: time
- logfmt:
    mapping: {lvl: level, ts: ts, dur: took}
- regex:
    expression: '^(?P<ip>\S+) \S+ \S+ \[(?P<clf>[^\]]+)\] "(?P<method>\w+) (?P<path>\S*)'
- regex:
    expression: '(?P<word>\w+)'
- template:
    source: word
    template: '{{ .Value | ToUpper | trunc 3 }}{{ if eq .lvl "x" }}!{{ end }}{{ substr 1 4 .Value | repeat 2 | quote }}{{ default "-" .level | trunc -2 }}'
- template:
    source: msg
    template: '{{ Replace .Value "a" "é" -1 }}{{ if hasPrefix "é" .Value }}{{ trimAll "é" .Value }}{{ end }}{{ regexReplaceAll "(\\d+)" .Value "<$1>" }}{{ .Value | TrimSpace | ToLower }}'
- timestamp:
    source: clf
    format: '02/Jan/2006:15:04:05 -0700'
    action_on_failure: skip
- timestamp:
    source: ts
    format: RFC3339Nano
    fallback_formats: ['2006-01-02 15:04:05.000', 'Jan _2 15:04:05', 'Monday, 02-Jan-06 15:04:05 MST', UnixMs, Unix]
    location: '+05:30'
- timestamp:
    source: t
    format: UnixNs
- labels: {word: , lvl: , method: }
- structured_metadata: {msg: , dur: }
- drop:
    source: level
    value: trace
- drop:
    longer_than: 200B
- multiline:
    firstline: '^[A-Z0-9{]'
    max_lines: 4
- match:
    selector: '{word=~".+"} |= "a"'
    stages:
    - static_labels: {m: "1"}
    - output:
        source: deep
- limit:
    rate: 1000000
    burst: 1000000
- metrics:
    lines_total:
      type: Counter
      config: {match_all: true, count_entry_bytes: true, action: add}
    took:
      type: Histogram
      source: dur
      config: {buckets: [0.1, 1]}
    level_gauge:
      type: Gauge
      source: lvl
      config: {action: set}
"#;

/// Runs one fuzz input and returns the number of entries that came out;
/// panics if the property does not hold.
#[doc(hidden)]
pub fn fuzz_lines(data: &[u8]) -> usize {
    let Some((&mode, rest)) = data.split_first() else {
        return 0;
    };
    let lines = rest.split(|&b| b == b'\n');
    if mode % 2 == 0 {
        formats(lines)
    } else {
        pipeline(lines)
    }
}

fn formats<'a>(lines: impl Iterator<Item = &'a [u8]>) -> usize {
    let mut docker = DockerDecoder::default();
    let mut joiner = Joiner::new(JOIN_MAX, JOIN_PARTS);
    let mut offset = 0u64;
    let mut out = 0;
    for line in lines {
        let _ = detect(line);
        if let Some(rec) = parse_cri(line) {
            out += push(&mut joiner, &rec, offset);
        }
        if let Some(rec) = docker.parse(line) {
            out += push(&mut joiner, &rec, offset);
        }
        offset += line.len() as u64 + 1;
    }
    while joiner.flush_one().is_some() {
        assert!(
            joiner.text().len() <= JOIN_MAX,
            "flushed entry over the maximum"
        );
        out += 1;
    }
    out
}

/// Pushes one record; 1 if an entry came out.
fn push(joiner: &mut Joiner, rec: &Record<'_>, offset: u64) -> usize {
    let ready = matches!(joiner.push(rec, offset), Joined::Ready { .. });
    if ready {
        assert!(
            joiner.text().len() <= JOIN_MAX,
            "joined entry over the maximum"
        );
    }
    if let Some(p) = joiner.pending_start() {
        assert!(p <= offset, "pending part starts after the record");
    }
    usize::from(ready)
}

thread_local! {
    /// The pipeline, built once: compiling its regexes and templates costs
    /// far more than running a few lines. Only per-file state matters to
    /// one input, and every input gets a fresh one; the pipeline-wide
    /// state (a rate limit never reached, metric series) does not change
    /// what an input does. Rebuilt now and then so metric series do not
    /// pile up over a long run.
    static PIPELINE_CACHE: std::cell::RefCell<Option<(Pipeline, u32)>> =
        const { std::cell::RefCell::new(None) };
}

fn build() -> Pipeline {
    let cfg = match parse_stages_yaml(PIPELINE) {
        Ok(c) => c,
        Err(e) => panic!("the fuzz pipeline does not parse: {e}"),
    };
    match Pipeline::new(&cfg, &Registry::new()) {
        Ok(p) => p,
        Err(e) => panic!("the fuzz pipeline does not build: {e}"),
    }
}

fn pipeline<'a>(lines: impl Iterator<Item = &'a [u8]>) -> usize {
    PIPELINE_CACHE.with_borrow_mut(|cache| {
        let (p, uses) = match cache {
            Some((p, uses)) if *uses < 10_000 => (p, uses),
            _ => {
                let (p, uses) = cache.insert((build(), 0));
                (p, uses)
            }
        };
        *uses += 1;
        run_pipeline(p, lines)
    })
}

fn run_pipeline<'a>(p: &mut Pipeline, lines: impl Iterator<Item = &'a [u8]>) -> usize {
    let mut fs = p.new_file();
    let labels = Labels::from_pairs([("app", "fuzz"), ("namespace", "ns")]);
    let mut out = 0usize;
    for (i, line) in lines.enumerate() {
        let mut e = Entry {
            ts: 1_700_000_000_000_000_000 + i as i64,
            // The reader hands the stages UTF-8 (invalid bytes replaced).
            line: String::from_utf8_lossy(line).into_owned(),
            labels: labels.clone(),
            start: i as u64,
            ..Entry::default()
        };
        p.process(&mut fs, &mut e, &mut |_| out += 1);
    }
    p.flush(&mut fs, &mut |_| out += 1);
    assert!(p.pending_start(&fs).is_none(), "data held after a flush");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_both_modes() {
        let cri = b"\x002024-01-02T03:04:05.123456789Z stdout P part one \n2024-01-02T03:04:05.2Z stdout F and the end\n{\"log\":\"hi\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-02T03:04:05Z\"}";
        // Two CRI parts joined into one entry, one docker record.
        assert_eq!(fuzz_lines(cri), 2);
        let lines = "\x01{\"level\":\"info\",\"message\":\"a 12\",\"a\":[1],\"time\":\"1700000000000000000\"}\nlevel=x ts=2024-01-02T03:04:05Z took=0.5 msg=\"ü\"\n10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /a HTTP/1.1\"\n  continuation";
        // Lines that do not start with a capital, a digit or `{` join the
        // entry before them (multiline): four lines, two entries.
        assert_eq!(fuzz_lines(lines.as_bytes()), 2);
        assert_eq!(fuzz_lines(b""), 0);
    }
}
