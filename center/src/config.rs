//! The center's settings: flags over environment over an optional TOML file over defaults.
//! Missing or malformed settings stop startup with one line that names the setting; the bot
//! token is never printed (its `Debug` is redacted).
//!
//! Secrets (the bot token, the voice API key) are never flags: every local user can read a
//! process's arguments in `/proc/<pid>/cmdline`. They come from the environment or from a file
//! the environment names ([`SecretEnv`]), which systemd's `LoadCredential=` can provide.

use std::{fmt, path::PathBuf, time::Duration};

use agent_node::config::{FileConfig as NodeFileConfig, ServeArgs};
use serde::Deserialize;
use shared::config::{ConfigError, expand_tilde, home_dir, load_toml};

/// The bot token: the workspace's one secret type (redacted in `Debug` and `Display`).
pub use shared::secret::Secret;

/// The variable holding the voice API key.
pub const VOICE_KEY_ENV: &str = "CODEX_FLEET_VOICE_KEY";
/// The variable naming a file that holds the voice API key (e.g. `$CREDENTIALS_DIRECTORY/…`).
pub const VOICE_KEY_FILE_ENV: &str = "CODEX_FLEET_VOICE_KEY_FILE";

/// The secrets the environment provides: values, or files holding them. `Debug` is redacted.
#[derive(Clone, Default)]
pub struct SecretEnv {
    /// `TELEGRAM_BOT_TOKEN`.
    pub token: Option<String>,
    /// [`VOICE_KEY_ENV`].
    pub voice_key: Option<String>,
    /// [`VOICE_KEY_FILE_ENV`].
    pub voice_key_file: Option<PathBuf>,
}

impl SecretEnv {
    /// Reads them from this process's environment.
    pub fn from_process() -> Self {
        Self {
            token: std::env::var("TELEGRAM_BOT_TOKEN").ok(),
            voice_key: std::env::var(VOICE_KEY_ENV).ok(),
            voice_key_file: std::env::var_os(VOICE_KEY_FILE_ENV).map(PathBuf::from),
        }
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: bool| if v { "<redacted>" } else { "<unset>" };
        f.debug_struct("SecretEnv")
            .field("token", &set(self.token.is_some()))
            .field("voice_key", &set(self.voice_key.is_some()))
            .field("voice_key_file", &self.voice_key_file)
            .finish()
    }
}

/// Everything the center runs with.
#[derive(Debug, Clone)]
pub struct CenterConfig {
    /// Bot token (`TELEGRAM_BOT_TOKEN`).
    pub token: Secret,
    /// Telegram user ids allowed to use the bot.
    pub allowed_users: Vec<u64>,
    /// Group chats the bot serves (empty: the groups an allowed user added the bot to, and
    /// groups with bound topics). Private chats of allowed users are always served.
    pub allowed_chats: Vec<i64>,
    /// State directory (SQLite file, embedded node state).
    pub state_dir: PathBuf,
    /// Bot API base URL.
    pub api_url: String,
    /// Long-polling timeout (below teloxide's 17 s HTTP timeout).
    pub poll_timeout: Duration,
    /// Exit (for the service manager to restart us) when no poll succeeded for this long.
    pub watchdog: Duration,
    /// The embedded node's configuration.
    pub node: agent_node::NodeConfig,
    /// Remote nodes to dial: (name, `host:port` of an enrolled node, or `unix:/path`).
    pub remote_nodes: Vec<(String, String)>,
    /// Longest wait between reconnect attempts to a node.
    pub reconnect_max: Duration,
    /// Where nodes behind NAT dial in (mutual TLS), if anywhere.
    pub listen: Option<std::net::SocketAddr>,
    /// Where `agent-node join` enrolls them, if anywhere.
    pub enroll_listen: Option<std::net::SocketAddr>,
    /// The largest attachment taken from Telegram (at most the Bot API's 20 MB).
    pub max_attachment_bytes: u64,
    /// Inputs held while Codex shows a prompt: at most this many per topic…
    pub held_max: usize,
    /// …each for at most this long.
    pub held_ttl: Duration,
    /// Live previews of a running turn with sendMessageDraft (private chats only).
    pub drafts: bool,
    /// Run Codex windows on this machine through the embedded node (single-machine mode). Off in
    /// the hardened layout, where an `agent-node` of another OS user serves this machine.
    pub embedded_node: bool,
    /// How voice messages are transcribed (off when no provider is set).
    pub voice: crate::media::transcribe::TranscribeConfig,
    /// `[jobs]`.
    pub jobs: crate::jobs::JobsConfig,
    /// `[alerts]`: when a machine's health is worth a message to the owners.
    pub alerts: crate::health::AlertsConfig,
    /// `update_check`, `update_repo`: a daily `center update --check`, new upstream commits
    /// told to the allowed users once (off by default).
    pub update_check: UpdateCheckConfig,
}

/// A remote node in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteNodeConfig {
    /// Its name (as in its certificate).
    pub name: String,
    /// `host:port` of its `agent-node serve` once it is enrolled (mutual TLS), or `unix:/path`:
    /// the socket of an unenrolled node of the center's own user.
    pub endpoint: String,
}

/// The TOML file (`--config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Allowed Telegram user ids.
    pub allowed_users: Option<Vec<u64>>,
    /// Group chats the bot serves (ids, e.g. -1001234567890); unset: those an allowed user added
    /// the bot to.
    pub allowed_chats: Option<Vec<i64>>,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Bot API base URL.
    pub telegram_api_url: Option<String>,
    /// A file holding the bot token (e.g. a systemd credential).
    pub token_file: Option<PathBuf>,
    /// Log filter.
    pub log: Option<String>,
    /// Settings of the embedded node (same keys as agent-node's file).
    #[serde(default)]
    pub node: NodeFileConfig,
    /// Remote nodes to dial.
    #[serde(default)]
    pub nodes: Vec<RemoteNodeConfig>,
    /// The largest attachment taken from Telegram, in MB (default and maximum 20).
    pub max_attachment_mb: Option<u64>,
    /// Inputs held while Codex shows a prompt.
    #[serde(default)]
    pub held_inputs: HeldInputsConfig,
    /// Live previews with sendMessageDraft in private chats.
    pub drafts: Option<bool>,
    /// Run the embedded node (default true); false for the hardened single-host layout.
    pub embedded_node: Option<bool>,
    /// `[voice]`: transcription of voice messages.
    #[serde(default)]
    pub voice: crate::media::transcribe::TranscribeConfig,
    /// `[jobs]`: headless Codex runs.
    #[serde(default)]
    pub jobs: crate::jobs::JobsFileConfig,
    /// `[alerts]`: health thresholds (0 turns one off).
    #[serde(default)]
    pub alerts: crate::health::AlertsConfig,
    /// `[[github]]`: repositories whose labelled issues become jobs.
    #[serde(default)]
    pub github: Vec<crate::jobs::github::GithubFileConfig>,
    /// Once a day, look whether the center's git checkout can be fast-forwarded to new upstream
    /// commits and tell the allowed users once per new upstream commit (default false).
    pub update_check: Option<bool>,
    /// The git checkout that check looks at (default: the one holding the running executable).
    pub update_repo: Option<PathBuf>,
}

/// `[held_inputs]`: messages that arrive while Codex waits for an answer to a prompt.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldInputsConfig {
    /// At most this many per topic (default 5).
    pub max: Option<usize>,
    /// Dropped (with a notice) after this many minutes (default 30).
    pub expire_minutes: Option<u64>,
}

/// Flags of `center run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Comma-separated Telegram user ids allowed to use the bot.
    #[arg(long, env = "ALLOWED_USERS")]
    pub allowed_users: Option<String>,
    /// Comma-separated group chat ids the bot serves (unset: the groups an allowed user added
    /// the bot to; private chats of allowed users always).
    #[arg(long, env = "ALLOWED_CHATS")]
    pub allowed_chats: Option<String>,
    /// State directory (default ~/.codex-fleet).
    #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Bot API base URL (for tests and self-hosted Bot API servers).
    #[arg(long, env = "TELEGRAM_API_URL")]
    pub telegram_api_url: Option<String>,
    /// Command run in each Codex window (default `codex`).
    #[arg(long, env = "CODEX_FLEET_CODEX_COMMAND")]
    pub codex_command: Option<String>,
    /// Browsable roots, `name=/path` (repeat or comma-separate; default: your home).
    #[arg(long = "root", env = "CODEX_FLEET_ROOTS", value_delimiter = ',')]
    pub root: Vec<String>,
    /// tmux socket of the embedded node.
    #[arg(long, env = "CODEX_FLEET_TMUX_SOCKET")]
    pub tmux_socket: Option<String>,
    /// Milliseconds between pasting and Enter.
    #[arg(long, env = "CODEX_FLEET_PASTE_DELAY_MS")]
    pub paste_delay_ms: Option<u64>,
    /// Codex CLI upgrades on this machine: on, off, or auto (on where the Codex install is
    /// writable); wins over `[node.codex_upgrade] enabled`.
    #[arg(long, env = "CODEX_FLEET_CODEX_UPGRADE")]
    pub codex_upgrade: Option<agent_node::config::Switch>,
    /// Accept nodes that dial in (behind NAT) on this address, over mutual TLS.
    #[arg(long, env = "CODEX_FLEET_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve `agent-node join` enrollment on this address.
    #[arg(long, env = "CODEX_FLEET_ENROLL_LISTEN")]
    pub enroll_listen: Option<std::net::SocketAddr>,
    /// Longest wait between reconnect attempts to a node, in seconds (default 30).
    #[arg(long, env = "CODEX_FLEET_RECONNECT_MAX_SECS")]
    pub reconnect_max_secs: Option<u64>,
    /// A node to dial: `name=unix:/path` (an unenrolled agent-node's socket), or
    /// `name=host:port` of an enrolled one (repeat or comma-separate).
    #[arg(long = "node", env = "CODEX_FLEET_NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// The largest attachment taken from Telegram, in MB (default and maximum 20).
    #[arg(long, env = "CODEX_FLEET_MAX_ATTACHMENT_MB")]
    pub max_attachment_mb: Option<u64>,
    /// Live previews of a running turn with sendMessageDraft in private chats (true/false).
    #[arg(long, env = "CODEX_FLEET_DRAFTS")]
    pub drafts: Option<bool>,
    /// Run Codex on this machine through the embedded node (true/false, default true). false:
    /// the hardened single-host layout, where an `agent-node` running as another OS user serves
    /// this machine and nothing Codex can read holds the fleet's CA key or the bot token.
    #[arg(long, env = "CODEX_FLEET_EMBEDDED_NODE")]
    pub embedded_node: Option<bool>,
    /// Voice messages: an OpenAI-compatible transcription API base URL (e.g.
    /// https://api.openai.com/v1).
    #[arg(long, env = "CODEX_FLEET_VOICE_URL")]
    pub voice_url: Option<String>,
    /// Removed: a flag's value is readable by every local user. Kept hidden only to refuse it
    /// with a message saying where the key goes now.
    #[arg(long = "voice-key", hide = true, value_name = "REMOVED")]
    pub removed_voice_key: Option<String>,
    /// Voice messages: the transcription model (default whisper-1).
    #[arg(long, env = "CODEX_FLEET_VOICE_MODEL")]
    pub voice_model: Option<String>,
    /// Voice messages: a local command that prints the transcript; `{input}` is the audio file.
    #[arg(long, env = "CODEX_FLEET_VOICE_COMMAND")]
    pub voice_command: Option<String>,
    /// Once a day, look whether the center's git checkout has new upstream commits it can
    /// fast-forward to, and tell the allowed users once per new commit (true/false, default
    /// false). Installing stays `center update`'s job.
    #[arg(long, env = "CODEX_FLEET_UPDATE_CHECK", value_parser = clap::builder::BoolishValueParser::new())]
    pub update_check: Option<bool>,
    /// The git checkout the update check looks at (default: the one holding this executable).
    #[arg(long, env = "CODEX_FLEET_UPDATE_REPO")]
    pub update_repo: Option<PathBuf>,
    /// For tests: seconds between update checks instead of a day (the first one comes after
    /// this long too, when shorter than the usual few minutes).
    #[arg(long, env = "CODEX_FLEET_UPDATE_CHECK_EVERY_SECS", hide = true)]
    pub update_check_every_secs: Option<u64>,
}

/// The voice API key from the environment: [`VOICE_KEY_ENV`] or the file [`VOICE_KEY_FILE_ENV`]
/// names (not both); `None` when neither is set. Errors name the variable, never the key.
fn voice_key(secrets: &SecretEnv) -> Result<Option<String>, ConfigError> {
    let invalid = |setting, message: String| ConfigError::Invalid { setting, message };
    let value = secrets
        .voice_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match (value, &secrets.voice_key_file) {
        (Some(_), Some(_)) => Err(invalid(
            VOICE_KEY_FILE_ENV,
            format!("set either {VOICE_KEY_ENV} or {VOICE_KEY_FILE_ENV}, not both"),
        )),
        (Some(key), None) => Ok(Some(key.to_owned())),
        (None, Some(path)) => {
            let path = expand_tilde(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    VOICE_KEY_FILE_ENV,
                    format!("cannot read {}: {}", path.display(), e.kind()),
                )
            })?;
            let key = text.trim();
            if key.is_empty() {
                return Err(invalid(
                    VOICE_KEY_FILE_ENV,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(key.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// `[voice]` from the file, with the flags/env on top.
fn voice_config(
    args: &RunArgs,
    secrets: &SecretEnv,
    mut voice: crate::media::transcribe::TranscribeConfig,
) -> Result<crate::media::transcribe::TranscribeConfig, ConfigError> {
    if args.removed_voice_key.is_some() {
        return Err(ConfigError::Invalid {
            setting: "--voice-key",
            message: format!(
                "no longer accepted (every local user can read a program's arguments); \
                 set {VOICE_KEY_ENV}, or {VOICE_KEY_FILE_ENV} to a file holding the key"
            ),
        });
    }
    if let Some(url) = &args.voice_url {
        voice.provider = Some("openai".into());
        voice.base_url = Some(url.clone());
    }
    if let Some(command) = &args.voice_command {
        voice.provider = Some("command".into());
        voice.command = Some(command.clone());
    }
    if let Some(key) = voice_key(secrets)? {
        voice.api_key = Some(key.into());
    }
    if let Some(model) = &args.voice_model {
        voice.model = Some(model.clone());
    }
    crate::media::transcribe::Transcriber::from_config(&voice).map_err(|e| {
        ConfigError::Invalid {
            setting: "voice",
            message: e.to_string(),
        }
    })?;
    Ok(voice)
}

impl CenterConfig {
    /// Merges flags/env, the file and defaults. `token_env` is `TELEGRAM_BOT_TOKEN`'s value; no
    /// other secret is taken from the environment (see [`CenterConfig::resolve_with`]).
    pub fn resolve(
        args: &RunArgs,
        file: Option<FileConfig>,
        token_env: Option<String>,
    ) -> Result<Self, ConfigError> {
        let secrets = SecretEnv {
            token: token_env,
            ..SecretEnv::default()
        };
        Self::resolve_with(args, file, &secrets)
    }

    /// Merges flags/env, the file, the secrets from the environment and defaults.
    pub fn resolve_with(
        args: &RunArgs,
        file: Option<FileConfig>,
        secrets: &SecretEnv,
    ) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let invalid = |setting, message: String| ConfigError::Invalid { setting, message };
        let token_env = secrets.token.clone();
        let token = match (token_env.filter(|t| !t.trim().is_empty()), &file.token_file) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(expand_tilde(path))
                .map_err(|e| invalid("token_file", format!("cannot read it: {}", e.kind())))?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(invalid(
                    "TELEGRAM_BOT_TOKEN",
                    "not set; get a token from @BotFather and export it".into(),
                ));
            }
        };
        if !valid_token(&token) {
            return Err(invalid(
                "TELEGRAM_BOT_TOKEN",
                "does not look like a bot token (expected <digits>:<secret>)".into(),
            ));
        }
        let allowed_users = match &args.allowed_users {
            Some(list) => parse_users(list)?,
            None => file.allowed_users.clone().unwrap_or_default(),
        };
        let allowed_chats = match &args.allowed_chats {
            Some(list) => parse_chats(list)?,
            None => file.allowed_chats.clone().unwrap_or_default(),
        };
        if allowed_users.is_empty() {
            return Err(invalid(
                "ALLOWED_USERS",
                "not set; list the Telegram user ids allowed to use the bot, e.g. ALLOWED_USERS=123456789"
                    .into(),
            ));
        }
        let state_dir = args
            .state_dir
            .clone()
            .or(file.state_dir.clone())
            .map(|p| expand_tilde(&p))
            .or_else(|| home_dir().map(|h| h.join(".codex-fleet")))
            .ok_or_else(|| invalid("state_dir", "HOME is not set; pass --state-dir".into()))?;
        let api_url = args
            .telegram_api_url
            .clone()
            .or(file.telegram_api_url.clone())
            .unwrap_or_else(|| "https://api.telegram.org".into());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(invalid(
                "TELEGRAM_API_URL",
                format!("{api_url:?} is not an http(s) URL"),
            ));
        }
        let serve = ServeArgs {
            state_dir: Some(state_dir.join("node")),
            name: Some("local".into()),
            codex_command: args.codex_command.clone(),
            root: args.root.clone(),
            tmux_socket: args.tmux_socket.clone(),
            paste_delay_ms: args.paste_delay_ms,
            codex_upgrade: args.codex_upgrade,
            ..ServeArgs::default()
        };
        let mut remote_nodes: Vec<(String, String)> = file
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.endpoint.clone()))
            .collect();
        for spec in &args.nodes {
            let (name, endpoint) = spec.split_once('=').ok_or_else(|| {
                invalid(
                    "CODEX_FLEET_NODES",
                    format!("{spec:?} is not name=unix:/path or name=host:port"),
                )
            })?;
            remote_nodes.push((name.trim().to_owned(), endpoint.trim().to_owned()));
        }
        for (name, endpoint) in &remote_nodes {
            let ok_name = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && name != crate::nodes::LOCAL;
            if !ok_name {
                return Err(invalid(
                    "nodes",
                    format!(
                        "{name:?}: node names are 1-32 characters of a-z, 0-9 and '-' (and not \"local\")"
                    ),
                ));
            }
            let tcp = endpoint
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if !tcp && crate::nodes::unix_socket(endpoint).is_none() {
                return Err(invalid(
                    "nodes",
                    format!("{endpoint:?} is not host:port or unix:/path"),
                ));
            }
        }
        let mut node_file = file.node;
        node_file.state_dir = None;
        let node = agent_node::NodeConfig::resolve(&serve, Some(node_file))?;
        Ok(Self {
            token: Secret::new(token),
            allowed_users,
            allowed_chats,
            state_dir,
            api_url,
            poll_timeout: Duration::from_secs(10),
            watchdog: Duration::from_secs(120),
            node,
            remote_nodes,
            reconnect_max: Duration::from_secs(args.reconnect_max_secs.unwrap_or(30).clamp(1, 600)),
            listen: args.listen,
            enroll_listen: args.enroll_listen,
            max_attachment_bytes: args
                .max_attachment_mb
                .or(file.max_attachment_mb)
                .unwrap_or(20)
                .clamp(1, 20)
                * 1024
                * 1024,
            held_max: file.held_inputs.max.unwrap_or(5).clamp(1, 50),
            held_ttl: Duration::from_secs(
                60 * file
                    .held_inputs
                    .expire_minutes
                    .unwrap_or(30)
                    .clamp(1, 24 * 60),
            ),
            drafts: args.drafts.or(file.drafts).unwrap_or(false),
            embedded_node: args.embedded_node.or(file.embedded_node).unwrap_or(true),
            voice: voice_config(args, secrets, file.voice)?,
            alerts: file.alerts.validated()?,
            jobs: crate::jobs::JobsConfig::resolve(file.jobs)?.with_github(file.github)?,
            update_check: UpdateCheckConfig::resolve(
                args.update_check.or(file.update_check),
                args.update_repo.clone().or(file.update_repo),
                args.update_check_every_secs,
            ),
        })
    }

    /// Loads the optional file.
    pub fn load_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
        load_toml(path)
    }
}

fn valid_token(token: &str) -> bool {
    let Some((id, secret)) = token.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.chars().all(|c| c.is_ascii_digit())
        && secret.len() >= 10
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_chats(list: &str) -> Result<Vec<i64>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>().map_err(|_| ConfigError::Invalid {
                setting: "ALLOWED_CHATS",
                message: format!("{s:?} is not a numeric Telegram chat id"),
            })
        })
        .collect()
}

fn parse_users(list: &str) -> Result<Vec<u64>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| ConfigError::Invalid {
                setting: "ALLOWED_USERS",
                message: format!("{s:?} is not a numeric Telegram user id"),
            })
        })
        .collect()
}

/// Time between update checks: a day.
const UPDATE_CHECK_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// `update_check`, `update_repo` (and a test-only interval) as the center runs with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateCheckConfig {
    /// Check at all (default false).
    pub enabled: bool,
    /// The checkout to check (default: the one holding the running executable).
    pub repo: Option<PathBuf>,
    /// Time between checks: a day (tests shorten it).
    pub every: Duration,
}

impl Default for UpdateCheckConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            repo: None,
            every: UPDATE_CHECK_EVERY,
        }
    }
}

impl UpdateCheckConfig {
    /// The settings from flags/env over the file: on or off, the checkout, and the test-only
    /// interval in seconds (at least 1).
    pub fn resolve(enabled: Option<bool>, repo: Option<PathBuf>, every_secs: Option<u64>) -> Self {
        Self {
            enabled: enabled.unwrap_or(false),
            repo: repo.map(|p| shared::config::expand_tilde(&p)),
            every: every_secs.map_or(UPDATE_CHECK_EVERY, |s| Duration::from_secs(s.max(1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456:ABCdefGHIjklMNOpqr";

    fn args() -> RunArgs {
        RunArgs {
            allowed_users: Some("1, 2".into()),
            state_dir: Some("/tmp/cf".into()),
            ..RunArgs::default()
        }
    }

    #[test]
    fn a_complete_setup_resolves() {
        let c = CenterConfig::resolve(&args(), None, Some(TOKEN.into())).unwrap();
        assert_eq!(c.allowed_users, vec![1, 2]);
        assert_eq!(c.api_url, "https://api.telegram.org");
        assert_eq!(c.node.state_dir, PathBuf::from("/tmp/cf/node"));
        assert!(
            !format!("{c:?}").contains("ABCdef"),
            "token in Debug output"
        );
    }

    #[test]
    fn problems_name_the_setting_and_never_the_token() {
        let err = CenterConfig::resolve(&args(), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TELEGRAM_BOT_TOKEN"), "{err}");
        let err = CenterConfig::resolve(&args(), None, Some("123:short".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TELEGRAM_BOT_TOKEN") && !err.contains("short"),
            "{err}"
        );
        let mut a = args();
        a.allowed_users = Some("12,bob".into());
        let err = CenterConfig::resolve(&a, None, Some(TOKEN.into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ALLOWED_USERS") && err.contains("bob"),
            "{err}"
        );
        a.allowed_users = None;
        let err = CenterConfig::resolve(&a, None, Some(TOKEN.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ALLOWED_USERS"), "{err}");
        let mut a = args();
        a.telegram_api_url = Some("ftp://x".into());
        let err = CenterConfig::resolve(&a, None, Some(TOKEN.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TELEGRAM_API_URL"), "{err}");
        let mut a = args();
        a.nodes = vec!["Bad Name=1.2.3.4:7443".into()];
        let err = CenterConfig::resolve(&a, None, Some(TOKEN.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nodes"), "{err}");
        a.nodes = vec!["vps-1=1.2.3.4".into()];
        assert!(CenterConfig::resolve(&a, None, Some(TOKEN.into())).is_err());
        a.nodes = vec!["vps-1=1.2.3.4:7443".into()];
        let c = CenterConfig::resolve(&a, None, Some(TOKEN.into())).unwrap();
        assert_eq!(
            c.remote_nodes,
            vec![("vps-1".into(), "1.2.3.4:7443".into())]
        );
    }

    /// Resolves with voice on (an OpenAI-compatible URL) and `secrets`; the key it ended up with.
    fn voice_key_with(secrets: SecretEnv) -> Result<Option<String>, String> {
        let mut a = args();
        a.voice_url = Some("https://stt.example/v1".into());
        let secrets = SecretEnv {
            token: Some(TOKEN.into()),
            ..secrets
        };
        CenterConfig::resolve_with(&a, None, &secrets)
            .map(|c| c.voice.api_key.map(|k| k.expose().to_owned()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_voice_key_comes_from_the_environment_or_a_file_it_names() {
        let key = |k: &str| Some(k.to_owned());
        assert_eq!(voice_key_with(SecretEnv::default()), Ok(None));
        let from_env = SecretEnv {
            voice_key: key(" sk-from-env\n"),
            ..SecretEnv::default()
        };
        assert_eq!(voice_key_with(from_env), Ok(key("sk-from-env")));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("voice-key");
        std::fs::write(&file, "sk-from-file\n").unwrap();
        let from_file = SecretEnv {
            voice_key_file: Some(file.clone()),
            ..SecretEnv::default()
        };
        assert_eq!(voice_key_with(from_file), Ok(key("sk-from-file")));

        // An empty variable counts as unset, so the file still decides.
        let empty_env = SecretEnv {
            voice_key: key(""),
            voice_key_file: Some(file.clone()),
            ..SecretEnv::default()
        };
        assert_eq!(voice_key_with(empty_env), Ok(key("sk-from-file")));

        // Problems name the variable and never show a key.
        let both = SecretEnv {
            voice_key: key("sk-from-env"),
            voice_key_file: Some(file.clone()),
            ..SecretEnv::default()
        };
        let err = voice_key_with(both).unwrap_err();
        assert!(
            err.contains(VOICE_KEY_ENV) && err.contains(VOICE_KEY_FILE_ENV),
            "{err}"
        );
        assert!(!err.contains("sk-from"), "{err}");
        let missing = SecretEnv {
            voice_key_file: Some(dir.path().join("nope")),
            ..SecretEnv::default()
        };
        let err = voice_key_with(missing).unwrap_err();
        assert!(
            err.contains(VOICE_KEY_FILE_ENV) && err.contains("nope"),
            "{err}"
        );
        std::fs::write(&file, " \n").unwrap();
        let empty_file = SecretEnv {
            voice_key_file: Some(file),
            ..SecretEnv::default()
        };
        let err = voice_key_with(empty_file).unwrap_err();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn the_voice_key_flag_is_refused_with_where_the_key_goes_now() {
        let mut a = args();
        a.removed_voice_key = Some("sk-on-the-command-line".into());
        let err = CenterConfig::resolve(&a, None, Some(TOKEN.into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--voice-key") && err.contains(VOICE_KEY_ENV),
            "{err}"
        );
        assert!(err.contains(VOICE_KEY_FILE_ENV), "{err}");
        assert!(!err.contains("sk-on"), "{err}");
        // No other secret has a flag.
        let cmd = <Flags as clap::CommandFactory>::command();
        for arg in cmd.get_arguments() {
            let name = arg.get_id().as_str();
            let secret = ["key", "token", "secret", "password"]
                .iter()
                .any(|s| name.contains(s));
            assert!(!secret || arg.is_hide_set(), "--{name} takes a secret");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let secrets = SecretEnv {
            token: Some(TOKEN.into()),
            voice_key: Some("sk-secret".into()),
            voice_key_file: None,
        };
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("ABCdef") && !debug.contains("sk-secret"),
            "{debug}"
        );
    }

    #[test]
    fn the_update_check_is_off_unless_asked_for_and_flags_win_over_the_file() {
        let c = CenterConfig::resolve(&args(), None, Some(TOKEN.into())).unwrap();
        assert!(!c.update_check.enabled);
        assert_eq!(c.update_check.every, Duration::from_secs(24 * 60 * 60));
        let file: FileConfig =
            toml::from_str("update_check = true\nupdate_repo = \"/srv/codex-fleet\"\n").unwrap();
        let c = CenterConfig::resolve(&args(), Some(file), Some(TOKEN.into())).unwrap();
        assert!(c.update_check.enabled);
        assert_eq!(c.update_check.repo, Some(PathBuf::from("/srv/codex-fleet")));
        let file: FileConfig = toml::from_str("update_check = true\n").unwrap();
        let mut a = args();
        a.update_check = Some(false);
        a.update_check_every_secs = Some(0);
        let c = CenterConfig::resolve(&a, Some(file), Some(TOKEN.into())).unwrap();
        assert!(!c.update_check.enabled);
        assert_eq!(
            c.update_check.every,
            Duration::from_secs(1),
            "at least a second"
        );
        // The variable takes 1/0 and yes/no as well as true/false.
        let flags = <Flags as clap::Parser>::try_parse_from(["center", "--update-check", "1"]);
        assert_eq!(flags.unwrap().run.update_check, Some(true));
    }

    /// `RunArgs` as a command of its own, to look at its arguments.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let file: FileConfig =
            toml::from_str(include_str!("../../deploy/center.example.toml")).unwrap();
        let mut a = args();
        a.allowed_users = None;
        let c = CenterConfig::resolve(&a, Some(file), Some(TOKEN.into())).unwrap();
        assert_eq!(c.allowed_users, vec![123456789]);
    }
}
