//! Rule groups of Larch's ruler: what users write, in Prometheus'
//! rule-file YAML with LogQL expressions, as Loki's ruler reads it.
//!
//! ```yaml
//! groups:
//!   - name: shop-errors
//!     interval: 1m
//!     rules:
//!       - alert: ShopErrors
//!         expr: sum by (namespace) (rate({namespace="shop"} |= "error" [5m])) > 1
//!         for: 5m
//!         labels: {severity: page}
//!         annotations:
//!           summary: "{{ $labels.namespace }} logs {{ $value | humanize }} errors/s"
//!       - record: namespace:log_lines:rate1m
//!         expr: sum by (namespace) (rate({namespace=~".+"}[1m]))
//! ```
//!
//! Three shapes of the same groups travel: a rule file (`groups:`, what the
//! ruler's directory and `larch rules lint` read), one group (the body of
//! `POST /loki/api/v1/rules/{namespace}`), and a map of namespaces to
//! groups (what `GET /loki/api/v1/rules` answers). [`read_file`],
//! [`read_group`] and [`read_namespaces`] read them; [`write_file`],
//! [`write_group`] and [`write_namespaces`] write them.
//!
//! Reading checks everything the ruler will rely on, with Loki's and
//! Prometheus' messages: one of `alert` and `record`, an `expr` that
//! parses and checks as a LogQL metric query (`larch-query`), durations,
//! metric and label names, and the templates of alert labels and
//! annotations, parsed and executed once with sample data by
//! `larch-go`'s Prometheus dialect. Every problem found is reported, each
//! with the line and column of the YAML node at fault ([`RuleError`]).
//! A document that is not YAML, or has an unknown key or a value of the
//! wrong type, stops at the first such error (the reader's).
//!
//! Written YAML holds only keys Grafana's strict decoder knows (`limit`
//! only when set, `for` only when not zero), with multi-line texts as
//! literal blocks, so a group read back is equal to the group written.

#![warn(missing_docs)]

mod read;
mod write;

use std::collections::BTreeMap;

pub use larch_go::duration::Duration;
pub use read::{read_file, read_group, read_namespaces};
pub use write::{write_file, write_group, write_namespaces};

/// Where in a YAML text a node starts (1-based); line 0 when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// One problem of a rule text, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    /// What is wrong (Loki's and Prometheus' messages where they have one).
    pub message: String,
    /// The node at fault.
    pub position: Position,
}

impl RuleError {
    fn new(message: impl Into<String>, position: Position) -> RuleError {
        RuleError {
            message: message.into(),
            position,
        }
    }

    /// `line:column: message`, or the message alone when the position is
    /// unknown.
    pub fn located(&self) -> String {
        if self.position.line == 0 {
            self.message.clone()
        } else {
            format!(
                "{}:{}: {}",
                self.position.line, self.position.column, self.message
            )
        }
    }
}

/// A group of rules evaluated together, in order, at one interval.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleGroup {
    /// Unique within its namespace.
    pub name: String,
    /// How often the group is evaluated; `None`: the ruler's
    /// `evaluation_interval`.
    pub interval: Option<Duration>,
    /// Evaluate this far in the past (`query_offset`, or Loki's older
    /// `evaluation_delay`), for data that arrives late.
    pub query_offset: Option<Duration>,
    /// Most series one rule may produce (alerts or samples); 0: no limit.
    /// A rule past it fails its evaluation and produces nothing.
    pub limit: u64,
    /// Evaluate at multiples of the interval (Unix time) rather than at an
    /// offset derived from the group's name.
    pub align_evaluation_time_on_interval: bool,
    /// The rules, evaluated in this order.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Alerting or recording, with what only that kind has.
    pub kind: RuleKind,
    /// The LogQL metric query, as written.
    pub expr: String,
    /// Labels added to every alert or sample; values of alert labels are
    /// templates.
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    /// The alert's or the recorded series' name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alerting { alert, .. } => alert,
            RuleKind::Recording { record } => record,
        }
    }
}

/// What kind of rule, and what only that kind has.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    /// An alerting rule (`alert:`).
    Alerting {
        /// The alert's name (`alertname` label).
        alert: String,
        /// How long the condition must hold before the alert fires.
        r#for: Duration,
        /// How long the alert keeps firing after the condition clears.
        keep_firing_for: Duration,
        /// Annotations; values are templates.
        annotations: BTreeMap<String, String>,
    },
    /// A recording rule (`record:`).
    Recording {
        /// The name of the series written.
        record: String,
    },
}
