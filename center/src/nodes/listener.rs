//! Nodes that dial the center (behind NAT): a mutual-TLS `CenterLink` service whose calls become
//! the same links the connector makes, and a plaintext `CenterEnrollment` service for
//! `agent-node join` (its messages are authenticated by the join code; see `crate::nodes::pki`).
//!
//! The enrollment port answers anyone who can reach it, so every call is first counted against
//! a per-address and a global quota ([`shared::rate_limit`]); past them the caller gets
//! `RESOURCE_EXHAUSTED` with the wait, and the log gets one line per address per window.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use proto::{
    link::Link,
    v1::{self, center_enrollment_server, center_link_server},
};
use shared::{enroll_gate::EnrollGate, pki::Role};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::{app::App, nodes};

struct LinkService {
    app: Arc<App>,
    inbound: mpsc::Sender<nodes::Inbound>,
}

#[tonic::async_trait]
impl center_link_server::CenterLink for LinkService {
    type DialStream = futures::stream::BoxStream<'static, Result<v1::CenterMsg, Status>>;

    async fn dial(
        &self,
        request: Request<Streaming<v1::NodeMsg>>,
    ) -> Result<Response<Self::DialStream>, Status> {
        // Identity and revocation are decided here, before anything is served.
        let name = match shared::tls::peer_role(&request) {
            Ok(Role::Node(name)) => name,
            Ok(other) => {
                tracing::warn!(peer = %other, "refused a dial-in: not a node certificate");
                return Err(Status::permission_denied("only fleet nodes may dial in"));
            }
            Err(err) => {
                tracing::warn!(error = %err, "refused a dial-in without a usable certificate");
                return Err(Status::unauthenticated("a fleet certificate is required"));
            }
        };
        // A revoked certificate stays refused, whatever the name's state (checked again right
        // before the link is attached).
        let serial = shared::tls::peer_serial(&request).unwrap_or_default();
        if self.app.store.serial_revoked(&serial).unwrap_or(true) {
            tracing::warn!(node = %name, serial = %serial, "refused a dial-in: its certificate is revoked");
            return Err(Status::permission_denied("this certificate is revoked"));
        }
        match self.app.store.node(&name) {
            Ok(Some(n)) if !n.revoked => {}
            Ok(Some(_)) => {
                tracing::warn!(node = %name, "refused a dial-in: the node is revoked");
                return Err(Status::permission_denied("this node is revoked"));
            }
            _ => {
                tracing::warn!(node = %name, "refused a dial-in: unknown node");
                return Err(Status::permission_denied("unknown node"));
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        let link = Link::from_streaming(tx, request.into_inner());
        let cursors = self.app.store.cursors(&name).unwrap_or_default();
        let conn = nodes::attach(&name, link, cursors, self.inbound.clone()).await;
        let app = self.app.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(std::time::Duration::from_secs(10), conn.welcomed())
                .await
                .is_err()
                || !conn.online()
            {
                conn.close();
                return;
            }
            let seen = app.seen_before(&name);
            // `/node remove` during the handshake must not be undone by its end.
            if !app.attach_unless_revoked(&conn, Some(&serial)) {
                return;
            }
            app.node_changed(&name, true, seen).await;
            app.keep_certificate_fresh(name.clone(), conn.clone());
            conn.closed().await;
            app.remove_node(&name, &conn);
            if !app
                .store
                .node(&name)
                .ok()
                .flatten()
                .is_some_and(|n| n.revoked)
            {
                app.node_changed(&name, false, true).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx).map(Ok).boxed()))
    }
}

struct EnrollService {
    app: Arc<App>,
    gate: EnrollGate,
}

#[tonic::async_trait]
impl center_enrollment_server::CenterEnrollment for EnrollService {
    async fn begin(
        &self,
        request: Request<v1::JoinBegin>,
    ) -> Result<Response<v1::JoinOffer>, Status> {
        self.gate.admit(&request)?;
        let pki = self
            .app
            .pki()
            .ok_or_else(|| Status::unavailable("fleet support is not running"))?;
        Ok(Response::new(v1::JoinOffer {
            ca_pem: pki.ca_pem().to_owned(),
        }))
    }

    async fn finish(
        &self,
        request: Request<v1::JoinFinish>,
    ) -> Result<Response<v1::JoinDone>, Status> {
        self.gate.admit(&request)?;
        let f = request.into_inner();
        let pki = self
            .app
            .pki()
            .ok_or_else(|| Status::unavailable("fleet support is not running"))?;
        let cert = pki
            .join(&self.app.store, &f.node_name, &f.csr_pem, &f.mac_hex)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        Ok(Response::new(v1::JoinDone { cert_pem: cert }))
    }
}

/// Serves `CenterLink` with mutual TLS on `addr`; returns the bound address.
pub async fn serve_links(
    app: Arc<App>,
    addr: SocketAddr,
    inbound: mpsc::Sender<nodes::Inbound>,
    token: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let pki = app
        .pki()
        .ok_or_else(|| anyhow::anyhow!("fleet support is not running"))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = tonic::transport::Server::builder()
        .tls_config(pki.server_tls())?
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(center_link_server::CenterLinkServer::new(LinkService {
            app: app.clone(),
            inbound,
        }));
    tokio::spawn(
        server.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            token.cancelled_owned(),
        ),
    );
    Ok(bound)
}

/// Serves `CenterEnrollment` (plaintext, join-code authenticated, rate-limited per address) on
/// `addr`.
pub async fn serve_enrollment(
    app: Arc<App>,
    addr: SocketAddr,
    token: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let service = EnrollService {
        app,
        gate: EnrollGate::default(),
    };
    // A peer that never finishes its request must not hold a connection open for ever.
    let server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_service(center_enrollment_server::CenterEnrollmentServer::new(
            service,
        ));
    tokio::spawn(
        server.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            token.cancelled_owned(),
        ),
    );
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use proto::v1::center_enrollment_client::CenterEnrollmentClient;

    use super::*;
    use crate::{
        config::{CenterConfig, RunArgs},
        store::Store,
        telegram::{api::Tg, outbox::Outbox},
    };

    const TOKEN: &str = "123456:ABCdefGHIjklMNOpqr";

    /// A center that has not started fleet support: every admitted call is answered
    /// `UNAVAILABLE`, which tells admitted calls from refused ones without any PKI.
    fn app(state: &std::path::Path) -> Arc<App> {
        let args = RunArgs {
            allowed_users: Some("1".into()),
            state_dir: Some(state.to_owned()),
            ..RunArgs::default()
        };
        let cfg = CenterConfig::resolve(&args, None, Some(TOKEN.into())).unwrap();
        let store = Store::open(&state.join("center.db")).unwrap();
        // Never called: nothing here talks to Telegram.
        let tg = Tg::new(TOKEN, "http://127.0.0.1:9").unwrap();
        App::new(cfg, store, Outbox::new(tg, CancellationToken::new())).unwrap()
    }

    #[tokio::test]
    async fn a_link_to_a_node_revoked_during_its_handshake_is_never_attached() {
        let state = tempfile::tempdir().unwrap();
        let app = app(state.path());
        let (inbound, _inbound_rx) = mpsc::channel(16);
        let link = |name: &'static str| {
            let (center_side, _node_side) = proto::link::pair(16);
            nodes::attach(name, center_side, Default::default(), inbound.clone())
        };
        app.store.put_node("vps1", "", "aa01").unwrap();
        app.store.put_node("vps2", "", "bb02").unwrap();

        // Authenticated, then `/node remove vps1` while the handshake runs.
        let conn = link("vps1").await;
        app.store.revoke_node("vps1").unwrap();
        assert!(!app.attach_unless_revoked(&conn, Some("aa01")));
        assert!(app.node_names().is_empty());
        tokio::time::timeout(Duration::from_secs(1), conn.closed())
            .await
            .expect("the refused link is closed");

        // Re-enrolled with a new certificate: the old one stays refused, the new one attaches.
        app.store.put_node("vps1", "", "cc03").unwrap();
        let old = link("vps1").await;
        assert!(!app.attach_unless_revoked(&old, Some("aa01")));
        let new = link("vps1").await;
        assert!(app.attach_unless_revoked(&new, Some("cc03")));

        // Unknown names never attach; a link without a certificate is judged by its name.
        let stranger = link("vps9").await;
        assert!(!app.attach_unless_revoked(&stranger, None));
        let unix = link("vps2").await;
        assert!(app.attach_unless_revoked(&unix, None));
        assert_eq!(app.node_names(), vec!["vps1".to_owned(), "vps2".to_owned()]);
    }

    #[tokio::test]
    async fn the_sixth_enrollment_call_in_a_minute_from_one_address_is_refused_with_the_wait() {
        let state = tempfile::tempdir().unwrap();
        let token = CancellationToken::new();
        let addr = serve_enrollment(
            app(state.path()),
            "127.0.0.1:0".parse().unwrap(),
            token.clone(),
        )
        .await
        .unwrap();
        let mut client = CenterEnrollmentClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        // A join is begin + finish; five calls from one address are admitted, whichever they are.
        for call in 0..shared::enroll_gate::PER_ADDRESS {
            let status = if call % 2 == 0 {
                client.begin(v1::JoinBegin::default()).await.unwrap_err()
            } else {
                client.finish(v1::JoinFinish::default()).await.unwrap_err()
            };
            assert_eq!(
                status.code(),
                tonic::Code::Unavailable,
                "call {call}: {status:?}"
            );
        }
        let refused = client.finish(v1::JoinFinish::default()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        // 12 s until one attempt comes back (5 a minute), less the time the calls took.
        let wait = refused
            .message()
            .strip_prefix("too many enrollment attempts; try again in ")
            .and_then(|rest| rest.strip_suffix(" s"))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(wait.is_some_and(|n| (10..=12).contains(&n)), "{refused:?}");
        let refused = client.begin(v1::JoinBegin::default()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        // Counted per address: another one is still admitted.
        let other = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .local_address(Some("127.0.0.2".parse().unwrap()))
            .connect()
            .await
            .unwrap();
        let status = CenterEnrollmentClient::new(other)
            .begin(v1::JoinBegin::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        token.cancel();
    }
}
