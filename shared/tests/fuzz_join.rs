//! Property tests of join-code parsing ([`JoinCode`], [`SealedCode`]) and of the proofs made with
//! a code: whatever a person pastes or an attacker sends, parsing never panics, and nothing is
//! accepted unless it is exactly what the issuer wrote (a code, a sealed code, a MAC over the same
//! fields). Enrollment is the one place an unauthenticated peer talks to the fleet, and these
//! parsers are what it talks to first.
//!
//! Bounded for CI: a fixed number of cases and a fixed seed (set `PROPTEST_CASES` or
//! `PROPTEST_RNG_SEED` to explore further locally).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use shared::pki::{Error, JoinCode, JoinKind, SealedCode};

/// Cases per property: a few seconds in a debug build.
const CASES: u32 = 3000;

/// Payload layout of a code (see `shared::pki::join`): version, kind, secret, fingerprint,
/// expiry, then a 4-byte checksum.
const BODY_LEN: usize = 1 + 1 + 32 + 32 + 8;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6a6f_696e);
    }
    config
}

fn kinds() -> impl Strategy<Value = JoinKind> {
    prop_oneof![Just(JoinKind::NodeInvite), Just(JoinKind::CenterInvite)]
}

fn codes() -> impl Strategy<Value = JoinCode> {
    (kinds(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>()).prop_map(
        |(kind, secret, fingerprint, expires_unix)| JoinCode {
            kind,
            secret,
            fingerprint,
            expires_unix,
        },
    )
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut sum = [0u8; 4];
    sum.copy_from_slice(&digest.as_ref()[..4]);
    sum
}

/// Text that looks more or less like a code: the real prefixes and alphabet, wrong lengths,
/// stray characters, whitespace.
fn code_like_text() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("cfj1."),
        Just("cfs1."),
        Just("cfj2."),
        Just("cfj."),
        Just("cfj01."),
        Just("CFJ1."),
        Just(""),
    ];
    (prefix, "[A-Za-z0-9_=+/ .\n-]{0,120}", "[ \t\n]{0,2}")
        .prop_map(|(p, body, ws)| format!("{ws}{p}{body}{ws}"))
}

/// Mutates `text`: replace, insert or delete one char, or cut it short.
fn mutate(text: &str, at: usize, op: u8, c: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let mut out = chars.clone();
    match op % 4 {
        0 if at < chars.len() => out[at] = c,
        1 => out.insert(at, c),
        2 if at < chars.len() => {
            out.remove(at);
        }
        _ => out.truncate(at),
    }
    out.into_iter().collect()
}

/// Fields for a MAC: a few byte strings, possibly empty.
fn fields() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 0..4)
}

fn as_slices(fields: &[Vec<u8>]) -> Vec<&[u8]> {
    fields.iter().map(Vec::as_slice).collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any text at all: no panic, and what parses is the canonical spelling of what it parses to
    /// (one code, one text; surrounding whitespace aside).
    #[test]
    fn arbitrary_text_never_panics_and_only_canonical_codes_parse(
        text in prop_oneof![any::<String>(), code_like_text()],
    ) {
        if let Ok(code) = JoinCode::decode(&text) {
            prop_assert_eq!(code.encode(), text.trim());
        }
        if let Ok(sealed) = SealedCode::decode(&text) {
            let trimmed = text.trim();
            if trimmed.starts_with("cfs1.") {
                prop_assert_eq!(sealed.encode(), trimmed);
            } else {
                // A full code stored by an older center is sealed on the way.
                let code = JoinCode::decode(trimmed);
                prop_assert!(code.is_ok(), "{:?}", text);
                prop_assert_eq!(code.map(|c| c.seal()).ok(), Some(sealed));
            }
        }
    }

    /// Every code survives its text form, with whitespace around it; its sealed form survives
    /// too, can never be used as a code, and checks the same proofs.
    #[test]
    fn codes_and_sealed_codes_round_trip(code in codes(), ws in "[ \t\n]{0,3}", f in fields()) {
        let text = code.encode();
        prop_assert!(text.starts_with("cfj1."));
        prop_assert_eq!(JoinCode::decode(&format!("{ws}{text}{ws}")).ok(), Some(code.clone()));
        let stored = code.seal().encode();
        prop_assert!(stored.starts_with("cfs1."));
        prop_assert!(JoinCode::decode(&stored).is_err(), "a sealed code is not a join code");
        let sealed = SealedCode::decode(&stored);
        prop_assert_eq!(sealed.as_ref().ok(), Some(&code.seal()));
        let f = as_slices(&f);
        let mac = code.mac(&f);
        prop_assert!(sealed.is_ok_and(|s| s.verify_mac(&f, &mac)));
        let debug = format!("{:?}", code.seal());
        prop_assert!(!debug.contains(&code.secret_hash()));
    }

    /// One char replaced, inserted or deleted, or the text cut short: never accepted as a code
    /// (the checksum catches it), whatever it is.
    #[test]
    fn a_damaged_code_is_refused(code in codes(), at in any::<usize>(), op in any::<u8>(), c in any::<char>()) {
        for text in [code.encode(), code.seal().encode()] {
            let damaged = mutate(&text, at, op, c);
            let relabelled = damaged.get(5..) == text.get(5..)
                && (damaged.starts_with("cfj1.") || damaged.starts_with("cfs1."));
            if damaged.trim() == text || relabelled {
                // The same payload under the other prefix is well-formed (see the next property).
                continue;
            }
            prop_assert!(JoinCode::decode(&damaged).is_err(), "{:?} from {:?}", damaged, text);
            prop_assert!(SealedCode::decode(&damaged).is_err(), "{:?} from {:?}", damaged, text);
        }
    }

    /// Whoever reads a stored sealed code and relabels it `cfj1.` holds a well-formed join code,
    /// but its proofs are keyed with the hash of the stored key, so the issuer refuses them.
    #[test]
    fn a_relabelled_sealed_code_proves_nothing(code in codes(), f in fields()) {
        let stored = code.seal().encode();
        let relabelled = JoinCode::decode(&stored.replacen("cfs1.", "cfj1.", 1));
        prop_assert!(relabelled.is_ok());
        if let Ok(forged) = relabelled {
            let f = as_slices(&f);
            prop_assert!(!code.seal().verify_mac(&f, &forged.mac(&f)));
        }
    }

    /// A payload of arbitrary bytes with a correct checksum is accepted only with version 1 and a
    /// known kind, and says which of the two is wrong otherwise.
    #[test]
    fn only_known_versions_and_kinds_are_accepted(body in prop::collection::vec(any::<u8>(), BODY_LEN)) {
        let mut payload = body.clone();
        payload.extend_from_slice(&checksum(&body));
        let text = format!("cfj1.{}", URL_SAFE_NO_PAD.encode(&payload));
        match (body[0], body[1], JoinCode::decode(&text)) {
            (1, 1 | 2, Ok(code)) => {
                prop_assert_eq!(code.encode(), text);
                prop_assert_eq!(&code.secret[..], &body[2..34]);
                prop_assert_eq!(&code.fingerprint[..], &body[34..66]);
            }
            (1, _, Err(Error::JoinCodeCorrupted)) => {}
            (v, _, Err(Error::JoinCodeVersion(shown))) if v != 1 => {
                prop_assert_eq!(shown, v.to_string());
            }
            (v, k, other) => prop_assert!(false, "version {} kind {}: {:?}", v, k, other),
        }
    }

    /// A payload of arbitrary bytes with a wrong checksum is never accepted.
    #[test]
    fn a_wrong_checksum_is_refused(body in prop::collection::vec(any::<u8>(), BODY_LEN), sum in any::<[u8; 4]>()) {
        prop_assume!(sum != checksum(&body));
        let mut payload = body;
        payload.extend_from_slice(&sum);
        let encoded = URL_SAFE_NO_PAD.encode(&payload);
        let as_code = JoinCode::decode(&format!("cfj1.{encoded}"));
        prop_assert!(matches!(as_code, Err(Error::JoinCodeCorrupted)));
        let as_sealed = SealedCode::decode(&format!("cfs1.{encoded}"));
        prop_assert!(as_sealed.is_err());
    }

    /// A proof checks only for the very fields it was made over (another split of the same
    /// bytes is another input) and only with the code that made it.
    #[test]
    fn proofs_check_only_for_the_same_fields_and_code(
        code in codes(),
        other in codes(),
        made_over in fields(),
        checked_over in fields(),
    ) {
        let mac = code.mac(&as_slices(&made_over));
        let sealed = code.seal();
        let checks = sealed.verify_mac(&as_slices(&checked_over), &mac);
        prop_assert_eq!(checks, made_over == checked_over);
        prop_assert_eq!(code.verify_mac(&as_slices(&checked_over), &mac), checks);
        if other.secret != code.secret {
            prop_assert!(!other.verify_mac(&as_slices(&made_over), &mac));
        }
    }

    /// Any MAC text other than the proof itself (hex digits in either case) is refused: forged,
    /// damaged, truncated, or the right bytes spelled some other way.
    #[test]
    fn only_the_proof_itself_is_accepted_as_a_mac(
        code in codes(),
        f in fields(),
        forged in prop_oneof![
            any::<String>(),
            "[0-9a-fA-F+-]{62,66}",
        ],
        at in any::<usize>(),
        op in any::<u8>(),
        c in any::<char>(),
    ) {
        let f = as_slices(&f);
        let mac = code.mac(&f);
        prop_assert_eq!(mac.len(), 64);
        prop_assert!(code.verify_mac(&f, &mac));
        prop_assert!(code.verify_mac(&f, &mac.to_uppercase()));
        // A one-byte sign in front of a hex pair is a different spelling, not the proof.
        let signed = format!("+{}", &mac[1..]);
        prop_assert!(!code.verify_mac(&f, &signed), "{}", signed);
        for text in [forged, mutate(&mac, at, op, c)] {
            if code.seal().verify_mac(&f, &text) {
                prop_assert!(text.eq_ignore_ascii_case(&mac), "{:?} accepted for {}", text, mac);
            }
        }
    }

    /// Fingerprints given to `JoinCode::new` are 64 hex digits (whitespace around them aside);
    /// anything else is refused with the setting named, and never panics.
    #[test]
    fn fingerprints_are_64_hex_digits(
        text in prop_oneof![any::<String>(), "[0-9a-fA-F+ -]{62,66}"],
        kind in kinds(),
    ) {
        match JoinCode::new(kind, &text, Duration::from_secs(60)) {
            Ok(code) => {
                let t = text.trim();
                prop_assert!(t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()), "{:?}", text);
                prop_assert_eq!(code.fingerprint_hex(), t.to_ascii_lowercase());
            }
            Err(Error::BadFingerprint(_)) => {}
            Err(other) => prop_assert!(false, "{:?}: {}", text, other),
        }
    }
}
