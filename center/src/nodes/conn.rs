//! The center's side of node links: requests with correlated replies, acks, and the stream of
//! everything else a node sends, forwarded to the router tagged with the node's name.
//!
//! In single-machine mode the node runs in this process on an in-memory link
//! ([`proto::link::pair`]) — the same protocol and code paths a remote node uses.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use proto::{
    link::CenterLink,
    v1::{self, center_msg, node_msg, reply::Result as R, request::Op},
};
use shared::sync::LockExt;

use crate::store::Cursors;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// The embedded node's name.
pub const LOCAL: &str = "local";
/// Capacity of the in-memory link.
const LINK_CAPACITY: usize = 1024;

/// A request to a node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The node is not connected.
    #[error("the machine running this session is offline")]
    Offline,
    /// No reply in time.
    #[error("the machine running this session did not answer in time")]
    Timeout,
    /// The node refused the request; the message is fit for the user.
    #[error("{message}")]
    Failed {
        /// The node's error code.
        code: v1::ErrorCode,
        /// Its message.
        message: String,
    },
}

/// Something a node sent that is not a reply.
#[derive(Debug)]
pub struct Inbound {
    /// The node's name.
    pub node: String,
    /// The message.
    pub msg: v1::NodeMsg,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<v1::Reply>>>>;

/// One node as the center sees it.
pub struct NodeConn {
    name: String,
    tx: mpsc::Sender<v1::CenterMsg>,
    pending: Pending,
    next_id: AtomicU64,
    online: Arc<AtomicBool>,
    closed: CancellationToken,
    welcomed: Arc<tokio::sync::Notify>,
    version: Arc<Mutex<String>>,
    /// The last heartbeat and when it came; also touched when the link comes up or ends, so a
    /// watcher (the health alerts) learns of every change of this node.
    heartbeat: Arc<watch::Sender<Option<(Instant, v1::Heartbeat)>>>,
}

impl NodeConn {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the link is up.
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Resolves when the node answered the handshake (or the link ended).
    pub async fn welcomed(&self) {
        tokio::select! {
            () = self.welcomed.notified() => {}
            () = self.closed.cancelled() => {}
        }
    }

    /// The node's software version (from its Welcome).
    pub fn version(&self) -> String {
        self.version.locked().clone()
    }

    /// The node's last heartbeat.
    pub fn last_heartbeat(&self) -> Option<v1::Heartbeat> {
        self.heartbeat.borrow().as_ref().map(|(_, h)| h.clone())
    }

    /// The last heartbeat with when it arrived; it changes with each heartbeat and when the
    /// link comes up or ends.
    pub fn heartbeats(&self) -> watch::Receiver<Option<(Instant, v1::Heartbeat)>> {
        self.heartbeat.subscribe()
    }

    /// Resolves when the link has ended (or [`NodeConn::close`] was called).
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Ends the link now (e.g. the node was revoked).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Sends a request and waits for its reply.
    pub async fn call(&self, op: Op, timeout: Duration) -> Result<R, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.pending.locked().insert(id, done);
        let msg = v1::CenterMsg {
            kind: Some(center_msg::Kind::Request(v1::Request { id, op: Some(op) })),
        };
        if self.tx.send(msg).await.is_err() {
            self.pending.locked().remove(&id);
            return Err(CallError::Offline);
        }
        let reply = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(CallError::Offline),
            Err(_) => {
                self.pending.locked().remove(&id);
                return Err(CallError::Timeout);
            }
        };
        match reply.result {
            Some(R::Failure(f)) => Err(CallError::Failed {
                code: f.code(),
                message: f.message,
            }),
            Some(other) => Ok(other),
            None => Err(CallError::Failed {
                code: v1::ErrorCode::Internal,
                message: "empty reply".into(),
            }),
        }
    }

    /// Answers a node's `Outgoing` relay: what was done, or why it was not.
    pub async fn answer_outgoing(
        &self,
        relay_id: &str,
        result: Result<String, impl std::fmt::Display>,
    ) {
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(e) => (false, e.to_string()),
        };
        let _ = self
            .tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::OutgoingResult(v1::OutgoingResult {
                    relay_id: relay_id.to_owned(),
                    ok,
                    message,
                })),
            })
            .await;
    }

    /// Tells the node that everything of job `job_id` (its id on the node) up to `seq` is
    /// handled.
    pub async fn ack_job(&self, job_id: &str, seq: u64) {
        let _ = self
            .tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::JobAck(v1::JobAck {
                    job_id: job_id.to_owned(),
                    seq,
                })),
            })
            .await;
    }

    /// Tells the node that everything of `session` up to `seq` is handled.
    pub async fn ack(&self, session: &str, seq: u64) {
        let _ = self
            .tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::Ack(v1::Ack {
                    session_id: session.to_owned(),
                    seq,
                })),
            })
            .await;
    }
}

/// Starts the embedded node and connects to it, claiming `cursors` as acked.
pub async fn start_embedded(
    config: agent_node::NodeConfig,
    cursors: Cursors,
    inbound: mpsc::Sender<Inbound>,
    token: CancellationToken,
) -> Result<Arc<NodeConn>, agent_node::node::StartError> {
    let node = agent_node::Node::start(config, token.child_token()).await?;
    // `agent-node send` on this machine (e.g. from Codex in a window) reaches the embedded node
    // as it would a standalone one.
    match node.serve_control(token.child_token()) {
        Ok(path) => tracing::debug!(socket = %path.display(), "embedded node control socket ready"),
        Err(err) => tracing::warn!(error = %err, "no control socket for `agent-node send`"),
    }
    let (center_side, node_side) = proto::link::pair(LINK_CAPACITY);
    let serving = node.clone();
    let t = token.child_token();
    tokio::spawn(async move {
        if let Err(err) = serving.serve(node_side, t).await {
            tracing::error!(error = %err, "embedded node link ended");
        }
    });
    Ok(attach(LOCAL, center_side, cursors, inbound).await)
}

/// Whether a link to node `name` must not be attached: the node is revoked or unknown, or the
/// certificate it presented (`serial`, lowercase hex; `None` for a Unix-socket link, which has
/// none) is revoked. A store that cannot be read counts as revoked (fail closed).
///
/// Checked when the peer is authenticated and again right before the link is attached (and just
/// after, see [`crate::app::App::attach_unless_revoked`]): a handshake takes up to 10 s, and `/node remove` in that
/// window must not be undone by the link finishing it.
pub(crate) fn link_revoked(store: &crate::store::Store, name: &str, serial: Option<&str>) -> bool {
    if let Some(serial) = serial
        && store.serial_revoked(serial).unwrap_or(true)
    {
        return true;
    }
    !matches!(store.node(name), Ok(Some(n)) if !n.revoked)
}

/// Runs the center's side of a link: Hello, then replies to waiters and the rest to `inbound`.
pub async fn attach(
    name: &str,
    link: CenterLink,
    cursors: Cursors,
    inbound: mpsc::Sender<Inbound>,
) -> Arc<NodeConn> {
    let CenterLink { tx, mut rx } = link;
    let hello = v1::CenterMsg {
        kind: Some(center_msg::Kind::Hello(v1::Hello {
            min_version: proto::MIN_PROTOCOL_VERSION,
            max_version: proto::PROTOCOL_VERSION,
            center_version: env!("CARGO_PKG_VERSION").to_owned(),
            cursors: cursors
                .sessions
                .into_iter()
                .map(|(session_id, acked_seq)| v1::SessionCursor {
                    session_id,
                    acked_seq,
                })
                .collect(),
            job_cursors: cursors
                .jobs
                .into_iter()
                .map(|(job_id, acked_seq)| v1::JobCursor { job_id, acked_seq })
                .collect(),
        })),
    };
    let _ = tx.send(hello).await;
    let pending: Pending = Arc::default();
    let online = Arc::new(AtomicBool::new(false));
    let closed = CancellationToken::new();
    let welcomed = Arc::new(tokio::sync::Notify::new());
    let version = Arc::new(Mutex::new(String::new()));
    let heartbeat = Arc::new(watch::Sender::new(None));
    let conn = Arc::new(NodeConn {
        welcomed: welcomed.clone(),
        version: version.clone(),
        heartbeat: heartbeat.clone(),
        name: name.to_owned(),
        tx,
        pending: pending.clone(),
        next_id: AtomicU64::new(1),
        online: online.clone(),
        closed: closed.clone(),
    });
    let name = name.to_owned();
    tokio::spawn(async move {
        // However the loop ends (the link closed, failed, or a bug panicked), the link is marked
        // down, so waiters fail at once and the connector dials again.
        let _down = LinkDown {
            online: online.clone(),
            pending: pending.clone(),
            closed: closed.clone(),
            heartbeat: heartbeat.clone(),
        };
        loop {
            let msg = tokio::select! {
                () = closed.cancelled() => break,
                msg = rx.next() => match msg { Some(m) => m, None => break },
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(err) => {
                    tracing::warn!(node = %name, error = %err, "node link failed");
                    break;
                }
            };
            match msg.kind {
                Some(node_msg::Kind::Reply(reply)) => {
                    if let Some(waiter) = pending.locked().remove(&reply.reply_to) {
                        let _ = waiter.send(reply);
                    }
                }
                Some(node_msg::Kind::Welcome(w)) => {
                    online.store(true, Ordering::Relaxed);
                    *version.locked() = w.node_version.clone();
                    welcomed.notify_one();
                    heartbeat.send_modify(|_| {});
                    tracing::info!(node = %name, node.version = %w.node_version, "node connected");
                }
                Some(node_msg::Kind::Heartbeat(h)) => {
                    heartbeat.send_replace(Some((Instant::now(), h)));
                }
                Some(node_msg::Kind::Refused(r)) => {
                    tracing::error!(node = %name, reason = %r.reason, "node refused the link");
                    break;
                }
                _ => {
                    if inbound
                        .send(Inbound {
                            node: name.clone(),
                            msg,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    conn
}

/// Marks a link down when dropped: offline, its waiters failed, closed, and watchers told.
struct LinkDown {
    online: Arc<AtomicBool>,
    pending: Pending,
    closed: CancellationToken,
    heartbeat: Arc<watch::Sender<Option<(Instant, v1::Heartbeat)>>>,
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        self.online.store(false, Ordering::Relaxed);
        self.pending.locked().clear();
        self.closed.cancel();
        self.heartbeat.send_modify(|_| {});
    }
}
