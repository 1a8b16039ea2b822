//! Deterministic message contents: a splitmix64 generator, seeds made of a few numbers,
//! the bytes of a message from its key, the check that names the first wrong byte, and a
//! 64-bit checksum. Both ends derive the same bytes from the same key, so nothing but the
//! key travels out of band.

use super::R;

/// One step of splitmix64: advances `x` and returns the next output.
pub fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed from a few numbers.
pub fn seed(parts: &[u64]) -> u64 {
    let mut s = 0x1234_5678_9ABC_DEF0u64;
    for &p in parts {
        s ^= p;
        splitmix(&mut s);
    }
    s
}

/// A key from three numbers (another mixing than [`seed`]; `tocsin-soak`'s keys).
pub fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut s = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ 0xD1B5_4A32_D192_ED03;
    splitmix(&mut s) ^ splitmix(&mut s)
}

/// A small random-number generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix(&mut self.0)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi_incl`.
    pub fn range(&mut self, lo: usize, hi_incl: usize) -> usize {
        lo + self.below((hi_incl - lo + 1) as u64) as usize
    }
}

/// Fills `buf` with the content of message `key`: the splitmix64 stream seeded with `key`,
/// little-endian, truncated to the length.
pub fn fill(buf: &mut [u8], key: u64) {
    let mut s = key;
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let w = splitmix(&mut s).to_le_bytes();
    rest.copy_from_slice(&w[..rest.len()]);
}

/// `len` bytes of the content of message `key` (as [`fill`]).
pub fn pattern(key: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(&mut v, key);
    v
}

/// Checks that `buf` holds the content of message `key`; on mismatch, names the first byte
/// (the error is returned, not reported: the caller adds context).
pub fn check(buf: &[u8], key: u64) -> R {
    let mut s = key;
    let mut chunks = buf.chunks_exact(8);
    for (i, c) in (&mut chunks).enumerate() {
        let w = splitmix(&mut s).to_le_bytes();
        if c != w {
            let j = c
                .iter()
                .zip(w.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "content differs at byte {} of {}: got {:#04x}, expected {:#04x}",
                i * 8 + j,
                buf.len(),
                c[j],
                w[j]
            ));
        }
    }
    let rest = chunks.remainder();
    let w = splitmix(&mut s).to_le_bytes();
    if rest != &w[..rest.len()] {
        return Err(format!(
            "content differs in the last {} bytes of {}",
            rest.len(),
            buf.len()
        ));
    }
    Ok(())
}

/// A 64-bit checksum of `b` (FNV-style over 8-byte words, length included).
pub fn checksum(b: &[u8]) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64 ^ b.len() as u64;
    let mut it = b.chunks_exact(8);
    for c in &mut it {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    }
    for &x in it.remainder() {
        h = (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_check_and_pattern_agree() {
        for len in [0, 1, 7, 8, 9, 100] {
            let p = pattern(42, len);
            let mut b = vec![0; len];
            fill(&mut b, 42);
            assert_eq!(p, b);
            assert!(check(&b, 42).is_ok());
            if len > 0 {
                b[len - 1] ^= 1;
                assert!(check(&b, 42).is_err());
                assert_ne!(checksum(&b), checksum(&p));
            }
        }
        assert_ne!(checksum(&[]), checksum(&[0]));
    }

    #[test]
    fn rng_range_is_inclusive() {
        let mut r = Rng(seed(&[1, 2]));
        let v: Vec<usize> = (0..1000).map(|_| r.range(3, 5)).collect();
        assert!(v.iter().all(|x| (3..=5).contains(x)));
        assert!(v.contains(&3) && v.contains(&5));
    }
}
