//! A user's input accepted from Telegram and not yet typed into Codex. It carries the leases
//! of the updates it came from: while it lives, they stay unfinished in the durable inbox
//! ([`crate::inbox`]), so a crash before it is typed replays it at the next start.

use crate::{inbox::UpdateLease, store::InputMode};

/// The text a user sent and the message to reply to.
#[derive(Debug, Clone)]
pub(crate) struct PendingInput {
    pub(crate) text: String,
    pub(crate) reply_to: i32,
    pub(crate) mode: InputMode,
    /// The update(s) it came from stay unfinished in the inbox while this lives.
    #[expect(
        dead_code,
        reason = "held for its Drop: the last one finishes the update"
    )]
    pub(crate) leases: Vec<UpdateLease>,
}
