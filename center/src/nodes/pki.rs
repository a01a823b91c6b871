//! The center's side of a fleet: its CA and its own certificate (in `<state>/pki`), enrolling
//! nodes from their join codes, and the TLS settings for dialling them.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use proto::v1::{self, node_enrollment_client::NodeEnrollmentClient};
use shared::pki::{self, FleetCa, JoinCode, JoinKind, PrivateKey, Role, SealedCode};
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::store::Store;

/// The center's own certificate is valid this long and renewed at 2/3 of it.
const CENTER_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Node certificates issued at enrollment.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why enrolling a node failed (each message is fit for the user).
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The code is malformed.
    #[error("that is not a valid join code: {0}")]
    BadCode(String),
    /// The code expired.
    #[error("this join code has expired; run `agent-node init` on the machine again")]
    Expired,
    /// The code was used before.
    #[error("this join code was already used; run `agent-node init` on the machine again")]
    Replayed,
    /// The name is not a valid node name.
    #[error("{0:?} is not a valid node name (1-32 characters of a-z, 0-9 and '-')")]
    BadName(String),
    /// The node could not be reached or refused.
    #[error("cannot enroll the machine at {endpoint}: {message}")]
    Node {
        /// Where.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The machine that answered is not the one that printed the code.
    #[error("the machine at {0} is not the one that printed this join code")]
    WrongMachine(String),
    /// Local failure.
    #[error("{0}")]
    Internal(String),
}

/// The fleet CA and the center's identity.
pub struct CenterPki {
    ca: FleetCa,
    cert_pem: String,
    key: PrivateKey,
}

impl CenterPki {
    /// Loads (or creates) the CA and the center's key and certificate, renewing the certificate
    /// when 2/3 of its lifetime have passed.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, pki::Error> {
        let dir = state_dir.join("pki");
        let ca = FleetCa::load_or_create(&dir.join("ca"))?;
        let key_path = dir.join("center.key");
        let key = PrivateKey::load_or_generate(&key_path)?;
        let cert_path = dir.join("center.pem");
        let current = std::fs::read_to_string(&cert_path).ok().filter(|pem| {
            pki::verify_chain(pem, ca.cert_pem(), SystemTime::now())
                .is_ok_and(|info| !pki::renewal_due(&info, SystemTime::now()))
                && key.matches_cert(pem.as_bytes()).unwrap_or(false)
        });
        let cert_pem = match current {
            Some(pem) => pem,
            None => {
                let pem = ca.sign_csr(
                    &key.csr(&Role::Center)?,
                    &Role::Center,
                    CENTER_CERT_VALIDITY,
                )?;
                std::fs::write(&cert_path, &pem).map_err(|source| pki::Error::Io {
                    path: cert_path.clone(),
                    source,
                })?;
                tracing::info!("issued the center's certificate");
                pem
            }
        };
        Ok(Self { ca, cert_pem, key })
    }

    /// The fleet CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// TLS settings for serving nodes that dial in (their certificates are required).
    pub fn server_tls(&self) -> tonic::transport::ServerTlsConfig {
        shared::tls::server_config(&self.cert_pem, &self.key, self.ca.cert_pem())
    }

    /// A join code for a node that will dial in (`agent-node join`), valid for an hour.
    pub fn invite(&self, store: &Store, name: &str) -> Result<String, EnrollError> {
        if !pki::valid_node_name(name) || name == crate::nodes::LOCAL {
            return Err(EnrollError::BadName(name.to_owned()));
        }
        let code = JoinCode::new(
            JoinKind::CenterInvite,
            &self.ca.fingerprint(),
            Duration::from_secs(3600),
        )
        .map_err(|e| EnrollError::Internal(e.to_string()))?;
        // Only the sealed code is kept: whoever reads the database cannot enroll with it.
        store
            .put_invite(name, &code.seal().encode())
            .map_err(|e| EnrollError::Internal(e.to_string()))?;
        Ok(code.encode())
    }

    /// Signs the CSR of a node that dials in, if it proves the secret of its invite.
    pub fn join(
        &self,
        store: &Store,
        name: &str,
        csr_pem: &str,
        mac_hex: &str,
    ) -> Result<String, EnrollError> {
        let internal = |e: &dyn std::fmt::Display| EnrollError::Internal(e.to_string());
        let encoded = store
            .invite(name)
            .map_err(|e| internal(&e))?
            .ok_or_else(|| EnrollError::BadCode(format!("no invitation for {name:?}")))?;
        let code = SealedCode::decode(&encoded).map_err(|e| internal(&e))?;
        if code.expired(SystemTime::now()) {
            return Err(EnrollError::Expired);
        }
        if !code.verify_mac(&[name.as_bytes(), csr_pem.as_bytes()], mac_hex) {
            tracing::warn!(node = %name, "join refused: the join code's secret was not proven");
            return Err(EnrollError::BadCode(
                "the join code's secret was not proven".into(),
            ));
        }
        if !store
            .use_join_code(&code.secret_hash())
            .map_err(|e| internal(&e))?
        {
            return Err(EnrollError::Replayed);
        }
        let role = Role::node(name).map_err(|e| internal(&e))?;
        let cert = self
            .ca
            .sign_csr(csr_pem, &role, NODE_CERT_VALIDITY)
            .map_err(|e| {
                EnrollError::BadCode(format!("the certificate request was refused: {e}"))
            })?;
        let serial = pki::inspect(cert.as_bytes())
            .map(|i| i.serial_hex)
            .unwrap_or_default();
        store
            .put_node(name, "", &serial)
            .map_err(|e| internal(&e))?;
        let _ = store.remove_invite(name);
        tracing::info!(node = %name, "node joined (it dials in)");
        Ok(cert)
    }

    /// Signs a renewal CSR for node `name` (same rules as at enrollment).
    pub fn sign_renewal(&self, name: &str, csr_pem: &str) -> Result<String, pki::Error> {
        self.ca
            .sign_csr(csr_pem, &Role::node(name)?, NODE_CERT_VALIDITY)
    }

    /// What dialling a node with our own TLS handshake needs: the center's certificate (PEM),
    /// its key (PEM) and the fleet CA (PEM). See `connector::CheckedTls`.
    pub(crate) fn identity_pems(&self) -> (String, String, String) {
        (
            self.cert_pem.clone(),
            self.key.pem(),
            self.ca.cert_pem().to_owned(),
        )
    }

    /// TLS settings for dialling node `name` (only a certificate for that node is accepted).
    pub fn client_tls(&self, name: &str) -> Result<ClientTlsConfig, pki::Error> {
        Ok(shared::tls::client_config(
            &self.cert_pem,
            &self.key,
            self.ca.cert_pem(),
            &Role::node(name)?,
        ))
    }

    /// Enrolls the node at `endpoint` from the join code it printed; returns its certificate's
    /// serial. The code is spent only when enrollment succeeded.
    pub async fn enroll(
        &self,
        store: &Store,
        name: &str,
        endpoint: &str,
        code: &str,
    ) -> Result<String, EnrollError> {
        if !pki::valid_node_name(name) || name == crate::nodes::LOCAL {
            return Err(EnrollError::BadName(name.to_owned()));
        }
        let code =
            JoinCode::decode(code.trim()).map_err(|e| EnrollError::BadCode(e.to_string()))?;
        if !matches!(code.kind, JoinKind::NodeInvite) {
            return Err(EnrollError::BadCode(
                "it is not a code printed by `agent-node init`".into(),
            ));
        }
        if code.expired(SystemTime::now()) {
            return Err(EnrollError::Expired);
        }
        let hash = code.secret_hash();
        if store
            .join_code_used(&hash)
            .map_err(|e| EnrollError::Internal(e.to_string()))?
        {
            return Err(EnrollError::Replayed);
        }
        let node_err = |message: String| EnrollError::Node {
            endpoint: endpoint.to_owned(),
            message,
        };
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| node_err(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            .connect()
            .await
            .map_err(|e| node_err(e.to_string()))?;
        let mut client = NodeEnrollmentClient::new(channel);
        let offer = client
            .begin(v1::EnrollBegin {})
            .await
            .map_err(|s| node_err(s.message().to_owned()))?
            .into_inner();
        // The pin: the offered certificate must be the one whose fingerprint is in the code.
        let offered = pki::inspect(offer.self_signed_pem.as_bytes())
            .map_err(|_| EnrollError::WrongMachine(endpoint.into()))?;
        if offered.fingerprint != code.fingerprint_hex() {
            return Err(EnrollError::WrongMachine(endpoint.to_owned()));
        }
        if offer.node_name != name {
            return Err(node_err(format!(
                "it was initialised as {:?}; use that name",
                offer.node_name
            )));
        }
        let role = Role::node(name).map_err(|e| EnrollError::Internal(e.to_string()))?;
        let cert = self
            .ca
            .sign_csr(&offer.csr_pem, &role, NODE_CERT_VALIDITY)
            .map_err(|e| node_err(format!("its certificate request was refused: {e}")))?;
        let same_key = pki::public_key_of(cert.as_bytes()).ok()
            == pki::public_key_of(offer.self_signed_pem.as_bytes()).ok();
        if !same_key {
            return Err(EnrollError::WrongMachine(endpoint.to_owned()));
        }
        let ca_pem = self.ca.cert_pem().to_owned();
        let mac_hex = code.mac(&[cert.as_bytes(), ca_pem.as_bytes()]);
        client
            .finish(v1::EnrollFinish {
                cert_pem: cert.clone(),
                ca_pem,
                mac_hex,
            })
            .await
            .map_err(|s| node_err(s.message().to_owned()))?;
        if !store
            .use_join_code(&hash)
            .map_err(|e| EnrollError::Internal(e.to_string()))?
        {
            return Err(EnrollError::Replayed);
        }
        let serial = pki::inspect(cert.as_bytes())
            .map(|i| i.serial_hex)
            .unwrap_or_default();
        store
            .put_node(name, endpoint, &serial)
            .map_err(|e| EnrollError::Internal(e.to_string()))?;
        tracing::info!(node = %name, %endpoint, "node enrolled");
        Ok(serial)
    }
}
