//! The center's shared state: its configuration, store, outbox and node links, who may talk to
//! the bot, and the per-topic queues and caches the runtime keeps. It holds state and small
//! services only; what happens to an update lives with the feature that handles it —
//! [`crate::topics`] (updates to ordered per-topic tasks), [`crate::input`] (typing into
//! Codex before any receipt), [`crate::fleet`] (nodes joining and leaving) — so this module
//! depends on none of them and no module imports it back in a loop.

use shared::sync::LockExt;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;

use crate::{
    config::CenterConfig,
    flows::menu::Menus,
    nodes::NodeConn,
    store::{Binding, StateUnreadable, Store, Surface},
    telegram::{
        outbox::{Class, Outbox, Send},
        render,
    },
};

/// Ordinary node requests.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Shared state of the running center.
pub struct App {
    pub(crate) cfg: CenterConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) outbox: Outbox,
    pub(crate) nodes: crate::nodes::NodeMap,
    pub(crate) menus: Menus,
    /// Each topic's in-memory state: its update task, its input queue (inputs and held-input
    /// work run one after another, so messages reach Codex in the order they were sent), its
    /// receipt still waiting to be sent, its toolbar.
    pub(crate) topics: crate::topic_state::Topics,
    /// The bot's username (getMe), once known: `/cmd@other_bot` is not for us.
    pub(crate) username: std::sync::OnceLock<String>,
    pub(crate) fleet: std::sync::OnceLock<Fleet>,
    pub(crate) seen: Mutex<std::collections::HashSet<String>>,
    /// Groups whose unserved state an allowed user was told about (see `explain_unserved`).
    pub(crate) unserved_told: Mutex<std::collections::HashSet<i64>>,
    /// Nodes whose topics were told they are offline.
    pub(crate) warned: Mutex<std::collections::HashSet<String>>,
    /// Units of work of topics (updates, inputs), guarded and waited for at shutdown.
    pub(crate) tasks: shared::shutdown::Tasks,
    /// Voice transcription, when configured.
    pub(crate) transcriber: Option<crate::media::transcribe::Transcriber>,
    /// The job runtime, once started ([`App::start_jobs`]).
    pub(crate) jobs: std::sync::OnceLock<crate::jobs::Jobs>,
    /// What was typed into each session lately (desk messages are the others).
    pub(crate) typed: crate::typed::TypedRecently,
    /// Each topic's `/verbose` choices, as last read.
    pub(crate) verbose: crate::verbose::Choices,
    /// (node, session) of windows announced as closed while their node was away
    /// ([`crate::node_back`]), each once per process.
    pub(crate) announced_gone:
        Mutex<std::collections::HashSet<(shared::ids::NodeName, shared::ids::SessionId)>>,
}

/// A node must stay away this long before its topics are told.
pub(crate) const OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a node could not be invited or enrolled.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The center runs without its CA (it could not be set up at start).
    #[error("fleet support is not running")]
    NotRunning,
    /// The invitation or enrollment itself failed.
    #[error(transparent)]
    Enroll(#[from] crate::nodes::pki::EnrollError),
}

/// What adding nodes at run time needs.
pub struct Fleet {
    /// The CA and the center's identity.
    pub pki: crate::nodes::pki::CenterPki,
    /// Where node links deliver.
    pub inbound: mpsc::Sender<crate::nodes::Inbound>,
    /// Stops connectors.
    pub token: tokio_util::sync::CancellationToken,
}

impl App {
    /// A center with no nodes yet.
    pub fn new(
        cfg: CenterConfig,
        store: Store,
        outbox: Outbox,
    ) -> Result<Arc<Self>, crate::media::transcribe::TranscribeError> {
        let transcriber = crate::media::transcribe::Transcriber::from_config(&cfg.voice)?;
        Ok(Arc::new(Self {
            transcriber,
            tasks: shared::shutdown::Tasks::new(tokio_util::sync::CancellationToken::new()),
            cfg,
            store: Arc::new(store),
            outbox,
            username: std::sync::OnceLock::new(),
            nodes: crate::nodes::NodeMap::default(),
            menus: Menus::default(),
            topics: crate::topic_state::Topics::default(),
            fleet: std::sync::OnceLock::new(),
            seen: Mutex::new(std::collections::HashSet::new()),
            warned: Mutex::new(std::collections::HashSet::new()),
            unserved_told: Mutex::new(std::collections::HashSet::new()),
            jobs: std::sync::OnceLock::new(),
            typed: crate::typed::TypedRecently::default(),
            verbose: crate::verbose::Choices::default(),
            announced_gone: Mutex::new(std::collections::HashSet::new()),
        }))
    }

    /// Starts the job runtime (before nodes connect: it learns of them as they do).
    pub fn start_jobs(&self) {
        let env = crate::jobs::Env {
            store: self.store.clone(),
            outbox: self.outbox.clone(),
            nodes: self.nodes.clone(),
            cfg: self.cfg.jobs.clone(),
        };
        let _ = self.jobs.set(crate::jobs::Jobs::start(env));
    }

    /// The job runtime, if started.
    pub(crate) fn jobs(&self) -> Option<&crate::jobs::Jobs> {
        self.jobs.get()
    }

    /// The fleet's PKI, once fleet support runs.
    pub fn pki(&self) -> Option<&crate::nodes::pki::CenterPki> {
        self.fleet.get().map(|f| &f.pki)
    }

    /// Whether `name` was ever connected in this process (for "back online" notices).
    pub fn seen_before(&self, name: &str) -> bool {
        self.seen.locked().contains(name)
    }

    /// Names of the connected nodes, sorted.
    pub(crate) fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.locked().keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn node(&self, name: &str) -> Option<Arc<NodeConn>> {
        self.nodes.locked().get(name).cloned()
    }

    pub(crate) fn allowed(&self, user_id: u64) -> bool {
        self.cfg.allowed_users.contains(&user_id)
    }

    /// Remembers the bot's username, so commands addressed to other bots are left alone.
    pub fn set_username(&self, username: String) {
        let _ = self.username.set(username);
    }

    /// The topic's binding. A store failure is an error (logged here), never "not bound": that
    /// would open a bind menu in a bound topic or drop its held inputs.
    pub(crate) fn binding(&self, surface: Surface) -> Result<Option<Binding>, StateUnreadable> {
        self.store.binding(surface).map_err(|err| {
            tracing::error!(error = %err, "reading a binding failed");
            StateUnreadable
        })
    }

    /// Posts a short notice to every allowed user in private (not awaited).
    pub(crate) fn tell_owners(&self, text: &str) {
        self.tell_owners_with(text, None);
    }

    /// Like [`App::tell_owners`], with buttons under each message.
    pub(crate) fn tell_owners_with(
        &self,
        text: &str,
        keyboard: Option<&crate::telegram::api::Keyboard>,
    ) {
        for user in &self.cfg.allowed_users {
            drop(self.outbox.send(Send {
                surface: Surface {
                    chat_id: *user as i64,
                    thread_id: 0,
                },
                html: render::escape_html(text),
                plain: text.to_owned(),
                keyboard: keyboard.cloned(),
                reply_to: None,
                class: Class::Message,
            }));
        }
    }

    /// Posts a short notice in a topic (not awaited).
    pub(crate) fn notice(&self, surface: Surface, text: &str, reply_to: Option<i32>) {
        drop(self.outbox.send(Send {
            surface,
            html: render::escape_html(text),
            plain: text.to_owned(),
            keyboard: None,
            reply_to,
            class: Class::Message,
        }));
    }
}

/// Why a topic's binding ended without `/unbind` or `/kill`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TopicGone {
    /// An allowed user closed the topic.
    Closed,
    /// Someone else (an admin of the group) closed it.
    ClosedByStranger(u64),
    /// The topic no longer exists (Telegram says so when the center posts in it).
    Deleted,
}
