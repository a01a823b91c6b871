//! `/toolbar`: a small keyboard in a bound topic for the keys a phone user reaches for while
//! Codex works — Esc, Interrupt, Screenshot, Status, and the steer/queue switch. Typing `/esc`
//! on a phone is slow when Codex is heading the wrong way; a button one tap away is not.
//!
//! A toolbar belongs to its topic, not to a window: its buttons name only the key, and act on
//! whatever window the topic is bound to when pressed (self-heal replaces windows under the
//! same topic, and a toolbar must survive that). In a topic unbound since, a press says so and
//! does nothing.
//!
//! `/toolbar` again posts a fresh one at the bottom and deletes the previous one. Which message
//! that was is kept in memory only: after a restart the old toolbar stays, and still works.

use proto::v1;

use crate::{
    app::App,
    store::STATE_UNREADABLE,
    store::{Binding, InputMode, Surface},
    telegram::{
        api::Keyboard,
        callback::{Callback, ToolbarKey},
        outbox::{Class, Edit, Send},
        render::escape_html,
    },
};

const NOT_BOUND: &str = "This topic is not bound to a Codex session, so a toolbar has nothing to act on. Bind it first: send a message or /bind.";

/// `/toolbar`.
pub(crate) async fn command(app: &App, surface: Surface, binding: Option<Binding>, msg_id: i32) {
    let Some(b) = binding else {
        app.notice(surface, NOT_BOUND, Some(msg_id));
        return;
    };
    let (html, plain) = text(&b);
    let sent = app
        .outbox
        .send(Send {
            surface,
            html,
            plain,
            keyboard: Some(keyboard(b.mode)),
            reply_to: None,
            class: Class::Message,
        })
        .await;
    let Ok(Ok(id)) = sent else {
        // The outbox has logged why; the old toolbar (if any) stays usable.
        return;
    };
    if let Some(old) = app.topics.with(surface, |topic| topic.toolbar.replace(id)) {
        drop(app.outbox.delete(surface.chat_id, old));
    }
}

/// A toolbar button; returns the short answer shown to the user who pressed it.
pub(crate) async fn press(
    app: &App,
    surface: Surface,
    key: ToolbarKey,
    message_id: Option<i32>,
) -> String {
    let b = match app.binding(surface) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return "This topic is no longer bound to a Codex session; the toolbar does nothing here. Send a message or /bind to start one.".into();
        }
        Err(_) => return STATE_UNREADABLE.into(),
    };
    // Buttons always arrive with their message; 0 only if Telegram ever left it out, and
    // replies then go without a quote (the outbox allows sending without the reply).
    let message_id = message_id.unwrap_or(0);
    match key {
        ToolbarKey::Esc => app.press_named_key(&b, v1::NamedKey::Escape).await,
        ToolbarKey::Interrupt => app.press_named_key(&b, v1::NamedKey::CtrlC).await,
        ToolbarKey::Screenshot => {
            app.screenshot(&b, message_id).await;
            "📸 Screenshot sent.".into()
        }
        ToolbarKey::Status => {
            app.status(surface, Some(b), message_id).await;
            "ℹ️ Status sent.".into()
        }
        ToolbarKey::Mode => switch_mode(app, &b, message_id),
    }
}

/// Flips the topic's input mode (as `/switch` does) and relabels the pressed toolbar's switch.
/// Starts from the stored mode, not the label: `/switch` may have changed it since.
fn switch_mode(app: &App, b: &Binding, message_id: i32) -> String {
    let mode = match b.mode {
        InputMode::Steer => InputMode::Queue,
        InputMode::Queue => InputMode::Steer,
    };
    if let Err(err) = app.store.set_mode(b.surface, mode) {
        tracing::error!(error = %err, "saving the input mode failed");
        return "The mode was not changed: the center cannot save it right now; try again.".into();
    }
    let (html, plain) = text(b);
    drop(app.outbox.edit(Edit {
        chat_id: b.surface.chat_id,
        message_id,
        html,
        plain,
        keyboard: Some(keyboard(mode)),
        status_of: None,
    }));
    match mode {
        InputMode::Queue => "📥 Queue mode: messages wait for the current turn (Tab).".into(),
        InputMode::Steer => "⚡ Steer mode: messages are sent at once (Enter).".into(),
    }
}

/// The toolbar's text (HTML, plain): which folder it acts on.
fn text(b: &Binding) -> (String, String) {
    let folder = b.cwd.rsplit('/').find(|s| !s.is_empty()).unwrap_or(&b.cwd);
    (
        format!("🧰 <b>Toolbar</b> · {}", escape_html(folder)),
        format!("🧰 Toolbar · {folder}"),
    )
}

/// The toolbar's buttons; the last one shows the current input mode.
fn keyboard(mode: InputMode) -> Keyboard {
    let button = |label: &str, key| (label.to_owned(), Callback::Toolbar(key).encode());
    let mode_label = match mode {
        InputMode::Steer => "⚡ Mode: steer (tap for queue)",
        InputMode::Queue => "📥 Mode: queue (tap for steer)",
    };
    vec![
        vec![
            button("⎋ Esc", ToolbarKey::Esc),
            button("⏹ Interrupt", ToolbarKey::Interrupt),
        ],
        vec![
            button("📸 Screenshot", ToolbarKey::Screenshot),
            button("ℹ️ Status", ToolbarKey::Status),
        ],
        vec![button(mode_label, ToolbarKey::Mode)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(cwd: &str) -> Binding {
        Binding {
            surface: Surface {
                chat_id: -100,
                thread_id: 7,
            },
            node: "local".into(),
            session_id: "s1".into(),
            cwd: cwd.into(),
            mode: InputMode::Steer,
        }
    }

    #[test]
    fn every_button_decodes_to_its_key_and_the_switch_shows_the_mode() {
        for mode in [InputMode::Steer, InputMode::Queue] {
            let kb = keyboard(mode);
            let keys: Vec<ToolbarKey> = kb
                .iter()
                .flatten()
                .map(|(_, data)| match Callback::decode(data) {
                    Some(Callback::Toolbar(k)) => k,
                    other => panic!("{data:?} decodes to {other:?}"),
                })
                .collect();
            assert_eq!(
                keys,
                [
                    ToolbarKey::Esc,
                    ToolbarKey::Interrupt,
                    ToolbarKey::Screenshot,
                    ToolbarKey::Status,
                    ToolbarKey::Mode
                ]
            );
            let shown = if mode == InputMode::Steer {
                "Mode: steer"
            } else {
                "Mode: queue"
            };
            assert!(kb[2][0].0.contains(shown), "{}", kb[2][0].0);
        }
    }

    #[test]
    fn the_text_names_the_folder_escaped() {
        let (html, plain) = text(&binding("/home/me/a<b>/"));
        assert_eq!(html, "🧰 <b>Toolbar</b> · a&lt;b&gt;");
        assert_eq!(plain, "🧰 Toolbar · a<b>");
        assert_eq!(text(&binding("/")).1, "🧰 Toolbar · /");
    }
}
