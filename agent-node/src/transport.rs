//! The node protocol over gRPC: a tonic `NodeLink` service that turns each `Attach` call into a
//! [`NodeLink`] and serves it with [`Node::serve`]. Identity and TLS are decided here and
//! nowhere else.
//!
//! Whoever attaches acts as the center: it can type into every Codex window. So a link is either
//! mutual TLS over TCP (the certificate must say "center"), or — for a node that is not enrolled,
//! e.g. one the center's user runs next to it — a Unix socket that only this node's own uid (or a
//! uid the operator listed) can use. Plaintext TCP is never offered: on a shared machine any
//! local user could reach a loopback port. The socket lives in a directory private to the node's
//! user (so nobody else can even reach it between `bind` and `chmod`), and the kernel's
//! `SO_PEERCRED` says who connected; connections from any other uid are dropped before a byte of
//! gRPC is read, and logged once per uid.

use std::{
    collections::HashSet,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use futures::StreamExt;
use proto::{
    link::{Link, NodeLink},
    v1::{self, node_link_server},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use shared::pki::{PrivateKey, Role};

use crate::{enroll::EnrollService, node::Node};

/// Capacity of one link's outgoing queue.
pub(crate) const LINK_CAPACITY: usize = 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Unix socket's directory is not private to this user.
    #[error(
        "refusing to serve the node socket in {}: {problem} (use a directory only this user can enter, e.g. the state directory)",
        dir.display()
    )]
    NotPrivate {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Another process serves on the socket already.
    #[error("another agent-node already serves on {}", .0.display())]
    InUse(PathBuf),
    /// Setting up the Unix socket failed.
    #[error("cannot listen on {}: {source}", path.display())]
    BindUnix {
        /// The socket path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
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

/// Who may use the node's Unix socket besides the node's own user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalAccess {
    /// Other uids allowed to attach (`allow_uids`; e.g. a center running as another user).
    pub allow_uids: Vec<u32>,
}

/// Whether a peer the kernel reports as uid `peer` (`None`: no credentials) may attach to a node
/// running as `own`: the same uid, or one listed in `allowed`.
pub(crate) fn peer_allowed(own: u32, allowed: &[u32], peer: Option<u32>) -> bool {
    peer.is_some_and(|uid| uid == own || allowed.contains(&uid))
}

/// The modes of the socket's directory and of the socket: owner-only, or with the group let
/// through when other uids are allowed (they reach the socket through the directory's group;
/// `SO_PEERCRED` still admits only the listed uids).
fn socket_modes(shared: bool) -> (u32, u32) {
    if shared {
        (0o710, 0o660)
    } else {
        (0o700, 0o600)
    }
}

/// What is wrong with a socket directory owned by `owner` with permission bits `mode`, for a node
/// running as `own` (`None`: nothing).
fn dir_problem(mode: u32, owner: u32, own: u32, shared: bool) -> Option<&'static str> {
    let (wanted, _) = socket_modes(shared);
    if owner != own {
        Some("it belongs to another user")
    } else if mode & 0o777 & !wanted != 0 {
        Some("other users may enter or change it")
    } else {
        None
    }
}

/// Makes `dir` ready to hold the node socket: created owner-only if missing; an existing one of
/// ours is set to the socket's directory mode when `tighten` (the node's own state directory),
/// else must already be private.
fn prepare_socket_dir(dir: &Path, own: u32, shared: bool, tighten: bool) -> Result<(), Error> {
    let (mode, _) = socket_modes(shared);
    let bind = |source| Error::BindUnix {
        path: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(bind)?;
    }
    let meta = std::fs::metadata(dir).map_err(bind)?;
    if tighten && meta.uid() == own {
        // Our own state directory: exactly the mode the socket needs.
        return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(bind);
    }
    match dir_problem(meta.mode(), meta.uid(), own, shared) {
        None => Ok(()),
        Some(problem) => Err(Error::NotPrivate {
            dir: dir.to_owned(),
            problem,
        }),
    }
}

/// This process's effective uid (what `SO_PEERCRED` reports for our own connections).
fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Serves the node protocol on the Unix socket `path` (for a node that is not enrolled): only
/// this user and `access.allow_uids` may attach. `own_dir` says `path`'s directory is the node's
/// state directory, which is made private if it is not; any other directory must already be.
/// Returns the socket path and the server future; the socket is removed when the server stops.
pub async fn bind_unix(
    node: Node,
    path: &Path,
    own_dir: bool,
    access: LocalAccess,
    token: CancellationToken,
) -> Result<(PathBuf, impl Future<Output = Result<(), Error>>), Error> {
    let own = own_uid();
    let shared = access.allow_uids.iter().any(|&uid| uid != own);
    let dir = path.parent().unwrap_or(Path::new("."));
    prepare_socket_dir(dir, own, shared, own_dir)?;
    let bind = |source| Error::BindUnix {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(bind)?; // left by a node that was killed
        }
        Ok(_) => {
            return Err(bind(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(bind)?;
    let (_, socket_mode) = socket_modes(shared);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode)).map_err(bind)?;
    let allowed = access.allow_uids;
    let mut refused = HashSet::new();
    let incoming = tokio_stream::StreamExt::filter_map(
        UnixListenerStream::new(listener),
        move |conn| {
            let Ok(stream) = conn else {
                return Some(conn);
            };
            let peer = stream.peer_cred().ok().map(|c| c.uid());
            if peer_allowed(own, &allowed, peer) {
                return Some(Ok(stream));
            }
            // Once per uid: a client retrying in a loop must not flood the log.
            if refused.insert(peer) {
                match peer {
                    Some(uid) => tracing::warn!(
                        peer.uid = uid,
                        "refused a connection on the node socket from another user (allow_uids lists who may attach)"
                    ),
                    None => tracing::warn!(
                        "refused a connection on the node socket: the kernel gave no peer credentials"
                    ),
                }
            }
            None
        },
    );
    let service = node_link_server::NodeLinkServer::new(Service {
        node,
        token: token.clone(),
        require_center: false,
    });
    let socket = path.to_owned();
    let fut = async move {
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
            .await
            .map_err(Error::from);
        let _ = std::fs::remove_file(&socket);
        served
    };
    Ok((path.to_owned(), fut))
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
/// `NodeEnrollment` service, whose messages are authenticated with the join code and whose calls
/// are rate-limited per address (see `crate::enroll`). Stops when `token` is cancelled.
pub async fn bind_enrollment(
    addr: SocketAddr,
    service: EnrollService,
    token: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), Error>>), Error> {
    let (listener, local) = listen(addr).await?;
    let service = v1::node_enrollment_server::NodeEnrollmentServer::new(service);
    let fut = async move {
        // A peer that never finishes its request must not hold a connection open for ever.
        tonic::transport::Server::builder()
            .timeout(std::time::Duration::from_secs(30))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_own_uid_or_a_listed_one_may_attach() {
        assert!(peer_allowed(1000, &[], Some(1000)));
        assert!(!peer_allowed(1000, &[], Some(1001)), "another user");
        assert!(
            !peer_allowed(1000, &[], Some(0)),
            "not even root unless listed"
        );
        assert!(peer_allowed(1000, &[1001], Some(1001)));
        assert!(!peer_allowed(1000, &[1001], Some(1002)));
        assert!(!peer_allowed(1000, &[1000, 1001], None), "no credentials");
    }

    #[test]
    fn the_socket_directory_must_be_ours_and_closed_to_others() {
        assert_eq!(dir_problem(0o40700, 1000, 1000, false), None);
        assert!(dir_problem(0o40700, 0, 1000, false).is_some(), "root's");
        assert!(dir_problem(0o40755, 1000, 1000, false).is_some());
        assert!(dir_problem(0o41777, 0, 1000, false).is_some(), "/tmp");
        assert!(
            dir_problem(0o40710, 1000, 1000, false).is_some(),
            "group only when sharing"
        );
        assert_eq!(dir_problem(0o40710, 1000, 1000, true), None);
        assert!(
            dir_problem(0o40750, 1000, 1000, true).is_some(),
            "no listing"
        );
    }

    #[test]
    fn a_missing_directory_is_made_private_and_an_open_one_is_refused_unless_ours_to_tighten() {
        let tmp = tempfile::tempdir().unwrap();
        let own = own_uid();
        let fresh = tmp.path().join("a/b");
        prepare_socket_dir(&fresh, own, false, false).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = prepare_socket_dir(&open, own, false, false).unwrap_err();
        assert!(err.to_string().contains("other users may enter"), "{err}");
        prepare_socket_dir(&open, own, false, true).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o700);
        // Shared with listed uids: the group may pass through, nobody may list it.
        prepare_socket_dir(&open, own, true, true).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o710);
    }
}
