//! The job commands (`/run`, `/plan`, `/review`, `/diff`, `/jobs`, `/job`, `/info`, `/cancel`,
//! `/approve`, `/reject`, `/workdir`) and the job buttons. A job runs in the topic's folder on
//! its node when the topic is bound; otherwise in the chat's `/workdir`, or `[jobs]
//! default_node` and `default_workdir`.

use proto::v1::{self, reply::Result as R, request::Op};

use super::{
    Decision, JobSettings, Jobs, now_ms,
    settings::{self, Setting},
    view,
};
use crate::{
    router::jobs::{JobId, JobState, Refusal},
    store::{Binding, NewJob, Surface},
    telegram::{
        api::{MediaKind, Upload},
        callback::JobAction,
        command::Command,
        outbox::{Class, MediaSend, Send},
        render::escape_html,
    },
};

/// The chat setting holding `/workdir` ("node\tpath").
const WORKDIR: &str = "workdir";
/// How long a node may take for a diff.
const DIFF_CALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Where a command was given.
pub(crate) struct Context {
    pub(crate) surface: Surface,
    pub(crate) message_id: i32,
    pub(crate) binding: Option<Binding>,
}

impl Jobs {
    fn reply(&self, ctx: &Context, text: &str) {
        self.reply_html(ctx, escape_html(text), text.to_owned());
    }

    /// A plain-text answer to the command.
    pub(crate) fn reply_plain(&self, ctx: &Context, text: &str) {
        self.reply(ctx, text);
    }

    fn reply_html(&self, ctx: &Context, html: String, plain: String) {
        drop(self.env.outbox.send(Send {
            surface: ctx.surface,
            html,
            plain,
            keyboard: None,
            reply_to: Some(ctx.message_id),
            class: Class::Message,
        }));
    }

    /// Runs one job command.
    pub(crate) async fn command(&self, ctx: Context, cmd: Command, args: &str) {
        let args = args.trim();
        match cmd {
            Command::Run => {
                if args.is_empty() {
                    return self.reply(&ctx, "Usage: /run <prompt> — runs Codex headless on it and sends the answer here.");
                }
                self.submit_here(&ctx, "exec", args, "", JobSettings::default())
                    .await;
            }
            Command::Plan => {
                if args.is_empty() {
                    return self.reply(
                        &ctx,
                        "Usage: /plan <task> — Codex plans it without changing anything.",
                    );
                }
                let settings = JobSettings {
                    sandbox: "read-only".into(),
                    instructions: "Plan only: do not change any file. Answer with a short, \
                                   numbered, step-by-step plan for the task."
                        .into(),
                    ..JobSettings::default()
                };
                self.submit_here(&ctx, "exec", args, "", settings).await;
            }
            Command::Review => match review_target(args) {
                Ok(target) => {
                    self.submit_here(&ctx, "review", "", &target, JobSettings::default())
                        .await
                }
                Err(usage) => self.reply(&ctx, usage),
            },
            Command::Diff => self.diff(&ctx, args).await,
            Command::Jobs => {
                let text = match self.store().jobs_of_chat(ctx.surface.chat_id, 15) {
                    Ok(jobs) => view::list(&jobs, now_ms()),
                    Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                };
                self.reply(&ctx, &text);
            }
            Command::Job | Command::Info => {
                let Some(id) = job_id(args) else {
                    return self.reply(&ctx, &format!("Usage: /{} <job number>", cmd.name()));
                };
                match self.store().job(id) {
                    Ok(Some(job)) if cmd == Command::Job => {
                        let text = view::status_text(&job, 0, None);
                        drop(self.env.outbox.send(Send {
                            surface: ctx.surface,
                            html: escape_html(&text),
                            plain: text,
                            keyboard: Some(view::status_keyboard(&job)),
                            reply_to: Some(ctx.message_id),
                            class: Class::Message,
                        }));
                    }
                    Ok(Some(job)) => self.reply(&ctx, &view::info(&job)),
                    Ok(None) => self.reply(&ctx, &format!("There is no job {id}.")),
                    Err(_) => self.reply(&ctx, crate::store::STATE_UNREADABLE),
                }
            }
            Command::Cancel | Command::Approve | Command::Reject => {
                let Some(id) = job_id(args) else {
                    return self.reply(&ctx, &format!("Usage: /{} <job number>", cmd.name()));
                };
                let decision = match cmd {
                    Command::Approve => Decision::Approve,
                    Command::Reject => Decision::Reject,
                    _ => Decision::Cancel,
                };
                let text = self.decide_text(id, decision).await;
                self.reply(&ctx, &text);
            }
            Command::Workdir => self.workdir(&ctx, args).await,
            Command::RunSession => self.run_session(&ctx, args).await,
            Command::Session => self.session(&ctx, args),
            Command::Video => self.video(&ctx, args).await,
            Command::DebugConfig => {
                let text = self.debug_config(&ctx);
                self.reply(&ctx, &text);
            }
            Command::Model
            | Command::Permissions
            | Command::Approvals
            | Command::Search
            | Command::Experimental
            | Command::Personality => {
                let setting = match cmd {
                    Command::Model => Setting::Model,
                    Command::Permissions => Setting::Permissions,
                    Command::Approvals => Setting::Approvals,
                    Command::Search => Setting::Search,
                    Command::Experimental => Setting::Experimental,
                    _ => Setting::Personality,
                };
                if setting == Setting::Experimental
                    && let Some(refusal) = self.unknown_feature(&ctx, args).await
                {
                    return self.reply(&ctx, &refusal);
                }
                let text = settings::command(self.store(), ctx.surface.chat_id, setting, args);
                self.reply(&ctx, &text);
            }
            Command::Mcp => self.mcp(&ctx, args).await,
            Command::Schedule => self.schedule_command(&ctx, args).await,
            _ => {}
        }
    }

    /// A job button; the answer shown to the presser.
    pub(crate) async fn button(
        &self,
        surface: Surface,
        id: i64,
        action: JobAction,
        message_id: Option<i32>,
    ) -> String {
        let id = JobId(id);
        match action {
            JobAction::Approve => self.decide_text(id, Decision::Approve).await,
            JobAction::Reject => self.decide_text(id, Decision::Reject).await,
            JobAction::Cancel => self.decide_text(id, Decision::Cancel).await,
            JobAction::Rerun => {
                let Ok(Some(old)) = self.store().job(id) else {
                    return crate::telegram::callback::EXPIRED.to_owned();
                };
                let mut job = old.job;
                job.surface = surface;
                job.reply_to = message_id;
                job.source = String::new();
                match self.submit(job).await {
                    Ok(Ok(new)) => format!("Job {new} submitted."),
                    Ok(Err(_)) => crate::store::STATE_UNREADABLE.to_owned(),
                    Err(stopped) => stopped.to_string(),
                }
            }
        }
    }

    async fn decide_text(&self, id: JobId, decision: Decision) -> String {
        match self.decide(id, decision).await {
            Ok(Ok(())) => match decision {
                Decision::Approve => format!("Job {id} approved."),
                Decision::Reject => format!("Job {id} rejected; it will not run."),
                Decision::Cancel => match self.store().job(id) {
                    Ok(Some(j)) if j.state == JobState::Running => {
                        format!("Stopping job {id}…")
                    }
                    _ => format!("Job {id} cancelled."),
                },
            },
            Ok(Err(Refusal::Unknown(_))) => match self.store().job(id) {
                Ok(Some(j)) => format!("Job {id} is over ({}).", j.state.name()),
                _ => format!("There is no job {id}."),
            },
            Ok(Err(refusal)) => {
                let mut text = refusal.to_string();
                if let Some(first) = text.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                format!("{text}.")
            }
            Err(stopped) => stopped.to_string(),
        }
    }

    /// Where jobs of this topic run: (node, folder), or why there is no such place.
    pub(super) fn place(&self, ctx: &Context) -> Result<(String, String), JobRequestError> {
        if let Some(b) = &ctx.binding {
            return Ok((b.node.to_string(), b.cwd.clone()));
        }
        match self.store().chat_setting(ctx.surface.chat_id, WORKDIR) {
            Ok(Some(v)) => {
                if let Some((node, dir)) = v.split_once('\t') {
                    return Ok((node.to_owned(), dir.to_owned()));
                }
            }
            Ok(None) => {}
            Err(_) => return Err(JobRequestError::StateUnreadable),
        }
        match &self.cfg().default_workdir {
            Some(dir) => Ok((self.cfg().default_node.clone(), dir.clone())),
            None => Err(JobRequestError::NoFolder),
        }
    }

    async fn submit_here(
        &self,
        ctx: &Context,
        kind: &str,
        prompt: &str,
        review_target: &str,
        settings: JobSettings,
    ) {
        let (node, cwd) = match self.place(ctx) {
            Ok(place) => place,
            Err(why) => return self.reply(ctx, &why.to_string()),
        };
        self.submit_at(
            ctx,
            node,
            cwd,
            kind,
            prompt,
            review_target,
            settings,
            String::new(),
            String::new(),
        )
        .await;
    }

    /// Submits a job in `node`:`cwd` with the chat's settings under `overrides` (a non-empty
    /// field of `overrides` wins; instructions are joined).
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per kind of job; a struct would only rename them"
    )]
    async fn submit_at(
        &self,
        ctx: &Context,
        node: String,
        cwd: String,
        kind: &str,
        prompt: &str,
        review_target: &str,
        overrides: JobSettings,
        resume_thread: String,
        source: String,
    ) {
        let Ok(mut settings) = settings::effective(self.store(), ctx.surface.chat_id) else {
            return self.reply(ctx, crate::store::STATE_UNREADABLE);
        };
        let pick = |mine: &mut String, theirs: String| {
            if !theirs.is_empty() {
                *mine = theirs;
            }
        };
        pick(&mut settings.model, overrides.model);
        pick(&mut settings.reasoning_effort, overrides.reasoning_effort);
        pick(&mut settings.sandbox, overrides.sandbox);
        pick(&mut settings.approvals, overrides.approvals);
        pick(&mut settings.web_search, overrides.web_search);
        if !overrides.instructions.is_empty() {
            settings.instructions = if settings.instructions.is_empty() {
                overrides.instructions
            } else {
                format!("{}\n\n{}", overrides.instructions, settings.instructions)
            };
        }
        let job = NewJob {
            surface: ctx.surface,
            requested_by: 0,
            node,
            cwd,
            kind: kind.to_owned(),
            prompt: prompt.to_owned(),
            resume_thread,
            review_target: review_target.to_owned(),
            settings: settings.to_json(),
            reply_to: Some(ctx.message_id),
            source,
        };
        match self.submit(job).await {
            // The job's status message replies to the command: that is the answer.
            Ok(Ok(_)) => {}
            Ok(Err(_)) => self.reply(ctx, crate::store::STATE_UNREADABLE),
            Err(stopped) => self.reply(ctx, &stopped.to_string()),
        }
    }

    /// `/status`'s line about jobs here: where they run and with which settings.
    pub(crate) fn status_line(&self, chat: i64, binding: Option<&Binding>) -> String {
        let ctx = Context {
            surface: Surface {
                chat_id: chat,
                thread_id: 0,
            },
            message_id: 0,
            binding: binding.cloned(),
        };
        let place = match self.place(&ctx) {
            Ok((node, dir)) => format!("run in {node}:{dir}"),
            Err(_) => "have no folder (/workdir set)".to_owned(),
        };
        let settings = settings::effective(self.store(), chat)
            .map(|s| settings::summary(&s))
            .unwrap_or_else(|_| "unreadable".to_owned());
        format!("Jobs here {place}; settings: {settings}.")
    }

    /// `/debug_config`: the job settings in effect (there are no secrets in them).
    fn debug_config(&self, ctx: &Context) -> String {
        let cfg = self.cfg();
        let mut out = vec![self.status_line(ctx.surface.chat_id, ctx.binding.as_ref())];
        out.push(format!(
            "Limits: {} per machine, {} in the fleet.",
            cfg.limits.per_node, cfg.limits.fleet
        ));
        out.push(format!(
            "Default place: {}:{}.",
            cfg.default_node,
            cfg.default_workdir.as_deref().unwrap_or("(none)")
        ));
        out.push(format!(
            "Approval: {} risky-prompt patterns and danger-full-access; a job waits {} min.",
            cfg.risky.len(),
            cfg.approval_ttl.as_secs() / 60
        ));
        out.push(format!(
            "Artifacts: {} up to {} MB.",
            cfg.artifact_extensions.join(" "),
            cfg.artifact_max_bytes / (1024 * 1024)
        ));
        out.push(format!("Cancel grace: {} s.", cfg.cancel_grace.as_secs()));
        out.join("\n")
    }

    /// `/session create <name> | stop <name> | list`: named Codex threads for `/run_session`,
    /// each in the folder where it was created.
    fn session(&self, ctx: &Context, args: &str) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let chat = ctx.surface.chat_id;
        let text = match words.as_slice() {
            ["create", name] if is_session_name(name) => match self.place(ctx) {
                Err(why) => why.to_string(),
                Ok((node, dir)) => {
                    let key = format!("{SESSION}{name}");
                    match self.store().chat_setting(chat, &key) {
                        Ok(Some(_)) => format!("There is a session {name} already."),
                        Ok(None) => match self.store().set_chat_setting(
                            chat,
                            &key,
                            Some(&format!("{node}\t{dir}")),
                        ) {
                            Ok(()) => format!(
                                "Session {name} created in {node}:{dir}. /run_session {name} <prompt> runs in it; each run continues the last."
                            ),
                            Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                        },
                        Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                    }
                }
            },
            ["stop", name] => {
                let key = format!("{SESSION}{name}");
                match self.store().chat_setting(chat, &key) {
                    Ok(Some(_)) => match self.store().set_chat_setting(chat, &key, None) {
                        Ok(()) => format!("Session {name} stopped (its Codex thread is kept)."),
                        Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                    },
                    Ok(None) => format!("There is no session {name}."),
                    Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                }
            }
            [] | ["list"] => match self.store().chat_settings_with_prefix(chat, SESSION) {
                Ok(list) if list.is_empty() => {
                    "No sessions. /session create <name> makes one.".to_owned()
                }
                Ok(list) => {
                    let mut out = vec!["Sessions:".to_owned()];
                    for (key, value) in list {
                        let name = &key[SESSION.len()..];
                        let (place, _) = session_place(&value);
                        let thread = self
                            .store()
                            .last_thread_of_source(&format!("session:{chat}:{name}"))
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        out.push(format!(
                            "{name} · {place}{}",
                            if thread.is_empty() {
                                " · not run yet".to_owned()
                            } else {
                                format!(" · thread {thread}")
                            }
                        ));
                    }
                    out.join("\n")
                }
                Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
            },
            _ => "Usage: /session create <name> | stop <name> | list (names: a-z, 0-9, - and _)"
                .to_owned(),
        };
        self.reply(ctx, &text);
    }

    /// `/run_session <thread id or session name> <prompt>`: `codex exec resume` on that thread
    /// (a named session's first run starts its thread).
    async fn run_session(&self, ctx: &Context, args: &str) {
        let Some((target, prompt)) = args.split_once(char::is_whitespace) else {
            return self.reply(
                ctx,
                "Usage: /run_session <thread id or session name> <prompt>",
            );
        };
        let prompt = prompt.trim();
        let key = format!("{SESSION}{target}");
        match self.store().chat_setting(ctx.surface.chat_id, &key) {
            Ok(Some(value)) => {
                let (place, _) = session_place(&value);
                let (node, dir) = place.split_once(':').unwrap_or(("", ""));
                let source = format!("session:{}:{target}", ctx.surface.chat_id);
                // The thread of the session's newest job that has one.
                let thread = match self.store().last_thread_of_source(&source) {
                    Ok(t) => t.unwrap_or_default(),
                    Err(_) => return self.reply(ctx, crate::store::STATE_UNREADABLE),
                };
                let kind = if thread.is_empty() { "exec" } else { "resume" };
                self.submit_at(
                    ctx,
                    node.to_owned(),
                    dir.to_owned(),
                    kind,
                    prompt,
                    "",
                    JobSettings::default(),
                    thread,
                    source,
                )
                .await;
            }
            Ok(None) if is_thread_id(target) => {
                let (node, cwd) = match self.place(ctx) {
                    Ok(place) => place,
                    Err(why) => return self.reply(ctx, &why.to_string()),
                };
                self.submit_at(
                    ctx,
                    node,
                    cwd,
                    "resume",
                    prompt,
                    "",
                    JobSettings::default(),
                    target.to_owned(),
                    String::new(),
                )
                .await;
            }
            Ok(None) => self.reply(
                ctx,
                &format!(
                    "{target:?} is neither a session here (/session list) nor a Codex thread id."
                ),
            ),
            Err(_) => self.reply(ctx, crate::store::STATE_UNREADABLE),
        }
    }

    /// `/video <n>`: the job's video artifacts.
    async fn video(&self, ctx: &Context, args: &str) {
        let Some(id) = job_id(args) else {
            return self.reply(ctx, "Usage: /video <job number>");
        };
        let job = match self.store().job(id) {
            Ok(Some(job)) => job,
            Ok(None) => return self.reply(ctx, &format!("There is no job {id}.")),
            Err(_) => return self.reply(ctx, crate::store::STATE_UNREADABLE),
        };
        let videos: Vec<&str> = job
            .artifacts
            .lines()
            .filter(|p| {
                let ext = p.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                matches!(ext.as_deref(), Some("mp4" | "mov" | "webm" | "mkv"))
            })
            .collect();
        if videos.is_empty() {
            return self.reply(ctx, &format!("Job {id} made no video."));
        }
        for path in videos {
            let artifact = v1::JobArtifact {
                path: path.to_owned(),
                size: 0,
                media_type: "video".into(),
            };
            super::delivery::send_artifact(self, &job, &artifact, Some(ctx.message_id)).await;
        }
    }

    /// Runs a read-only Codex command on the jobs' machine.
    async fn codex_info(
        &self,
        ctx: &Context,
        kind: v1::CodexInfoKind,
        name: &str,
    ) -> Result<(String, v1::CodexInfoResult), JobRequestError> {
        let (node, _) = self.place(ctx)?;
        let Some(conn) = self.env.node(&node) else {
            return Err(JobRequestError::Offline(node));
        };
        let op = Op::CodexInfo(v1::CodexInfo {
            kind: kind as i32,
            name: name.to_owned(),
        });
        match conn.call(op, DIFF_CALL).await {
            Ok(R::CodexInfo(r)) => Ok((node, r)),
            Ok(_) => Err(JobRequestError::TooOld(node)),
            Err(err) => Err(JobRequestError::Node { node, err }),
        }
    }

    /// `/mcp [list | get <name>]`.
    async fn mcp(&self, ctx: &Context, args: &str) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let (kind, name) = match words.as_slice() {
            [] | ["list"] => (v1::CodexInfoKind::McpList, ""),
            ["get", name] => (v1::CodexInfoKind::McpGet, *name),
            _ => return self.reply(ctx, "Usage: /mcp [list | get <name>]"),
        };
        match self.codex_info(ctx, kind, name).await {
            Ok((node, r)) => {
                let head = if r.ok {
                    format!("Codex on {node}:")
                } else {
                    format!("Codex on {node} refused:")
                };
                let body: String = r.output.trim().chars().take(3500).collect();
                self.reply_html(
                    ctx,
                    format!("{}\n<pre>{}</pre>", escape_html(&head), escape_html(&body)),
                    format!("{head}\n{body}"),
                );
            }
            Err(why) => self.reply(ctx, &why.to_string()),
        }
    }

    /// `/experimental on|off <feature>`: a feature Codex on the jobs' machine does not know is
    /// refused now, not when a job fails on it. `None` when it is known (or cannot be checked:
    /// the machine is away, or its Codex lists no features).
    async fn unknown_feature(&self, ctx: &Context, args: &str) -> Option<String> {
        let words: Vec<&str> = args.split_whitespace().collect();
        let ["on" | "off", feature] = words.as_slice() else {
            return None;
        };
        let Ok((node, r)) = self
            .codex_info(ctx, v1::CodexInfoKind::FeaturesList, "")
            .await
        else {
            return None;
        };
        let known: Vec<&str> = r
            .output
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if !r.ok || known.is_empty() || known.contains(feature) {
            return None;
        }
        Some(format!(
            "Codex on {node} has no feature {feature:?}. /experimental list shows the settings; `codex features list` on {node} shows the features."
        ))
    }

    /// `center job add`: a job from the operator's command line, under the same rules as
    /// `/run` (the folder checked against the node's roots when it is online, risky prompts
    /// wait for approval); its status and answer go to `surface`.
    pub(crate) async fn operator_add(
        &self,
        node: &str,
        folder: &str,
        prompt: &str,
        surface: Surface,
    ) -> Result<JobId, JobRequestError> {
        let node = if node.is_empty() {
            self.cfg().default_node.clone()
        } else {
            node.to_owned()
        };
        if prompt.trim().is_empty() {
            return Err(JobRequestError::EmptyPrompt);
        }
        if !folder.starts_with('/') {
            return Err(JobRequestError::NotAbsolute(folder.to_owned()));
        }
        let mut folder = folder.to_owned();
        if let Some(conn) = self.env.node(&node).filter(|c| c.online()) {
            folder =
                checked_folder(&conn, &folder)
                    .await
                    .map_err(|why| JobRequestError::Folder {
                        node: node.clone(),
                        why,
                    })?;
        }
        let settings = settings::effective(self.store(), surface.chat_id)
            .map_err(|_| JobRequestError::StateUnreadable)?;
        let job = NewJob {
            surface,
            requested_by: 0,
            node,
            cwd: folder,
            kind: "exec".into(),
            prompt: prompt.to_owned(),
            resume_thread: String::new(),
            review_target: String::new(),
            settings: settings.to_json(),
            reply_to: None,
            source: "cli".into(),
        };
        match self.submit(job).await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(_)) => Err(JobRequestError::StateUnreadable),
            Err(stopped) => Err(JobRequestError::Stopped(stopped)),
        }
    }

    /// `/workdir show|set [node:]<folder>|reset`.
    async fn workdir(&self, ctx: &Context, args: &str) {
        let (verb, rest) = args.split_once(' ').unwrap_or((args, ""));
        let chat = ctx.surface.chat_id;
        match verb {
            "" | "show" => {
                let text = match self.place(ctx) {
                    Ok((node, dir)) if ctx.binding.is_some() => format!(
                        "Jobs here run in this topic's folder: {node}:{dir} (the topic is bound)."
                    ),
                    Ok((node, dir)) => format!("Jobs in this chat run in {node}:{dir}."),
                    Err(why) => why.to_string(),
                };
                self.reply(ctx, &text);
            }
            "reset" => {
                let text = match self.store().set_chat_setting(chat, WORKDIR, None) {
                    Ok(()) => "Job folder reset to the default.",
                    Err(_) => crate::store::STATE_UNREADABLE,
                };
                self.reply(ctx, text);
            }
            "set" if !rest.trim().is_empty() => {
                let spec = rest.trim();
                let (node, dir) = match spec.split_once(':') {
                    Some((node, dir)) if !node.contains('/') => (node.to_owned(), dir.to_owned()),
                    _ => (self.cfg().default_node.clone(), spec.to_owned()),
                };
                let Some(conn) = self.env.node(&node) else {
                    return self.reply(
                        ctx,
                        &format!("There is no connected machine called {node}."),
                    );
                };
                let text = match checked_folder(&conn, &dir).await {
                    Ok(path) => {
                        let value = format!("{node}\t{path}");
                        match self.store().set_chat_setting(chat, WORKDIR, Some(&value)) {
                            Ok(()) => format!("Jobs in this chat now run in {node}:{path}."),
                            Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
                        }
                    }
                    Err(why) => format!("Not set: {why}"),
                };
                self.reply(ctx, &text);
            }
            _ => self.reply(ctx, "Usage: /workdir show | set [node:]<folder> | reset"),
        }
    }

    /// `/diff [path]`: the stat in a message, the patch as a document.
    async fn diff(&self, ctx: &Context, path: &str) {
        let (node, cwd) = match self.place(ctx) {
            Ok(place) => place,
            Err(why) => return self.reply(ctx, &why.to_string()),
        };
        let Some(conn) = self.env.node(&node) else {
            return self.reply(ctx, &format!("{node} is offline."));
        };
        let result = conn
            .call(
                Op::GitDiff(v1::GitDiff {
                    cwd: cwd.clone(),
                    path: path.to_owned(),
                }),
                DIFF_CALL,
            )
            .await;
        let diff = match result {
            Ok(R::Diff(d)) => d,
            Ok(_) => return self.reply(ctx, "Unexpected answer from the machine."),
            Err(err) => return self.reply(ctx, &format!("No diff: {err}")),
        };
        if !diff.is_repo {
            return self.reply(ctx, &format!("Not a git repository: {node}:{cwd}."));
        }
        if diff.stat.trim().is_empty() && diff.patch.trim().is_empty() {
            return self.reply(ctx, &format!("No changes in {node}:{cwd}."));
        }
        let stat: String = diff.stat.chars().take(3500).collect();
        self.reply_html(
            ctx,
            format!(
                "Changes in {}:\n<pre>{}</pre>",
                escape_html(&format!("{node}:{cwd}")),
                escape_html(&stat)
            ),
            format!("Changes in {node}:{cwd}:\n{stat}"),
        );
        if !diff.patch.is_empty() {
            let caption = if diff.truncated {
                "The patch (cut short: it is large)."
            } else {
                "The patch."
            };
            drop(self.env.outbox.send_media(MediaSend {
                surface: ctx.surface,
                upload: Upload {
                    kind: MediaKind::Document,
                    file_name: "diff.patch".into(),
                    bytes: std::sync::Arc::new(diff.patch.into_bytes()),
                },
                caption_html: escape_html(caption),
                caption_plain: caption.to_owned(),
                keyboard: None,
                reply_to: Some(ctx.message_id),
                class: Class::Message,
            }));
        }
    }
}

/// Why a job request from a chat or the operator could not go ahead (each reads as the reply).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobRequestError {
    #[error("{}", crate::store::STATE_UNREADABLE)]
    StateUnreadable,
    #[error(
        "No folder for jobs here: bind this topic to a session, or choose one with /workdir set \
         <node>:<folder> (or set [jobs] default_workdir in the center's config)."
    )]
    NoFolder,
    #[error("{0} is offline.")]
    Offline(String),
    #[error("{0} does not answer this (upgrade its agent-node).")]
    TooOld(String),
    #[error("{node}: {err}")]
    Node {
        node: String,
        #[source]
        err: crate::nodes::CallError,
    },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("{node}: {why}")]
    Folder {
        node: String,
        #[source]
        why: FolderError,
    },
    #[error(transparent)]
    Stopped(#[from] super::Stopped),
}

/// Why a folder was not taken for jobs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FolderError {
    #[error("unexpected answer from the machine")]
    Unexpected,
    #[error(transparent)]
    Call(crate::nodes::CallError),
}

/// `dir` as the node resolves it, when it is a folder under its roots (the node checks).
async fn checked_folder(conn: &crate::nodes::NodeConn, dir: &str) -> Result<String, FolderError> {
    let op = Op::ListDir(v1::ListDir {
        path: dir.to_owned(),
        show_hidden: false,
    });
    match conn.call(op, crate::app::CALL_TIMEOUT).await {
        Ok(R::Dir(d)) => Ok(d.path),
        Ok(_) => Err(FolderError::Unexpected),
        Err(err) => Err(FolderError::Call(err)),
    }
}

/// The prefix of chat settings naming a job session.
const SESSION: &str = "session.";

/// A session name: short, plain.
fn is_session_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A Codex thread id (a UUID).
fn is_thread_id(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// A stored session: ("node:folder", anything after).
fn session_place(value: &str) -> (String, String) {
    let mut parts = value.split('\t');
    let node = parts.next().unwrap_or("");
    let dir = parts.next().unwrap_or("");
    (
        format!("{node}:{dir}"),
        parts.next().unwrap_or("").to_owned(),
    )
}

/// `/job 12` or `/job #12`.
fn job_id(args: &str) -> Option<JobId> {
    let n = args.trim().trim_start_matches('#');
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
        .map(JobId)
}

/// `/review` arguments: `uncommitted` (the default), `base <branch>` or `commit <sha>`.
fn review_target(args: &str) -> Result<String, &'static str> {
    const USAGE: &str = "Usage: /review [uncommitted | base <branch> | commit <sha>]";
    let words: Vec<&str> = args.split_whitespace().collect();
    let safe = |w: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
    };
    match words.as_slice() {
        [] | ["uncommitted"] => Ok("uncommitted".into()),
        ["base", branch] if safe(branch) => Ok(format!("base {branch}")),
        ["commit", sha] if sha.len() >= 4 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(format!("commit {sha}"))
        }
        _ => Err(USAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_numbers_parse() {
        assert_eq!(job_id("12"), Some(JobId(12)));
        assert_eq!(job_id(" #7 "), Some(JobId(7)));
        assert_eq!(job_id(""), None);
        assert_eq!(job_id("x"), None);
        assert_eq!(job_id("-1"), None);
    }

    #[test]
    fn review_targets_are_checked() {
        assert_eq!(review_target("").unwrap(), "uncommitted");
        assert_eq!(review_target("base main").unwrap(), "base main");
        assert_eq!(review_target("commit abc123").unwrap(), "commit abc123");
        assert!(review_target("base --exec=x").is_err());
        assert!(review_target("commit xyz").is_err());
        assert!(review_target("everything").is_err());
    }
}
