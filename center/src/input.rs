//! A user's text on its way to Codex: queued per topic so messages arrive in the order sent,
//! typed into Codex at once, and its receipt posted (and later edited) when the outbox can —
//! typing never waits for Telegram.

use std::{sync::Arc, time::Duration};

use proto::v1::{self, reply::Result as R, request::Op};
use tokio::sync::mpsc;

use crate::{
    app::App,
    nodes::CallError,
    pending::PendingInput,
    router::{held::Admit, status},
    store::{Binding, InputMode, Surface},
    telegram::{
        outbox::{Class, LiveText, Send},
        render,
    },
    topic_state::InputJob,
    topics::FAILED_HERE,
};

/// How long a typed message may take to be confirmed by the node (it waits for Codex too).
const INPUT_TIMEOUT: Duration = Duration::from_secs(90);

/// A receipt before the outcome is known.
const SENDING: &str = "⏳ Sending to Codex…";

impl App {
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

    /// Queues `job` on the topic's input queue; it runs after everything queued before it.
    pub(crate) fn enqueue_input(&self, surface: Surface, job: InputJob) {
        self.topics.with(surface, |topic| {
            let tx = topic.inputs.get_or_insert_with(|| {
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
        });
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
        self.topics
            .with(surface, |topic| topic.pending_receipt = Some(live.clone()));
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
        let Some(live) = self
            .topics
            .with(surface, |topic| topic.pending_receipt.clone())
        else {
            return false;
        };
        live.update_unsent(|text| *text = status::receipt_with_line(text, line, keep))
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
        let shown = live.update_unsent(|t| *t = status::receipt_with_outcome(t, &text));
        let app = self.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let accepted = receipt.await;
            app.topics.with(surface, |topic| {
                if topic.pending_receipt.as_ref().is_some_and(|l| l.is(&live)) {
                    topic.pending_receipt = None;
                }
            });
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
        let mut decided = false;
        let updated = self.store.update_status(surface, |current| {
            decided = true;
            let event = status::Event::Receipt {
                receipt,
                text,
                delivered,
                shown,
            };
            let step = status::step(current, event);
            crate::deliver::queue_edit(self, surface, step.edit);
            step.change
        });
        if let Err(err) = updated {
            tracing::error!(error = %err, "updating a status message failed");
            // The store could not be read: the receipt still tells the outcome.
            if !decided && !shown {
                crate::deliver::edit_receipt(self, surface, receipt, text.to_owned());
            }
        }
    }
}

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
