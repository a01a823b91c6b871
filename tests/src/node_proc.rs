//! Runs the real `agent-node` binary for tests, on a private tmux socket, and cleans up what it
//! started: the process (by PID) and the tmux server (by its socket name), never by name match.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Path of a workspace binary built next to the running test executable.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/e2e-hash → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test executable location")?;
    let bin = dir.join(name);
    if !bin.exists() {
        bail!(
            "{} not found: build the workspace first (`cargo build --workspace`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A private tmux server named after the test process; killed (by socket name) on drop.
pub struct TmuxSandbox {
    /// Socket name for `tmux -L`.
    pub socket: String,
}

impl TmuxSandbox {
    /// A fresh, unique socket name.
    pub fn new(label: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Self {
            socket: format!(
                "cf-test-{label}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Runs a tmux command on this server and returns its stdout.
    pub fn tmux(&self, args: &[&str]) -> anyhow::Result<String> {
        #[allow(
            clippy::disallowed_methods,
            reason = "test harness inspecting its own tmux server"
        )]
        let out = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running tmux")?;
        if !out.status.success() {
            bail!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TmuxSandbox {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Settings for one node process.
pub struct NodeOptions {
    /// State directory.
    pub state_dir: PathBuf,
    /// Codex home (transcripts).
    pub codex_home: PathBuf,
    /// tmux socket.
    pub tmux_socket: String,
    /// Command run in windows.
    pub codex_command: String,
    /// Roots (`name=/path`).
    pub roots: Vec<String>,
    /// Extra environment (e.g. the fake provider's key).
    pub env: Vec<(String, String)>,
    /// Port to listen on (0 = any).
    pub port: u16,
}

/// Where a node serves the node protocol, as the center writes it (`Display`): `host:port` or
/// `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddr {
    /// TCP: mutual TLS, or enrollment (a node that dials its center shows `0.0.0.0:0`).
    Tcp(SocketAddr),
    /// The Unix socket of a node that is not enrolled.
    Unix(PathBuf),
}

impl NodeAddr {
    /// The TCP port (0 for a Unix socket, which is found again from the state directory).
    pub fn port(&self) -> u16 {
        match self {
            Self::Tcp(addr) => addr.port(),
            Self::Unix(_) => 0,
        }
    }

    /// The TCP address, if the node serves on TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(addr) => Some(*addr),
            Self::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for NodeAddr {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.strip_prefix("unix:") {
            Some(path) => Self::Unix(PathBuf::from(path)),
            None => Self::Tcp(s.parse()?),
        })
    }
}

/// A running `agent-node serve`.
pub struct NodeProcess {
    child: Child,
    /// Where it listens.
    pub addr: NodeAddr,
}

impl NodeProcess {
    /// Starts the binary and waits for its "listening on" line.
    pub async fn start(opts: &NodeOptions) -> anyhow::Result<Self> {
        Self::start_bin(opts, &workspace_bin("agent-node")?).await
    }

    /// Like `start`, running the agent-node binary at `bin` (e.g. a copy, for upgrade tests).
    pub async fn start_bin(opts: &NodeOptions, bin: &Path) -> anyhow::Result<Self> {
        #[allow(
            clippy::disallowed_methods,
            reason = "test harness running the binary under test"
        )]
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", opts.port))
            .arg("--state-dir")
            .arg(&opts.state_dir)
            .arg("--codex-home")
            .arg(&opts.codex_home)
            .arg("--tmux-socket")
            .arg(&opts.tmux_socket)
            .arg("--codex-command")
            .arg(&opts.codex_command)
            .arg("--root")
            .arg(opts.roots.join(","))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,agent_node=debug".into()),
            )
            // Tests reach nothing beyond loopback: no `npm view` for the newest Codex.
            .env("CODEX_FLEET_CODEX_UPGRADE", "off")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting agent-node")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .context("agent-node did not start within 30 s")??
            .context("agent-node exited before listening")?;
        // A node that dials its center has no address of its own.
        let addr = if line.starts_with("agent-node dialing") {
            NodeAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 0)))
        } else {
            line.strip_prefix("agent-node listening on ")
                .and_then(|rest| rest.split_whitespace().next())
                .context("unexpected first line")?
                .parse()?
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    /// The process id (for reading its memory use).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits (up to `timeout`) for the process to exit and returns its status.
    pub async fn wait_exit(
        &mut self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .context("agent-node did not exit in time")?
            .context("waiting for agent-node")
    }

    /// Kills the process with SIGKILL (no cleanup runs: a crash).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing agent-node")
    }
}

/// Runs `agent-node init --name NAME` for `state_dir` and returns the join code it printed.
pub fn init_node(state_dir: &Path, name: &str) -> anyhow::Result<String> {
    let bin = workspace_bin("agent-node")?;
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness running the binary under test"
    )]
    let out = std::process::Command::new(bin)
        .args(["init", "--name", name, "--state-dir"])
        .arg(state_dir)
        .output()
        .context("running agent-node init")?;
    if !out.status.success() {
        bail!(
            "agent-node init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !code.starts_with("cfj1.") {
        bail!("unexpected join code {code:?}");
    }
    Ok(code)
}

/// Runs `agent-node join` with the code on its standard input (never in argv, see
/// `agent_node::code_input`) and returns its outcome (stdout or stderr).
pub fn join_node(
    state_dir: &Path,
    name: &str,
    center: &str,
    enroll: &str,
    code: &str,
) -> Result<String, String> {
    use std::io::Write;
    let bin = workspace_bin("agent-node").map_err(|e| e.to_string())?;
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness running the binary under test"
    )]
    let mut child = std::process::Command::new(bin)
        .args(["join", "--name", name, "--center", center, "--state-dir"])
        .arg(state_dir)
        .arg(enroll)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{code}").map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
