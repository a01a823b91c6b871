//! A transport-neutral, bidirectional link of protocol messages.
//!
//! Session code on both sides runs on a [`Link`] and cannot tell whether the other end is in the
//! same process ([`pair`]) or across a gRPC stream ([`Link::from_streaming`]).

use futures::{Stream, StreamExt, stream::BoxStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::v1;

/// Why a link stopped delivering messages.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The other end went away.
    #[error("link closed")]
    Closed,
    /// The transport reported an error.
    #[error("transport error: {0}")]
    Transport(String),
}

impl From<tonic::Status> for LinkError {
    fn from(status: tonic::Status) -> Self {
        Self::Transport(format!("{}: {}", status.code(), status.message()))
    }
}

/// One end of a bidirectional link: a sender for outgoing messages and a stream of incoming ones.
pub struct Link<Tx, Rx> {
    /// Outgoing messages.
    pub tx: mpsc::Sender<Tx>,
    /// Incoming messages; ends when the other side closes.
    pub rx: BoxStream<'static, Result<Rx, LinkError>>,
}

/// The center's end: sends `CenterMsg`, receives `NodeMsg`.
pub type CenterLink = Link<v1::CenterMsg, v1::NodeMsg>;
/// The node's end: sends `NodeMsg`, receives `CenterMsg`.
pub type NodeLink = Link<v1::NodeMsg, v1::CenterMsg>;

impl<Tx, Rx: Send + 'static> Link<Tx, Rx> {
    /// Builds a link from an outgoing sender and any stream of incoming results, e.g. tonic's
    /// `Streaming<Rx>` mapped with `LinkError::from`.
    pub fn from_streaming<S, E>(tx: mpsc::Sender<Tx>, rx: S) -> Self
    where
        S: Stream<Item = Result<Rx, E>> + Send + 'static,
        E: Into<LinkError>,
    {
        Self {
            tx,
            rx: rx.map(|item| item.map_err(Into::into)).boxed(),
        }
    }
}

/// Two connected in-memory ends, for the embedded node and for tests.
pub fn pair(capacity: usize) -> (CenterLink, NodeLink) {
    let (to_node, node_rx) = mpsc::channel(capacity);
    let (to_center, center_rx) = mpsc::channel(capacity);
    (
        Link {
            tx: to_node,
            rx: ReceiverStream::new(center_rx).map(Ok).boxed(),
        },
        Link {
            tx: to_center,
            rx: ReceiverStream::new(node_rx).map(Ok).boxed(),
        },
    )
}
