//! Codex transcripts ("rollouts", `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`): parsing
//! lines into normalized events ([`parse`]), byte-offset tailing ([`tail`]), finding files
//! ([`locate`]), the model and token use `/status` shows ([`status`]) and the sequence numbers that span a window's successive files ([`chain`]). The node's tail loop lives in `crate::session`.

pub mod chain;
pub mod locate;
pub mod parse;
pub mod status;
pub mod tail;
