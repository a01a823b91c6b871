//! Telegram side of the center: the Bot API client ([`api`]), paced delivery ([`outbox`]), the
//! record of every call made ([`audit`]), long polling with a watchdog ([`poll`]) and
//! Markdown → Telegram HTML ([`render`]).

pub mod api;
pub mod audit;
pub mod outbox;
pub mod poll;
pub mod render;
