//! The node's settings: clap flags (with env fallbacks) over an optional TOML file over defaults.
//!
//! The library takes a [`NodeConfig`] (what the center's embedded node builds too); the binary
//! builds one from [`Cli`] and [`FileConfig`] with [`NodeConfig::resolve`].

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use shared::config::{ConfigError, expand_tilde, home_dir, load_toml};

/// A directory tree the center may browse and start sessions in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// Short name shown to users, e.g. `home` or `work`.
    pub name: String,
    /// Absolute path (a leading `~/` is expanded).
    pub path: PathBuf,
}

/// Everything a [`crate::Node`] needs. Build with [`NodeConfig::resolve`] or by hand (tests,
/// the center's embedded node).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name reported in `Welcome`.
    pub name: String,
    /// Directory for the node's own state (window registry).
    pub state_dir: PathBuf,
    /// tmux socket name (`tmux -L <socket>`): a private server, never the user's default one.
    pub tmux_socket: String,
    /// tmux session holding one window per Codex session.
    pub tmux_session: String,
    /// Command started in each window, e.g. `codex` or `codex --dangerously-bypass-approvals-and-sandbox`.
    pub codex_command: String,
    /// Codex's home (`$CODEX_HOME`, default `~/.codex`); transcripts live in its `sessions/`.
    pub codex_home: PathBuf,
    /// Directory trees that may be browsed and used as a session's working directory.
    pub roots: Vec<RootConfig>,
    /// Extra environment for Codex windows (on top of the node's own `PATH` and `CODEX_HOME`).
    pub window_env: Vec<(String, String)>,
    /// Folders `agent-node send --file` may offer files from, besides the roots and the node's
    /// inbox (absolute paths).
    pub send_roots: Vec<PathBuf>,
    /// The least time between pasting text and the submitting key; the key goes as soon as a
    /// capture after this shows the text in Codex's composer (see `requests::typing` for the
    /// measurement behind the default).
    pub paste_delay: Duration,
    /// How long to wait for the transcript to show a submitted message.
    pub confirm_timeout: Duration,
    /// How long a new window may take to show Codex's composer.
    pub startup_timeout: Duration,
    /// Screen refresh interval while a turn runs (no refresh while idle).
    pub busy_refresh: Duration,
    /// How often the node checks that its windows still exist.
    pub liveness_interval: Duration,
    /// Heartbeat interval on a connected link.
    pub heartbeat_interval: Duration,
    /// Window size for the tmux session (columns, rows).
    pub window_size: (u16, u16),
    /// Headless `codex exec` jobs (`[jobs]` in the file).
    pub jobs: JobsConfig,
    /// Saved Codex accounts (`[accounts]` in the file).
    pub accounts: AccountsConfig,
    /// Adopt a `codex` started at the desk in the node's tmux session, so the center opens a
    /// forum topic for it (see `crate::desk`). Off by default.
    pub desk_topics: bool,
    /// Codex CLI upgrades (`[codex_upgrade]` in the file).
    pub codex_upgrade: CodexUpgradeConfig,
}

/// Keeping the Codex CLI up to date (see `crate::codex_upgrade`): once a day, when no window
/// is busy, the node asks for the newest release; the center offers an "Upgrade" button, and a
/// press installs it when no window is busy or asking. Commands run without a shell; the
/// install command's `{version}` is replaced by the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexUpgradeConfig {
    /// On, off, or `None`: on when the node can write where Codex is installed.
    pub enabled: Option<bool>,
    /// Prints the newest release (its last line).
    pub latest_command: String,
    /// Installs release `{version}`.
    pub install_command: String,
}

impl Default for CodexUpgradeConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            latest_command: "npm view @openai/codex version".into(),
            install_command: "npm install -g @openai/codex@{version}".into(),
        }
    }
}

/// `[codex_upgrade]` in the file: see [`CodexUpgradeConfig`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodexUpgradeFileConfig {
    /// See [`CodexUpgradeConfig::enabled`] (default: on where the Codex install is writable).
    pub enabled: Option<bool>,
    /// See [`CodexUpgradeConfig::latest_command`].
    pub latest_command: Option<String>,
    /// See [`CodexUpgradeConfig::install_command`].
    pub install_command: Option<String>,
}

/// Codex accounts of this node (see `crate::accounts`): each lives in its own `CODEX_HOME` under
/// `<state_dir>/accounts/<name>/`; new windows and jobs use the selected one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountsConfig {
    /// The program `/codexlogin` runs as `<program> login --device-auth` (no shell); empty: the
    /// Codex program of `codex_command`.
    pub login_command: String,
    /// On a usage-limit failure, switch new windows and jobs to the next saved account.
    pub rotate: bool,
}

/// `[accounts]` in the file: see [`AccountsConfig`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFileConfig {
    /// See [`AccountsConfig::login_command`].
    pub login_command: Option<String>,
    /// See [`AccountsConfig::rotate`] (default false).
    pub rotate: Option<bool>,
}

/// Settings of the jobs a node runs for the center (`codex exec`, see `crate::jobs`). Jobs use
/// the Codex program of `codex_command` (its first word) and the environment windows get; their
/// output is kept under `<state_dir>/jobs/<job id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// How long a cancelled job gets between SIGTERM and SIGKILL of its process group, unless
    /// the center's `CancelJob` names its own.
    pub cancel_grace: Duration,
    /// How long a finished job's folder (output, events, artifacts list) is kept; older ones are
    /// deleted when the node starts.
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            cancel_grace: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[jobs]` in the file: see [`JobsConfig`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFileConfig {
    /// Milliseconds between SIGTERM and SIGKILL when a job is cancelled (default 5000).
    pub cancel_grace_ms: Option<u64>,
    /// Days a finished job's folder is kept (default 7).
    pub retention_days: Option<u64>,
}

impl NodeConfig {
    /// Defaults for a node whose state lives in `state_dir`, with the user's home as the only root.
    pub fn with_defaults(state_dir: PathBuf) -> Self {
        let home = home_dir().unwrap_or_else(|| PathBuf::from("/"));
        let codex_home = std::env::var_os("CODEX_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".codex"));
        Self {
            name: hostname(),
            state_dir,
            tmux_socket: "codex-fleet".into(),
            tmux_session: "codex-fleet".into(),
            codex_command: "codex".into(),
            codex_home,
            roots: vec![RootConfig {
                name: "home".into(),
                path: home,
            }],
            window_env: Vec::new(),
            send_roots: Vec::new(),
            paste_delay: Duration::from_millis(30),
            confirm_timeout: Duration::from_secs(15),
            startup_timeout: Duration::from_secs(40),
            busy_refresh: Duration::from_millis(500),
            liveness_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(15),
            window_size: (160, 48),
            jobs: JobsConfig::default(),
            accounts: AccountsConfig::default(),
            desk_topics: false,
            codex_upgrade: CodexUpgradeConfig::default(),
        }
    }

    /// Merges defaults < file < flags/env and validates the result.
    pub fn resolve(cli: &ServeArgs, file: Option<FileConfig>) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let state_dir = cli
            .state_dir
            .clone()
            .or(file.state_dir)
            .map(|p| expand_tilde(&p))
            .or_else(|| home_dir().map(|h| h.join(".codex-fleet").join("node")))
            .ok_or(ConfigError::Invalid {
                setting: "state_dir",
                message: "HOME is not set; pass --state-dir".into(),
            })?;
        let mut cfg = Self::with_defaults(state_dir);
        if let Some(v) = cli.name.clone().or(file.name) {
            cfg.name = v;
        }
        if let Some(v) = cli.tmux_socket.clone().or(file.tmux_socket) {
            cfg.tmux_socket = v;
        }
        if let Some(v) = cli.tmux_session.clone().or(file.tmux_session) {
            cfg.tmux_session = v;
        }
        if let Some(v) = cli.codex_command.clone().or(file.codex_command) {
            cfg.codex_command = v;
        }
        if let Some(v) = cli.codex_home.clone().or(file.codex_home) {
            cfg.codex_home = expand_tilde(&v);
        }
        if !cli.root.is_empty() {
            cfg.roots = cli
                .root
                .iter()
                .map(|r| parse_root(r))
                .collect::<Result<_, _>>()?;
        } else if let Some(roots) = file.roots {
            cfg.roots = roots
                .into_iter()
                .map(|r| RootConfig {
                    name: r.name,
                    path: expand_tilde(&r.path),
                })
                .collect();
        }
        if let Some(dirs) = file.send_roots {
            cfg.send_roots = dirs.iter().map(|d| expand_tilde(d)).collect();
        }
        if let Some(ms) = cli.paste_delay_ms.or(file.paste_delay_ms) {
            cfg.paste_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = file.confirm_timeout_ms {
            cfg.confirm_timeout = Duration::from_millis(ms);
        }
        if let Some(jobs) = file.jobs {
            if let Some(ms) = jobs.cancel_grace_ms {
                cfg.jobs.cancel_grace = Duration::from_millis(ms);
            }
            if let Some(days) = jobs.retention_days {
                cfg.jobs.retention = Duration::from_secs(days.saturating_mul(24 * 3600));
            }
        }
        if let Some(v) = file.desk_topics {
            cfg.desk_topics = v;
        }
        if let Some(up) = file.codex_upgrade {
            cfg.codex_upgrade.enabled = up.enabled;
            if let Some(v) = up.latest_command {
                cfg.codex_upgrade.latest_command = v;
            }
            if let Some(v) = up.install_command {
                cfg.codex_upgrade.install_command = v;
            }
        }
        if let Some(switch) = cli.codex_upgrade {
            cfg.codex_upgrade.enabled = switch.forced();
        }
        if let Some(accounts) = file.accounts {
            if let Some(v) = accounts.login_command {
                cfg.accounts.login_command = v;
            }
            if let Some(v) = accounts.rotate {
                cfg.accounts.rotate = v;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects settings that cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| {
            Err(ConfigError::Invalid {
                setting,
                message: message.into(),
            })
        };
        if self.codex_command.trim().is_empty() {
            return invalid("codex_command", "must not be empty");
        }
        if !valid_tmux_name(&self.tmux_socket) {
            return invalid("tmux_socket", "use letters, digits, '-' and '_' only");
        }
        if !valid_tmux_name(&self.tmux_session) {
            return invalid("tmux_session", "use letters, digits, '-' and '_' only");
        }
        if self.roots.is_empty() {
            return invalid("roots", "at least one root directory is needed");
        }
        for root in &self.roots {
            if !root.path.is_absolute() {
                return invalid("roots", "root paths must be absolute");
            }
            if root.name.trim().is_empty() {
                return invalid("roots", "root names must not be empty");
            }
        }
        if self.send_roots.iter().any(|d| !d.is_absolute()) {
            return invalid("send_roots", "send_roots paths must be absolute");
        }
        if self.jobs.cancel_grace > Duration::from_secs(600) {
            return invalid(
                "jobs.cancel_grace_ms",
                "must be at most 600000 ms (a cancelled job is killed after it)",
            );
        }
        if self.jobs.retention < Duration::from_secs(3600) {
            return invalid(
                "jobs.retention_days",
                "must be at least 1 (finished jobs are kept until the center has them)",
            );
        }
        let words = |command: &str| shlex::split(command).filter(|w| !w.is_empty());
        if words(&self.codex_upgrade.latest_command).is_none() {
            return invalid(
                "codex_upgrade.latest_command",
                "must be a command line (words, with quotes closed)",
            );
        }
        match words(&self.codex_upgrade.install_command) {
            Some(w) if w.iter().any(|w| w.contains("{version}")) => {}
            _ => {
                return invalid(
                    "codex_upgrade.install_command",
                    "must be a command line with {version} where the release goes",
                );
            }
        }
        if self.paste_delay > Duration::from_secs(10) {
            return invalid(
                "paste_delay_ms",
                "must be at most 10000 ms (it only sets the least wait between paste and Enter)",
            );
        }
        Ok(())
    }
}

fn valid_tmux_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `name=path` or a bare path (named after its last component).
fn parse_root(spec: &str) -> Result<RootConfig, ConfigError> {
    let (name, path) = match spec.split_once('=') {
        Some((name, path)) => (name.to_owned(), expand_tilde(Path::new(path))),
        None => {
            let path = expand_tilde(Path::new(spec));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "root".into());
            (name, path)
        }
    };
    Ok(RootConfig { name, path })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// The optional TOML file (`--config`). Every field is optional; flags win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`NodeConfig::name`].
    pub name: Option<String>,
    /// See [`NodeConfig::state_dir`].
    pub state_dir: Option<PathBuf>,
    /// See [`NodeConfig::tmux_socket`].
    pub tmux_socket: Option<String>,
    /// See [`NodeConfig::tmux_session`].
    pub tmux_session: Option<String>,
    /// See [`NodeConfig::codex_command`].
    pub codex_command: Option<String>,
    /// See [`NodeConfig::codex_home`].
    pub codex_home: Option<PathBuf>,
    /// See [`NodeConfig::roots`].
    pub roots: Option<Vec<RootConfig>>,
    /// See [`NodeConfig::send_roots`].
    pub send_roots: Option<Vec<PathBuf>>,
    /// See [`NodeConfig::paste_delay`].
    pub paste_delay_ms: Option<u64>,
    /// See [`NodeConfig::confirm_timeout`].
    pub confirm_timeout_ms: Option<u64>,
    /// See [`NodeConfig::jobs`].
    pub jobs: Option<JobsFileConfig>,
    /// See [`NodeConfig::accounts`].
    pub accounts: Option<AccountsFileConfig>,
    /// See [`NodeConfig::desk_topics`].
    pub desk_topics: Option<bool>,
    /// See [`NodeConfig::codex_upgrade`].
    pub codex_upgrade: Option<CodexUpgradeFileConfig>,
    /// Address for `agent-node serve` once enrolled (mutual TLS) or while enrolling.
    pub listen: Option<SocketAddr>,
    /// Unix socket an unenrolled node serves on (default `<state_dir>/node.sock`).
    pub socket: Option<PathBuf>,
    /// Other uids that may attach through the Unix socket (the node's own user always may).
    pub allow_uids: Option<Vec<u32>>,
    /// Log filter (RUST_LOG syntax).
    pub log: Option<String>,
}

impl FileConfig {
    /// Loads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }
}

/// Flags of `agent-node serve` (each also readable from the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TCP address to serve the node protocol on, over mutual TLS once enrolled (and for the
    /// enrollment itself); default 127.0.0.1:7443. A node that is not enrolled serves only on
    /// its Unix socket (--socket).
    #[arg(long, env = "AGENT_NODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Unix socket for a node that is not enrolled (default <state-dir>/node.sock); its
    /// directory must be private to this user. The center dials it as `unix:<path>`.
    #[arg(long, env = "AGENT_NODE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Another user id allowed to attach through the Unix socket (repeat or comma-separate);
    /// this node's own user always may, nobody else unless listed.
    #[arg(
        long = "allow-uid",
        env = "AGENT_NODE_ALLOW_UIDS",
        value_delimiter = ','
    )]
    pub allow_uids: Vec<u32>,
    /// Node name (default: the host name).
    #[arg(long, env = "AGENT_NODE_NAME")]
    pub name: Option<String>,
    /// State directory (default ~/.codex-fleet/node).
    #[arg(long, env = "AGENT_NODE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// tmux socket name (tmux -L); default codex-fleet.
    #[arg(long, env = "AGENT_NODE_TMUX_SOCKET")]
    pub tmux_socket: Option<String>,
    /// tmux session name; default codex-fleet.
    #[arg(long, env = "AGENT_NODE_TMUX_SESSION")]
    pub tmux_session: Option<String>,
    /// Command run in each window; default `codex`.
    #[arg(long, env = "CODEX_FLEET_CODEX_COMMAND")]
    pub codex_command: Option<String>,
    /// Codex home; default $CODEX_HOME or ~/.codex.
    #[arg(long)]
    pub codex_home: Option<PathBuf>,
    /// A browsable root, `name=/path` or `/path`; repeat for several (default: your home).
    #[arg(long = "root", env = "CODEX_FLEET_ROOTS", value_delimiter = ',')]
    pub root: Vec<String>,
    /// Least milliseconds between pasting text and pressing Enter (default 30; <= 10000).
    #[arg(long, env = "CODEX_FLEET_PASTE_DELAY_MS")]
    pub paste_delay_ms: Option<u64>,
    /// Manual TLS: this node's certificate (PEM, signed by the fleet CA: `center nodes sign`).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// Manual TLS: this node's private key (PEM; it never leaves this machine).
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// Manual TLS: the fleet CA certificate (PEM).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Dial this center (host:port) instead of waiting for it (nodes behind NAT).
    #[arg(long)]
    pub connect: Option<String>,
    /// Codex CLI upgrades: on, off, or auto (on where the Codex install is writable); wins
    /// over `[codex_upgrade] enabled`.
    #[arg(long, env = "CODEX_FLEET_CODEX_UPGRADE")]
    pub codex_upgrade: Option<Switch>,
}

/// A setting that can also follow what the machine allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Always on.
    On,
    /// Always off.
    Off,
    /// Decided by the machine (see the setting).
    Auto,
}

impl Switch {
    /// `Some(true)`, `Some(false)`, or `None` for auto.
    pub fn forced(self) -> Option<bool> {
        match self {
            Self::On => Some(true),
            Self::Off => Some(false),
            Self::Auto => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            name = "from-file"
            tmux_session = "file-session"
            codex_command = "codex --no-daemon"
            roots = [{ name = "work", path = "/srv/work" }]
            send_roots = ["/srv/exports"]
            [jobs]
            cancel_grace_ms = 2000
            retention_days = 3
            "#,
        )
        .unwrap();
        let cli = ServeArgs {
            name: Some("from-flag".into()),
            state_dir: Some("/tmp/x".into()),
            ..ServeArgs::default()
        };
        let cfg = NodeConfig::resolve(&cli, Some(file)).unwrap();
        assert_eq!(cfg.name, "from-flag");
        assert_eq!(cfg.tmux_session, "file-session");
        assert_eq!(cfg.tmux_socket, "codex-fleet");
        assert_eq!(cfg.codex_command, "codex --no-daemon");
        assert_eq!(cfg.roots[0].path, PathBuf::from("/srv/work"));
        assert_eq!(cfg.send_roots, vec![PathBuf::from("/srv/exports")]);
        assert_eq!(cfg.jobs.cancel_grace, Duration::from_secs(2));
        assert_eq!(cfg.jobs.retention, Duration::from_secs(3 * 24 * 3600));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<FileConfig>("colour = 1").unwrap_err();
        assert!(err.to_string().contains("colour"));
        let cli = ServeArgs {
            state_dir: Some("/tmp/x".into()),
            tmux_socket: Some("bad name;".into()),
            ..ServeArgs::default()
        };
        let err = NodeConfig::resolve(&cli, None).unwrap_err();
        assert!(err.to_string().contains("tmux_socket"), "{err}");
        let cli = ServeArgs {
            state_dir: Some("/tmp/x".into()),
            paste_delay_ms: Some(60_000),
            ..ServeArgs::default()
        };
        assert!(NodeConfig::resolve(&cli, None).is_err());
    }

    #[test]
    fn roots_parse_from_flags() {
        assert_eq!(
            parse_root("work=/srv/w").unwrap(),
            RootConfig {
                name: "work".into(),
                path: "/srv/w".into()
            }
        );
        assert_eq!(parse_root("/srv/proj").unwrap().name, "proj");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let file: FileConfig =
            toml::from_str(include_str!("../../deploy/agent-node.example.toml")).unwrap();
        let cli = ServeArgs {
            state_dir: Some("/tmp/x".into()),
            ..ServeArgs::default()
        };
        let cfg = NodeConfig::resolve(&cli, Some(file)).unwrap();
        assert_eq!(cfg.accounts, AccountsConfig::default());
    }

    #[test]
    fn accounts_section_sets_the_login_command_and_rotation() {
        let file: FileConfig =
            toml::from_str("[accounts]\nlogin_command = \"/opt/login\"\nrotate = true\n").unwrap();
        let cli = ServeArgs {
            state_dir: Some("/tmp/x".into()),
            ..ServeArgs::default()
        };
        let cfg = NodeConfig::resolve(&cli, Some(file)).unwrap();
        assert_eq!(cfg.accounts.login_command, "/opt/login");
        assert!(cfg.accounts.rotate);
    }
}
