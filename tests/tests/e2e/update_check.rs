//! The opt-in periodic update check: a center whose checkout (`CODEX_FLEET_UPDATE_REPO`, a clone
//! of a bare "upstream" repository in a temporary folder) falls behind its upstream tells the
//! allowed user in private, once per upstream commit, how many new commits there are — and a
//! restarted center does not tell it again (the announced commit is in its store).
//!
//! The check runs every second here (`CODEX_FLEET_UPDATE_CHECK_EVERY_SECS`, for tests only). That
//! nothing more is said can only be seen by waiting a few checks; that the restarted center does
//! check is seen when it announces the next commit.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);
/// Several checks at one a second.
const A_FEW_CHECKS: Duration = Duration::from_secs(4);

/// `git -c … <args>` in `cwd`, which must succeed.
fn git(cwd: &Path, args: &[&str]) {
    #[allow(clippy::disallowed_methods, reason = "test setup of a git repository")]
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
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare upstream, the center's checkout of it, and another clone that pushes new commits.
struct Repos {
    _dir: tempfile::TempDir,
    work: PathBuf,
    other: PathBuf,
}

impl Repos {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "--quiet", "--bare", "upstream.git"]);
        git(dir.path(), &["clone", "--quiet", "upstream.git", "work"]);
        let work = dir.path().join("work");
        // What `find_checkout` looks for in a Codex Fleet checkout.
        std::fs::create_dir_all(work.join("center")).unwrap();
        std::fs::write(work.join("center/Cargo.toml"), "[package]\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "first"]);
        git(&work, &["push", "--quiet", "-u", "origin", "HEAD:main"]);
        git(dir.path(), &["clone", "--quiet", "upstream.git", "other"]);
        let other = dir.path().join("other");
        Self {
            _dir: dir,
            work,
            other,
        }
    }

    /// Commits `subjects` (in order) in the other clone and pushes them upstream.
    fn push_upstream(&self, subjects: &[&str]) {
        for (i, subject) in subjects.iter().enumerate() {
            std::fs::write(self.other.join(format!("f{i}.txt")), subject).unwrap();
            git(&self.other, &["add", "."]);
            git(&self.other, &["commit", "--quiet", "-m", subject]);
        }
        git(&self.other, &["push", "--quiet", "origin", "HEAD:main"]);
    }
}

fn announcements(env: &CenterEnv, private: i64) -> Vec<String> {
    env.tg
        .messages_in(private, None)
        .iter()
        .map(|m| m.text().to_owned())
        .filter(|t| t.contains("Codex Fleet update is available"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_upstream_commits_are_told_to_the_owner_once_even_after_a_restart() {
    let repos = Repos::new();
    let mut env = CenterEnv::start("update-check").await;
    // The owner's private chat exists before the center writes to it.
    let private = env.tg.create_private_chat(&env.alice, false);
    env.opts.env.extend([
        ("CODEX_FLEET_UPDATE_CHECK".to_owned(), "1".to_owned()),
        (
            "CODEX_FLEET_UPDATE_REPO".to_owned(),
            repos.work.display().to_string(),
        ),
        (
            "CODEX_FLEET_UPDATE_CHECK_EVERY_SECS".to_owned(),
            "1".to_owned(),
        ),
    ]);
    env.restart_center().await;

    // Up to date: nothing to tell.
    tokio::time::sleep(A_FEW_CHECKS).await;
    assert_eq!(announcements(&env, private), Vec::<String>::new());

    repos.push_upstream(&["one", "two", "Faster /health"]);
    let told = env
        .tg
        .wait_for_message("the update announcement", WAIT, |m| {
            m.chat_id == private && m.text().contains("update is available")
        })
        .await
        .unwrap();
    let text = told.text();
    assert!(
        text.starts_with(
            "A Codex Fleet update is available: 3 new commits on origin/main (latest: Faster /health). Run `center update --repo "
        ),
        "{text}"
    );
    assert!(text.ends_with(" to install it."), "{text}");
    tokio::time::sleep(A_FEW_CHECKS).await;
    assert_eq!(announcements(&env, private).len(), 1, "announced once");

    // A restarted center remembers what it announced…
    env.restart_center().await;
    tokio::time::sleep(A_FEW_CHECKS).await;
    assert_eq!(
        announcements(&env, private).len(),
        1,
        "announced again after a restart"
    );
    // …and goes on checking: the next upstream commit is news.
    repos.push_upstream(&["four"]);
    env.tg
        .wait_for_message("the second announcement", WAIT, |m| {
            m.chat_id == private
                && m.text()
                    .contains("4 new commits on origin/main (latest: four)")
        })
        .await
        .unwrap();
    assert_eq!(announcements(&env, private).len(), 2);
}
