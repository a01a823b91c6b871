//! The `agent-node` binary (under construction).
fn main() {}
