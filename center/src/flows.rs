//! Binding a topic: the directory browser (inline keyboard over the node's roots) and the
//! resume picker. Menus live in memory under a short random token; every button carries
//! `m|<token>|<op>|<arg>` (well under Telegram's 64-byte limit) and is checked against the
//! menu's topic, so stale or forged buttons get a clear answer and change nothing.

pub(crate) mod menu;
mod replay;

use menu::{Kind, Menu};

use shared::{ids::NodeName, sync::LockExt};
use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    pending::PendingInput,
    store::{Binding, InputMode, Surface},
    telegram::{
        api::Keyboard,
        callback::{Callback, EXPIRED, MenuOp},
        outbox::{Class, Edit, Send},
        render::escape_html,
    },
};

/// How long starting Codex in a new git worktree may take (the node gives git two minutes).
const WORKTREE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(150);
/// How long a bind waits for the only machine's link to come up before offering it offline.
const ONLY_NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Folders shown per page.
const PAGE: usize = 8;

/// Why a folder could not be shown (each reads as a short message in the topic).
#[derive(Debug, thiserror::Error)]
enum BrowseError {
    #[error("{0} is offline.")]
    Offline(String),
    #[error("Cannot browse folders: {0}")]
    Roots(#[source] crate::nodes::CallError),
    #[error("{0}")]
    Listing(#[source] crate::nodes::CallError),
    #[error("Unexpected answer from the machine.")]
    Unexpected,
}

/// A menu's token in its buttons' data: unguessable, so a forged press cannot reach a menu.
fn new_token() -> String {
    shared::random::hex_token::<4>()
}

fn btn(
    label: impl Into<String>,
    token: &str,
    op: MenuOp,
    index: Option<usize>,
) -> (String, String) {
    let data = Callback::Menu {
        token: token.to_owned(),
        op,
        index: index.and_then(|i| u32::try_from(i).ok()),
    };
    (label.into(), data.encode())
}

impl App {
    /// Opens the folder browser in a topic (after a machine picker when there are several);
    /// `pending` is delivered once a session is bound.
    pub(crate) async fn start_bind(
        self: &Arc<Self>,
        surface: Surface,
        pending: Option<PendingInput>,
    ) {
        let nodes = self.only_node_settled().await;
        let token = new_token();
        let mut menu = Menu {
            surface,
            node: String::new(),
            message_id: None,
            kind: Kind::Nodes {
                nodes: nodes.clone(),
            },
            pending,
            show_hidden: false,
        };
        match nodes.as_slice() {
            [] => {
                self.notice(surface, "No machine is connected.", None);
                return;
            }
            [(only, true)] => {
                menu.node = only.clone();
                if let Err(err) = self.open_roots(&mut menu).await {
                    self.notice(surface, &err.to_string(), None);
                    return;
                }
            }
            _ => {}
        }
        let (html, keyboard) = render_menu(&token, &menu);
        let sent = self
            .outbox
            .send(Send {
                surface,
                plain: html.clone(),
                html,
                keyboard: Some(keyboard),
                reply_to: menu.pending.as_ref().map(|p| p.reply_to),
                class: Class::Message,
            })
            .await;
        if let Ok(Ok(id)) = sent {
            menu.message_id = Some(id);
            self.menus.open.locked().insert(token, menu);
        }
    }

    /// Every machine this center knows, connected or not: (name, online).
    /// The known nodes; when there is one and its link is still coming up (the embedded node
    /// right after a start), after waiting a little for it: one machine means the folder
    /// browser, not a choice among one offline machine.
    async fn only_node_settled(&self) -> Vec<(String, bool)> {
        let deadline = tokio::time::Instant::now() + ONLY_NODE_WAIT;
        loop {
            let nodes = self.known_nodes();
            // Only a link that never got its node's Welcome (a node seen offline before is
            // offered as it is, at once).
            let connecting = match nodes.as_slice() {
                [(only, false)] => self.node(only).filter(|c| c.version().is_empty()),
                _ => None,
            };
            let Some(conn) = connecting else {
                return nodes;
            };
            if tokio::time::Instant::now() >= deadline {
                return nodes;
            }
            // The Welcome may land between the check and the wait: wake up now and then too.
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(250), conn.welcomed()).await;
        }
    }

    pub(crate) fn known_nodes(&self) -> Vec<(String, bool)> {
        let mut names: Vec<String> = self.node_names();
        for n in self.store.nodes().unwrap_or_default() {
            if !n.revoked && !names.contains(&n.name) {
                names.push(n.name);
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let online = self.node(&n).is_some_and(|c| c.online());
                (n, online)
            })
            .collect()
    }

    /// Shows the roots of `menu.node` (or the only root's folder).
    async fn open_roots(&self, menu: &mut Menu) -> Result<(), BrowseError> {
        let Some(node) = self.node(&menu.node) else {
            return Err(BrowseError::Offline(menu.node.clone()));
        };
        let roots = match node
            .call(Op::ListRoots(v1::ListRoots {}), CALL_TIMEOUT)
            .await
        {
            Ok(R::Roots(r)) => r.roots,
            Ok(_) => Vec::new(),
            Err(err) => return Err(BrowseError::Roots(err)),
        };
        menu.kind = match roots.as_slice() {
            [only] => Kind::Dir {
                listing: self.list_dir(&menu.node, &only.path, false).await?,
                page: 0,
            },
            _ => Kind::Roots { roots },
        };
        Ok(())
    }

    async fn list_dir(
        &self,
        node: &str,
        path: &str,
        show_hidden: bool,
    ) -> Result<v1::DirListing, BrowseError> {
        let Some(conn) = self.node(node) else {
            return Err(BrowseError::Offline(node.to_owned()));
        };
        match conn
            .call(
                Op::ListDir(v1::ListDir {
                    path: path.to_owned(),
                    show_hidden,
                }),
                CALL_TIMEOUT,
            )
            .await
        {
            Ok(R::Dir(d)) => Ok(d),
            Ok(_) => Err(BrowseError::Unexpected),
            Err(err) => Err(BrowseError::Listing(err)),
        }
    }

    /// Handles a button press; returns the toast to show (if any).
    pub(crate) async fn on_callback(
        self: &Arc<Self>,
        surface: Surface,
        callback: Option<Callback>,
        message_id: Option<i32>,
    ) -> Option<String> {
        let Some(callback) = callback else {
            return Some(EXPIRED.into());
        };
        match callback {
            Callback::Menu { token, op, index } => {
                self.menu_action(surface, &token, op, index.map(|i| i as usize))
                    .await
            }
            Callback::Key {
                session,
                key,
                prompt,
            } => Some(
                self.prompt_key(surface, &session, key, prompt, message_id)
                    .await,
            ),
            Callback::History { skip } => {
                self.history(surface, skip, None, message_id).await;
                None
            }
            Callback::DropHeld => Some(self.drop_held(surface).await),
            Callback::Refresh { session } => {
                Some(self.refresh_screenshot(surface, &session, message_id).await)
            }
            Callback::Job { id, action } => Some(match self.jobs() {
                Some(jobs) => jobs.button(surface, id, action, message_id).await,
                None => EXPIRED.into(),
            }),
            Callback::Toolbar(key) => {
                Some(crate::toolbar::press(self, surface, key, message_id).await)
            }
            Callback::Cleanup(fix) => {
                Some(crate::cleanup::fix(self, surface, fix, message_id).await)
            }
            Callback::Worktree { session, action } => {
                Some(crate::worktree::press(self, surface, &session, action, message_id).await)
            }
            Callback::Replay(action) => self.replay_button(surface, action, message_id).await,
            Callback::Retry { session } => {
                Some(crate::retry::press(self, surface, &session, message_id).await)
            }
            Callback::CodexUpgrade { node, version } => {
                Some(crate::codex_upgrade::press(self, surface, &node, &version, message_id).await)
            }
        }
    }

    async fn menu_action(
        self: &Arc<Self>,
        surface: Surface,
        token: &str,
        op: MenuOp,
        index: Option<usize>,
    ) -> Option<String> {
        let menu = self.menus.open.locked().get(token).cloned();
        let Some(mut menu) = menu else {
            return Some("This menu has expired. Send /bind to start again.".into());
        };
        if menu.surface != surface {
            return Some("This menu belongs to another topic.".into());
        }
        match (op, &menu.kind) {
            (MenuOp::Cancel, _) => {
                self.close_menu(token, &menu, "Cancelled.");
                return None;
            }
            (MenuOp::Open, Kind::Nodes { nodes }) => {
                let Some((name, _)) = index.and_then(|i| nodes.get(i)).cloned() else {
                    return Some("This button is not valid.".into());
                };
                // The badges may be stale: decide on the live state, and refresh them.
                if !self.node(&name).is_some_and(|c| c.online()) {
                    menu.kind = Kind::Nodes {
                        nodes: self.known_nodes(),
                    };
                    self.redraw(token, &menu);
                    return Some(format!("{name} is offline."));
                }
                menu.node = name;
                if let Err(err) = self.open_roots(&mut menu).await {
                    return Some(err.to_string());
                }
            }
            (MenuOp::Open, Kind::Roots { roots }) => {
                let Some(root) = index.and_then(|i| roots.get(i)) else {
                    return Some("This button is not valid.".into());
                };
                match self
                    .list_dir(&menu.node, &root.path, menu.show_hidden)
                    .await
                {
                    Ok(listing) => menu.kind = Kind::Dir { listing, page: 0 },
                    Err(err) => return Some(err.to_string()),
                }
            }
            (MenuOp::Open, Kind::Dir { listing, .. }) => {
                let Some(name) = index.and_then(|i| listing.dirs.get(i)) else {
                    return Some("This button is not valid.".into());
                };
                let path = format!("{}/{name}", listing.path.trim_end_matches('/'));
                match self.list_dir(&menu.node, &path, menu.show_hidden).await {
                    Ok(listing) => menu.kind = Kind::Dir { listing, page: 0 },
                    Err(err) => return Some(err.to_string()),
                }
            }
            (MenuOp::Up, Kind::Dir { listing, .. }) if !listing.parent.is_empty() => {
                let parent = listing.parent.clone();
                match self.list_dir(&menu.node, &parent, menu.show_hidden).await {
                    Ok(listing) => menu.kind = Kind::Dir { listing, page: 0 },
                    Err(err) => return Some(err.to_string()),
                }
            }
            (MenuOp::Page, Kind::Dir { listing, .. }) => {
                let pages = listing.dirs.len().div_ceil(PAGE).max(1);
                let Some(page) = index.filter(|p| *p < pages) else {
                    return Some("This button is not valid.".into());
                };
                menu.kind = Kind::Dir {
                    listing: listing.clone(),
                    page,
                };
            }
            (MenuOp::Select, Kind::Dir { listing, .. }) => {
                let cwd = listing.path.clone();
                let git = listing.in_git_repo;
                // The toggle starts over for sessions: dot-folders shown say nothing about them.
                menu.show_hidden = false;
                let (sessions, hidden) = self.resumable(&menu.node, &cwd, false).await;
                let windows = self.open_windows(&menu.node, &cwd).await;
                // In a git repository the choice of a worktree is worth a step.
                if sessions.is_empty() && windows.is_empty() && hidden == 0 && !git {
                    self.create_and_bind(token, menu, cwd, String::new(), false)
                        .await;
                    return Some("Starting Codex…".into());
                }
                menu.kind = Kind::Resume {
                    cwd,
                    sessions,
                    windows,
                    hidden,
                    git,
                };
            }
            (MenuOp::Hidden, Kind::Dir { listing, .. }) => {
                let path = listing.path.clone();
                menu.show_hidden = !menu.show_hidden;
                match self.list_dir(&menu.node, &path, menu.show_hidden).await {
                    Ok(listing) => menu.kind = Kind::Dir { listing, page: 0 },
                    Err(err) => return Some(err.to_string()),
                }
            }
            (
                MenuOp::Hidden,
                Kind::Resume {
                    cwd, windows, git, ..
                },
            ) => {
                let (cwd, windows, git) = (cwd.clone(), windows.clone(), *git);
                menu.show_hidden = !menu.show_hidden;
                let (sessions, hidden) = self.resumable(&menu.node, &cwd, menu.show_hidden).await;
                menu.kind = Kind::Resume {
                    cwd,
                    sessions,
                    windows,
                    hidden,
                    git,
                };
            }
            (MenuOp::New, Kind::Resume { cwd, .. }) => {
                let cwd = cwd.clone();
                self.create_and_bind(token, menu, cwd, String::new(), false)
                    .await;
                return Some("Starting Codex…".into());
            }
            (MenuOp::Worktree, Kind::Resume { cwd, git: true, .. }) => {
                let cwd = cwd.clone();
                self.create_and_bind(token, menu, cwd, String::new(), true)
                    .await;
                return Some("Creating a worktree…".into());
            }
            (MenuOp::Attach, Kind::Resume { windows, .. }) => {
                let Some(w) = index.and_then(|i| windows.get(i)).cloned() else {
                    return Some("This button is not valid.".into());
                };
                self.attach_and_bind(token, menu, w).await;
                return None;
            }
            (MenuOp::Resume, Kind::Resume { cwd, sessions, .. }) => {
                let Some(s) = index.and_then(|i| sessions.get(i)) else {
                    return Some("This button is not valid.".into());
                };
                let (cwd, thread) = (cwd.clone(), s.thread_id.clone());
                self.create_and_bind(token, menu, cwd, thread, false).await;
                return Some("Resuming…".into());
            }
            (MenuOp::ReadOnly, Kind::Resume { cwd, sessions, .. }) => {
                let Some(s) = index.and_then(|i| sessions.get(i)).cloned() else {
                    return Some("This button is not valid.".into());
                };
                let cwd = cwd.clone();
                self.bind_read_only(token, menu, cwd, s).await;
                return None;
            }
            _ => return Some("This button is not valid here.".into()),
        }
        self.redraw(token, &menu);
        None
    }

    /// Shows the menu's current state in its message and keeps it.
    fn redraw(&self, token: &str, menu: &Menu) {
        let (html, keyboard) = render_menu(token, menu);
        if let Some(id) = menu.message_id {
            drop(self.outbox.edit(Edit {
                chat_id: menu.surface.chat_id,
                message_id: id,
                plain: html.clone(),
                html,
                keyboard: Some(keyboard),
                status_of: None,
            }));
        }
        self.menus
            .open
            .locked()
            .insert(token.to_owned(), menu.clone());
    }

    /// Sessions to offer for resuming in `cwd`, and how many were left out because their topic
    /// was closed or deleted (shown with `show_hidden`).
    async fn resumable(
        &self,
        node: &str,
        cwd: &str,
        show_hidden: bool,
    ) -> (Vec<v1::ResumableSession>, usize) {
        let Some(conn) = self.node(node) else {
            return (Vec::new(), 0);
        };
        let closed = if show_hidden {
            Default::default()
        } else {
            self.store
                .hidden_threads(&NodeName::new(node))
                .unwrap_or_else(|err| {
                    tracing::error!(error = %err, "reading hidden sessions failed");
                    Default::default()
                })
        };
        match conn
            .call(
                Op::ListResumable(v1::ListResumable {
                    cwd: cwd.to_owned(),
                    limit: 8,
                }),
                CALL_TIMEOUT,
            )
            .await
        {
            Ok(R::Resumable(r)) => {
                let (hidden, shown): (Vec<_>, Vec<_>) = r
                    .sessions
                    .into_iter()
                    .filter(|s| s.open_in_session.is_empty())
                    .partition(|s| closed.contains(s.thread_id.as_str()));
                (shown, hidden.len())
            }
            _ => (Vec::new(), 0),
        }
    }

    /// Live windows in `cwd` on `node` that no topic is bound to (left after `/unbind`, or
    /// whose topic went away): they can be attached instead of starting another Codex.
    async fn open_windows(&self, node: &str, cwd: &str) -> Vec<v1::SessionInfo> {
        let Some(conn) = self.node(node) else {
            return Vec::new();
        };
        let Ok(R::Windows(w)) = conn
            .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
            .await
        else {
            return Vec::new();
        };
        let Ok(bindings) = self.store.bindings() else {
            return Vec::new();
        };
        w.sessions
            .into_iter()
            .filter(|s| s.alive && s.cwd == cwd)
            .filter(|s| {
                !bindings
                    .iter()
                    .any(|b| b.node == node && b.session_id == s.session_id)
            })
            .collect()
    }

    /// Binds the topic to a window that is already open, and delivers the message that opened
    /// the flow. Refused if another topic took the window meanwhile.
    async fn attach_and_bind(self: &Arc<Self>, token: &str, menu: Menu, window: v1::SessionInfo) {
        match self.store.bindings() {
            Ok(all) => {
                if all.iter().any(|b| b.surface == menu.surface) {
                    self.close_menu(token, &menu, "This topic is already bound.");
                    return;
                }
                if all
                    .iter()
                    .any(|b| b.node == menu.node && b.session_id == window.session_id)
                {
                    self.close_menu(
                        token,
                        &menu,
                        "Another topic attached that window meanwhile.",
                    );
                    return;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "reading bindings failed");
                self.close_menu(token, &menu, crate::store::STATE_UNREADABLE);
                return;
            }
        }
        let binding = Binding {
            surface: menu.surface,
            node: menu.node.clone().into(),
            session_id: window.session_id.clone().into(),
            cwd: window.cwd.clone(),
            mode: InputMode::Steer,
        };
        if let Err(err) = self.store.put_binding(&binding) {
            tracing::error!(error = %err, "saving a binding failed");
            self.close_menu(token, &menu, "Could not save the binding.");
            return;
        }
        self.end_read_only(menu.surface);
        let text = format!(
            "✅ Attached to the open Codex window {} in <code>{}</code> on {}.",
            escape_html(&window.window_name),
            escape_html(&window.cwd),
            escape_html(&menu.node)
        );
        self.close_menu(token, &menu, &text);
        if let Some(pending) = menu.pending {
            drop(self.send_input(binding, pending));
        }
    }

    fn close_menu(&self, token: &str, menu: &Menu, text: &str) {
        self.menus.open.locked().remove(token);
        if let Some(id) = menu.message_id {
            drop(self.outbox.edit(Edit {
                chat_id: menu.surface.chat_id,
                message_id: id,
                html: text.to_owned(),
                plain: text.to_owned(),
                keyboard: None,
                status_of: None,
            }));
        }
    }

    /// Creates the window (idempotent on the menu's token; with `worktree`, in a new git
    /// worktree of the folder's repository), binds the topic, and delivers the message that
    /// opened the flow.
    async fn create_and_bind(
        self: &Arc<Self>,
        token: &str,
        menu: Menu,
        cwd: String,
        resume: String,
        worktree: bool,
    ) {
        match self.binding(menu.surface) {
            Ok(None) => {}
            Ok(Some(_)) => {
                self.close_menu(token, &menu, "This topic is already bound.");
                return;
            }
            Err(_) => {
                self.close_menu(token, &menu, crate::store::STATE_UNREADABLE);
                return;
            }
        }
        let Some(node) = self.node(&menu.node) else {
            self.close_menu(token, &menu, "That machine is offline.");
            return;
        };
        let created = node
            .call(
                Op::CreateSession(v1::CreateSession {
                    cwd: cwd.clone(),
                    resume_id: resume.clone(),
                    idempotency_key: format!("menu-{token}"),
                    new_worktree: worktree,
                    // The worktree and branch are named after the message that opened the flow.
                    worktree_hint: menu
                        .pending
                        .as_ref()
                        .map(|p| crate::text::first_line(&p.text))
                        .unwrap_or_default(),
                }),
                // `git worktree add` checks out the whole tree first (up to two minutes on the
                // node); the ordinary limit would report a failure while it goes on.
                if worktree {
                    WORKTREE_TIMEOUT
                } else {
                    CALL_TIMEOUT
                },
            )
            .await;
        let info = match created {
            Ok(R::Created(c)) => c.session.unwrap_or_default(),
            Ok(_) => {
                self.close_menu(token, &menu, "Unexpected answer from the machine.");
                return;
            }
            Err(err) => {
                self.close_menu(token, &menu, &format!("Could not start Codex: {err}"));
                return;
            }
        };
        // In a worktree the window's folder is the worktree's, not the chosen one.
        let cwd = match &info.worktree {
            Some(_) if !info.cwd.is_empty() => info.cwd.clone(),
            _ => cwd,
        };
        let binding = Binding {
            surface: menu.surface,
            node: menu.node.clone().into(),
            session_id: info.session_id.clone().into(),
            cwd: cwd.clone(),
            mode: InputMode::Steer,
        };
        if let Err(err) = self.store.put_binding(&binding) {
            tracing::error!(error = %err, "saving a binding failed");
            self.close_menu(token, &menu, "Could not save the binding.");
            return;
        }
        self.end_read_only(menu.surface);
        let what = if resume.is_empty() {
            "New Codex session"
        } else {
            "Resumed Codex session"
        };
        let mut text = format!(
            "✅ {what} in <code>{}</code> on {} (tmux window {}).",
            escape_html(&cwd),
            escape_html(&menu.node),
            escape_html(&info.window_name)
        );
        match &info.worktree {
            Some(w) if worktree => {
                text = format!("{text}\n{}", crate::worktree::bound_line(w));
                crate::worktree::label_topic(self, menu.surface, w);
            }
            _ if worktree => {
                text += "\nThis machine did not make a worktree (it may need an update): the \
                         session runs in the folder itself.";
            }
            _ => {}
        }
        self.close_menu(token, &menu, &text);
        if let Some(pending) = menu.pending {
            drop(self.send_input(binding, pending));
        }
    }
}

fn render_menu(token: &str, menu: &Menu) -> (String, Keyboard) {
    let mut kb: Keyboard = Vec::new();
    let html = match &menu.kind {
        Kind::Nodes { nodes } => {
            for (i, (name, online)) in nodes.iter().enumerate() {
                let badge = if *online { "🟢" } else { "⚪ offline" };
                kb.push(vec![btn(
                    format!("🖥 {} {badge}", short(name, 24)),
                    token,
                    MenuOp::Open,
                    Some(i),
                )]);
            }
            kb.push(vec![btn("✖ Cancel", token, MenuOp::Cancel, None)]);
            "🖥 <b>Choose a machine</b>".to_owned()
        }
        Kind::Roots { roots } => {
            for (i, r) in roots.iter().enumerate() {
                kb.push(vec![btn(
                    format!("📁 {}", r.name),
                    token,
                    MenuOp::Open,
                    Some(i),
                )]);
            }
            kb.push(vec![btn("✖ Cancel", token, MenuOp::Cancel, None)]);
            format!("📂 <b>Choose a folder</b> on {}", escape_html(&menu.node))
        }
        Kind::Dir { listing, page } => {
            let pages = listing.dirs.len().div_ceil(PAGE).max(1);
            let start = page * PAGE;
            let shown: Vec<(usize, &String)> = listing
                .dirs
                .iter()
                .enumerate()
                .skip(start)
                .take(PAGE)
                .collect();
            for pair in shown.chunks(2) {
                kb.push(
                    pair.iter()
                        .map(|(i, name)| {
                            btn(
                                format!("📁 {}", short(name, 28)),
                                token,
                                MenuOp::Open,
                                Some(*i),
                            )
                        })
                        .collect(),
                );
            }
            if pages > 1 {
                let mut row = Vec::new();
                if *page > 0 {
                    row.push(btn("◀", token, MenuOp::Page, Some(page - 1)));
                }
                row.push(btn(
                    format!("{}/{pages}", page + 1),
                    token,
                    MenuOp::Page,
                    Some(*page),
                ));
                if page + 1 < pages {
                    row.push(btn("▶", token, MenuOp::Page, Some(page + 1)));
                }
                kb.push(row);
            }
            let mut row = Vec::new();
            if !listing.parent.is_empty() {
                row.push(btn("⬆️ Up", token, MenuOp::Up, None));
            }
            row.push(btn("✅ Use this folder", token, MenuOp::Select, None));
            row.push(btn("✖ Cancel", token, MenuOp::Cancel, None));
            kb.push(row);
            let toggle = if menu.show_hidden {
                "🙈 Hide .folders"
            } else {
                "👁 Show .folders"
            };
            kb.push(vec![btn(toggle, token, MenuOp::Hidden, None)]);
            let empty = if listing.dirs.is_empty() {
                "\n(no subfolders)"
            } else {
                ""
            };
            format!(
                "📂 <b>Choose a folder</b> on {}\n<code>{}</code>{empty}",
                escape_html(&menu.node),
                escape_html(&listing.path)
            )
        }
        Kind::Resume {
            cwd,
            sessions,
            windows,
            hidden,
            git,
        } => {
            for (i, w) in windows.iter().enumerate() {
                let thread = if w.thread_id.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", short(&w.thread_id, 13))
                };
                kb.push(vec![btn(
                    format!("🪟 Open window {}{thread}", short(&w.window_name, 24)),
                    token,
                    MenuOp::Attach,
                    Some(i),
                )]);
            }
            for (i, s) in sessions.iter().enumerate() {
                kb.push(vec![
                    btn(
                        format!("🕘 {} · {}", short(&s.summary, 28), age(s.updated_unix_ms)),
                        token,
                        MenuOp::Resume,
                        Some(i),
                    ),
                    btn("👁 Read only", token, MenuOp::ReadOnly, Some(i)),
                ]);
            }
            if menu.show_hidden {
                kb.push(vec![btn(
                    "🙈 Hide sessions of closed topics",
                    token,
                    MenuOp::Hidden,
                    None,
                )]);
            } else if *hidden > 0 {
                kb.push(vec![btn(
                    format!("👁 Show {hidden} session(s) of closed topics"),
                    token,
                    MenuOp::Hidden,
                    None,
                )]);
            }
            let mut row = vec![btn("🆕 New session", token, MenuOp::New, None)];
            if *git {
                row.push(btn("🌿 New worktree", token, MenuOp::Worktree, None));
            }
            row.push(btn("✖ Cancel", token, MenuOp::Cancel, None));
            kb.push(row);
            let open = if windows.is_empty() {
                ""
            } else {
                " Attach to an open window (🪟),"
            };
            let tree = if *git {
                " (🌿: in a git worktree of its own, on a new branch)"
            } else {
                ""
            };
            if sessions.is_empty() && windows.is_empty() && *hidden == 0 {
                format!(
                    "<code>{}</code> is in a git repository. Start a new Codex session here, or in a new worktree{tree}:",
                    escape_html(cwd)
                )
            } else {
                format!(
                    "Codex sessions in <code>{}</code> (newest first).{open} Resume one (👁: only read it), or start a new one{tree}:",
                    escape_html(cwd)
                )
            }
        }
    };
    (html, kb)
}

fn short(s: &str, max: usize) -> String {
    if s.is_empty() {
        return "(untitled)".into();
    }
    crate::text::ellipsize(s, max)
}

fn age(unix_ms: i64) -> String {
    let mins = (shared::clock::now_unix_ms() - unix_ms).max(0) / 60_000;
    match mins {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} d ago", m / (24 * 60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_data_stays_under_64_bytes() {
        let menu = Menu {
            surface: Surface {
                chat_id: 1,
                thread_id: 2,
            },
            node: "local".into(),
            message_id: None,
            show_hidden: false,
            kind: Kind::Dir {
                listing: v1::DirListing {
                    path: "/x".into(),
                    parent: "/".into(),
                    dirs: (0..100)
                        .map(|i| format!("{}{i}", "é".repeat(200)))
                        .collect(),
                    ..Default::default()
                },
                page: 11,
            },
            pending: None,
        };
        let (html, kb) = render_menu(&new_token(), &menu);
        assert!(html.contains("/x"));
        for (label, data) in kb.iter().flatten() {
            assert!(data.len() <= 64, "{data}");
            assert!(label.chars().count() <= 40, "{label}");
        }
    }
}
