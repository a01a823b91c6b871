//! Finding rollouts on disk: by thread id (for resume), by working directory (the resume
//! picker), and reading a rollout's head (its header and first typed message) to bind a window
//! to the file Codex created for it (see `crate::rollout_match`).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use proto::v1::session_event::Kind;
use shared::ids::ThreadId;

use super::parse::{Record, parse_line};

/// Bytes read at most from the start of a rollout to find its header and first message.
const HEAD_LIMIT: u64 = 1 << 20;

/// What the start of a rollout says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Thread id from `session_meta`.
    pub thread_id: ThreadId,
    /// Working directory from `session_meta`.
    pub cwd: String,
    /// When the header was written (Unix ms).
    pub created_ms: i64,
    /// The first message a person typed (harness context excluded), if written yet.
    pub first_user_message: Option<String>,
    /// The thread this one was forked from (`/fork`), if any.
    pub forked_from: Option<String>,
}

/// Reads the header and the first user message (only complete lines are considered).
pub fn read_head(path: &Path) -> std::io::Result<Head> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::new(std::io::Read::take(file, HEAD_LIMIT));
    let mut head = Head::default();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            break;
        }
        match parse_line(line.trim_end()) {
            Ok(Record::Meta {
                thread_id,
                cwd,
                timestamp_ms,
                forked_from,
            }) if head.thread_id.is_empty() => {
                head.thread_id = thread_id.into();
                head.cwd = cwd;
                head.created_ms = timestamp_ms;
                head.forked_from = forked_from;
            }
            Ok(Record::Event {
                kind: Kind::UserMessage(m),
                ..
            }) => {
                head.first_user_message = Some(m.text);
                break;
            }
            _ => {}
        }
    }
    Ok(head)
}

/// Is this the file name of a rollout (`rollout-<time>-<uuid>.jsonl`)?
pub fn is_rollout(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("rollout-") && n.ends_with(".jsonl"))
}

/// Every rollout under `sessions_dir` (`YYYY/MM/DD/rollout-*.jsonl`).
pub fn all_rollouts(sessions_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(sessions_dir.to_owned(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                stack.push((path, depth + 1));
            } else if ft.is_file() && is_rollout(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Is `id` shaped like a Codex thread id (a UUID)? Checked before it goes anywhere near a
/// command line.
pub fn valid_thread_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The rollout of thread `id`.
pub fn find_by_thread_id(sessions_dir: &Path, id: &str) -> Option<PathBuf> {
    if !valid_thread_id(id) {
        return None;
    }
    let suffix = format!("-{}.jsonl", id.to_lowercase());
    all_rollouts(sessions_dir).into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.to_lowercase().ends_with(&suffix))
    })
}

/// A session the user can resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// Codex thread id.
    pub thread_id: String,
    /// Thread title, or the first thing the user typed.
    pub summary: String,
    /// Last write (Unix ms).
    pub updated_unix_ms: i64,
    /// The file.
    pub path: PathBuf,
}

/// Sessions whose recorded cwd is `cwd`, newest first.
pub fn list_resumable(codex_home: &Path, cwd: &Path, limit: usize) -> Vec<Resumable> {
    let titles = thread_titles(&codex_home.join("session_index.jsonl"));
    let cwd = cwd.to_string_lossy();
    let mut found: Vec<Resumable> = all_rollouts(&codex_home.join("sessions"))
        .into_iter()
        .filter_map(|path| {
            let head = read_head(&path).ok()?;
            if head.cwd != cwd || head.thread_id.is_empty() {
                return None;
            }
            // A session nobody typed into has nothing to resume.
            let first = head.first_user_message?;
            let updated_unix_ms = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            let summary = titles
                .get(head.thread_id.as_str())
                .cloned()
                .unwrap_or_else(|| one_line(&first, 80));
            Some(Resumable {
                thread_id: head.thread_id.into_string(),
                summary,
                updated_unix_ms,
                path,
            })
        })
        .collect();
    found.sort_by_key(|r| std::cmp::Reverse(r.updated_unix_ms));
    found.truncate(limit);
    found
}

/// `session_index.jsonl`: the newest title per thread.
fn thread_titles(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let id = v.get("id")?.as_str()?.to_owned();
            let name = v.get("thread_name")?.as_str()?.trim().to_owned();
            (!name.is_empty()).then_some((id, name))
        })
        .collect()
}

/// Transcripts larger than this are read from their last part only for history.
const HISTORY_READ_LIMIT: u64 = 32 << 20;

/// The user and assistant messages of a rollout, oldest first.
pub fn conversation(path: &Path) -> std::io::Result<Vec<proto::v1::HistoryEntry>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(HISTORY_READ_LIMIT);
    file.seek(std::io::SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if start > 0 {
        lines.next(); // a partial line
    }
    Ok(lines
        .filter_map(|line| match parse_line(line).ok()? {
            Record::Event {
                timestamp_ms,
                kind: Kind::UserMessage(m),
            } => Some(proto::v1::HistoryEntry {
                role: "user".into(),
                text: m.text,
                timestamp_ms,
            }),
            Record::Event {
                timestamp_ms,
                kind: Kind::AssistantMessage(m),
            } => Some(proto::v1::HistoryEntry {
                role: "assistant".into(),
                text: m.text,
                timestamp_ms,
            }),
            _ => None,
        })
        .collect())
}

/// The first line of `text`, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_rollout(dir: &Path, id: &str, cwd: &str, user: Option<&str>) -> PathBuf {
        let day = dir.join("sessions/2026/11/21");
        std::fs::create_dir_all(&day).unwrap();
        let path = day.join(format!("rollout-2026-11-21T10-00-00-{id}.jsonl"));
        let mut text = format!(
            r#"{{"timestamp":"2026-11-21T10:00:00Z","type":"session_meta","payload":{{"id":"{id}","cwd":"{cwd}"}}}}"#
        ) + "\n";
        text += r#"{"timestamp":"2026-11-21T10:00:00Z","type":"event_msg","payload":{"type":"item_completed","item":{"type":"UserMessage","content":[{"type":"text","text":"<environment_context>x</environment_context>"}]}}}"#;
        text += "\n";
        if let Some(u) = user {
            text += &format!(
                r#"{{"timestamp":"2026-11-21T10:00:01Z","type":"event_msg","payload":{{"type":"user_message","message":"{u}"}}}}"#
            );
            text += "\n";
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn finds_by_id_and_lists_by_cwd() {
        let home = tempfile::tempdir().unwrap();
        let a = "0199aaaa-0000-7000-8000-000000000001";
        let b = "0199aaaa-0000-7000-8000-000000000002";
        let c = "0199aaaa-0000-7000-8000-000000000003";
        let pa = write_rollout(home.path(), a, "/p", Some("fix the bug"));
        write_rollout(home.path(), b, "/other", Some("x"));
        write_rollout(home.path(), c, "/p", None);
        std::fs::write(
            home.path().join("session_index.jsonl"),
            format!("{{\"id\":\"{a}\",\"thread_name\":\"Bug fix\",\"updated_at\":\"x\"}}\n"),
        )
        .unwrap();
        assert_eq!(
            find_by_thread_id(&home.path().join("sessions"), a),
            Some(pa)
        );
        assert_eq!(
            find_by_thread_id(&home.path().join("sessions"), "../../etc"),
            None
        );
        let list = list_resumable(home.path(), Path::new("/p"), 10);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].thread_id, a);
        assert_eq!(list[0].summary, "Bug fix");
        let conv = conversation(
            &home
                .path()
                .join("sessions/2026/11/21")
                .join(format!("rollout-2026-11-21T10-00-00-{a}.jsonl")),
        )
        .unwrap();
        assert_eq!(conv.len(), 1);
        assert_eq!(
            (conv[0].role.as_str(), conv[0].text.as_str()),
            ("user", "fix the bug")
        );
        let head = read_head(&write_rollout(home.path(), b, "/q", Some("hello"))).unwrap();
        assert_eq!(head.first_user_message.as_deref(), Some("hello"));
        assert_eq!(head.cwd, "/q");
    }

    #[test]
    fn a_fork_names_its_parent_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout-2026-12-03T07-35-18-x.jsonl");
        let meta = r#"{"timestamp":"2026-12-03T07:35:18.520Z","type":"session_meta","payload":{"id":"child","forked_from_id":"parent","cwd":"/p"}}"#;
        std::fs::write(&path, format!("{meta}\n")).unwrap();
        let head = read_head(&path).unwrap();
        assert_eq!(head.thread_id, "child");
        assert_eq!(head.forked_from.as_deref(), Some("parent"));
        assert_eq!(head.first_user_message, None);
        let plain = write_rollout(
            dir.path(),
            "0199aaaa-0000-7000-8000-000000000009",
            "/p",
            None,
        );
        assert_eq!(read_head(&plain).unwrap().forked_from, None);
    }
}
