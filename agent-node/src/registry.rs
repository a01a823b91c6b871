//! The node's persisted table of the windows it created, so it can adopt them after a restart
//! and never touch windows it did not create.
//!
//! Stored as one JSON file in the state dir, replaced atomically (write to a temp file, rename).
//! It also keeps the center's acks per session: after a node restart, a session the center does
//! not name in its `Hello` is replayed from here. And it keeps the rollouts a window has left
//! (Codex moved it to a new file with `/new`, `/fork`, ...) with the sequences they cover, so a
//! replay after a restart still reads unacked events from the right file (see
//! [`crate::transcript::chain`]). They live in their own table, not in [`SessionRecord`], so files
//! written before they existed load unchanged.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use shared::ids::{SessionId, ThreadId};

use crate::transcript::chain::{Chain, Segment};

/// Session ids of windows adopted from the desk start with this (the node's own start with `s`).
pub(crate) const DESK_PREFIX: char = 'd';

/// Whether `session_id` names a window started at the desk.
pub(crate) fn is_desk_session(session_id: &str) -> bool {
    session_id.starts_with(DESK_PREFIX)
}

/// One window the node created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// The node's id for it (stable for the window's life).
    pub(crate) session_id: SessionId,
    /// tmux window id `@N`.
    pub(crate) window_id: String,
    /// tmux pane id `%N`.
    pub(crate) pane_id: String,
    /// Window name.
    pub(crate) window_name: String,
    /// Canonical working directory.
    pub(crate) cwd: PathBuf,
    /// Unix ms when created.
    pub(crate) created_unix_ms: i64,
    /// Codex thread id, once known.
    #[serde(default)]
    pub(crate) thread_id: Option<ThreadId>,
    /// The transcript file, once known.
    #[serde(default)]
    pub(crate) rollout: Option<PathBuf>,
    /// Where event delivery starts when the transcript was bound (0 for a fresh session, the
    /// file's length at resume time for a resumed one).
    #[serde(default)]
    pub(crate) start_offset: u64,
    /// Highest sequence the center acked.
    #[serde(default)]
    pub(crate) acked_seq: u64,
    /// The create request's idempotency key.
    #[serde(default)]
    pub(crate) idempotency_key: Option<String>,
    /// The window is gone (exited or killed); kept for idempotency and late delivery.
    #[serde(default)]
    pub(crate) exited: bool,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O failed.
    #[error("window registry {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("window registry {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

/// A rollout a window wrote before Codex moved it to another file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EarlierRollout {
    /// The file.
    pub(crate) path: PathBuf,
    /// Its Codex thread id.
    pub(crate) thread_id: ThreadId,
    /// Sequence of its byte 0.
    pub(crate) base: u64,
    /// Sequence where the next file starts (this one's base plus its length when left).
    pub(crate) end: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    sessions: BTreeMap<SessionId, SessionRecord>,
    /// Session id → the rollouts it left, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    earlier_rollouts: BTreeMap<SessionId, Vec<EarlierRollout>>,
}

/// The table plus its file.
#[derive(Debug)]
pub(crate) struct Registry {
    path: PathBuf,
    sessions: BTreeMap<SessionId, SessionRecord>,
    earlier: BTreeMap<SessionId, Vec<EarlierRollout>>,
}

impl Registry {
    /// Loads `state_dir/windows.json`, or starts empty.
    pub(crate) fn load(state_dir: &Path) -> Result<Self, Error> {
        let path = state_dir.join("windows.json");
        std::fs::create_dir_all(state_dir).map_err(|source| Error::Io {
            path: state_dir.to_owned(),
            source,
        })?;
        let file = match read_file(&path) {
            Ok(Some(file)) => Some(file),
            // Missing next to a backup is damage too (a fresh node has neither).
            Ok(None) => read_file(&path.with_extension("json.bak")).unwrap_or(None),
            Err(err) => {
                // The copy kept by the last save: a registry damaged on disk costs at most the
                // last change, not every window.
                let backup = path.with_extension("json.bak");
                match read_file(&backup) {
                    Ok(Some(file)) => {
                        tracing::warn!(path = %path.display(), error = %err, "the window registry is unreadable; using its backup");
                        Some(file)
                    }
                    _ => return Err(err),
                }
            }
        }
        .unwrap_or_default();
        Ok(Self {
            path,
            sessions: file.sessions,
            earlier: file.earlier_rollouts,
        })
    }

    /// All records.
    pub(crate) fn all(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// One record.
    pub(crate) fn get(&self, session_id: &str) -> Option<&SessionRecord> {
        self.sessions.get(session_id)
    }

    /// Inserts or replaces a record (call [`Registry::save`] to persist).
    pub(crate) fn put(&mut self, record: SessionRecord) {
        self.sessions.insert(record.session_id.clone(), record);
    }

    /// Changes one record in place; returns false if it does not exist.
    pub(crate) fn update(&mut self, session_id: &str, f: impl FnOnce(&mut SessionRecord)) -> bool {
        match self.sessions.get_mut(session_id) {
            Some(r) => {
                f(r);
                true
            }
            None => false,
        }
    }

    /// Drops exited sessions created before `cutoff_unix_ms`.
    pub(crate) fn prune_exited(&mut self, cutoff_unix_ms: i64) {
        self.sessions
            .retain(|_, r| !(r.exited && r.created_unix_ms < cutoff_unix_ms));
        let sessions = &self.sessions;
        self.earlier.retain(|id, _| sessions.contains_key(id));
    }

    /// Every rollout of a session with its sequences: the files it left, then its current one.
    pub(crate) fn chain(&self, session_id: &str) -> Chain {
        let mut segments: Vec<Segment> = self
            .earlier
            .get(session_id)
            .into_iter()
            .flatten()
            .map(|e| Segment {
                path: e.path.clone(),
                thread_id: e.thread_id.clone(),
                base: e.base,
                end: Some(e.end),
            })
            .collect();
        if let Some(r) = self.sessions.get(session_id)
            && let Some(path) = &r.rollout
        {
            segments.push(Segment {
                path: path.clone(),
                thread_id: r.thread_id.clone().unwrap_or_default(),
                base: segments.last().and_then(|s| s.end).unwrap_or(0),
                end: None,
            });
        }
        Chain::new(segments)
    }

    /// Codex moved a session to the rollout `path` of thread `thread_id`, after writing
    /// `old_len` bytes to its current one: the current one is kept as an earlier rollout and
    /// the new one starts at the sequence where it ended. Returns the new file's base, or
    /// `None` if the session is unknown or has no rollout yet.
    pub(crate) fn switch_rollout(
        &mut self,
        session_id: &str,
        path: PathBuf,
        thread_id: ThreadId,
        old_len: u64,
    ) -> Option<u64> {
        let mut chain = self.chain(session_id);
        let current = chain.segments().last()?.clone();
        let base = chain.switch(path.clone(), thread_id.clone(), current.base + old_len);
        let record = self.sessions.get_mut(session_id)?;
        record.rollout = Some(path);
        record.thread_id = Some(thread_id);
        self.earlier
            .entry(SessionId::new(session_id))
            .or_default()
            .push(EarlierRollout {
                path: current.path,
                thread_id: current.thread_id,
                base: current.base,
                end: base,
            });
        Some(base)
    }

    /// Has any session, now or earlier, had the thread `thread_id`?
    pub(crate) fn knows_thread(&self, thread_id: &str) -> bool {
        self.sessions
            .values()
            .any(|r| r.thread_id.as_deref() == Some(thread_id))
            || self
                .earlier
                .values()
                .flatten()
                .any(|e| e.thread_id == thread_id)
    }

    /// Writes the file atomically.
    pub(crate) fn save(&self) -> Result<(), Error> {
        let data = FileFormat {
            version: 1,
            sessions: self.sessions.clone(),
            earlier_rollouts: self.earlier.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&data).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        {
            // Owner-only from its first byte, and on disk before it replaces the old one.
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        // The file being replaced stays as the backup `load` falls back to.
        let backup = self.path.with_extension("json.bak");
        let _ = std::fs::remove_file(&backup);
        let _ = std::fs::hard_link(&self.path, &backup);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        // The rename itself is on disk only once the directory is.
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The registry file at `path`: `None` when there is none, an error when it cannot be read or
/// parsed.
fn read_file(path: &Path) -> Result<Option<FileFormat>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<FileFormat>(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            session_id: id.into(),
            window_id: "@1".into(),
            pane_id: "%1".into(),
            window_name: "w".into(),
            cwd: "/tmp".into(),
            created_unix_ms: 5,
            thread_id: None,
            rollout: None,
            start_offset: 0,
            acked_seq: 0,
            idempotency_key: Some("k".into()),
            exited: false,
        }
    }

    #[test]
    fn desk_sessions_are_told_apart_by_their_id() {
        assert!(is_desk_session("d0123456789abcdef"));
        assert!(!is_desk_session("s0123456789abcdef"));
    }

    #[test]
    fn survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::load(dir.path()).unwrap();
        reg.put(record("s1"));
        assert!(reg.update("s1", |r| r.acked_seq = 42));
        reg.save().unwrap();
        let again = Registry::load(dir.path()).unwrap();
        assert_eq!(again.get("s1").unwrap().acked_seq, 42);
        std::fs::write(dir.path().join("windows.json"), "{").unwrap();
        assert!(matches!(
            Registry::load(dir.path()),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_damaged_registry_falls_back_to_the_copy_the_last_save_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::load(dir.path()).unwrap();
        reg.put(record("s1"));
        reg.save().unwrap();
        reg.put(record("s2"));
        reg.save().unwrap();
        // Torn on disk: the previous save's state comes back, not an empty node.
        std::fs::write(dir.path().join("windows.json"), "{\"vers").unwrap();
        let again = Registry::load(dir.path()).unwrap();
        assert!(again.get("s1").is_some());
        // Gone, next to its backup: the same.
        std::fs::remove_file(dir.path().join("windows.json")).unwrap();
        assert!(Registry::load(dir.path()).unwrap().get("s1").is_some());
    }

    #[test]
    fn a_switch_keeps_sequences_growing_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::load(dir.path()).unwrap();
        reg.put(record("s1"));
        // No rollout yet: nothing to switch from.
        assert_eq!(reg.switch_rollout("s1", "/b".into(), "tb".into(), 9), None);
        reg.update("s1", |r| {
            r.rollout = Some("/a".into());
            r.thread_id = Some("ta".into());
        });
        assert_eq!(
            reg.switch_rollout("s1", "/b".into(), "tb".into(), 100),
            Some(100)
        );
        assert_eq!(
            reg.switch_rollout("s1", "/c".into(), "tc".into(), 40),
            Some(140)
        );
        reg.save().unwrap();
        let again = Registry::load(dir.path()).unwrap();
        let chain = again.chain("s1");
        let got: Vec<(&str, u64, Option<u64>)> = chain
            .segments()
            .iter()
            .map(|s| (s.thread_id.as_str(), s.base, s.end))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ta", 0, Some(100)),
                ("tb", 100, Some(140)),
                ("tc", 140, None)
            ]
        );
        assert_eq!(again.get("s1").unwrap().thread_id.as_deref(), Some("tc"));
        assert!(again.knows_thread("ta") && again.knows_thread("tc"));
        assert!(!again.knows_thread("td"));
    }

    #[test]
    fn files_without_earlier_rollouts_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"version":1,"sessions":{"s1":{"session_id":"s1","window_id":"@1","pane_id":"%1",
            "window_name":"w","cwd":"/tmp","created_unix_ms":5,"rollout":"/a","thread_id":"ta"}}}"#;
        std::fs::write(dir.path().join("windows.json"), old).unwrap();
        let reg = Registry::load(dir.path()).unwrap();
        let chain = reg.chain("s1");
        assert_eq!(chain.segments().len(), 1);
        assert_eq!(
            (chain.segments()[0].base, chain.segments()[0].end),
            (0, None)
        );
        // Nothing new is written for a session that never switched.
        reg.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join("windows.json")).unwrap();
        assert!(!text.contains("earlier_rollouts"));
    }
}
