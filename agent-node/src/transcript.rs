//! Codex transcripts ("rollouts", `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`): parsing
//! lines into normalized events ([`parse`]), byte-offset tailing ([`tail`]) and finding files
//! ([`locate`]). The node's tail loop lives in `crate::session`.

pub mod locate;
pub mod parse;
pub mod tail;
