//! Git worktrees the node creates for new windows ("🌿 New worktree" in the bind menu), so that
//! parallel topics in one repository never edit the same checkout, and their removal when the
//! window is killed.
//!
//! Where a worktree goes: next to the repository, in `<parent>/<repo>.worktrees/<name>` on branch
//! `codex/<name>` — outside the repository, so its own `git status` stays clean and nothing in it
//! sees the worktree's files. Only when that folder would lie outside the node's roots (the
//! repository is a root itself) does it go inside, in `<repo>/.worktrees/<name>`, listed in the
//! repository's local `.git/info/exclude`. Either way the window's folder stays inside the roots,
//! so every later request for it (self-heal, `/diff`, jobs) passes the roots check.
//!
//! Why `git worktree add` and not Codex's own `--worktree`: 0.169 has no such flag, and the
//! node has to know the path and branch to name the topic, to answer `/kill` after a restart and
//! to remove exactly what it made; with `git worktree add` that is the same on every version.
//!
//! The node remembers the worktrees it made in `worktrees.json` in its state dir (keyed by path,
//! so a window that self-heal recreates in the same folder is still known to run in one). Git
//! runs without a shell, with arguments as a vector and a timeout; the repository's hooks run as
//! they would for the user's own `git worktree add`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use proto::v1;
use serde::{Deserialize, Serialize};

/// Branches of worktrees the node creates start with this.
pub(crate) const BRANCH_PREFIX: &str = "codex/";
/// How long one git command may take (`worktree add` checks out the whole tree, and runs the
/// repository's post-checkout hook).
const GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of `git status --porcelain` passed on for a dirty worktree.
const MAX_CHANGES: usize = 10;
/// Longest slug taken from a hint.
const MAX_SLUG: usize = 32;

/// Why a worktree could not be made, checked or removed (each reads well to the user).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("git took longer than {} s", GIT_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0} is not in a git repository")]
    NotARepo(String),
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("no free worktree name for {0:?}")]
    NoName(String),
    #[error("the worktree state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("the repository's main checkout {0} is outside this machine's folders")]
    OutsideRoots(String),
}

/// A worktree the node created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Worktree {
    /// Its top folder (canonical).
    pub(crate) path: PathBuf,
    /// Its branch, `codex/<name>`.
    pub(crate) branch: String,
    /// The top folder of the repository it belongs to.
    pub(crate) repo: PathBuf,
    /// Unix ms when created.
    pub(crate) created_unix_ms: i64,
}

impl Worktree {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> v1::Worktree {
        v1::Worktree {
            path: self.path.to_string_lossy().into_owned(),
            branch: self.branch.clone(),
            repo: self.repo.to_string_lossy().into_owned(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    worktrees: Vec<Worktree>,
}

/// The worktrees the node created, persisted in `worktrees.json`.
#[derive(Debug)]
pub(crate) struct Table {
    file: PathBuf,
    by_path: BTreeMap<PathBuf, Worktree>,
}

impl Table {
    /// Loads `state_dir/worktrees.json` (a missing or unreadable file is an empty table: losing
    /// it only means `/kill` no longer offers to remove those worktrees).
    pub(crate) fn load(state_dir: &Path) -> Self {
        let file = state_dir.join("worktrees.json");
        let parsed = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<FileFormat>(&bytes).unwrap_or_else(|err| {
                tracing::warn!(path = %file.display(), error = %err, "worktree table unreadable; starting empty");
                FileFormat::default()
            }),
            Err(_) => FileFormat::default(),
        };
        Self {
            file,
            by_path: parsed
                .worktrees
                .into_iter()
                .map(|w| (w.path.clone(), w))
                .collect(),
        }
    }

    /// The worktree the node created that holds `cwd`, if any.
    pub(crate) fn holding(&self, cwd: &Path) -> Option<&Worktree> {
        self.by_path
            .values()
            .filter(|w| cwd.starts_with(&w.path))
            .max_by_key(|w| w.path.as_os_str().len())
    }

    /// Adds a worktree and writes the table.
    pub(crate) fn put(&mut self, w: Worktree) -> Result<(), Error> {
        self.by_path.insert(w.path.clone(), w);
        self.save()
    }

    /// Forgets a worktree (removed, or gone) and writes the table.
    pub(crate) fn forget(&mut self, path: &Path) -> Result<(), Error> {
        if self.by_path.remove(path).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), Error> {
        let state = |message: String| Error::State {
            path: self.file.clone(),
            message,
        };
        let body = serde_json::to_vec_pretty(&FileFormat {
            version: 1,
            worktrees: self.by_path.values().cloned().collect(),
        })
        .map_err(|e| state(e.to_string()))?;
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, body).map_err(|e| state(e.to_string()))?;
        std::fs::rename(&tmp, &self.file).map_err(|e| state(e.to_string()))
    }
}

/// Whether `dir` lies in a git work tree whose top folder (the nearest folder with a `.git`
/// in it, `dir` or above) is one that `inside` accepts (inside the node's roots): a repository
/// around all the roots (a home directory kept in git) is no project to make worktrees of. Only
/// looks at the file system, so listing a folder never runs git.
pub(crate) fn in_git_repo(dir: &Path, inside: impl Fn(&Path) -> bool) -> bool {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .is_some_and(inside)
}

/// A branch- and folder-safe name from a few words: lowercase ASCII letters, digits and single
/// dashes, at most [`MAX_SLUG`] characters; `fallback` (or `session`) when nothing is left.
pub(crate) fn slug(hint: &str, fallback: &str) -> String {
    let make = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            if out.len() >= MAX_SLUG {
                break;
            }
        }
        out.trim_matches('-').to_owned()
    };
    [make(hint), make(fallback)]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "session".to_owned())
}

/// A new worktree of the repository holding `cwd`, on a new branch from `cwd`'s HEAD. `inside`
/// tells whether a folder lies inside the node's roots. Returns the worktree and the folder
/// matching `cwd` in it (where the window starts).
pub(crate) async fn create(
    cwd: &Path,
    hint: &str,
    inside: impl Fn(&Path) -> bool,
) -> Result<(Worktree, PathBuf), Error> {
    let not_repo = || Error::NotARepo(cwd.display().to_string());
    let toplevel = git(cwd, &["rev-parse", "--show-toplevel"])
        .await
        .map_err(|_| not_repo())?;
    let toplevel = PathBuf::from(toplevel.trim());
    let common = git(
        cwd,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await?;
    let common = PathBuf::from(common.trim());
    // The main checkout: the parent of the shared `.git` (a worktree of a worktree goes next
    // to the repository, not inside the first worktree's folder).
    let repo = match (common.file_name(), common.parent()) {
        (Some(n), Some(parent)) if n == ".git" => parent.to_owned(),
        _ => toplevel.clone(),
    };
    let repo = repo.canonicalize().unwrap_or(repo);
    let toplevel = toplevel.canonicalize().unwrap_or(toplevel);
    // A linked worktree's `.git` file points at its main checkout, which may lie outside the
    // roots: nothing is written there (no exclude entry, no new folder).
    if !inside(&repo) {
        return Err(Error::OutsideRoots(repo.display().to_string()));
    }
    let rel = cwd.strip_prefix(&toplevel).unwrap_or(Path::new(""));
    let repo_name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let sibling = repo
        .parent()
        .filter(|p| inside(p))
        .map(|p| p.join(format!("{repo_name}.worktrees")));
    let base = match sibling {
        Some(dir) => dir,
        None => {
            exclude_in(&common, "/.worktrees/")?;
            repo.join(".worktrees")
        }
    };
    let name = slug(hint, &repo_name);
    let mut chosen = None;
    for n in 1..100 {
        let candidate = if n == 1 {
            name.clone()
        } else {
            format!("{name}-{n}")
        };
        let branch = format!("{BRANCH_PREFIX}{candidate}");
        let taken = git(
            cwd,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )
        .await
        .is_ok();
        if !taken && !base.join(&candidate).exists() {
            chosen = Some((base.join(&candidate), branch));
            break;
        }
    }
    let (path, branch) = chosen.ok_or_else(|| Error::NoName(name.clone()))?;
    std::fs::create_dir_all(&base).map_err(Error::Spawn)?;
    let path_arg = path.to_string_lossy().into_owned();
    git(cwd, &["worktree", "add", "-b", &branch, &path_arg]).await?;
    let path = path.canonicalize().unwrap_or(path);
    // `join("")` would add a trailing slash, and Codex records the folder without one.
    let start = Some(rel)
        .filter(|r| !r.as_os_str().is_empty())
        .map(|r| path.join(r))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| path.clone());
    tracing::info!(path = %path.display(), branch = %branch, "git worktree created");
    Ok((
        Worktree {
            path,
            branch,
            repo,
            created_unix_ms: shared::clock::now_unix_ms(),
        },
        start,
    ))
}

/// What `git status --porcelain` says about a worktree: (clean, first lines, line count).
pub(crate) async fn status(w: &Worktree) -> Result<(bool, Vec<String>, usize), Error> {
    let out = git(&w.path, &["status", "--porcelain"]).await?;
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    Ok((
        lines.is_empty(),
        lines
            .iter()
            .take(MAX_CHANGES)
            .map(|l| (*l).to_owned())
            .collect(),
        lines.len(),
    ))
}

/// Removes a clean worktree (`git worktree remove` without `--force`, so git itself refuses a
/// dirty one too), then its branch if it holds no commits of its own (`git branch -d`).
/// Returns whether the branch was deleted.
pub(crate) async fn remove(w: &Worktree) -> Result<bool, Error> {
    let path = w.path.to_string_lossy().into_owned();
    git(&w.repo, &["worktree", "remove", &path]).await?;
    let deleted = git(&w.repo, &["branch", "-d", &w.branch]).await.is_ok();
    tracing::info!(path = %path, branch = %w.branch, branch_deleted = deleted, "git worktree removed");
    Ok(deleted)
}

/// Adds `pattern` to the repository's local exclude file (once).
fn exclude_in(common_dir: &Path, pattern: &str) -> Result<(), Error> {
    let file = common_dir.join("info").join("exclude");
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    if current.lines().any(|l| l.trim() == pattern) {
        return Ok(());
    }
    let mut body = current;
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(pattern);
    body.push('\n');
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(Error::Spawn)?;
    }
    std::fs::write(&file, body).map_err(Error::Spawn)
}

/// Runs `git -C dir args…` (no shell, no prompts, no pager); its stdout, or its stderr as the
/// error.
async fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    #[allow(
        clippy::disallowed_methods,
        reason = "git for worktrees: arguments as a vector, no shell"
    )]
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "core.pager=cat", "-c", "color.ui=never"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(Error::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("failed")
            .to_owned();
        Err(Error::Git {
            args: args.first().copied().unwrap_or_default().to_owned(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_sync(dir: &Path, args: &[&str]) {
        #[allow(clippy::disallowed_methods, reason = "test repository")]
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.email=t@t", "-c", "user.name=t"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn slugs_are_safe_and_never_empty() {
        assert_eq!(slug("Fix the login bug!", "repo"), "fix-the-login-bug");
        assert_eq!(slug("  ../..  ", "my repo"), "my-repo");
        assert_eq!(slug("🌿", "🌿"), "session");
        assert!(slug(&"word ".repeat(40), "x").len() <= MAX_SLUG);
        assert!(!slug(&"word ".repeat(40), "x").ends_with('-'));
    }

    #[tokio::test]
    async fn a_worktree_goes_next_to_the_repo_and_is_removed_only_when_clean() {
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        let repo = root_path.join("repo");
        std::fs::create_dir_all(repo.join("sub")).unwrap();
        std::fs::write(repo.join("sub/a.txt"), "a").unwrap();
        git_sync(&repo, &["init", "-q", "-b", "main"]);
        git_sync(&repo, &["add", "."]);
        git_sync(&repo, &["commit", "-q", "-m", "init"]);
        assert!(in_git_repo(&repo.join("sub"), |p| p.starts_with(&root_path)));
        assert!(!in_git_repo(&repo.join("sub"), |p| p.starts_with(repo.join("sub"))));

        let inside = |p: &Path| p.starts_with(&root_path);
        let (w, start) = create(&repo.join("sub"), "Fix it", inside).await.unwrap();
        assert_eq!(w.path, root_path.join("repo.worktrees/fix-it"));
        assert_eq!(w.branch, "codex/fix-it");
        assert_eq!(w.repo, repo);
        assert_eq!(start, w.path.join("sub"));
        // The same hint again gets the next free name.
        let (w2, _) = create(&repo, "Fix it", inside).await.unwrap();
        assert_eq!(w2.branch, "codex/fix-it-2");

        let mut table = Table::load(root.path());
        table.put(w.clone()).unwrap();
        assert_eq!(
            Table::load(root.path()).holding(&w.path.join("sub")),
            Some(&w)
        );
        assert!(Table::load(root.path()).holding(&repo).is_none());

        assert!(status(&w).await.unwrap().0);
        std::fs::write(w.path.join("new.txt"), "x").unwrap();
        let (clean, changes, count) = status(&w).await.unwrap();
        assert!(!clean && count == 1 && changes[0].contains("new.txt"));
        assert!(remove(&w).await.is_err(), "git refuses a dirty worktree");
        std::fs::remove_file(w.path.join("new.txt")).unwrap();
        assert!(remove(&w).await.unwrap(), "an empty branch goes too");
        assert!(!w.path.exists());

        // A repository that is a root itself keeps its worktrees inside, excluded locally.
        let only_repo = |p: &Path| p.starts_with(&repo);
        let (w3, _) = create(&repo, "", only_repo).await.unwrap();
        assert_eq!(w3.path, repo.join(".worktrees/repo"));
        let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
        assert!(exclude.contains("/.worktrees/"));
        git_sync(&repo, &["status", "--porcelain"]);
    }
}
