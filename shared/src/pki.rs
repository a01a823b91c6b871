//! The fleet's small PKI: who a certificate speaks for ([`Role`]), private keys that never leave
//! their owner ([`PrivateKey`]), the fleet CA kept by the center ([`FleetCa`]), reading and
//! verifying certificates ([`inspect`], [`verify_chain`]) and one-line join codes for enrollment
//! ([`JoinCode`]).
//!
//! Why it exists: mTLS alone only says "signed by our CA". The center and the nodes must also know
//! *which* party is on the other end, so a node's certificate can never act as the center, and
//! node `a` can never pose as node `b`. The role is written into every certificate by the CA (never
//! copied from a CSR) and read back by [`crate::tls`] on every connection.

mod ca;
mod cert;
mod join;
mod key;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{fmt, io, path::PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};

pub use ca::FleetCa;
pub use cert::{CertInfo, fingerprint_der, inspect, public_key_of, renewal_due, verify_chain};
pub use join::{JoinCode, JoinKind, SealedCode};
pub use key::PrivateKey;

/// DNS suffix of every name in the fleet's certificates.
pub const DNS_SUFFIX: &str = "codexfleet.internal";

/// Clock skew tolerated between machines: certificates start this long before they are issued.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The longest validity accepted for any certificate (keeps dates inside X.509's range).
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node name outside `[a-z0-9-]{1,32}` (or starting/ending with `-`).
    #[error(
        "invalid node name {0:?}: use 1-32 characters a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidNodeName(String),
    /// The certificate parses but does not name exactly one fleet role.
    #[error("certificate does not name a fleet role: {0}")]
    NoRole(String),
    /// Bytes that are not a certificate (PEM or DER).
    #[error("cannot parse certificate: {0}")]
    BadCertificate(String),
    /// Bytes that are not a valid, self-consistent certificate signing request.
    #[error("cannot parse certificate signing request: {0}")]
    BadCsr(String),
    /// Bytes that are not a private key we can use.
    #[error("cannot parse private key: {0}")]
    BadKey(String),
    /// The certificate does not chain to the fleet CA.
    #[error("certificate is not signed by the fleet CA")]
    UntrustedIssuer,
    /// The certificate's `notAfter` has passed.
    #[error("certificate has expired")]
    Expired,
    /// The certificate's `notBefore` is still in the future.
    #[error("certificate is not valid yet (check the clocks)")]
    NotYetValid,
    /// Any other reason the certificate was refused (wrong usage, a CA used as a leaf, ...).
    #[error("certificate rejected: {0}")]
    Rejected(String),
    /// The validity asked for is zero or longer than 100 years.
    #[error("invalid certificate validity {0:?}")]
    InvalidValidity(Duration),
    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The CA's files in the state dir are inconsistent (one missing, key not matching, not a CA).
    #[error("fleet CA in {dir}: {reason}")]
    CaState {
        /// The state dir holding `ca.pem` and `ca.key`.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The string does not look like a join code at all.
    #[error("not a join code (it should start with \"cfj1.\")")]
    NotAJoinCode,
    /// A join code of a version this build does not understand.
    #[error("join code version {0} is not supported (this build reads version 1)")]
    JoinCodeVersion(String),
    /// The join code's checksum or length is wrong: it was altered or copied incompletely.
    #[error("join code is corrupted (was it copied completely?)")]
    JoinCodeCorrupted,
    /// A fingerprint that is not 64 hex digits.
    #[error("invalid fingerprint {0:?}: expected 64 hex digits (sha256)")]
    BadFingerprint(String),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
}

// === impl Role ===

/// Who a certificate speaks for. Encoded in the certificate as a DNS SAN: the center is
/// `center.codexfleet.internal`, node N is `N.node.codexfleet.internal` (node names: 1–32 chars
/// `[a-z0-9-]`, not starting/ending with '-'), plus a URI SAN `codexfleet:center` /
/// `codexfleet:node:N`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// The center (the Telegram bot side).
    Center,
    /// The agent-node with this name.
    Node(String),
}

impl Role {
    /// A node role, checking the name with [`valid_node_name`].
    pub fn node(name: &str) -> Result<Role, Error> {
        if valid_node_name(name) {
            Ok(Role::Node(name.to_owned()))
        } else {
            Err(Error::InvalidNodeName(name.to_owned()))
        }
    }

    /// The DNS SAN of this role; also the TLS server name a peer expects.
    pub fn dns_name(&self) -> String {
        match self {
            Role::Center => format!("center.{DNS_SUFFIX}"),
            Role::Node(name) => format!("{name}.node.{DNS_SUFFIX}"),
        }
    }

    /// The URI SAN of this role (`codexfleet:center`, `codexfleet:node:N`).
    pub fn uri(&self) -> String {
        match self {
            Role::Center => "codexfleet:center".to_owned(),
            Role::Node(name) => format!("codexfleet:node:{name}"),
        }
    }

    /// The role named by a DNS SAN, if it is one of ours.
    pub fn from_dns_name(dns: &str) -> Result<Role, Error> {
        if dns == Role::Center.dns_name() {
            return Ok(Role::Center);
        }
        match dns.strip_suffix(&format!(".node.{DNS_SUFFIX}")) {
            Some(name) => Role::node(name),
            None => Err(Error::NoRole(format!("{dns:?} is not a fleet name"))),
        }
    }

    /// Reads the role from a DER certificate: exactly one fleet DNS SAN, the matching URI SAN and
    /// no other names.
    pub fn parse_from_cert(cert_der: &[u8]) -> Result<Role, Error> {
        cert::parse_der(cert_der).and_then(|cert| cert::role_of(&cert))
    }

    /// Fails with [`Error::InvalidNodeName`] for a node role with an invalid name.
    fn check(&self) -> Result<(), Error> {
        match self {
            Role::Node(name) if !valid_node_name(name) => Err(Error::InvalidNodeName(name.clone())),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Center => f.write_str("center"),
            Role::Node(name) => write!(f, "node {name}"),
        }
    }
}

/// Whether `name` can name a node: 1–32 chars of `[a-z0-9-]`, not starting or ending with '-'.
pub fn valid_node_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

// === leaf certificates ===

/// The complete parameters of a fleet leaf certificate for `role`, valid from `not_before` to
/// `not_after`. Every field is set here: signing never copies anything but the public key.
fn leaf_params(
    role: &Role,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, Error> {
    role.check()?;
    let gen_err = |e: rcgen::Error| Error::Generate(e.to_string());
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::DnsName(role.dns_name().try_into().map_err(gen_err)?),
        SanType::URI(role.uri().try_into().map_err(gen_err)?),
    ];
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, role.dns_name());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Both usages: the center dials nodes by default, but a node may dial the center instead.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(params)
}

/// `(now - BACKDATE, now + validity)`, refusing zero or absurd validities.
fn validity_window(validity: Duration) -> Result<(SystemTime, SystemTime), Error> {
    if validity.is_zero() || validity > MAX_VALIDITY {
        return Err(Error::InvalidValidity(validity));
    }
    let now = SystemTime::now();
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = now
        .checked_add(validity)
        .ok_or(Error::InvalidValidity(validity))?;
    Ok((not_before, not_after))
}

fn to_offset(t: SystemTime) -> Result<time::OffsetDateTime, Error> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()),
        Err(e) => i64::try_from(e.duration().as_secs()).map(|s| -s),
    }
    .map_err(|_| Error::Generate("time out of range".to_owned()))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| Error::Generate(e.to_string()))
}

/// A random positive 16-byte serial number.
fn random_serial() -> Result<rcgen::SerialNumber, Error> {
    let mut bytes = random_bytes::<16>()?;
    // Positive (top bit clear) and exactly 16 bytes long (second bit set).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// `N` bytes from the operating system's random number generator.
fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(bytes)
}

/// Lowercase SHA-256 hex digest of `data`.
fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in ["a", "node-1", "0", &"x".repeat(32)] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a_b",
            "é",
            &"x".repeat(33),
            "a b",
        ] {
            assert!(!valid_node_name(bad), "{bad}");
            assert!(matches!(Role::node(bad), Err(Error::InvalidNodeName(_))));
        }
    }

    #[test]
    fn dns_names_round_trip() {
        for role in [
            Role::Center,
            Role::Node("a".into()),
            Role::Node("center".into()),
        ] {
            assert_eq!(Role::from_dns_name(&role.dns_name()).unwrap(), role);
        }
        assert_eq!(
            Role::Node("a".into()).dns_name(),
            "a.node.codexfleet.internal"
        );
        assert_eq!(Role::Center.dns_name(), "center.codexfleet.internal");
        for bad in [
            "codexfleet.internal",
            ".node.codexfleet.internal",
            "a.b.node.codexfleet.internal",
            "center.example.com",
        ] {
            assert!(Role::from_dns_name(bad).is_err(), "{bad}");
        }
    }
}
