//! The node protocol over gRPC: a tonic `NodeLink` service that turns each `Attach` call into a
//! [`NodeLink`] and serves it with [`Node::serve`]. Identity and TLS are decided here and
//! nowhere else; plaintext is only offered on loopback addresses.

use std::net::SocketAddr;

use futures::StreamExt;
use proto::{
    link::{Link, NodeLink},
    v1::{self, node_link_server},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use shared::pki::{PrivateKey, Role};

use crate::{enroll::EnrollService, node::Node};

/// Capacity of one link's outgoing queue.
pub(crate) const LINK_CAPACITY: usize = 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Plaintext on a non-loopback address.
    #[error(
        "refusing to serve plaintext on {0}: only loopback addresses are allowed without mutual TLS"
    )]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

struct Service {
    node: Node,
    token: CancellationToken,
    /// Mutual TLS: only a certificate with the center's role may attach.
    require_center: bool,
}

#[tonic::async_trait]
impl node_link_server::NodeLink for Service {
    type AttachStream = futures::stream::BoxStream<'static, Result<v1::NodeMsg, Status>>;

    async fn attach(
        &self,
        request: Request<Streaming<v1::CenterMsg>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        if self.require_center {
            // Identity is decided here and nowhere else: the certificate must say "center".
            match shared::tls::peer_role(&request) {
                Ok(Role::Center) => {}
                Ok(other) => {
                    tracing::warn!(peer = %other, "refused a link: only the center's certificate may attach");
                    return Err(Status::permission_denied(
                        "only the fleet's center may attach",
                    ));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "refused a link without a usable certificate");
                    return Err(Status::unauthenticated("a fleet certificate is required"));
                }
            }
        }
        let (tx, rx) = mpsc::channel(LINK_CAPACITY);
        let link: NodeLink = Link::from_streaming(tx, request.into_inner());
        let node = self.node.clone();
        let token = self.token.child_token();
        tokio::spawn(async move {
            if let Err(err) = node.serve(link, token).await {
                tracing::warn!(error = %err, "link ended");
            }
        });
        // Return at once: the handshake runs in the session task, never awaited here.
        Ok(Response::new(ReceiverStream::new(rx).map(Ok).boxed()))
    }
}

/// Binds `addr` and returns the listener with the address it got.
async fn listen(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let bind = |source| Error::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    Ok((listener, local))
}

/// Binds `addr` (loopback only) and returns the bound address and the server future.
pub async fn bind_plaintext(
    node: Node,
    addr: SocketAddr,
    token: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), Error>>), Error> {
    if !addr.ip().is_loopback() {
        return Err(Error::NotLoopback(addr));
    }
    let (listener, local) = listen(addr).await?;
    let service = node_link_server::NodeLinkServer::new(Service {
        node,
        token: token.clone(),
        require_center: false,
    });
    let fut = async move {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await
            .map_err(Error::from)
    };
    Ok((local, fut))
}

/// Binds `addr` with mutual TLS (any interface): only the fleet's center may attach.
pub async fn bind_mtls(
    node: Node,
    addr: SocketAddr,
    cert_pem: &str,
    key: &PrivateKey,
    ca_pem: &str,
    token: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), Error>>), Error> {
    let (listener, local) = listen(addr).await?;
    let tls = shared::tls::server_config(cert_pem, key, ca_pem);
    let service = node_link_server::NodeLinkServer::new(Service {
        node,
        token: token.clone(),
        require_center: true,
    });
    let builder = tonic::transport::Server::builder().tls_config(tls)?;
    let fut = async move {
        builder
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await
            .map_err(Error::from)
    };
    Ok((local, fut))
}

/// Binds `addr` for enrollment only: plaintext, but nothing is served except the
/// `NodeEnrollment` service, whose messages are authenticated with the join code (see
/// `crate::enroll`). Stops when `token` is cancelled.
pub async fn bind_enrollment(
    addr: SocketAddr,
    service: EnrollService,
    token: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), Error>>), Error> {
    let (listener, local) = listen(addr).await?;
    let service = v1::node_enrollment_server::NodeEnrollmentServer::new(service);
    let fut = async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await
            .map_err(Error::from)
    };
    Ok((local, fut))
}

/// Keeps a link to the center open by dialling it (for nodes behind NAT): on every drop,
/// reconnect after 0.5 s doubling to 30 s. The center speaks first; the session runs exactly as
/// on an accepted link. Returns when `token` is cancelled.
pub async fn dial_center(
    node: Node,
    center: &str,
    tls: tonic::transport::ClientTlsConfig,
    token: CancellationToken,
) {
    use proto::v1::center_link_client::CenterLinkClient;
    let mut attempt: u32 = 0;
    loop {
        let result = async {
            let channel = tonic::transport::Endpoint::from_shared(format!("https://{center}"))?
                .tls_config(tls.clone())?
                .connect_timeout(std::time::Duration::from_secs(10))
                .http2_keep_alive_interval(std::time::Duration::from_secs(20))
                .keep_alive_timeout(std::time::Duration::from_secs(10))
                .keep_alive_while_idle(true)
                .connect()
                .await?;
            let (tx, rx) = mpsc::channel(LINK_CAPACITY);
            let inbound = CenterLinkClient::new(channel)
                .dial(ReceiverStream::new(rx))
                .await
                .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?
                .into_inner();
            Ok::<_, anyhow::Error>(Link::from_streaming(tx, inbound))
        }
        .await;
        match result {
            Ok(link) => {
                attempt = 0;
                tracing::info!(%center, "connected to the center");
                if let Err(err) = node.serve(link, token.child_token()).await {
                    tracing::warn!(error = %err, "link to the center ended");
                }
            }
            Err(err) => {
                tracing::warn!(%center, error = %format!("{err:#}"), "cannot reach the center")
            }
        }
        attempt += 1;
        let wait = std::time::Duration::from_millis(500)
            .saturating_mul(1 << attempt.min(6))
            .min(std::time::Duration::from_secs(30));
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
