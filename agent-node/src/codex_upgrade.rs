//! Keeping this machine's Codex CLI current. Codex ships often and a release the node has not
//! met is the first thing that breaks a deployment; an operator of ten VPSes should not have to
//! log into each to run npm, nor have a turn cut short by an install under it.
//!
//! Three parts:
//! * [`availability`]: upgrades are on where the config says so, or by default where the node
//!   can write the folders a Codex install replaces (a root-owned global npm install is left
//!   alone).
//! * [`fill`]: what the heartbeat says — the newest release, asked with `latest_command` at most
//!   once a day and only while no window is busy or asking (the answer is kept in the state
//!   directory, so restarts do not ask again). The center decides whether to offer it.
//! * [`Node::upgrade_codex`]: the request behind the center's "Upgrade" button. It runs
//!   `install_command` (no shell, the release checked before it becomes an argument) only when
//!   no window is busy or asking and no job runs, one install at a time, and answers with the
//!   version before and after. Running windows keep the Codex they started with.

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::Duration,
};

use proto::v1::{self, reply::Result as R};
use serde::{Deserialize, Serialize};

use crate::{NodeConfig, error::NodeError, node::Node, preflight};

/// How often the newest release is asked for.
const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long `latest_command` may take.
const LATEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `install_command` may take (npm downloads the native binary).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `codex --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the install's output goes back to the center.
const OUTPUT_MAX: usize = 1500;
/// The last check, in the state directory.
const STATE_FILE: &str = "codex-latest.json";

/// One install at a time on this machine.
static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Refuses to start Codex (a window, a job) while an install replaces it: npm moves the old
/// package away before the new one is in place.
pub(crate) fn not_installing() -> Result<(), NodeError> {
    match INSTALLING.try_lock() {
        Ok(_) => Ok(()),
        Err(_) => Err(NodeError::Blocked(
            "Codex is being upgraded on this machine; try again in a minute".into(),
        )),
    }
}

/// The last check for the newest release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LastCheck {
    checked_unix_ms: i64,
    /// The release found ("" when the check failed).
    latest: String,
    /// Why the check failed.
    error: String,
}

/// Why this node does not install Codex releases, or why a command of the feature did not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    /// Turned off in the config.
    #[error("off in this node's config ([codex_upgrade] enabled = false)")]
    Disabled,
    /// A program is not on `PATH`.
    #[error("{0:?} not found")]
    NotFound(String),
    /// Codex's executable could not be looked at.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The node's user cannot write where an install writes.
    #[error(
        "{} is not writable by this node (set [codex_upgrade] enabled = true to try anyway)",
        .0.display()
    )]
    Unwritable(PathBuf),
    /// A configured command line has no words.
    #[error("the command is empty")]
    EmptyCommand,
    /// A command started and gave no answer.
    #[error(transparent)]
    Run(#[from] preflight::RunError),
}

/// `Ok` when this node may install Codex releases, else why not.
pub(crate) fn availability(cfg: &NodeConfig) -> Result<(), UpgradeError> {
    match cfg.codex_upgrade.enabled {
        Some(false) => Err(UpgradeError::Disabled),
        Some(true) => Ok(()),
        None => {
            let program = preflight::codex_program(&cfg.codex_command);
            let path = preflight::resolve(&program, std::env::var_os("PATH").as_deref())
                .ok_or(UpgradeError::NotFound(program))?;
            install_writable(&path)
        }
    }
}

/// Whether the node can write the folder holding Codex's real executable (npm's bin link
/// points into the package) and the folder above it, which an install replaces.
fn install_writable(program: &Path) -> Result<(), UpgradeError> {
    let real = std::fs::canonicalize(program).map_err(|source| UpgradeError::Unreadable {
        path: program.to_owned(),
        source,
    })?;
    let dir = real.parent().unwrap_or(Path::new("/"));
    for folder in [Some(dir), dir.parent()].into_iter().flatten() {
        if rustix::fs::access(folder, rustix::fs::Access::WRITE_OK).is_err() {
            return Err(UpgradeError::Unwritable(folder.to_owned()));
        }
    }
    Ok(())
}

/// The release `latest_command` printed: its last non-empty line, when that is a release name
/// (npm may print warnings before it).
fn parse_latest(output: &str) -> Option<String> {
    let line = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let line = line.trim_matches(|c| c == '\'' || c == '"');
    shared::release::valid(line).then(|| line.to_owned())
}

/// The install command's words with `{version}` replaced.
fn install_argv(command: &str, version: &str) -> Option<Vec<String>> {
    let words = shlex::split(command).filter(|w| !w.is_empty())?;
    Some(
        words
            .iter()
            .map(|w| w.replace("{version}", version))
            .collect(),
    )
}

/// Whether the last check is old enough to ask again.
fn due(last: Option<&LastCheck>, now_unix_ms: i64) -> bool {
    last.is_none_or(|l| {
        now_unix_ms.saturating_sub(l.checked_unix_ms) >= CHECK_EVERY.as_millis() as i64
            || now_unix_ms < l.checked_unix_ms
    })
}

fn state_file(cfg: &NodeConfig) -> PathBuf {
    cfg.state_dir.join(STATE_FILE)
}

fn load(cfg: &NodeConfig) -> Option<LastCheck> {
    let text = std::fs::read_to_string(state_file(cfg)).ok()?;
    serde_json::from_str(&text).ok()
}

fn save(cfg: &NodeConfig, last: &LastCheck) {
    let text = serde_json::to_string(last).unwrap_or_default();
    let path = state_file(cfg);
    let tmp = path.with_extension("json.tmp");
    if let Err(err) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::warn!(error = %err, "cannot keep the newest Codex release check");
    }
}

/// Runs a configured command line (no shell) with the environment Codex gets.
async fn run_command(
    cfg: &NodeConfig,
    argv: &[String],
    timeout: Duration,
) -> Result<preflight::Ran, UpgradeError> {
    let (program, args) = argv.split_first().ok_or(UpgradeError::EmptyCommand)?;
    let path = preflight::resolve(program, std::env::var_os("PATH").as_deref())
        .ok_or_else(|| UpgradeError::NotFound(program.clone()))?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(preflight::run_codex(&path, &args, &preflight::codex_env(cfg), None, timeout).await?)
}

/// Asks `latest_command` for the newest release.
async fn check_latest(cfg: &NodeConfig) -> LastCheck {
    let checked_unix_ms = shared::clock::now_unix_ms();
    let argv = shlex::split(&cfg.codex_upgrade.latest_command).unwrap_or_default();
    let (latest, error) = match run_command(cfg, &argv, LATEST_TIMEOUT).await {
        Ok(ran) if ran.success => match parse_latest(&ran.output) {
            Some(v) => (v, String::new()),
            None => (String::new(), "it printed no release".to_owned()),
        },
        Ok(ran) => (String::new(), tail(&ran.output, 200)),
        Err(why) => (String::new(), why.to_string()),
    };
    LastCheck {
        checked_unix_ms,
        latest,
        error,
    }
}

/// Wakes every link's Codex probe when an upgrade changed Codex under them.
static CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Counts those changes: a probe that ran across one asks again instead of keeping an answer
/// from before it (a wake-up only reaches the probes waiting at that moment).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times Codex changed under this process (answers from an older count are stale).
pub(crate) fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// Resolves at the next change of Codex.
pub(crate) async fn changed() {
    CHANGED.notified().await;
}

/// Has every link ask Codex again (after an upgrade).
fn announce_change() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    CHANGED.notify_waiters();
}

/// Adds the upgrade facts to the heartbeat's Codex state: whether this node may upgrade, and
/// the newest release (asked now when a day has passed and the machine is `idle`).
pub(crate) async fn fill(cfg: &NodeConfig, idle: bool, health: &mut v1::CodexHealth) {
    if let Err(why) = availability(cfg) {
        health.upgradable = false;
        health.upgrade_detail = why.to_string();
        return;
    }
    health.upgradable = true;
    let mut last = load(cfg);
    if idle && due(last.as_ref(), shared::clock::now_unix_ms()) {
        let checked = check_latest(cfg).await;
        if !checked.error.is_empty() {
            tracing::warn!(error = %checked.error, "asking for the newest Codex release failed");
        }
        save(cfg, &checked);
        last = Some(checked);
    }
    if let Some(last) = last {
        health.latest_version = last.latest;
        if !last.error.is_empty() {
            health.upgrade_detail =
                format!("asking for the newest Codex release failed: {}", last.error);
        }
    }
}

/// The end of a program's output, credentials blanked, at most `max` characters.
fn tail(output: &str, max: usize) -> String {
    let lines: Vec<String> = output
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(preflight::redact)
        .collect();
    let text = lines.join("\n");
    let skip = text.chars().count().saturating_sub(max);
    text.chars().skip(skip).collect()
}

/// `codex --version`'s release ("" when it does not run).
async fn codex_version(cfg: &NodeConfig) -> String {
    let program = preflight::codex_program(&cfg.codex_command);
    let Some(path) = preflight::resolve(&program, std::env::var_os("PATH").as_deref()) else {
        return String::new();
    };
    let env = preflight::codex_env(cfg);
    match preflight::run_codex(&path, &["--version"], &env, None, VERSION_TIMEOUT).await {
        Ok(ran) if ran.success => preflight::parse_version(&ran.output).unwrap_or_default(),
        _ => String::new(),
    }
}

impl Node {
    /// What keeps Codex from being replaced now: windows busy or asking (by name) and running
    /// jobs.
    pub(crate) fn codex_in_use(&self) -> Vec<String> {
        let inner = &self.inner;
        let mut used: Vec<String> = inner
            .windows
            .runtimes()
            .iter()
            .filter(|rt| rt.alive.load(Ordering::Relaxed))
            .filter(|rt| {
                matches!(
                    rt.screen_state().state(),
                    v1::ScreenState::Busy | v1::ScreenState::Prompt
                ) || rt.turn_active.load(Ordering::Relaxed)
                    || rt.inputs_pending.load(Ordering::Relaxed) > 0
            })
            .map(|rt| {
                inner
                    .windows
                    .record(&rt.id)
                    .map_or_else(|| rt.id.to_string(), |r| r.window_name)
            })
            .collect();
        let jobs = inner.jobs.list().jobs.iter().filter(|j| j.running).count();
        if jobs > 0 {
            used.push(format!(
                "{jobs} running job{}",
                if jobs == 1 { "" } else { "s" }
            ));
        }
        used
    }

    /// Installs Codex release `req.version` (see the module documentation).
    pub(crate) async fn upgrade_codex(&self, req: v1::UpgradeCodex) -> Result<R, NodeError> {
        let cfg = &self.inner.cfg;
        if !shared::release::valid(&req.version) {
            return Err(NodeError::InvalidArgument(format!(
                "{:?} is not a Codex release",
                req.version
            )));
        }
        availability(cfg).map_err(|why| {
            NodeError::Unavailable(format!("Codex upgrades are off on this machine: {why}"))
        })?;
        let _installing = INSTALLING.try_lock().map_err(|_| {
            NodeError::Unavailable("a Codex upgrade is already running on this machine".into())
        })?;
        let in_use = self.codex_in_use();
        if !in_use.is_empty() {
            return Err(NodeError::Blocked(format!(
                "Codex is in use ({}); try again when it is idle",
                in_use.join(", ")
            )));
        }
        let argv = install_argv(&cfg.codex_upgrade.install_command, &req.version)
            .ok_or_else(|| NodeError::Internal("the install command is empty".into()))?;
        let previous_version = codex_version(cfg).await;
        tracing::info!(from = %previous_version, to = %req.version, "installing a Codex release");
        let ran = run_command(cfg, &argv, INSTALL_TIMEOUT)
            .await
            .map_err(|why| NodeError::Unavailable(format!("the install did not run: {why}")))?;
        let output = tail(&ran.output, OUTPUT_MAX);
        if !ran.success {
            return Err(NodeError::Internal(format!(
                "the install failed: {}",
                tail(&ran.output, 300)
            )));
        }
        let new_version = codex_version(cfg).await;
        tracing::info!(from = %previous_version, to = %new_version, "Codex upgraded");
        announce_change();
        Ok(R::CodexUpgraded(v1::CodexUpgraded {
            previous_version,
            new_version,
            output,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_is_not_started_while_an_install_runs() {
        assert!(not_installing().is_ok());
        let installing = INSTALLING.try_lock().unwrap();
        let err = not_installing().unwrap_err().to_string();
        assert!(err.contains("being upgraded"), "{err}");
        drop(installing);
        assert!(not_installing().is_ok());
    }

    #[test]
    fn the_newest_release_is_the_last_line_npm_printed() {
        assert_eq!(parse_latest("0.172.0\n").as_deref(), Some("0.172.0"));
        assert_eq!(
            parse_latest("npm warn config something\n'0.172.0'\n\n").as_deref(),
            Some("0.172.0")
        );
        assert_eq!(parse_latest("npm error 404 Not Found"), None);
        assert_eq!(parse_latest(""), None);
    }

    #[test]
    fn the_release_goes_into_its_placeholder_only() {
        assert_eq!(
            install_argv("npm install -g @openai/codex@{version}", "0.172.0").unwrap(),
            ["npm", "install", "-g", "@openai/codex@0.172.0"]
        );
        assert_eq!(
            install_argv("'/opt/my tools/up' {version}", "1.2.3").unwrap(),
            ["/opt/my tools/up", "1.2.3"]
        );
        assert_eq!(install_argv("", "1.2.3"), None);
    }

    #[test]
    fn the_newest_release_is_asked_once_a_day() {
        let day = CHECK_EVERY.as_millis() as i64;
        let at = |t| LastCheck {
            checked_unix_ms: t,
            ..LastCheck::default()
        };
        assert!(due(None, 1000));
        assert!(!due(Some(&at(1000)), 1000 + day - 1));
        assert!(due(Some(&at(1000)), 1000 + day));
        // A clock set back does not silence the check for good.
        assert!(due(Some(&at(1000 + day)), 1000));
    }

    #[test]
    fn a_folder_the_node_cannot_write_turns_upgrades_off() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("pkg").join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let codex = bin.join("codex");
        std::fs::write(&codex, "#!/bin/sh\n").unwrap();
        assert!(install_writable(&codex).is_ok());
        // Root can write anywhere; a folder that is gone cannot be written by anyone.
        let gone = dir.path().join("gone").join("codex");
        let err = install_writable(&gone).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn output_is_cut_from_the_start_and_credentials_are_blanked() {
        let out = format!(
            "{}\nadded 1 package\ntoken npm_abcdefghijklmnop\n",
            "x".repeat(50)
        );
        let t = tail(&out, 40);
        assert!(t.ends_with("token <redacted>"), "{t}");
        assert!(t.chars().count() <= 40);
    }
}
