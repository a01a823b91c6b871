//! Runs the real `center` binary for tests (embedded node, private tmux socket), and kills it by
//! PID — with SIGKILL to simulate a crash, or on drop.

use std::{path::PathBuf, process::Stdio};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::node_proc::workspace_bin;

/// Settings for one center process.
#[derive(Clone)]
pub struct CenterOptions {
    /// Bot token.
    pub token: String,
    /// Allowed user ids.
    pub allowed_users: Vec<i64>,
    /// Fake Bot API base URL.
    pub api_url: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// tmux socket of the embedded node.
    pub tmux_socket: String,
    /// Command run in windows.
    pub codex_command: String,
    /// Roots (`name=/path`).
    pub roots: Vec<String>,
    /// Extra environment (CODEX_HOME, the fake provider key).
    pub env: Vec<(String, String)>,
}

/// A running center.
pub struct CenterProcess {
    child: Child,
    /// What the center printed before it started polling.
    pub startup: Vec<String>,
}

impl CenterProcess {
    /// Starts the binary and waits until it polls Telegram.
    pub async fn start(opts: &CenterOptions) -> anyhow::Result<Self> {
        let bin = workspace_bin("center")?;
        #[allow(
            clippy::disallowed_methods,
            reason = "test harness running the binary under test"
        )]
        let mut cmd = Command::new(bin);
        let users: Vec<String> = opts.allowed_users.iter().map(i64::to_string).collect();
        // Health alerts (a busy test machine's load) would be messages no other test expects:
        // off unless the test brings its own config.
        if !opts.env.iter().any(|(k, _)| k == "CENTER_CONFIG") {
            let config = opts.state_dir.join("test-center.toml");
            // The benches hand over a state dir the center has yet to make.
            std::fs::create_dir_all(&opts.state_dir).context("making the state dir")?;
            std::fs::write(&config, "[alerts]\nenabled = false\n")
                .context("writing the test config")?;
            cmd.env("CENTER_CONFIG", &config);
        }
        cmd.env("TELEGRAM_BOT_TOKEN", &opts.token)
            .env("ALLOWED_USERS", users.join(","))
            .env("TELEGRAM_API_URL", &opts.api_url)
            .env("CODEX_FLEET_STATE_DIR", &opts.state_dir)
            .env("CODEX_FLEET_TMUX_SOCKET", &opts.tmux_socket)
            .env("CODEX_FLEET_CODEX_COMMAND", &opts.codex_command)
            .env("CODEX_FLEET_ROOTS", opts.roots.join(","))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,center=debug".into()),
            )
            // Tests reach nothing beyond loopback: no `npm view` for the newest Codex.
            .env("CODEX_FLEET_CODEX_UPGRADE", "off")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting center")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut startup = Vec::new();
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
                .await
                .context("center did not start within 30 s")??
                .context("center exited before polling")?;
            if line.contains("polling Telegram") {
                break;
            }
            startup.push(line);
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, startup })
    }

    /// The address after `prefix` in a startup line, e.g. `center: enrollment at `.
    pub fn printed_addr(&self, prefix: &str) -> Option<String> {
        self.startup
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(|a| a.trim().to_owned()))
    }

    /// The process id (for reading its memory use).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: a crash, no cleanup.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing center")
    }
}
