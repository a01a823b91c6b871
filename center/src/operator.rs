//! What the operator tools do inside the running center: `center status` (bindings, nodes,
//! queues), `center input` (the same input path as a Telegram message, fail-closed rules
//! included), `center send` and `agent-node send` (text and files to a topic). Targets are
//! resolved from state when that is unambiguous; otherwise the request fails and says why.

use std::sync::Arc;

use proto::v1;
use serde::{Deserialize, Serialize};

use crate::{
    app::App,
    nodes::CallError,
    pending::PendingInput,
    store::{Binding, InputMode, StoreError, Surface},
    telegram::{
        api::{self, MediaKind, TgError, Upload},
        outbox::{Class, MediaSend, Send},
        render::escape_html,
    },
};

/// A request on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Bindings, nodes, queues.
    Status,
    /// Type text into a topic's session.
    Input {
        /// Which topic (see [`App::resolve_topic`]); empty: the only one.
        #[serde(default)]
        topic: String,
        /// The text.
        text: String,
    },
    /// Deliver text and/or a file to a topic.
    Send {
        /// Which topic; empty: the only one.
        #[serde(default)]
        topic: String,
        /// The message (the caption, with a file).
        #[serde(default)]
        text: String,
        /// Absolute path of a file on this machine.
        #[serde(default)]
        file: String,
        /// photo|document|video|animation|audio; empty: by file type.
        #[serde(default)]
        media_type: String,
    },
    /// Revoke a node now: its certificate is refused and its link closed (`center nodes remove`
    /// while the center runs).
    Revoke {
        /// The node's name.
        name: String,
    },
    /// Upgrade agent-nodes with a binary sent over their links (`center nodes upgrade`).
    UpgradeNodes {
        /// A node's name, or `all`.
        target: String,
        /// Absolute path of the agent-node binary; empty: the one next to the center.
        #[serde(default)]
        binary: String,
    },
    /// Restart once no Codex window is busy or asking (`center update`, after building).
    RestartWhenIdle {
        /// The binary just built: refused unless the running center is that file (a center
        /// started from elsewhere would come back as the old code). Empty: no check.
        #[serde(default)]
        binary: String,
    },
    /// Send a topic the last answers of its session again (`center backfill`).
    Backfill {
        /// Which topic (see [`App::resolve_topic`]); empty: the only one.
        #[serde(default)]
        topic: String,
        /// How many turns' answers (1-20).
        turns: u32,
    },
    /// Submit a job (`center job add`), under the same rules as `/run`.
    JobAdd {
        /// The node (default: `[jobs] default_node`).
        #[serde(default)]
        node: String,
        /// The folder on it (absolute, under its roots).
        folder: String,
        /// The prompt.
        prompt: String,
        /// The chat that gets the job's status and answer (default: the first allowed user's
        /// private chat).
        #[serde(default)]
        chat: Option<i64>,
        /// The topic in that chat (0: none).
        #[serde(default)]
        thread: i32,
    },
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlAnswer {
    /// Whether it worked.
    pub ok: bool,
    /// What happened, for the user.
    pub message: String,
    /// `status` data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl ControlAnswer {
    pub(crate) fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    pub(crate) fn fail(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// Why an operator request, or a node's relayed `agent-node send`, was refused. The message is
/// the whole answer the operator sees (it travels as text in [`ControlAnswer`] or to the node).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state database failed (never read as "nothing is bound").
    #[error(transparent)]
    Store(StoreError),
    /// No topic is bound at all.
    #[error("no topic is bound to a Codex session yet")]
    NothingBound,
    /// No binding matches the named topic.
    #[error("no bound topic matches {topic:?}; bound topics:\n{}", bound.join("\n"))]
    NoTopicMatches {
        /// What the operator asked for.
        topic: String,
        /// Every binding, described.
        bound: Vec<String>,
    },
    /// Several bindings match: the operator must name one.
    #[error(
        "{} bound topics match; name one with --topic (chat:thread, thread id, session id or folder):\n{}",
        matching.len(),
        matching.join("\n")
    )]
    AmbiguousTopic {
        /// The matching bindings, described.
        matching: Vec<String>,
    },
    /// A node relayed a send, but none of its sessions is bound to a topic.
    #[error("no topic is bound to a session on {node}")]
    NodeUnbound {
        /// The node.
        node: String,
    },
    /// A node relayed a send for a session no topic is bound to.
    #[error("session {0} is not bound to a topic")]
    SessionUnbound(String),
    /// A node relayed a send without a session, and several of its sessions are bound.
    #[error(
        "{} topics are bound to sessions on {node}; pass --session (one of: {})",
        sessions.len(),
        sessions.join(", ")
    )]
    AmbiguousSession {
        /// The node.
        node: String,
        /// Its bound sessions.
        sessions: Vec<String>,
    },
    /// Pulling the file from the node failed.
    #[error(transparent)]
    Node(CallError),
    /// Neither text nor a file.
    #[error("nothing to send: give a text, a file or both")]
    NothingToSend,
    /// A media type Telegram has no method for.
    #[error("unknown type {0:?}; use photo, document, video, animation or audio")]
    UnknownMediaType(String),
    /// An empty file.
    #[error("{0} is empty; Telegram does not take empty files")]
    EmptyFile(String),
    /// A file over Telegram's limit for its kind.
    #[error(
        "{name} is too large to send as a {} ({:.1} MB; at most {} MB)",
        kind.as_str(),
        megabytes(*size),
        limit / 1_048_576
    )]
    TooLarge {
        /// The file's name.
        name: String,
        /// What it was to be sent as.
        kind: MediaKind,
        /// Its size in bytes.
        size: u64,
        /// The limit for `kind`, in bytes.
        limit: u64,
    },
    /// Telegram refused the message or file.
    #[error("Telegram refused it: {0}")]
    Refused(TgError),
    /// The center is shutting down.
    #[error("the center is stopping")]
    Stopping,
}

/// Bytes as (binary) megabytes, for messages.
fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The media kind for a file, from its name (photos only in formats Telegram takes as photos).
pub fn media_kind_for(name: &str) -> MediaKind {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => MediaKind::Photo,
        "gif" => MediaKind::Animation,
        "mp4" | "mov" | "webm" | "mkv" => MediaKind::Video,
        "mp3" | "m4a" | "ogg" | "oga" | "wav" | "flac" => MediaKind::Audio,
        _ => MediaKind::Document,
    }
}

fn describe(b: &Binding) -> String {
    format!(
        "{}:{} ({} on {}, {})",
        b.surface.chat_id, b.surface.thread_id, b.session_id, b.node, b.cwd
    )
}

impl App {
    /// Finds the binding `topic` names: `chat:thread`, a thread id, a session id, or a working
    /// directory (full path or last component) — or, when `topic` is empty, the only binding.
    /// Anything ambiguous or unknown is refused with the candidates listed.
    pub fn resolve_topic(&self, topic: &str) -> Result<Binding, Error> {
        let bindings = self.store.bindings().map_err(Error::Store)?;
        let topic = topic.trim();
        let matches: Vec<&Binding> = if topic.is_empty() {
            bindings.iter().collect()
        } else {
            bindings
                .iter()
                .filter(|b| {
                    let s = b.surface;
                    topic == format!("{}:{}", s.chat_id, s.thread_id)
                        || topic == s.thread_id.to_string()
                        || topic == b.session_id
                        || topic == b.cwd
                        || (!topic.contains('/') && b.cwd.rsplit('/').next() == Some(topic))
                })
                .collect()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] if bindings.is_empty() => Err(Error::NothingBound),
            [] => Err(Error::NoTopicMatches {
                topic: topic.to_owned(),
                bound: bindings.iter().map(describe).collect(),
            }),
            many => Err(Error::AmbiguousTopic {
                matching: many.iter().map(|b| describe(b)).collect(),
            }),
        }
    }

    /// `center status --json`.
    pub fn status_json(&self) -> serde_json::Value {
        let bindings: Vec<serde_json::Value> = self
            .store
            .bindings()
            .unwrap_or_default()
            .iter()
            .map(|b| {
                serde_json::json!({
                    "chat_id": b.surface.chat_id,
                    "thread_id": b.surface.thread_id,
                    "node": b.node,
                    "session_id": b.session_id,
                    "cwd": b.cwd,
                    "mode": match b.mode { InputMode::Steer => "steer", InputMode::Queue => "queue" },
                    "held_inputs": self.store.held_inputs(b.surface).map(|h| h.len()).unwrap_or(0),
                    "acked_seq": self.store.acked(&b.node, &b.session_id).unwrap_or(0),
                })
            })
            .collect();
        let mut names = self.node_names();
        for n in self.store.nodes().unwrap_or_default() {
            if !names.contains(&n.name) {
                names.push(n.name);
            }
        }
        let nodes: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                let conn = self.node(name);
                let record = self.store.node(name).ok().flatten();
                let hb = conn.as_ref().and_then(|c| c.last_heartbeat());
                serde_json::json!({
                    "name": name,
                    "online": conn.as_ref().is_some_and(|c| c.online()),
                    "version": conn.as_ref().map(|c| c.version()).unwrap_or_default(),
                    "endpoint": record.as_ref().map(|r| r.endpoint.clone()).unwrap_or_default(),
                    "revoked": record.as_ref().is_some_and(|r| r.revoked),
                    "live_windows": hb.as_ref().map(|h| h.live_windows),
                    "sessions": hb.as_ref().map(|h| h.sessions),
                    "load1": hb.as_ref().map(|h| h.load1),
                    "disk_free_bytes": hb.as_ref().map(|h| h.disk_free_bytes),
                    "uptime_secs": hb.as_ref().map(|h| h.uptime_secs),
                    "unknown_records": hb.as_ref().map(|h| h.unknown_records),
                    // RAM, swap, disks, load, windows, lag, Codex (null before a heartbeat).
                    "health": crate::health::status_json(self, name),
                })
            })
            .collect();
        let queues: Vec<serde_json::Value> = self
            .outbox
            .queue_lengths()
            .into_iter()
            .map(|(chat_id, sends, edits)| {
                serde_json::json!({ "chat_id": chat_id, "sends": sends, "edits": edits })
            })
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "bindings": bindings,
            "nodes": nodes,
            "queues": queues,
            // Accepted Telegram updates whose work is not done yet (see `inbox`).
            "inbox_open": self.store.unfinished_updates().map(|u| u.len()).ok(),
        })
    }

    /// Answers one control request.
    pub async fn control(self: &Arc<Self>, req: ControlRequest) -> ControlAnswer {
        match req {
            ControlRequest::Status => ControlAnswer {
                ok: true,
                message: String::new(),
                status: Some(self.status_json()),
            },
            ControlRequest::Input { topic, text } => self.operator_input(&topic, &text).await,
            ControlRequest::Backfill { topic, turns } => {
                match crate::backfill::run(self, &topic, turns).await {
                    Ok(done) => ControlAnswer::ok(done),
                    Err(err) => ControlAnswer::fail(err.to_string()),
                }
            }
            ControlRequest::JobAdd {
                node,
                folder,
                prompt,
                chat,
                thread,
            } => {
                let Some(jobs) = self.jobs() else {
                    return ControlAnswer::fail("jobs are not running on this center".to_owned());
                };
                let Some(chat) = chat.or(self.cfg.allowed_users.first().map(|u| *u as i64)) else {
                    return ControlAnswer::fail("no chat for the job: pass --chat".to_owned());
                };
                let surface = Surface {
                    chat_id: chat,
                    thread_id: thread,
                };
                match jobs.operator_add(&node, &folder, &prompt, surface).await {
                    Ok(id) => ControlAnswer::ok(format!("job {id} submitted")),
                    Err(why) => ControlAnswer::fail(why.to_string()),
                }
            }
            ControlRequest::UpgradeNodes { target, binary } => {
                self.upgrade_from_control(&target, &binary).await
            }
            ControlRequest::RestartWhenIdle { binary } => self.restart_when_idle(&binary),
            ControlRequest::Revoke { name } => {
                if self.revoke_node(&name) {
                    ControlAnswer::ok(format!("{name} revoked; its link is closed."))
                } else {
                    ControlAnswer::fail(format!("there is no node {name}"))
                }
            }
            ControlRequest::Send {
                topic,
                text,
                file,
                media_type,
            } => {
                let binding = match self.resolve_topic(&topic) {
                    Ok(b) => b,
                    Err(e) => return ControlAnswer::fail(e.to_string()),
                };
                let file = if file.is_empty() {
                    None
                } else {
                    let path = std::path::Path::new(&file);
                    match std::fs::metadata(path) {
                        Ok(m) if !m.is_file() => {
                            return ControlAnswer::fail(format!("{file} is not a regular file"));
                        }
                        Ok(m) if m.len() > api::MAX_UPLOAD => {
                            return ControlAnswer::fail(format!(
                                "{file} is too large for Telegram ({:.1} MB; at most 50 MB)",
                                m.len() as f64 / 1_048_576.0
                            ));
                        }
                        Err(e) => return ControlAnswer::fail(format!("cannot read {file}: {e}")),
                        Ok(_) => {}
                    }
                    match std::fs::read(path) {
                        Ok(bytes) => Some((
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_else(|| "file".into()),
                            bytes,
                        )),
                        Err(e) => return ControlAnswer::fail(format!("cannot read {file}: {e}")),
                    }
                };
                match self
                    .deliver_outgoing(binding.surface, &text, file, &media_type)
                    .await
                {
                    Ok(m) => ControlAnswer::ok(m),
                    Err(e) => ControlAnswer::fail(e.to_string()),
                }
            }
        }
    }

    /// `center input`: shows the text in the topic (so the thread tells what was typed), then
    /// takes the same path as a Telegram message and waits for its outcome.
    async fn operator_input(self: &Arc<Self>, topic: &str, text: &str) -> ControlAnswer {
        if text.trim().is_empty() {
            return ControlAnswer::fail("nothing to type: the text is empty");
        }
        let binding = match self.resolve_topic(topic) {
            Ok(b) => b,
            Err(e) => return ControlAnswer::fail(e.to_string()),
        };
        let shown = format!("⌨️ From the operator: {text}");
        let shown =
            crate::telegram::render::plain_parts(&shown, crate::telegram::render::MESSAGE_LIMIT)
                .into_iter()
                .next()
                .unwrap_or_default();
        let sent = self
            .outbox
            .send(Send {
                surface: binding.surface,
                html: escape_html(&shown),
                plain: shown,
                keyboard: None,
                reply_to: None,
                class: Class::Message,
            })
            .await;
        let reply_to = match sent {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return ControlAnswer::fail(format!("Telegram refused the message: {e}")),
            Err(_) => return ControlAnswer::fail("the center is stopping"),
        };
        let outcome = self.send_input(
            binding.clone(),
            PendingInput {
                text: text.to_owned(),
                reply_to,
                mode: binding.mode,
                leases: Vec::new(),
            },
        );
        match outcome.await {
            Ok(text) if text.starts_with('✓') => ControlAnswer::ok(text),
            Ok(text) if text.starts_with('⏸') => ControlAnswer::ok(text),
            Ok(text) => ControlAnswer::fail(text),
            Err(_) => ControlAnswer::fail("the input task failed"),
        }
    }

    /// Delivers text and/or a file to a topic; `Ok` says what Telegram accepted.
    pub async fn deliver_outgoing(
        &self,
        surface: Surface,
        text: &str,
        file: Option<(String, Vec<u8>)>,
        media_type: &str,
    ) -> Result<String, Error> {
        let Some((name, bytes)) = file else {
            if text.trim().is_empty() {
                return Err(Error::NothingToSend);
            }
            let parts = crate::deliver::markdown_parts(text);
            let mut ids = Vec::new();
            for sent in crate::deliver::queue_parts(&self.outbox, surface, parts, Class::Message) {
                let id = sent
                    .await
                    .map_err(|_| Error::Stopping)?
                    .map_err(Error::Refused)?;
                ids.push(id.to_string());
            }
            return Ok(format!("sent (message {})", ids.join(", ")));
        };
        let kind = if media_type.is_empty() {
            media_kind_for(&name)
        } else {
            MediaKind::parse(media_type)
                .ok_or_else(|| Error::UnknownMediaType(media_type.to_owned()))?
        };
        if bytes.is_empty() {
            return Err(Error::EmptyFile(name));
        }
        let limit = if kind == MediaKind::Photo {
            api::MAX_PHOTO_UPLOAD
        } else {
            api::MAX_UPLOAD
        };
        let size = bytes.len() as u64;
        if size > limit {
            return Err(Error::TooLarge {
                name,
                kind,
                size,
                limit,
            });
        }
        // A caption past Telegram's limit goes as a message of its own after the file.
        let long = crate::telegram::render::utf16_len(text) > api::MAX_CAPTION;
        let caption = if long { String::new() } else { text.to_owned() };
        let id = self
            .outbox
            .send_media(MediaSend {
                surface,
                upload: Upload {
                    kind,
                    file_name: name.clone(),
                    bytes: Arc::new(bytes),
                },
                caption_html: escape_html(&caption),
                caption_plain: caption,
                keyboard: None,
                reply_to: None,
                class: Class::Message,
            })
            .await
            .map_err(|_| Error::Stopping)?
            .map_err(Error::Refused)?;
        if long {
            Box::pin(self.deliver_outgoing(surface, text, None, "")).await?;
        }
        Ok(format!("sent {name} as a {} (message {id})", kind.as_str()))
    }

    /// `agent-node send`, relayed by a node: resolves the topic from the node's bindings, pulls
    /// the file over the link, delivers, and answers the node.
    pub fn relay_outgoing(self: &Arc<Self>, node_name: String, o: v1::Outgoing) {
        let app = self.clone();
        tokio::spawn(async move {
            let Some(node) = app.node(&node_name) else {
                return;
            };
            let result = app.relay(&node_name, &node, &o).await;
            node.answer_outgoing(&o.relay_id, result).await;
        });
    }

    async fn relay(
        &self,
        node_name: &str,
        node: &crate::nodes::NodeConn,
        o: &v1::Outgoing,
    ) -> Result<String, Error> {
        let bindings: Vec<Binding> = self
            .store
            .bindings()
            .map_err(Error::Store)?
            .into_iter()
            .filter(|b| b.node == node_name)
            .filter(|b| o.session_id.is_empty() || b.session_id == o.session_id)
            .collect();
        let binding = match bindings.as_slice() {
            [one] => one.clone(),
            [] if o.session_id.is_empty() => {
                return Err(Error::NodeUnbound {
                    node: node_name.to_owned(),
                });
            }
            [] => return Err(Error::SessionUnbound(o.session_id.clone())),
            many => {
                return Err(Error::AmbiguousSession {
                    node: node_name.to_owned(),
                    sessions: many.iter().map(|b| b.session_id.to_string()).collect(),
                });
            }
        };
        let file = if o.file_path.is_empty() {
            None
        } else {
            Some(
                crate::nodes::transfer::read_file(node, &o.file_path, api::MAX_UPLOAD)
                    .await
                    .map_err(Error::Node)?,
            )
        };
        self.deliver_outgoing(binding.surface, &o.text, file, &o.media_type)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_file_types() {
        assert_eq!(media_kind_for("a.PNG"), MediaKind::Photo);
        assert_eq!(media_kind_for("clip.mp4"), MediaKind::Video);
        assert_eq!(media_kind_for("x.gif"), MediaKind::Animation);
        assert_eq!(media_kind_for("song.mp3"), MediaKind::Audio);
        assert_eq!(media_kind_for("src.tar.gz"), MediaKind::Document);
        assert_eq!(media_kind_for("webp.webp"), MediaKind::Document);
    }

    #[test]
    fn refusals_read_as_before() {
        let many = Error::AmbiguousTopic {
            matching: vec![
                "-1:7 (s1 on local, /a)".into(),
                "-1:8 (s2 on local, /b)".into(),
            ],
        };
        assert_eq!(
            many.to_string(),
            "2 bound topics match; name one with --topic (chat:thread, thread id, session id or folder):\n-1:7 (s1 on local, /a)\n-1:8 (s2 on local, /b)"
        );
        let big = Error::TooLarge {
            name: "a.png".into(),
            kind: MediaKind::Photo,
            size: 11 * 1_048_576 + 104_858,
            limit: 10 * 1_048_576,
        };
        assert_eq!(
            big.to_string(),
            "a.png is too large to send as a photo (11.1 MB; at most 10 MB)"
        );
        let sessions = Error::AmbiguousSession {
            node: "vps1".into(),
            sessions: vec!["s1".into(), "s2".into()],
        };
        assert_eq!(
            sessions.to_string(),
            "2 topics are bound to sessions on vps1; pass --session (one of: s1, s2)"
        );
        assert_eq!(
            Error::UnknownMediaType("gif".into()).to_string(),
            "unknown type \"gif\"; use photo, document, video, animation or audio"
        );
    }

    #[test]
    fn requests_round_trip_as_json() {
        let r: ControlRequest =
            serde_json::from_str(r#"{"op":"send","topic":"7","file":"/tmp/a.png"}"#).unwrap();
        assert!(matches!(r, ControlRequest::Send { ref topic, .. } if topic == "7"));
        let s: ControlRequest = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert!(matches!(s, ControlRequest::Status));
    }
}
