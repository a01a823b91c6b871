//! The bot's rights in the chats it serves, checked when the center starts; the same
//! decision `center preflight` prints ([`chat_check`]).
//!
//! Why at start: an admin who takes the Manage topics right away (or demotes the bot) breaks
//! every new session in that group, and Telegram tells the bot nothing. So at each start the
//! center asks getChatMember in every group it serves and, if it lacks a right it needs, tells
//! the allowed users in private — once per start, with the fix. Answers that say nothing about
//! rights (network trouble, a Telegram 5xx, flood control) are logged, not reported.

use std::collections::BTreeSet;

use shared::preflight::{Check, Outcome};

use crate::{
    app::App,
    telegram::api::{BotRights, TgError},
};

/// Checks the bot's rights in each served group and tells the owners what is missing.
pub(crate) async fn check_at_start(app: &App) {
    let tg = app.outbox.tg();
    let me = match tg.me().await {
        Ok(me) => me,
        Err(err) => {
            tracing::warn!(error = %err, "getMe failed; the bot's rights are not checked");
            return;
        }
    };
    let mut chats: BTreeSet<i64> = app.cfg.allowed_chats.iter().copied().collect();
    match app.store.owned_chats() {
        Ok(owned) => chats.extend(owned),
        Err(err) => tracing::error!(error = %err, "reading the owned chats failed"),
    }
    let mut problems = Vec::new();
    // Private chats (positive ids) have no admins and no rights to check.
    for chat in chats.into_iter().filter(|&c| c < 0) {
        let rights = tg.bot_rights(chat, me.id).await;
        if let Err(TgError::Network(_) | TgError::Server(_) | TgError::RetryAfter(_)) = &rights {
            tracing::warn!(
                chat.id = chat,
                "the bot's rights could not be read; not checked"
            );
            continue;
        }
        if let Some(line) = problem(&chat_check(chat, &rights, me.can_read_all_group_messages)) {
            problems.push(line);
        }
    }
    let Some(text) = message(&problems) else {
        return;
    };
    tracing::warn!(chats = problems.len(), "the bot lacks rights it needs");
    app.tell_owners(&text);
}

/// A failed check as one line of the owners' message.
fn problem(check: &Check) -> Option<String> {
    match &check.outcome {
        Outcome::Fail { why, fix } => Some(format!("• {}: {why}. Fix: {fix}.", check.name)),
        Outcome::Ok(_) | Outcome::Warn { .. } => None,
    }
}

/// The owners' message about `problems`, if any.
fn message(problems: &[String]) -> Option<String> {
    (!problems.is_empty()).then(|| {
        format!(
            "⚠️ The bot lacks rights it needs, so new sessions there will fail:\n{}\n\
             `center preflight` shows every check.",
            problems.join("\n")
        )
    })
}

/// getChatMember of the bot in `chat` → what the center can and cannot do there.
pub fn chat_check(chat: i64, rights: &Result<BotRights, TgError>, reads_all: bool) -> Check {
    let name = format!("chat {chat}");
    let add = "add the bot to the group as an admin with the Manage topics right";
    let r = match rights {
        Ok(r) => r,
        Err(err) => {
            let text = err.to_string().to_lowercase();
            return if text.contains("chat not found") || text.contains("kicked") {
                Check::fail(
                    name,
                    "the bot is not in this chat (removed, or a wrong chat id)",
                    format!("{add}, or take the chat out of allowed_chats"),
                )
            } else {
                Check::fail(
                    name,
                    format!("getChatMember failed: {err}"),
                    "run preflight again; check the chat id",
                )
            };
        }
    };
    if matches!(r.status, "left" | "kicked") {
        return Check::fail(
            name,
            format!("the bot is not in this chat ({})", r.status),
            add,
        );
    }
    if !r.can_send {
        return Check::fail(
            name,
            "the bot may not post here (restricted)",
            "lift the restriction, or make the bot an admin",
        );
    }
    if !r.admin {
        let reading = if reads_all {
            ""
        } else {
            ", and with privacy mode on it sees only commands and replies to it"
        };
        return Check::fail(
            name,
            format!("the bot is not an admin: it cannot create topics{reading}"),
            "make the bot an admin with the Manage topics right",
        );
    }
    if !r.can_manage_topics {
        return Check::fail(
            name,
            "the bot cannot create or close topics",
            "give the bot the Manage topics admin right",
        );
    }
    let others = if r.can_delete_others {
        ""
    } else {
        " (not other users' messages)"
    };
    Check::ok(
        name,
        format!(
            "{}: posts, edits and deletes its messages{others}, manages topics, reads every message",
            r.status
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(can_manage_topics: bool) -> BotRights {
        BotRights {
            status: "administrator",
            admin: true,
            can_send: true,
            can_delete_others: true,
            can_manage_topics,
        }
    }

    #[test]
    fn only_missing_rights_reach_the_owners() {
        assert_eq!(problem(&chat_check(-100, &Ok(admin(true)), false)), None);
        let line = problem(&chat_check(-100, &Ok(admin(false)), false)).unwrap();
        assert_eq!(
            line,
            "• chat -100: the bot cannot create or close topics. Fix: give the bot the Manage topics admin right."
        );
        assert_eq!(message(&[]), None);
        let text = message(&[line]).unwrap();
        assert!(
            text.starts_with("⚠️ The bot lacks rights it needs"),
            "{text}"
        );
        assert!(text.contains("\n• chat -100: "), "{text}");
    }
}
