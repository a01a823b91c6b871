//! `center update [--check]`: when the center runs from a git checkout (as the README's quick
//! start has it), fetch its upstream, fast-forward, `cargo build --release`, and ask the running
//! center to restart once no Codex turn runs. A checkout with local changes, without an upstream,
//! or that has diverged from it is refused with what to do instead: this never merges, rebases or
//! stashes anything.
//!
//! [`decide`] is the pure decision over the checkout's [`Facts`]; the rest runs `git` and `cargo`
//! (blocking: this is the CLI, not the running center). The running center's side is
//! [`App::restart_when_idle`] and [`restart_if_requested`], which `main` calls after the center
//! stopped; its opt-in daily look upstream ([`crate::update_check`]) reuses [`facts`] and
//! [`decide`], fetching with [`fetch_unattended`] instead (nobody is there to answer a prompt).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::{app::App, operator::ControlAnswer};

/// Exit status asking systemd for a restart (the unit has `Restart=on-failure`).
const RESTART_EXIT_STATUS: i32 = 75;
/// How often the running center looks whether every Codex window is idle.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Why an update could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No git checkout holds this center.
    #[error(
        "{} is not in a git checkout of Codex Fleet; `center update` works only for a center built from one (pass --repo DIR)",
        .0.display()
    )]
    NotACheckout(PathBuf),
    /// A git or cargo command failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed, or why it did not start.
        message: String,
    },
    /// The checkout cannot be fast-forwarded.
    #[error("{0}")]
    Refused(String),
}

/// What `git` says about the checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Tracked files with uncommitted changes (`git status --porcelain`, untracked left out).
    pub dirty: Vec<String>,
    /// The checked-out branch (empty: a detached HEAD).
    pub branch: String,
    /// Its upstream (`origin/main`), if any.
    pub upstream: Option<String>,
    /// Commits on the branch that the upstream lacks.
    pub ahead: u32,
    /// Commits on the upstream that the branch lacks.
    pub behind: u32,
}

/// What to do with the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing new upstream (`ahead`: local commits not upstream, kept as they are).
    UpToDate {
        /// Local commits the upstream lacks.
        ahead: u32,
    },
    /// `behind` new commits: fast-forward to them.
    FastForward {
        /// New upstream commits.
        behind: u32,
    },
    /// Nothing may be done; the text says why and what to do.
    Refuse(String),
}

/// The decision, from the facts alone.
pub fn decide(f: &Facts) -> Plan {
    if !f.dirty.is_empty() {
        let shown: Vec<&str> = f.dirty.iter().take(5).map(String::as_str).collect();
        let more = if f.dirty.len() > 5 { ", …" } else { "" };
        return Plan::Refuse(format!(
            "the checkout has local changes ({} file(s): {}{more}); commit or stash them, then run `center update` again",
            f.dirty.len(),
            shown.join(", ")
        ));
    }
    if f.branch.is_empty() {
        return Plan::Refuse(
            "the checkout is on a detached HEAD; check out a branch that tracks the upstream (git switch main)".into(),
        );
    }
    let Some(upstream) = &f.upstream else {
        return Plan::Refuse(format!(
            "branch {} tracks no upstream branch; set one (git branch --set-upstream-to=origin/{})",
            f.branch, f.branch
        ));
    };
    match (f.ahead, f.behind) {
        (_, 0) => Plan::UpToDate { ahead: f.ahead },
        (0, behind) => Plan::FastForward { behind },
        (ahead, behind) => Plan::Refuse(format!(
            "{} and {upstream} have diverged ({ahead} local commit(s), {behind} new upstream); a fast-forward is impossible: rebase or merge by hand",
            f.branch
        )),
    }
}

/// The git checkout of Codex Fleet holding `path` (a folder with `.git` and `center/Cargo.toml`).
pub fn find_checkout(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|d| d.join(".git").exists() && d.join("center").join("Cargo.toml").is_file())
        .map(Path::to_owned)
}

fn run(repo: &Path, program: &str, args: &[&str]) -> Result<String, Error> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .current_dir(repo)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the facts of the checkout at `repo`; with `fetch`, fetches the upstream first.
pub fn facts(repo: &Path, fetch: bool) -> Result<Facts, Error> {
    let dirty = run(
        repo,
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
    )?
    .lines()
    .filter_map(|l| l.get(3..))
    .map(str::to_owned)
    .collect();
    let branch = run(repo, "git", &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let upstream = run(
        repo,
        "git",
        &[
            "rev-parse",
            "--abbrev-ref",
            "--symbolic-full-name",
            "@{upstream}",
        ],
    )
    .ok()
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty());
    let mut f = Facts {
        dirty,
        branch,
        upstream,
        ..Facts::default()
    };
    // Refused whatever the upstream holds: no need to reach it.
    if f.upstream.is_none() || f.branch.is_empty() || !f.dirty.is_empty() {
        return Ok(f);
    }
    if fetch {
        run(repo, "git", &["fetch", "--quiet"])?;
    }
    let counts = run(
        repo,
        "git",
        &["rev-list", "--left-right", "--count", "HEAD...@{upstream}"],
    )?;
    let mut parts = counts
        .split_whitespace()
        .map(|n| n.parse::<u32>().unwrap_or(0));
    f.ahead = parts.next().unwrap_or(0);
    f.behind = parts.next().unwrap_or(0);
    Ok(f)
}

/// The newest commit of a checkout's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHead {
    /// Its full commit id.
    pub id: String,
    /// The first line of its message.
    pub subject: String,
}

/// The newest commit of the upstream of the checkout at `repo` (as last fetched).
pub fn upstream_head(repo: &Path) -> Result<UpstreamHead, Error> {
    let out = run(
        repo,
        "git",
        &["log", "-1", "--format=%H%n%s", "@{upstream}"],
    )?;
    let mut lines = out.lines();
    Ok(UpstreamHead {
        id: lines.next().unwrap_or_default().trim().to_owned(),
        subject: lines.next().unwrap_or_default().trim().to_owned(),
    })
}

/// `git fetch` for a check nobody watches: git never asks for credentials on a terminal, and the
/// fetch is given up (the process killed) after `timeout` or when the caller stops waiting, so a
/// stalled network never holds up the center or its shutdown.
pub async fn fetch_unattended(repo: &Path, timeout: Duration) -> Result<(), Error> {
    let command = "git fetch --quiet";
    let failed = |message: String| Error::Command {
        command: command.into(),
        message,
    };
    let run = tokio::process::Command::new("git")
        .args(["fetch", "--quiet"])
        .current_dir(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        // ssh asks on the terminal itself, whatever git says; a passphrase prompt would hang.
        .env(
            "GIT_SSH_COMMAND",
            std::env::var("GIT_SSH_COMMAND").unwrap_or_else(|_| "ssh -o BatchMode=yes".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| failed(format!("no answer within {} s", timeout.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// Fast-forwards the checkout to its upstream (refusing anything else).
pub fn fast_forward(repo: &Path) -> Result<(), Error> {
    run(
        repo,
        "git",
        &["merge", "--ff-only", "--quiet", "@{upstream}"],
    )
    .map(|_| ())
}

/// `cargo build --release -p center -p agent-node` in the checkout, its output shown as it runs.
pub fn build(repo: &Path) -> Result<(), Error> {
    let command = "cargo build --release -p center -p agent-node";
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "center", "-p", "agent-node"])
        .current_dir(repo)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::Command {
            command: command.into(),
            message: e.to_string(),
        })?;
    if !status.success() {
        return Err(Error::Command {
            command: command.into(),
            message: format!("{status}; the checkout is updated, the running center unchanged"),
        });
    }
    Ok(())
}

/// Runs git or cargo (blocking, possibly for minutes) off the async threads.
pub(crate) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Refused(e.to_string()))?
}

/// `center update [--check]` for the checkout `repo` (default: the one holding this executable)
/// of the center whose state directory is `state_dir`. Prints what it does as it goes.
pub async fn cli(check: bool, repo: Option<PathBuf>, state_dir: &Path) -> Result<(), Error> {
    let repo = match repo {
        Some(r) => r,
        None => {
            let exe = std::env::current_exe().unwrap_or_default();
            find_checkout(&exe).ok_or(Error::NotACheckout(exe))?
        }
    };
    let at = repo.clone();
    let f = off_thread(move || facts(&at, true)).await?;
    let upstream = f.upstream.clone().unwrap_or_default();
    match decide(&f) {
        Plan::Refuse(why) => return Err(Error::Refused(format!("{}: {why}", repo.display()))),
        Plan::UpToDate { ahead } => {
            let local = if ahead > 0 {
                format!(" ({ahead} local commit(s) not in {upstream})")
            } else {
                String::new()
            };
            println!("{} is up to date with {upstream}{local}.", repo.display());
            return Ok(());
        }
        Plan::FastForward { behind } if check => {
            println!(
                "{behind} new commit(s) in {upstream}; `center update` fast-forwards {}, builds and restarts the center.",
                repo.display()
            );
            return Ok(());
        }
        Plan::FastForward { behind } => {
            println!(
                "fast-forwarding {} by {behind} commit(s) from {upstream}",
                repo.display()
            );
        }
    }
    let at = repo.clone();
    off_thread(move || fast_forward(&at)).await?;
    println!("building (cargo build --release -p center -p agent-node)");
    let at = repo.clone();
    off_thread(move || build(&at)).await?;
    let req = crate::operator::ControlRequest::RestartWhenIdle {
        binary: repo
            .join("target/release/center")
            .to_string_lossy()
            .into_owned(),
    };
    match crate::control::request(state_dir, &req).await {
        Ok(answer) => println!("built; {}", answer.message),
        Err(crate::control::Error::Unreachable { .. }) => {
            println!("built; no running center found here: start it (target/release/center)")
        }
        Err(err) => {
            println!("built; the running center did not answer ({err}): restart it by hand")
        }
    }
    Ok(())
}

// === the running center ===

static ROOT: OnceLock<CancellationToken> = OnceLock::new();
static RESTART: AtomicBool = AtomicBool::new(false);

/// `main` hands over the token that stops the center, so an update can restart it.
pub fn allow_restart(token: CancellationToken) {
    let _ = ROOT.set(token);
}

/// `main` calls this after the center stopped: if an update asked for a restart, the process
/// restarts (re-executes the rebuilt binary, or exits with status 75 under systemd) and this does
/// not return.
pub fn restart_if_requested() {
    if !RESTART.load(Ordering::SeqCst) {
        return;
    }
    use std::os::unix::process::CommandExt;
    if std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty()) {
        std::process::exit(RESTART_EXIT_STATUS);
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // `current_exe` names the replaced file " (deleted)"; the path it was started as is the new one.
    let exe = running_exe().unwrap_or_else(|| PathBuf::from(&arg0));
    let err = Command::new(&exe).arg0(&arg0).args(args).exec();
    tracing::error!(error = %err, exe = %exe.display(), "cannot restart the center");
    std::process::exit(RESTART_EXIT_STATUS);
}

/// The running center's executable. `current_exe` names a replaced file " (deleted)"; the path
/// it was started as is the new one.
pub(crate) fn running_exe() -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?;
    let s = p.to_string_lossy();
    Some(s.strip_suffix(" (deleted)").map(PathBuf::from).unwrap_or(p))
}

impl App {
    /// Windows busy or asking on the connected nodes, by their last heartbeats.
    fn active_windows(&self) -> u32 {
        self.node_names()
            .iter()
            .filter_map(|n| self.node(n))
            .filter_map(|c| c.last_heartbeat())
            .filter_map(|h| h.windows)
            .map(|w| w.busy + w.asking)
            .sum()
    }

    /// `center update`: restarts this center as soon as no Codex window is busy or asking.
    pub(crate) fn restart_when_idle(self: &Arc<Self>, binary: &str) -> ControlAnswer {
        let Some(token) = ROOT.get().cloned() else {
            return ControlAnswer::fail("this center cannot restart itself; restart it by hand");
        };
        if !binary.is_empty() {
            let same = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
            let running = running_exe().map(|p| same(&p));
            if running.as_deref() != Some(same(Path::new(binary)).as_path()) {
                return ControlAnswer::fail(format!(
                    "this center runs {}, not the binary just built ({binary}); restarting would bring back the old code, so restart it from {binary} by hand",
                    running.map_or_else(|| "an unknown file".into(), |p| p.display().to_string())
                ));
            }
        }
        let now = self.active_windows();
        let app = self.clone();
        tokio::spawn(async move {
            while app.active_windows() > 0 {
                tokio::time::sleep(IDLE_POLL).await;
            }
            tracing::info!("restarting after `center update`");
            RESTART.store(true, Ordering::SeqCst);
            token.cancel();
        });
        ControlAnswer::ok(if now == 0 {
            "the center restarts now".to_owned()
        } else {
            format!("the center restarts once no Codex turn runs ({now} window(s) busy or asking)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dirty: &[&str], upstream: Option<&str>, ahead: u32, behind: u32) -> Facts {
        Facts {
            dirty: dirty.iter().map(|s| (*s).to_owned()).collect(),
            branch: "main".into(),
            upstream: upstream.map(str::to_owned),
            ahead,
            behind,
        }
    }

    #[test]
    fn update_decides_from_dirty_ahead_behind_and_diverged() {
        let up = Some("origin/main");
        assert_eq!(decide(&facts(&[], up, 0, 0)), Plan::UpToDate { ahead: 0 });
        assert_eq!(decide(&facts(&[], up, 2, 0)), Plan::UpToDate { ahead: 2 });
        assert_eq!(
            decide(&facts(&[], up, 0, 3)),
            Plan::FastForward { behind: 3 }
        );
        let Plan::Refuse(why) = decide(&facts(&[], up, 1, 3)) else {
            panic!("diverged accepted")
        };
        assert!(
            why.contains("diverged (1 local commit(s), 3 new upstream)"),
            "{why}"
        );
        let Plan::Refuse(why) = decide(&facts(&["center/src/app.rs"], up, 0, 3)) else {
            panic!("dirty accepted")
        };
        assert!(
            why.contains("local changes (1 file(s): center/src/app.rs)"),
            "{why}"
        );
        let Plan::Refuse(why) = decide(&facts(&[], None, 0, 0)) else {
            panic!("no upstream accepted")
        };
        assert!(why.contains("tracks no upstream"), "{why}");
        let mut detached = facts(&[], up, 0, 1);
        detached.branch.clear();
        assert!(matches!(decide(&detached), Plan::Refuse(w) if w.contains("detached HEAD")));
    }

    /// A bare upstream and a clone of it, with one commit.
    fn repos() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream.git");
        let work = dir.path().join("work");
        let git = |cwd: &Path, args: &[&str]| {
            let out = Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        git(dir.path(), &["init", "--quiet", "--bare", "upstream.git"]);
        git(dir.path(), &["clone", "--quiet", "upstream.git", "work"]);
        std::fs::create_dir_all(work.join("center")).unwrap();
        std::fs::write(work.join("center/Cargo.toml"), "[package]\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "one"]);
        git(&work, &["push", "--quiet", "-u", "origin", "HEAD:main"]);
        (dir, upstream, work)
    }

    fn commit(repo: &Path, file: &str, msg: &str) {
        std::fs::write(repo.join(file), msg).unwrap();
        for args in [vec!["add", file], vec!["commit", "--quiet", "-m", msg]] {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(&args)
                .current_dir(repo)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn update_reads_a_real_checkout_and_fast_forwards_only() {
        let (dir, upstream, work) = repos();
        assert_eq!(find_checkout(&work.join("center")), Some(work.clone()));
        assert_eq!(find_checkout(dir.path()), None);
        let f = super::facts(&work, true).unwrap();
        assert_eq!((f.branch.as_str(), f.ahead, f.behind), ("main", 0, 0));
        assert_eq!(f.upstream.as_deref(), Some("origin/main"));
        assert_eq!(decide(&f), Plan::UpToDate { ahead: 0 });

        // Two new commits upstream (pushed from another clone): behind, fast-forwarded.
        let other = dir.path().join("other");
        let out = Command::new("git")
            .args(["clone", "--quiet"])
            .arg(&upstream)
            .arg(&other)
            .output()
            .unwrap();
        assert!(out.status.success());
        commit(&other, "a.txt", "two");
        commit(&other, "b.txt", "three");
        let out = Command::new("git")
            .args(["push", "--quiet", "origin", "HEAD:main"])
            .current_dir(&other)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            super::facts(&work, false).unwrap().behind,
            0,
            "not fetched yet"
        );
        let f = super::facts(&work, true).unwrap();
        assert_eq!(decide(&f), Plan::FastForward { behind: 2 });
        let head = upstream_head(&work).unwrap();
        assert_eq!((head.id.len(), head.subject.as_str()), (40, "three"));

        // A local edit to a tracked file: refused, nothing moves.
        std::fs::write(work.join("center/Cargo.toml"), "[package] # edited\n").unwrap();
        let f = super::facts(&work, true).unwrap();
        assert_eq!(f.dirty, vec!["center/Cargo.toml"]);
        assert!(matches!(decide(&f), Plan::Refuse(_)));
        let out = Command::new("git")
            .args(["checkout", "--quiet", "--", "center/Cargo.toml"])
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(out.status.success());
        // Untracked files do not count.
        std::fs::write(work.join("notes.txt"), "mine").unwrap();
        fast_forward(&work).unwrap();
        let f = super::facts(&work, false).unwrap();
        assert_eq!((f.ahead, f.behind), (0, 0));
        assert!(work.join("b.txt").exists());

        // A local commit and a new upstream one: diverged, and the merge is refused too.
        commit(&work, "local.txt", "local");
        commit(&other, "c.txt", "four");
        let out = Command::new("git")
            .args(["push", "--quiet", "origin", "HEAD:main"])
            .current_dir(&other)
            .output()
            .unwrap();
        assert!(out.status.success());
        let f = super::facts(&work, true).unwrap();
        assert_eq!((f.ahead, f.behind), (1, 1));
        assert!(matches!(decide(&f), Plan::Refuse(w) if w.contains("diverged")));
        assert!(fast_forward(&work).is_err());
    }
}
