//! What `larch` says about itself on stderr, in the format `--log-format`
//! asks, as the store and the agent write their logs (`larch-logging`).
//!
//! * `text` (the default): logcli's lines, `Error: <message>` at the end of
//!   a failed command, a plain line per retry and per request URL.
//! * `logfmt`, `json`: the same events as log lines of the store's and the
//!   agent's format (`level=error ... msg="The command failed."
//!   error="..."`), so a script or a log collector can read them. Results
//!   still go to stdout as `-o` says; what a flag asks to be printed on
//!   stderr (`--stats`, common labels, the progress line, `push`'s
//!   summary) is printed as text, as logcli prints it.

use std::fmt::Display;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use larch_logging::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format for the rest of the run; for `logfmt` and `json`
/// installs the log subscriber (events at `info` and above).
pub fn init(format: LogFormat) -> Result<(), larch_logging::Error> {
    if format != LogFormat::Text {
        larch_logging::init("info", format)?;
    }
    let _ = FORMAT.set(format);
    Ok(())
}

/// Whether diagnostics are log lines (`logfmt`, `json`) rather than text.
pub fn structured() -> bool {
    FORMAT.get().is_some_and(|f| *f != LogFormat::Text)
}

/// The error that ended the command.
pub fn failed(err: &mut impl Write, e: &anyhow::Error) {
    if structured() {
        tracing::error!(error = %format!("{e:#}"), "The command failed.");
    } else {
        let _ = writeln!(err, "Error: {e:#}");
    }
}

/// A failed request about to be sent again.
pub fn retrying(err: &mut impl Write, e: &dyn Display, backoff: Duration, attempt: u32, of: u32) {
    if structured() {
        tracing::warn!(error = %e, backoff = ?backoff, attempt, retries = of, "A request failed; retrying.");
    } else {
        let _ = writeln!(err, "{e}; retrying in {backoff:?} ({attempt}/{of})");
    }
}

/// A request's URL, shown so that it can be replayed with curl.
pub fn request(err: &mut impl Write, url: &str) {
    if structured() {
        tracing::info!(url, "Request.");
    } else {
        let _ = writeln!(err, "{url}");
    }
}
