//! A center-side client of the node protocol for tests: connects over gRPC, says Hello with
//! cursors, correlates requests with replies, and collects everything else the node sends so
//! tests can wait for events with `wait_for`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use futures::StreamExt;
use proto::v1::{
    self, center_msg, node_link_client::NodeLinkClient, node_msg, reply::Result as R, request::Op,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<v1::Reply>>>>;

/// One connection to a node.
pub struct NodeClient {
    tx: mpsc::Sender<v1::CenterMsg>,
    next_id: AtomicU64,
    pending: Pending,
    inbox: mpsc::UnboundedReceiver<v1::NodeMsg>,
    /// Everything received so far that was not a reply, in order.
    pub seen: Vec<v1::NodeMsg>,
    /// The node's Welcome.
    pub welcome: v1::Welcome,
}

impl NodeClient {
    /// Connects without TLS (to a node's `unix:/path`, or to see a TCP node refuse it) and completes
    /// the handshake, claiming `cursors` as already acked.
    pub async fn connect(
        addr: impl std::fmt::Display,
        cursors: &[(String, u64)],
    ) -> anyhow::Result<Self> {
        Self::connect_with_versions(
            addr,
            cursors,
            proto::MIN_PROTOCOL_VERSION,
            proto::PROTOCOL_VERSION,
        )
        .await
    }

    /// Like `connect`, with the version range to offer.
    pub async fn connect_with_versions(
        addr: impl std::fmt::Display,
        cursors: &[(String, u64)],
        min_version: u32,
        max_version: u32,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(1024);
        // Queue Hello before the call: tonic returns only when response headers arrive.
        tx.send(v1::CenterMsg {
            kind: Some(center_msg::Kind::Hello(v1::Hello {
                min_version,
                max_version,
                center_version: "test".into(),
                cursors: cursors
                    .iter()
                    .map(|(s, a)| v1::SessionCursor {
                        session_id: s.clone(),
                        acked_seq: *a,
                    })
                    .collect(),
                job_cursors: Vec::new(),
            })),
        })
        .await?;
        let addr = addr.to_string();
        let uri = if addr.starts_with("unix:") {
            addr
        } else {
            format!("http://{addr}")
        };
        let channel = tonic::transport::Endpoint::from_shared(uri)?
            .connect()
            .await
            .context("connecting to the node")?;
        Self::handshake(channel, tx, rx).await
    }

    /// Connects over mutual TLS with `tls` and completes the handshake.
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: tonic::transport::ClientTlsConfig,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(1024);
        tx.send(v1::CenterMsg {
            kind: Some(center_msg::Kind::Hello(v1::Hello {
                min_version: proto::MIN_PROTOCOL_VERSION,
                max_version: proto::PROTOCOL_VERSION,
                center_version: "test".into(),
                cursors: Vec::new(),
                job_cursors: Vec::new(),
            })),
        })
        .await?;
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls)?
            .connect()
            .await
            .context("connecting to the node")?;
        Self::handshake(channel, tx, rx).await
    }

    async fn handshake(
        channel: tonic::transport::Channel,
        tx: mpsc::Sender<v1::CenterMsg>,
        rx: mpsc::Receiver<v1::CenterMsg>,
    ) -> anyhow::Result<Self> {
        let mut client = NodeLinkClient::new(channel);
        let mut inbound = client
            .attach(ReceiverStream::new(rx))
            .await
            .context("attach")?
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.next())
            .await
            .context("no handshake answer")?
            .context("stream closed during handshake")??;
        let welcome = match first.kind {
            Some(node_msg::Kind::Welcome(w)) => w,
            Some(node_msg::Kind::Refused(r)) => bail!("refused: {}", r.reason),
            other => bail!("unexpected first message {other:?}"),
        };
        let pending: Pending = Arc::default();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                if let Some(node_msg::Kind::Reply(reply)) = &msg.kind {
                    if let Some(waiter) = p.lock().expect("pending lock").remove(&reply.reply_to) {
                        let _ = waiter.send(reply.clone());
                    }
                    continue;
                }
                if inbox_tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            tx,
            next_id: AtomicU64::new(1),
            pending,
            inbox,
            seen: Vec::new(),
            welcome,
        })
    }

    /// Sends a request and waits (up to `timeout`) for its reply.
    pub async fn request_within(&self, op: Op, timeout: Duration) -> anyhow::Result<R> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, done);
        self.tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::Request(v1::Request { id, op: Some(op) })),
            })
            .await
            .context("link closed")?;
        let reply = tokio::time::timeout(timeout, wait)
            .await
            .context("no reply in time")?
            .context("link closed before the reply")?;
        reply.result.context("empty reply")
    }

    /// Sends a request and waits up to 60 s for its reply.
    pub async fn request(&self, op: Op) -> anyhow::Result<R> {
        self.request_within(op, Duration::from_secs(60)).await
    }

    /// Acks `seq` of `session`.
    pub async fn ack(&self, session: &str, seq: u64) -> anyhow::Result<()> {
        self.tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::Ack(v1::Ack {
                    session_id: session.to_owned(),
                    seq,
                })),
            })
            .await
            .context("link closed")
    }

    /// Waits until `f` picks something out of a message received from now on or already in
    /// `seen` at index `from` or later. Returns the value and the index it was found at.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        mut f: impl FnMut(&v1::NodeMsg) -> Option<T>,
    ) -> anyhow::Result<(T, usize)> {
        for (i, msg) in self.seen.iter().enumerate().skip(from) {
            if let Some(v) = f(msg) {
                return Ok((v, i));
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => bail!("link closed while waiting for {what}"),
                Err(_) => bail!(
                    "timed out after {timeout:?} waiting for {what}; last messages: {:#?}",
                    self.seen.iter().rev().take(8).collect::<Vec<_>>()
                ),
            };
            self.seen.push(msg);
            let i = self.seen.len() - 1;
            if let Some(v) = f(&self.seen[i]) {
                return Ok((v, i));
            }
        }
    }

    /// Collects whatever arrives within `window` (for asserting that nothing more comes).
    pub async fn drain_for(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.inbox.recv()).await {
            self.seen.push(msg);
        }
    }

    /// Session events seen so far for `session`.
    pub fn events(&self, session: &str) -> Vec<v1::SessionEvent> {
        self.seen
            .iter()
            .filter_map(|m| match &m.kind {
                Some(node_msg::Kind::Event(e)) if e.session_id == session => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The event of a message, if it is one for `session`.
pub fn event_of<'a>(msg: &'a v1::NodeMsg, session: &str) -> Option<&'a v1::SessionEvent> {
    match &msg.kind {
        Some(node_msg::Kind::Event(e)) if e.session_id == session => Some(e),
        _ => None,
    }
}

/// The final answer text, if `msg` is a completed turn of `session`.
pub fn final_answer(msg: &v1::NodeMsg, session: &str) -> Option<String> {
    match &event_of(msg, session)?.kind {
        Some(v1::session_event::Kind::TurnCompleted(t)) => Some(t.last_agent_message.clone()),
        _ => None,
    }
}

/// The terminal state, if `msg` is one for `session`.
pub fn terminal_of<'a>(msg: &'a v1::NodeMsg, session: &str) -> Option<&'a v1::TerminalState> {
    match &msg.kind {
        Some(node_msg::Kind::Terminal(t)) if t.session_id == session => Some(t),
        _ => None,
    }
}
