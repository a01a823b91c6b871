//! The one admission rule of both daemons' plaintext enrollment ports (the center's, where nodes
//! join, and an unenrolled node's, where the center enrolls it): a few calls a minute per
//! address and a cap for everyone together, so a join code cannot be guessed at speed. One type
//! so the two ports cannot drift apart in quotas, wording or logging.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    rate_limit::{Quota, RateLimiter, Scope, Source},
    sync::LockExt,
};

/// Enrollment calls one address may make a minute: an enrollment is two calls (`begin`,
/// `finish`), so this allows a couple of honest retries and nothing like a loop.
pub const PER_ADDRESS: u32 = 5;
/// Enrollment calls all addresses together may make a minute (a flood from many addresses).
pub const GLOBAL: u32 = 60;

/// Counts enrollment calls against the quotas.
#[derive(Debug)]
pub struct EnrollGate {
    limiter: Mutex<RateLimiter>,
}

impl Default for EnrollGate {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            limiter: Mutex::new(RateLimiter::new(
                Quota::per(PER_ADDRESS, minute),
                Quota::per(GLOBAL, minute),
            )),
        }
    }
}

impl EnrollGate {
    /// Counts the call against the quotas; past them, a refusal that says how long to wait.
    /// Nothing from the request but its address is looked at or logged (once a minute).
    pub fn admit<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let ip = request
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let verdict = self.limiter.locked().check(ip, Instant::now());
        verdict.map_err(|refusal| {
            if refusal.first_in_window {
                let scope = match refusal.scope {
                    Scope::Source => "this address",
                    Scope::Everyone => "all addresses",
                };
                tracing::warn!(
                    peer = %Source::of(ip),
                    retry_after_s = refusal.retry_after_secs(),
                    "refusing enrollment attempts: too many from {scope} (logged once a minute)"
                );
            }
            tonic::Status::resource_exhausted(format!(
                "too many enrollment attempts; try again in {} s",
                refusal.retry_after_secs()
            ))
        })
    }
}
