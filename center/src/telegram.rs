//! Telegram side of the center: the Bot API client ([`api`]), paced delivery ([`outbox`]), updates
//! read into the center's own inputs ([`inbound`]), the bot's commands ([`command`]), button
//! data ([`callback`]), the
//! record of every call made ([`audit`]), long polling with a watchdog ([`poll`]) and
//! Markdown → Telegram HTML ([`render`]).

pub mod api;
pub mod audit;
pub(crate) mod callback;
pub mod command;
pub(crate) mod inbound;
pub mod outbox;
pub mod poll;
pub mod render;
