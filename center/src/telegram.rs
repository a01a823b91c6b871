//! Telegram side of the center: the Bot API client ([`api`]), paced delivery ([`outbox`]), button
//! data ([`callback`]), the
//! record of every call made ([`audit`]), long polling with a watchdog ([`poll`]) and
//! Markdown → Telegram HTML ([`render`]).

pub mod api;
pub mod audit;
pub(crate) mod callback;
pub mod outbox;
pub mod poll;
pub mod render;
