//! A finished job's artifacts: files in its folder that were created or changed while it ran,
//! with an allowed extension and not too large — what the center may send back to the chat.
//!
//! Never anything outside the folder: symbolic links are not followed (neither to files nor to
//! folders), every path is canonicalized and must stay under the canonical folder, and the
//! node's own state folders are excluded. The walk is bounded (depth, entries, results) and skips
//! `.git`, `node_modules`, `target` and hidden folders, where a job's build output would drown
//! what it made on purpose.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use proto::v1;

/// Used when a job names no extensions.
pub(crate) const DEFAULT_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "mp4", "mov", "webm", "pdf", "csv", "txt", "md", "zip",
    "tar", "gz",
];
/// Used when a job names no size limit (Telegram's upload cap).
pub(crate) const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;

const MAX_DEPTH: usize = 12;
const MAX_ENTRIES: usize = 20_000;
const MAX_ARTIFACTS: usize = 50;
const SKIPPED_DIRS: &[&str] = &["node_modules", "target"];

/// What counts as an artifact.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Lower case, no dot.
    pub(crate) extensions: Vec<String>,
    pub(crate) max_bytes: u64,
    /// Changed at or after this time.
    pub(crate) since: SystemTime,
    /// Folders never looked into (the node's state, Codex's home).
    pub(crate) exclude: Vec<PathBuf>,
}

impl Rules {
    /// The job's settings, with the defaults for what it left empty.
    pub(crate) fn new(
        extensions: &[String],
        max_bytes: u64,
        started_unix_ms: i64,
        exclude: Vec<PathBuf>,
    ) -> Self {
        let extensions = if extensions.is_empty() {
            DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect()
        } else {
            extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect()
        };
        Self {
            extensions,
            max_bytes: if max_bytes == 0 {
                DEFAULT_MAX_BYTES
            } else {
                max_bytes
            },
            since: UNIX_EPOCH + Duration::from_millis(started_unix_ms.max(0) as u64),
            exclude: exclude
                .into_iter()
                .map(|p| p.canonicalize().unwrap_or(p))
                .collect(),
        }
    }
}

/// The artifacts under `cwd`, sorted by path.
pub(crate) fn collect(cwd: &Path, rules: &Rules) -> Vec<v1::JobArtifact> {
    let Ok(root) = cwd.canonicalize() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                tracing::debug!(cwd = %cwd.display(), "artifact walk stopped at its entry limit");
                return finish(out);
            }
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            // DirEntry::metadata does not follow links: a link is skipped whatever it points to.
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                let skip = name.starts_with('.')
                    || SKIPPED_DIRS.contains(&name.as_ref())
                    || rules.exclude.iter().any(|x| path.starts_with(x));
                if !skip && depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if !meta.is_file() || name.starts_with('.') || meta.len() > rules.max_bytes {
                continue;
            }
            let Some(ext) = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
            else {
                continue;
            };
            if !rules.extensions.contains(&ext) || !changed_since(&meta, rules.since) {
                continue;
            }
            let Ok(real) = path.canonicalize() else {
                continue;
            };
            if !real.starts_with(&root) || rules.exclude.iter().any(|x| real.starts_with(x)) {
                continue;
            }
            out.push(v1::JobArtifact {
                path: real.to_string_lossy().into_owned(),
                size: meta.len(),
                media_type: media_type(&ext).to_owned(),
            });
            if out.len() >= MAX_ARTIFACTS {
                return finish(out);
            }
        }
    }
    finish(out)
}

fn finish(mut out: Vec<v1::JobArtifact>) -> Vec<v1::JobArtifact> {
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Modified or created (a file moved in keeps its mtime but gets a new ctime) since `since`.
fn changed_since(meta: &std::fs::Metadata, since: SystemTime) -> bool {
    let ctime = UNIX_EPOCH
        + Duration::new(
            meta.ctime().max(0) as u64,
            meta.ctime_nsec().clamp(0, 999_999_999) as u32,
        );
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    mtime.max(ctime) >= since
}

/// How Telegram should send a file with extension `ext`.
pub(crate) fn media_type(ext: &str) -> &'static str {
    match ext {
        "png" | "jpg" | "jpeg" | "gif" | "webp" => "photo",
        "mp4" | "mov" | "webm" => "video",
        _ => "document",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(since: SystemTime) -> Rules {
        Rules {
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            max_bytes: 100,
            since,
            exclude: Vec::new(),
        }
    }

    fn names(found: &[v1::JobArtifact], root: &Path) -> Vec<String> {
        let root = root.canonicalize().unwrap();
        found
            .iter()
            .map(|a| {
                Path::new(&a.path)
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn only_new_allowed_small_files_inside_the_folder() {
        let base = tempfile::tempdir().unwrap();
        let cwd = base.path().join("proj");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(cwd.join("sub")).unwrap();
        std::fs::create_dir_all(cwd.join(".git")).unwrap();
        std::fs::create_dir_all(cwd.join("node_modules")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(cwd.join("old.png"), b"x").unwrap();
        let since = SystemTime::now() + Duration::from_millis(10);
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(cwd.join("chart.PNG"), b"png").unwrap();
        std::fs::write(cwd.join("sub/report.pdf"), b"pdf").unwrap();
        std::fs::write(cwd.join("clip.mp4"), b"mp4").unwrap();
        std::fs::write(cwd.join("main.rs"), b"fn main(){}").unwrap();
        std::fs::write(cwd.join("huge.csv"), vec![b'a'; 500]).unwrap();
        std::fs::write(cwd.join(".hidden.txt"), b"h").unwrap();
        std::fs::write(cwd.join(".git/x.txt"), b"g").unwrap();
        std::fs::write(cwd.join("node_modules/y.txt"), b"n").unwrap();
        std::fs::write(outside.join("secret.txt"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), cwd.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, cwd.join("linkdir")).unwrap();

        let found = collect(&cwd, &rules(since));
        assert_eq!(
            names(&found, &cwd),
            vec!["chart.PNG", "clip.mp4", "sub/report.pdf"]
        );
        let kinds: Vec<&str> = found.iter().map(|a| a.media_type.as_str()).collect();
        assert_eq!(kinds, vec!["photo", "video", "document"]);
        assert_eq!(found[0].size, 3);
        assert!(found.iter().all(|a| !a.path.contains("outside")));
    }

    #[test]
    fn settings_narrow_and_exclusions_hold() {
        let base = tempfile::tempdir().unwrap();
        let cwd = base.path();
        std::fs::create_dir_all(cwd.join("state")).unwrap();
        std::fs::write(cwd.join("a.txt"), b"a").unwrap();
        std::fs::write(cwd.join("b.md"), b"b").unwrap();
        std::fs::write(cwd.join("state/c.txt"), b"c").unwrap();
        let r = Rules::new(&[".TXT".into()], 0, 0, vec![cwd.join("state")]);
        assert_eq!(r.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(names(&collect(cwd, &r), cwd), vec!["a.txt"]);
        let r = Rules::new(&[], 0, 0, Vec::new());
        assert_eq!(
            names(&collect(cwd, &r), cwd),
            vec!["a.txt", "b.md", "state/c.txt"]
        );
        assert!(collect(&cwd.join("missing"), &r).is_empty());
    }
}
