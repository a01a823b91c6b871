//! Test harness for Codex Fleet: servers the tests own and helpers that drive real tmux and Codex.

pub mod center_proc;
pub mod codex;
pub mod fake_github;
pub mod fake_model;
pub mod fake_stt;
pub mod fake_telegram;
pub mod node_client;
pub mod node_proc;
pub mod tcp_proxy;
