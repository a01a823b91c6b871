//! Answers the center's requests, one method each: this is where a `v1::Request` becomes work
//! for the node's owners (windows, matcher, outbox, tmux) and a `v1::Reply`. It only uses
//! `Node`; nothing that `Node` is built from uses it back.

mod codex_info;
mod composer;
mod typing;
mod worktrees;

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use proto::v1::{self, reply::Result as R, request::Op};
use tokio::sync::broadcast;

use crate::{
    error::NodeError,
    files, input, jobs,
    node::Node,
    registry::SessionRecord,
    session::{SessionRt, TailCmd},
    tmux::{Key, WindowSpec},
    transcript::locate,
};

/// Default and maximum number of resumable sessions listed.
const RESUMABLE_DEFAULT: usize = 10;
const RESUMABLE_MAX: usize = 50;

impl Node {
    /// Handles one request and builds its reply.
    pub async fn handle(&self, request: v1::Request) -> v1::Reply {
        let reply_to = request.id;
        let result = match request.op {
            None => Err(NodeError::InvalidArgument("empty request".into())),
            Some(op) => self.dispatch(op).await,
        };
        v1::Reply {
            reply_to,
            result: Some(result.unwrap_or_else(|err| R::Failure(err.to_failure()))),
        }
    }

    async fn dispatch(&self, op: Op) -> Result<R, NodeError> {
        match op {
            Op::ListRoots(_) => Ok(R::Roots(self.list_roots())),
            Op::ListDir(req) => self.list_dir(&req.path, req.show_hidden),
            Op::ListResumable(req) => self.list_resumable(&req.cwd, req.limit).await,
            Op::CreateSession(req) => self.create_session(req).await,
            Op::SendInput(req) => self.send_input(req).await,
            Op::SendKey(req) => self.send_key(req).await,
            Op::CapturePane(req) => self.capture_pane(&req.session_id, req.ansi).await,
            Op::ListWindows(_) => Ok(R::Windows(self.list_windows())),
            Op::KillWindow(req) if req.remove_worktree => {
                self.kill_window(&req.session_id).await?;
                self.remove_window_worktree(&req.session_id).await
            }
            Op::KillWindow(req) => self.kill_window(&req.session_id).await,
            Op::WorktreeStatus(req) => self.worktree_status(&req.session_id).await,
            Op::GetHistory(req) => self.history(&req).await,
            Op::CertificateStatus(_) => self.certificate_status(),
            Op::InstallCertificate(req) => self.install_certificate(&req),
            Op::PutFile(req) => {
                let inbox = files::inbox(&self.inner.cfg.state_dir);
                files::put_file(&self.inner.windows, &inbox, req).await
            }
            Op::ReadFile(req) => {
                let outbox = &self.inner.outbox;
                let jobs = &self.inner.jobs;
                // Artifacts of this node's finished jobs are offered to the center as well.
                files::read_file(req, |path| {
                    outbox.is_offered(path) || jobs.is_artifact(path)
                })
                .await
            }
            Op::StartJob(req) => self.start_job(req).await,
            Op::CancelJob(req) => {
                self.inner.jobs.cancel(&req.job_id, req.grace_ms)?;
                Ok(R::Done(v1::Done {}))
            }
            Op::ListJobs(_) => Ok(R::Jobs(self.inner.jobs.list())),
            Op::GitDiff(req) => self.git_diff(&req).await,
            Op::CodexInfo(req) => {
                let args = codex_info::args(&req)?;
                let program = crate::preflight::codex_program(&self.inner.cfg.codex_command);
                let env = self.job_env();
                Ok(R::CodexInfo(codex_info::run(&program, &args, &env).await?))
            }
            Op::CodexLoginStep(req) => self.codex_login(req).await,
            Op::UpgradeNode(req) => self.upgrade(req).await,
            Op::UpgradeCodex(req) => self.upgrade_codex(req).await,
            Op::CodexAccounts(req) => Ok(R::CodexAccounts(crate::accounts::handle(
                &self.inner.cfg,
                &req,
            )?)),
        }
    }

    async fn start_job(&self, req: v1::StartJob) -> Result<R, NodeError> {
        crate::codex_upgrade::not_installing()?;
        if !jobs::valid_job_id(&req.job_id) {
            return Err(NodeError::InvalidArgument(format!(
                "{:?} is not a job id (1-64 of A-Z, a-z, 0-9, -)",
                req.job_id
            )));
        }
        let (cwd, _, _) = self.inner.roots.resolve(&req.cwd)?;
        let launch = jobs::Launch {
            cwd,
            program: crate::preflight::codex_program(&self.inner.cfg.codex_command),
            env: self.job_env(),
        };
        let started = self.inner.jobs.start(&req, launch).await?;
        Ok(R::JobStarted(started))
    }

    async fn git_diff(&self, req: &v1::GitDiff) -> Result<R, NodeError> {
        let (cwd, _, _) = self.inner.roots.resolve(&req.cwd)?;
        let rel = jobs::diff::inside(&cwd, &req.path)
            .map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
        let result = jobs::diff::diff("git", &cwd, rel.as_deref())
            .await
            .map_err(|e| match e {
                jobs::diff::Error::BadPath(m) => NodeError::InvalidArgument(m),
                other => NodeError::Internal(other.to_string()),
            })?;
        Ok(R::Diff(result))
    }

    /// `/codexlogin`: starts the login command in the account's `CODEX_HOME` (the node's own for
    /// no account), or relays what a running login printed since.
    async fn codex_login(&self, req: v1::CodexLoginStep) -> Result<R, NodeError> {
        use crate::accounts;
        if !req.login_id.is_empty() {
            return Ok(R::CodexLogin(accounts::login::step(&req.login_id).await?));
        }
        let cfg = &self.inner.cfg;
        let home = if req.account.is_empty() {
            cfg.codex_home.clone()
        } else {
            accounts::prepare(cfg, &req.account)?
        };
        let program = match cfg.accounts.login_command.trim() {
            "" => crate::preflight::codex_program(&cfg.codex_command),
            command => command.to_owned(),
        };
        let mut env = self.job_env();
        env.retain(|(k, _)| k != "CODEX_HOME");
        env.push(("CODEX_HOME".into(), home.to_string_lossy().into_owned()));
        let update = accounts::login::start(&program, &req.account, &env).await?;
        Ok(R::CodexLogin(update))
    }

    /// Environment of a job's Codex: a window's, without what names a window.
    fn job_env(&self) -> Vec<(String, String)> {
        self.window_env("")
            .into_iter()
            .filter(|(k, _)| k != crate::control::SESSION_ENV && k != "AGENT_NODE_STATE_DIR")
            .collect()
    }

    fn list_roots(&self) -> v1::Roots {
        v1::Roots {
            roots: self
                .inner
                .roots
                .list()
                .iter()
                .map(|(name, path)| v1::Root {
                    name: name.clone(),
                    path: path.to_string_lossy().into_owned(),
                })
                .collect(),
        }
    }

    fn list_dir(&self, path: &str, show_hidden: bool) -> Result<R, NodeError> {
        let l = self.inner.roots.list_dir(path, show_hidden)?;
        Ok(R::Dir(v1::DirListing {
            path: l.path.to_string_lossy().into_owned(),
            root_name: l.root_name,
            parent: l
                .parent
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dirs: l.dirs,
            truncated: l.truncated,
            in_git_repo: crate::worktree::in_git_repo(&l.path, |p| {
                self.inner.roots.resolve(&p.to_string_lossy()).is_ok()
            }),
        }))
    }

    async fn list_resumable(&self, cwd: &str, limit: u32) -> Result<R, NodeError> {
        let (cwd, _, _) = self.inner.roots.resolve(cwd)?;
        let limit = match limit as usize {
            0 => RESUMABLE_DEFAULT,
            n => n.min(RESUMABLE_MAX),
        };
        let home = self.inner.cfg.codex_home.clone();
        let found = tokio::task::spawn_blocking(move || locate::list_resumable(&home, &cwd, limit))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let open = self.inner.windows.open_threads();
        Ok(R::Resumable(v1::ResumableSessions {
            sessions: found
                .into_iter()
                .map(|s| v1::ResumableSession {
                    open_in_session: open
                        .iter()
                        .find(|(t, _)| *t == s.thread_id)
                        .map(|(_, sid)| sid.to_string())
                        .unwrap_or_default(),
                    thread_id: s.thread_id,
                    summary: s.summary,
                    updated_unix_ms: s.updated_unix_ms,
                })
                .collect(),
        }))
    }

    async fn create_session(&self, req: v1::CreateSession) -> Result<R, NodeError> {
        crate::codex_upgrade::not_installing()?;
        let _serial = self.inner.windows.creating().await;
        let key = req.idempotency_key.trim();
        if !key.is_empty() {
            let earlier = self
                .inner
                .windows
                .find(|r| r.idempotency_key.as_deref() == Some(key));
            if let Some(record) = earlier {
                return Ok(R::Created(v1::SessionCreated {
                    session: Some(self.inner.windows.info(&record)),
                    existed: true,
                }));
            }
        }
        let (cwd, _, _) = self.inner.roots.resolve(&req.cwd)?;
        let cwd = self.worktree_cwd(cwd, &req).await?;
        let resume = req.resume_id.trim();
        let mut rollout = None;
        let mut start_offset = 0;
        if !resume.is_empty() {
            if !locate::valid_thread_id(resume) {
                return Err(NodeError::InvalidArgument(format!(
                    "{resume:?} is not a Codex session id"
                )));
            }
            if let Some((_, sid)) = self
                .inner
                .windows
                .open_threads()
                .into_iter()
                .find(|(t, _)| t == resume)
            {
                return Err(NodeError::AlreadyExists(format!(
                    "that Codex session is already open in window {sid}"
                )));
            }
            let path = locate::find_by_thread_id(self.inner.matcher.sessions_dir(), resume)
                .ok_or_else(|| {
                    NodeError::NotFound(format!("no Codex session {resume} on this machine"))
                })?;
            start_offset = std::fs::metadata(&path).map_or(0, |m| m.len());
            rollout = Some(path);
        }
        let session_id = new_session_id();
        let command = if resume.is_empty() {
            self.inner.cfg.codex_command.clone()
        } else {
            format!("{} resume {resume}", self.inner.cfg.codex_command)
        };
        let spec = WindowSpec {
            name: window_name(&cwd),
            cwd: cwd.clone(),
            command,
            env: self.window_env(&session_id),
            env_dir: self.inner.cfg.state_dir.join("window-env"),
            session_id: session_id.clone(),
        };
        let created = self.inner.tmux.new_window(&spec).await?;
        let record = SessionRecord {
            session_id: session_id.clone().into(),
            window_id: created.window_id,
            pane_id: created.pane_id,
            window_name: spec.name,
            cwd,
            created_unix_ms: shared::clock::now_unix_ms(),
            thread_id: rollout.as_ref().map(|_| resume.into()),
            rollout: rollout.clone(),
            start_offset,
            acked_seq: start_offset,
            idempotency_key: (!key.is_empty()).then(|| key.to_owned()),
            exited: false,
        };
        self.inner.windows.put(record.clone());
        self.inner.windows.save();
        self.spawn_runtime(&record, true);
        tracing::info!(session.id = %session_id, window.id = %record.window_id, cwd = %record.cwd.display(), "window created");
        self.lifecycle(v1::LifecycleKind::Created, &record).await;
        if rollout.is_some() {
            self.lifecycle(v1::LifecycleKind::Bound, &record).await;
        }
        Ok(R::Created(v1::SessionCreated {
            session: Some(self.inner.windows.info(&record)),
            existed: false,
        }))
    }

    /// Environment of a new window: the node's own environment (provider keys, PATH, ...) minus
    /// the fleet's secrets and terminal-specific variables, with CODEX_HOME set to the folder the
    /// node watches, plus configured extras.
    /// `CODEX_FLEET_SESSION` and `AGENT_NODE_STATE_DIR` let `agent-node send` run in the window
    /// find this node and this session (neither is a secret).
    fn window_env(&self, session_id: &str) -> Vec<(String, String)> {
        // Bounded, so a huge environment variable cannot bloat every window's start.
        const ENV_BUDGET: usize = 64 * 1024;
        let mut used = 0;
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in std::env::vars().filter(|(k, _)| !window_env_excluded(k)) {
            let size = k.len() + v.len() + 4;
            if used + size > ENV_BUDGET {
                tracing::warn!(variable = %k, "environment variable too large to pass to Codex windows");
                continue;
            }
            used += size;
            env.push((k, v));
        }
        // The selected account's home (see `crate::accounts`); a running window keeps its own.
        env.push((
            "CODEX_HOME".to_owned(),
            crate::accounts::codex_home_for_new(&self.inner.cfg)
                .to_string_lossy()
                .into_owned(),
        ));
        env.push((
            crate::control::SESSION_ENV.to_owned(),
            session_id.to_owned(),
        ));
        env.push((
            "AGENT_NODE_STATE_DIR".to_owned(),
            self.inner.cfg.state_dir.to_string_lossy().into_owned(),
        ));
        env.extend(self.inner.cfg.window_env.iter().cloned());
        env
    }

    /// The runtime of a live window, or why there is none.
    fn live_session(&self, id: &str) -> Result<(Arc<SessionRt>, SessionRecord), NodeError> {
        let record = self
            .inner
            .windows
            .record(id)
            .ok_or_else(|| NodeError::NotFound(format!("no window {id} on this node")))?;
        let rt = self.inner.windows.runtime(id);
        match rt {
            Some(rt) if !record.exited && rt.alive.load(Ordering::Relaxed) => Ok((rt, record)),
            _ => Err(NodeError::WindowDead(
                "Codex is no longer running in that window".into(),
            )),
        }
    }

    /// Waits until Codex has started: ready, busy (typing while busy steers the turn) or asking.
    async fn wait_for_input_ready(&self, rt: &SessionRt) -> Result<(), NodeError> {
        let mut screen = rt.screen.subscribe();
        rt.kick_screen();
        let deadline = tokio::time::Instant::now() + self.inner.cfg.startup_timeout;
        loop {
            let state = screen.borrow_and_update().clone();
            match state.state() {
                // A question in the cached state may just have been answered: the fresh capture
                // before the paste (`requests::typing`) decides.
                v1::ScreenState::Ready | v1::ScreenState::Busy | v1::ScreenState::Prompt => {
                    return Ok(());
                }
                v1::ScreenState::Dead => {
                    return Err(NodeError::WindowDead(
                        "Codex has exited in that window".into(),
                    ));
                }
                v1::ScreenState::Shell => {
                    return Err(NodeError::WindowDead(
                        "a shell, not Codex, runs in that window; input was not sent".into(),
                    ));
                }
                _ => {}
            }
            match tokio::time::timeout_at(deadline, screen.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(NodeError::WindowDead("the window is gone".into())),
                Err(_) => {
                    return Err(NodeError::Internal(
                        "Codex did not become ready in time; input was not sent".into(),
                    ));
                }
            }
        }
    }

    async fn send_input(&self, req: v1::SendInput) -> Result<R, NodeError> {
        let text = input::sanitize(&req.text);
        if text.trim().is_empty() {
            return Err(NodeError::InvalidArgument(
                "there is no text to send".into(),
            ));
        }
        if text.len() > input::MAX_INPUT_BYTES {
            return Err(NodeError::InvalidArgument(format!(
                "the message is too long ({} KiB; at most {} KiB)",
                text.len() / 1024,
                input::MAX_INPUT_BYTES / 1024
            )));
        }
        let (rt, record) = self.live_session(&req.session_id)?;
        rt.inputs_pending.fetch_add(1, Ordering::Relaxed);
        let result = self.type_and_confirm(&rt, &record, &text, req.mode()).await;
        rt.inputs_pending.fetch_sub(1, Ordering::Relaxed);
        result.map(R::Input)
    }

    async fn type_and_confirm(
        &self,
        rt: &SessionRt,
        record: &SessionRecord,
        text: &str,
        mode: v1::InputMode,
    ) -> Result<v1::InputResult, NodeError> {
        self.wait_for_input_ready(rt).await?;
        // A slash command is no message: it never reaches the transcript (nor a rollout to
        // match), so it takes neither the first-message lock nor a claim.
        if let Some(token) = input::slash_command(text) {
            return self.submit_command(rt, token, text).await;
        }
        // A window without a transcript: serialise first messages per folder (see
        // crate::rollout_match). Every window claims what is typed into it: after `/new` the
        // message typed next is the first of a new rollout, which the claim proves is this
        // window's.
        let matcher = &self.inner.matcher;
        let unbound = self
            .inner
            .windows
            .record(&rt.id)
            .is_some_and(|r| r.thread_id.is_none());
        let _first_message = if unbound {
            let lock = matcher.first_submission_lock(&record.cwd);
            Some(lock.lock_owned().await)
        } else {
            None
        };
        matcher.claim(&rt.id, text);
        let events = rt.events.subscribe();
        let typed = self.type_text(rt, text, mode).await;
        let outcome = match typed {
            Ok(()) => self.confirm(rt, events, text).await,
            Err(err) => Err(err),
        };
        matcher.withdraw_claim(&rt.id);
        outcome
    }

    /// Waits for the transcript to show the message. If it does not in time and the message
    /// is still in the composer (Codex never took the Enter), it is cleared and the send fails,
    /// rather than reported as submitted and left to be glued to the next message.
    async fn confirm(
        &self,
        rt: &SessionRt,
        mut events: broadcast::Receiver<Arc<v1::SessionEvent>>,
        text: &str,
    ) -> Result<v1::InputResult, NodeError> {
        let sent = input::normalize(text);
        let deadline = tokio::time::Instant::now() + self.inner.cfg.confirm_timeout;
        let mut rescan = tokio::time::interval(Duration::from_secs(1));
        rescan.tick().await;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if let Some(v1::session_event::Kind::UserMessage(m)) = &ev.kind
                            && input::is_same_message(&sent, &m.text)
                        {
                            return Ok(v1::InputResult {
                                outcome: v1::InputOutcome::Confirmed as i32,
                                detail: String::new(),
                            });
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                // A safety net for file events that never came: look for the rollout again.
                _ = rescan.tick(), if self.inner.windows.record(&rt.id).is_some_and(|r| r.thread_id.is_none()) => {
                    self.inner.matcher.rescan().await;
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if matches!(self.composer_holds(rt, text).await, Ok(Some(true))) {
            self.clear_composer(rt, text).await;
            return Err(NodeError::Internal(
                "Codex did not take the message: it stayed in its input box and was cleared".into(),
            ));
        }
        Ok(v1::InputResult {
            outcome: v1::InputOutcome::DeliveredUnconfirmed as i32,
            detail: "typed and submitted, but Codex's transcript has not shown it yet".into(),
        })
    }

    async fn send_key(&self, req: v1::SendKey) -> Result<R, NodeError> {
        use v1::send_key::Key as K;
        let key = match req.key {
            Some(K::Named(n)) => match v1::NamedKey::try_from(n) {
                Ok(v1::NamedKey::Escape) => Key::Escape,
                Ok(v1::NamedKey::Enter) => Key::Enter,
                Ok(v1::NamedKey::Tab) => Key::Tab,
                Ok(v1::NamedKey::CtrlC) => Key::CtrlC,
                Ok(v1::NamedKey::Up) => Key::Up,
                Ok(v1::NamedKey::Down) => Key::Down,
                Ok(v1::NamedKey::Left) => Key::Left,
                Ok(v1::NamedKey::Right) => Key::Right,
                _ => return Err(NodeError::InvalidArgument("unknown key".into())),
            },
            Some(K::Choice(c)) => {
                let mut chars = c.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) if ch.is_ascii_alphanumeric() => Key::Char(ch),
                    _ => {
                        return Err(NodeError::InvalidArgument(
                            "a choice is one letter or digit".into(),
                        ));
                    }
                }
            }
            None => return Err(NodeError::InvalidArgument("no key given".into())),
        };
        let (rt, _) = self.live_session(&req.session_id)?;
        // A fresh capture, never the cached state: a key meant for one question must not land
        // on the next one.
        let (pane, text) = self.inner.tmux.snapshot(&rt.pane_id).await?;
        let screen = crate::screen::classify(
            &text,
            crate::screen::PaneFacts {
                dead: pane.dead,
                current_command: &pane.current_command,
            },
        );
        if !req.expect_prompt.is_empty()
            && !typing::question_still_shown(&screen, &req.expect_prompt)
        {
            tracing::info!(session.id = %rt.id, "a key for a question no longer on screen was not pressed");
            return Err(typing::stale());
        }
        // On an idle composer these keys do something else than the user means: Ctrl-C quits
        // Codex, Escape opens the transcript browser.
        if screen == crate::screen::Screen::Ready {
            match key {
                Key::CtrlC => {
                    return Err(NodeError::InvalidArgument(
                        "Codex is idle: Ctrl-C would quit it (close the window to stop it)".into(),
                    ));
                }
                Key::Escape => {
                    return Err(NodeError::InvalidArgument(
                        "nothing to interrupt: Codex is idle".into(),
                    ));
                }
                _ => {}
            }
        }
        if pane.dead {
            return Err(NodeError::WindowDead(
                "Codex has exited in that window".into(),
            ));
        }
        if pane.in_mode {
            self.inner.tmux.leave_mode(&rt.pane_id).await?;
        }
        self.inner.tmux.send_key(&rt.pane_id, key).await?;
        rt.kick_screen();
        if !req.expect_prompt.is_empty() {
            self.until_answered(&rt, &req.expect_prompt).await;
        }
        Ok(R::Done(v1::Done {}))
    }

    async fn capture_pane(&self, id: &str, ansi: bool) -> Result<R, NodeError> {
        let record = self
            .inner
            .windows
            .record(id)
            .ok_or_else(|| NodeError::NotFound(format!("no window {id} on this node")))?;
        if record.exited {
            return Err(NodeError::WindowDead(
                "that window has exited; there is no screen to capture".into(),
            ));
        }
        let (pane, text) = self.inner.tmux.snapshot(&record.pane_id).await?;
        let ansi_text = if ansi {
            self.inner.tmux.capture(&record.pane_id, true).await?
        } else {
            String::new()
        };
        // The state of this capture, not the screen task's last look: that can be half a second
        // older, and a screenshot just after a turn said "working" under a ready screen.
        let screen = crate::screen::classify(
            &text,
            crate::screen::PaneFacts {
                dead: pane.dead,
                current_command: &pane.current_command,
            },
        );
        let state = self.inner.windows.runtime(id).map(|rt| {
            rt.kick_screen();
            crate::session::to_wire(id, &screen)
        });
        Ok(R::Capture(v1::PaneCapture {
            text,
            ansi: ansi_text,
            state,
        }))
    }

    fn list_windows(&self) -> v1::Windows {
        let windows = &self.inner.windows;
        v1::Windows {
            sessions: windows.records().iter().map(|r| windows.info(r)).collect(),
        }
    }

    async fn history(&self, req: &v1::GetHistory) -> Result<R, NodeError> {
        let path = if req.session_id.is_empty() && !req.thread_id.is_empty() {
            self.thread_rollout(&req.thread_id).await?
        } else {
            let record = self.inner.windows.record(&req.session_id).ok_or_else(|| {
                NodeError::NotFound(format!("no window {} on this node", req.session_id))
            })?;
            let Some(path) = record.rollout else {
                return Ok(R::History(v1::History::default()));
            };
            path
        };
        let limit = match req.limit {
            0 => 10,
            n => n.min(50) as usize,
        };
        let skip = req.skip as usize;
        let entries =
            tokio::task::spawn_blocking(move || crate::transcript::locate::conversation(&path))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?
                .map_err(|e| {
                    NodeError::Internal(format!("cannot read the transcript: {}", e.kind()))
                })?;
        let total = entries.len() as u32;
        Ok(R::History(v1::History {
            entries: entries.into_iter().rev().skip(skip).take(limit).collect(),
            total,
        }))
    }

    /// The rollout of a persisted thread, for reading its history without a window. Only
    /// threads recorded in a folder under the node's roots are shown, as for the resume list.
    async fn thread_rollout(&self, thread: &str) -> Result<std::path::PathBuf, NodeError> {
        if !locate::valid_thread_id(thread) {
            return Err(NodeError::InvalidArgument(format!(
                "{thread:?} is not a Codex session id"
            )));
        }
        let sessions = self.inner.matcher.sessions_dir().to_owned();
        let id = thread.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            let path = locate::find_by_thread_id(&sessions, &id)?;
            let head = locate::read_head(&path).ok()?;
            Some((path, head.cwd))
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?;
        let not_found =
            || NodeError::NotFound(format!("no Codex session {thread} on this machine"));
        let (path, cwd) = found.ok_or_else(not_found)?;
        self.inner.roots.resolve(&cwd).map_err(|_| not_found())?;
        Ok(path)
    }

    fn certificate_status(&self) -> Result<R, NodeError> {
        use crate::enroll::TlsState;
        let TlsState::Enrolled { cert_pem, key, .. } = TlsState::load(&self.inner.cfg.state_dir)
            .map_err(|e| NodeError::Internal(e.to_string()))?
        else {
            return Err(NodeError::NotFound(
                "this node has no fleet certificate".into(),
            ));
        };
        let info = shared::pki::inspect(cert_pem.as_bytes())
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let due = shared::pki::renewal_due(&info, std::time::SystemTime::now());
        let csr_pem = if due {
            key.csr(&info.role)
                .map_err(|e| NodeError::Internal(e.to_string()))?
        } else {
            String::new()
        };
        Ok(R::CertStatus(v1::CertStatus {
            not_after_unix: info
                .not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            renewal_due: due,
            csr_pem,
        }))
    }

    fn install_certificate(&self, req: &v1::InstallCertificate) -> Result<R, NodeError> {
        crate::enroll::install_renewed(&self.inner.cfg.state_dir, &req.cert_pem, &req.ca_pem)
            .map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
        tracing::info!("fleet certificate renewed");
        self.inner.certificate_changed.notify_waiters();
        Ok(R::Done(v1::Done {}))
    }

    async fn kill_window(&self, id: &str) -> Result<R, NodeError> {
        let record = self
            .inner
            .windows
            .record(id)
            .ok_or_else(|| NodeError::NotFound(format!("no window {id} on this node")))?;
        if !record.exited {
            match self.inner.tmux.kill_window(&record.window_id).await {
                Ok(()) | Err(crate::tmux::Error::Gone) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.mark_exited(id, v1::LifecycleKind::Killed);
        if let Some(rt) = self.inner.windows.runtime(id) {
            rt.kick_screen();
            // Deliver whatever the transcript still holds; the tail stays until the node forgets it.
            let _ = rt.tail_tx.try_send(TailCmd::Wake);
        }
        Ok(R::Done(v1::Done {}))
    }
}

/// Variables never passed to Codex windows: the fleet's own secrets and settings, and what
/// belongs to the node's terminal rather than the window's.
fn window_env_excluded(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "TELEGRAM_BOT_TOKEN",
        "TELOXIDE_TOKEN",
        "CODEX_HOME",
        "TMUX",
        "TMUX_PANE",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "TERM",
        "COLUMNS",
        "LINES",
        "RUST_LOG",
    ];
    const PREFIXES: &[&str] = &["CODEX_FLEET_", "AGENT_NODE_", "CENTER_", "TELEGRAM_"];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A fresh session id: `s` + 16 hex digits, unique enough for one machine's windows.
fn new_session_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(shared::clock::now_unix_ms());
    h.write_u32(std::process::id());
    format!("s{:016x}", h.finish())
}

/// `codex-<folder>`, restricted to characters that need no quoting in tmux targets.
fn window_name(cwd: &Path) -> String {
    let base: String = cwd
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("codex-{base}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_secrets_never_reach_windows() {
        assert!(window_env_excluded("TELEGRAM_BOT_TOKEN"));
        assert!(window_env_excluded("CODEX_FLEET_JOIN_SECRET"));
        assert!(window_env_excluded("TMUX"));
        assert!(!window_env_excluded("OPENAI_API_KEY"));
        assert!(!window_env_excluded("PATH"));
    }

    #[test]
    fn ids_and_names_are_safe() {
        let a = new_session_id();
        assert_ne!(a, new_session_id());
        assert!(a.starts_with('s') && a.len() == 17);
        assert_eq!(window_name(Path::new("/x/my proj;rm")), "codex-my_proj_rm");
    }
}
