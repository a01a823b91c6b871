//! Codex accounts per machine: `/codexlogin [node] [name]` and
//! `/codexaccount [node] list|use <name>|clear`.
//!
//! Why here and not on the node: the node owns the accounts (each a `CODEX_HOME` of its own, see
//! `agent_node::accounts`) and runs the login; the center only picks the machine, relays the
//! login's lines (the verification URL and code) into the topic as they come, and words the
//! answers. The machine is the one named first, else the topic's, else the only one (or `local`).

use std::{sync::Arc, time::Duration};

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{app::App, nodes::CallError, store::Surface, telegram::command::Command};

/// A node waits at most 20 s for new login output; this leaves room for the link.
const STEP_TIMEOUT: Duration = Duration::from_secs(45);
/// Account commands answer at once.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A login is given up after this long (device codes expire after 15 minutes).
const LOGIN_LIMIT: Duration = Duration::from_secs(17 * 60);

/// `/codexlogin [node] [name]` and `/codexaccount [node] list|use <name>|clear`.
pub(crate) async fn command(
    app: &Arc<App>,
    surface: Surface,
    cmd: Command,
    args: &str,
    msg_id: i32,
) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let (node, rest) = match pick_node(app, surface, &words) {
        Ok(picked) => picked,
        Err(why) => return app.notice(surface, &why.to_string(), Some(msg_id)),
    };
    match cmd {
        Command::CodexLogin => login(app, surface, node, rest, msg_id),
        _ => account(app, surface, &node, rest, msg_id).await,
    }
}

/// Why no machine was picked (the text is the answer to the user).
#[derive(Debug, thiserror::Error)]
enum NoMachine {
    #[error("No machine is connected.")]
    NoneConnected,
    #[error(
        "Which machine? Name it first, e.g. /codexlogin {} [account]. Machines: {}.",
        .0[0],
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
}

/// Why a login could not be relayed to its end.
#[derive(Debug, thiserror::Error)]
enum LoginError {
    #[error("machine {0} is not connected")]
    NotConnected(String),
    #[error("unexpected answer {0}")]
    Unexpected(String),
    #[error("{}", call_error(.node, .err))]
    Call { node: String, err: CallError },
    #[error("the login took too long and was given up")]
    TooLong,
}

/// The machine: named by the first word, else the topic's, else the only one (or `local`).
fn pick_node<'a>(
    app: &App,
    surface: Surface,
    words: &'a [&'a str],
) -> Result<(String, &'a [&'a str]), NoMachine> {
    let names = app.node_names();
    if let Some(first) = words.first()
        && names.iter().any(|n| n == first)
    {
        return Ok(((*first).to_owned(), &words[1..]));
    }
    if let Ok(Some(binding)) = app.binding(surface) {
        return Ok((binding.node.into_string(), words));
    }
    match names.as_slice() {
        [only] => Ok((only.clone(), words)),
        _ if names.iter().any(|n| n == crate::nodes::LOCAL) => {
            Ok((crate::nodes::LOCAL.to_owned(), words))
        }
        [] => Err(NoMachine::NoneConnected),
        _ => Err(NoMachine::Ambiguous(names)),
    }
}

fn call_error(node: &str, err: &CallError) -> String {
    match err {
        CallError::Offline => format!("Machine {node} is offline."),
        CallError::Timeout => format!("Machine {node} did not answer in time."),
        CallError::Failed { message, .. } => message.clone(),
    }
}

fn who(node: &str, account: &str) -> String {
    match account {
        "" => format!("the default login on {node}"),
        a => format!("account {a} on {node}"),
    }
}

/// Starts the login on the node and relays it from a task of its own.
fn login(app: &Arc<App>, surface: Surface, node: String, rest: &[&str], msg_id: i32) {
    let account = match rest {
        [] => String::new(),
        [name] => (*name).to_owned(),
        _ => {
            return app.notice(
                surface,
                "Usage: /codexlogin [machine] [account]",
                Some(msg_id),
            );
        }
    };
    let app = app.clone();
    tokio::spawn(async move {
        let outcome = tokio::time::timeout(
            LOGIN_LIMIT,
            relay_login(&app, surface, &node, &account, msg_id),
        )
        .await
        .unwrap_or(Err(LoginError::TooLong));
        let text = match outcome {
            Ok(true) => format!("✅ Codex is logged in: {}.", who(&node, &account)),
            Ok(false) => format!(
                "❌ Codex login failed for {} (see its output above).",
                who(&node, &account)
            ),
            Err(why) => format!("❌ Codex login for {}: {why}", who(&node, &account)),
        };
        app.notice(surface, &text, Some(msg_id));
    });
}

/// Posts the login's output as it comes; `Ok(exited 0)` at its end.
async fn relay_login(
    app: &Arc<App>,
    surface: Surface,
    node: &str,
    account: &str,
    msg_id: i32,
) -> Result<bool, LoginError> {
    let conn = app
        .node(node)
        .ok_or_else(|| LoginError::NotConnected(node.to_owned()))?;
    // No "starting" notice: the login's own lines follow within a second (the first of them
    // answering the command), and a group gets only 20 messages a minute.
    let mut login_id = String::new();
    let mut reply_to = Some(msg_id);
    loop {
        let op = Op::CodexLoginStep(v1::CodexLoginStep {
            account: account.to_owned(),
            login_id: login_id.clone(),
        });
        let update = match conn.call(op, STEP_TIMEOUT).await {
            Ok(R::CodexLogin(update)) => update,
            Ok(other) => return Err(LoginError::Unexpected(format!("{other:?}"))),
            Err(err) => {
                return Err(LoginError::Call {
                    node: node.to_owned(),
                    err,
                });
            }
        };
        if !update.lines.is_empty() {
            app.notice(surface, &update.lines.join("\n"), reply_to.take());
        }
        if update.done {
            return Ok(update.ok);
        }
        login_id = update.login_id;
    }
}

/// `/codexaccount list|use <name>|clear`.
async fn account(app: &Arc<App>, surface: Surface, node: &str, rest: &[&str], msg_id: i32) {
    use v1::CodexAccountsAction as A;
    let (action, name) = match rest {
        [] | ["list"] => (A::List, ""),
        ["use", name] => (A::Use, *name),
        ["clear"] => (A::Clear, ""),
        _ => {
            return app.notice(
                surface,
                "Usage: /codexaccount [machine] list | use <account> | clear",
                Some(msg_id),
            );
        }
    };
    let Some(conn) = app.node(node) else {
        return app.notice(
            surface,
            &format!("Machine {node} is not connected."),
            Some(msg_id),
        );
    };
    let op = Op::CodexAccounts(v1::CodexAccounts {
        action: action as i32,
        name: name.to_owned(),
    });
    let text = match conn.call(op, CALL_TIMEOUT).await {
        Ok(R::CodexAccounts(list)) => describe(node, action, &list),
        Ok(other) => format!("Unexpected answer from {node}: {other:?}"),
        Err(err) => call_error(node, &err),
    };
    app.notice(surface, &text, Some(msg_id));
}

/// The answer to an account command, plain text.
fn describe(node: &str, action: v1::CodexAccountsAction, list: &v1::CodexAccountList) -> String {
    use v1::CodexAccountsAction as A;
    let selected = match list.selected.as_str() {
        "" => "the default login".to_owned(),
        name => format!("account {name}"),
    };
    let mut text = match action {
        A::Use | A::Clear => format!(
            "New Codex windows and jobs on {node} use {selected}. Windows already running keep \
             the account they started with."
        ),
        _ => format!("Codex accounts on {node} (new windows and jobs use {selected}):"),
    };
    if action == A::List {
        if list.names.is_empty() {
            text += "\nNo saved accounts yet: /codexlogin <account> adds one.";
        }
        for (i, name) in list.names.iter().enumerate() {
            let mark = if *name == list.selected { "▶" } else { "•" };
            let login = if list.logged_in.get(i).copied().unwrap_or(false) {
                ""
            } else {
                " (not logged in)"
            };
            text += &format!("\n{mark} {name}{login}");
        }
        if list.rotate {
            text += "\nOn a usage limit the machine switches to the next logged-in account.";
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_the_machine_and_the_account_new_windows_use() {
        let list = v1::CodexAccountList {
            names: vec!["home".into(), "work".into()],
            logged_in: vec![true, false],
            selected: "home".into(),
            rotate: false,
        };
        let text = describe("local", v1::CodexAccountsAction::List, &list);
        assert_eq!(
            text,
            "Codex accounts on local (new windows and jobs use account home):\n▶ home\n• work (not logged in)"
        );
        let text = describe(
            "vps",
            v1::CodexAccountsAction::Clear,
            &v1::CodexAccountList::default(),
        );
        assert!(text.starts_with("New Codex windows and jobs on vps use the default login."));
        assert!(text.contains("Windows already running keep"));
    }
}
