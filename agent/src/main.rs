//! `larch-agent`: the node log agent. See the library documentation for
//! the design; this file parses flags, sets up logging and runs the agent
//! until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;
use larch_agent::flags::Flags;

/// Logs on stderr: text (coloured only on a terminal), logfmt or JSON.
fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let format: larch_logging::LogFormat = format.parse()?;
    larch_logging::init(level, format)?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, run until killed.
            std::future::pending::<()>().await;
        }
    }
}

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    if flags.check_config || flags.print_config {
        return match flags.load_valid() {
            Ok(cfg) => {
                if flags.print_config {
                    match cfg.to_yaml() {
                        Ok(y) => print!("{y}"),
                        Err(e) => {
                            eprintln!("larch-agent: cannot print the configuration: {e}");
                            return std::process::ExitCode::FAILURE;
                        }
                    }
                } else {
                    println!("larch-agent: configuration is valid");
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("larch-agent: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(flags) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("larch-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(flags: Flags) -> anyhow::Result<()> {
    let cfg = flags.load_valid()?;
    init_logging(&cfg.log_level, &cfg.log_format)?;
    tracing::info!(store = %cfg.store, pods_dir = %cfg.pods_dir.display(), node = %cfg.node_name, "Starting larch-agent.");
    // A current-thread runtime is enough for the sender, the HTTP endpoints
    // and the Kubernetes watch; the reading runs on its own thread. Fewer
    // threads keep the agent's memory small on every node.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let agent = larch_agent::Agent::new(cfg)?;
        agent.run(shutdown_signal()).await
    })?;
    Ok(())
}
