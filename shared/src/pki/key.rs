//! [`PrivateKey`]: an ECDSA P-256 key generated where it is used. Only CSRs and certificates
//! travel; the key itself is written only to its owner's state dir, mode 0600.

use std::{fmt, fs, io::Write, path::Path, time::Duration};

use rcgen::{KeyPair, PublicKeyData};

use super::{Error, Role, cert, leaf_params, validity_window};

/// A private key (PEM), generated where it is used; never serialised anywhere else but its owner's
/// state dir (file mode 0600). `Debug` shows only the public key's fingerprint.
pub struct PrivateKey {
    key: KeyPair,
}

impl PrivateKey {
    /// A fresh ECDSA P-256 key from the OS random number generator.
    pub fn generate() -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(|e| Error::Generate(e.to_string()))?;
        Ok(Self { key })
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(pem).map_err(|e| Error::BadKey(e.to_string()))?;
        Ok(Self { key })
    }

    /// The key as PKCS#8 PEM. Write it only with [`PrivateKey::write_to`].
    pub fn pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Reads a key written by [`PrivateKey::write_to`].
    pub fn read_from(path: &Path) -> Result<Self, Error> {
        let pem = fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem)
    }

    /// Writes the key to `path` with mode 0600, atomically (temporary file, then rename).
    pub fn write_to(&self, path: &Path) -> Result<(), Error> {
        write_private(path, self.pem().as_bytes())
    }

    /// The key at `path`, or a new one written there (0600) if there is none yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, Error> {
        if path.exists() {
            return Self::read_from(path);
        }
        let key = Self::generate()?;
        key.write_to(path)?;
        Ok(key)
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }

    /// Whether the certificate (PEM or DER) carries this key's public key.
    pub fn matches_cert(&self, cert_pem_or_der: &[u8]) -> Result<bool, Error> {
        let der = cert::to_der(cert_pem_or_der)?;
        let cert = cert::parse_der(&der)?;
        Ok(cert.tbs_certificate.subject_pki.raw == self.public_key_der().as_slice())
    }

    /// A CSR (PEM) for `role`, signed by this key. The CA ignores everything in it but the public
    /// key; the role is put in only so the request is self-describing.
    pub fn csr(&self, role: &Role) -> Result<String, Error> {
        let (not_before, not_after) = validity_window(Duration::from_secs(3600))?;
        let mut params = leaf_params(role, not_before, not_after)?;
        // Fields only an issuer sets; rcgen refuses them in a request.
        params.serial_number = None;
        params.use_authority_key_identifier_extension = false;
        params
            .serialize_request(&self.key)
            .and_then(|csr| csr.pem())
            .map_err(|e| Error::Generate(e.to_string()))
    }

    /// A self-signed certificate (PEM) for `role`: what `agent-node init` pins in a node invite
    /// before the node has a CA-signed certificate.
    pub fn self_signed(&self, role: &Role, validity: Duration) -> Result<String, Error> {
        let (not_before, not_after) = validity_window(validity)?;
        let cert = leaf_params(role, not_before, not_after)?
            .self_signed(&self.key)
            .map_err(|e| Error::Generate(e.to_string()))?;
        Ok(cert.pem())
    }

    /// The rcgen key, for signing inside this module.
    pub(super) fn key_pair(&self) -> &KeyPair {
        &self.key
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field(
                "public_key_sha256",
                &super::sha256_hex(&self.public_key_der()),
            )
            .finish_non_exhaustive()
    }
}

/// Writes `contents` to `path` readable by the owner only (0600), via a temporary file in the same
/// directory renamed over the target, so a crash never leaves a half-written or world-readable key.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let _ = fs::remove_file(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp).map_err(io_err)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_redacted_debug() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.pem();
        assert!(pem.contains("PRIVATE KEY"));
        let again = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());

        let debug = format!("{key:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for chunk in body.as_bytes().chunks(16) {
            assert!(!debug.contains(std::str::from_utf8(chunk).unwrap()));
        }
        assert!(PrivateKey::from_pem("not a key").is_err());
    }

    #[test]
    fn self_signed_names_the_role() {
        let key = PrivateKey::generate().unwrap();
        let role = Role::node("a").unwrap();
        let pem = key.self_signed(&role, Duration::from_secs(3600)).unwrap();
        assert_eq!(super::super::inspect(pem.as_bytes()).unwrap().role, role);
        assert!(key.matches_cert(pem.as_bytes()).unwrap());
        let other = PrivateKey::generate().unwrap();
        assert!(!other.matches_cert(pem.as_bytes()).unwrap());
        assert!(matches!(
            key.self_signed(&Role::Node("Bad".into()), Duration::from_secs(1)),
            Err(Error::InvalidNodeName(_))
        ));
        assert!(matches!(
            key.self_signed(&role, Duration::ZERO),
            Err(Error::InvalidValidity(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn written_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = PrivateKey::generate().unwrap();
        key.write_to(&path).unwrap();
        key.write_to(&path).unwrap(); // overwriting works too
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = PrivateKey::read_from(&path).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
    }
}
