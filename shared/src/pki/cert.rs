//! Reading certificates ([`inspect`]) and checking them against the fleet CA ([`verify_chain`]),
//! for the center and the nodes to check certificates in code (enrollment, renewal, status).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{Error, Role, hex, sha256_hex};

/// Facts read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Who the certificate speaks for.
    pub role: Role,
    /// The serial number, lowercase hex.
    pub serial_hex: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// Reads a certificate (PEM or DER; the first one of a PEM bundle). Checks nothing but its form
/// and that it names a fleet role: use [`verify_chain`] to trust it.
pub fn inspect(cert_pem_or_der: &[u8]) -> Result<CertInfo, Error> {
    let der = to_der(cert_pem_or_der)?;
    let cert = parse_der(&der)?;
    let validity = cert.validity();
    Ok(CertInfo {
        role: role_of(&cert)?,
        serial_hex: hex(cert.raw_serial()),
        fingerprint: fingerprint_der(&der),
        not_before: to_system_time(validity.not_before.timestamp()),
        not_after: to_system_time(validity.not_after.timestamp()),
    })
}

/// The SubjectPublicKeyInfo (DER) of a certificate, to check that two certificates (or a
/// certificate and a CSR's signed result) are for the same key.
pub fn public_key_of(cert_pem_or_der: &[u8]) -> Result<Vec<u8>, Error> {
    let der = to_der(cert_pem_or_der)?;
    let cert = parse_der(&der)?;
    Ok(cert.public_key().raw.to_vec())
}

/// SHA-256 of `der`, lowercase hex: the fingerprint of a certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    sha256_hex(der)
}

/// Renewal is due after 2/3 of the lifetime.
pub fn renewal_due(info: &CertInfo, now: SystemTime) -> bool {
    let lifetime = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or(Duration::ZERO);
    match info.not_before.checked_add(lifetime * 2 / 3) {
        Some(due) => now >= due,
        None => true,
    }
}

/// Checks that `cert_pem` is a fleet leaf certificate signed by (one of) the CA certificates in
/// `ca_pem`, valid at `now`, usable for TLS and naming exactly one fleet role, and returns its
/// facts. A wrong CA ([`Error::UntrustedIssuer`]), an expired ([`Error::Expired`]) or not yet
/// valid ([`Error::NotYetValid`]) certificate are told apart; anything else is
/// [`Error::Rejected`].
pub fn verify_chain(cert_pem: &str, ca_pem: &str, now: SystemTime) -> Result<CertInfo, Error> {
    let info = inspect(cert_pem.as_bytes())?;
    let der = CertificateDer::from(to_der(cert_pem.as_bytes())?);

    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| Error::BadCertificate(format!("CA: {e}")))?;
        roots
            .add(ca)
            .map_err(|e| Error::BadCertificate(format!("CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::BadCertificate("CA: no certificate found".to_owned()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::Rejected(e.to_string()))?;
    let name =
        ServerName::try_from(info.role.dns_name()).map_err(|e| Error::NoRole(e.to_string()))?;
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    verifier
        .verify_server_cert(
            &der,
            &[],
            &name,
            &[],
            UnixTime::since_unix_epoch(since_epoch),
        )
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => Error::UntrustedIssuer,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => Error::Expired,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => Error::NotYetValid,
            other => Error::Rejected(other.to_string()),
        })?;
    Ok(info)
}

/// DER bytes of a certificate given as PEM (first certificate) or DER.
pub(super) fn to_der(pem_or_der: &[u8]) -> Result<Vec<u8>, Error> {
    if pem_or_der.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(pem_or_der)
            .map(|der| der.as_ref().to_vec())
            .map_err(|e| Error::BadCertificate(e.to_string()))
    } else {
        Ok(pem_or_der.to_vec())
    }
}

/// Parses one DER certificate, refusing trailing bytes.
pub(super) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => Err(Error::BadCertificate(
            "trailing bytes after the certificate".to_owned(),
        )),
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(Error::BadCertificate(e.to_string())),
    }
}

/// The role a certificate names: exactly one fleet DNS SAN, the matching URI SAN, nothing else.
pub(super) fn role_of(cert: &X509Certificate<'_>) -> Result<Role, Error> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::BadCertificate(e.to_string()))?
        .ok_or_else(|| Error::NoRole("no subjectAltName".to_owned()))?;
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(*d),
            GeneralName::URI(u) => uris.push(*u),
            other => return Err(Error::NoRole(format!("unexpected name {other}"))),
        }
    }
    let [dns] = dns.as_slice() else {
        return Err(Error::NoRole(format!(
            "expected one DNS name, found {}",
            dns.len()
        )));
    };
    let role = Role::from_dns_name(dns)?;
    if uris != [role.uri().as_str()] {
        return Err(Error::NoRole(format!(
            "URI names {uris:?} do not match DNS name {dns:?}"
        )));
    }
    Ok(role)
}

fn to_system_time(unix: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{FleetCa, PrivateKey};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn another_ca_is_refused() {
        let ours = FleetCa::generate().unwrap();
        let theirs = FleetCa::generate().unwrap();
        let (_, pem) = theirs.issue(&Role::Center, HOUR).unwrap();
        let now = SystemTime::now();
        assert!(matches!(
            verify_chain(&pem, ours.cert_pem(), now),
            Err(Error::UntrustedIssuer)
        ));
        // A self-signed leaf (a node invite's pin) is not trusted either.
        let key = PrivateKey::generate().unwrap();
        let selfsigned = key.self_signed(&Role::Center, HOUR).unwrap();
        assert!(matches!(
            verify_chain(&selfsigned, ours.cert_pem(), now),
            Err(Error::UntrustedIssuer)
        ));
        // A bundle of both CAs trusts both.
        let bundle = format!("{}{}", ours.cert_pem(), theirs.cert_pem());
        verify_chain(&pem, &bundle, now).unwrap();
    }

    #[test]
    fn validity_is_checked() {
        let ca = FleetCa::generate().unwrap();
        let key = PrivateKey::generate().unwrap();
        let now = SystemTime::now();
        let role = Role::node("a").unwrap();
        let expired = ca
            .sign(key.key_pair(), &role, now - 3 * HOUR, now - HOUR)
            .unwrap();
        let future = ca
            .sign(key.key_pair(), &role, now + HOUR, now + 3 * HOUR)
            .unwrap();
        assert!(matches!(
            verify_chain(&expired, ca.cert_pem(), now),
            Err(Error::Expired)
        ));
        assert!(matches!(
            verify_chain(&future, ca.cert_pem(), now),
            Err(Error::NotYetValid)
        ));
        // ...and both are fine at a time inside their window.
        verify_chain(&expired, ca.cert_pem(), now - 2 * HOUR).unwrap();
        verify_chain(&future, ca.cert_pem(), now + 2 * HOUR).unwrap();
    }

    #[test]
    fn ca_certificate_is_not_a_leaf() {
        let ca = FleetCa::generate().unwrap();
        assert!(matches!(
            inspect(ca.cert_pem().as_bytes()),
            Err(Error::NoRole(_))
        ));
        assert!(matches!(inspect(b"garbage"), Err(Error::BadCertificate(_))));
        assert!(matches!(
            inspect(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
            Err(Error::BadCertificate(_))
        ));
    }

    #[test]
    fn inspect_accepts_pem_and_der() {
        let ca = FleetCa::generate().unwrap();
        let (_, pem) = ca.issue(&Role::node("n-1").unwrap(), HOUR).unwrap();
        let der = to_der(pem.as_bytes()).unwrap();
        let from_pem = inspect(pem.as_bytes()).unwrap();
        assert_eq!(inspect(&der).unwrap(), from_pem);
        assert_eq!(from_pem.fingerprint, fingerprint_der(&der));
        assert_eq!(
            Role::parse_from_cert(&der).unwrap(),
            Role::Node("n-1".into())
        );
    }

    #[test]
    fn renewal_at_two_thirds() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = CertInfo {
            role: Role::Center,
            serial_hex: String::new(),
            fingerprint: String::new(),
            not_before: t0,
            not_after: t0 + 3 * HOUR,
        };
        assert!(!renewal_due(&info, t0));
        assert!(!renewal_due(&info, t0 + 2 * HOUR - Duration::from_secs(1)));
        assert!(renewal_due(&info, t0 + 2 * HOUR));
        assert!(renewal_due(&info, t0 + 4 * HOUR));
    }
}
