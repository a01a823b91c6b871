//! Voice messages: transcribed by the configured provider (an OpenAI-compatible endpoint or a
//! local command), shown in the topic, then sent to Codex as text.

use std::sync::Arc;

use crate::{
    app::App, inbox::UpdateLease, pending::PendingInput, store::Surface,
    telegram::inbound::VoiceNote,
};

impl App {
    /// Transcribes a voice message and sends the text to the topic's session, on the topic's
    /// input queue (its place among the topic's messages is kept while it is transcribed).
    /// The update stays unfinished in the inbox until the text was typed (or the user told why
    /// not).
    pub(crate) fn take_voice(
        self: &Arc<Self>,
        surface: Surface,
        voice: VoiceNote,
        lease: UpdateLease,
    ) {
        let app = self.clone();
        self.enqueue_input(
            surface,
            Box::pin(async move {
                app.transcribe_and_type(surface, &voice).await;
                drop(lease);
            }),
        );
    }

    async fn transcribe_and_type(self: &Arc<Self>, surface: Surface, voice: &VoiceNote) {
        let message_id = voice.message_id;
        let binding = match self.binding(surface) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(_) => {
                self.notice(surface, crate::store::STATE_UNREADABLE, Some(message_id));
                return;
            }
        };
        let Some(transcriber) = self.transcriber.as_ref() else {
            self.notice(
                surface,
                "🎙 Voice messages need a transcription provider: set [voice] in the center's configuration (see the README).",
                Some(message_id),
            );
            return;
        };
        let bytes = match self
            .download(&voice.file_id, "the voice message", voice.size)
            .await
        {
            Ok(b) => b,
            Err(why) => {
                self.notice(surface, &format!("⚠️ {why}"), Some(message_id));
                return;
            }
        };
        let dir = self.cfg.state_dir.join("scratch");
        let path = dir.join(format!(
            "voice-{}-{message_id}.ogg",
            surface.chat_id.unsigned_abs()
        ));
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &bytes));
        if let Err(e) = written {
            self.notice(
                surface,
                &format!("⚠️ Cannot keep the voice message for transcription: {e}"),
                Some(message_id),
            );
            return;
        }
        let result = transcriber.transcribe(&path).await;
        let _ = std::fs::remove_file(&path);
        let text = match result {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            Ok(_) => {
                self.notice(
                    surface,
                    "🎙 The transcription was empty; nothing was sent to Codex.",
                    Some(message_id),
                );
                return;
            }
            Err(e) => {
                self.notice(surface, &format!("⚠️ {e}"), Some(message_id));
                return;
            }
        };
        let shown = crate::telegram::render::plain_parts(
            &format!("🎙 “{text}”"),
            crate::telegram::render::MESSAGE_LIMIT,
        )
        .into_iter()
        .next()
        .unwrap_or_default();
        self.notice(surface, &shown, Some(message_id));
        let input = PendingInput {
            text,
            reply_to: message_id,
            mode: binding.mode,
            leases: Vec::new(),
        };
        self.deliver_input(&binding, &input).await;
    }
}
