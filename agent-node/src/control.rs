//! `agent-node send`: a local user (or Codex itself, from a shell in its window) asks the running
//! node to deliver text or a file to a session's Telegram topic. The request reaches the daemon on
//! a Unix socket in the state directory (mode 0600, so only this user), goes to the center as an
//! `Outgoing` message, and the center's `OutgoingResult` is the answer.
//!
//! A file is offered (made readable by the center while its relay is in flight) only from the
//! node's roots, its inbox or the folders `send_roots` adds: Codex runs `agent-node send` on
//! whatever a prompt asks, and the node's keys or the user's dotfiles must not be one request
//! away from a chat. Images are the exception, as the center may read those anyway.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use proto::v1::{self, node_msg};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use shared::sync::LockExt;

/// How long a relayed send may take (the center may have to wait for Telegram's budget).
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);

/// Set in every fleet window: the window's session id.
pub(crate) const SESSION_ENV: &str = "CODEX_FLEET_SESSION";

/// The socket's file name in the state directory.
pub(crate) const SOCKET_NAME: &str = "control.sock";

/// A send request, as written by the CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SendRequest {
    /// Target session; empty: the only bound one of this node.
    #[serde(default)]
    pub session_id: String,
    /// Message text (the caption, with a file).
    #[serde(default)]
    pub text: String,
    /// Absolute path of a file to send.
    #[serde(default)]
    pub file: String,
    /// photo|document|video|animation|audio; empty: by file type.
    #[serde(default)]
    pub media_type: String,
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendAnswer {
    /// Whether Telegram accepted it.
    pub ok: bool,
    /// What happened, for the user.
    pub message: String,
}

/// Why a file cannot be offered to the center (each message is one line for the user).
#[derive(Debug, thiserror::Error)]
enum NotOffered {
    /// The path is relative (the CLI makes it absolute).
    #[error("{0} is not an absolute path")]
    NotAbsolute(String),
    /// A directory, a FIFO, ...
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// It does not exist or cannot be looked at.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The path as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It lies outside the roots, the inbox and `send_roots`, and is no image.
    #[error(
        "{0} is outside the folders `agent-node send` may send files from (the node's roots and its inbox); add its folder to send_roots in the node's config to allow it"
    )]
    OutsideSendable(String),
}

/// What `agent-node send` asks of the center, and what the center may read because of it: the
/// relays waiting for the center's verdict and the files they offer. Files are offered only
/// from the folders the node allows (see [`Outbox::check_sendable`]).
#[derive(Debug)]
pub(crate) struct Outbox {
    hub: Hub,
    /// Folders files may be sent from: the roots, the inbox, and `send_roots`.
    sendable: Vec<PathBuf>,
    /// Relay id → the waiter for the center's answer.
    relays: Mutex<HashMap<String, oneshot::Sender<v1::OutgoingResult>>>,
    /// Files offered by a relay in flight: the only non-images the center may read.
    offered: Mutex<HashSet<PathBuf>>,
}

impl Outbox {
    /// An outbox relaying over `hub`, offering files under `sendable` only (and images).
    pub(crate) fn new(hub: Hub, sendable: Vec<PathBuf>) -> Self {
        Self {
            hub,
            sendable,
            relays: Mutex::default(),
            offered: Mutex::default(),
        }
    }

    /// The center's verdict on a relay: hands it to the waiting `agent-node send`.
    pub(crate) fn resolve(&self, result: v1::OutgoingResult) {
        let waiter = self.relays.locked().remove(&result.relay_id);
        if let Some(tx) = waiter {
            let _ = tx.send(result);
        }
    }

    /// Whether `path` is offered by a relay in flight.
    pub(crate) fn is_offered(&self, path: &Path) -> bool {
        self.offered.locked().contains(path)
    }

    /// The canonical form of the file `file` names if it may be offered: an absolute path of a
    /// regular file under a sendable folder (after symlinks are resolved, so a link cannot lead
    /// out), or of an image (which the center may read anyway, see `crate::files`).
    fn offerable(&self, file: &str) -> Result<PathBuf, NotOffered> {
        let path = Path::new(file);
        if !path.is_absolute() {
            return Err(NotOffered::NotAbsolute(file.to_owned()));
        }
        let unreadable = |source| NotOffered::Unreadable {
            path: file.to_owned(),
            source,
        };
        if !std::fs::metadata(path).map_err(unreadable)?.is_file() {
            return Err(NotOffered::NotAFile(file.to_owned()));
        }
        let real = std::fs::canonicalize(path).map_err(unreadable)?;
        let inside = self
            .sendable
            .iter()
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .any(|dir| real.starts_with(dir));
        if inside || crate::files::is_image_file(&real) {
            Ok(real)
        } else {
            Err(NotOffered::OutsideSendable(file.to_owned()))
        }
    }

    /// Sends `req` to the center and waits for its verdict.
    pub(crate) async fn relay(&self, req: SendRequest) -> SendAnswer {
        let fail = |message: String| SendAnswer { ok: false, message };
        if req.text.trim().is_empty() && req.file.is_empty() {
            return fail("nothing to send: give a text, a file or both".into());
        }
        let mut offered = None;
        if !req.file.is_empty() {
            match self.offerable(&req.file) {
                Ok(real) => offered = Some(real),
                Err(refused) => {
                    if matches!(refused, NotOffered::OutsideSendable(_)) {
                        tracing::info!(file = %req.file, "refused to offer a file outside the sendable folders");
                    }
                    return fail(refused.to_string());
                }
            }
        }
        let Some(sink) = self.hub.sink() else {
            return fail("this node is not connected to a center right now".into());
        };
        static NEXT_RELAY: AtomicU64 = AtomicU64::new(1);
        let relay_id = format!(
            "r{}-{}",
            std::process::id(),
            NEXT_RELAY.fetch_add(1, Ordering::Relaxed)
        );
        if let Some(path) = &offered {
            self.offered.locked().insert(path.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.relays.locked().insert(relay_id.clone(), tx);
        let msg = v1::NodeMsg {
            kind: Some(node_msg::Kind::Outgoing(v1::Outgoing {
                relay_id: relay_id.clone(),
                session_id: req.session_id,
                text: req.text,
                file_path: offered
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                media_type: req.media_type,
            })),
        };
        let answer = if sink.send(msg).await.is_err() {
            fail("the link to the center closed".into())
        } else {
            match tokio::time::timeout(RELAY_TIMEOUT, rx).await {
                Ok(Ok(r)) => SendAnswer {
                    ok: r.ok,
                    message: r.message,
                },
                Ok(Err(_)) => fail("the center did not answer".into()),
                Err(_) => fail("the center did not answer within 10 minutes".into()),
            }
        };
        self.relays.locked().remove(&relay_id);
        if let Some(path) = &offered {
            self.offered.locked().remove(path);
        }
        answer
    }
}

/// Serves the control socket in `state_dir` with `outbox` until `token` is cancelled.
pub(crate) fn serve(
    outbox: Arc<Outbox>,
    state_dir: &Path,
    token: CancellationToken,
) -> std::io::Result<PathBuf> {
    shared::line_socket::serve(
        state_dir,
        SOCKET_NAME,
        token,
        move |req: SendRequest| {
            let outbox = outbox.clone();
            async move { outbox.relay(req).await }
        },
        |message| SendAnswer { ok: false, message },
    )
}

/// Why `agent-node send` could not get an answer from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the daemon's control socket.
    #[error(
        "cannot reach the agent-node daemon at {} (is `agent-node serve` running with this state directory?)",
        path.display()
    )]
    Unreachable {
        /// The control socket.
        path: PathBuf,
        /// Why it could not be reached.
        source: std::io::Error,
    },
    /// The exchange with the daemon broke off or made no sense.
    #[error(transparent)]
    Exchange(shared::line_socket::LineError),
}

/// The CLI side: sends `req` to the daemon whose state directory is `state_dir`.
pub async fn request(state_dir: &Path, req: &SendRequest) -> Result<SendAnswer, Error> {
    let path = state_dir.join(SOCKET_NAME);
    shared::line_socket::request(&path, req)
        .await
        .map_err(|e| match e {
            shared::line_socket::LineError::Unreachable { source, .. } => {
                Error::Unreachable { path, source }
            }
            other => Error::Exchange(other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_file(path: &Path) -> SendRequest {
        SendRequest {
            file: path.to_string_lossy().into_owned(),
            ..SendRequest::default()
        }
    }

    /// With no center attached, a file that passes the folder check fails for that reason.
    const NOT_CONNECTED: &str = "not connected to a center";

    #[tokio::test]
    async fn only_files_under_the_sendable_folders_or_images_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        let outbox = Outbox::new(Hub::default(), vec![root.clone()]);

        let inside = root.join("report.txt");
        std::fs::write(&inside, "ok").unwrap();
        let answer = outbox.relay(send_file(&inside)).await;
        assert!(answer.message.contains(NOT_CONNECTED), "{}", answer.message);

        let secret = elsewhere.join("id_ed25519");
        std::fs::write(&secret, "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();
        let answer = outbox.relay(send_file(&secret)).await;
        assert!(!answer.ok);
        assert!(
            answer.message.contains("outside the folders") && !answer.message.contains('\n'),
            "{}",
            answer.message
        );

        // A symlink inside a root that leads out is judged by where it leads.
        let link = root.join("innocent.txt");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let answer = outbox.relay(send_file(&link)).await;
        assert!(
            answer.message.contains("outside the folders"),
            "{}",
            answer.message
        );

        // Images may be read by the center anyway, so they may be sent from anywhere.
        let image = elsewhere.join("chart.png");
        std::fs::write(&image, b"\x89PNG\r\n\x1a\n....").unwrap();
        let answer = outbox.relay(send_file(&image)).await;
        assert!(answer.message.contains(NOT_CONNECTED), "{}", answer.message);
        assert!(!outbox.is_offered(&image), "offers end with their relay");
    }
}
