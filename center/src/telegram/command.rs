//! The bot's own slash commands, in one enum. The command menu (`setMyCommands`), `/help` and
//! the parser are all made from [`Command::ALL`], so a command cannot be listed and not handled,
//! or handled and not listed. Anything else that starts with `/` is Codex's (`/model`,
//! `/compact`, …) and is typed into the session as text.

/// A command the center handles itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// What this bot does (Telegram sends it when a chat starts).
    Start,
    /// The commands, explained.
    Help,
    /// Bind the topic: pick a machine and a folder.
    Bind,
    /// Bind the topic to an earlier Codex session.
    Resume,
    /// The topic's binding, machine, window and Codex state.
    Status,
    /// Codex's own `/status` (ours has the name).
    CodexStatus,
    /// Codex's screen as a picture.
    Screenshot,
    /// Recent messages of the session.
    History,
    /// Press Escape.
    Esc,
    /// Press Ctrl-C.
    Interrupt,
    /// Queue a message for after the current turn.
    Queue,
    /// Send a message now.
    Steer,
    /// Toggle the topic's default input mode.
    Switch,
    /// The fleet's machines.
    Nodes,
    /// Enrol or revoke a machine.
    Node,
    /// Unbind the topic, keeping the window.
    Unbind,
    /// Close the window and unbind.
    Kill,
    /// Run a prompt as a headless job.
    Run,
    /// A read-only job that only plans.
    Plan,
    /// A review job.
    Review,
    /// The folder's git diff.
    Diff,
    /// The chat's jobs.
    Jobs,
    /// One job.
    Job,
    /// Everything about one job.
    Info,
    /// Cancel a job.
    Cancel,
    /// Approve a job that waits for approval.
    Approve,
    /// Refuse a job that waits for approval.
    Reject,
    /// Where jobs of the chat run.
    Workdir,
    /// Jobs on a schedule.
    Schedule,
    /// Continue a Codex thread (by id or session name) as a job.
    RunSession,
    /// Named job sessions.
    Session,
    /// A job's videos.
    Video,
    /// The job settings in effect.
    DebugConfig,
    /// Job setting: model and reasoning effort (Codex's own in a bound topic).
    Model,
    /// Job setting: sandbox.
    Permissions,
    /// Job setting: approval policy.
    Approvals,
    /// Job setting: web search.
    Search,
    /// Job setting: experimental features.
    Experimental,
    /// Job setting: personality.
    Personality,
    /// The fleet's health: memory, disk, load, windows, delivery lag, Codex.
    Health,
    /// A keyboard of the topic's common keys.
    Toolbar,
    /// Topics whose windows are gone and windows no topic holds.
    Cleanup,
    /// The MCP servers Codex has on the jobs' machine.
    Mcp,
    /// What this topic shows besides answers.
    Verbose,
    /// Log Codex in on a machine.
    CodexLogin,
    /// Codex accounts of a machine.
    CodexAccount,
}

impl Command {
    /// Every command, in menu order.
    pub const ALL: [Command; 46] = [
        Command::Start,
        Command::Help,
        Command::Bind,
        Command::Resume,
        Command::Status,
        Command::CodexStatus,
        Command::Screenshot,
        Command::History,
        Command::Esc,
        Command::Interrupt,
        Command::Queue,
        Command::Steer,
        Command::Switch,
        Command::Nodes,
        Command::Node,
        Command::Unbind,
        Command::Kill,
        Command::Run,
        Command::Plan,
        Command::Review,
        Command::Diff,
        Command::Jobs,
        Command::Job,
        Command::Info,
        Command::Cancel,
        Command::Approve,
        Command::Reject,
        Command::Workdir,
        Command::Schedule,
        Command::RunSession,
        Command::Session,
        Command::Video,
        Command::DebugConfig,
        Command::Model,
        Command::Permissions,
        Command::Approvals,
        Command::Search,
        Command::Experimental,
        Command::Personality,
        Command::Health,
        Command::Toolbar,
        Command::Cleanup,
        Command::Mcp,
        Command::Verbose,
        Command::CodexLogin,
        Command::CodexAccount,
    ];

    /// The name after the slash.
    pub fn name(self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Help => "help",
            Command::Bind => "bind",
            Command::Resume => "resume",
            Command::Status => "status",
            Command::CodexStatus => "codex_status",
            Command::Screenshot => "screenshot",
            Command::History => "history",
            Command::Esc => "esc",
            Command::Interrupt => "interrupt",
            Command::Queue => "queue",
            Command::Steer => "steer",
            Command::Switch => "switch",
            Command::Nodes => "nodes",
            Command::Node => "node",
            Command::Unbind => "unbind",
            Command::Kill => "kill",
            Command::Run => "run",
            Command::Plan => "plan",
            Command::Review => "review",
            Command::Diff => "diff",
            Command::Jobs => "jobs",
            Command::Job => "job",
            Command::Info => "info",
            Command::Cancel => "cancel",
            Command::Approve => "approve",
            Command::Reject => "reject",
            Command::Workdir => "workdir",
            Command::Schedule => "schedule",
            Command::RunSession => "run_session",
            Command::Session => "session",
            Command::Video => "video",
            Command::DebugConfig => "debug_config",
            Command::Model => "model",
            Command::Permissions => "permissions",
            Command::Approvals => "approvals",
            Command::Search => "search",
            Command::Experimental => "experimental",
            Command::Personality => "personality",
            Command::Health => "health",
            Command::Toolbar => "toolbar",
            Command::Cleanup => "cleanup",
            Command::Mcp => "mcp",
            Command::Verbose => "verbose",
            Command::CodexLogin => "codexlogin",
            Command::CodexAccount => "codexaccount",
        }
    }

    /// One line for the command menu and `/help`.
    pub fn description(self) -> &'static str {
        match self {
            Command::Start => "What this bot does",
            Command::Help => "List the commands",
            Command::Bind => "Bind this topic to a Codex session (pick a folder)",
            Command::Resume => "Bind this topic to an earlier Codex session",
            Command::Status => "Binding, machine, model, tokens, context left, Codex state",
            Command::CodexStatus => "Codex's own /status, typed into Codex",
            Command::Screenshot => "Show Codex's screen",
            Command::History => "Recent messages of this session",
            Command::Esc => "Press Escape (interrupt the turn, cancel a prompt)",
            Command::Interrupt => "Press Ctrl-C in Codex",
            Command::Queue => "Queue a message for after the current turn",
            Command::Steer => "Send a message now (steers a running turn)",
            Command::Switch => "Toggle this topic's default: steer or queue",
            Command::Nodes => "The machines of this fleet and their state",
            Command::Node => "add <name> <host:port> <code> | remove <name> | upgrade <name|all>",
            Command::Unbind => "Unbind this topic (the window keeps running)",
            Command::Kill => "Close the Codex window and unbind",
            Command::Run => "Job: run a prompt headless (codex exec) here, answer comes back",
            Command::Plan => "Job: plan a task read-only, changing nothing",
            Command::Review => "Job: review changes [uncommitted | base <branch> | commit <sha>]",
            Command::Diff => "The folder's git diff [path]: stat here, patch as a file",
            Command::Jobs => "Recent and queued jobs of this chat",
            Command::Job => "<n>: a job's state",
            Command::Info => "<n>: everything about a job",
            Command::Cancel => "<n>: cancel a job (stops it if it runs)",
            Command::Approve => "<n>: approve a job that waits for approval",
            Command::Reject => "<n>: refuse a job that waits for approval",
            Command::Workdir => "Where jobs run: show | set [node:]<folder> | reset",
            Command::Schedule => "Jobs on a schedule: add \"<cron>\" <prompt> | list | remove <n>",
            Command::RunSession => "<thread id or session name> <prompt>: continue it as a job",
            Command::Session => "Named job sessions: create <name> | stop <name> | list",
            Command::Video => "<n>: send a job's videos",
            Command::DebugConfig => "The job settings in effect here (no secrets)",
            Command::Model => {
                "Jobs: [<name>] [minimal..xhigh] | reset (bound topic: Codex's /model)"
            }
            Command::Permissions => {
                "Jobs: read-only | workspace-write | danger-full-access | reset (bound: Codex's)"
            }
            Command::Approvals => {
                "Jobs: untrusted | on-failure | on-request | never | reset (bound: Codex's)"
            }
            Command::Search => "Jobs: live | cached | disabled | reset (bound: Codex's)",
            Command::Experimental => "Jobs: list | on <f> | off <f> | reset (bound: Codex's)",
            Command::Personality => {
                "Jobs: friendly | pragmatic | none | custom <text> | reset (bound: Codex's)"
            }
            Command::Health => "Each machine's memory, disk, load, windows, lag and Codex",
            Command::Toolbar => {
                "Post this topic's toolbar: Esc, Interrupt, Screenshot, Status, mode"
            }
            Command::Cleanup => "Topics whose windows are gone, windows no topic holds",
            Command::Mcp => "[list | get <name>]: Codex's MCP servers on the jobs' machine",
            Command::Verbose => {
                "What this topic shows: commentary, reasoning, tools, shell output, desk messages"
            }
            Command::CodexLogin => {
                "[machine] [account]: log Codex in by device code (machine: the topic's, the only one or local; no account: the default login)"
            }
            Command::CodexAccount => {
                "[machine] list | use <account> | clear: the Codex account new windows and jobs use (running windows keep theirs)"
            }
        }
    }

    /// Whether, in a topic bound to a live session, this name is Codex's own TUI command and
    /// is typed into Codex (the job settings of the same names apply elsewhere).
    pub fn codex_in_bound_topics(self) -> bool {
        matches!(
            self,
            Command::Model
                | Command::Permissions
                | Command::Approvals
                | Command::Search
                | Command::Experimental
                | Command::Personality
        )
    }

    /// The command called `name` (any case), if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The command menu as `setMyCommands` takes it.
    pub fn menu() -> Vec<(&'static str, &'static str)> {
        Self::ALL
            .into_iter()
            .map(|c| (c.name(), c.description()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn every_command_parses_back_from_its_name() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.name()), Some(c));
            assert_eq!(Command::parse(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(
            Command::parse("compact"),
            None,
            "Codex's own commands are not ours"
        );
        assert!(Command::parse("model").unwrap().codex_in_bound_topics());
        assert_eq!(Command::parse(""), None);
    }

    #[test]
    fn the_menu_is_valid_for_telegram() {
        let menu = Command::menu();
        assert!(menu.len() <= 100);
        let mut names: Vec<&str> = menu.iter().map(|(c, _)| *c).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), menu.len(), "command names are unique");
        for (c, d) in menu {
            assert!(c.len() <= 32 && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
            assert!(!d.is_empty() && d.len() <= 256);
        }
    }
}
