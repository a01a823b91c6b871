//! Logging setup: `tracing` to stderr, filtered like `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax, e.g. `info,agent_node=debug`.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
