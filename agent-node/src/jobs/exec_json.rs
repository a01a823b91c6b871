//! Codex's `exec --json` stdout, one JSON object per line, digested into what a job reports:
//! progress lines while it runs, and the thread id, answer, token use and failure at the end.
//!
//! Pure: feed it lines, get [`Derived`] items back. Event names seen on Codex 0.169.0 and
//! 0.171.0 (identical; fixtures in `testdata/exec/<version>/`): `thread.started` (`thread_id`),
//! `turn.started`, `turn.completed` (`usage`), `turn.failed` (`error.message`), `error`
//! (`message`; a retry notice such as "Reconnecting…" or the error a `turn.failed` then repeats),
//! `item.started` / `item.updated` / `item.completed` with `item.type` = `agent_message` (`text`),
//! `command_execution` (`command`, `exit_code`, `status`), `error` (a warning, not a failure),
//! and from Codex's schema also `reasoning` (`text`), `file_change` (`changes[].path/kind`),
//! `mcp_tool_call` (`server`, `tool`), `web_search` (`query`), `todo_list`. Unknown event and
//! item types are counted and skipped; a line that is not JSON is counted too. Nothing here fails.

use serde_json::Value;

use crate::transcript::locate::one_line;

/// Longest progress line.
const MAX_LINE: usize = 160;

/// What one stdout line adds to the job's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Derived {
    /// Codex named the thread.
    Thread(String),
    /// One line of progress.
    Activity(String),
}

/// Token use summed over the job's turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) input: u64,
    pub(crate) cached_input: u64,
    pub(crate) output: u64,
}

/// Everything learned from the lines so far.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    pub(crate) thread_id: Option<String>,
    /// The newest agent message (the answer once the turn is complete).
    pub(crate) last_agent_message: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) turns_completed: u32,
    /// `turn.failed`'s message.
    pub(crate) failure: Option<String>,
    /// The newest top-level `error` event (a retry notice or the failure's cause).
    pub(crate) last_error: Option<String>,
    /// Lines of event or item types this parser does not know, and lines that are not JSON.
    pub(crate) unknown: u64,
    /// An agent message not yet reported: commentary if anything follows it, else the answer.
    pending_message: Option<String>,
    /// Ids of command items already reported when they started.
    started_commands: Vec<String>,
}

impl Digest {
    /// Digests one stdout line.
    pub(crate) fn push(&mut self, line: &str) -> Vec<Derived> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.unknown += 1;
            return Vec::new();
        };
        let mut out = Vec::new();
        match str_at(&v, "type") {
            "thread.started" => {
                if let Some(id) = v.get("thread_id").and_then(Value::as_str)
                    && !id.is_empty()
                    && self.thread_id.as_deref() != Some(id)
                {
                    self.thread_id = Some(id.to_owned());
                    out.push(Derived::Thread(id.to_owned()));
                }
            }
            "turn.started" => {}
            "turn.completed" => {
                self.turns_completed += 1;
                self.pending_message = None;
                let u = &v["usage"];
                let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                let total = self.usage.get_or_insert_with(Usage::default);
                total.input += n("input_tokens");
                total.cached_input += n("cached_input_tokens");
                total.output += n("output_tokens");
            }
            "turn.failed" => {
                let msg = v["error"]["message"].as_str().unwrap_or("the turn failed");
                self.failure = Some(msg.to_owned());
            }
            "error" => {
                if let Some(msg) = v.get("message").and_then(Value::as_str) {
                    self.last_error = Some(msg.to_owned());
                }
            }
            "item.started" | "item.updated" | "item.completed" => {
                let started = str_at(&v, "type") == "item.started";
                let completed = str_at(&v, "type") == "item.completed";
                self.item(&v["item"], started, completed, &mut out);
            }
            _ => self.unknown += 1,
        }
        out
    }

    fn item(&mut self, item: &Value, started: bool, completed: bool, out: &mut Vec<Derived>) {
        let kind = str_at(item, "type");
        // Anything after an agent message makes that message commentary.
        if kind != "error"
            && (started || completed)
            && let Some(text) = self.pending_message.take()
        {
            out.push(activity(&text));
        }
        match kind {
            "agent_message" => {
                if completed && let Some(text) = item.get("text").and_then(Value::as_str) {
                    self.last_agent_message = Some(text.to_owned());
                    self.pending_message = Some(text.to_owned());
                }
            }
            "command_execution" => {
                let id = str_at(item, "id").to_owned();
                let command = show_command(str_at(item, "command"));
                if started {
                    self.started_commands.push(id);
                    out.push(activity(&format!("$ {command}")));
                } else if completed {
                    let exit = item.get("exit_code").and_then(Value::as_i64);
                    let seen = self.started_commands.contains(&id);
                    match exit {
                        Some(code) if code != 0 => {
                            out.push(activity(&format!("$ {command} (exit {code})")));
                        }
                        _ if !seen => out.push(activity(&format!("$ {command}"))),
                        _ => {}
                    }
                }
            }
            "reasoning" => {
                if completed && let Some(text) = item.get("text").and_then(Value::as_str) {
                    let title = reasoning_title(text);
                    if !title.is_empty() {
                        out.push(activity(&title));
                    }
                }
            }
            "file_change" => {
                if completed && let Some(changes) = item.get("changes").and_then(Value::as_array) {
                    let files: Vec<String> = changes
                        .iter()
                        .map(|c| {
                            let path = str_at(c, "path");
                            let name = path.rsplit('/').next().unwrap_or(path);
                            format!("{} {name}", str_at(c, "kind"))
                        })
                        .collect();
                    if !files.is_empty() {
                        out.push(activity(&format!("edited: {}", files.join(", "))));
                    }
                }
            }
            "mcp_tool_call" => {
                if started {
                    let line = format!("tool {}.{}", str_at(item, "server"), str_at(item, "tool"));
                    out.push(activity(&line));
                }
            }
            "web_search" => {
                if completed {
                    out.push(activity(&format!("searched: {}", str_at(item, "query"))));
                }
            }
            // A warning (e.g. unknown model metadata), not a failure; the plan is not progress.
            "error" | "todo_list" => {}
            _ => {
                if completed {
                    self.unknown += 1;
                }
            }
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn activity(text: &str) -> Derived {
    Derived::Activity(one_line(text, MAX_LINE))
}

/// `/bin/bash -lc 'echo hi'` → `echo hi`: the shell wrapper Codex adds says nothing.
fn show_command(command: &str) -> String {
    if let Some(words) = shlex::split(command)
        && let [shell, flag, script] = words.as_slice()
        && (shell.ends_with("sh") || shell.ends_with("bash") || shell.ends_with("zsh"))
        && flag.starts_with('-')
        && flag.ends_with('c')
    {
        return script.clone();
    }
    command.to_owned()
}

/// A reasoning summary's title: its first line without Markdown emphasis.
fn reasoning_title(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    first
        .trim_matches(|c| c == '*' || c == '_' || c == '#' || c == ' ')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: &[&str] = &["0.169.0", "0.171.0"];

    fn fixture(version: &str, name: &str) -> String {
        let path = format!(
            "{}/testdata/exec/{version}/{name}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn digest(text: &str) -> (Digest, Vec<Derived>) {
        let mut d = Digest::default();
        let out = text.lines().flat_map(|l| d.push(l)).collect();
        (d, out)
    }

    fn activities(out: &[Derived]) -> Vec<&str> {
        out.iter()
            .filter_map(|d| match d {
                Derived::Activity(a) => Some(a.as_str()),
                Derived::Thread(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_plain_answer() {
        for v in VERSIONS {
            let (d, out) = digest(&fixture(v, "echo"));
            assert!(
                matches!(&out[0], Derived::Thread(t) if t.len() == 36),
                "{v}: {out:?}"
            );
            assert_eq!(activities(&out), Vec::<&str>::new(), "{v}");
            assert_eq!(d.last_agent_message.as_deref(), Some("hello there"), "{v}");
            assert_eq!(d.turns_completed, 1);
            assert_eq!(
                d.usage,
                Some(Usage {
                    input: 100,
                    cached_input: 0,
                    output: 3
                })
            );
            assert_eq!(d.failure, None);
            assert_eq!(d.unknown, 0, "{v}");
        }
    }

    #[test]
    fn commands_and_commentary_become_one_line_each() {
        for v in VERSIONS {
            let (d, out) = digest(&fixture(v, "commentary"));
            assert_eq!(
                activities(&out),
                vec!["thinking aloud", "$ echo 'thinking aloud'"],
                "{v}"
            );
            assert_eq!(
                d.last_agent_message.as_deref(),
                Some("Done: thinking aloud")
            );
            let (_, out) = digest(&fixture(v, "tool_command"));
            let acts = activities(&out);
            assert_eq!(acts.len(), 2, "{v}: {acts:?}");
            assert!(acts[0].starts_with("$ echo hi > out-"), "{acts:?}");
            assert!(acts[1].ends_with("; false (exit 1)"), "{acts:?}");
        }
    }

    #[test]
    fn a_failed_turn_keeps_codex_error() {
        for v in VERSIONS {
            let (d, _) = digest(&fixture(v, "model_error"));
            assert_eq!(
                d.failure.as_deref(),
                Some("The model `fake-model` does not exist")
            );
            assert_eq!(d.turns_completed, 0);
            let (d, _) = digest(&fixture(v, "model_unreachable"));
            assert_eq!(d.failure, None);
            assert!(d.last_error.as_deref().unwrap().starts_with("Reconnecting"));
        }
    }

    #[test]
    fn review_and_resume_digest_too() {
        for v in VERSIONS {
            let (d, _) = digest(&fixture(v, "review"));
            assert!(
                d.last_agent_message
                    .unwrap()
                    .contains("Review the current code changes")
            );
            let (d, _) = digest(&fixture(v, "resume"));
            assert_eq!(d.last_agent_message.as_deref(), Some("resumed ok"));
            assert!(d.thread_id.is_some());
        }
    }

    #[test]
    fn unknown_and_broken_lines_are_counted_never_fatal() {
        let (d, out) = digest(
            "not json\n{\"type\":\"future.event\"}\n{\"type\":\"item.completed\",\"item\":{\"type\":\"hologram\"}}\n{\"type\":\"item.completed\",\"item\":{\"id\":\"1\",\"type\":\"agent_message\",\"text\":\"ok\"}}",
        );
        assert_eq!(d.unknown, 3);
        assert!(out.is_empty());
        assert_eq!(d.last_agent_message.as_deref(), Some("ok"));
    }

    #[test]
    fn reasoning_files_and_tools_from_the_schema() {
        let lines = [
            r#"{"type":"item.completed","item":{"id":"r","type":"reasoning","text":"**Planning the change**\n\nDetails"}}"#,
            r#"{"type":"item.completed","item":{"id":"f","type":"file_change","changes":[{"path":"/w/src/a.rs","kind":"update"},{"path":"/w/b.md","kind":"add"}],"status":"completed"}}"#,
            r#"{"type":"item.started","item":{"id":"m","type":"mcp_tool_call","server":"gh","tool":"search","status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"w","type":"web_search","query":"rust pidfd"}}"#,
        ];
        let (d, out) = digest(&lines.join("\n"));
        assert_eq!(
            activities(&out),
            vec![
                "Planning the change",
                "edited: update a.rs, add b.md",
                "tool gh.search",
                "searched: rust pidfd"
            ]
        );
        assert_eq!(d.unknown, 0);
    }
}
