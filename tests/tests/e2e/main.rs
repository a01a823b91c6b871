//! End-to-end tests: real binaries, real tmux, the real Codex CLI on the fake model server.
//! One test binary (modules per area), so the harness links once.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod accounts;
mod backfill;
mod center;
mod codex_upgrade;
mod desk_topics;
mod durable;
mod fleet;
mod heal;
mod health;
mod input_safety;
mod jobs;
mod jobs_node;
mod jobs_sources;
mod media;
mod node;
mod owned;
mod picker;
mod preflight;
mod replay;
mod rollout_switch;
mod slash;
mod status;
mod support;
mod surfaces;
mod tools;
mod tui_lists;
mod update_check;
mod upgrade;
mod verbose;
mod worktree;
