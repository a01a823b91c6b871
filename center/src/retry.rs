//! "🔁 Retry on <account>": after a usage limit made a node switch to its next saved Codex
//! account (rotation), the failed turn is one tap away from running again. A running Codex
//! keeps the account it started with, so a retry replaces the topic's window with a new one
//! resuming the same conversation (new windows get the new account) and types the failed turn's
//! message there again (as the transcript shows it, whether it came from Telegram or the desk).
//!
//! Why on the topic's input queue: the retry is an input like any other, so it is typed in
//! order with the messages sent around it, and a message sent during the switch waits for it.
//! The button names the session that hit the limit: once the topic holds another window (a
//! retry already happened, or `/kill`), the button has expired and changes nothing; and the
//! message to retry is taken at the first press, so a double tap types it once.

use std::sync::Arc;

use crate::{app::App, pending::PendingInput, store::Surface, telegram::callback::EXPIRED};

/// Why a retry cannot start, as the button's toast.
const NOTHING_KNOWN: &str = "Nothing to retry: the center does not know that turn's message (it restarted since, or the turn was retried already). Send it again.";

/// Handles a press of the retry button of `session` in `surface`; returns the toast.
pub(crate) async fn press(
    app: &Arc<App>,
    surface: Surface,
    session: &str,
    message_id: Option<i32>,
) -> String {
    let binding = match app.binding(surface) {
        Ok(Some(b)) if b.session_id == session => b,
        Ok(_) => return EXPIRED.into(),
        Err(_) => return crate::store::STATE_UNREADABLE.into(),
    };
    // Taken here, so a second press (before or after the first one's work) retries nothing.
    let Some(text) = app.typed.take_retry(&binding.node, &binding.session_id) else {
        return NOTHING_KNOWN.into();
    };
    let queued = app.clone();
    let session = session.to_owned();
    app.enqueue_input(
        surface,
        Box::pin(async move {
            let app = queued;
            // Decided again now: a /kill, /unbind or rebind queued before this job wins, and
            // the retry must not bring a window back into a topic that let it go.
            let binding = match app.binding(surface) {
                Ok(Some(b)) if b.session_id == session => b,
                Ok(_) => {
                    app.notice(
                        surface,
                        "Nothing retried: this topic holds another window now.",
                        message_id,
                    );
                    return;
                }
                Err(_) => {
                    app.notice(surface, crate::store::STATE_UNREADABLE, message_id);
                    return;
                }
            };
            match app.replace_window(&binding).await {
                Ok((moved, window, _)) => {
                    app.notice(
                        surface,
                        &format!(
                            "🔁 Retrying in a new window ({window}) on the machine's current Codex account."
                        ),
                        None,
                    );
                    let input = PendingInput {
                        text,
                        reply_to: message_id.unwrap_or_default(),
                        mode: moved.mode,
                        leases: Vec::new(),
                    };
                    app.deliver_input(&moved, &input).await;
                }
                Err(err) => {
                    // Nothing changed: the button may be pressed again.
                    app.typed
                        .offer_retry(&binding.node, &binding.session_id, &text);
                    app.notice(
                        surface,
                        &format!("✗ Could not retry: {err}"),
                        message_id,
                    );
                }
            }
        }),
    );
    "Retrying…".into()
}
