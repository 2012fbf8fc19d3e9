//! `larch-store`: the Loki-compatible log store, and in the all-in-one
//! mode an agent in the same process.
//!
//! Configuration comes from an optional YAML file (`--config`, or Loki's
//! spelling `-config.file`) with flags of the same names overriding it:
//! Larch's own keys (the store's plus `agent:`, see [`config`]), or a Loki
//! configuration, translated ([`loki`]). `--check-config` validates and
//! exits; `--print-config` prints the effective configuration. The store
//! itself is the `larch-store` library; this binary starts its servers,
//! the runtime configuration's reloading and the embedded agent, and
//! stops them in order on SIGTERM.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use anyhow::Context;
use clap::Parser;
use config::ServerConfig;
use larch_config::HumanDuration;
use larch_logging::LogFormat;
use larch_store::config::Config;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
use larch_store::server::{self, AppState};
use larch_store::services::{ServiceState, Services};

mod config;
mod loki;

/// `--version`: Larch's version and the Loki API version it serves.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (Loki API {})",
        env!("CARGO_PKG_VERSION"),
        larch_store::api::misc::LOKI_API_VERSION
    )
});

/// How long the ingester may take past the shutdown deadline to stop its
/// threads (one chunk write, the WAL writer's last group) before the
/// process exits without waiting for them. Exiting then is as safe as a
/// crash: every acknowledged push is in the WAL.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The Larch store: Loki's push and query APIs over a WAL and compressed
/// chunks on local disk.
#[derive(Parser, Debug)]
#[command(name = "larch-store", version = VERSION.as_str(), about, long_about = None, args_conflicts_with_subcommands = true)]
struct Args {
    /// Tools that do not start the store.
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML configuration file: Larch's keys (the flags' names with `_`),
    /// or a Loki configuration, recognised by its keys and translated.
    /// Loki's spelling `-config.file` is accepted.
    #[arg(long, visible_alias = "config.file", env = "LARCH_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP address (Loki API, /ready, /metrics). [default: 0.0.0.0:3100]
    #[arg(long)]
    http_addr: Option<String>,
    /// gRPC address (logproto.Pusher). [default: 0.0.0.0:9095]
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Directory of WAL, chunks and index. [default: ./data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Require X-Scope-OrgID on every request.
    #[arg(long)]
    auth_enabled: Option<bool>,
    /// Tenants that may push, comma-separated; others get 401. [default:
    /// empty, every tenant may push]
    #[arg(long, value_delimiter = ',')]
    tenant_allow_list: Option<Vec<String>>,
    /// Most tenants the store holds; a push creating one more gets 429; 0
    /// for no limit. [default: 10000]
    #[arg(long)]
    max_tenants: Option<usize>,
    /// Most tenants with their own `tenant` label value on /metrics; the
    /// others share `tenant="<other>"`. [default: 100]
    #[arg(long)]
    max_tenants_in_metrics: Option<usize>,
    /// Longest a shutdown may take from SIGTERM to exit (flushing included
    /// with ingester.flush_on_shutdown); what is not flushed by then is
    /// replayed from the WAL at the next start. [default: 20s]
    #[arg(long)]
    shutdown_timeout: Option<HumanDuration>,
    /// Also run an agent in this process that tails this pods directory
    /// (`<namespace>_<pod>_<uid>/<container>/<n>.log`) and pushes to this
    /// store: the all-in-one mode. Overrides `agent.pods_dir`.
    #[arg(long)]
    agent_pods_dir: Option<PathBuf>,
    /// Validate the configuration (and the runtime configuration file)
    /// and exit. Loki's `-verify-config` is accepted.
    #[arg(long, alias = "verify-config")]
    check_config: bool,
    /// Print the effective configuration, defaults filled in and secrets
    /// hidden, as YAML on stdout, and exit.
    #[arg(long)]
    print_config: bool,
    /// Print the effective configuration on stderr at start, then run
    /// (Loki's `-print-config-stderr`).
    #[arg(long)]
    print_config_stderr: bool,
    /// Rebuild every tenant's index log from its chunk files (the old logs
    /// are kept in `<data-dir>/quarantine/index/`), print a summary and
    /// exit. Run it with the store stopped.
    #[arg(long)]
    rebuild_index: bool,
    /// Which parts to run: `all` (everything, the single-node store),
    /// `write`, `read` or `backend` (the compactor); Loki's `-target` is
    /// accepted. [default: all]
    #[arg(long)]
    target: Option<larch_store::config::Target>,
    /// Expand `${VAR}` and `${VAR:-default}` in the configuration file from
    /// the environment (Loki's `-config.expand-env`; on by default here).
    #[arg(long = "config.expand-env", default_value_t = true, action = clap::ArgAction::Set)]
    config_expand_env: bool,
    /// Log filter (tracing-subscriber syntax), e.g. `info` or
    /// `larch_store=debug`; Loki's `-log.level` is accepted. [default: a
    /// Loki file's `server.log_level`, else info]
    #[arg(long, visible_alias = "log.level", env = "LARCH_LOG")]
    log_level: Option<String>,
    /// Log format on stderr: text (coloured only on a terminal), logfmt or
    /// json; Loki's `-log.format` is accepted. [default: a Loki file's
    /// `server.log_format`, else text]
    #[arg(long, visible_alias = "log.format")]
    log_format: Option<LogFormat>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Tokens for `auth.tokens_file`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// Print a new random token and its entry for the tokens file (only
    /// the entry's SHA-256 is stored; the token is shown once).
    New {
        /// The token's name, shown in logs and metrics.
        #[arg(long)]
        name: String,
        /// Tenants it acts for, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// read, write, read-write or admin.
        #[arg(long, default_value = "read")]
        access: String,
    },
}

/// `larch-store token new`: the token on stdout's first line, then the
/// YAML entry to add under `tokens:`.
fn token_new(name: &str, tenants: &[String], access: &str) -> anyhow::Result<()> {
    use larch_store::auth::tokens;
    let access: tokens::Access = access.parse().map_err(anyhow::Error::msg)?;
    let tenants: Vec<String> = tenants.iter().filter(|t| !t.is_empty()).cloned().collect();
    let (token, hash) = tokens::new_token()?;
    let entry = tokens::entry_yaml(name, &hash, &tenants, access);
    // The entry must be one the store accepts.
    tokens::TokenSet::parse(&format!("tokens:\n{entry}"))?;
    println!("{token}");
    println!("# Add under `tokens:` in auth.tokens_file; the token above is not stored anywhere.");
    print!("{entry}");
    Ok(())
}

/// Loki's single-dash spelling of a long flag (`-config.file=x`,
/// `-print-config-stderr`) as clap reads it (`--config.file=x`): a
/// single-dash argument whose name has a dot or is one of Loki's
/// multi-letter flags.
fn loki_spelling(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const WORDS: &[&str] = &[
        "print-config-stderr",
        "verify-config",
        "target",
        "version",
        "help",
    ];
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(text) = a.to_str().filter(|_| i > 0) else {
                return a;
            };
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return a;
            };
            let name = rest.split('=').next().unwrap_or("");
            if name.len() > 1 && (name.contains('.') || WORDS.contains(&name)) {
                OsString::from(format!("-{text}"))
            } else {
                a
            }
        })
        .collect()
}

fn load_config(args: &Args) -> anyhow::Result<config::Loaded> {
    let mut loaded = match &args.config {
        Some(path) => ServerConfig::load_file(path, args.config_expand_env)?,
        None => config::Loaded::default(),
    };
    let file = &mut loaded.config;
    let config = &mut file.store;
    if let Some(v) = &args.http_addr {
        config.http_addr = v.clone();
    }
    if let Some(v) = &args.grpc_addr {
        config.grpc_addr = v.clone();
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = args.auth_enabled {
        config.auth_enabled = v;
    }
    if let Some(v) = &args.tenant_allow_list {
        config.tenant_allow_list = v.iter().filter(|t| !t.is_empty()).cloned().collect();
    }
    if let Some(v) = args.max_tenants {
        config.max_tenants = v;
    }
    if let Some(v) = args.max_tenants_in_metrics {
        config.max_tenants_in_metrics = v;
    }
    if let Some(v) = args.shutdown_timeout {
        config.shutdown_timeout = v;
    }
    if let Some(v) = args.target {
        config.target = v;
    }
    if let Some(dir) = &args.agent_pods_dir {
        let agent = file.agent.get_or_insert_with(|| larch_agent::AgentConfig {
            positions: config.data_dir.join("agent-positions.yaml"),
            http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 3101)),
            ..larch_agent::AgentConfig::default()
        });
        agent.pods_dir = dir.clone();
    }
    if let Some(agent) = &mut file.agent
        && agent.store == larch_agent::AgentConfig::default().store
    {
        // The embedded agent pushes to this store over loopback.
        let port = config
            .http_addr
            .rsplit(':')
            .next()
            .unwrap_or("3100")
            .to_string();
        let scheme = if config.tls.enabled() {
            "https"
        } else {
            "http"
        };
        agent.store = format!("{scheme}://127.0.0.1:{port}");
    }
    file.validate()?;
    larch_store::runtime_config::load_initial(&file.store)?;
    Ok(loaded)
}

fn init_logs(args: &Args, loaded: &config::Loaded) -> anyhow::Result<()> {
    let level = args
        .log_level
        .clone()
        .or_else(|| loaded.log_level.clone())
        .unwrap_or_else(|| "info".to_string());
    let format = match (args.log_format, &loaded.log_format) {
        (Some(f), _) => f,
        (None, Some(f)) => f
            .parse()
            .with_context(|| "server.log_format of the Loki configuration")?,
        (None, None) => LogFormat::Text,
    };
    larch_logging::init(&level, format)?;
    Ok(())
}

/// The one warning about a Loki file's keys that have no effect.
fn unused_keys_text(loaded: &config::Loaded) -> Option<String> {
    (!loaded.unused.is_empty()).then(|| loaded.unused.join(", "))
}

fn main() -> std::process::ExitCode {
    match start(Args::parse_from(loki_spelling(std::env::args_os()))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the message with its causes on one line, as the
            // agent prints them; no backtrace, whatever RUST_BACKTRACE says.
            eprintln!("larch-store: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Token(TokenCommand::New {
        name,
        tenants,
        access,
    })) = &args.command
    {
        return token_new(name, tenants, access);
    }
    let loaded = load_config(&args)?;
    if args.print_config {
        print!("{}", render_config(&loaded.config)?);
        return Ok(());
    }
    if args.check_config {
        if let Some(keys) = unused_keys_text(&loaded) {
            eprintln!("warning: Loki configuration keys with no effect in Larch: {keys}");
        }
        println!("configuration is valid");
        return Ok(());
    }
    init_logs(&args, &loaded)?;
    if loaded.loki {
        tracing::info!("Read a Loki configuration file.");
    }
    if let Some(keys) = unused_keys_text(&loaded) {
        tracing::warn!(keys = %keys, "Loki configuration keys with no effect in Larch.");
    }
    if args.print_config_stderr {
        eprint!("{}", render_config(&loaded.config)?);
    }
    let config = loaded.config;
    if args.rebuild_index {
        if config.store.storage.backend != larch_store::config::Backend::Filesystem {
            anyhow::bail!(
                "--rebuild-index reads chunk files on local disk; with storage.backend {:?} the index lives in the bucket's segments",
                config.store.storage.backend
            );
        }
        return rebuild_index(&config.store);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("larch-store")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run(config));
    // Work still running on the blocking pool (a query past the shutdown
    // deadline) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

/// The effective configuration as YAML, secrets hidden.
fn render_config(config: &ServerConfig) -> anyhow::Result<String> {
    Ok(config
        .view()?
        .render(larch_store::config_view::Mode::Current)?)
}

/// Registers the roles this process runs, in Loki's words where Loki has
/// one: `server` (HTTP and gRPC), `distributor` (push), `ingester` (WAL and
/// chunks), `querier` (queries), `compactor` (retention, compaction), `ui`,
/// `runtime-config` (with a runtime file) and `agent` (all-in-one). Which
/// of the first five run follows `target`: `write` has the distributor and
/// the ingester, `read` the querier and the UI, `backend` the compactor.
fn register_services(services: &Services, config: &ServerConfig) {
    use larch_store::config::Target;
    let roles: &[&str] = match config.store.target {
        Target::All => &[
            "server",
            "distributor",
            "ingester",
            "querier",
            "compactor",
            "ui",
        ],
        Target::Write => &["server", "distributor", "ingester"],
        Target::Read => &["server", "querier", "ui"],
        Target::Backend => &["server", "compactor"],
    };
    for role in roles {
        services.set(role, ServiceState::Running);
    }
    if config.store.ruler.enabled {
        services.set("ruler", ServiceState::Running);
    }
    if !config.store.runtime_config.files().is_empty() {
        services.set("runtime-config", ServiceState::Running);
    }
    if config.agent.is_some() {
        services.set("agent", ServiceState::Starting);
    }
}

/// `--rebuild-index`: rebuilds the index logs and prints what was found.
fn rebuild_index(config: &Config) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let s = larch_store::ingester::recover::rebuild_index(config, &metrics).with_context(|| {
        format!(
            "rebuilding the index of data directory {}",
            config.data_dir.display()
        )
    })?;
    let r = &s.recovery;
    println!(
        "rebuilt the index of {} tenant(s): {} stream(s), {} chunk(s), {} entries",
        s.tenants, s.streams, s.chunks, s.entries
    );
    println!(
        "chunk files: {} adopted, {} quarantined ({} of them temporary files of cut-short writes), {} deleted (retired by a delete record)",
        r.adopted, r.quarantined, r.temp_quarantined, r.deleted_retired
    );
    println!(
        "old index logs kept in {}",
        config.data_dir.join("quarantine").join("index").display()
    );
    for n in &s.notes {
        println!("note: {n}");
    }
    Ok(())
}

async fn run(file: ServerConfig) -> anyhow::Result<()> {
    let view = Arc::new(file.view()?);
    let services = Services::new();
    register_services(&services, &file);
    let ServerConfig {
        store: config,
        agent: agent_config,
    } = file;
    let http = tokio::net::TcpListener::bind(&config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let grpc = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let metrics = Arc::new(Metrics::for_config(&config));
    let shutdown_timeout = config.shutdown_timeout;
    let data_dir = config.data_dir.clone();
    let mut config = config;
    let query_side = larch_store::ingester::query_side(&mut config);
    let (ingester, _report) = tokio::task::spawn_blocking(move || Ingester::open(config, metrics))
        .await?
        .with_context(|| format!("opening data directory {}", data_dir.display()))?;
    tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, data_dir = %data_dir.display(), target = ingester.config.target.as_str(), bucket = ingester.bucket.describe(), "Larch store is ready.");
    // `ruler.enabled: false` (every SimpleScalable role but backend): no
    // ruler, and no rules API.
    if !ingester.config.ruler.enabled && !ingester.config.ruler.api_forward_url.is_empty() {
        larch_store::ruler::forward::client(&ingester.config.ruler)
            .context("making the client of ruler.api_forward_url")?;
    }
    let ruler = if ingester.config.ruler.enabled {
        let ruler = larch_store::ruler::Ruler::start(ingester.clone())
            .context("starting the ruler's clients")?;
        // Groups (and the alert state saved before a restart) are loaded
        // before the API answers, so it never shows a ruler without them.
        ruler.sync().await;
        Some(ruler)
    } else {
        None
    };
    let mut state = AppState::new(ingester.clone());
    let query = state.query.clone();
    if let Some(r) = &ruler {
        state = state.with_ruler(r.clone());
    }
    let mut state = state
        .secure()
        .context("setting up authentication and TLS")?;
    state.services = services.clone();
    state.config_view = Some(view);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(larch_store::runtime_config::reload_loop(
        ingester.config.clone(),
        ingester.metrics.clone(),
        stop_rx.clone(),
    ));
    let agent = match agent_config {
        Some(cfg) => {
            let handle = start_agent(cfg, stop_rx.clone()).await?;
            services.set("agent", ServiceState::Running);
            Some(handle)
        }
        None => None,
    };
    let mut server_stop = stop_rx;
    let shutdown_request = state.shutdown_request.clone();
    // SIGTERM is taken over before the first request can be answered: a
    // signal that came between readiness and the first poll of the wait
    // below would otherwise end the process at once, without the flush.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let mut server = tokio::spawn(server::serve(state, http, grpc, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    // A write node with `cluster:` answers queries as a read node does,
    // from a read-side ingester of its own, opened once the servers run
    // (its membership asks this node's gRPC server too). Its metrics are
    // not served: the node's own count what it does. Until it is open
    // and has listed the bucket, the node's own ingester answers.
    if let Some(c) = query_side {
        let query = query.clone();
        tokio::spawn(async move {
            let dir = c.data_dir.clone();
            let m = Arc::new(Metrics::for_config(&c));
            match tokio::task::spawn_blocking(move || Ingester::open(c, m)).await {
                Ok(Ok((q, _))) => {
                    let _ = query.set(q);
                }
                Ok(Err(e)) => {
                    tracing::error!(dir = %dir.display(), error = %e, "The query side could not be opened; queries are answered from the members' data alone.")
                }
                Err(e) => tracing::error!(error = %e, "Opening the query side failed."),
            }
        });
    }
    tokio::select! {
        () = first_signal(term) => {}
        () = shutdown_request.notified() => {
            tracing::info!("Shutting down as /ingester/shutdown asked.");
        }
    }
    // A member of several write nodes leaves first: the others take its
    // new streams while it finishes and flushes.
    if let Some(c) = &ingester.cluster {
        c.leave();
    }
    let started = std::time::Instant::now();
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!(
            "Second signal: exiting at once. Every acknowledged push is in the WAL and is replayed at the next start."
        );
        std::process::exit(1);
    });
    let deadline = tokio::time::Instant::now() + shutdown_timeout.0;
    tracing::info!(
        timeout = %shutdown_timeout,
        flush_on_shutdown = ingester.config.ingester.flush_on_shutdown,
        "Shutting down."
    );
    services.set_running(ServiceState::Stopping);
    // A member hands over while its servers still answer: it flushes its
    // heads to the bucket, then keeps answering the readers' queries for
    // `cluster.leave_linger`, until each of them has seen it leaving and
    // listed the bucket with its last chunks (a reader that asks it after
    // it exits takes its silence as that). Both within the deadline; a
    // second of it is kept for the rest of the shutdown. (Before the
    // servers are told to stop: they stop with the agent.)
    if ingester.cluster.is_some() && ingester.config.target.writes() {
        let ing = ingester.clone();
        let until = deadline.into_std();
        let flush = tokio::task::spawn_blocking(move || ing.flush_until(until));
        if tokio::time::timeout_at(deadline, flush).await.is_err() {
            tracing::warn!(
                "The flush did not end before the shutdown deadline; what is not in the bucket stays in the WAL and is replayed at the next start."
            );
        }
        let linger = ingester.config.leave_linger();
        let latest = deadline
            .checked_sub(std::time::Duration::from_secs(1))
            .unwrap_or(deadline);
        let until = (tokio::time::Instant::now() + linger).min(latest);
        tracing::info!(
            linger = ?linger,
            left = ?until.saturating_duration_since(tokio::time::Instant::now()),
            "Flushed; still answering queries while the readers list the bucket."
        );
        tokio::time::sleep_until(until).await;
    }
    // The agent stops first, so its last batches reach the store.
    let _ = stop_tx.send(true);
    if let Some(a) = agent {
        match tokio::time::timeout_at(deadline, a).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "The embedded agent stopped with an error.")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "The embedded agent failed."),
            Err(_) => tracing::warn!(
                "The embedded agent did not stop before the shutdown deadline; it sends its unacknowledged lines again at the next start."
            ),
        }
    }
    // Rule evaluations stop and the alert state is saved (alerts are not
    // resolved: they are restored at the next start).
    if let Some(r) = &ruler {
        r.stop(deadline).await;
    }
    // Requests in flight finish, up to the deadline.
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "The server stopped with an error."),
        Ok(Err(e)) => tracing::error!(error = %e, "The server task failed."),
        Err(_) => {
            server.abort();
            tracing::warn!(
                "Requests still running at the shutdown deadline were cut off; unacknowledged pushes are retried by their clients."
            );
        }
    }
    let ing = ingester.clone();
    let stop = tokio::task::spawn_blocking(move || ing.shutdown_until(deadline.into_std()));
    match tokio::time::timeout_at(deadline + STOP_GRACE, stop).await {
        Ok(Ok(report)) => tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            streams_in_wal = report.streams_in_wal,
            out_of_time = report.out_of_time,
            "Stopped; streams with entries only in the WAL are replayed at the next start."
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Stopping the ingester failed; the WAL is replayed at the next start.")
        }
        Err(_) => tracing::error!(
            "The ingester did not stop in time; exiting anyway. Every acknowledged push is in the WAL and is replayed at the next start."
        ),
    }
    // The query side holds nothing of its own (no pushes, no WAL data).
    if let Some(q) = query.get().cloned() {
        let stop = tokio::task::spawn_blocking(move || q.shutdown_until(std::time::Instant::now()));
        let _ = tokio::time::timeout(STOP_GRACE, stop).await;
    }
    Ok(())
}

/// Starts the embedded agent (all-in-one mode); it stops when `stop` turns
/// true.
async fn start_agent(
    cfg: larch_agent::AgentConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<larch_agent::Result<()>>> {
    std::fs::create_dir_all(&cfg.pods_dir).with_context(|| {
        format!(
            "creating the agent's pods directory {}",
            cfg.pods_dir.display()
        )
    })?;
    if let Some(dir) = cfg.positions.parent() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("creating the agent's positions directory {}", dir.display())
        })?;
    }
    tracing::info!(pods_dir = %cfg.pods_dir.display(), store = %cfg.store, "Starting the embedded agent.");
    let agent = larch_agent::Agent::new(cfg).context("starting the embedded agent")?;
    Ok(tokio::spawn(async move {
        agent
            .run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    }))
}

/// Waits for SIGTERM on the stream registered at start (or Ctrl-C).
async fn first_signal(term: std::io::Result<tokio::signal::unix::Signal>) {
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot listen for SIGTERM; stop with Ctrl-C.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Cannot listen for SIGTERM; stop with Ctrl-C.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
