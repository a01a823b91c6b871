//! Unguessable tokens for ids that travel through Telegram (menu tokens in button data, relay
//! ids): a button press is only as good as the token it carries, so they come from the
//! operating system's random number generator, not from a hash of the clock.

/// `N` random bytes as lowercase hex (2·N characters).
pub fn hex_token<const N: usize>() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No OS randomness (it cannot happen on Linux once booted); still unique per process.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(crate::clock::now_unix_ms());
        for (i, b) in bytes.iter_mut().enumerate() {
            h.write_usize(i);
            *b = h.finish().to_le_bytes()[0];
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
}
