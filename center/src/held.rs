//! Inputs held while Codex shows a blocking prompt (an approval, a question): typing them would
//! answer the prompt by accident, so they wait — listed in one editable message per topic, kept
//! in SQLite so a restart loses none — and are typed in order once Codex is ready again.
//! The queue is bounded and each input expires (both configurable). What happens is decided by
//! [`crate::router::held`]; this is its runtime (the store, the node, the outbox).

use std::{sync::Arc, time::Duration};

use proto::v1;

use crate::{
    app::App,
    nodes::CallError,
    pending::PendingInput,
    router::held::{self as decide, Admit, Release, Step, Typed},
    store::{Binding, HeldInput, Surface},
    telegram::{
        outbox::{Class, Edit, Send},
        render::escape_html,
    },
};

impl App {
    /// Holds an input the session cannot take now (the caller holds the topic's input lock).
    /// Returns the receipt's text.
    pub(crate) async fn hold(
        self: &Arc<Self>,
        binding: &Binding,
        input: &PendingInput,
        receipt: Option<i32>,
    ) -> String {
        let surface = binding.surface;
        let held = self.store.held_inputs(surface).unwrap_or_default();
        let edit_receipt = |text: &str| {
            if let Some(id) = receipt {
                crate::deliver::edit_receipt(self, surface, id, text.to_owned());
            }
        };
        if let Admit::Full { waiting } = decide::admit(&held, self.cfg.held_max) {
            let text = decide::full_text(waiting);
            edit_receipt(&text);
            return text;
        }
        let h = HeldInput {
            id: 0,
            surface,
            session_id: binding.session_id.to_string(),
            text: input.text.clone(),
            reply_to: input.reply_to,
            mode: input.mode,
            receipt,
            held_unix_ms: shared::clock::now_unix_ms(),
        };
        match self.store.hold_input(&h) {
            Ok(id) => {
                let text = "⏸ Held: Codex is waiting for an answer to its question; this is sent once it is answered.";
                edit_receipt(text);
                self.expire_later(&HeldInput { id, ..h }, self.cfg.held_ttl);
                self.show_held(surface).await;
                text.to_owned()
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot hold an input");
                let text = "✗ Not delivered: Codex is waiting for an answer to its question.";
                edit_receipt(text);
                text.to_owned()
            }
        }
    }

    /// Types a topic's held inputs in order (on its input queue), until Codex blocks again.
    /// Inputs held for another session than the topic's current one are dropped, never typed.
    pub(crate) fn release_held(self: &Arc<Self>, surface: Surface) {
        let app = self.clone();
        self.enqueue_input(
            surface,
            Box::pin(async move {
                let held = match app.store.held_inputs(surface) {
                    Ok(held) if held.is_empty() => return,
                    Ok(held) => held,
                    Err(err) => {
                        // They stay held (and expire) rather than being typed out of order.
                        tracing::error!(error = %err, "reading held inputs failed");
                        return;
                    }
                };
                // Held inputs stay held when the binding cannot be read (never "unbound", which
                // would drop them).
                let Ok(binding) = app.binding(surface) else {
                    return;
                };
                let mut release =
                    Release::new(held, binding.as_ref().map(|b| b.session_id.to_string()));
                loop {
                    match release.next() {
                        Step::Done => break,
                        Step::Drop(h, why) => app.unhold(&h, why),
                        Step::Type(h) => {
                            let Some(binding) = binding.as_ref() else {
                                release.typed(Typed::Blocked);
                                continue;
                            };
                            let result = app.type_input(binding, &h.text, h.mode).await;
                            if let Err(
                                CallError::Failed {
                                    code: v1::ErrorCode::Blocked,
                                    ..
                                }
                                | CallError::Offline,
                            ) = result
                            {
                                release.typed(Typed::Blocked);
                                continue;
                            }
                            release.typed(Typed::Settled);
                            let _ = app.store.remove_held_input(h.id);
                            if let Some(receipt) = h.receipt {
                                let (text, delivered) = crate::input::receipt_text(&result);
                                app.finish_receipt(surface, receipt, &text, delivered, false);
                            }
                        }
                    }
                }
                app.show_held(surface).await;
            }),
        );
    }

    /// Forgets a held input and says why on its receipt.
    fn unhold(&self, h: &HeldInput, why: &str) {
        if self.store.remove_held_input(h.id).unwrap_or(false)
            && let Some(id) = h.receipt
        {
            crate::deliver::edit_receipt(self, h.surface, id, why.to_owned());
        }
    }

    /// Drops every held input of a topic (the list's button).
    pub(crate) async fn drop_held(self: &Arc<Self>, surface: Surface) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let app = self.clone();
        self.enqueue_input(
            surface,
            Box::pin(async move {
                let held = app.store.held_inputs(surface).unwrap_or_default();
                for h in &held {
                    app.unhold(h, "✗ Dropped.");
                }
                app.show_held(surface).await;
                let _ = tx.send(held.len());
            }),
        );
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(n)) => format!("Dropped {n} held message(s)."),
            _ => "Dropping the held messages…".into(),
        }
    }

    /// Schedules the expiry of a held input.
    fn expire_later(self: &Arc<Self>, h: &HeldInput, ttl: Duration) {
        let app = self.clone();
        let h = h.clone();
        let wait = Duration::from_millis(decide::expires_in_ms(
            &h,
            shared::clock::now_unix_ms(),
            ttl.as_millis() as i64,
        ));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let job = app.clone();
            app.enqueue_input(
                h.surface,
                Box::pin(async move {
                    let still_held = job
                        .store
                        .held_inputs(h.surface)
                        .unwrap_or_default()
                        .iter()
                        .any(|x| x.id == h.id);
                    let now = shared::clock::now_unix_ms();
                    if !still_held {
                        return;
                    }
                    if !decide::expired(&h, now, ttl.as_millis() as i64) {
                        // The wall clock lags the timer (or was set back): wait the rest.
                        job.expire_later(&h, ttl);
                        return;
                    }
                    job.unhold(
                        &h,
                        &format!(
                            "✗ Not delivered: Codex's question stayed unanswered for {} min; dropped.",
                            ttl.as_secs() / 60
                        ),
                    );
                    job.show_held(h.surface).await;
                }),
            );
        });
    }

    /// After a restart: schedules the expiry of every held input.
    pub(crate) fn resume_held(self: &Arc<Self>) {
        for h in self.store.all_held_inputs().unwrap_or_default() {
            self.expire_later(&h, self.cfg.held_ttl);
        }
    }

    /// Shows (creates, edits or removes) the message listing a topic's held inputs.
    async fn show_held(&self, surface: Surface) {
        // Unreadable state changes nothing on screen (an empty list would delete the message).
        let (Ok(held), Ok(existing)) = (
            self.store.held_inputs(surface),
            self.store.held_preview(surface),
        ) else {
            tracing::error!("reading held inputs failed; their list is left as it is");
            return;
        };
        let Some(plain) = decide::list_text(&held) else {
            if let Some(id) = existing {
                let _ = self.store.set_held_preview(surface, None);
                drop(self.outbox.delete(surface.chat_id, id));
            }
            return;
        };
        let keyboard = Some(vec![vec![(
            "✗ Drop held messages".to_owned(),
            crate::telegram::callback::Callback::DropHeld.encode(),
        )]]);
        let html = escape_html(&plain);
        match existing {
            Some(id) => drop(self.outbox.edit(Edit {
                chat_id: surface.chat_id,
                message_id: id,
                html,
                plain,
                keyboard,
                status_of: None,
            })),
            None => {
                let sent = self
                    .outbox
                    .send(Send {
                        surface,
                        html,
                        plain,
                        keyboard,
                        reply_to: None,
                        class: Class::Message,
                    })
                    .await;
                if let Ok(Ok(id)) = sent {
                    let _ = self.store.set_held_preview(surface, Some(id));
                }
            }
        }
    }
}
