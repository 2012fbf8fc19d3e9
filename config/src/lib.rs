//! How Larch's programs read their configuration: the YAML reader of every
//! configuration file (the store's, the agent's, the `larch-store`
//! binary's with its `agent:` section, the agent's legacy positions file)
//! and the unit types of their keys and flags.
//!
//! * [`yaml`]: YAML 1.2 into any `Deserialize` type. Every error names the
//!   key path, the line and the column of the node at fault, whatever
//!   raised it (the reader, serde, or a type of ours such as
//!   [`HumanDuration`]), and says only what is wrong with the file: no line
//!   of the file is quoted (a neighbouring line may hold a secret) and no
//!   advice about the reader's own options is given.
//! * [`HumanDuration`] and [`ByteSize`]: durations (`500ms`, `1h30m`, `7d`)
//!   and sizes (`256KiB`, `1MB`, `1048576`) in `larch_go::units`' grammar,
//!   the one Loki's and Promtail's configurations use. They read the same
//!   from a file and from a flag, print in a form that reads back to the
//!   same value, and never panic on any input.
//! * [`expand`]: `${VAR}` and `${VAR:-default}` references in a file's
//!   text, replaced from the environment before it is parsed, so that any
//!   value can come from a variable (a secret from a Kubernetes Secret).
//!
//! # Numbers without a unit
//!
//! A value is read as text, the way Loki's and Promtail's own types read
//! theirs (they take the scalar as a string and parse it): a YAML number
//! as its decimal text (`10` as `"10"`). So a size may be a plain number
//! of bytes (`batch_size: 1048576`, or `1.5`, cut to 1 byte as Go cuts
//! it), and a duration needs a unit: `batch_wait: 10` is refused with Go's
//! `missing unit`, since Go's YAML readers would take it as 10 nanoseconds
//! or refuse it, and no Loki or Promtail user writes seconds that way. `0`
//! is zero with or without a unit. The same rule holds in every file and
//! every section of one (the `larch-store` binary's `agent:` included).
//!
//! ```
//! use larch_config::{ByteSize, HumanDuration};
//!
//! #[derive(serde::Deserialize)]
//! struct Limits {
//!     max_line_size: ByteSize,
//!     retention_period: HumanDuration,
//! }
//!
//! let l: Limits =
//!     larch_config::yaml::from_str("max_line_size: 256KB\nretention_period: 744h\n")?;
//! assert_eq!(l.max_line_size, ByteSize(256_000));
//! assert_eq!(l.retention_period.to_string(), "31d");
//!
//! let e = larch_config::yaml::from_str::<Limits>("max_line_size: 1MB\nretention_period: 30\n")
//!     .err()
//!     .ok_or("a duration without a unit was accepted")?;
//! assert_eq!((e.path.as_str(), e.line, e.column), ("retention_period", 2, 19));
//! assert!(e.message.contains("missing unit"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate depends on no other Larch crate but `larch-go`, so that every
//! program, and every library that defines configuration, can use it.
#![warn(missing_docs)]

pub mod expand;
mod units;
pub mod yaml;

pub use expand::{ExpandError, expand_env};
pub use larch_go::units::UnitError;
pub use units::{ByteSize, HumanDuration};
pub use yaml::YamlError;
