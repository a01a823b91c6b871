//! Directory browsing confined to the configured roots.
//!
//! Every path is canonicalised (symlinks resolved, `..` folded) before it is checked against the
//! canonical roots, and every listed subdirectory is resolved and re-checked, so neither `..` nor
//! a symlink can lead outside a root.

use std::path::{Path, PathBuf};

use crate::config::RootConfig;

/// Why a directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The path is not absolute.
    #[error("{0} is not an absolute path")]
    NotAbsolute(String),
    /// The path does not exist or cannot be read.
    #[error("{0} does not exist")]
    Missing(String),
    /// The path is a file.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// The path resolves outside every root.
    #[error("{0} is outside the allowed folders")]
    OutsideRoots(String),
    /// Listing failed.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The directory.
        path: String,
        /// The OS error.
        message: String,
    },
}

/// At most this many subdirectories are returned from one listing.
pub(crate) const MAX_ENTRIES: usize = 2000;

/// The canonical roots, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    roots: Vec<(String, PathBuf)>,
}

/// A checked listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The canonical directory.
    pub path: PathBuf,
    /// Name of the root it is in.
    pub root_name: String,
    /// Parent directory if it is still inside the root.
    pub parent: Option<PathBuf>,
    /// Subdirectory names, sorted case-insensitively.
    pub dirs: Vec<String>,
    /// Some entries were left out (over [`MAX_ENTRIES`]).
    pub truncated: bool,
}

impl Roots {
    /// Resolves the configured roots; roots that do not exist are skipped with a warning.
    pub(crate) fn new(config: &[RootConfig]) -> Self {
        let roots = config
            .iter()
            .filter_map(|r| match r.path.canonicalize() {
                Ok(p) => Some((r.name.clone(), p)),
                Err(err) => {
                    tracing::warn!(root = %r.path.display(), error = %err, "root skipped");
                    None
                }
            })
            .collect();
        Self { roots }
    }

    /// `(name, canonical path)` of each root.
    pub(crate) fn list(&self) -> &[(String, PathBuf)] {
        &self.roots
    }

    /// Canonicalises `path` and returns it with its root's name and path, if it is inside one.
    pub(crate) fn resolve(&self, path: &str) -> Result<(PathBuf, &str, &Path), Error> {
        let raw = Path::new(path);
        if !raw.is_absolute() {
            return Err(Error::NotAbsolute(path.to_owned()));
        }
        let canonical = raw
            .canonicalize()
            .map_err(|_| Error::Missing(path.to_owned()))?;
        if !canonical.is_dir() {
            return Err(Error::NotADirectory(path.to_owned()));
        }
        let (name, root) = self
            .containing(&canonical)
            .ok_or_else(|| Error::OutsideRoots(path.to_owned()))?;
        Ok((canonical, name, root))
    }

    fn containing(&self, canonical: &Path) -> Option<(&str, &Path)> {
        // The longest matching root wins when roots nest.
        self.roots
            .iter()
            .filter(|(_, root)| canonical.starts_with(root))
            .max_by_key(|(_, root)| root.as_os_str().len())
            .map(|(n, r)| (n.as_str(), r.as_path()))
    }

    /// Lists the subdirectories of `path` that stay inside the roots.
    pub(crate) fn list_dir(&self, path: &str, show_hidden: bool) -> Result<Listing, Error> {
        let (dir, root_name, root) = self.resolve(path)?;
        let parent = (dir != root)
            .then(|| dir.parent().map(Path::to_owned))
            .flatten();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::Unreadable {
            path: dir.display().to_string(),
            message: e.kind().to_string(),
        })?;
        let mut dirs = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !show_hidden && name.starts_with('.') {
                continue;
            }
            // Follow symlinks, then re-check the target against the roots.
            let Ok(target) = entry.path().canonicalize() else {
                continue;
            };
            if target.is_dir() && self.containing(&target).is_some() {
                dirs.push(name);
            }
        }
        dirs.sort_by_key(|n| n.to_lowercase());
        let truncated = dirs.len() > MAX_ENTRIES;
        dirs.truncate(MAX_ENTRIES);
        Ok(Listing {
            root_name: root_name.to_owned(),
            path: dir,
            parent,
            dirs,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Roots) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        std::fs::create_dir_all(root.join("A")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::write(root.join("file.txt"), "x").unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("b"), root.join("link-b")).unwrap();
        let roots = Roots::new(&[RootConfig {
            name: "r".into(),
            path: root,
        }]);
        (tmp, roots)
    }

    #[test]
    fn lists_only_directories_inside_the_roots() {
        let (tmp, roots) = setup();
        let root = tmp.path().join("root").canonicalize().unwrap();
        let l = roots.list_dir(root.to_str().unwrap(), false).unwrap();
        assert_eq!(l.dirs, vec!["A", "b", "link-b"]);
        assert_eq!(l.parent, None);
        assert_eq!(l.root_name, "r");
        let l = roots.list_dir(root.to_str().unwrap(), true).unwrap();
        assert!(l.dirs.contains(&".hidden".to_owned()));
        let inner = roots
            .list_dir(root.join("b").to_str().unwrap(), false)
            .unwrap();
        assert_eq!(inner.parent, Some(root));
    }

    #[test]
    fn escapes_are_refused() {
        let (tmp, roots) = setup();
        let root = tmp.path().join("root");
        let dotdot = format!("{}/b/../..", root.display());
        assert!(matches!(
            roots.list_dir(&dotdot, false),
            Err(Error::OutsideRoots(_))
        ));
        let via_link = format!("{}/escape", root.display());
        assert!(matches!(
            roots.list_dir(&via_link, false),
            Err(Error::OutsideRoots(_))
        ));
        assert!(matches!(
            roots.list_dir("relative/path", false),
            Err(Error::NotAbsolute(_))
        ));
        let missing = format!("{}/nope", root.display());
        assert!(matches!(
            roots.list_dir(&missing, false),
            Err(Error::Missing(_))
        ));
        let file = format!("{}/file.txt", root.display());
        assert!(matches!(
            roots.list_dir(&file, false),
            Err(Error::NotADirectory(_))
        ));
    }
}
