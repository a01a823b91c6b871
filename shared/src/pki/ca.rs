//! [`FleetCa`]: the center's certificate authority. It signs node and center certificates from
//! CSRs, taking nothing from a CSR but its (signature-checked) public key.

use std::{fs, path::Path, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose,
    SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer;

use super::{Error, PrivateKey, Role, cert, leaf_params, validity_window};

/// Lifetime of the fleet CA certificate.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Common name of the fleet CA.
const CA_NAME: &str = "Codex Fleet CA";

/// The fleet CA, kept in the center's state dir (`ca.pem` and `ca.key`, mode 0600).
pub struct FleetCa {
    key: PrivateKey,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl FleetCa {
    /// A new CA: ECDSA P-256, valid 10 years, CN "Codex Fleet CA", no intermediates allowed.
    pub fn generate() -> Result<Self, Error> {
        let key = PrivateKey::generate()?;
        let (not_before, not_after) = validity_window(CA_VALIDITY)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(super::random_serial()?);
        params.not_before = super::to_offset(not_before)?;
        params.not_after = super::to_offset(not_after)?;
        let cert = params
            .self_signed(key.key_pair())
            .map_err(|e| Error::Generate(e.to_string()))?;
        Ok(Self {
            key,
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        })
    }

    /// Loads `ca.pem` + `ca.key` from `dir`, or creates both (and `dir`) if neither exists.
    /// Refuses to overwrite when only one of them exists, or when they do not belong together.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let state_err = |reason: &str| Error::CaState {
            dir: dir.to_owned(),
            reason: reason.to_owned(),
        };
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert_pem = fs::read_to_string(&cert_path).map_err(|source| Error::Io {
                    path: cert_path.clone(),
                    source,
                })?;
                let key = PrivateKey::read_from(&key_path)?;
                let cert_der = cert::to_der(cert_pem.as_bytes())?;
                let parsed = cert::parse_der(&cert_der)?;
                if !parsed.is_ca() {
                    return Err(state_err("ca.pem is not a CA certificate"));
                }
                if !key.matches_cert(&cert_der)? {
                    return Err(state_err("ca.key does not belong to ca.pem"));
                }
                Ok(Self {
                    key,
                    cert_pem,
                    cert_der,
                })
            }
            (false, false) => {
                fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_owned(),
                    source,
                })?;
                let ca = Self::generate()?;
                // Key first: a crash in between leaves a key without a cert, which is refused
                // above rather than silently replaced.
                ca.key.write_to(&key_path)?;
                fs::write(&cert_path, &ca.cert_pem).map_err(|source| Error::Io {
                    path: cert_path,
                    source,
                })?;
                Ok(ca)
            }
            (true, false) => Err(state_err("ca.pem exists but ca.key is missing")),
            (false, true) => Err(state_err("ca.key exists but ca.pem is missing")),
        }
    }

    /// The CA certificate (PEM): the trust root every fleet member is given.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex: what a center invite pins.
    pub fn fingerprint(&self) -> String {
        super::fingerprint_der(&self.cert_der)
    }

    /// Signs a CSR for `role`: keeps ONLY the CSR's public key (after checking the CSR's
    /// signature, i.e. that the requester holds the key); every other field (SANs, key usages,
    /// CA=false, validity, serial random 16 bytes) is set here (rcgen copies CA flags from a CSR
    /// otherwise).
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        role: &Role,
        validity: Duration,
    ) -> Result<String, Error> {
        let public_key = csr_public_key(csr_pem)?;
        let (not_before, not_after) = validity_window(validity)?;
        self.sign(&public_key, role, not_before, not_after)
    }

    /// Convenience for tests and manual mode on one machine: a fresh key and its signed cert.
    pub fn issue(&self, role: &Role, validity: Duration) -> Result<(PrivateKey, String), Error> {
        let key = PrivateKey::generate()?;
        let (not_before, not_after) = validity_window(validity)?;
        let cert = self.sign(key.key_pair(), role, not_before, not_after)?;
        Ok((key, cert))
    }

    /// Signs a leaf for `public_key` with an explicit validity window.
    pub(super) fn sign(
        &self,
        public_key: &impl rcgen::PublicKeyData,
        role: &Role,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Result<String, Error> {
        let params = leaf_params(role, not_before, not_after)?;
        let issuer = Issuer::from_ca_cert_der(
            &CertificateDer::from(self.cert_der.as_slice()),
            self.key.key_pair(),
        )
        .map_err(|e| Error::Generate(e.to_string()))?;
        let cert = params
            .signed_by(public_key, &issuer)
            .map_err(|e| Error::Generate(e.to_string()))?;
        Ok(cert.pem())
    }
}

impl std::fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCa")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The public key of a PEM CSR whose self-signature verifies. Extensions are not even parsed:
/// nothing but the key is used.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, Error> {
    use rustls_pki_types::{CertificateSigningRequestDer, pem::PemObject};
    use x509_parser::certification_request::X509CertificationRequest;

    let bad = |e: &dyn std::fmt::Display| Error::BadCsr(e.to_string());
    let der =
        CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| bad(&e))?;
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref()).map_err(|e| bad(&e))?;
    if !rest.is_empty() {
        return Err(bad(&"trailing bytes after the request"));
    }
    csr.verify_signature()
        .map_err(|e| bad(&format!("signature does not verify: {e}")))?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use rcgen::{ExtendedKeyUsagePurpose, SanType};

    use super::*;
    use crate::pki::{inspect, verify_chain};

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn sign_and_inspect_round_trip() {
        let ca = FleetCa::generate().unwrap();
        let key = PrivateKey::generate().unwrap();
        let role = Role::node("a").unwrap();
        let csr = key.csr(&role).unwrap();
        let pem = ca.sign_csr(&csr, &role, 30 * DAY).unwrap();

        let info = inspect(pem.as_bytes()).unwrap();
        assert_eq!(info.role, role);
        assert_eq!(info.serial_hex.len(), 32);
        let now = SystemTime::now();
        assert!(info.not_before <= now && now < info.not_after);
        let lifetime = info.not_after.duration_since(info.not_before).unwrap();
        assert!(lifetime >= 30 * DAY && lifetime <= 30 * DAY + Duration::from_secs(600));
        assert!(key.matches_cert(pem.as_bytes()).unwrap());

        let der = cert::to_der(pem.as_bytes()).unwrap();
        let parsed = cert::parse_der(&der).unwrap();
        assert!(!parsed.is_ca(), "a leaf must not be a CA");
        assert_eq!(info, verify_chain(&pem, ca.cert_pem(), now).unwrap());

        // Two certificates never share a serial.
        let again = ca.sign_csr(&csr, &role, 30 * DAY).unwrap();
        assert_ne!(
            inspect(again.as_bytes()).unwrap().serial_hex,
            info.serial_hex
        );
    }

    #[test]
    fn csr_claims_are_ignored() {
        let ca = FleetCa::generate().unwrap();
        let key = PrivateKey::generate().unwrap();
        // A greedy CSR: CA=true, cert-signing, the center's name and another SAN.
        let mut params = CertificateParams::new(vec![
            "center.codexfleet.internal".to_owned(),
            "evil.example.com".to_owned(),
        ])
        .unwrap();
        params
            .subject_alt_names
            .push(SanType::URI("codexfleet:center".try_into().unwrap()));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any];
        let csr = params
            .serialize_request(key.key_pair())
            .unwrap()
            .pem()
            .unwrap();

        let role = Role::node("a").unwrap();
        let pem = ca.sign_csr(&csr, &role, DAY).unwrap();
        let der = cert::to_der(pem.as_bytes()).unwrap();
        let parsed = cert::parse_der(&der).unwrap();
        assert!(!parsed.is_ca());
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "DNSName(a.node.codexfleet.internal)",
                "URI(codexfleet:node:a)"
            ]
        );
        let ku = parsed.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert_eq!(inspect(pem.as_bytes()).unwrap().role, role);
        // It is an ordinary leaf that chains to the fleet CA.
        assert!(verify_chain(&pem, ca.cert_pem(), SystemTime::now()).is_ok());
    }

    #[test]
    fn bad_csrs_are_refused() {
        let ca = FleetCa::generate().unwrap();
        let role = Role::node("a").unwrap();
        assert!(matches!(
            ca.sign_csr("junk", &role, DAY),
            Err(Error::BadCsr(_))
        ));
        // A CSR whose signature does not match its key (tampered public key).
        let key = PrivateKey::generate().unwrap();
        let csr = key.csr(&role).unwrap();
        let mut der = rustls_pki_types::pem::PemObject::from_pem_slice(csr.as_bytes())
            .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
            .unwrap();
        let spki = key.public_key_der();
        let at = der.windows(spki.len()).position(|w| w == spki).unwrap();
        let last = at + spki.len() - 1;
        der[last] ^= 1;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert!(matches!(
            ca.sign_csr(&tampered, &role, DAY),
            Err(Error::BadCsr(_))
        ));
        assert!(matches!(
            ca.sign_csr(&csr, &Role::Node("-x".into()), DAY),
            Err(Error::InvalidNodeName(_))
        ));
    }

    #[test]
    fn load_or_create_persists() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("center");
        let ca = FleetCa::load_or_create(&state).unwrap();
        let again = FleetCa::load_or_create(&state).unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        assert_eq!(ca.fingerprint().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A reloaded CA still signs certificates that chain to the original.
        let (_, pem) = again.issue(&Role::Center, DAY).unwrap();
        verify_chain(&pem, ca.cert_pem(), SystemTime::now()).unwrap();

        // A key that does not belong to the cert is refused, not replaced.
        PrivateKey::generate()
            .unwrap()
            .write_to(&state.join("ca.key"))
            .unwrap();
        assert!(matches!(
            FleetCa::load_or_create(&state),
            Err(Error::CaState { .. })
        ));
        fs::remove_file(state.join("ca.pem")).unwrap();
        assert!(matches!(
            FleetCa::load_or_create(&state),
            Err(Error::CaState { .. })
        ));
    }
}
