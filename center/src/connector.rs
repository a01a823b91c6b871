//! Dials remote nodes and keeps the links up: connect (mutual TLS over TCP, or a node's Unix
//! socket `unix:/path` for a node that is not enrolled), attach with the acked cursors so the node
//! replays what the center has not handled, and on any drop reconnect with exponential backoff and
//! jitter. Topics bound to a node hear once when it goes offline and once when it is back.
//!
//! There is no plaintext TCP: whoever reaches a node's link types into its Codex windows, and a
//! loopback port is open to every local user. Without a certificate the node is reached through
//! its Unix socket, where the node checks our uid with `SO_PEERCRED`.

use std::{sync::Arc, time::Duration};

use proto::{link::Link, v1::node_link_client::NodeLinkClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::{
    app::App,
    nodes::{self, Inbound},
};

/// How the center reaches a node.
#[derive(Clone, Debug)]
pub enum Security {
    /// No TLS: only to a node's Unix socket (`unix:/path`), where the node admits only its own
    /// user (and uids it lists). The name is kept for `App::dial`, which picks it for nodes
    /// without a certificate.
    Plaintext,
    /// Mutual TLS with the fleet CA.
    Mtls(ClientTlsConfig),
}

/// Why one dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The endpoint is not usable.
    #[error("bad endpoint {0}")]
    Endpoint(String),
    /// No certificate, and the endpoint is not a Unix socket.
    #[error(
        "refusing to dial {0} without mutual TLS: enroll the node (`agent-node init`, then /node add), or give its Unix socket as unix:/path"
    )]
    NotUnixSocket(String),
    /// Connecting or the handshake failed.
    #[error("cannot connect: {0}")]
    Connect(String),
}

/// Capacity of a link's outgoing queue.
const LINK_CAPACITY: usize = 1024;

/// Delay before reconnect attempt `n`: 0.5 s doubling to `max`, plus up to 25 % jitter.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(6))
        .min(max);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = (h.finish() % 1000) as f64 / 1000.0 * 0.25;
    base.mul_f64(1.0 + jitter)
}

/// The path of a `unix:/path` endpoint (an absolute path).
pub fn unix_socket(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("unix:")
        .map(|p| p.strip_prefix("//").unwrap_or(p))
        .filter(|p| p.starts_with('/'))
}

/// One connection attempt: a link to the node at `endpoint`.
pub async fn dial(
    endpoint: &str,
    security: &Security,
) -> Result<proto::link::CenterLink, DialError> {
    let (uri, tls) = match security {
        Security::Plaintext => match unix_socket(endpoint) {
            Some(path) => (format!("unix:{path}"), None),
            None => return Err(DialError::NotUnixSocket(endpoint.to_owned())),
        },
        Security::Mtls(_) if unix_socket(endpoint).is_some() => {
            return Err(DialError::Endpoint(format!(
                "{endpoint}: mutual TLS is spoken over TCP (host:port), not a Unix socket"
            )));
        }
        Security::Mtls(cfg) => (format!("https://{endpoint}"), Some(cfg.clone())),
    };
    let mut ep = Endpoint::from_shared(uri)
        .map_err(|e| DialError::Endpoint(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        ep = ep
            .tls_config(tls)
            .map_err(|e| DialError::Endpoint(e.to_string()))?;
    }
    let channel = ep
        .connect()
        .await
        .map_err(|e| DialError::Connect(error_chain(&e)))?;
    let (tx, rx) = mpsc::channel(LINK_CAPACITY);
    let inbound = NodeLinkClient::new(channel)
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(|e| DialError::Connect(format!("{}: {}", e.code(), e.message())))?
        .into_inner();
    Ok(Link::from_streaming(tx, inbound))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s = format!("{s}: {c}");
        cur = c.source();
    }
    s
}

/// Keeps node `name` connected until `token` is cancelled or the node is revoked.
pub fn spawn(
    app: Arc<App>,
    name: String,
    endpoint: String,
    security: Security,
    inbound: mpsc::Sender<Inbound>,
    token: CancellationToken,
) {
    tokio::spawn(async move {
        let mut attempt = 0u32;
        let mut was_online = false;
        let mut last_error = String::new();
        loop {
            if app
                .store
                .node(&name)
                .ok()
                .flatten()
                .is_some_and(|n| n.revoked)
            {
                tracing::info!(node = %name, "node revoked; not dialling it any more");
                return;
            }
            match dial(&endpoint, &security).await {
                Ok(link) => {
                    let cursors = app.store.cursors(&name).unwrap_or_default();
                    let conn = nodes::attach(&name, link, cursors, inbound.clone()).await;
                    // The node answers Hello with Welcome (online) or Refused (closed).
                    let welcomed =
                        tokio::time::timeout(Duration::from_secs(10), conn.welcomed()).await;
                    if welcomed.is_ok() && conn.online() {
                        attempt = 0;
                        last_error.clear();
                        // Revoked while dialling or during the handshake: never attached.
                        if !nodes::attach_unless_revoked(&app, &conn, None) {
                            return;
                        }
                        app.node_changed(&name, true, was_online).await;
                        if matches!(security, Security::Mtls(_)) {
                            app.keep_certificate_fresh(name.clone(), conn.clone());
                        }
                        was_online = true;
                        tokio::select! {
                            () = token.cancelled() => { conn.close(); return; }
                            () = conn.closed() => {}
                        }
                        app.remove_node(&name, &conn);
                        if app
                            .store
                            .node(&name)
                            .ok()
                            .flatten()
                            .is_some_and(|n| n.revoked)
                        {
                            tracing::info!(node = %name, "revoked node disconnected");
                            return;
                        }
                        tracing::warn!(node = %name, "node link lost; reconnecting");
                        app.node_changed(&name, false, true).await;
                    } else {
                        conn.close();
                        let err = "the node did not complete the handshake".to_owned();
                        if err != last_error {
                            tracing::warn!(node = %name, error = %err, "node unreachable");
                            last_error = err;
                        }
                    }
                }
                Err(err) => {
                    let err = err.to_string();
                    if err != last_error {
                        tracing::warn!(node = %name, error = %err, "node unreachable");
                        last_error = err;
                    }
                }
            }
            attempt += 1;
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(backoff(attempt, app.cfg.reconnect_max)) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let max = Duration::from_secs(30);
        assert!(
            backoff(0, max) >= Duration::from_millis(500)
                && backoff(0, max) <= Duration::from_millis(625)
        );
        assert!(backoff(3, max) >= Duration::from_secs(4));
        assert!(backoff(40, max) <= Duration::from_millis(37_500));
    }

    #[test]
    fn only_unix_socket_endpoints_go_without_tls() {
        assert_eq!(
            unix_socket("unix:/home/a/.codex-fleet/node/node.sock"),
            Some("/home/a/.codex-fleet/node/node.sock")
        );
        assert_eq!(unix_socket("unix:///run/n.sock"), Some("/run/n.sock"));
        assert_eq!(unix_socket("unix:relative.sock"), None);
        assert_eq!(unix_socket("127.0.0.1:7443"), None);
        assert_eq!(unix_socket("localhost:7443"), None);
    }

    #[tokio::test]
    async fn plaintext_tcp_is_refused_before_connecting() {
        for endpoint in [
            "127.0.0.1:7443",
            "[::1]:7443",
            "localhost:1",
            "10.0.0.1:7443",
        ] {
            let Err(err) = dial(endpoint, &Security::Plaintext).await else {
                panic!("{endpoint}: dialled without TLS");
            };
            assert!(
                matches!(err, DialError::NotUnixSocket(_)),
                "{endpoint}: {err}"
            );
            assert!(err.to_string().contains("unix:/path"), "{err}");
        }
    }
}
