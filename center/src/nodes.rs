//! Everything about the machines of the fleet: the link to each node with its correlated
//! requests ([`conn`], re-exported here), dialling nodes ([`connector`]), accepting nodes that
//! dial in and enrolment ([`listener`]), the fleet's CA and certificates ([`pki`]), and files
//! moved over a link ([`transfer`]).

mod conn;
pub mod connector;
pub mod listener;
pub mod pki;
pub mod transfer;

pub(crate) use conn::link_revoked;
pub use conn::{CallError, Inbound, LOCAL, NodeConn, attach, start_embedded};

/// The connected nodes by name, shared by the center's parts that call nodes (the topics, the
/// job runtime).
pub(crate) type NodeMap =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<NodeConn>>>>;

/// The path of a `unix:/path` endpoint (an absolute path).
pub fn unix_socket(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("unix:")
        .map(|p| p.strip_prefix("//").unwrap_or(p))
        .filter(|p| p.starts_with('/'))
}
