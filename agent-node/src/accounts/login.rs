//! Codex's device login, run for the center and relayed line by line.
//!
//! Why this shape: the link has requests and replies, no reply streams; a login prints its URL and
//! code at once and then waits minutes for the person to type the code. So a login is started by
//! one request that answers with the first lines, and followed by more requests (with its id) that
//! each answer with the lines printed since, or with the end. The process is the login command
//! (`[accounts] login_command`, default the Codex program) with `login --device-auth`, no shell,
//! in the account's `CODEX_HOME`, killed after [`MAX_LOGIN`] or when nobody asked for it for
//! [`ABANDONED`].

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use proto::v1;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    sync::Notify,
};

use shared::sync::LockExt;

use crate::error::NodeError;

/// Device codes expire after 15 minutes; a login never runs longer than this.
const MAX_LOGIN: Duration = Duration::from_secs(16 * 60);
/// A login nobody asked about for this long is stopped (the center went away).
const ABANDONED: Duration = Duration::from_secs(120);
/// The longest one request waits for new output.
const STEP_WAIT: Duration = Duration::from_secs(20);
/// How long the output must be quiet before new lines are sent.
const SETTLE: Duration = Duration::from_millis(300);
/// Lines kept per login (the rest is dropped: a login prints a handful).
const MAX_LINES: usize = 200;
/// Characters kept per line.
const MAX_LINE: usize = 500;

#[derive(Default)]
struct State {
    lines: Vec<String>,
    sent: usize,
    /// `Some(exit status 0)` once the command ended.
    done: Option<bool>,
    last_asked: Option<Instant>,
}

struct Login {
    account: String,
    state: Mutex<State>,
    changed: Notify,
}

impl Login {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    fn push(&self, line: &str) {
        let line: String = strip_ansi(line).chars().take(MAX_LINE).collect();
        if line.trim().is_empty() {
            return;
        }
        let mut state = self.state();
        if state.lines.len() < MAX_LINES {
            state.lines.push(line.trim_end().to_owned());
        }
        drop(state);
        self.changed.notify_waiters();
    }

    fn finish(&self, ok: bool) {
        self.state().done = Some(ok);
        self.changed.notify_waiters();
    }

    /// Waits (up to [`STEP_WAIT`]) for lines not sent yet, or the end; returns what there is.
    /// Lines printed together (the URL, then the code) are sent together: after the first new
    /// line it waits until the output is quiet for [`SETTLE`].
    async fn update(&self, id: &str) -> v1::CodexLoginUpdate {
        let deadline = tokio::time::Instant::now() + STEP_WAIT;
        let mut settled = false;
        loop {
            let changed = self.changed.notified();
            let (fresh, done) = {
                let mut state = self.state();
                state.last_asked = Some(Instant::now());
                (state.lines.len() > state.sent, state.done.is_some())
            };
            if fresh && !settled && !done {
                settled = true;
                while tokio::time::timeout(SETTLE, self.changed.notified())
                    .await
                    .is_ok()
                    && tokio::time::Instant::now() < deadline
                {}
                continue;
            }
            if fresh || done || tokio::time::Instant::now() >= deadline {
                let mut state = self.state();
                let lines = state.lines[state.sent..].to_vec();
                state.sent = state.lines.len();
                return v1::CodexLoginUpdate {
                    login_id: id.to_owned(),
                    lines,
                    done: state.done.is_some(),
                    ok: state.done == Some(true),
                    account: self.account.clone(),
                };
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}

static LOGINS: LazyLock<Mutex<HashMap<String, Arc<Login>>>> = LazyLock::new(Default::default);

fn logins() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Login>>> {
    LOGINS.locked()
}

/// Starts `program login --device-auth` with `env` (its `CODEX_HOME` the account's) and answers
/// with its first lines.
pub(crate) async fn start(
    program: &str,
    account: &str,
    env: &[(String, String)],
) -> Result<v1::CodexLoginUpdate, NodeError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the configured login command with fixed arguments, no shell"
    )]
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(["login", "--device-auth"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| NodeError::Unavailable(format!("cannot run {program}: {e}")))?;
    let id = new_id();
    let login = Arc::new(Login {
        account: account.to_owned(),
        state: Mutex::default(),
        changed: Notify::new(),
    });
    logins().insert(id.clone(), login.clone());
    let readers = [
        child.stdout.take().map(|o| read_lines(o, login.clone())),
        child.stderr.take().map(|e| read_lines(e, login.clone())),
    ];
    let watched = login.clone();
    let login_id = id.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let status = loop {
            tokio::select! {
                status = child.wait() => break status.ok(),
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    let asked = watched.state().last_asked.unwrap_or(started);
                    if started.elapsed() > MAX_LOGIN || asked.elapsed() > ABANDONED {
                        watched.push("Login stopped: it took too long.");
                        let _ = child.kill().await;
                        break None;
                    }
                }
            }
        };
        for reader in readers.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        watched.finish(status.is_some_and(|s| s.success()));
        // Kept a little so the last update can still be asked for.
        tokio::time::sleep(Duration::from_secs(60)).await;
        logins().remove(&login_id);
    });
    Ok(login.update(&id).await)
}

/// The lines a running login printed since its last update, or its end.
pub(crate) async fn step(login_id: &str) -> Result<v1::CodexLoginUpdate, NodeError> {
    let login = logins()
        .get(login_id)
        .cloned()
        .ok_or_else(|| NodeError::NotFound(format!("no login {login_id} on this machine")))?;
    Ok(login.update(login_id).await)
}

fn read_lines(
    out: impl AsyncRead + Unpin + Send + 'static,
    login: Arc<Login>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            login.push(&line);
        }
    })
}

fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(shared::clock::now_unix_ms());
    format!("login-{:016x}", h.finish())
}

/// Text without terminal escape sequences (CSI, and the introducer of others).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("login.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn lines_are_relayed_as_printed_then_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(
            dir.path(),
            "echo \"$1 $2\"; printf '\\033[1mhttps://example.test/device\\033[0m\\n'; sleep 1; echo 'code ABCD-1234' >&2; sleep 1; exit 0",
        );
        let env = vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let first = start(&program, "work", &env).await.unwrap();
        assert_eq!(first.account, "work");
        let mut lines = first.lines;
        let mut last = None;
        while last.is_none() {
            let update = step(&first.login_id).await.unwrap();
            lines.extend(update.lines);
            if update.done {
                last = Some(update.ok);
            }
        }
        assert_eq!(last, Some(true));
        assert_eq!(
            lines,
            [
                "login --device-auth",
                "https://example.test/device",
                "code ABCD-1234"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_login_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "echo 'denied'; exit 1");
        let mut update = start(&program, "", &[]).await.unwrap();
        while !update.done {
            update = step(&update.login_id).await.unwrap();
        }
        assert!(!update.ok);
        assert!(matches!(
            step("login-none").await,
            Err(NodeError::NotFound(_))
        ));
    }
}
