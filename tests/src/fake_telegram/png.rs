//! A tiny but genuine PNG encoder, so tests can inject photos and upload them through sendPhoto
//! (which, like Telegram, refuses bytes that are not an image) without shipping binary fixtures.

/// A valid `width`×`height` RGB PNG of one solid colour (uncompressed deflate blocks).
pub fn sample_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let row_len = 1 + 3 * width as usize;
    let mut raw = Vec::with_capacity(row_len * height as usize);
    let row: Vec<u8> = std::iter::once(0) // filter: none
        .chain(rgb.iter().copied().cycle().take(3 * width as usize))
        .collect();
    for _ in 0..height {
        raw.extend_from_slice(&row);
    }
    // zlib stream of stored (uncompressed) deflate blocks.
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in chunks.iter().enumerate() {
        z.push(u8::from(i + 1 == chunks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    if chunks.is_empty() {
        z.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &z[..]), (b"IEND", &[][..])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in data {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_checksums() {
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(super::adler32(b"Wikipedia"), 0x11E6_0398);
        let png = super::sample_png(3, 2, [1, 2, 3]);
        assert_eq!(
            crate::fake_telegram::methods::image_size(&png),
            Some((3, 2))
        );
    }
}
