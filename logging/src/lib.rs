//! How Larch's binaries (`larch-store`, `larch-agent`) write their own
//! logs: to stderr, in one of three formats chosen with `--log-format`:
//!
//! * `text`: tracing's human format. ANSI colours only when stderr is a
//!   terminal and `NO_COLOR` is not set, so that files, pipes and
//!   Kubernetes' log collection get plain text.
//! * `logfmt`: one `key=value` line per event, as Loki and Prometheus
//!   write theirs (`level=info ts=2024-05-01T10:00:00.123Z
//!   target=larch_store msg="Larch store is ready." http=0.0.0.0:3100`),
//!   the fields of the enclosing spans after the event's own. Values are
//!   quoted as Go's `strconv.Quote` does when they hold a space, `=`, a
//!   quote or a control character.
//! * `json`: tracing's JSON format, one object per line.
//!
//! The filter is tracing-subscriber's (`info`, `larch_store=debug,warn`).

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human text, coloured on a terminal.
    #[default]
    Text,
    /// `key=value` pairs.
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The names `--log-format` takes.
    pub const NAMES: &'static str = "text, logfmt or json";
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<LogFormat, Error> {
        match s {
            "text" => Ok(LogFormat::Text),
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(Error::Format(other.to_string())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a format name.
    #[error("invalid log format {0:?}: expected text, logfmt or json")]
    Format(String),
    /// Not a filter tracing-subscriber reads.
    #[error("invalid log level {level:?}: {reason}")]
    Filter {
        /// The filter given.
        level: String,
        /// Why it is not one.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging was already set up: {0}")]
    Init(String),
}

/// Whether text logs on stderr should be coloured: stderr is a terminal,
/// `NO_COLOR` is unset or empty, and `TERM` is not `dumb`.
pub fn color_wanted() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Installs the global subscriber: events passing `level` (a filter) go
/// to stderr in `format`.
pub fn init(level: &str, format: LogFormat) -> Result<(), Error> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| Error::Filter {
        level: level.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(color_wanted()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Logfmt => builder
            .with_ansi(false)
            .fmt_fields(LogfmtFields)
            .event_format(Logfmt)
            .try_init(),
    };
    result.map_err(|e| Error::Init(e.to_string()))
}

/// The event format of `logfmt`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(160);
        line.push_str("level=");
        line.push_str(&meta.level().as_str().to_ascii_lowercase());
        line.push_str(" ts=");
        line.push_str(
            &chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        );
        line.push_str(" target=");
        value(&mut line, meta.target());
        let mut fields = Pairs::default();
        event.record(&mut fields);
        if let Some(msg) = &fields.message {
            line.push_str(" msg=");
            value(&mut line, msg);
        }
        line.push_str(&fields.out);
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>()
                    && !f.is_empty()
                {
                    line.push(' ');
                    line.push_str(f);
                }
            }
        }
        writeln!(writer, "{line}")
    }
}

/// The field format of `logfmt` (spans' fields are kept formatted).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut pairs = Pairs::default();
        fields.record(&mut pairs);
        let mut out = String::new();
        if let Some(m) = &pairs.message {
            out.push_str(" msg=");
            value(&mut out, m);
        }
        out.push_str(&pairs.out);
        writer.write_str(out.trim_start())
    }
}

/// Collects fields as ` key=value`, the message apart.
#[derive(Default)]
struct Pairs {
    message: Option<String>,
    out: String,
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, v: &str) {
        self.pair(field, v);
    }

    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        self.pair(field, &format!("{v:?}"));
    }

    fn record_error(&mut self, field: &Field, v: &(dyn std::error::Error + 'static)) {
        self.pair(field, &v.to_string());
    }
}

impl Pairs {
    fn pair(&mut self, field: &Field, v: &str) {
        if field.name() == "message" {
            self.message = Some(v.to_string());
            return;
        }
        self.out.push(' ');
        self.out.push_str(field.name());
        self.out.push('=');
        value(&mut self.out, v);
    }
}

/// Appends `v`, quoted (Go's `strconv.Quote`) if it must be.
fn value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '=' && c != '"' && c != '\\');
    if plain {
        out.push_str(v);
    } else {
        larch_go::quote::quote_into(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logfmt_lines() {
        let buf = Buf::default();
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .fmt_fields(LogfmtFields)
            .event_format(Logfmt)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("flush", tenant = "team a");
            let _g = span.enter();
            tracing::warn!(path = "/d/x", error = %"disk full", n = 3, "Cannot write the chunk.");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line = text.trim_end();
        assert!(line.starts_with("level=warn ts="), "{line}");
        assert!(
            line.ends_with(
                r#"target=larch_logging::tests msg="Cannot write the chunk." path=/d/x error="disk full" n=3 tenant="team a""#
            ),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "{line}");
    }

    #[test]
    fn quoting() {
        let q = |v: &str| {
            let mut s = String::new();
            value(&mut s, v);
            s
        };
        assert_eq!(q("plain"), "plain");
        assert_eq!(q(""), r#""""#);
        assert_eq!(q("a=b"), r#""a=b""#);
        assert_eq!(q("say \"hi\"\n"), r#""say \"hi\"\n""#);
    }

    #[test]
    fn format_names() {
        assert_eq!("logfmt".parse::<LogFormat>().unwrap(), LogFormat::Logfmt);
        assert_eq!(LogFormat::Json.to_string(), "json");
        let e = "xml".parse::<LogFormat>().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid log format \"xml\": expected text, logfmt or json"
        );
    }
}
