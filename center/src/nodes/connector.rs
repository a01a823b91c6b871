//! Dials remote nodes and keeps the links up: connect (mutual TLS over TCP, or a node's Unix
//! socket `unix:/path` for a node that is not enrolled), attach with the acked cursors so the node
//! replays what the center has not handled, and on any drop reconnect with exponential backoff and
//! jitter. Topics bound to a node hear once when it goes offline and once when it is back.
//!
//! There is no plaintext TCP: whoever reaches a node's link types into its Codex windows, and a
//! loopback port is open to every local user. Without a certificate the node is reached through
//! its Unix socket, where the node checks our uid with `SO_PEERCRED`.
//!
//! Mutual TLS is done here ([`CheckedTls`]) rather than by tonic, for one reason: tonic never
//! shows a client the server's certificate, and the center must refuse a node whose certificate
//! is revoked — after a node is re-enrolled, whoever kept its old key could otherwise still answer
//! as that node at its address. Revocation is checked on every handshake, in both directions (see
//! `listener` for nodes that dial in), and again right before a link is attached.

use std::{sync::Arc, time::Duration};

use proto::{link::Link, v1::node_link_client::NodeLinkClient};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{ClientTlsConfig, Endpoint, Uri};

use crate::{
    app::App,
    nodes::{self, Inbound},
};

/// How the center reaches a node.
#[derive(Clone, Debug)]
pub enum Security {
    /// No TLS: only to a node's Unix socket (`unix:/path`), where the node admits only its own
    /// user (and uids it lists). `App::dial` picks it for nodes without a certificate.
    LocalSocket,
    /// Mutual TLS with the fleet CA. The connector does the handshake itself (`CheckedTls`, to
    /// refuse revoked node certificates) from the center's PKI; these settings only say "TLS".
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
    /// The center's own TLS material is unusable.
    #[error("cannot set up mutual TLS: {0}")]
    Tls(String),
}

/// Is a certificate serial (lowercase hex) revoked? (`Store::serial_revoked`, failing closed.)
pub(crate) type RevokedCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Mutual TLS to one node, with the handshake done here so the node's certificate can be looked
/// at: the fleet CA is the only root, the name must be the node's (`Role::dns_name`, whatever
/// address is dialled), our certificate goes along, and a revoked serial ends the connection.
#[derive(Clone)]
pub(crate) struct CheckedTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    revoked: RevokedCheck,
}

impl CheckedTls {
    /// For dialling node `node` as the holder of `cert_pem`/`key_pem`, trusting `ca_pem`.
    pub(crate) fn new(
        (cert_pem, key_pem, ca_pem): (String, String, String),
        node: &str,
        revoked: RevokedCheck,
    ) -> Result<Self, DialError> {
        let tls = |e: &dyn std::fmt::Display| DialError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let role = shared::pki::Role::node(node).map_err(|e| tls(&e))?;
        let server_name = ServerName::try_from(role.dns_name()).map_err(|e| tls(&e))?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
            revoked,
        })
    }

    /// TCP to `endpoint`, the TLS handshake (at most [`shared::tls::HANDSHAKE_TIMEOUT`]), and the
    /// revocation check of the certificate the node presented.
    async fn connect(
        &self,
        endpoint: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use std::io::{Error, ErrorKind};
        let tcp = tokio::net::TcpStream::connect(endpoint).await?;
        tcp.set_nodelay(true)?;
        let handshake = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp);
        let stream = tokio::time::timeout(shared::tls::HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, "the TLS handshake timed out"))??;
        let serial = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| shared::pki::inspect(leaf.as_ref()).ok())
            .map(|info| info.serial_hex)
            .ok_or_else(|| Error::new(ErrorKind::PermissionDenied, "no node certificate"))?;
        if (self.revoked)(&serial) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("the node presented a revoked certificate (serial {serial})"),
            ));
        }
        Ok(stream)
    }
}

/// Capacity of a link's outgoing queue.
const LINK_CAPACITY: usize = 1024;

/// Share of a reconnect wait that is random: links that drop together (a network blip, a node
/// host rebooting several nodes) must not all be redialled at the same instant.
const RECONNECT_JITTER_PERCENT: u8 = 25;

/// The reconnect schedule: 0.5 s doubling to `max`, each wait shortened by up to 25 % at random.
fn reconnect_backoff(max: Duration) -> shared::backoff::Backoff {
    shared::backoff::Backoff::capped(max).jittered(RECONNECT_JITTER_PERCENT)
}

/// How one node is dialled: its Unix socket, or mutual TLS with the revocation check.
#[derive(Clone)]
enum Route {
    Unix,
    Tls(CheckedTls),
}

/// One connection attempt: a link to the node at `endpoint`.
async fn dial(endpoint: &str, route: &Route) -> Result<proto::link::CenterLink, DialError> {
    let uri = match route {
        Route::Unix => match nodes::unix_socket(endpoint) {
            Some(path) => format!("unix:{path}"),
            None => return Err(DialError::NotUnixSocket(endpoint.to_owned())),
        },
        Route::Tls(_) if nodes::unix_socket(endpoint).is_some() => {
            return Err(DialError::Endpoint(format!(
                "{endpoint}: mutual TLS is spoken over TCP (host:port), not a Unix socket"
            )));
        }
        // HTTP/2 inside the TLS stream `CheckedTls` hands over (ALPN h2).
        Route::Tls(_) => format!("http://{endpoint}"),
    };
    let ep = Endpoint::from_shared(uri)
        .map_err(|e| DialError::Endpoint(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let channel = match route {
        Route::Unix => ep.connect().await,
        Route::Tls(tls) => {
            let (tls, endpoint) = (tls.clone(), endpoint.to_owned());
            ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                let (tls, endpoint) = (tls.clone(), endpoint.clone());
                async move {
                    let stream = tls.connect(&endpoint).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
        }
    }
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
    // A bug that panics the loop must not leave the node unreachable until a restart.
    let stop = token.clone();
    shared::shutdown::supervise("node connector", stop, move || {
        keep_connected(
            app.clone(),
            name.clone(),
            endpoint.clone(),
            security.clone(),
            inbound.clone(),
            token.clone(),
        )
    });
}

/// Dials node `name`, and again after each loss, until `token` is cancelled or the node is
/// revoked.
async fn keep_connected(
    app: Arc<App>,
    name: String,
    endpoint: String,
    security: Security,
    inbound: mpsc::Sender<Inbound>,
    token: CancellationToken,
) {
    let route = match &security {
        Security::LocalSocket => Route::Unix,
        // The TLS settings App::dial made are replaced by the same ones plus the serial check.
        Security::Mtls(_) => {
            let store = app.store.clone();
            let revoked: RevokedCheck =
                Arc::new(move |serial: &str| store.serial_revoked(serial).unwrap_or(true));
            let tls = app
                .pki()
                .ok_or_else(|| DialError::Tls("fleet support is not running".into()))
                .and_then(|pki| CheckedTls::new(pki.identity_pems(), &name, revoked));
            match tls {
                Ok(tls) => Route::Tls(tls),
                Err(err) => {
                    tracing::error!(node = %name, error = %err, "cannot dial the node");
                    return;
                }
            }
        }
    };
    let backoff = reconnect_backoff(app.cfg.reconnect_max);
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
        match dial(&endpoint, &route).await {
            Ok(link) => {
                let cursors = app.store.cursors(&name).unwrap_or_default();
                let conn = nodes::attach(&name, link, cursors, inbound.clone()).await;
                // The node answers Hello with Welcome (online) or Refused (closed).
                let welcomed = tokio::time::timeout(Duration::from_secs(10), conn.welcomed()).await;
                if welcomed.is_ok() && conn.online() {
                    attempt = 0;
                    last_error.clear();
                    // Revoked while dialling or during the handshake: never attached.
                    if !app.attach_unless_revoked(&conn, None) {
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
            () = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_within_the_configured_cap_with_jitter() {
        let b = reconnect_backoff(Duration::from_secs(120));
        assert_eq!(b.spread(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.spread(1, 1.0), Duration::from_millis(375));
        assert_eq!(b.spread(40, 0.0), Duration::from_secs(120));
        assert_eq!(b.spread(40, 1.0), Duration::from_secs(90));
        for attempt in 1..40 {
            assert!(b.delay(attempt) <= Duration::from_secs(120));
        }
    }

    /// A TLS server on loopback presenting `cert_pem`/`key` (the handshake is all that matters).
    async fn tls_server(cert_pem: &str, key: &shared::pki::PrivateKey) -> String {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.pem().as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        drop(stream);
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn dialling_out_refuses_a_node_certificate_that_is_revoked() {
        use shared::pki::{FleetCa, Role, inspect};
        let hour = Duration::from_secs(3600);
        let ca = FleetCa::generate().unwrap();
        let (center_key, center_cert) = ca.issue(&Role::Center, hour).unwrap();
        let (node_key, node_cert) = ca.issue(&Role::node("vps1").unwrap(), hour).unwrap();
        let serial = inspect(node_cert.as_bytes()).unwrap().serial_hex;
        let addr = tls_server(&node_cert, &node_key).await;
        let pems = || {
            (
                center_cert.clone(),
                center_key.pem(),
                ca.cert_pem().to_owned(),
            )
        };

        let none_revoked: RevokedCheck = Arc::new(|_: &str| false);
        let tls = CheckedTls::new(pems(), "vps1", none_revoked.clone()).unwrap();
        tls.connect(&addr).await.expect("a valid node certificate");

        // The same certificate once its serial is revoked (the node was re-enrolled or removed).
        let revoked_serial = serial.clone();
        let revoked: RevokedCheck = Arc::new(move |s: &str| s == revoked_serial);
        let tls = CheckedTls::new(pems(), "vps1", revoked).unwrap();
        let err = tls.connect(&addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains(&serial), "{err}");

        // Another node's name, or another CA: the handshake itself fails.
        let tls = CheckedTls::new(pems(), "vps2", none_revoked.clone()).unwrap();
        assert!(tls.connect(&addr).await.is_err(), "accepted vps1 as vps2");
        let other = FleetCa::generate().unwrap();
        let (k, c) = other.issue(&Role::Center, hour).unwrap();
        let tls = CheckedTls::new(
            (c, k.pem(), other.cert_pem().to_owned()),
            "vps1",
            none_revoked,
        )
        .unwrap();
        assert!(tls.connect(&addr).await.is_err(), "trusted another CA");
    }

    #[test]
    fn only_unix_socket_endpoints_go_without_tls() {
        assert_eq!(
            nodes::unix_socket("unix:/home/a/.codex-fleet/node/node.sock"),
            Some("/home/a/.codex-fleet/node/node.sock")
        );
        assert_eq!(
            nodes::unix_socket("unix:///run/n.sock"),
            Some("/run/n.sock")
        );
        assert_eq!(nodes::unix_socket("unix:relative.sock"), None);
        assert_eq!(nodes::unix_socket("127.0.0.1:7443"), None);
        assert_eq!(nodes::unix_socket("localhost:7443"), None);
    }

    #[tokio::test]
    async fn plaintext_tcp_is_refused_before_connecting() {
        for endpoint in [
            "127.0.0.1:7443",
            "[::1]:7443",
            "localhost:1",
            "10.0.0.1:7443",
        ] {
            let Err(err) = dial(endpoint, &Route::Unix).await else {
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
