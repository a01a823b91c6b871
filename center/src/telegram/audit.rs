//! The delivery audit: one JSON line per Bot API call the center made, so "did this answer
//! reach Telegram, when, and what did Telegram say?" can be answered after the fact.
//!
//! It records what was called and how it went, never what was said: message texts and files are
//! represented by their SHA-256 and length only, and error texts are the classified, token-free
//! ones from [`super::api`]. Long polls (getUpdates) are not recorded; they would drown the rest.
//!
//! The file is appended to and rotated to `<path>.1` once it grows past 10 MiB. Lines are small
//! and written under a mutex with a flush each, which is cheap enough to do from async code. A
//! failure to write is logged once and otherwise ignored: the audit never stops delivery.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead as _, BufReader, BufWriter, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The file is rotated to `<path>.1` once it is larger than this.
pub const MAX_AUDIT_BYTES: u64 = 10 << 20;

/// Uploads larger than this are hashed on a blocking thread (SHA-256 of 50 MB takes a while).
const HASH_INLINE_MAX: usize = 1 << 20;

/// Opening or reading the audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, read or created.
    #[error("audit log {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not JSON.
    #[error("audit log {}, line {line}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Cloneable handle on the audit file.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    max_bytes: u64,
    out: Mutex<Writer>,
    warned: AtomicBool,
}

struct Writer {
    file: BufWriter<File>,
    size: u64,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// One line of the audit (see the module docs); `ts_ms` is filled in when it is written.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) ts_ms: u64,
    pub(crate) method: &'static str,
    pub(crate) chat_id: Option<i64>,
    pub(crate) thread_id: Option<i32>,
    pub(crate) message_id: Option<i32>,
    /// The outbox's priority class of a send; `None` for everything else.
    pub(crate) class: Option<&'static str>,
    /// Whether the outbox made the call (paced), or a caller did directly.
    pub(crate) paced: bool,
    /// `ok`, `retry_after` or `error`.
    pub(crate) outcome: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) retry_after_s: Option<f64>,
    pub(crate) payload_sha256: Option<String>,
    pub(crate) bytes: u64,
}

/// SHA-256 and length of what a call sent (or, for a download, received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
}

impl Digest {
    /// The digest of `parts`, concatenated.
    pub(crate) fn of(parts: &[&[u8]]) -> Self {
        let mut h = Hasher::default();
        for p in parts {
            h.update(p);
        }
        h.finish()
    }

    /// The digest of a caption followed by a file, off the async threads if the file is large.
    pub(crate) async fn of_upload(caption: &str, file: &Arc<Vec<u8>>) -> Option<Self> {
        if file.len() <= HASH_INLINE_MAX {
            return Some(Self::of(&[caption.as_bytes(), file]));
        }
        let (caption, file) = (caption.to_owned(), file.clone());
        tokio::task::spawn_blocking(move || Self::of(&[caption.as_bytes(), &file]))
            .await
            .ok()
    }
}

/// A digest computed piece by piece (for downloads, as the chunks arrive).
#[derive(Default)]
pub(crate) struct Hasher {
    sha: Sha256,
    bytes: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.bytes += data.len() as u64;
    }

    pub(crate) fn finish(self) -> Digest {
        let sum = self.sha.finalize();
        let mut hex = String::with_capacity(64);
        for b in sum.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xF)]));
        }
        Digest {
            sha256: hex,
            bytes: self.bytes,
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Audit {
    /// Appends to `path` (created, with its directory, if missing).
    pub fn open(path: &Path) -> Result<Audit, AuditError> {
        Self::open_with_limit(path, MAX_AUDIT_BYTES)
    }

    fn open_with_limit(path: &Path, max_bytes: u64) -> Result<Audit, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = append(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Audit {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                max_bytes,
                out: Mutex::new(Writer {
                    file: BufWriter::new(file),
                    size,
                }),
                warned: AtomicBool::new(false),
            }),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writes one line (stamping `ts_ms` if it is zero). Never fails: errors are logged once.
    pub(crate) fn record(&self, mut entry: Entry) {
        if entry.ts_ms == 0 {
            entry.ts_ms = now_ms();
        }
        let mut line = match serde_json::to_vec(&entry) {
            Ok(l) => l,
            Err(e) => return self.failed(&e),
        };
        line.push(b'\n');
        let mut out = self
            .inner
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if out.size > 0
            && out.size >= self.inner.max_bytes
            && let Err(e) = self.rotate(&mut out)
        {
            self.failed(&e);
        }
        let written = out.file.write_all(&line).and_then(|()| out.file.flush());
        match written {
            Ok(()) => out.size += line.len() as u64,
            Err(e) => self.failed(&e),
        }
    }

    fn rotate(&self, out: &mut Writer) -> std::io::Result<()> {
        out.file.flush()?;
        let path = &self.inner.path;
        std::fs::rename(path, rotated(path))?;
        out.file = BufWriter::new(append(path)?);
        out.size = 0;
        Ok(())
    }

    fn failed(&self, e: &dyn std::fmt::Display) {
        if !self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %self.inner.path.display(),
                error = %e,
                "cannot write the delivery audit; carrying on without (logged once)"
            );
        }
    }
}

/// Opens for appending, creating it owner-only (0600) from its first byte.
fn append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Where `path` goes when it is rotated: `<path>.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every line of the audit at `path`, oldest first: the rotated `<path>.1` (if any), then
/// `path` itself.
pub fn read_all(path: &Path) -> Result<Vec<serde_json::Value>, AuditError> {
    let mut out = Vec::new();
    let old = rotated(path);
    if old.exists() {
        read_into(&old, &mut out)?;
    }
    read_into(path, &mut out)?;
    Ok(out)
}

fn read_into(path: &Path, out: &mut Vec<serde_json::Value>) -> Result<(), AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| AuditError::Parse {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        out.push(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &'static str) -> Entry {
        Entry {
            ts_ms: 0,
            method,
            chat_id: Some(42),
            thread_id: None,
            message_id: Some(7),
            class: Some("final"),
            paced: true,
            outcome: "ok",
            error: None,
            retry_after_s: None,
            payload_sha256: Some(Digest::of(&[b"hi"]).sha256),
            bytes: 2,
        }
    }

    #[test]
    fn writes_one_json_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let audit = Audit::open(&path).unwrap();
        audit.record(entry("sendMessage"));
        audit.record(Entry {
            outcome: "retry_after",
            error: Some("too many requests; retry after 3s".into()),
            retry_after_s: Some(3.0),
            ..entry("editMessageText")
        });
        let lines = read_all(&path).unwrap();
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(l["method"], "sendMessage");
        assert_eq!(l["chat_id"], 42);
        assert!(l["thread_id"].is_null());
        assert_eq!(l["message_id"], 7);
        assert_eq!(l["class"], "final");
        assert_eq!(l["outcome"], "ok");
        assert!(l["error"].is_null());
        assert!(l["retry_after_s"].is_null());
        // echo -n hi | sha256sum
        assert_eq!(
            l["payload_sha256"],
            "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
        );
        assert_eq!(l["bytes"], 2);
        assert!(l["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(lines[1]["outcome"], "retry_after");
        assert_eq!(lines[1]["retry_after_s"], 3.0);
        // Reopening appends.
        drop(audit);
        Audit::open(&path).unwrap().record(entry("deleteMessage"));
        assert_eq!(read_all(&path).unwrap().len(), 3);
    }

    #[test]
    fn rotates_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open_with_limit(&path, 1000).unwrap();
        for _ in 0..30 {
            audit.record(entry("sendMessage"));
        }
        let old = rotated(&path);
        let old_len = std::fs::metadata(&old).unwrap().len();
        let new_len = std::fs::metadata(&path).unwrap().len();
        let line_len = std::fs::read_to_string(&old)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .len() as u64
            + 1;
        // Rotation happens at the first line written past the limit.
        assert!(
            (1000..1000 + line_len).contains(&old_len),
            "{old_len} (lines of {line_len})"
        );
        assert!(new_len <= old_len, "{new_len}");
        // Only one generation is kept; read_all reads both files, oldest first.
        let all = read_all(&path).unwrap();
        assert_eq!(all.len() as u64, (old_len + new_len) / line_len);
        assert!(all.len() < 30);
        assert!(all.iter().all(|l| l["method"] == "sendMessage"));
    }

    #[test]
    fn reading_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"a\":1}\nnot json\n").unwrap();
        let err = read_all(&path).unwrap_err();
        assert!(matches!(err, AuditError::Parse { line: 2, .. }), "{err}");
        assert!(matches!(
            read_all(&dir.path().join("missing")),
            Err(AuditError::Io { .. })
        ));
    }

    #[tokio::test]
    async fn large_uploads_hash_the_same_off_thread() {
        let big = Arc::new(vec![7u8; HASH_INLINE_MAX + 1]);
        let d = Digest::of_upload("cap", &big).await.unwrap();
        assert_eq!(d, Digest::of(&[b"cap", &big]));
        assert_eq!(d.bytes, big.len() as u64 + 3);
    }
}
