//! The node's persisted table of the windows it created, so it can adopt them after a restart
//! and never touch windows it did not create.
//!
//! Stored as one JSON file in the state dir, replaced atomically (write to a temp file, rename).
//! It also keeps the center's acks per session: after a node restart, a session the center does
//! not name in its `Hello` is replayed from here.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// One window the node created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The node's id for it (stable for the window's life).
    pub session_id: String,
    /// tmux window id `@N`.
    pub window_id: String,
    /// tmux pane id `%N`.
    pub pane_id: String,
    /// Window name.
    pub window_name: String,
    /// Canonical working directory.
    pub cwd: PathBuf,
    /// Unix ms when created.
    pub created_unix_ms: i64,
    /// Codex thread id, once known.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// The transcript file, once known.
    #[serde(default)]
    pub rollout: Option<PathBuf>,
    /// Where event delivery starts when the transcript was bound (0 for a fresh session, the
    /// file's length at resume time for a resumed one).
    #[serde(default)]
    pub start_offset: u64,
    /// Highest sequence the center acked.
    #[serde(default)]
    pub acked_seq: u64,
    /// The create request's idempotency key.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The window is gone (exited or killed); kept for idempotency and late delivery.
    #[serde(default)]
    pub exited: bool,
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    sessions: BTreeMap<String, SessionRecord>,
}

/// The table plus its file.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    sessions: BTreeMap<String, SessionRecord>,
}

impl Registry {
    /// Loads `state_dir/windows.json`, or starts empty.
    pub fn load(state_dir: &Path) -> Result<Self, Error> {
        let path = state_dir.join("windows.json");
        std::fs::create_dir_all(state_dir).map_err(|source| Error::Io {
            path: state_dir.to_owned(),
            source,
        })?;
        let sessions = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<FileFormat>(&bytes)
                    .map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
                    .sessions
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(Error::Io { path, source }),
        };
        Ok(Self { path, sessions })
    }

    /// All records.
    pub fn all(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// One record.
    pub fn get(&self, session_id: &str) -> Option<&SessionRecord> {
        self.sessions.get(session_id)
    }

    /// Inserts or replaces a record (call [`Registry::save`] to persist).
    pub fn put(&mut self, record: SessionRecord) {
        self.sessions.insert(record.session_id.clone(), record);
    }

    /// Changes one record in place; returns false if it does not exist.
    pub fn update(&mut self, session_id: &str, f: impl FnOnce(&mut SessionRecord)) -> bool {
        match self.sessions.get_mut(session_id) {
            Some(r) => {
                f(r);
                true
            }
            None => false,
        }
    }

    /// Drops exited sessions created before `cutoff_unix_ms`.
    pub fn prune_exited(&mut self, cutoff_unix_ms: i64) {
        self.sessions
            .retain(|_, r| !(r.exited && r.created_unix_ms < cutoff_unix_ms));
    }

    /// Writes the file atomically.
    pub fn save(&self) -> Result<(), Error> {
        let data = FileFormat {
            version: 1,
            sessions: self.sessions.clone(),
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
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::load(dir.path()).unwrap();
        reg.put(SessionRecord {
            session_id: "s1".into(),
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
        });
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
}
