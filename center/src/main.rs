//! The `center` binary: runs the Telegram bot with an embedded node (single-machine mode).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use center::config::{CenterConfig, FileConfig, RunArgs};

/// Codex Fleet center: drive live Codex sessions from Telegram topics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see deploy/center.example.toml).
    #[arg(long, global = true, env = "CENTER_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, global = true, env = "RUST_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot (the default).
    Run {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Manage the fleet's remote nodes (the same as /node and /nodes in Telegram).
    Nodes {
        /// State directory (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: NodesAction,
    },
}

#[derive(Debug, Subcommand)]
enum NodesAction {
    /// List the nodes.
    List,
    /// Enroll a node from the join code `agent-node init` printed on it.
    Add {
        /// Its name.
        name: String,
        /// `host:port` of its `agent-node serve`.
        endpoint: String,
        /// The join code.
        code: String,
    },
    /// Manual mode: sign a node's certificate request (from its own key) and print the
    /// certificate followed by the fleet CA; give both to `agent-node serve --tls-cert/--tls-ca`.
    Sign {
        /// Its name.
        name: String,
        /// The CSR file (PEM).
        csr: PathBuf,
        /// `host:port` to dial it at (omit for a node that dials in).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Revoke a node: it is never dialled again.
    Remove {
        /// Its name.
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("center: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file: Option<FileConfig> = cli
        .config
        .as_deref()
        .map(CenterConfig::load_file)
        .transpose()?;
    let log = cli
        .log
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.log.clone()))
        .unwrap_or_else(|| "info".into());
    shared::telemetry::init(&log, false);
    let args = match cli.command {
        Some(Command::Run { args }) => args,
        Some(Command::Nodes { state_dir, action }) => return nodes(state_dir, action).await,
        None => cli.run,
    };
    let token_env = std::env::var("TELEGRAM_BOT_TOKEN").ok();
    let cfg = CenterConfig::resolve(&args, file, token_env)?;
    let token = CancellationToken::new();
    shared::shutdown::cancel_on_signal(token.clone());
    center::run(cfg, token).await.context("center stopped")
}

/// `center nodes …`: works on the state directory; a running center picks up changes when it
/// restarts (revocations in Telegram take effect at once).
async fn nodes(state_dir: Option<PathBuf>, action: NodesAction) -> anyhow::Result<()> {
    shared::tls::install_crypto_provider();
    let state_dir = state_dir
        .map(|p| shared::config::expand_tilde(&p))
        .or_else(|| shared::config::home_dir().map(|h| h.join(".codex-fleet")))
        .context("HOME is not set; pass --state-dir")?;
    std::fs::create_dir_all(&state_dir)?;
    let store = center::store::Store::open(&state_dir.join("center.db"))?;
    match action {
        NodesAction::List => {
            for n in store.nodes()? {
                let state = if n.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{state}", n.name, n.endpoint);
            }
        }
        NodesAction::Add {
            name,
            endpoint,
            code,
        } => {
            let pki = center::fleet::CenterPki::load_or_create(&state_dir)?;
            pki.enroll(&store, &name, &endpoint, &code).await?;
            println!(
                "{name} enrolled; restart the center to connect to it (or use /node add in Telegram next time)."
            );
        }
        NodesAction::Sign {
            name,
            csr,
            endpoint,
        } => {
            let pki = center::fleet::CenterPki::load_or_create(&state_dir)?;
            let csr = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let cert = pki.sign_renewal(&name, &csr)?;
            let serial = shared::pki::inspect(cert.as_bytes())?.serial_hex;
            store.put_node(&name, endpoint.as_deref().unwrap_or(""), &serial)?;
            print!("{cert}{}", pki.ca_pem());
        }
        NodesAction::Remove { name } => {
            anyhow::ensure!(store.revoke_node(&name)?, "there is no node {name}");
            println!("{name} revoked.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
