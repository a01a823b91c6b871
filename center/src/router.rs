//! The center's sans-IO core: pure state machines that decide what happens, tested without
//! tokio, Telegram or SQLite. The runtime around them (delivery tasks, the outbox, the store)
//! executes what they return and feeds results back.
//!
//! * [`turn`]: one session's turn as its events arrive — what each event posts to Telegram,
//!   once per session whatever the number of topics showing it, and the fallback final answer
//!   that a replay starting mid-turn must not send twice.

pub(crate) mod turn;
