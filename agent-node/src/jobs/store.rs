//! A job's folder under `<state_dir>/jobs/<id>/`: what survives a node restart.
//!
//! - `job.json`: [`JobMeta`], written once when the job starts (replaced atomically);
//! - `stdout.jsonl`, `stderr.log`, `last_message.md`: Codex's own output (Codex writes them
//!   directly, so they keep growing while the node is away);
//! - `events.jsonl`: the job's event log, one `JobEvent` per line (protobuf, base64) without its
//!   `seq`: an event's seq is the byte offset just past its line, so it is stable across
//!   restarts and needs no counter;
//! - `acked`: the highest seq the center acked (decimal), replaced atomically;
//! - `cancelled`: present once a cancel was asked (so a restarted node still reports CANCELLED).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use prost::Message as _;
use proto::v1;
use serde::{Deserialize, Serialize};

/// Why a job folder could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a job record: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// What the node must remember about a job to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobMeta {
    pub(crate) job_id: String,
    pub(crate) cwd: PathBuf,
    /// `exec`, `resume` or `review`.
    pub(crate) kind: String,
    pub(crate) pid: u32,
    /// The process's start time (clock ticks after boot, `/proc/<pid>/stat` field 22): a pid
    /// with another start time is another process.
    pub(crate) proc_start: u64,
    pub(crate) started_unix_ms: i64,
    /// As shown to people (prompt shortened).
    pub(crate) command_line: String,
    pub(crate) artifact_extensions: Vec<String>,
    pub(crate) artifact_max_bytes: u64,
}

/// The folder of one job.
#[derive(Debug, Clone)]
pub(crate) struct JobDir {
    pub(crate) path: PathBuf,
}

impl JobDir {
    pub(crate) fn new(jobs_root: &Path, job_id: &str) -> Self {
        Self {
            path: jobs_root.join(job_id),
        }
    }

    pub(crate) fn meta_path(&self) -> PathBuf {
        self.path.join("job.json")
    }
    pub(crate) fn stdout(&self) -> PathBuf {
        self.path.join("stdout.jsonl")
    }
    pub(crate) fn stderr(&self) -> PathBuf {
        self.path.join("stderr.log")
    }
    pub(crate) fn last_message(&self) -> PathBuf {
        self.path.join("last_message.md")
    }
    pub(crate) fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    fn acked_path(&self) -> PathBuf {
        self.path.join("acked")
    }
    fn cancelled_path(&self) -> PathBuf {
        self.path.join("cancelled")
    }

    pub(crate) fn create(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.path).map_err(io("create", &self.path))
    }

    pub(crate) fn write_meta(&self, meta: &JobMeta) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(meta).map_err(|source| Error::Corrupt {
            path: self.meta_path(),
            source,
        })?;
        write_atomic(&self.meta_path(), &json)
    }

    pub(crate) fn read_meta(&self) -> Result<JobMeta, Error> {
        let path = self.meta_path();
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt { path, source })
    }

    pub(crate) fn read_acked(&self) -> u64 {
        std::fs::read_to_string(self.acked_path())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn write_acked(&self, seq: u64) -> Result<(), Error> {
        write_atomic(&self.acked_path(), seq.to_string().as_bytes())
    }

    pub(crate) fn mark_cancelled(&self) -> Result<(), Error> {
        let path = self.cancelled_path();
        std::fs::write(&path, b"").map_err(io("write", &path))
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled_path().exists()
    }

    /// The last `max` bytes of `stderr.log`, lossily decoded, from a line start if possible.
    pub(crate) fn stderr_tail(&self, max: u64) -> String {
        tail_of(&self.stderr(), max)
    }

    /// What `-o` wrote, if anything.
    pub(crate) fn last_message_text(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.last_message()).ok()?;
        let text = text.trim_end();
        (!text.trim().is_empty()).then(|| text.to_owned())
    }
}

/// Appends `event` (its `seq` is ignored) to the log at `path`; returns its seq.
pub(crate) fn append_event(path: &Path, event: &v1::JobEvent) -> Result<u64, Error> {
    let mut line = base64::engine::general_purpose::STANDARD.encode(
        v1::JobEvent {
            seq: 0,
            ..event.clone()
        }
        .encode_to_vec(),
    );
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("open", path))?;
    f.write_all(line.as_bytes()).map_err(io("write", path))?;
    if matches!(event.kind, Some(v1::job_event::Kind::Finished(_))) {
        f.sync_all().map_err(io("sync", path))?;
    }
    let end = f.metadata().map_err(io("inspect", path))?.len();
    Ok(end)
}

/// The events of the log at `path` whose seq is above `after`, with their seqs. A torn last
/// line (a crash mid-write) and undecodable lines are skipped.
pub(crate) fn read_events(path: &Path, after: u64) -> Vec<v1::JobEvent> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut start = 0usize;
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        let end = (i + 1) as u64;
        let line = &bytes[start..i];
        start = i + 1;
        if end <= after {
            continue;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(line)
            .ok()
            .and_then(|raw| v1::JobEvent::decode(raw.as_slice()).ok());
        if let Some(mut ev) = decoded {
            ev.seq = end;
            out.push(ev);
        }
    }
    out
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("replace", path))
}

fn tail_of(path: &Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(max);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let text = match (from > 0, text.find('\n')) {
        (true, Some(i)) if i + 1 < text.len() => text[i + 1..].to_owned(),
        _ => text,
    };
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(line: &str) -> v1::JobEvent {
        v1::JobEvent {
            job_id: "j".into(),
            seq: 99,
            timestamp_ms: 5,
            kind: Some(v1::job_event::Kind::Activity(v1::JobActivity {
                line: line.into(),
            })),
        }
    }

    #[test]
    fn seqs_are_offsets_and_survive_rereading() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        let a = append_event(&log, &activity("one")).unwrap();
        let b = append_event(&log, &activity("two")).unwrap();
        assert!(a < b);
        let all = read_events(&log, 0);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(all[1].timestamp_ms, 5);
        let rest = read_events(&log, a);
        assert_eq!(rest.len(), 1);
        assert!(matches!(&rest[0].kind, Some(v1::job_event::Kind::Activity(x)) if x.line == "two"));
        // A torn line at the end is not an event.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"AAAB")
            .unwrap();
        assert_eq!(read_events(&log, 0).len(), 2);
    }

    #[test]
    fn meta_acks_and_tails_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let dir = JobDir::new(root.path(), "j1");
        dir.create().unwrap();
        let meta = JobMeta {
            job_id: "j1".into(),
            cwd: "/w".into(),
            kind: "exec".into(),
            pid: 42,
            proc_start: 7,
            started_unix_ms: 1,
            command_line: "codex exec".into(),
            artifact_extensions: vec!["png".into()],
            artifact_max_bytes: 10,
        };
        dir.write_meta(&meta).unwrap();
        assert_eq!(dir.read_meta().unwrap(), meta);
        assert_eq!(dir.read_acked(), 0);
        dir.write_acked(123).unwrap();
        assert_eq!(dir.read_acked(), 123);
        assert!(!dir.is_cancelled());
        dir.mark_cancelled().unwrap();
        assert!(dir.is_cancelled());
        std::fs::write(dir.stderr(), "first\nsecond\nthird\n").unwrap();
        assert_eq!(dir.stderr_tail(1000), "first\nsecond\nthird");
        assert_eq!(dir.stderr_tail(8), "third");
        assert_eq!(dir.last_message_text(), None);
        std::fs::write(dir.last_message(), "answer\n").unwrap();
        assert_eq!(dir.last_message_text().as_deref(), Some("answer"));
    }
}
