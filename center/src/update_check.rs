//! The opt-in daily `center update --check` of a running center (`update_check = true`): when
//! the center runs from a git checkout, it fetches the checkout's upstream once a day and tells
//! the allowed users, once per new upstream commit, that `center update` can install it.
//!
//! Why only tell, never install: an update rebuilds and restarts the center, which the owner
//! should choose to do; a message a day at most is all an opt-in check may cost them. Why the
//! announced commit is kept in the store: a restart (or an update of something else) must not
//! announce the same commit again. A checkout that cannot take the update is told only when
//! there is news it cannot take (diverged from new upstream commits), once per commit too;
//! local changes, a detached HEAD or a missing upstream are logged at info (when the reason
//! changes), since nothing was fetched for them. A failing `git` is logged and tried again at the
//! next check; it never stops the center.
//!
//! [`verdict`] is the pure decision; [`spawn`] is the shell around it (timer, git, store, owners).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    config::UpdateCheckConfig,
    store::Store,
    update::{self, Facts, Plan, UpstreamHead},
};

/// The first check comes this long after the start (once the center has settled).
const FIRST_CHECK: Duration = Duration::from_secs(5 * 60);
/// A fetch that takes longer is given up until the next check.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The store keeps center-wide settings as settings of chat 0 (no Telegram chat has that id).
const CENTER_WIDE: i64 = 0;
/// The setting holding the upstream commit last announced.
const ANNOUNCED: &str = "update_check.announced";
/// Longest commit subject quoted in a message.
const SUBJECT_CHARS: usize = 80;

/// Where the check runs and what the owners are told to run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The checkout.
    repo: PathBuf,
    /// `center update`, with `--repo` when the checkout is not the running executable's.
    command: String,
    /// This machine's name, for "run it on <host>".
    host: String,
}

/// What one check found, for the owners or for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Tell the owners `text` and remember `commit` as announced.
    Announce {
        /// The upstream commit announced.
        commit: String,
        /// The message.
        text: String,
    },
    /// Nothing to tell; `why` is for the log.
    Quiet {
        /// Why nothing is told.
        why: String,
        /// Worth an info line (the checkout cannot take updates), not just a debug one.
        notable: bool,
    },
}

/// The decision of one check: the checkout's facts after a fetch, the upstream's newest commit
/// (when the checkout is behind), the commit announced last, and what to run where.
pub(crate) fn verdict(
    facts: &Facts,
    head: Option<&UpstreamHead>,
    announced: Option<&str>,
    command: &str,
    host: &str,
) -> Verdict {
    let quiet = |why: String, notable| Verdict::Quiet { why, notable };
    let plan = update::decide(facts);
    let upstream = facts.upstream.as_deref().unwrap_or("its upstream");
    let refusal = match plan {
        Plan::UpToDate { .. } => return quiet(format!("up to date with {upstream}"), false),
        Plan::FastForward { .. } => None,
        // Only a diverged checkout knows what it is missing (the others were not fetched).
        Plan::Refuse(why) if facts.behind == 0 => return quiet(why, true),
        Plan::Refuse(why) => Some(why),
    };
    let Some(head) = head.filter(|h| !h.id.is_empty()) else {
        return quiet(format!("{upstream}'s newest commit is unknown"), false);
    };
    if announced == Some(head.id.as_str()) {
        return quiet(format!("{} was announced already", head.id), false);
    }
    let n = facts.behind;
    let commits = if n == 1 { "commit" } else { "commits" };
    let latest = match shorten(&head.subject) {
        s if s.is_empty() => String::new(),
        s => format!(" (latest: {s})"),
    };
    let news =
        format!("A Codex Fleet update is available: {n} new {commits} on {upstream}{latest}");
    let text = match refusal {
        None => format!("{news}. Run `{command}` on {host} to install it."),
        Some(why) => format!("{news}, but `{command}` on {host} cannot install it: {why}."),
    };
    Verdict::Announce {
        commit: head.id.clone(),
        text,
    }
}

/// `subject` cut to [`SUBJECT_CHARS`] characters.
fn shorten(subject: &str) -> String {
    let subject = subject.trim();
    if subject.chars().count() <= SUBJECT_CHARS {
        return subject.to_owned();
    }
    let cut: String = subject.chars().take(SUBJECT_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// The upstream commit last announced.
fn announced(store: &Store) -> Option<String> {
    store
        .chat_setting(CENTER_WIDE, ANNOUNCED)
        .map_err(|err| tracing::warn!(error = %err, "reading the announced update failed"))
        .ok()
        .flatten()
}

/// Remembers `commit` as announced.
fn remember(store: &Store, commit: &str) {
    if let Err(err) = store.set_chat_setting(CENTER_WIDE, ANNOUNCED, Some(commit)) {
        tracing::warn!(error = %err, "saving the announced update failed; it may be announced again");
    }
}

/// Why the update check has no checkout to look at.
#[derive(Debug, thiserror::Error)]
enum NoCheckout {
    /// `update_repo` names a folder outside any checkout.
    #[error("update_repo {} is not in a git checkout of Codex Fleet", .0.display())]
    NotACheckout(PathBuf),
    /// No `update_repo`, and the running binary is not in a checkout.
    #[error(
        "this center does not run from a git checkout; set update_repo to the checkout it was built from"
    )]
    NotRunFromOne,
}

/// The checkout to check, from the setting or the running executable; `Err` says why none.
fn target(cfg: &UpdateCheckConfig, running: Option<&Path>) -> Result<Target, NoCheckout> {
    let running = running.and_then(update::find_checkout);
    let repo = match &cfg.repo {
        Some(repo) => {
            update::find_checkout(repo).ok_or_else(|| NoCheckout::NotACheckout(repo.clone()))?
        }
        None => running.clone().ok_or(NoCheckout::NotRunFromOne)?,
    };
    let same = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    let command = if running.as_deref().map(same) == Some(same(&repo)) {
        "center update".to_owned()
    } else {
        format!("center update --repo {}", repo.display())
    };
    Ok(Target {
        repo,
        command,
        host: hostname(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "the center's machine".into())
}

/// Starts the daily check when `update_check` is on (it ends with `token`).
pub(crate) fn spawn(app: Arc<App>, token: CancellationToken) {
    let cfg = app.cfg.update_check.clone();
    if !cfg.enabled {
        return;
    }
    match target(&cfg, update::running_exe().as_deref()) {
        Ok(target) => {
            tracing::info!(repo = %target.repo.display(), every_secs = cfg.every.as_secs(), "update check on");
            let stop = token.clone();
            shared::shutdown::supervise("update check", token, move || {
                run(app.clone(), target.clone(), cfg.every, stop.clone())
            });
        }
        Err(why) => tracing::warn!("update check off: {why}"),
    }
}

/// Checks after a few minutes, then every `every`, until `token` is cancelled.
async fn run(app: Arc<App>, target: Target, every: Duration, token: CancellationToken) {
    let first = tokio::time::Instant::now() + FIRST_CHECK.min(every);
    let mut timer = tokio::time::interval_at(first, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_why = String::new();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = timer.tick() => {}
        }
        // Cancelled mid-check (a fetch can take minutes): the fetch is killed.
        let checked = tokio::select! {
            () = token.cancelled() => return,
            checked = check(&app, &target) => checked,
        };
        match checked {
            Ok(Verdict::Announce { commit, text }) => {
                tracing::info!(%commit, "announcing an update");
                // Remembered first: a crash in between loses one message rather than repeating it.
                remember(&app.store, &commit);
                app.tell_owners(&text);
            }
            Ok(Verdict::Quiet { why, notable }) => {
                if notable && why != last_why {
                    tracing::info!("update check: {why}");
                } else {
                    tracing::debug!("update check: {why}");
                }
                last_why = why;
            }
            Err(err) => {
                let err = shared::secret::without_url_credentials(&err.to_string());
                tracing::warn!(error = %err, "update check failed; trying again at the next one");
            }
        }
    }
}

/// One check: local facts, a fetch when the checkout could take an update, facts again, and the
/// upstream's newest commit when there is something new.
async fn check(app: &App, target: &Target) -> Result<Verdict, update::Error> {
    let repo = target.repo.clone();
    let mut facts = update::off_thread(move || update::facts(&repo, false)).await?;
    // As `update::facts` itself: local changes, a detached HEAD or no upstream refuse whatever
    // the upstream holds, so it is not fetched. A diverged checkout is (it may hear of news).
    if facts.dirty.is_empty() && !facts.branch.is_empty() && facts.upstream.is_some() {
        update::fetch_unattended(&target.repo, FETCH_TIMEOUT).await?;
        let repo = target.repo.clone();
        facts = update::off_thread(move || update::facts(&repo, false)).await?;
    }
    let head = if facts.behind > 0 {
        let repo = target.repo.clone();
        Some(update::off_thread(move || update::upstream_head(&repo)).await?)
    } else {
        None
    };
    Ok(verdict(
        &facts,
        head.as_ref(),
        announced(&app.store).as_deref(),
        &target.command,
        &target.host,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ahead: u32, behind: u32) -> Facts {
        Facts {
            branch: "main".into(),
            upstream: Some("origin/main".into()),
            ahead,
            behind,
            ..Facts::default()
        }
    }

    fn head(id: &str, subject: &str) -> UpstreamHead {
        UpstreamHead {
            id: id.into(),
            subject: subject.into(),
        }
    }

    fn text(v: Verdict) -> String {
        match v {
            Verdict::Announce { text, .. } => text,
            Verdict::Quiet { why, .. } => panic!("quiet: {why}"),
        }
    }

    #[test]
    fn new_commits_are_announced_once_each_with_their_count_and_latest_subject() {
        let h = head("c3", "Faster /health");
        let v = verdict(&facts(0, 3), Some(&h), None, "center update", "box");
        assert_eq!(
            v,
            Verdict::Announce {
                commit: "c3".into(),
                text: "A Codex Fleet update is available: 3 new commits on origin/main (latest: \
                       Faster /health). Run `center update` on box to install it."
                    .into(),
            }
        );
        // The same upstream commit again (the next day, after a restart): quiet.
        let again = verdict(&facts(0, 3), Some(&h), Some("c3"), "center update", "box");
        assert!(
            matches!(again, Verdict::Quiet { notable: false, .. }),
            "{again:?}"
        );
        // A newer one: announced, counted from the checkout.
        let newer = verdict(
            &facts(0, 4),
            Some(&head("c4", "x")),
            Some("c3"),
            "center update",
            "box",
        );
        assert!(text(newer).contains("4 new commits on origin/main (latest: x)"));
        let one = verdict(
            &facts(0, 1),
            Some(&head("c1", "")),
            None,
            "center update",
            "box",
        );
        assert_eq!(
            text(one),
            "A Codex Fleet update is available: 1 new commit on origin/main. Run `center update` on box to install it."
        );
    }

    #[test]
    fn nothing_new_or_a_checkout_that_was_not_fetched_stays_quiet() {
        let up_to_date = verdict(&facts(2, 0), None, None, "center update", "box");
        assert!(matches!(up_to_date, Verdict::Quiet { notable: false, .. }));
        let mut dirty = facts(0, 0);
        dirty.dirty = vec!["center/src/app.rs".into()];
        let v = verdict(&dirty, None, None, "center update", "box");
        assert!(
            matches!(&v, Verdict::Quiet { why, notable: true } if why.contains("local changes")),
            "{v:?}"
        );
        let mut no_upstream = facts(0, 0);
        no_upstream.upstream = None;
        let v = verdict(&no_upstream, None, None, "center update", "box");
        assert!(matches!(&v, Verdict::Quiet { why, notable: true } if why.contains("no upstream")));
        // Behind, but the newest commit could not be read: nothing half-announced.
        let v = verdict(&facts(0, 2), None, None, "center update", "box");
        assert!(matches!(v, Verdict::Quiet { notable: false, .. }));
    }

    #[test]
    fn a_diverged_checkout_is_told_once_per_commit_why_it_cannot_take_it() {
        let h = head("c2", "New menu");
        let t = text(verdict(
            &facts(1, 2),
            Some(&h),
            None,
            "center update --repo /srv/cf",
            "box",
        ));
        assert!(
            t.starts_with("A Codex Fleet update is available: 2 new commits on origin/main (latest: New menu), but `center update --repo /srv/cf` on box cannot install it: "),
            "{t}"
        );
        assert!(
            t.contains("diverged") && t.contains("rebase or merge by hand"),
            "{t}"
        );
        let again = verdict(&facts(1, 2), Some(&h), Some("c2"), "center update", "box");
        assert!(matches!(again, Verdict::Quiet { .. }));
    }

    #[test]
    fn long_subjects_are_cut_and_urls_lose_their_credentials() {
        let long = "x".repeat(200);
        let t = text(verdict(
            &facts(0, 1),
            Some(&head("c", &long)),
            None,
            "center update",
            "b",
        ));
        assert!(
            t.contains(&format!("(latest: {}…)", "x".repeat(SUBJECT_CHARS - 1))),
            "{t}"
        );
    }

    #[test]
    fn the_announced_commit_survives_a_reopened_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("center.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(announced(&store), None);
        remember(&store, "c1");
        remember(&store, "c2");
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(announced(&store).as_deref(), Some("c2"));
    }

    #[test]
    fn the_checkout_is_the_setting_or_the_running_executables() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = |name: &str| {
            let repo = dir.path().join(name);
            std::fs::create_dir_all(repo.join(".git")).unwrap();
            std::fs::create_dir_all(repo.join("center")).unwrap();
            std::fs::write(repo.join("center/Cargo.toml"), "[package]\n").unwrap();
            repo
        };
        let (running, other) = (checkout("running"), checkout("other"));
        let exe = running.join("target/release/center");
        let exe = Some(exe.as_path());
        let on = UpdateCheckConfig::resolve(Some(true), None, None);
        let t = target(&on, exe).unwrap();
        assert_eq!((t.repo, t.command.as_str()), (running, "center update"));
        let set = UpdateCheckConfig::resolve(Some(true), Some(other.join("center")), None);
        let t = target(&set, exe).unwrap();
        assert_eq!(t.repo, other);
        assert_eq!(
            t.command,
            format!("center update --repo {}", other.display())
        );
        let err = target(&on, Some(&dir.path().join("center")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("update_repo"), "{err}");
        let nowhere = UpdateCheckConfig::resolve(Some(true), Some(dir.path().to_owned()), None);
        assert!(
            target(&nowhere, exe)
                .unwrap_err()
                .to_string()
                .contains("not in a git checkout")
        );
    }
}
