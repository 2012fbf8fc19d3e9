//! Go, Loki and Promtail compatibility for Larch, in one place.
//!
//! Loki and Promtail are Go programs, and what users write to them follows
//! Go's rules: string quoting, `strconv` numbers, `time.ParseDuration`,
//! humanize byte sizes, reference time layouts and IANA zones, RE2 regular
//! expressions, Loki's pattern syntax and `text/template` with Loki's or
//! Promtail's functions. Larch speaks the same languages, so these rules
//! live here, once, with Go's error texts, and every other crate (query,
//! store, agent, cli) uses them. This crate depends on no other Larch
//! crate.
//!
//! One concern per module:
//! * [`quote`]: `strconv.Quote` and `Unquote`.
//! * [`strconv`]: `ParseFloat` (hex floats included), `ParseInt` and
//!   `Atoi`.
//! * [`floatfmt`]: `FormatFloat` and `fmt`'s `%v` and `%f` for a float64.
//! * [`strings`]: `EqualFold` and `ToLower` where Unicode meets ASCII.
//! * [`duration`]: Prometheus' and Go's durations, their text forms, and
//!   LogQL's choice between them.
//! * [`bytes`]: humanize byte sizes (`10MB`, `2.5KiB`).
//! * [`json`]: JSON string escapes as `encoding/json` decodes them.
//! * [`labels`]: valid label and metric names, and keys made into label
//!   names.
//! * [`units`]: durations and sizes in configuration files and flags (one
//!   grammar for the store, the agent and the CLI; never panics).
//! * [`time`]: layouts, the Gregorian calendar, zones from the IANA
//!   database.
//! * [`regex`]: the one Go-regex compiler (Go's ASCII classes, literal
//!   braces, Go's error texts).
//! * [`pattern`]: the `<_>`/`<name>` pattern syntax.
//! * [`template`]: `text/template` with Loki's and Promtail's functions
//!   resolved at parse time.

#![warn(missing_docs)]

pub mod bytes;
pub mod duration;
pub mod floatfmt;
pub mod json;
pub mod labels;
pub mod pattern;
pub mod quote;
pub mod regex;
pub mod strconv;
pub mod strings;
pub mod template;
pub mod time;
pub mod units;
