//! The command line: subcommands, flags, environment variables and the
//! examples `--help` shows. Names and defaults follow logcli so that its
//! users feel at home (`--addr`, `--org-id`, `--since`, `--limit 30`,
//! `--batch 1000`, `-o default|raw|jsonl`, ...). Global flags may come
//! before or after the subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Mode;
use crate::time::TsFormat;

const EXAMPLES: &str = "\
Examples:
  # The last hour of a stream (30 lines, newest first):
  larch query '{app=\"api\"}'

  # Every matching line of the last day, oldest first, paging past the
  # server's per-query maximum, as JSON lines:
  larch query --since 24h --limit 0 --forward -o jsonl '{app=\"api\"} |= \"error\"'

  # A fixed window and a metric query:
  larch query --from 2024-05-01T10:00:00Z --to 2024-05-01T11:00:00Z --step 1m \\
    'sum by (level) (count_over_time({app=\"api\"} | logfmt [1m]))'

  # Follow new lines as they arrive:
  larch query --tail '{namespace=\"shop\"}'

  # Labels, values, streams, sizes:
  larch labels
  larch labels namespace
  larch series '{namespace=\"shop\"}' --analyze-labels
  larch stats '{app=\"api\"}'
  larch volume '{namespace=~\".+\"}'

  # Fields found in the lines, and the values of one:
  larch detected-fields '{app=\"api\"}'
  larch detected-fields '{app=\"api\"}' level

  # A day of lines in 15-minute parts, four at a time, merged in order:
  larch query --since 24h --forward -o raw --parallel-duration 15m \\
    --parallel-max-workers 4 --part-path-prefix /tmp/api --merge-parts '{app=\"api\"}'

  # Push lines from a file:
  larch push --labels '{app=\"batch-job\"}' < job.log

The store is http://localhost:3100 unless --addr, LARCH_ADDR or LOKI_ADDR
says otherwise; --org-id (LARCH_ORG_ID, LOKI_ORG_ID) sets X-Scope-OrgID.";

const QUERY_EXAMPLES: &str = "\
Examples:
  larch query '{app=\"api\"} |= \"error\"'
  larch query --since 24h --limit 0 --forward -o raw '{app=\"api\"}' > api.log
  larch query --from 2024-05-01 --to 2024-05-02 --step 5m 'sum(rate({app=\"api\"}[5m]))'
  larch query --tail --exclude-label pod '{namespace=\"shop\"} |= \"timeout\"'

Lines come newest first unless --forward; common labels are printed once on
stderr. Results larger than --batch are fetched in several requests.";

const PUSH_EXAMPLES: &str = "\
Examples:
  larch push --labels '{app=\"batch-job\", env=\"dev\"}' < job.log
  tail -F app.log | larch push --labels '{app=\"myapp\"}' --batch-wait 200ms
  printf '2024-05-01T10:00:00Z first\\n' | larch push --with-timestamps --labels '{app=\"x\"}'";

/// `larch`: query a Larch store (or any Loki) from the terminal.
#[derive(Debug, Parser)]
#[command(
    name = "larch",
    version,
    about = "Query a Larch store (or any Loki) from the terminal: logs, labels, series, stats, live tail, push.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Flags every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colours when stdout is a terminal and NO_COLOR is not set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Flags of every subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// Address of the store [env: LARCH_ADDR, then LOKI_ADDR] [default: http://localhost:3100]
    #[arg(long, global = true, value_name = "URL")]
    pub addr: Option<String>,

    /// Tenant, sent as X-Scope-OrgID [env: LARCH_ORG_ID, then LOKI_ORG_ID]
    #[arg(long, global = true, value_name = "TENANT")]
    pub org_id: Option<String>,

    /// Extra request header 'Name: value' (repeatable)
    #[arg(long = "header", global = true, value_name = "HEADER")]
    pub headers: Vec<String>,

    /// User name for basic auth
    #[arg(long, global = true, env = "LOKI_USERNAME", value_name = "NAME")]
    pub username: Option<String>,

    /// Password for basic auth (a store takes its token here)
    #[arg(
        long,
        global = true,
        env = "LOKI_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Bearer token, sent as 'Authorization: Bearer TOKEN'
    #[arg(
        long,
        global = true,
        env = "LOKI_BEARER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub bearer_token: Option<String>,

    /// File holding the bearer token
    #[arg(
        long,
        global = true,
        env = "LOKI_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub bearer_token_file: Option<std::path::PathBuf>,

    /// Header the credentials go in
    #[arg(
        long,
        global = true,
        default_value = "Authorization",
        value_name = "NAME"
    )]
    pub auth_header: String,

    /// CA bundle (PEM) the store's certificate is checked against [default: the system's]
    #[arg(long, global = true, env = "LOKI_CA_CERT_PATH", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Client certificate (PEM), for stores that verify clients
    #[arg(
        long,
        global = true,
        env = "LOKI_CLIENT_CERT_PATH",
        value_name = "FILE"
    )]
    pub cert: Option<std::path::PathBuf>,

    /// The client certificate's key (PEM)
    #[arg(long, global = true, env = "LOKI_CLIENT_KEY_PATH", value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,

    /// Accept any server certificate (encrypts, but proves nothing)
    #[arg(long, global = true, env = "LOKI_TLS_SKIP_VERIFY")]
    pub tls_skip_verify: bool,

    /// HTTP proxy the connections go through (CONNECT)
    #[arg(long, global = true, value_name = "URL")]
    pub proxy_url: Option<String>,

    /// Retries of 429, 5xx and connection failures, with back-off
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    pub retries: u32,

    /// Print only results: no request URLs, common labels or summaries on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Format of errors, retries and request URLs on stderr: text (logcli's
    /// lines), logfmt or json (log lines, as larch-store and larch-agent write)
    #[arg(long, global = true, default_value_t = larch_logging::LogFormat::Text, value_name = "FORMAT")]
    pub log_format: larch_logging::LogFormat,
}

/// `-o`: how results are printed (the subcommands that print results).
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArg {
    /// Output mode: default (time, labels, line), raw (line only) or jsonl
    #[arg(short, long, value_enum, default_value_t = Mode::Default)]
    pub output: Mode,
}

/// `-z`: the zone of printed times and of times written without one.
#[derive(Debug, Args, Clone)]
pub struct ZoneArg {
    /// Timezone of printed and zone-less times: Local or UTC
    #[arg(short = 'z', long, default_value = "Local", value_name = "ZONE")]
    pub timezone: String,
}

/// How log lines are printed (`query`, `instant-query`).
#[derive(Debug, Args, Clone)]
pub struct PrintArgs {
    /// Timestamp layout in default output
    #[arg(long, value_enum, default_value_t = TsFormat::Rfc3339, value_name = "FORMAT")]
    pub output_timestamp_format: TsFormat,
    /// Colour labels and timestamps
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Colour labels (logcli's spelling of --color always)
    #[arg(long)]
    pub colored_output: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a LogQL query over a time range (log lines or a metric), or follow it with --tail
    #[command(after_help = QUERY_EXAMPLES)]
    Query(QueryArgs),
    /// Evaluate a LogQL metric query at one instant
    #[command(name = "instant-query")]
    InstantQuery(InstantArgs),
    /// List label names, or the values of one label
    Labels(LabelsArgs),
    /// List the label sets of streams matching a selector
    Series(SeriesArgs),
    /// Show how much a query would read: streams, chunks, bytes, entries
    Stats(StatsArgs),
    /// Show bytes stored per series (or per label) for a selector
    Volume(VolumeArgs),
    /// Like volume, per step over the range
    #[command(name = "volume_range", alias = "volume-range")]
    VolumeRange(VolumeRangeArgs),
    /// Push lines read from stdin as one stream
    #[command(after_help = PUSH_EXAMPLES)]
    Push(PushArgs),
    /// List the fields detected in the lines of a query (with their types
    /// and cardinality), or the values of one field
    #[command(name = "detected-fields", alias = "detected_fields")]
    DetectedFields(DetectedFieldsArgs),
    /// Print a LogQL query (from the argument or stdin) in canonical form
    Fmt(FmtArgs),
    /// Check, list, fetch and upload the ruler's rule groups
    #[command(subcommand, after_help = RULES_EXAMPLES)]
    Rules(RulesCommand),
}

const RULES_EXAMPLES: &str = "\
Examples:
  larch rules lint rules/*.yaml
  larch rules list
  larch rules get shop shop-errors
  larch rules diff rules/
  larch rules sync rules/

A rule file holds `groups:` (Prometheus' rule-file format, LogQL
expressions); in a directory, each <namespace>.yaml file is one namespace.
Rules belong to the tenant given by --org-id.";

/// `larch rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files: YAML, every LogQL expression, names, durations,
    /// templates; each problem with its file, line and column
    Lint {
        /// Rule files (`groups:`)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
    },
    /// List the tenant's namespaces and groups
    List,
    /// Print a namespace's groups, or one group, as YAML
    Get {
        /// The namespace
        namespace: String,
        /// One group of it
        group: Option<String>,
    },
    /// Show what `sync DIR` would change: groups to create, update (with a
    /// line diff) and delete
    Diff {
        /// Directory of NAMESPACE.yaml rule files
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
    /// Make the store's groups those of DIR: upload new and changed groups,
    /// delete the groups DIR does not have
    Sync {
        /// Directory of NAMESPACE.yaml rule files
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
        /// Print what would change, change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// `--since`, `--from`, `--to`.
#[derive(Debug, Args, Clone)]
pub struct RangeArgs {
    /// How far back to look when --from is not given
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub since: String,
    /// Start (inclusive): RFC 3339, a date, or Unix seconds or nanoseconds
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End (exclusive) [default: now]
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    #[command(flatten)]
    pub zone: ZoneArg,
}

/// How labels are shown next to lines.
#[derive(Debug, Args, Clone)]
pub struct LabelArgs {
    /// Leave labels out of the output
    #[arg(long)]
    pub no_labels: bool,
    /// Show only this label (repeatable)
    #[arg(long, value_name = "NAME")]
    pub include_label: Vec<String>,
    /// Never show this label (repeatable)
    #[arg(long, value_name = "NAME")]
    pub exclude_label: Vec<String>,
    /// Keep the labels all streams share on every line
    #[arg(long)]
    pub include_common_labels: bool,
    /// Pad the labels column to at least this width
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub labels_length: usize,
}

/// `larch query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// LogQL query, e.g. '{app="api"} |= "error"'
    pub query: String,
    /// Most lines to print; 0 prints every line
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub limit: usize,
    /// Most lines per request; larger results are fetched in batches
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch: usize,
    /// Oldest lines first
    #[arg(long)]
    pub forward: bool,
    /// Step of a metric query (e.g. 1m, 30s)
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// At most one line per interval of a log query
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Follow new lines over a WebSocket until interrupted
    #[arg(short = 't', long, visible_alias = "follow", short_alias = 'f')]
    pub tail: bool,
    /// With --tail: seconds the store waits for late lines (0 to 5)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub delay_for: u32,
    /// Print the query's statistics to stderr
    #[arg(long)]
    pub stats: bool,
    /// Report paging progress on stderr even when it is not a terminal
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub print: PrintArgs,
}

/// Large downloads, as logcli does them: the range cut into parts fetched
/// at once, each into its own file.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Large downloads")]
pub struct ParallelArgs {
    /// Length of each part of the range, with --parallel-max-workers above 1
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub parallel_duration: String,
    /// Parts fetched at once; above 1 the range is cut into parts and
    /// --limit is ignored (every line is fetched)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub parallel_max_workers: usize,
    /// Write each part to PREFIX_START_END.part (UTC times) instead of
    /// stdout; a part whose file is complete is not fetched again
    #[arg(long, value_name = "PREFIX")]
    pub part_path_prefix: Option<String>,
    /// Fetch complete parts again, replacing their files
    #[arg(long)]
    pub overwrite_completed_parts: bool,
    /// Print the part files to stdout in order as they complete, then delete them
    #[arg(long)]
    pub merge_parts: bool,
    /// With --merge-parts: keep the part files
    #[arg(long)]
    pub keep_parts: bool,
}

/// `larch instant-query`.
#[derive(Debug, Args)]
pub struct InstantArgs {
    /// LogQL metric query, e.g. 'sum(rate({app="api"}[5m]))'
    // The text is `--help` output, not rustdoc: its brackets are LogQL.
    #[allow(rustdoc::broken_intra_doc_links)]
    pub query: String,
    /// Evaluation time [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Most lines (for servers that answer log queries at an instant)
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub limit: usize,
    /// Oldest lines first
    #[arg(long)]
    pub forward: bool,
    /// Print the query's statistics to stderr
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub print: PrintArgs,
    #[command(flatten)]
    pub zone: ZoneArg,
}

/// `larch labels`.
#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// List the values of this label instead of label names
    pub name: Option<String>,
    /// Only labels of streams matching this selector
    #[arg(long, value_name = "SELECTOR")]
    pub query: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `larch series`.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// Stream selector, e.g. '{namespace="shop"}'
    pub matcher: String,
    /// Print a table of label names with their number of values and streams
    #[arg(long)]
    pub analyze_labels: bool,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `larch stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// LogQL query (its selector is what counts)
    pub query: String,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `larch volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// Stream selector, e.g. '{namespace=~".+"}'
    pub query: String,
    /// Most series
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub limit: usize,
    /// Group by these labels (comma-separated) instead of the selector's
    #[arg(
        long,
        alias = "targetLabels",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub target_labels: Vec<String>,
    /// Sum per label value rather than per series
    #[arg(long, alias = "aggregateByLabels")]
    pub aggregate_by_labels: bool,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `larch volume_range`.
#[derive(Debug, Args)]
pub struct VolumeRangeArgs {
    #[command(flatten)]
    pub volume: VolumeArgs,
    /// Step between points
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub step: String,
}

/// `larch push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Stream labels, e.g. '{app="batch-job", env="dev"}'
    #[arg(long, value_name = "LABELS")]
    pub labels: String,
    /// Send a request when its lines reach this size (e.g. 1MiB, 512kB)
    #[arg(long, default_value = "1MiB", value_name = "SIZE")]
    pub batch_size: String,
    /// Send a request at the latest this long after its first line
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub batch_wait: String,
    /// Each line starts with its timestamp (any --from notation) and a space
    #[arg(long)]
    pub with_timestamps: bool,
    #[command(flatten)]
    pub zone: ZoneArg,
}

/// `larch detected-fields`.
#[derive(Debug, Args)]
pub struct DetectedFieldsArgs {
    /// LogQL log query whose lines are sampled, e.g. '{app="api"}'
    pub query: String,
    /// List this field's values instead of the fields
    pub field: Option<String>,
    /// Most fields (or values) to list
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
    /// Most lines sampled
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub line_limit: usize,
    /// Step of the sampling
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub step: String,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `larch fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// The query [default: read from stdin]
    pub query: Option<String>,
    /// Ask the store's /loki/api/v1/format_query instead of formatting locally
    #[arg(long)]
    pub server: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn logcli_spellings() {
        let c = Cli::try_parse_from([
            "larch",
            "query",
            "-q",
            "-o",
            "raw",
            "--since",
            "2h",
            "-f",
            "{a=\"b\"}",
            "--addr",
            "http://x:1",
        ])
        .unwrap();
        assert!(c.global.quiet);
        assert_eq!(c.global.addr.as_deref(), Some("http://x:1"));
        match c.command {
            Command::Query(q) => {
                assert_eq!(q.output.output, Mode::Raw);
                assert!(q.tail);
                assert_eq!(q.range.since, "2h");
                assert_eq!(q.limit, 30);
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from([
            "larch",
            "volume",
            "{a=~\".+\"}",
            "--targetLabels",
            "a,b",
            "--aggregateByLabels",
        ])
        .unwrap();
        match c.command {
            Command::Volume(v) => {
                assert_eq!(v.target_labels, ["a", "b"]);
                assert!(v.aggregate_by_labels);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["larch", "volume-range", "{a=\"b\"}"]).is_ok());
        let c = Cli::try_parse_from([
            "larch",
            "labels",
            "--username",
            "u",
            "--password",
            "p",
            "--bearer-token",
            "t",
            "--bearer-token-file",
            "/f",
            "--ca-cert",
            "/ca",
            "--cert",
            "/c",
            "--key",
            "/k",
            "--tls-skip-verify",
            "--org-id",
            "o",
            "--proxy-url",
            "http://p:1",
            "--auth-header",
            "X-A",
        ])
        .unwrap();
        let g = &c.global;
        assert_eq!(
            (
                g.username.as_deref(),
                g.password.as_deref(),
                g.bearer_token.as_deref()
            ),
            (Some("u"), Some("p"), Some("t"))
        );
        assert!(g.tls_skip_verify);
        assert_eq!(g.auth_header, "X-A");
        assert_eq!(g.proxy_url.as_deref(), Some("http://p:1"));
        assert!(Cli::try_parse_from(["larch", "push"]).is_err());
        let c = Cli::try_parse_from(["larch", "rules", "sync", "dir", "--dry-run"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Rules(RulesCommand::Sync { dry_run: true, .. })
        ));
        assert!(Cli::try_parse_from(["larch", "rules", "lint"]).is_err());
        let c = Cli::try_parse_from([
            "larch",
            "query",
            "--parallel-duration",
            "15m",
            "--parallel-max-workers",
            "4",
            "--part-path-prefix",
            "/tmp/x",
            "--merge-parts",
            "{a=\"b\"}",
        ])
        .unwrap();
        match c.command {
            Command::Query(q) => {
                assert_eq!(q.parallel.parallel_max_workers, 4);
                assert!(q.parallel.merge_parts && !q.parallel.keep_parts);
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["larch", "detected-fields", "{a=\"b\"}", "level"]).unwrap();
        match c.command {
            Command::DetectedFields(d) => {
                assert_eq!(d.field.as_deref(), Some("level"));
                assert_eq!((d.limit, d.line_limit), (100, 1000));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Each subcommand's help lists only the flags that apply to it.
    #[test]
    fn help_lists_only_applicable_flags() {
        let help = |name: &str| {
            let mut cmd = Cli::command();
            cmd.build();
            cmd.find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string()
        };
        let push = help("push");
        for absent in [
            "--output ",
            "--color",
            "--output-timestamp-format",
            "--since",
            "--parallel",
        ] {
            assert!(!push.contains(absent), "push lists {absent}:\n{push}");
        }
        assert!(
            push.contains("--timezone") && push.contains("--addr"),
            "{push}"
        );
        let labels = help("labels");
        for absent in [
            "--color",
            "--output-timestamp-format",
            "--limit",
            "--parallel",
        ] {
            assert!(!labels.contains(absent), "labels lists {absent}:\n{labels}");
        }
        assert!(
            labels.contains("--output") && labels.contains("--since"),
            "{labels}"
        );
        let fmt = help("fmt");
        for absent in ["--output", "--timezone", "--since", "--color"] {
            assert!(!fmt.contains(absent), "fmt lists {absent}:\n{fmt}");
        }
        let query = help("query");
        for present in [
            "--color",
            "--parallel-max-workers",
            "--merge-parts",
            "--timezone",
            "--output",
        ] {
            assert!(query.contains(present), "query lacks {present}:\n{query}");
        }
        let instant = help("instant-query");
        assert!(
            !instant.contains("--since") && !instant.contains("--parallel"),
            "{instant}"
        );
    }
}
