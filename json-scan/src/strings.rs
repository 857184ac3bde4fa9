//! Finding where a JSON string's plain run of characters stops: at its closing quote, an escape, or
//! a control character (which JSON does not allow unescaped).
//!
//! Strings are most of a GitLab page (titles, descriptions, URLs, names), so they are searched 16
//! bytes at a time: SSE2 on x86_64 (every such CPU has it), simd128 in wasm (which wasmtime compiles
//! to the same instructions), and a byte loop elsewhere. Past the last whole 16 bytes, byte by byte.

/// The first index from `from` on whose byte is `"`, `\` or below 0x20; `bytes.len()` when none is.
pub(crate) fn next_special(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 16) {
        let mask = special_mask(chunk.try_into().expect("16 bytes"));
        if mask != 0 {
            return at + mask.trailing_zeros() as usize;
        }
        at += 16;
    }
    while let Some(&byte) = bytes.get(at) {
        if is_special(byte) {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(target_arch = "x86_64")]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: the load reads the 16 bytes of `chunk` (unaligned); SSE2, which all of these need, is
    // part of every x86_64 CPU.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20 unsigned: min(v, 0x1f) == v.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, v128_load, v128_or};
    // SAFETY: reads the 16 bytes of `chunk`; a wasm load needs no alignment.
    let v = unsafe { v128_load(chunk.as_ptr().cast()) };
    let quote = u8x16_eq(v, u8x16_splat(b'"'));
    let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
    let control = u8x16_lt(v, u8x16_splat(0x20));
    u32::from(u8x16_bitmask(v128_or(v128_or(quote, backslash), control)))
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    special_mask_bytewise(chunk)
}

/// Bit `i` set when `chunk[i]` is special, byte by byte: the fallback, and the reference the SIMD
/// versions are tested against.
#[cfg_attr(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn special_mask_bytewise(chunk: &[u8; 16]) -> u32 {
    chunk.iter().enumerate().fold(0, |mask, (i, &byte)| mask | (u32::from(is_special(byte)) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_byte_is_found_at_every_place() {
        for special in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
            for len in [1, 15, 16, 17, 31, 32, 33, 70] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert_eq!(next_special(&bytes, 0), at, "byte {special:#x} at {at} of {len}");
                    assert_eq!(next_special(&bytes, at), at);
                    assert_eq!(next_special(&bytes, at + 1), len);
                }
            }
        }
    }

    #[test]
    fn the_simd_mask_is_the_bytewise_one() {
        // Every byte value at every place, among neighbours that are and are not special.
        for byte in 0..=255u8 {
            for at in 0..16 {
                for fill in [b'a', b'"', 0x80, 0x1f, 0x20, 0xff] {
                    let mut chunk = [fill; 16];
                    chunk[at] = byte;
                    assert_eq!(
                        special_mask(&chunk),
                        special_mask_bytewise(&chunk),
                        "{byte:#x} at {at} among {fill:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_bytes_around_the_specials_are_not_special() {
        // 0x20 (space), 0x7f, and bytes of multi-byte characters (0x80..): signed comparisons would
        // take the high ones for control characters.
        let plain: Vec<u8> = (0x20..=0xffu8).filter(|&b| b != b'"' && b != b'\\').collect();
        assert_eq!(next_special(&plain, 0), plain.len());
        let text = "héllo wörld, ünïcode 🚀 everywhere";
        assert_eq!(next_special(text.as_bytes(), 0), text.len());
    }
}
