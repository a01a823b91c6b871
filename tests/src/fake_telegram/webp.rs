//! WebP, the format of static stickers: a tiny but genuine lossless (VP8L) encoder, so tests can
//! inject stickers without binary fixtures, and a header reader for the dimensions of any WebP
//! (lossy `VP8 `, lossless `VP8L` or extended `VP8X`), which the fake uses to check stickers and
//! thumbnails the way a Telegram client would.

/// A valid `width`×`height` lossless WebP of one solid RGBA colour (1..=16384 per side).
///
/// Every prefix code is a "simple" code with a single symbol, so the pixels take no bits at all:
/// the whole image is a few dozen bytes whatever its size.
pub fn sample_webp(width: u32, height: u32, rgba: [u8; 4]) -> Vec<u8> {
    assert!(
        (1..=16_384).contains(&width) && (1..=16_384).contains(&height),
        "WebP sides are 1..=16384, got {width}x{height}"
    );
    let mut bits = BitWriter::default();
    bits.put(0x2f, 8); // VP8L signature
    bits.put(width - 1, 14);
    bits.put(height - 1, 14);
    bits.put(u32::from(rgba[3] != 0xFF), 1); // alpha_is_used
    bits.put(0, 3); // version
    bits.put(0, 1); // no transform
    bits.put(0, 1); // no colour cache
    bits.put(0, 1); // no meta prefix codes
    // Green (+ length prefixes), red, blue, alpha: one 8-bit symbol each.
    for value in [rgba[1], rgba[0], rgba[2], rgba[3]] {
        bits.put(1, 1); // simple code
        bits.put(0, 1); // one symbol
        bits.put(1, 1); // the symbol takes 8 bits
        bits.put(u32::from(value), 8);
    }
    // Distance: one 1-bit symbol (never used: there are no backward references).
    bits.put(0b0001, 4);
    let data = bits.finish();

    let padded = data.len() + data.len() % 2;
    let mut out = Vec::with_capacity(20 + padded);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + padded) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBPVP8L");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// Width and height of a WebP image, from its first chunk.
pub(crate) fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WEBP" {
        return None;
    }
    let le = |i: usize, n: usize| -> Option<u32> {
        let bytes = b.get(i..i + n)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)),
        )
    };
    match b.get(12..16)? {
        b"VP8 " => {
            // Frame tag (3 bytes), start code, then 14-bit width and height.
            if b.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some((le(26, 2)? & 0x3fff, le(28, 2)? & 0x3fff))
        }
        b"VP8L" => {
            if *b.get(20)? != 0x2f {
                return None;
            }
            let v = le(21, 4)?;
            Some(((v & 0x3fff) + 1, ((v >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => Some((le(24, 3)? + 1, le(27, 3)? + 1)),
        _ => None,
    }
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `n` bits of `v`, least significant first (VP8L's bit order).
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= u64::from(v & ((1u32 << n) - 1)) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for (w, h) in [(1, 1), (512, 512), (512, 300), (16_384, 7)] {
            let webp = sample_webp(w, h, [10, 20, 30, 255]);
            assert_eq!(webp_size(&webp), Some((w, h)));
            assert_eq!(webp.len() % 2, 0);
            let riff_len = u32::from_le_bytes(webp[4..8].try_into().unwrap()) as usize;
            assert_eq!(riff_len + 8, webp.len());
        }
        assert_eq!(webp_size(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(
            webp_size(&crate::fake_telegram::sample_png(2, 2, [0; 3])),
            None
        );
    }
}
