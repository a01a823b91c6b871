//! End-to-end tests: real binaries, real tmux, the real Codex CLI on the fake model server.
//! One test binary (modules per area), so the harness links once.

mod node;
mod support;
