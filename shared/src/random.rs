//! Randomness from the operating system, for two kinds of use: unguessable tokens for ids that
//! travel through Telegram (menu tokens in button data, relay ids) — a button press is only as
//! good as the token it carries, so they come from the OS's random number generator, not from a
//! hash of the clock — and jitter for retry schedules ([`crate::backoff`]), where a draw must
//! merely differ between callers.
//!
//! Key material does not come from here: `pki` draws its own bytes and fails rather than fall
//! back to the hash below.

/// Fills `bytes` from the OS's random number generator. If the OS has no randomness to give
/// (which does not happen on Linux once booted), falls back to std's randomly keyed SipHash
/// over the clock and a counter: still unpredictable across processes and unique within one,
/// never all zeros.
fn fill(bytes: &mut [u8]) {
    use ring::rand::SecureRandom;
    if ring::rand::SystemRandom::new().fill(bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(crate::clock::now_unix_ms());
        for (i, b) in bytes.iter_mut().enumerate() {
            h.write_usize(i);
            *b = h.finish().to_le_bytes()[0];
        }
    }
}

/// `N` random bytes as lowercase hex (2·N characters).
pub fn hex_token<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A uniformly random number in `[0, 1)` (53 bits of precision).
pub fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    // The top 53 bits, scaled: every value is exactly representable and below 1.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_hex_of_the_asked_length_and_differ() {
        let a = super::hex_token::<4>();
        let b = super::hex_token::<4>();
        assert_eq!(a.len(), 8);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn units_are_in_range_and_differ() {
        let draws: Vec<f64> = (0..64).map(|_| super::unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)), "{draws:?}");
        assert!(draws.iter().any(|u| *u != draws[0]), "{draws:?}");
    }
}
