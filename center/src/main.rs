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
        None => cli.run,
    };
    let token_env = std::env::var("TELEGRAM_BOT_TOKEN").ok();
    let cfg = CenterConfig::resolve(&args, file, token_env)?;
    let token = CancellationToken::new();
    shared::shutdown::cancel_on_signal(token.clone());
    center::run(cfg, token).await.context("center stopped")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
