//! The progress line a paging query keeps on stderr.
//!
//! On a terminal it is one line rewritten in place (`\r`, erase line),
//! erased before each batch of results or request URL is written and shown
//! again while the next answer is awaited, so that it never mixes with the
//! results even when both streams share the screen. It is
//! off when stderr is not a terminal, unless asked for with `--progress`;
//! then each update is an ordinary line on stderr. Piped stdout never
//! sees it.

use std::io::Write;

use crate::time::{TsFormat, Zone, format_ts};

/// Reports how far a paging query has got.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    in_place: bool,
    shown: bool,
    last: Option<String>,
    zone: Zone,
}

impl Progress {
    /// `enabled`: show progress at all; `in_place`: stderr is a terminal.
    pub fn new(enabled: bool, in_place: bool, zone: Zone) -> Progress {
        Progress {
            enabled,
            in_place,
            shown: false,
            last: None,
            zone,
        }
    }

    /// Reports `lines` printed after `requests` requests, having reached
    /// `ts`.
    pub fn update(&mut self, err: &mut impl Write, lines: usize, requests: usize, ts: i64) {
        if !self.enabled {
            return;
        }
        let at = format_ts(ts, self.zone, TsFormat::Rfc3339);
        let plural = if requests == 1 { "" } else { "s" };
        let text = format!("{lines} lines from {requests} request{plural}, reached {at}");
        if self.in_place {
            self.last = Some(text);
            self.redraw(err);
        } else {
            let _ = writeln!(err, "{text}");
            let _ = err.flush();
        }
    }

    /// Shows the in-place line again after [`Progress::clear`].
    pub fn redraw(&mut self, err: &mut impl Write) {
        if let Some(text) = &self.last
            && self.enabled
            && self.in_place
        {
            let _ = write!(err, "\r\x1b[2K{text}");
            let _ = err.flush();
            self.shown = true;
        }
    }

    /// Erases the in-place line, if one is showing.
    pub fn clear(&mut self, err: &mut impl Write) {
        if self.shown {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_and_plain() {
        let mut err = Vec::new();
        let mut p = Progress::new(true, true, Zone::Utc);
        p.redraw(&mut err);
        p.update(&mut err, 1000, 1, 0);
        p.clear(&mut err);
        p.clear(&mut err);
        p.redraw(&mut err);
        let line = "\r\x1b[2K1000 lines from 1 request, reached 1970-01-01T00:00:00Z";
        assert_eq!(
            String::from_utf8(err).unwrap(),
            format!("{line}\r\x1b[2K{line}")
        );
        let mut err = Vec::new();
        let mut p = Progress::new(true, false, Zone::Utc);
        p.update(&mut err, 2000, 2, 0);
        p.clear(&mut err);
        p.redraw(&mut err);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "2000 lines from 2 requests, reached 1970-01-01T00:00:00Z\n"
        );
        let mut err = Vec::new();
        let mut p = Progress::new(false, true, Zone::Utc);
        p.update(&mut err, 1, 1, 0);
        assert!(err.is_empty());
    }
}
