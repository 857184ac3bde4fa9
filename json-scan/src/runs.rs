//! Finding where a run of bytes of one kind ends: a JSON string's plain ASCII characters (up to its
//! closing quote, an escape, a control character, which JSON does not allow unescaped, or a byte of
//! a multi-byte character, which the scanner then checks is UTF-8), a number's digits.
//!
//! Strings are most of a GitLab page (titles, descriptions, URLs, names), so bytes are classified 16
//! at a time: SSE2 on x86_64 (every such CPU has it), simd128 in wasm (which wasmtime compiles to the
//! same instructions), and byte by byte elsewhere.
//!
//! Most runs end within their first 16 bytes (a state, a date, an id), so that first look is made
//! without a loop, and only longer runs go on in one, 32 bytes a turn. In the plugin every loop turn
//! and every function call costs an epoch check (the host's deadlines): a loop per string and per
//! number was a quarter of the scanner's time in wasm.

/// The first index from `from` on whose byte is `"`, `\`, below 0x20 or above 0x7f; `bytes.len()`
/// when none is.
#[inline(always)]
pub(crate) fn next_special(bytes: &[u8], from: usize) -> usize {
    match bytes.get(from..from + 16) {
        Some(chunk) => match special_mask(chunk.try_into().expect("16 bytes")) {
            0 => next_special_after_16(bytes, from + 16),
            mask => from + mask.trailing_zeros() as usize,
        },
        None => next_bytewise(bytes, from, is_special),
    }
}

/// [`next_special`] past a string's first 16 bytes.
#[inline(never)]
fn next_special_after_16(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 32) {
        let (low, high) = chunk.split_at(16);
        let mask =
            special_mask(low.try_into().expect("16 bytes")) | special_mask(high.try_into().expect("16 bytes")) << 16;
        if mask != 0 {
            return at + mask.trailing_zeros() as usize;
        }
        at += 32;
    }
    next_bytewise(bytes, at, is_special)
}

/// The first index from `from` on whose byte is not an ASCII digit; `bytes.len()` when all are.
#[inline(always)]
pub(crate) fn digits_end(bytes: &[u8], from: usize) -> usize {
    match bytes.get(from..from + 16) {
        Some(chunk) => match non_digit_mask(chunk.try_into().expect("16 bytes")) {
            0 => next_bytewise(bytes, from + 16, |b| !b.is_ascii_digit()),
            mask => from + mask.trailing_zeros() as usize,
        },
        None => next_bytewise(bytes, from, |b| !b.is_ascii_digit()),
    }
}

/// The first index from `from` on whose byte is `wanted`, byte by byte; `bytes.len()` when none is.
fn next_bytewise(bytes: &[u8], from: usize, wanted: impl Fn(u8) -> bool) -> usize {
    let mut at = from;
    while let Some(&byte) = bytes.get(at) {
        if wanted(byte) {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

/// Read as signed, the bytes below this are exactly the special ones but `"` and `\\`: the control
/// characters (0x00–0x1f, 0 to 31) and the bytes above 0x7f (-128 to -1). One comparison where an
/// unsigned "below 0x20" and the high bit took three or four instructions.
#[cfg_attr(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))), allow(dead_code))]
const OUTSIDE_ASCII: i8 = 0x20;

fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || !(0x20..=0x7f).contains(&byte)
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: the load reads the 16 bytes of `chunk` (unaligned); SSE2, which all of these need, is
    // part of every x86_64 CPU.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // A control character or a byte above 0x7f, in one signed comparison (see `OUTSIDE_ASCII`).
        let outside = _mm_cmplt_epi8(v, _mm_set1_epi8(OUTSIDE_ASCII));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), outside)) as u32
    }
}

/// Bit `i` set when `chunk[i]` is not an ASCII digit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn non_digit_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
    };
    // SAFETY: as in `special_mask`.
    unsafe {
        // A digit less '0' is 0..=9 unsigned: min(d, 9) == d.
        let d = _mm_sub_epi8(_mm_loadu_si128(chunk.as_ptr().cast()), _mm_set1_epi8(b'0' as i8));
        !(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) as u32) & 0xffff
    }
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::wasm32::{i8x16_lt, i8x16_splat, u8x16_bitmask, u8x16_eq, u8x16_splat, v128_load, v128_or};
    // SAFETY: reads the 16 bytes of `chunk`; a wasm load needs no alignment.
    let v = unsafe { v128_load(chunk.as_ptr().cast()) };
    let quote = u8x16_eq(v, u8x16_splat(b'"'));
    let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
    // A control character or a byte above 0x7f, in one signed comparison (see `OUTSIDE_ASCII`).
    let outside = i8x16_lt(v, i8x16_splat(OUTSIDE_ASCII));
    u32::from(u8x16_bitmask(v128_or(v128_or(quote, backslash), outside)))
}

/// Bit `i` set when `chunk[i]` is not an ASCII digit.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn non_digit_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::wasm32::{u8x16_bitmask, u8x16_ge, u8x16_splat, u8x16_sub, v128_load};
    // SAFETY: as in `special_mask`.
    let v = unsafe { v128_load(chunk.as_ptr().cast()) };
    // A digit less '0' is 0..=9 unsigned.
    u32::from(u8x16_bitmask(u8x16_ge(u8x16_sub(v, u8x16_splat(b'0')), u8x16_splat(10))))
}

/// Bit `i` set when `chunk[i]` is special.
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn special_mask(chunk: &[u8; 16]) -> u32 {
    special_mask_bytewise(chunk)
}

/// Bit `i` set when `chunk[i]` is not an ASCII digit.
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn non_digit_mask(chunk: &[u8; 16]) -> u32 {
    non_digit_mask_bytewise(chunk)
}

/// Bit `i` set when `chunk[i]` is special, byte by byte: the fallback, and the reference the SIMD
/// versions are tested against.
#[cfg_attr(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn special_mask_bytewise(chunk: &[u8; 16]) -> u32 {
    mask_bytewise(chunk, is_special)
}

/// Bit `i` set when `chunk[i]` is not an ASCII digit, byte by byte (as `special_mask_bytewise`).
#[cfg_attr(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn non_digit_mask_bytewise(chunk: &[u8; 16]) -> u32 {
    mask_bytewise(chunk, |b| !b.is_ascii_digit())
}

#[cfg_attr(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn mask_bytewise(chunk: &[u8; 16], wanted: impl Fn(u8) -> bool) -> u32 {
    chunk.iter().enumerate().fold(0, |mask, (i, &byte)| mask | (u32::from(wanted(byte)) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_byte_is_found_at_every_place() {
        for special in [b'"', b'\\', 0x00, 0x0a, 0x1f, 0x80, 0xc3, 0xff] {
            // Within the first look, at each place of the 32-byte turns and of the tail after them.
            for len in [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 70, 80, 81, 100] {
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
    fn a_run_of_digits_ends_at_the_first_other_byte() {
        for len in [1, 2, 15, 16, 17, 18, 31, 32, 33, 40] {
            for end in 0..=len {
                for stop in [b'.', b'e', b',', b'}', b'/', b':', b'a', 0x00, 0xff] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
                    if end < len {
                        bytes[end] = stop;
                    }
                    assert_eq!(digits_end(&bytes, 0), end, "{stop:#x} at {end} of {len}");
                }
            }
        }
    }

    #[test]
    fn the_simd_digit_mask_is_the_bytewise_one() {
        assert_same_masks(non_digit_mask, non_digit_mask_bytewise, [b'0', b'9', b'a', b'/', b':', 0x80]);
    }

    /// `simd` and `bytewise` agree on every byte value at every place, among neighbours (`fills`)
    /// that are and are not what they look for.
    fn assert_same_masks(simd: fn(&[u8; 16]) -> u32, bytewise: fn(&[u8; 16]) -> u32, fills: [u8; 6]) {
        for byte in 0..=255u8 {
            for at in 0..16 {
                for fill in fills {
                    let mut chunk = [fill; 16];
                    chunk[at] = byte;
                    assert_eq!(simd(&chunk), bytewise(&chunk), "{byte:#x} at {at} among {fill:#x}");
                }
            }
        }
    }

    #[test]
    fn the_simd_mask_is_the_bytewise_one() {
        assert_same_masks(special_mask, special_mask_bytewise, [b'a', b'"', 0x80, 0x1f, 0x20, 0xff]);
    }

    #[test]
    fn the_bytes_around_the_specials_are_not_special() {
        // 0x20 (space) to 0x7f, but `"` and `\`.
        let plain: Vec<u8> = (0x20..=0x7fu8).filter(|&b| b != b'"' && b != b'\\').collect();
        assert_eq!(next_special(&plain, 0), plain.len());
        // A multi-byte character's first byte is where a plain run ends.
        let text = "hello world, here is some unicode: ünïcode 🚀";
        assert_eq!(next_special(text.as_bytes(), 0), text.find('ü').unwrap());
    }
}
