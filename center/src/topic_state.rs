//! What the center keeps in memory for each topic, in one place under one lock: the task that
//! handles its updates in order, the queue that types its inputs in order, its receipt still
//! waiting to be sent (the turn's first tool lines join it), and its latest `/toolbar` message.
//! One owner instead of a map per concern: code that changes a topic's state sees all of it,
//! and nothing about a topic is kept in two places. What must survive a restart is in the store.

use std::{collections::HashMap, sync::Mutex};

use shared::sync::LockExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    inbox::UpdateLease,
    store::Surface,
    telegram::{inbound::TopicEvent, outbox::LiveText},
};

/// Work on a topic's input queue.
pub(crate) type InputJob =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + std::marker::Send>>;

/// One topic's in-memory state.
#[derive(Default)]
pub(crate) struct Topic {
    /// The task that handles the topic's updates (see `App::route`).
    pub(crate) updates: Option<UnboundedSender<(TopicEvent, UpdateLease)>>,
    /// The queue its inputs are typed from (see `App::enqueue_input`).
    pub(crate) inputs: Option<UnboundedSender<InputJob>>,
    /// Its receipt queued and not yet sent.
    pub(crate) pending_receipt: Option<LiveText>,
    /// Its latest `/toolbar` message (a new one replaces it); a restart forgets it.
    pub(crate) toolbar: Option<i32>,
}

/// Every topic's in-memory state.
#[derive(Default)]
pub(crate) struct Topics(Mutex<HashMap<Surface, Topic>>);

impl Topics {
    /// Runs `f` on the topic's state (created empty on first use) under the one lock; `f` must
    /// not wait.
    pub(crate) fn with<R>(&self, surface: Surface, f: impl FnOnce(&mut Topic) -> R) -> R {
        f(self.0.locked().entry(surface).or_default())
    }
}
