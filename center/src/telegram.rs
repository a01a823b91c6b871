//! Telegram side of the center: the Bot API client ([`api`]), paced delivery ([`outbox`]),
//! long polling with a watchdog ([`poll`]) and Markdown → Telegram HTML ([`render`]).

pub mod api;
pub mod outbox;
pub mod poll;
pub mod render;
