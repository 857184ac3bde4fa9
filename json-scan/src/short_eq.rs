//! Comparing short byte strings (field names, `true`, `null`) in a few loads, with no loop and no call.
//!
//! `a == b` on slices calls `memcmp`, which in wasm is compiled code stepping a byte at a time, an
//! epoch check (the host's deadlines) at every step: a page's field names and literals cost the
//! plugin more in `memcmp` than the scanner spent finding its strings.

/// Whether `a` and `b` hold the same bytes. Up to 32 bytes (GitLab's longest field names are 22),
/// two to four overlapping loads from each decide it; longer slices are compared by `==`.
#[inline(always)]
pub fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word32(a, 0) == word32(b, 0) && word32(a, n - 4) == word32(b, n - 4),
        8..=16 => word64(a, 0) == word64(b, 0) && word64(a, n - 8) == word64(b, n - 8),
        17..=32 => [0, 8, n - 16, n - 8].iter().all(|&at| word64(a, at) == word64(b, at)),
        _ => a == b,
    }
}

#[inline(always)]
fn word32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

#[inline(always)]
fn word64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_exactly_when_every_byte_is() {
        for len in 0..=48 {
            let a: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(short_eq(&a, &a.clone()), "{len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!short_eq(&a, &b), "byte {at} of {len}");
            }
            assert!(!short_eq(&a, &a[..len.saturating_sub(1)]) || len == 0);
            let mut longer = a.clone();
            longer.push(b'a');
            assert!(!short_eq(&a, &longer));
        }
    }
}
