//! The center's sans-IO core: pure state machines that decide what happens, tested without
//! tokio, Telegram or SQLite. The runtime around them (delivery tasks, the outbox, the store)
//! executes what they return and feeds results back.
//!
//! * [`turn`]: one session's turn as its events arrive — what each event posts to Telegram,
//!   once per session whatever the number of topics showing it, and the fallback final answer
//!   that a replay starting mid-turn must not send twice.
//! * [`jobs`]: the fleet's job queue — approval, limits per node and fleet, chats taking turns,
//!   cancel, expiry.
//! * [`status`]: a topic's status message — the receipt that becomes it, the tool lines that
//!   edit it and the turn's end that closes it — decided from the stored message and one event.
//! * [`prompt`]: a session's question on show — posted once, closed as answered or superseded.
//! * [`held`]: a topic's held inputs — which may wait, in which order they go to Codex once its
//!   question is answered and where that stops, which are dropped or expire, and their list.

pub(crate) mod held;
pub(crate) mod jobs;
pub(crate) mod prompt;
pub(crate) mod status;
pub(crate) mod turn;
