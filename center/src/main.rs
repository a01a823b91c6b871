//! The `center` binary: Telegram side of Codex Fleet (not built yet; see the README).

use clap::Parser;

/// Codex Fleet center: drives live Codex sessions from Telegram topics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("the Telegram center is not implemented yet; run `agent-node serve` for now")
}
