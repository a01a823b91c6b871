//! Wire protocol between `center` and `agent-node`.
//!
//! * [`v1`]: generated messages and the `NodeLink` service (see `build.rs`).
//! * [`link`]: the transport-neutral link both sides run on; the embedded node gets an in-memory
//!   pair, a remote node the same type built from a tonic stream.
#![warn(missing_docs)]

/// Generated from `codexfleet/v1/link.proto`.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("codexfleet.v1");
}
pub mod link;

/// Bump on every incompatible change; negotiated in `Hello`/`Welcome`. Version 2 adds jobs
/// (`StartJob`, `JobEvent`, ...); the center asks a version-1 node for none of them.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
