//! Nodes that dial the center (behind NAT): a mutual-TLS `CenterLink` service whose calls become
//! the same links the connector makes, and a plaintext `CenterEnrollment` service for
//! `agent-node join` (its messages are authenticated by the join code; see `crate::fleet`).

use std::{net::SocketAddr, sync::Arc};

use futures::StreamExt;
use proto::{
    link::Link,
    v1::{self, center_enrollment_server, center_link_server},
};
use shared::pki::Role;
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
        // A revoked certificate stays refused, whatever the name's state.
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
            app.add_node(conn.clone());
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
}

#[tonic::async_trait]
impl center_enrollment_server::CenterEnrollment for EnrollService {
    async fn begin(&self, _: Request<v1::JoinBegin>) -> Result<Response<v1::JoinOffer>, Status> {
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

/// Serves `CenterEnrollment` (plaintext, join-code authenticated) on `addr`.
pub async fn serve_enrollment(
    app: Arc<App>,
    addr: SocketAddr,
    token: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = tonic::transport::Server::builder().add_service(
        center_enrollment_server::CenterEnrollmentServer::new(EnrollService { app }),
    );
    tokio::spawn(
        server.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            token.cancelled_owned(),
        ),
    );
    Ok(bound)
}
