//! The node's connection to its center: at most one link is attached at a time (a newer one
//! replaces the older), and messages that are not replayable (terminal states, lifecycle,
//! heartbeats) go to whichever link is attached now. Session events do not pass through here:
//! each window's tail task holds the link it delivers to (see `crate::session`).

use shared::sync::LockExt;
use std::sync::{Arc, Mutex};

use proto::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Attached {
    generation: u64,
    sink: mpsc::Sender<v1::NodeMsg>,
    token: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    next_generation: u64,
    current: Option<Attached>,
}

/// Cloneable handle on the attached link.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
}

impl Hub {
    /// Makes `sink` the attached link; the previous link's token is cancelled so its session
    /// loop ends. Returns the new link's generation.
    pub(crate) fn attach(&self, sink: mpsc::Sender<v1::NodeMsg>, token: CancellationToken) -> u64 {
        let mut state = self.state.locked();
        state.next_generation += 1;
        let generation = state.next_generation;
        if let Some(old) = state.current.replace(Attached {
            generation,
            sink,
            token,
        }) {
            tracing::info!("a newer center link replaced the attached one");
            old.token.cancel();
        }
        generation
    }

    /// Detaches the link of `generation` if it is still the attached one.
    pub(crate) fn detach(&self, generation: u64) {
        let mut state = self.state.locked();
        if state
            .current
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            state.current = None;
        }
    }

    /// The attached link's sender, if any.
    pub(crate) fn sink(&self) -> Option<mpsc::Sender<v1::NodeMsg>> {
        let state = self.state.locked();
        state.current.as_ref().map(|a| a.sink.clone())
    }

    /// Sends to the attached link; dropped when none is attached (the center re-reads state
    /// when it attaches).
    pub(crate) async fn send(&self, msg: v1::NodeMsg) {
        if let Some(sink) = self.sink() {
            let _ = sink.send(msg).await;
        }
    }
}
