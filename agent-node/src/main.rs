//! The `agent-node` binary: serves this machine's Codex windows to a center.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use agent_node::{
    Node, NodeConfig,
    config::{FileConfig, ServeArgs},
};

/// How long running work may take to stop after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Codex Fleet agent-node: live Codex sessions in tmux, driven from a center.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see deploy/agent-node.example.toml).
    #[arg(long, global = true, env = "AGENT_NODE_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, global = true, env = "RUST_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the node protocol (plaintext gRPC on a loopback address).
    Serve {
        #[command(flatten)]
        args: ServeArgs,
        /// Print the effective configuration and exit.
        #[arg(long)]
        dump_config: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = cli.config.as_deref().map(FileConfig::load).transpose()?;
    let log = cli
        .log
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.log.clone()))
        .unwrap_or_else(|| "info".into());
    shared::telemetry::init(&log, false);
    match cli.command {
        Command::Serve { args, dump_config } => {
            let listen = args
                .listen
                .or_else(|| file.as_ref().and_then(|f| f.listen))
                .unwrap_or_else(|| ([127, 0, 0, 1], 7443).into());
            let config = NodeConfig::resolve(&args, file)?;
            if dump_config {
                println!("{config:#?}\nlisten: {listen}");
                return Ok(());
            }
            serve(config, listen).await
        }
    }
}

async fn serve(config: NodeConfig, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    shared::shutdown::cancel_on_signal(token.clone());
    let node = Node::start(config, token.clone())
        .await
        .context("starting the node")?;
    let (addr, server) = agent_node::transport::bind_plaintext(node, listen, token.clone()).await?;
    // Tests and scripts read this line to learn the port when --listen used port 0.
    println!("agent-node listening on {addr}");
    tracing::info!(%addr, "serving the node protocol");
    let result = server.await;
    token.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = SHUTDOWN_GRACE;
    result.context("serving")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
