//! The Codex CLI as the heartbeat reports it: its version (`codex --version`) and login state
//! (`codex login status`), asked in the background and cached.
//!
//! Why cached and rare: each call starts Codex's npm shim and a native binary (up to seconds on
//! a loaded VPS), and neither answer changes between two beats. The runs and their reading are
//! `agent-node preflight`'s, so the two always agree; a link asks at its start (the answer then
//! goes out in an extra beat) and every [`REFRESH`] after. The cache is per process and per
//! (command, `CODEX_HOME`), so a link that reconnects often does not start Codex each time.
//! The same pass adds what [`crate::codex_upgrade`] knows (the newest release, asked at most
//! daily), and an upgrade renews every link's answer at once ([`codex_upgrade::changed`]).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use proto::v1;
use shared::{preflight::Outcome, sync::LockExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{NodeConfig, codex_upgrade, preflight};

/// How often the answers are renewed.
const REFRESH: Duration = Duration::from_secs(3600);
/// How long each Codex call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Key = (String, PathBuf);

/// One cached answer: when it was asked, in which [`codex_upgrade::generation`], and what it said.
type Cached = (Instant, u64, v1::CodexHealth);

/// The latest answers per (Codex command, `CODEX_HOME`) in this process, with the
/// [`codex_upgrade::generation`] they were asked in: an answer from before an upgrade is stale.
static CACHE: LazyLock<Mutex<HashMap<Key, Cached>>> = LazyLock::new(Mutex::default);

/// The cached Codex state of one link; [`CodexProbe::changed`] fires when a new answer arrived.
pub(crate) struct CodexProbe {
    current: Arc<Mutex<v1::CodexHealth>>,
    changed: Arc<Notify>,
}

impl CodexProbe {
    /// Starts asking (now, unless the cache is fresh, then every [`REFRESH`]) until `token`;
    /// `idle` says whether the machine may spend a moment asking for the newest release.
    pub(crate) fn start(
        cfg: &NodeConfig,
        token: CancellationToken,
        idle: impl Fn() -> bool + Send + 'static,
    ) -> Self {
        let current = Arc::new(Mutex::new(v1::CodexHealth::default()));
        let changed = Arc::new(Notify::new());
        let (cfg, cur, notify) = (cfg.clone(), current.clone(), changed.clone());
        let key: Key = (cfg.codex_command.clone(), cfg.codex_home.clone());
        tokio::spawn(async move {
            loop {
                let cached = CACHE.locked().get(&key).cloned();
                let generation = codex_upgrade::generation();
                let wait = match cached {
                    Some((at, asked_in, health))
                        if at.elapsed() < REFRESH && asked_in == generation =>
                    {
                        *cur.locked() = health;
                        REFRESH - at.elapsed()
                    }
                    _ => {
                        let health = tokio::select! {
                            () = token.cancelled() => break,
                            h = probe(&cfg, idle()) => h,
                        };
                        *cur.locked() = health.clone();
                        if codex_upgrade::generation() == generation {
                            CACHE
                                .locked()
                                .insert(key.clone(), (Instant::now(), generation, health));
                            REFRESH
                        } else {
                            // Codex changed while this probe ran: its answer may be stale.
                            Duration::ZERO
                        }
                    }
                };
                notify.notify_one();
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                    () = codex_upgrade::changed() => {}
                }
            }
        });
        Self { current, changed }
    }

    /// The latest answers (default until the first arrives).
    pub(crate) fn current(&self) -> v1::CodexHealth {
        self.current.locked().clone()
    }

    /// Resolves when new answers arrived.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Asks Codex for its version and login state, and adds the upgrade facts.
async fn probe(cfg: &NodeConfig, idle: bool) -> v1::CodexHealth {
    let mut health = ask_codex(cfg).await;
    codex_upgrade::fill(cfg, idle, &mut health).await;
    health
}

/// Asks Codex for its version and login state.
async fn ask_codex(cfg: &NodeConfig) -> v1::CodexHealth {
    let checked_unix_ms = shared::clock::now_unix_ms();
    let program = preflight::codex_program(&cfg.codex_command);
    let Some(codex) = preflight::resolve(&program, std::env::var_os("PATH").as_deref()) else {
        return v1::CodexHealth {
            login: v1::CodexLogin::Unknown as i32,
            detail: format!("{program:?} not found"),
            checked_unix_ms,
            ..Default::default()
        };
    };
    let env = preflight::codex_env(cfg);
    let version = preflight::run_codex(&codex, &["--version"], &env, None, CALL_TIMEOUT).await;
    let login = preflight::run_codex(&codex, &["login", "status"], &env, None, CALL_TIMEOUT).await;
    read(
        &preflight::version_check(&version).outcome,
        version.as_ref().ok().map(|r| r.output.as_str()),
        &preflight::login_check(&login).outcome,
        checked_unix_ms,
    )
}

/// The preflight checks' verdicts (and `--version`'s output) → the heartbeat's Codex state.
fn read(
    version_outcome: &Outcome,
    version_output: Option<&str>,
    login_outcome: &Outcome,
    checked_unix_ms: i64,
) -> v1::CodexHealth {
    let version = match version_outcome {
        Outcome::Ok(_) | Outcome::Warn { .. } => version_output.and_then(preflight::parse_version),
        Outcome::Fail { .. } => None,
    };
    let (login, login_detail) = match login_outcome {
        Outcome::Ok(how) => (v1::CodexLogin::LoggedIn, how.clone()),
        Outcome::Fail { why, .. } if why == "not logged in" => {
            (v1::CodexLogin::LoggedOut, why.clone())
        }
        Outcome::Fail { why, .. } | Outcome::Warn { why, .. } => {
            (v1::CodexLogin::Unknown, why.clone())
        }
    };
    let detail = match (&version, version_outcome) {
        (None, Outcome::Fail { why, .. }) => why.clone(),
        (None, _) => "`codex --version` printed no version".to_owned(),
        (Some(_), _) => login_detail,
    };
    v1::CodexHealth {
        version: version.unwrap_or_default(),
        login: login as i32,
        detail,
        checked_unix_ms,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Outcome {
        Outcome::Ok(s.into())
    }

    fn fail(s: &str) -> Outcome {
        Outcome::Fail {
            why: s.into(),
            fix: "fix".into(),
        }
    }

    #[test]
    fn answers_become_the_heartbeat_state() {
        let out = "WARNING: proceeding\ncodex-cli 0.171.0\n";
        let h = read(&ok("0.171.0"), Some(out), &ok("logged in with ChatGPT"), 7);
        assert_eq!(h.version, "0.171.0");
        assert_eq!(h.login(), v1::CodexLogin::LoggedIn);
        assert_eq!(h.detail, "logged in with ChatGPT");
        assert_eq!(h.checked_unix_ms, 7);

        let h = read(
            &ok(""),
            Some("codex-cli 0.169.0"),
            &fail("not logged in"),
            1,
        );
        assert_eq!(h.login(), v1::CodexLogin::LoggedOut);

        let h = read(
            &fail("cannot start it: denied"),
            None,
            &fail("cannot start it: denied"),
            1,
        );
        assert_eq!(
            (h.version.as_str(), h.login()),
            ("", v1::CodexLogin::Unknown)
        );
        assert_eq!(h.detail, "cannot start it: denied");
    }
}
