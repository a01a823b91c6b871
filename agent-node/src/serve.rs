//! One link's conversation: handshake (version negotiation, cursors), then requests, acks and
//! heartbeats until the link closes or a newer link replaces it.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures::StreamExt;
use proto::{
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    link::NodeLink,
    v1::{self, center_msg, node_msg},
};
use tokio_util::sync::CancellationToken;

use crate::{health::LinkHealth, node::Node, session::TailCmd};

/// How long the center has to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a link ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The first message was not a usable `Hello`.
    #[error("handshake failed: {0}")]
    Handshake(String),
}

/// The center and this node share no protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "incompatible protocol: the center speaks versions {center_min}..={center_max}, this node {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}; upgrade the older side"
)]
pub(crate) struct IncompatibleVersions {
    /// The oldest version the center speaks.
    pub(crate) center_min: u32,
    /// The newest version the center speaks.
    pub(crate) center_max: u32,
}

/// Picks the protocol version both sides speak, or explains why there is none.
pub(crate) fn negotiate(min: u32, max: u32) -> Result<u32, IncompatibleVersions> {
    let chosen = max.min(PROTOCOL_VERSION);
    if chosen < min.max(MIN_PROTOCOL_VERSION) || min > max {
        return Err(IncompatibleVersions {
            center_min: min,
            center_max: max,
        });
    }
    Ok(chosen)
}

impl Node {
    /// Serves one link until it closes, a newer link replaces it, or `token` is cancelled.
    pub async fn serve(&self, link: NodeLink, token: CancellationToken) -> Result<(), ServeError> {
        let NodeLink { tx, mut rx } = link;
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, rx.next()).await {
            Ok(Some(Ok(v1::CenterMsg {
                kind: Some(center_msg::Kind::Hello(hello)),
            }))) => hello,
            Ok(Some(Ok(_))) => return self.refuse(&tx, "the first message must be Hello").await,
            Ok(Some(Err(err))) => return Err(ServeError::Handshake(err.to_string())),
            Ok(None) => return Err(ServeError::Handshake("link closed before Hello".into())),
            Err(_) => return self.refuse(&tx, "no Hello within 10 s").await,
        };
        let version = match negotiate(hello.min_version, hello.max_version) {
            Ok(v) => v,
            Err(incompatible) => return self.refuse(&tx, &incompatible.to_string()).await,
        };
        let welcome = v1::NodeMsg {
            kind: Some(node_msg::Kind::Welcome(v1::Welcome {
                version,
                node_name: self.inner.cfg.name.clone(),
                node_version: crate::upgrade::node_version(),
            })),
        };
        if tx.send(welcome).await.is_err() {
            return Ok(());
        }
        let link_token = token.child_token();
        let generation = self.inner.hub.attach(tx.clone(), link_token.clone());
        tracing::info!(center.version = %hello.center_version, version, "center attached");
        // Before the replay: the heartbeat's lag watch must see the replayed events.
        self.spawn_heartbeat(tx.clone(), link_token.clone(), &hello.cursors);
        self.replay(&tx, &hello.cursors).await;
        self.inner.jobs.replay(&tx, &hello.job_cursors).await;

        loop {
            let msg = tokio::select! {
                () = link_token.cancelled() => break,
                msg = rx.next() => msg,
            };
            let kind = match msg {
                Some(Ok(v1::CenterMsg { kind: Some(kind) })) => kind,
                Some(Ok(_)) => continue,
                Some(Err(err)) => {
                    tracing::info!(error = %err, "center link failed");
                    break;
                }
                None => break,
            };
            match kind {
                center_msg::Kind::Request(request) => {
                    let node = self.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let reply = node.handle(request).await;
                        let _ = tx
                            .send(v1::NodeMsg {
                                kind: Some(node_msg::Kind::Reply(reply)),
                            })
                            .await;
                    });
                }
                center_msg::Kind::Ack(ack) => self.inner.windows.ack(&ack.session_id, ack.seq),
                center_msg::Kind::OutgoingResult(result) => self.inner.outbox.resolve(result),
                center_msg::Kind::JobAck(ack) => self.inner.jobs.ack(&ack.job_id, ack.seq),
                center_msg::Kind::Hello(_) => {
                    tracing::debug!("ignoring a second Hello on one link");
                }
            }
        }
        self.inner.hub.detach(generation);
        link_token.cancel();
        tracing::info!("center detached");
        Ok(())
    }

    async fn refuse(
        &self,
        tx: &tokio::sync::mpsc::Sender<v1::NodeMsg>,
        reason: &str,
    ) -> Result<(), ServeError> {
        tracing::warn!(reason, "refusing a center link");
        let _ = tx
            .send(v1::NodeMsg {
                kind: Some(node_msg::Kind::Refused(v1::Refused {
                    reason: reason.to_owned(),
                })),
            })
            .await;
        Err(ServeError::Handshake(reason.to_owned()))
    }

    /// Points every window's tail at the new link, from the center's cursor (or the node's record
    /// of the center's acks), and sends the current screen of each live window.
    async fn replay(
        &self,
        tx: &tokio::sync::mpsc::Sender<v1::NodeMsg>,
        cursors: &[v1::SessionCursor],
    ) {
        let cursors: HashMap<&str, u64> = cursors
            .iter()
            .map(|c| (c.session_id.as_str(), c.acked_seq))
            .collect();
        for rt in self.inner.windows.runtimes() {
            let Some(record) = self.inner.windows.record(&rt.id) else {
                continue;
            };
            let acked = cursors
                .get(rt.id.as_str())
                .copied()
                .unwrap_or(record.acked_seq);
            let from = acked.max(record.start_offset);
            tracing::debug!(session.id = %rt.id, from, "replaying to the center");
            let _ = rt
                .tail_tx
                .send(TailCmd::Attach {
                    sink: tx.clone(),
                    from,
                })
                .await;
            if rt.alive.load(Ordering::Relaxed) {
                let _ = tx
                    .send(v1::NodeMsg {
                        kind: Some(node_msg::Kind::Terminal(rt.screen_state())),
                    })
                    .await;
            }
        }
    }

    /// Beats every `heartbeat_interval`, and once more when Codex's state is first known.
    fn spawn_heartbeat(
        &self,
        tx: tokio::sync::mpsc::Sender<v1::NodeMsg>,
        token: CancellationToken,
        cursors: &[v1::SessionCursor],
    ) {
        let node = self.clone();
        let health = Arc::new(LinkHealth::start(self, cursors, &token));
        // Supervised: a beat that panicked is followed by the next one, not by a silent link.
        shared::shutdown::supervise("heartbeat", token.clone(), move || {
            beat(node.clone(), health.clone(), tx.clone(), token.clone())
        });
    }
}

/// Beats every `heartbeat_interval` and when Codex's state changed, until the link ends.
async fn beat(
    node: Node,
    health: Arc<LinkHealth>,
    tx: tokio::sync::mpsc::Sender<v1::NodeMsg>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(node.inner.cfg.heartbeat_interval);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = tick.tick() => {}
            () = health.codex.changed() => {}
        }
        let beat = v1::NodeMsg {
            kind: Some(node_msg::Kind::Heartbeat(health.heartbeat(&node).await)),
        };
        if tx.send(beat).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_negotiate_or_explain() {
        assert_eq!(negotiate(1, 1), Ok(1));
        assert_eq!(negotiate(1, 9), Ok(PROTOCOL_VERSION));
        assert_eq!(negotiate(1, 2), Ok(2));
        let err = negotiate(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("incompatible protocol"), "{err}");
        assert!(negotiate(3, 2).is_err());
    }
}
