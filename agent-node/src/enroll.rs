//! Joining a fleet: `agent-node init` makes this node's key (it never leaves the machine), a
//! self-signed certificate and a one-line join code; until a center finishes enrollment the node
//! serves only the `NodeEnrollment` service. The center checks the code's fingerprint against the
//! offered certificate and signs the node's CSR; the node accepts the signed certificate and the
//! CA only with a valid HMAC keyed by the code's secret (so the secret never travels, and nobody
//! on the path can slip in another CA). Then the node serves the node protocol over mutual TLS.
//!
//! The enrollment port is plaintext and open to whoever can reach it before anything is
//! authenticated, so calls are counted per source address and for everyone together
//! ([`shared::rate_limit`], the same quotas as the center's enrollment port): a scanner or a
//! script in a loop is refused, with how long to wait, instead of costing a CSR each time.

use shared::sync::LockExt;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use proto::v1::{self, node_enrollment_server::NodeEnrollment};
use shared::{
    enroll_gate::EnrollGate,
    pki::{self, JoinCode, JoinKind, PrivateKey, Role},
};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

/// Node certificates issued at enrollment are valid this long (renewed by re-enrolling).
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why TLS state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificate or key problems.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Where this node's TLS files live.
pub fn tls_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("tls")
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The node's TLS situation.
pub enum TlsState {
    /// No TLS set up (the node protocol is served on the Unix socket only).
    None,
    /// `agent-node init` ran; waiting for a center.
    Enrolling(Pending),
    /// Enrolled: serve mutual TLS.
    Enrolled {
        /// Node certificate (PEM).
        cert_pem: String,
        /// Node key.
        key: Box<PrivateKey>,
        /// Fleet CA (PEM).
        ca_pem: String,
    },
}

/// An enrollment in progress.
#[derive(Clone)]
pub struct Pending {
    name: String,
    key: Arc<PrivateKey>,
    self_signed_pem: String,
    code: Arc<JoinCode>,
    dir: PathBuf,
}

impl TlsState {
    /// Reads the state from `state_dir/tls`.
    pub fn load(state_dir: &Path) -> Result<Self, Error> {
        let dir = tls_dir(state_dir);
        let key_path = dir.join("node.key");
        if !key_path.exists() {
            return Ok(Self::None);
        }
        let key = PrivateKey::read_from(&key_path)?;
        if dir.join("node.pem").exists() && dir.join("ca.pem").exists() {
            return Ok(Self::Enrolled {
                cert_pem: read(&dir.join("node.pem"))?,
                key: Box::new(key),
                ca_pem: read(&dir.join("ca.pem"))?,
            });
        }
        if dir.join("join-code").exists() {
            let code = JoinCode::decode(read(&dir.join("join-code"))?.trim())?;
            return Ok(Self::Enrolling(Pending {
                name: read(&dir.join("name"))?.trim().to_owned(),
                key: Arc::new(key),
                self_signed_pem: read(&dir.join("node.self.pem"))?,
                code: Arc::new(code),
                dir,
            }));
        }
        Ok(Self::None)
    }
}

/// `agent-node init`: a key (kept if one exists), a self-signed certificate and a join code valid
/// for `ttl`. Returns the code to give to the center.
pub fn init(state_dir: &Path, name: &str, ttl: Duration) -> Result<String, Error> {
    let role = Role::node(name)?;
    let dir = tls_dir(state_dir);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let key_path = dir.join("node.key");
    let key = PrivateKey::load_or_generate(&key_path)?;
    let self_signed = key.self_signed(&role, ttl.max(Duration::from_secs(3600)))?;
    let fingerprint = pki::inspect(self_signed.as_bytes())?.fingerprint;
    let code = JoinCode::new(JoinKind::NodeInvite, &fingerprint, ttl)?;
    let encoded = code.encode();
    write_private(&dir.join("node.self.pem"), &self_signed)?;
    write_private(&dir.join("name"), name)?;
    write_private(&dir.join("join-code"), &encoded)?;
    // A fresh init replaces any earlier enrollment.
    let _ = std::fs::remove_file(dir.join("node.pem"));
    let _ = std::fs::remove_file(dir.join("ca.pem"));
    Ok(encoded)
}

/// The enrollment service; `done` is notified once the node holds its certificate.
pub struct EnrollService {
    pending: Pending,
    finished: Mutex<bool>,
    gate: EnrollGate,
    /// Notified when enrollment completed.
    pub done: Arc<Notify>,
}

impl EnrollService {
    /// Serves `pending`.
    pub fn new(pending: Pending) -> Self {
        Self {
            pending,
            finished: Mutex::new(false),
            gate: EnrollGate::default(),
            done: Arc::new(Notify::new()),
        }
    }

    fn check_code(&self) -> Result<(), Status> {
        if *self.finished.locked() {
            return Err(Status::failed_precondition(
                "this join code was already used",
            ));
        }
        if self.pending.code.expired(SystemTime::now()) {
            return Err(Status::failed_precondition(
                "this join code has expired; run `agent-node init` again for a new one",
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl NodeEnrollment for EnrollService {
    async fn begin(
        &self,
        request: Request<v1::EnrollBegin>,
    ) -> Result<Response<v1::EnrollOffer>, Status> {
        self.gate.admit(&request)?;
        self.check_code()?;
        let role = Role::node(&self.pending.name).map_err(|e| Status::internal(e.to_string()))?;
        let csr = self
            .pending
            .key
            .csr(&role)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(v1::EnrollOffer {
            self_signed_pem: self.pending.self_signed_pem.clone(),
            csr_pem: csr,
            node_name: self.pending.name.clone(),
        }))
    }

    async fn finish(
        &self,
        request: Request<v1::EnrollFinish>,
    ) -> Result<Response<v1::EnrollDone>, Status> {
        self.gate.admit(&request)?;
        self.check_code()?;
        let f = request.into_inner();
        let signed: [&[u8]; 2] = [f.cert_pem.as_bytes(), f.ca_pem.as_bytes()];
        if !self.pending.code.verify_mac(&signed, &f.mac_hex) {
            tracing::warn!("enrollment refused: the center did not prove the join code's secret");
            return Err(Status::permission_denied(
                "the join code's secret was not proven",
            ));
        }
        let info = pki::verify_chain(&f.cert_pem, &f.ca_pem, SystemTime::now())
            .map_err(|e| Status::invalid_argument(format!("certificate refused: {e}")))?;
        let same_key = self
            .pending
            .key
            .matches_cert(f.cert_pem.as_bytes())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if info.role != Role::Node(self.pending.name.clone()) || !same_key {
            return Err(Status::invalid_argument(
                "the certificate is not for this node's key and name",
            ));
        }
        let dir = &self.pending.dir;
        let save = |file: &str, text: &str| {
            write_private(&dir.join(file), text).map_err(|e| Status::internal(e.to_string()))
        };
        save("ca.pem", &f.ca_pem)?;
        save("node.pem", &f.cert_pem)?;
        let _ = std::fs::remove_file(dir.join("join-code"));
        *self.finished.locked() = true;
        tracing::info!(fleet.ca = %pki::inspect(f.ca_pem.as_bytes()).map(|i| i.fingerprint).unwrap_or_default(), "enrolled into a fleet");
        self.done.notify_one();
        Ok(Response::new(v1::EnrollDone {}))
    }
}

/// Installs a renewed certificate: it must chain to `ca_pem`, name this node, and be for this
/// node's key.
pub(crate) fn install_renewed(
    state_dir: &Path,
    cert_pem: &str,
    ca_pem: &str,
) -> Result<(), JoinError> {
    let TlsState::Enrolled {
        cert_pem: current,
        key,
        ..
    } = TlsState::load(state_dir)?
    else {
        return Err(JoinError::Refused("this node is not enrolled".into()));
    };
    let role = pki::inspect(current.as_bytes())?.role;
    let info = pki::verify_chain(cert_pem, ca_pem, SystemTime::now())?;
    if info.role != role || !key.matches_cert(cert_pem.as_bytes())? {
        return Err(JoinError::Refused(
            "the certificate is not for this node's key and name".into(),
        ));
    }
    let dir = tls_dir(state_dir);
    write_private(&dir.join("ca.pem"), ca_pem)?;
    write_private(&dir.join("node.pem"), cert_pem)?;
    Ok(())
}

/// `agent-node join`: enrolls with a center that printed `code` (`/node add <name>`), pinning the
/// fleet CA by the fingerprint in the code; afterwards `serve` dials `center` over mutual TLS.
pub async fn join(
    state_dir: &Path,
    name: &str,
    enroll_endpoint: &str,
    center: &str,
    code: &str,
) -> Result<(), JoinError> {
    use proto::v1::center_enrollment_client::CenterEnrollmentClient;
    let role = Role::node(name)?;
    let code = JoinCode::decode(code.trim())?;
    if !matches!(code.kind, JoinKind::CenterInvite) {
        return Err(JoinError::Refused(
            "this is not a code printed by the center's /node add".into(),
        ));
    }
    if code.expired(SystemTime::now()) {
        return Err(JoinError::Refused(
            "this join code has expired; ask the center for a new one".into(),
        ));
    }
    let dir = tls_dir(state_dir);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let key_path = dir.join("node.key");
    let key = PrivateKey::load_or_generate(&key_path)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{enroll_endpoint}"))
        .map_err(|e| JoinError::Refused(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| JoinError::Refused(format!("cannot reach {enroll_endpoint}: {e}")))?;
    let mut client = CenterEnrollmentClient::new(channel);
    let offer = client
        .begin(v1::JoinBegin {})
        .await
        .map_err(|s| JoinError::Refused(s.message().to_owned()))?
        .into_inner();
    // The pin: the CA offered must be the one whose fingerprint the code holds.
    let ca = pki::inspect(offer.ca_pem.as_bytes());
    let ca_fingerprint = ca.map(|i| i.fingerprint).unwrap_or_else(|_| {
        // A CA certificate has no fleet role; fingerprint its DER directly.
        pem_der(&offer.ca_pem)
            .map(|d| pki::fingerprint_der(&d))
            .unwrap_or_default()
    });
    if ca_fingerprint != code.fingerprint_hex() {
        return Err(JoinError::Refused(format!(
            "{enroll_endpoint} is not the center that printed this code"
        )));
    }
    let csr = key.csr(&role)?;
    let mac_hex = code.mac(&[name.as_bytes(), csr.as_bytes()]);
    let done = client
        .finish(v1::JoinFinish {
            node_name: name.to_owned(),
            csr_pem: csr,
            mac_hex,
        })
        .await
        .map_err(|s| JoinError::Refused(s.message().to_owned()))?
        .into_inner();
    let info = pki::verify_chain(&done.cert_pem, &offer.ca_pem, SystemTime::now())?;
    if info.role != role || !key.matches_cert(done.cert_pem.as_bytes())? {
        return Err(JoinError::Refused(
            "the center returned a certificate for another node or key".into(),
        ));
    }
    write_private(&dir.join("ca.pem"), &offer.ca_pem)?;
    write_private(&dir.join("node.pem"), &done.cert_pem)?;
    write_private(&dir.join("center"), center)?;
    let _ = std::fs::remove_file(dir.join("join-code"));
    Ok(())
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The center this node dials (written by `join`), if any.
pub fn center_endpoint(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(tls_dir(state_dir).join("center"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Why `agent-node join` failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Local files or certificates.
    #[error(transparent)]
    Local(#[from] Error),
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// The center refused or is not the right one.
    #[error("{0}")]
    Refused(String),
}

#[cfg(test)]
mod tests {
    use proto::v1::node_enrollment_client::NodeEnrollmentClient;
    use tokio_util::sync::CancellationToken;

    use super::*;

    #[tokio::test]
    async fn the_sixth_enrollment_call_in_a_minute_from_one_address_is_refused_with_the_wait() {
        let state = tempfile::tempdir().unwrap();
        init(state.path(), "vps1", Duration::from_secs(600)).unwrap();
        let TlsState::Enrolling(pending) = TlsState::load(state.path()).unwrap() else {
            panic!("init did not start an enrollment");
        };
        let token = CancellationToken::new();
        let (addr, server) = crate::transport::bind_enrollment(
            "127.0.0.1:0".parse().unwrap(),
            EnrollService::new(pending),
            token.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(server);
        let mut client = NodeEnrollmentClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        // begin is answered (the offer is public); finish without the secret's proof is refused
        // on its merits. Either way five calls from one address are admitted.
        for call in 0..shared::enroll_gate::PER_ADDRESS {
            if call % 2 == 0 {
                client.begin(v1::EnrollBegin::default()).await.unwrap();
            } else {
                let status = client
                    .finish(v1::EnrollFinish::default())
                    .await
                    .unwrap_err();
                assert_eq!(
                    status.code(),
                    tonic::Code::PermissionDenied,
                    "call {call}: {status:?}"
                );
            }
        }
        let refused = client.begin(v1::EnrollBegin::default()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let wait = refused
            .message()
            .strip_prefix("too many enrollment attempts; try again in ")
            .and_then(|rest| rest.strip_suffix(" s"))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(wait.is_some_and(|n| (10..=12).contains(&n)), "{refused:?}");
        let refused = client
            .finish(v1::EnrollFinish::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // Counted per address: another one is still admitted.
        let other = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .local_address(Some("127.0.0.2".parse().unwrap()))
            .connect()
            .await
            .unwrap();
        NodeEnrollmentClient::new(other)
            .begin(v1::EnrollBegin::default())
            .await
            .unwrap();
        token.cancel();
    }
}
