//! Vocabulary shared by the center, the agent-node and the tests: process lifecycle
//! ([`shutdown`]), logging ([`telemetry`]) and config-file loading ([`config`]).
#![warn(missing_docs)]

pub mod backoff;
pub mod child_env;
pub mod clock;
pub mod config;
pub mod digest;
pub mod enroll_gate;
pub mod hardening;
pub mod ids;
pub mod line_socket;
pub mod pki;
pub mod preflight;
pub mod prompt;
pub mod random;
pub mod rate_limit;
pub mod release;
pub mod secret;
pub mod shutdown;
pub mod sync;
pub mod systemd;
pub mod telemetry;
pub mod tls;
