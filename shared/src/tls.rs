//! tonic TLS configs from PEM, and the role check done on every connection.
//!
//! Both directions use mutual TLS against the fleet CA ([`crate::pki::FleetCa`]): the server
//! requires a client certificate signed by the CA, and the client pins the server's role through
//! the TLS server name ([`Role::dns_name`]), so a center dialing node `a` accepts only a
//! certificate for `a`. The server then asks [`peer_role`] who is calling, so a node's certificate
//! can never act as the center. The center's connector and the node's gRPC server both build on
//! this module; certificates themselves come from [`crate::pki`].

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::pki::{self, PrivateKey, Role};

/// TLS handshakes have no timeout by default; a stalled peer must not hold a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the peer of a request has no fleet role.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client certificate: not a TLS connection (in-process, unix socket) or none was sent.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// The peer's certificate does not name a fleet role (or does not parse).
    #[error("peer certificate: {0}")]
    Certificate(#[source] pki::Error),
}

/// Installs ring as the process-wide rustls crypto provider. Call once at startup, before any TLS
/// config is built; calling it again (or after another provider was installed) does nothing.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A server config presenting `cert_pem` (with `key`) and requiring client certificates signed by
/// the CA in `client_ca_pem`. Which role a client has is checked per request with [`peer_role`].
pub fn server_config(cert_pem: &str, key: &PrivateKey, client_ca_pem: &str) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key.pem()))
        .client_ca_root(Certificate::from_pem(client_ca_pem))
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT)
}

/// A client config presenting `cert_pem` (with `key`), trusting only the CA in `ca_pem`, and
/// accepting only a server certificate for `server_role` (`domain_name` is
/// `server_role.dns_name()`, whatever address is dialed).
pub fn client_config(
    cert_pem: &str,
    key: &PrivateKey,
    ca_pem: &str,
    server_role: &Role,
) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key.pem()))
        .domain_name(server_role.dns_name())
        .timeout(HANDSHAKE_TIMEOUT)
}

/// The role of the peer of a tonic request (from `Request::peer_certs()`), or why there is none
/// (no client cert, unparsable, not the expected kind). The chain itself was already verified
/// against the fleet CA during the handshake.
pub fn peer_role<T>(request: &tonic::Request<T>) -> Result<Role, Error> {
    let certs = request.peer_certs().ok_or(Error::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(Error::NoPeerCertificate)?;
    Role::parse_from_cert(leaf).map_err(Error::Certificate)
}

/// The serial (lowercase hex) of the certificate the peer presented, if any.
pub fn peer_serial<T>(request: &tonic::Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    crate::pki::inspect(leaf.as_ref())
        .ok()
        .map(|i| i.serial_hex)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::pki::FleetCa;

    const HOUR: Duration = Duration::from_secs(3600);

    type Seen = Arc<Mutex<Vec<Result<Role, String>>>>;

    /// Starts a health server on loopback with `server_config`, recording `peer_role` of each call.
    async fn serve(cert_pem: &str, key: &PrivateKey, ca_pem: &str) -> (SocketAddr, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let interceptor = move |req: tonic::Request<()>| {
            let role = peer_role(&req).map_err(|e| e.to_string());
            record.lock().unwrap().push(role);
            Ok(req)
        };
        let (_reporter, health) = tonic_health::server::health_reporter();
        let router = Server::builder()
            .tls_config(server_config(cert_pem, key, ca_pem))
            .unwrap()
            .layer(tonic::service::InterceptorLayer::new(interceptor))
            .add_service(health);
        tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
        (addr, seen)
    }

    /// One health check over a fresh channel.
    async fn call(addr: SocketAddr, tls: ClientTlsConfig) -> Result<(), String> {
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .tls_config(tls)
            .map_err(|e| format!("tls config: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|e| format!("call: {e:?}"))?;
        Ok(())
    }

    #[tokio::test]
    async fn mutual_tls_end_to_end() {
        install_crypto_provider();
        let ca = FleetCa::generate().unwrap();
        let other_ca = FleetCa::generate().unwrap();
        let node_a = Role::node("a").unwrap();
        let (center_key, center_cert) = ca.issue(&Role::Center, HOUR).unwrap();
        let (a_key, a_cert) = ca.issue(&node_a, HOUR).unwrap();
        let (rogue_key, rogue_cert) = other_ca.issue(&node_a, HOUR).unwrap();

        // Node "a" dials the center: accepted, and the center sees node "a".
        let (center, seen) = serve(&center_cert, &center_key, ca.cert_pem()).await;
        let a_to_center = client_config(&a_cert, &a_key, ca.cert_pem(), &Role::Center);
        call(center, a_to_center.clone()).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [Ok(node_a.clone())]);

        // A client certificate from another CA is refused during the handshake.
        let rogue = client_config(&rogue_cert, &rogue_key, ca.cert_pem(), &Role::Center);
        let err = call(center, rogue).await.unwrap_err();
        // Both CAs are named "Codex Fleet CA", so the server reports a bad signature.
        assert!(
            err.contains("DecryptError") || err.contains("UnknownCA"),
            "{err}"
        );

        // No client certificate at all is refused.
        let anonymous = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert_pem()))
            .domain_name(Role::Center.dns_name());
        let err = call(center, anonymous).await.unwrap_err();
        assert!(err.contains("CertificateRequired"), "{err}");
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "refused peers never reach a handler"
        );

        // The center dials node "a": it accepts "a"'s certificate, and "a" sees the center...
        let (node, node_seen) = serve(&a_cert, &a_key, ca.cert_pem()).await;
        let center_to_a = client_config(&center_cert, &center_key, ca.cert_pem(), &node_a);
        call(node, center_to_a).await.unwrap();
        assert_eq!(*node_seen.lock().unwrap(), [Ok(Role::Center)]);

        // ...but a center expecting node "b" (or the center) refuses "a"'s certificate.
        let node_b = Role::node("b").unwrap();
        for expected in [node_b, Role::Center] {
            let tls = client_config(&center_cert, &center_key, ca.cert_pem(), &expected);
            let err = call(node, tls).await.unwrap_err();
            assert!(err.contains("NotValidForName"), "{expected}: {err}");
        }
        assert_eq!(node_seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn plain_requests_have_no_role() {
        let request = tonic::Request::new(());
        assert!(matches!(peer_role(&request), Err(Error::NoPeerCertificate)));
    }
}
