//! [`JoinCode`]: the one-line code a person copies from one machine to another to enroll a node.
//! It carries a pin (the fingerprint the joiner must see before sending anything) and a secret
//! (which proves the joiner was handed the code). The issuer stores only a [`SealedCode`]: the
//! code with the SHA-256 of its secret in place of the secret. Proofs are HMACs keyed with that
//! hash over length-prefixed fields, so the issuer can check them without ever keeping the
//! secret, and no two different field splits give the same input.
//!
//! Format: `cfj1.` + base64url (no padding) of
//! `version(1) kind(1) secret(32) fingerprint(32) expires_unix(8, big-endian) checksum(4)`, where
//! the checksum is the first 4 bytes of SHA-256 over everything before it, so a mistyped or
//! truncated code is reported as corrupted rather than failing later as a wrong secret.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Error, hex, random_bytes};

/// Prefix of every join code (`cfj` = Codex Fleet join, then the version).
const PREFIX: &str = "cfj1.";
/// Payload version byte.
const VERSION: u8 = 1;
/// Payload length without the checksum.
const BODY_LEN: usize = 1 + 1 + 32 + 32 + 8;
/// Payload length with the checksum.
const PAYLOAD_LEN: usize = BODY_LEN + 4;

/// What a join code invites to, and so what its fingerprint pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinKind {
    /// Printed by `agent-node init`: the center dials the node. The fingerprint is the node key's
    /// self-signed certificate, which the center checks before sending the secret.
    NodeInvite,
    /// Printed by the center for dial-in nodes. The fingerprint is the CA certificate, which the
    /// node checks before sending the secret.
    CenterInvite,
}

impl JoinKind {
    fn to_byte(self) -> u8 {
        match self {
            JoinKind::NodeInvite => 1,
            JoinKind::CenterInvite => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(JoinKind::NodeInvite),
            2 => Some(JoinKind::CenterInvite),
            _ => None,
        }
    }
}

/// One-line join codes for enrollment. Format: `cfj1.` + base64url (no pad) of a versioned binary
/// payload with a checksum. `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCode {
    /// What the code invites to.
    pub kind: JoinKind,
    /// The secret the joiner presents; the issuer keeps only its hash.
    pub secret: [u8; 32],
    /// SHA-256 of the certificate the joiner must see before presenting the secret.
    pub fingerprint: [u8; 32],
    /// When the code stops being accepted (seconds since the Unix epoch).
    pub expires_unix: u64,
}

impl JoinCode {
    /// A code with a fresh random secret (from the OS), pinning `fingerprint_hex` (64 hex digits,
    /// as from [`super::fingerprint_der`]) and expiring `ttl` from now.
    pub fn new(kind: JoinKind, fingerprint_hex: &str, ttl: Duration) -> Result<Self, Error> {
        let fingerprint = parse_fingerprint(fingerprint_hex)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Ok(Self {
            kind,
            secret: random_bytes()?,
            fingerprint,
            expires_unix: now.saturating_add(ttl).as_secs(),
        })
    }

    /// The one-line text form, `cfj1.…`.
    pub fn encode(&self) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.push(VERSION);
        payload.push(self.kind.to_byte());
        payload.extend_from_slice(&self.secret);
        payload.extend_from_slice(&self.fingerprint);
        payload.extend_from_slice(&self.expires_unix.to_be_bytes());
        let sum = checksum(&payload);
        payload.extend_from_slice(&sum);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(payload))
    }

    /// Parses a code (surrounding whitespace is ignored). Errors say whether the text is not a
    /// join code at all ([`Error::NotAJoinCode`]), one of another version
    /// ([`Error::JoinCodeVersion`]) or damaged ([`Error::JoinCodeCorrupted`]).
    pub fn decode(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let Some(body) = s.strip_prefix(PREFIX) else {
            return Err(
                match s.strip_prefix("cfj").and_then(|r| r.split_once('.')) {
                    Some((v, _)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                        Error::JoinCodeVersion(v.to_owned())
                    }
                    _ => Error::NotAJoinCode,
                },
            );
        };
        let payload = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Error::JoinCodeCorrupted)?;
        let Ok(payload) = <[u8; PAYLOAD_LEN]>::try_from(payload.as_slice()) else {
            return Err(Error::JoinCodeCorrupted);
        };
        let (body, sum) = payload.split_at(BODY_LEN);
        if checksum(body) != sum {
            return Err(Error::JoinCodeCorrupted);
        }
        if body[0] != VERSION {
            return Err(Error::JoinCodeVersion(body[0].to_string()));
        }
        let kind = JoinKind::from_byte(body[1]).ok_or(Error::JoinCodeCorrupted)?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&body[2..34]);
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&body[34..66]);
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&body[66..74]);
        Ok(Self {
            kind,
            secret,
            fingerprint,
            expires_unix: u64::from_be_bytes(expires),
        })
    }

    /// Whether the code is no longer accepted at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        now >= self.expires_unix
    }

    /// SHA-256 of the secret, lowercase hex: what the issuer stores instead of the secret.
    pub fn secret_hash(&self) -> String {
        super::sha256_hex(&self.secret)
    }

    /// The pinned fingerprint as lowercase hex, comparable with [`super::fingerprint_der`].
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }

    /// HMAC-SHA256 of `fields` (each length-prefixed) keyed with the secret's hash (lowercase
    /// hex): proves knowledge of the secret without sending it.
    pub fn mac(&self, fields: &[&[u8]]) -> String {
        self.seal().mac(fields)
    }

    /// Checks a MAC made with [`JoinCode::mac`] (constant time).
    pub fn verify_mac(&self, fields: &[&[u8]], mac_hex: &str) -> bool {
        self.seal().verify_mac(fields, mac_hex)
    }

    /// What the issuer keeps: everything but the secret, which is replaced by its hash.
    pub fn seal(&self) -> SealedCode {
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &self.secret).as_ref());
        SealedCode {
            kind: self.kind,
            key,
            fingerprint: self.fingerprint,
            expires_unix: self.expires_unix,
        }
    }
}

/// Prefix of a sealed code (`cfs` = Codex Fleet sealed).
const SEALED_PREFIX: &str = "cfs1.";

/// A join code as its issuer stores it: the secret's SHA-256 instead of the secret, so whoever
/// reads the issuer's database cannot enroll with it, yet proofs made with the secret check.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCode {
    /// What the code invites to.
    pub kind: JoinKind,
    /// SHA-256 of the secret: the key of the proofs.
    key: [u8; 32],
    /// The pinned fingerprint.
    pub fingerprint: [u8; 32],
    /// When the code stops being accepted (seconds since the Unix epoch).
    pub expires_unix: u64,
}

impl SealedCode {
    /// The stored text form, `cfs1.…`.
    pub fn encode(&self) -> String {
        let as_code = JoinCode {
            kind: self.kind,
            secret: self.key,
            fingerprint: self.fingerprint,
            expires_unix: self.expires_unix,
        };
        let code = as_code.encode();
        format!("{SEALED_PREFIX}{}", &code[PREFIX.len()..])
    }

    /// Parses a stored sealed code; a full join code (stored by an older center) is sealed on
    /// the way.
    pub fn decode(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        match s.strip_prefix(SEALED_PREFIX) {
            Some(body) => {
                let c = JoinCode::decode(&format!("{PREFIX}{body}"))?;
                Ok(Self {
                    kind: c.kind,
                    key: c.secret,
                    fingerprint: c.fingerprint,
                    expires_unix: c.expires_unix,
                })
            }
            None => JoinCode::decode(s).map(|c| c.seal()),
        }
    }

    /// Whether the code is no longer accepted at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        now >= self.expires_unix
    }

    /// SHA-256 of the secret, lowercase hex (the same as [`JoinCode::secret_hash`]): what marks
    /// the code used.
    pub fn secret_hash(&self) -> String {
        hex(&self.key)
    }

    /// See [`JoinCode::mac`].
    pub fn mac(&self, fields: &[&[u8]]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        hex(ring::hmac::sign(&key, &length_prefixed(fields)).as_ref())
    }

    /// Checks a MAC made with [`JoinCode::mac`] (constant time).
    pub fn verify_mac(&self, fields: &[&[u8]], mac_hex: &str) -> bool {
        let Some(tag) = unhex(mac_hex) else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        ring::hmac::verify(&key, &length_prefixed(fields), &tag).is_ok()
    }
}

impl fmt::Debug for SealedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedCode")
            .field("kind", &self.kind)
            .field("key", &"<redacted>")
            .field("fingerprint", &hex(&self.fingerprint))
            .field("expires_unix", &self.expires_unix)
            .finish()
    }
}

/// Each field as its length (8 bytes, big-endian) then its bytes.
fn length_prefixed(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
    for f in fields {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

impl fmt::Debug for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinCode")
            .field("kind", &self.kind)
            .field("secret", &"<redacted>")
            .field("fingerprint", &self.fingerprint_hex())
            .field("expires_unix", &self.expires_unix)
            .finish()
    }
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut sum = [0u8; 4];
    sum.copy_from_slice(&digest.as_ref()[..4]);
    sum
}

fn parse_fingerprint(s: &str) -> Result<[u8; 32], Error> {
    let bad = || Error::BadFingerprint(s.to_owned());
    let s = s.trim();
    // Hex digits only: `from_str_radix` would also take a sign ("+a" as 0x0a).
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    // Hex digits only: `from_str_radix` would also take a sign, so "+f" would pass for "0f" and
    // one proof would have several spellings.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn code() -> JoinCode {
        JoinCode::new(JoinKind::CenterInvite, FP, Duration::from_secs(900)).unwrap()
    }

    #[test]
    fn macs_prove_the_secret() {
        let code = JoinCode::new(
            JoinKind::NodeInvite,
            &"ab".repeat(32),
            Duration::from_secs(60),
        )
        .unwrap();
        let other = JoinCode::new(
            JoinKind::NodeInvite,
            &"ab".repeat(32),
            Duration::from_secs(60),
        )
        .unwrap();
        let mac = code.mac(&[b"cert", b"ca"]);
        assert!(code.verify_mac(&[b"cert", b"ca"], &mac));
        assert!(!code.verify_mac(&[b"cert", b"ca!"], &mac));
        // Fields are length-prefixed: another split of the same bytes is another input.
        assert!(!code.verify_mac(&[b"cer", b"tca"], &mac));
        assert!(!other.verify_mac(&[b"cert", b"ca"], &mac));
        assert!(!code.verify_mac(&[b"cert", b"ca"], "zz"));
    }

    #[test]
    fn the_issuer_checks_proofs_from_the_sealed_code_which_holds_no_secret() {
        let code = JoinCode::new(JoinKind::CenterInvite, FP, Duration::from_secs(60)).unwrap();
        let stored = code.seal().encode();
        assert!(stored.starts_with("cfs1."), "{stored}");
        // Neither the secret nor the code itself can be read back from what is stored.
        assert!(!stored.contains(&code.encode()[5..]));
        assert!(JoinCode::decode(&stored).is_err());
        let sealed = SealedCode::decode(&stored).unwrap();
        assert_eq!(sealed, code.seal());
        assert_eq!(sealed.secret_hash(), code.secret_hash());
        let mac = code.mac(&[b"node-1", b"csr"]);
        assert!(sealed.verify_mac(&[b"node-1", b"csr"], &mac));
        assert!(!sealed.verify_mac(&[b"node-2", b"csr"], &mac));
        // A full code stored by an older center is sealed when read.
        assert_eq!(SealedCode::decode(&code.encode()).unwrap(), sealed);
        assert!(!format!("{sealed:?}").contains(&code.secret_hash()));
    }

    #[test]
    fn round_trip() {
        for kind in [JoinKind::NodeInvite, JoinKind::CenterInvite] {
            let code = JoinCode::new(kind, FP, Duration::from_secs(900)).unwrap();
            let text = code.encode();
            assert!(text.starts_with("cfj1."), "{text}");
            assert!(!text.contains('='));
            let back = JoinCode::decode(&format!("  {text}\n")).unwrap();
            assert_eq!(back, code);
            assert_eq!(back.fingerprint_hex(), FP);
        }
        // Secrets are random.
        assert_ne!(code().secret, code().secret);
        assert_eq!(code().secret_hash().len(), 64);
    }

    #[test]
    fn every_one_bit_flip_is_caught() {
        let original = code();
        let text = original.encode();
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                let Ok(flipped) = String::from_utf8(bytes) else {
                    continue;
                };
                match JoinCode::decode(&flipped) {
                    Err(_) => {}
                    Ok(decoded) => assert_ne!(decoded, original, "flip {i}:{bit} went unnoticed"),
                }
            }
        }
        // Truncation and extension are corruption too.
        assert!(matches!(
            JoinCode::decode(&text[..text.len() - 1]),
            Err(Error::JoinCodeCorrupted)
        ));
        assert!(matches!(
            JoinCode::decode(&format!("{text}A")),
            Err(Error::JoinCodeCorrupted)
        ));
    }

    #[test]
    fn clear_errors() {
        let text = code().encode();
        assert!(matches!(
            JoinCode::decode("hello"),
            Err(Error::NotAJoinCode)
        ));
        assert!(matches!(JoinCode::decode(""), Err(Error::NotAJoinCode)));
        let v2 = text.replacen("cfj1.", "cfj2.", 1);
        assert!(matches!(JoinCode::decode(&v2), Err(Error::JoinCodeVersion(v)) if v == "2"));
        assert!(matches!(
            JoinCode::decode("cfj1.!!!"),
            Err(Error::JoinCodeCorrupted)
        ));
        // A well-formed payload with another version byte.
        let mut payload = URL_SAFE_NO_PAD.decode(&text[5..]).unwrap();
        payload[0] = 7;
        let sum = checksum(&payload[..BODY_LEN]);
        payload[BODY_LEN..].copy_from_slice(&sum);
        let v7 = format!("cfj1.{}", URL_SAFE_NO_PAD.encode(&payload));
        assert!(matches!(JoinCode::decode(&v7), Err(Error::JoinCodeVersion(v)) if v == "7"));
        for bad in ["", "abc", &FP[1..], format!("{}zz", &FP[2..]).as_str()] {
            assert!(matches!(
                JoinCode::new(JoinKind::NodeInvite, bad, Duration::from_secs(1)),
                Err(Error::BadFingerprint(_))
            ));
        }
    }

    #[test]
    fn expiry() {
        let code = code();
        let now = SystemTime::now();
        assert!(!code.expired(now));
        assert!(!code.expired(now + Duration::from_secs(890)));
        assert!(code.expired(now + Duration::from_secs(901)));
        let instant = JoinCode::new(JoinKind::NodeInvite, FP, Duration::ZERO).unwrap();
        assert!(instant.expired(SystemTime::now() + Duration::from_secs(1)));
    }

    #[test]
    fn debug_hides_the_secret() {
        let code = code();
        let debug = format!("{code:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&hex(&code.secret)));
        assert!(!debug.contains(&format!("{:?}", code.secret)));
        assert!(!debug.contains(&code.encode()[5..]));
        assert!(!debug.contains(&URL_SAFE_NO_PAD.encode(code.secret)));
    }
}
