//! Test harness for Codex Fleet: servers the tests own and helpers that drive real tmux and Codex.
