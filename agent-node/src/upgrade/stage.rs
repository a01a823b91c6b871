//! The file side of an upgrade: receiving the new binary next to the executable it replaces,
//! checking it, and renaming it into place. Blocking file I/O only (the caller runs it off the
//! async threads); no process is started here.
//!
//! The upload lives in `<exe dir>/.agent-node.upgrade-<upload id>`: in the same folder, so the
//! final rename is atomic (same filesystem) and anything that starts the executable sees either
//! the old file or the whole new one. Nothing about an upload is kept in memory — the temp file
//! is the state — so a node that restarts mid-upload leaves only a stale file, removed by the next
//! upload.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

/// Temp files of uploads start with this.
const PREFIX: &str = ".agent-node.upgrade-";
/// The largest binary accepted (a debug build is ~50 MB, a release build ~15 MB).
pub(crate) const MAX_SIZE: u64 = 512 * 1024 * 1024;
/// Another upload's temp file written to this recently means that upload is still going.
const IN_PROGRESS: Duration = Duration::from_secs(120);

/// Why an upload or install failed; each message is the whole answer the user sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The executable's folder cannot be written by the node's user.
    #[error(
        "cannot write to {} ({source}): the node's user must be able to write the folder of its executable; replace the binary by hand instead",
        dir.display()
    )]
    NotWritable {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another upload to this node is running.
    #[error("another upgrade of this node is in progress; try again in a few minutes")]
    InProgress,
    /// A chunk came for an upload the node does not have (it restarted, or the upload failed).
    #[error("no upload {0} is in progress on this node; start the upgrade again")]
    NoUpload(String),
    /// A chunk came out of order.
    #[error("upgrade chunk out of order: expected offset {expected}, got {got}; start again")]
    OutOfOrder {
        /// Bytes received so far.
        expected: u64,
        /// The chunk's offset.
        got: u64,
    },
    /// The whole file did not arrive.
    #[error(
        "the new binary arrived incomplete ({got} of {want} bytes); nothing was replaced, the node keeps running its current version"
    )]
    SizeMismatch {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// The file arrived, but not as sent.
    #[error(
        "the new binary arrived corrupted (SHA-256 {got:.12}… instead of {want:.12}…); nothing was replaced, the node keeps running its current version"
    )]
    HashMismatch {
        /// What arrived.
        got: String,
        /// What the center sent.
        want: String,
    },
    /// Reading or writing the files failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Uploads that replace the executable `exe`.
pub(crate) struct Staging {
    exe: PathBuf,
}

impl Staging {
    /// Uploads for the executable at `exe`.
    pub(crate) fn new(exe: &Path) -> Self {
        Self {
            exe: exe.to_owned(),
        }
    }

    fn dir(&self) -> &Path {
        self.exe.parent().unwrap_or(Path::new("/"))
    }

    /// Where upload `upload_id` is received.
    pub(crate) fn temp(&self, upload_id: &str) -> PathBuf {
        self.dir().join(format!("{PREFIX}{upload_id}"))
    }

    /// Writes one chunk. The chunk at offset 0 starts the upload (and removes what earlier
    /// uploads left behind); every other chunk must continue exactly where the last one ended.
    pub(crate) fn write(
        &self,
        upload_id: &str,
        offset: u64,
        data: &[u8],
        total: u64,
    ) -> Result<(), Error> {
        if upload_id.is_empty()
            || upload_id.len() > 64
            || !upload_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::BadRequest(format!(
                "{upload_id:?} is not an upload id (1-64 of A-Z, a-z, 0-9, -)"
            )));
        }
        if total == 0 || total > MAX_SIZE {
            return Err(Error::BadRequest(format!(
                "a binary of {total} bytes is not accepted (at most {MAX_SIZE})"
            )));
        }
        if offset.saturating_add(data.len() as u64) > total {
            return Err(Error::BadRequest(format!(
                "chunk at {offset} (+{}) runs past the announced size {total}",
                data.len()
            )));
        }
        let temp = self.temp(upload_id);
        let mut file = if offset == 0 {
            self.sweep(upload_id)?;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)
                .map_err(|source| Error::NotWritable {
                    dir: self.dir().to_owned(),
                    source,
                })?
        } else {
            let file = match OpenOptions::new().append(true).open(&temp) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::NoUpload(upload_id.to_owned()));
                }
                Err(source) => return Err(io_err("opening", &temp, source)),
            };
            let have = match file.metadata() {
                Ok(m) => m.len(),
                Err(e) => return Err(self.abandon(&temp, io_err("reading", &temp, e))),
            };
            if have != offset {
                return Err(self.abandon(
                    &temp,
                    Error::OutOfOrder {
                        expected: have,
                        got: offset,
                    },
                ));
            }
            file
        };
        file.write_all(data)
            .map_err(|e| self.abandon(&temp, io_err("writing", &temp, e)))
    }

    /// Removes a broken upload (a full disk, a chunk out of order): nothing of it can be used,
    /// and up to [`MAX_SIZE`] bytes should not wait next to the executable for the next sweep.
    fn abandon(&self, temp: &Path, err: Error) -> Error {
        let _ = fs::remove_file(temp);
        err
    }

    /// Removes what other uploads left behind; refuses while one of them is still being written.
    fn sweep(&self, keep: &str) -> Result<(), Error> {
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return Ok(());
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if id == keep {
                continue;
            }
            let fresh = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age < IN_PROGRESS);
            if fresh {
                return Err(Error::InProgress);
            }
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// Checks that upload `upload_id` is whole (`total` bytes with SHA-256 `sha256`) and makes it
    /// executable like the current binary. On a mismatch the upload is removed.
    pub(crate) fn verify(
        &self,
        upload_id: &str,
        total: u64,
        sha256: &str,
    ) -> Result<PathBuf, Error> {
        let temp = self.temp(upload_id);
        let (size, got) = match shared::digest::sha256_file(&temp) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoUpload(upload_id.to_owned()));
            }
            Err(e) => return Err(io_err("reading", &temp, e)),
        };
        let want = sha256.to_ascii_lowercase();
        let wrong = if size != total {
            Some(Error::SizeMismatch {
                got: size,
                want: total,
            })
        } else if got != want {
            Some(Error::HashMismatch { got, want })
        } else {
            None
        };
        if let Some(err) = wrong {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        // The same permission bits as the binary it replaces (at least owner read/execute).
        let mode = fs::metadata(&self.exe)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755)
            | 0o500;
        fs::set_permissions(&temp, fs::Permissions::from_mode(mode))
            .map_err(|e| self.abandon(&temp, io_err("making executable", &temp, e)))?;
        Ok(temp)
    }

    /// Renames the verified upload over the executable (atomic), durably.
    pub(crate) fn install(&self, temp: &Path) -> Result<(), Error> {
        File::open(temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| self.abandon(temp, io_err("syncing", temp, e)))?;
        fs::rename(temp, &self.exe)
            .map_err(|e| self.abandon(temp, io_err("replacing", &self.exe, e)))?;
        // The rename itself survives a crash only once the folder is synced.
        if let Ok(dir) = File::open(self.dir()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Forgets upload `upload_id` (it failed a check after arriving whole).
    pub(crate) fn discard(&self, upload_id: &str) {
        let _ = fs::remove_file(self.temp(upload_id));
    }
}

fn io_err(what: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, Staging) {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("agent-node");
        fs::write(&exe, b"old binary").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o750)).unwrap();
        let staging = Staging::new(&exe);
        (dir, exe, staging)
    }

    #[test]
    fn upgrade_chunks_in_order_verify_and_replace_the_executable() {
        let (_dir, exe, s) = setup();
        let new = b"the new binary, in three chunks".to_vec();
        let sha = shared::digest::sha256_hex(&new);
        let total = new.len() as u64;
        s.write("u-1", 0, &new[..10], total).unwrap();
        s.write("u-1", 10, &new[10..20], total).unwrap();
        s.write("u-1", 20, &new[20..], total).unwrap();
        let temp = s.verify("u-1", total, &sha.to_uppercase()).unwrap();
        assert_eq!(
            fs::metadata(&temp).unwrap().permissions().mode() & 0o777,
            0o750
        );
        s.install(&temp).unwrap();
        assert_eq!(fs::read(&exe).unwrap(), new);
        assert!(!temp.exists());
    }

    #[test]
    fn upgrade_refuses_a_corrupted_or_short_file_and_keeps_the_old_one() {
        let (_dir, exe, s) = setup();
        let new = b"0123456789".to_vec();
        let sha = shared::digest::sha256_hex(b"0123456789");
        s.write("u-2", 0, b"01234X6789", 10).unwrap();
        let err = s.verify("u-2", 10, &sha).unwrap_err();
        assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("corrupted"), "{err}");
        assert!(!s.temp("u-2").exists(), "a bad upload is removed");
        s.write("u-3", 0, &new[..4], 10).unwrap();
        let err = s.verify("u-3", 10, &sha).unwrap_err();
        assert!(
            err.to_string().contains("incomplete (4 of 10 bytes)"),
            "{err}"
        );
        assert_eq!(fs::read(&exe).unwrap(), b"old binary");
    }

    #[test]
    fn upgrade_chunks_out_of_order_or_unknown_or_too_large_are_refused() {
        let (_dir, _exe, s) = setup();
        s.write("u-4", 0, b"abc", 10).unwrap();
        let err = s.write("u-4", 5, b"xyz", 10).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfOrder {
                    expected: 3,
                    got: 5
                }
            ),
            "{err}"
        );
        assert!(!s.temp("u-4").exists(), "a broken upload is removed");
        assert!(matches!(
            s.write("nope", 3, b"x", 10).unwrap_err(),
            Error::NoUpload(_)
        ));
        assert!(matches!(
            s.write("u-4", 3, b"0123456789", 10).unwrap_err(),
            Error::BadRequest(_)
        ));
        assert!(matches!(
            s.write("../x", 0, b"a", 1).unwrap_err(),
            Error::BadRequest(_)
        ));
        assert!(matches!(
            s.write("u-5", 0, b"", MAX_SIZE + 1).unwrap_err(),
            Error::BadRequest(_)
        ));
    }

    #[test]
    fn upgrade_waits_for_a_running_upload_and_sweeps_stale_ones() {
        let (dir, _exe, s) = setup();
        s.write("first", 0, b"abc", 10).unwrap();
        assert!(matches!(
            s.write("second", 0, b"abc", 10).unwrap_err(),
            Error::InProgress
        ));
        // An old leftover is removed by the next upload.
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(s.temp("first"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        s.write("second", 0, b"abc", 10).unwrap();
        assert!(!s.temp("first").exists());
        assert!(dir.path().join(format!("{PREFIX}second")).exists());
    }

    #[test]
    fn upgrade_into_a_folder_the_node_cannot_write_says_so() {
        // A folder that cannot take the file even for root (the tests run as root in CI, which
        // ignores permission bits): the executable's "folder" is a regular file.
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        fs::write(&not_a_dir, b"x").unwrap();
        let s = Staging::new(&not_a_dir.join("agent-node"));
        let err = s.write("u-6", 0, b"abc", 3).unwrap_err();
        assert!(err.to_string().contains("cannot write to"), "{err}");
    }
}
