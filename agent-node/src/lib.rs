//! The agent-node: live Codex sessions in tmux windows on this machine, served to a center over
//! the node protocol (`proto`).
//!
//! [`Node::start`] builds a node from a [`NodeConfig`]; [`Node::serve`] runs one link to a center
//! (an in-memory [`proto::link::pair`] when embedded in the center, a gRPC stream via
//! [`transport`] otherwise). The binary `agent-node` wires these to a command line.

mod accounts;
mod browse;
pub mod code_input;
mod codex_upgrade;
pub mod config;
pub mod control;
mod desk;
pub mod enroll;
mod error;
pub mod files;
mod health;
mod hub;
mod input;
mod jobs;
pub mod node;
pub mod preflight;
mod registry;
mod requests;
mod rollout_match;
pub mod screen;
mod serve;
mod session;
mod tmux;
pub mod transcript;
pub mod transport;
pub mod upgrade;
mod windows;
mod worktree;

pub use config::NodeConfig;
pub use node::Node;
pub use serve::ServeError;
