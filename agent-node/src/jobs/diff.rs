//! `GitDiff`: what changed in a folder since its last commit (staged and unstaged), as git's
//! `--stat` and a bounded patch. Git runs without a shell, with a timeout, without pagers,
//! external diff drivers or text conversion filters (a repository's config must not make the
//! node run its programs), and a folder outside any repository is an answer, not an error.

use std::{
    path::{Component, Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use proto::v1;
use tokio::io::AsyncReadExt;

/// The largest patch returned.
pub(crate) const MAX_PATCH: usize = 2 * 1024 * 1024;
/// The largest `--stat` returned.
const MAX_STAT: usize = 64 * 1024;
/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Git's empty tree: what a repository without commits is compared with.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    BadPath(String),
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("git took longer than {} s", GIT_TIMEOUT.as_secs())]
    Timeout,
    #[error("git diff failed: {0}")]
    Failed(String),
}

/// `path` (absolute, or relative to `cwd`) as a path relative to `cwd`, if it stays inside.
pub(crate) fn inside(cwd: &Path, path: &str) -> Result<Option<PathBuf>, Error> {
    let path = path.trim();
    if path.is_empty() {
        return Ok(None);
    }
    let p = Path::new(path);
    let rel = if p.is_absolute() {
        p.strip_prefix(cwd)
            .map_err(|_| Error::BadPath(format!("{path} is not inside {}", cwd.display())))?
            .to_owned()
    } else {
        p.to_owned()
    };
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::BadPath(format!(
            "{path} leaves {} (no `..`)",
            cwd.display()
        )));
    }
    Ok(Some(rel))
}

/// The diff of `cwd` (narrowed to `rel`, relative to `cwd`) against HEAD.
pub(crate) async fn diff(
    git: &str,
    cwd: &Path,
    rel: Option<&Path>,
) -> Result<v1::DiffResult, Error> {
    let inside = run(git, cwd, &["rev-parse", "--is-inside-work-tree"], &[], 64).await?;
    if !inside.ok || inside.out.trim() != "true" {
        return Ok(v1::DiffResult {
            is_repo: false,
            ..Default::default()
        });
    }
    let head = run(
        git,
        cwd,
        &["rev-parse", "--verify", "--quiet", "HEAD"],
        &[],
        128,
    )
    .await?;
    let base = if head.ok { "HEAD" } else { EMPTY_TREE };
    let paths: Vec<&Path> = rel.into_iter().collect();
    let stat = run(git, cwd, &["diff", base, "--stat"], &paths, MAX_STAT).await?;
    if !stat.ok {
        return Err(Error::Failed(stat.err));
    }
    let patch = run(git, cwd, &["diff", base], &paths, MAX_PATCH).await?;
    if !patch.ok && !patch.truncated {
        return Err(Error::Failed(patch.err));
    }
    Ok(v1::DiffResult {
        is_repo: true,
        stat: stat.out,
        patch: patch.out,
        truncated: patch.truncated || stat.truncated,
    })
}

struct Output {
    ok: bool,
    out: String,
    err: String,
    truncated: bool,
}

async fn run(
    git: &str,
    cwd: &Path,
    args: &[&str],
    paths: &[&Path],
    limit: usize,
) -> Result<Output, Error> {
    let mut cmd = tokio::process::Command::new(git);
    cmd.arg("-C")
        .arg(cwd)
        .args(["-c", "core.pager=cat", "-c", "color.ui=never"])
        .args(args);
    if args.first() == Some(&"diff") {
        cmd.args(["--no-ext-diff", "--no-textconv", "--no-color"]);
    }
    if !paths.is_empty() {
        cmd.arg("--").args(paths);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(Error::Spawn)?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or(Error::Failed("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or(Error::Failed("no stderr".into()))?;
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    // Enough: git would block writing the rest (and never close stderr).
                    let _ = child.start_kill();
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut err).await;
        };
        let (r, ()) = tokio::join!(read_out, read_err);
        r.map_err(Error::Spawn)?;
        let truncated = out.len() > limit;
        let status = child.wait().await.map_err(Error::Spawn)?;
        out.truncate(limit);
        Ok::<_, Error>(Output {
            ok: status.success(),
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).trim().to_owned(),
            truncated,
        })
    };
    tokio::time::timeout(GIT_TIMEOUT, work)
        .await
        .map_err(|_| Error::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
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
    fn paths_stay_inside() {
        let cwd = Path::new("/w/p");
        assert_eq!(inside(cwd, "").unwrap(), None);
        assert_eq!(inside(cwd, "src/a.rs").unwrap(), Some("src/a.rs".into()));
        assert_eq!(inside(cwd, "/w/p/src").unwrap(), Some("src".into()));
        assert!(inside(cwd, "../x").is_err());
        assert!(inside(cwd, "/w/other").is_err());
        assert!(inside(cwd, "a/../../x").is_err());
    }

    #[tokio::test]
    async fn repos_folders_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let plain = diff("git", dir.path(), None).await.unwrap();
        assert!(!plain.is_repo);

        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        git(dir.path(), &["add", "a.txt"]);
        // No commit yet: compared with the empty tree.
        let first = diff("git", dir.path(), None).await.unwrap();
        assert!(first.is_repo && first.patch.contains("+one"), "{first:?}");
        git(dir.path(), &["commit", "-qm", "init"]);
        std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b\n").unwrap();
        git(dir.path(), &["add", "b.txt"]);
        let d = diff("git", dir.path(), None).await.unwrap();
        assert!(
            d.stat.contains("a.txt") && d.stat.contains("b.txt"),
            "{}",
            d.stat
        );
        assert!(d.patch.contains("+two") && !d.truncated);
        let only = diff("git", dir.path(), Some(Path::new("b.txt")))
            .await
            .unwrap();
        assert!(only.stat.contains("b.txt") && !only.stat.contains("a.txt"));

        let big: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(dir.path().join("a.txt"), big).unwrap();
        let d = diff("git", dir.path(), None).await.unwrap();
        assert!(d.truncated);
        assert_eq!(d.patch.len(), MAX_PATCH);
    }
}
