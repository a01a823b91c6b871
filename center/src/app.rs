//! The center's core: who may talk to the bot, which topic is bound to which session, and what
//! happens to each Telegram update. Updates of one topic are handled in order by that topic's
//! own task; topics run concurrently. Every accepted update is in the durable inbox
//! ([`crate::inbox`]) until its work is done, and input is typed into Codex before its receipt
//! is posted: typing never waits for Telegram.

use shared::{ids::ThreadId, sync::LockExt};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use proto::v1::{self, reply::Result as R, request::Op};
use teloxide::types::Update;
use tokio::sync::mpsc;

use crate::{
    config::CenterConfig,
    flows::Menus,
    inbox::UpdateLease,
    nodes::{CallError, NodeConn},
    router::held::Admit,
    store::{Binding, InputMode, StatusChange, Store, Surface},
    telegram::{
        inbound::{self, Inbound, TopicEvent, What},
        outbox::{Class, LiveText, Outbox, Send},
        render,
    },
};

/// How long a typed message may take to be confirmed by the node (it waits for Codex too).
const INPUT_TIMEOUT: Duration = Duration::from_secs(90);
/// Ordinary node requests.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Shared state of the running center.
pub struct App {
    pub(crate) cfg: CenterConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) outbox: Outbox,
    pub(crate) nodes: crate::nodes::NodeMap,
    pub(crate) menus: Menus,
    topics: Mutex<HashMap<Surface, mpsc::UnboundedSender<(TopicEvent, UpdateLease)>>>,
    /// Receipts queued and not yet sent, per topic: the turn's first status lines join them
    /// instead of costing a message of their own.
    pending_receipts: Mutex<HashMap<Surface, LiveText>>,
    /// The bot's username (getMe), once known: `/cmd@other_bot` is not for us.
    username: std::sync::OnceLock<String>,
    /// One queue per topic: inputs (and held-input work) run one after another, in the order
    /// they were queued, so messages reach Codex in the order they were sent.
    input_queues: Mutex<HashMap<Surface, mpsc::UnboundedSender<InputJob>>>,
    fleet: std::sync::OnceLock<Fleet>,
    seen: Mutex<std::collections::HashSet<String>>,
    /// Groups whose unserved state an allowed user was told about (see `explain_unserved`).
    unserved_told: Mutex<std::collections::HashSet<i64>>,
    /// Nodes whose topics were told they are offline.
    warned: Mutex<std::collections::HashSet<String>>,
    /// Units of work of topics (updates, inputs), guarded and waited for at shutdown.
    pub(crate) tasks: shared::shutdown::Tasks,
    /// Voice transcription, when configured.
    pub(crate) transcriber: Option<crate::media::transcribe::Transcriber>,
    /// The job runtime, once started ([`App::start_jobs`]).
    jobs: std::sync::OnceLock<crate::jobs::Jobs>,
    /// What was typed into each session lately (desk messages are the others).
    pub(crate) typed: crate::typed::TypedRecently,
    /// Each topic's `/verbose` choices, as last read.
    pub(crate) verbose: crate::verbose::Choices,
    /// Each topic's latest `/toolbar` message (a new one replaces it); a restart forgets them.
    pub(crate) toolbars: Mutex<HashMap<Surface, i32>>,
    /// (node, session) of windows announced as closed while their node was away
    /// ([`crate::node_back`]), each once per process.
    pub(crate) announced_gone: Mutex<std::collections::HashSet<(String, String)>>,
}

/// Attachments that follow each other within this time become one input.
const ATTACHMENT_BURST: Duration = Duration::from_millis(1500);

/// A node must stay away this long before its topics are told.
pub const OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Work on a topic's input queue.
pub(crate) type InputJob =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + std::marker::Send>>;

/// The text a user sent and the message to reply to.
#[derive(Debug, Clone)]
pub(crate) struct PendingInput {
    pub(crate) text: String,
    pub(crate) reply_to: i32,
    pub(crate) mode: InputMode,
    /// The update(s) it came from stay unfinished in the inbox while this lives.
    #[expect(
        dead_code,
        reason = "held for its Drop: the last one finishes the update"
    )]
    pub(crate) leases: Vec<UpdateLease>,
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
            pending_receipts: Mutex::new(HashMap::new()),
            nodes: crate::nodes::NodeMap::default(),
            menus: Menus::default(),
            topics: Mutex::new(HashMap::new()),
            input_queues: Mutex::new(HashMap::new()),
            fleet: std::sync::OnceLock::new(),
            seen: Mutex::new(std::collections::HashSet::new()),
            warned: Mutex::new(std::collections::HashSet::new()),
            unserved_told: Mutex::new(std::collections::HashSet::new()),
            jobs: std::sync::OnceLock::new(),
            typed: crate::typed::TypedRecently::default(),
            verbose: crate::verbose::Choices::default(),
            toolbars: Mutex::new(HashMap::new()),
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

    /// A join code for a node that will dial in.
    pub fn invite_node(&self, name: &str) -> Result<String, FleetError> {
        let pki = self.pki().ok_or(FleetError::NotRunning)?;
        Ok(pki.invite(&self.store, name)?)
    }

    /// Sets up fleet support and starts dialling the known remote nodes.
    pub fn start_fleet(self: &Arc<Self>, fleet: Fleet) {
        // The PKI is in place before any connector starts: a connector that ran first found
        // "fleet support is not running" and gave up on its node until the next restart.
        let _ = self.fleet.set(fleet);
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        for node in self.store.nodes().unwrap_or_default() {
            // Nodes without an endpoint dial in themselves.
            if !node.revoked && !node.endpoint.is_empty() {
                self.dial(fleet, node.name, node.endpoint, &node.cert_serial);
            }
        }
    }

    fn dial(self: &Arc<Self>, fleet: &Fleet, name: String, endpoint: String, cert_serial: &str) {
        // Nodes enrolled by this center speak mutual TLS; others are reached only on their Unix
        // socket (the connector refuses a TCP endpoint without TLS).
        let security = if cert_serial.is_empty() {
            crate::nodes::connector::Security::LocalSocket
        } else {
            match fleet.pki.client_tls(&name) {
                Ok(tls) => crate::nodes::connector::Security::Mtls(tls),
                Err(err) => {
                    tracing::error!(node = %name, error = %err, "cannot set up TLS for the node");
                    return;
                }
            }
        };
        crate::nodes::connector::spawn(
            self.clone(),
            name,
            endpoint,
            security,
            fleet.inbound.clone(),
            fleet.token.clone(),
        );
    }

    /// Enrolls a node from its join code and starts dialling it.
    /// A code that failed is spent all the same: a secret shown in a chat once is not tried
    /// again (the node prints a new one with `agent-node init`).
    pub async fn add_remote_node(
        self: &Arc<Self>,
        name: &str,
        endpoint: &str,
        code: &str,
    ) -> Result<(), FleetError> {
        let fleet = self.fleet.get().ok_or(FleetError::NotRunning)?;
        let enrolled = fleet.pki.enroll(&self.store, name, endpoint, code).await;
        let serial = match enrolled {
            Ok(serial) => serial,
            Err(err) => {
                if let Ok(c) = shared::pki::JoinCode::decode(code) {
                    let _ = self.store.use_join_code(&c.secret_hash());
                }
                return Err(err.into());
            }
        };
        self.dial(fleet, name.to_owned(), endpoint.to_owned(), &serial);
        Ok(())
    }

    /// While `conn` is up, renews node `name`'s certificate whenever 2/3 of its lifetime have
    /// passed (checked at connect and twice a day).
    pub fn keep_certificate_fresh(self: &Arc<Self>, name: String, conn: Arc<NodeConn>) {
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                app.renew_if_due(&name, &conn).await;
                tokio::select! {
                    () = conn.closed() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(12 * 3600)) => {}
                }
            }
        });
    }

    async fn renew_if_due(&self, name: &str, conn: &NodeConn) {
        let Some(pki) = self.pki() else { return };
        let status = conn
            .call(
                Op::CertificateStatus(v1::CertificateStatus {}),
                CALL_TIMEOUT,
            )
            .await;
        let Ok(R::CertStatus(s)) = status else {
            return; // plaintext or older node: nothing to renew
        };
        if !s.renewal_due || s.csr_pem.is_empty() {
            return;
        }
        let cert = match pki.sign_renewal(name, &s.csr_pem) {
            Ok(cert) => cert,
            Err(err) => {
                tracing::warn!(node = %name, error = %err, "cannot renew the node's certificate");
                return;
            }
        };
        let op = Op::InstallCertificate(v1::InstallCertificate {
            cert_pem: cert.clone(),
            ca_pem: pki.ca_pem().to_owned(),
        });
        match conn.call(op, CALL_TIMEOUT).await {
            Ok(_) => {
                let serial = shared::pki::inspect(cert.as_bytes())
                    .map(|i| i.serial_hex)
                    .unwrap_or_default();
                let endpoint = self
                    .store
                    .node(name)
                    .ok()
                    .flatten()
                    .map(|n| n.endpoint)
                    .unwrap_or_default();
                let _ = self.store.put_node(name, &endpoint, &serial);
                tracing::info!(node = %name, "renewed the node's certificate");
            }
            Err(err) => {
                tracing::warn!(node = %name, error = %err, "installing a renewed certificate failed")
            }
        }
    }

    /// Revokes a node at once: its link is closed and it is never dialled again.
    pub fn revoke_node(&self, name: &str) -> bool {
        let revoked = self.store.revoke_node(name).unwrap_or(false);
        if let Some(conn) = self.nodes.locked().remove(name) {
            conn.close();
        }
        if revoked {
            tracing::info!(node = %name, "node revoked");
        }
        revoked
    }

    /// Registers a node connection.
    pub fn add_node(&self, conn: Arc<NodeConn>) {
        let name = conn.name().to_owned();
        self.seen.locked().insert(name.clone());
        self.nodes.locked().insert(name.clone(), conn);
        if let Some(jobs) = self.jobs() {
            jobs.node_online(&name, true);
        }
    }

    /// Forgets a node's connection if it is still `conn` (a newer one may have replaced it).
    pub fn remove_node(&self, name: &str, conn: &Arc<NodeConn>) {
        let mut nodes = self.nodes.locked();
        if nodes.get(name).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            nodes.remove(name);
        }
    }

    /// Names of the connected nodes, sorted.
    pub(crate) fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.locked().keys().cloned().collect();
        names.sort();
        names
    }

    /// Tells the topics bound to `name` that it went away or came back. A drop is announced only
    /// if the node is still away after [`OFFLINE_GRACE`] (brief blips stay quiet, and a fleet-wide
    /// blip does not spend the chat budget on notices); "back online" only follows a warning.
    pub async fn node_changed(self: &Arc<Self>, name: &str, online: bool, was_online: bool) {
        if let Some(jobs) = self.jobs() {
            jobs.node_online(name, online);
        }
        if online {
            crate::node_back::returned(self, name, was_online);
            let warned = self.warned.locked().remove(name);
            if warned {
                self.tell_node_topics(
                    name,
                    &format!("✅ {name} is back online; anything Codex did meanwhile follows."),
                );
            }
            return;
        }
        let app = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(OFFLINE_GRACE).await;
            if app.node(&name).is_some_and(|c| c.online()) {
                return;
            }
            if app
                .store
                .node(&name)
                .ok()
                .flatten()
                .is_some_and(|n| n.revoked)
            {
                return;
            }
            if app.warned.locked().insert(name.clone()) {
                app.tell_node_topics(
                    &name,
                    &format!("⚠️ Lost the connection to {name}. Messages to this topic are refused until it is back."),
                );
            }
        });
    }

    fn tell_node_topics(&self, name: &str, text: &str) {
        for b in self
            .store
            .bindings()
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.node == name)
        {
            self.notice(b.surface, text, None);
        }
    }

    pub(crate) fn node(&self, name: &str) -> Option<Arc<NodeConn>> {
        self.nodes.locked().get(name).cloned()
    }

    fn allowed(&self, user_id: u64) -> bool {
        self.cfg.allowed_users.contains(&user_id)
    }

    /// Remembers the bot's username, so commands addressed to other bots are left alone.
    pub fn set_username(&self, username: String) {
        let _ = self.username.set(username);
    }

    /// Reads an update as the center's own input (see [`crate::telegram::inbound`]).
    fn read(&self, update: &Update) -> Option<Inbound> {
        inbound::read(update, self.username.get().map(String::as_str))
    }

    /// Whether the bot acts in this chat: a private chat (an allowed user's own); a group in
    /// `allowed_chats` when that is set; otherwise an owned group (one an allowed user added the
    /// bot to, or with bound topics). Anywhere else it does nothing at all.
    fn serves_chat(&self, chat_id: i64) -> bool {
        if chat_id > 0 {
            return true;
        }
        if !self.cfg.allowed_chats.is_empty() {
            return self.cfg.allowed_chats.contains(&chat_id);
        }
        self.store.owned_chat(chat_id).unwrap_or_else(|err| {
            tracing::error!(error = %err, "reading owned chats failed");
            false
        })
    }

    /// An allowed user wrote in a group the bot does not serve: the group sees nothing, the user
    /// is told why in private, once per group and run.
    fn explain_unserved(&self, user: u64, chat_id: i64) {
        if chat_id > 0 || !self.cfg.allowed_chats.is_empty() {
            return;
        }
        if !self.unserved_told.locked().insert(chat_id) {
            return;
        }
        let text = format!(
            "I stay silent in the group {chat_id}: no allowed user added me to it. Remove me and add me again \
             there, or list the group in ALLOWED_CHATS."
        );
        let private = Surface {
            chat_id: user as i64,
            thread_id: 0,
        };
        self.notice(private, &text, None);
    }

    /// The topic and event of an update the center acts on: an allowed user's, in a chat it
    /// serves (an allowed user in a chat it does not serve is told why, once). A topic closed by
    /// anyone (an admin who is not an allowed user, too) still ends its binding: the center must
    /// not keep a window for a topic nobody can write in. The chat is looked up once.
    fn served(&self, inbound: Inbound) -> Option<(Surface, TopicEvent)> {
        let What::InTopic(surface, event) = inbound.what else {
            return None;
        };
        let allowed = self.allowed(inbound.user);
        if !allowed && !matches!(event, TopicEvent::TopicClosed { .. }) {
            return None;
        }
        if !self.serves_chat(surface.chat_id) {
            if allowed {
                self.explain_unserved(inbound.user, surface.chat_id);
            }
            return None;
        }
        Some((surface, event))
    }

    /// The bot was added to a group or removed from it: a group an allowed user added it to is
    /// owned (see [`App::serves_chat`]); a removal forgets it, whoever removed the bot.
    fn membership_changed(&self, user: u64, chat_id: i64, present: bool) {
        if chat_id > 0 {
            return; // a private chat: always the user's own
        }
        let recorded = if !present {
            tracing::info!(chat.id = chat_id, "the bot was removed from a group");
            self.store.disown_chat(chat_id)
        } else if self.allowed(user) {
            tracing::info!(
                chat.id = chat_id,
                "an allowed user added the bot to a group"
            );
            self.store.own_chat(chat_id, user)
        } else {
            tracing::info!(
                chat.id = chat_id,
                "the bot was added to a group by someone who is not an allowed user; it stays silent there"
            );
            Ok(())
        };
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording the bot's membership failed");
        }
    }

    /// Answers a button press that can do nothing ("This button has expired.").
    fn expire_button(&self, query_id: String) {
        let tg = self.outbox.tg().clone();
        tokio::spawn(async move {
            let expired = crate::telegram::callback::EXPIRED;
            let _ = tg.answer_callback(&query_id, Some(expired)).await;
        });
    }

    /// Takes one update from polling: drops it unless an allowed user sent it and it is new,
    /// writes it to the inbox, then queues it on its topic's task.
    pub fn dispatch(self: &Arc<Self>, update: &Update) {
        let Some(inbound) = self.read(update) else {
            tracing::debug!(
                update.id = update.id.0,
                "update not for the center; ignored"
            );
            return;
        };
        if let What::Membership { chat_id, present } = inbound.what {
            self.membership_changed(inbound.user, chat_id, present);
            return;
        }
        if let What::StaleButton { query_id } = &inbound.what
            && self.allowed(inbound.user)
        {
            self.expire_button(query_id.clone());
            return;
        }
        // Strangers get nothing: no reply, no typing, no state.
        let Some((surface, event)) = self.served(inbound) else {
            tracing::debug!(
                update.id = update.id.0,
                "update not for the center; ignored"
            );
            return;
        };
        let lease = match crate::inbox::accept(&self.store, update) {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tracing::debug!(update.id = update.id.0, "duplicate update ignored");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot record the update; ignoring it");
                return;
            }
        };
        self.route(surface, event, lease);
    }

    /// Handles again, in order, the updates a stopped process left unfinished (see
    /// [`crate::inbox`]). Runs before polling starts.
    pub fn replay_inbox(self: &Arc<Self>) {
        let unfinished = match crate::inbox::unfinished(&self.store) {
            Ok(u) => u,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the inbox; unfinished updates are not replayed");
                return;
            }
        };
        for (update, lease) in unfinished {
            match self.read(&update).and_then(|i| self.served(i)) {
                Some((surface, event)) => {
                    tracing::info!(update.id = update.id.0, "replaying an unfinished update");
                    self.route(surface, event, lease);
                }
                // The user is no longer allowed: finished without effect.
                None => drop(lease),
            }
        }
    }

    /// Queues an accepted update on its topic's task, starting one if there is none or the old
    /// one ended (a panic there must not silence the topic).
    fn route(self: &Arc<Self>, surface: Surface, event: TopicEvent, lease: UpdateLease) {
        let mut topics = self.topics.locked();
        let mut item = (event, lease);
        for _ in 0..2 {
            let tx = topics.entry(surface).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(self.clone().topic_loop(surface, rx));
                tx
            });
            match tx.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    tracing::error!(
                        chat.id = surface.chat_id,
                        thread.id = surface.thread_id,
                        "a topic's task had ended; starting it again"
                    );
                    topics.remove(&surface);
                    item = back;
                }
            }
        }
    }

    /// Handles a topic's updates in order. Attachments are gathered while they keep coming
    /// (an album, or a burst of files) and taken to Codex as one input before anything else
    /// of the topic is handled. Media to an unbound topic is ignored without download.
    async fn topic_loop(
        self: Arc<Self>,
        surface: Surface,
        mut rx: mpsc::UnboundedReceiver<(TopicEvent, UpdateLease)>,
    ) {
        let mut batch: Vec<(crate::media::Attachment, UpdateLease)> = Vec::new();
        loop {
            let next = if batch.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(ATTACHMENT_BURST, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.take_attachments(surface, std::mem::take(&mut batch));
                        continue;
                    }
                }
            };
            let Some((event, lease)) = next else { break };
            if let TopicEvent::Attachment(a) = event {
                // Media to a topic that is not bound is ignored; when the binding cannot be
                // read, the batch's own check tells the user.
                if !matches!(self.binding(surface), Ok(None)) {
                    batch.push((a, lease));
                }
                continue;
            }
            if !batch.is_empty() {
                self.take_attachments(surface, std::mem::take(&mut batch));
            }
            // A bug in one update must not end the topic (the updates queued behind it
            // would be dropped with it).
            let app = self.clone();
            let handled = self
                .tasks
                .run_guarded("topic update", async move {
                    app.handle(surface, event, lease).await;
                })
                .await;
            if handled.is_err() {
                self.notice(surface, FAILED_HERE, None);
            }
        }
        if !batch.is_empty() {
            self.take_attachments(surface, batch);
        }
    }

    /// Handles one event of a topic; `lease` keeps its update unfinished in the inbox until the
    /// work it started is done (it is dropped here unless an input or a menu takes it along).
    async fn handle(self: &Arc<Self>, surface: Surface, event: TopicEvent, lease: UpdateLease) {
        match event {
            TopicEvent::Text { text, message_id } => {
                let mode = match self.store.binding(surface) {
                    Ok(b) => b.map_or(InputMode::Steer, |b| b.mode),
                    Err(_) => InputMode::Steer,
                };
                let input = PendingInput {
                    text,
                    reply_to: message_id,
                    mode,
                    leases: vec![lease],
                };
                self.input_or_bind(surface, input).await;
            }
            TopicEvent::Command {
                command,
                args,
                message_id,
            } => {
                self.command(surface, command, &args, message_id, lease)
                    .await
            }
            TopicEvent::Voice(voice) => {
                if !matches!(self.binding(surface), Ok(None)) {
                    self.take_voice(surface, voice, lease);
                }
            }
            TopicEvent::Unsupported { message_id } => {
                if matches!(self.binding(surface), Ok(Some(_))) {
                    self.notice(
                        surface,
                        "This kind of message cannot be passed to Codex; send text or a file.",
                        Some(message_id),
                    );
                }
            }
            TopicEvent::TopicClosed { by } => {
                let why = if self.allowed(by) {
                    TopicGone::Closed
                } else {
                    TopicGone::ClosedByStranger(by)
                };
                self.on_topic_gone(surface, why).await;
            }
            TopicEvent::Button(b) => {
                let answer = self
                    .on_callback(surface, b.callback, Some(b.message_id))
                    .await;
                let _ = self
                    .outbox
                    .tg()
                    .answer_callback(&b.query_id, answer.as_deref())
                    .await;
            }
            // Taken by `topic_loop`.
            TopicEvent::Attachment(_) => {}
        }
    }

    /// Sends text to the topic's session, or starts binding the topic with the text pending.
    pub(crate) async fn input_or_bind(self: &Arc<Self>, surface: Surface, input: PendingInput) {
        if self.refused_read_only(surface, &input) {
            return;
        }
        match self.store.binding(surface) {
            Ok(Some(binding)) => drop(self.send_input(binding, input)),
            Ok(None) => self.start_bind(surface, Some(input)).await,
            Err(err) => {
                // Never "not bound" on a database error: that would open a bind menu in a
                // bound topic.
                tracing::error!(error = %err, "reading a binding failed");
                self.notice(
                    surface,
                    "✗ Not delivered: the center cannot read its state right now; try again.",
                    Some(input.reply_to),
                );
            }
        }
    }

    /// The topic's binding. A store failure is an error (logged here), never "not bound": that
    /// would open a bind menu in a bound topic or drop its held inputs.
    pub(crate) fn binding(&self, surface: Surface) -> Result<Option<Binding>, StateUnreadable> {
        self.store.binding(surface).map_err(|err| {
            tracing::error!(error = %err, "reading a binding failed");
            StateUnreadable
        })
    }

    /// Queues `job` on the topic's input queue; it runs after everything queued before it.
    pub(crate) fn enqueue_input(&self, surface: Surface, job: InputJob) {
        let mut queues = self.input_queues.locked();
        let tx = queues.entry(surface).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<InputJob>();
            let tasks = self.tasks.clone();
            let outbox = self.outbox.clone();
            tokio::spawn(async move {
                // Each job is guarded: one that panics is reported and the queue goes on, so
                // the inputs behind it are still typed. Shutdown waits for the job in flight.
                while let Some(job) = rx.recv().await {
                    if tasks.run_guarded("topic input", job).await.is_err() {
                        drop(outbox.send(Send {
                            surface,
                            html: render::escape_html(FAILED_HERE),
                            plain: FAILED_HERE.to_owned(),
                            keyboard: None,
                            reply_to: None,
                            class: Class::Message,
                        }));
                    }
                }
            });
            tx
        });
        let _ = tx.send(job);
    }

    /// Types text into Codex in the background (in order per topic), with a receipt that turns
    /// into confirmed / sent-unconfirmed / held / failed. While Codex shows a prompt, or while
    /// earlier inputs of the topic are held, the input is held too (see `crate::held`).
    /// The receiver gets the receipt's final text.
    pub(crate) fn send_input(
        self: &Arc<Self>,
        binding: Binding,
        input: PendingInput,
    ) -> tokio::sync::oneshot::Receiver<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let app = self.clone();
        self.enqueue_input(
            binding.surface,
            Box::pin(async move {
                let _ = tx.send(app.deliver_input(&binding, &input).await);
            }),
        );
        rx
    }

    /// Types one input now (on the topic's input queue); returns the receipt's text. Typing
    /// comes first: the receipt ("Sending to Codex…") is queued at once and finished when the
    /// outbox can, so a chat waiting out its Telegram budget never delays Codex.
    pub(crate) async fn deliver_input(
        self: &Arc<Self>,
        binding: &Binding,
        input: &PendingInput,
    ) -> String {
        let surface = binding.surface;
        let live = LiveText::new(SENDING);
        let receipt = self.receipt(surface, input.reply_to, live.clone());
        let held = match self.store.held_inputs(surface) {
            Ok(held) => held,
            Err(err) => {
                tracing::error!(error = %err, "reading held inputs failed");
                let text =
                    "✗ Not delivered: the center cannot read its state right now; try again.";
                self.finish_receipt_later(surface, receipt, &live, text.to_owned(), false);
                return text.to_owned();
            }
        };
        if !held.is_empty() {
            // Nothing is typed while earlier inputs wait. A full queue refuses at once (the
            // receipt says so whenever it goes out); holding needs the receipt's id.
            if let Admit::Full { waiting } = crate::router::held::admit(&held, self.cfg.held_max) {
                let text = crate::router::held::full_text(waiting);
                self.finish_receipt_later(surface, receipt, &live, text.clone(), false);
                return text;
            }
            let receipt = receipt.await.ok().and_then(Result::ok);
            return self.hold(binding, input, receipt).await;
        }
        let mut result = self.type_input(binding, &input.text, input.mode).await;
        if let Err(err) = &result
            && crate::heal::window_gone(err)
        {
            // Codex exited or the window vanished: bring it back and type there.
            match self.heal_window(binding).await {
                Ok((healed, notice)) => {
                    self.notice(surface, &notice, None);
                    result = self.type_input(&healed, &input.text, input.mode).await;
                }
                Err(heal) => {
                    tracing::warn!(error = %heal, "could not bring a topic's window back");
                }
            }
        }
        if let Err(CallError::Failed {
            code: v1::ErrorCode::Blocked,
            ..
        }) = result
        {
            let receipt = receipt.await.ok().and_then(Result::ok);
            return self.hold(binding, input, receipt).await;
        }
        let (text, delivered) = receipt_text(&result);
        self.finish_receipt_later(surface, receipt, &live, text.clone(), delivered);
        text
    }

    /// Queues "Sending to Codex…" under the user's message; the receiver gets its id once
    /// Telegram accepted it. `live` lets the outcome replace the text while the receipt still
    /// waits for its turn.
    pub(crate) fn receipt(
        &self,
        surface: Surface,
        reply_to: i32,
        live: LiveText,
    ) -> tokio::sync::oneshot::Receiver<Result<i32, crate::telegram::api::TgError>> {
        let send = Send {
            surface,
            html: SENDING.into(),
            plain: SENDING.into(),
            keyboard: None,
            reply_to: Some(reply_to),
            class: Class::Message,
        };
        self.pending_receipts.locked().insert(surface, live.clone());
        self.outbox.send_live(send, live)
    }

    /// Adds a status line to the topic's receipt if it has not gone out yet; false if there is
    /// none waiting.
    pub(crate) fn line_on_pending_receipt(
        &self,
        surface: Surface,
        line: &str,
        keep: usize,
    ) -> bool {
        let Some(live) = self.pending_receipts.locked().get(&surface).cloned() else {
            return false;
        };
        live.update_unsent(|text| {
            // The first line is the receipt's own; the rest are the newest status lines.
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.push(line.to_owned());
            while lines.len() > keep + 1 {
                lines.remove(1);
            }
            *text = lines.join("\n");
        })
    }

    /// Gives the receipt its outcome: as its text if it has not gone out yet (no edit needed),
    /// else by an edit once Telegram has accepted it; off the input queue either way.
    fn finish_receipt_later(
        self: &Arc<Self>,
        surface: Surface,
        receipt: tokio::sync::oneshot::Receiver<Result<i32, crate::telegram::api::TgError>>,
        live: &LiveText,
        text: String,
        delivered: bool,
    ) {
        let shown = live.update_unsent(|t| {
            let rest = t.split_once('\n').map(|(_, rest)| rest.to_owned());
            *t = match rest {
                Some(rest) => format!("{text}\n{rest}"),
                None => text.clone(),
            };
        });
        let app = self.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let accepted = receipt.await;
            {
                let mut pending = app.pending_receipts.locked();
                if pending.get(&surface).is_some_and(|l| l.is(&live)) {
                    pending.remove(&surface);
                }
            }
            if let Ok(Ok(id)) = accepted {
                let shown_text = if shown { live.text() } else { text };
                app.finish_receipt(surface, id, &shown_text, delivered, shown);
            }
        });
    }

    /// Types `text` into the binding's session (the caller holds the topic's input lock).
    pub(crate) async fn type_input(
        &self,
        binding: &Binding,
        text: &str,
        mode: InputMode,
    ) -> Result<R, CallError> {
        let Some(node) = self.node(&binding.node) else {
            return Err(CallError::Offline);
        };
        // Before typing: the transcript may show it before the node answers.
        self.typed.note(&binding.node, &binding.session_id, text);
        node.call(
            Op::SendInput(v1::SendInput {
                session_id: binding.session_id.to_string(),
                text: text.to_owned(),
                mode: match mode {
                    InputMode::Steer => v1::InputMode::Steer,
                    InputMode::Queue => v1::InputMode::Queue,
                } as i32,
            }),
            INPUT_TIMEOUT,
        )
        .await
    }

    /// Turns a receipt into the outcome of typing; a delivered input's receipt becomes the
    /// turn's status message, so tool activity edits it in place. `shown`: the receipt already
    /// went out with `text`, so it needs no edit for that.
    pub(crate) fn finish_receipt(
        &self,
        surface: Surface,
        receipt: i32,
        text: &str,
        delivered: bool,
        shown: bool,
    ) {
        let edit = |body: String| {
            if !shown {
                crate::deliver::edit_receipt(self, surface, receipt, body);
            }
        };
        let updated = self.store.update_status(surface, |current| match current {
            None if delivered => {
                edit(text.to_owned());
                StatusChange::Set(receipt, text.to_owned())
            }
            // Tool activity already landed in the receipt: keep it.
            Some((id, existing)) if id == receipt => {
                edit(existing);
                StatusChange::Keep
            }
            _ => {
                edit(text.to_owned());
                StatusChange::Keep
            }
        });
        if let Err(err) = updated {
            tracing::error!(error = %err, "updating a status message failed");
            edit(text.to_owned());
        }
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

    /// The topic was closed or deleted: its window is killed and the binding removed; the Codex
    /// session stays resumable. When an allowed user did not close it themselves (a deleted
    /// topic, or one closed by another admin), the allowed users are told in private: a window
    /// never goes away silently.
    pub(crate) async fn on_topic_gone(&self, surface: Surface, why: TopicGone) {
        let Ok(Some(binding)) = self.store.remove_binding(surface) else {
            return;
        };
        tracing::info!(
            chat.id = surface.chat_id,
            thread.id = surface.thread_id,
            why = ?why,
            "topic gone; closing its window"
        );
        if let Some(node) = self.node(&binding.node) {
            // Its conversation leaves the resume picker (unless asked for): the topic is gone.
            if let Ok(R::Windows(w)) = node
                .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
                .await
                && let Some(s) = w
                    .sessions
                    .iter()
                    .find(|s| s.session_id == binding.session_id && !s.thread_id.is_empty())
                && let Err(err) = self
                    .store
                    .hide_thread(&binding.node, &ThreadId::new(s.thread_id.as_str()))
            {
                tracing::error!(error = %err, "hiding a closed topic's session failed");
            }
            let _ = node
                .call(
                    Op::KillWindow(v1::KillWindow {
                        session_id: binding.session_id.to_string(),
                        ..Default::default()
                    }),
                    CALL_TIMEOUT,
                )
                .await;
        }
        let _ = self.store.clear_status(surface);
        let what = match why {
            TopicGone::Closed => return,
            TopicGone::Deleted => "was deleted".to_owned(),
            TopicGone::ClosedByStranger(user) => {
                format!("was closed by Telegram user {user}, who is not an allowed user,")
            }
        };
        let text = format!(
            "🗑 A topic bound to Codex in {} on {} {what} so its Codex window was closed. \
             The session is kept: /resume in a topic brings it back.",
            binding.cwd, binding.node
        );
        self.tell_owners(&text);
    }
}

/// The center's state could not be read (SQLite failed); logged where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the center cannot read its state right now; try again")]
pub(crate) struct StateUnreadable;

/// What the topic is told when its state cannot be read.
pub(crate) const STATE_UNREADABLE: &str =
    "✗ The center cannot read its state right now; try again.";

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

/// Said in a topic when handling one of its updates or inputs failed on a bug (the log has it).
const FAILED_HERE: &str = "⚠️ Something went wrong with your last message here (the center's log has the details); this topic goes on.";

/// A receipt before the outcome is known.
const SENDING: &str = "⏳ Sending to Codex…";

/// What typing gave, as a receipt says it, and whether the input reached Codex.
pub(crate) fn receipt_text(result: &Result<R, CallError>) -> (String, bool) {
    match result {
        Ok(R::Input(r)) if r.outcome() == v1::InputOutcome::Confirmed => {
            ("✓ Delivered".to_owned(), true)
        }
        Ok(R::Input(_)) => ("✓ Sent (Codex has not confirmed it yet)".to_owned(), true),
        Ok(other) => (
            format!("✗ Not delivered: unexpected reply {other:?}"),
            false,
        ),
        Err(err) => (format!("✗ Not delivered: {err}"), false),
    }
}
