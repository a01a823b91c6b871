//! `agent-node send`: a local user (or Codex itself, from a shell in its window) asks the running
//! node to deliver text or a file to a session's Telegram topic. The request reaches the daemon on
//! a Unix socket in the state directory (mode 0600, so only this user), goes to the center as an
//! `Outgoing` message, and the center's `OutgoingResult` is the answer.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use proto::v1::{self, node_msg};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use shared::sync::LockExt;

/// How long a relayed send may take (the center may have to wait for Telegram's budget).
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);

/// Set in every fleet window: the window's session id.
pub const SESSION_ENV: &str = "CODEX_FLEET_SESSION";

/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "control.sock";

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

/// Relays waiting for the center's answer.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    pending: Mutex<HashMap<String, oneshot::Sender<v1::OutgoingResult>>>,
}

impl Relays {
    pub(crate) fn resolve(&self, result: v1::OutgoingResult) {
        let waiter = self.pending.locked().remove(&result.relay_id);
        if let Some(tx) = waiter {
            let _ = tx.send(result);
        }
    }
}

impl Node {
    /// Sends `req` to the center and waits for its verdict.
    pub async fn relay(&self, req: SendRequest) -> SendAnswer {
        let fail = |message: String| SendAnswer { ok: false, message };
        if req.text.trim().is_empty() && req.file.is_empty() {
            return fail("nothing to send: give a text, a file or both".into());
        }
        if !req.file.is_empty() {
            let path = Path::new(&req.file);
            if !path.is_absolute() {
                return fail(format!("{} is not an absolute path", req.file));
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return fail(format!("{} is not a regular file", req.file)),
                Err(e) => return fail(format!("cannot read {}: {e}", req.file)),
            }
        }
        let session_id = req.session_id.clone();
        let Some(sink) = self.inner.hub.sink() else {
            return fail("this node is not connected to a center right now".into());
        };
        static NEXT_RELAY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let relay_id = format!(
            "r{}-{}",
            std::process::id(),
            NEXT_RELAY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let offered = (!req.file.is_empty()).then(|| PathBuf::from(&req.file));
        if let Some(path) = &offered {
            self.offer(path, true);
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .relays
            .pending
            .locked()
            .insert(relay_id.clone(), tx);
        let msg = v1::NodeMsg {
            kind: Some(node_msg::Kind::Outgoing(v1::Outgoing {
                relay_id: relay_id.clone(),
                session_id,
                text: req.text,
                file_path: req.file,
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
        self.inner.relays.pending.locked().remove(&relay_id);
        if let Some(path) = &offered {
            self.offer(path, false);
        }
        answer
    }

    fn offer(&self, path: &Path, on: bool) {
        let mut offered = self.inner.offered.locked();
        if on {
            offered.insert(path.to_owned());
        } else {
            offered.remove(path);
        }
    }

    /// Serves the control socket until `token` is cancelled.
    pub fn serve_control(&self, token: CancellationToken) -> std::io::Result<PathBuf> {
        let node = self.clone();
        shared::line_socket::serve(
            &self.inner.cfg.state_dir,
            SOCKET_NAME,
            token,
            move |req: SendRequest| {
                let node = node.clone();
                async move { node.relay(req).await }
            },
            |message| SendAnswer { ok: false, message },
        )
    }
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
