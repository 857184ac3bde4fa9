//! Appending short byte strings (a field's `,"name":`, an id, a date) in a few loads and stores,
//! with no call.
//!
//! `Vec::extend_from_slice` of a length known only at run time is a call to `memcpy`; in wasm that
//! is a `memory.copy`, which wasmtime runs as a call out of the plugin's code into the runtime
//! (bounds checked, then `memmove`): some 60 instructions to copy 10 bytes. A normalized record
//! appended two such strings per field: 3 % of the plugin's instructions per page of issues
//! (`bench --bin instructions`: 3.48 -> 3.38 M). (A field's `,"name":` is now written as a fixed
//! block by the connector; its value still comes through here.) Natively `memcpy` is a few instructions already,
//! and the copy below a few more (2.10 -> 2.16 M): there `append` is `extend_from_slice`.

use std::mem::MaybeUninit;

/// Append `bytes` to `out`: in wasm by `append_short`, natively by `extend_from_slice`.
#[inline(always)]
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    if cfg!(target_arch = "wasm32") { append_short(out, bytes) } else { out.extend_from_slice(bytes) }
}

/// Append `bytes` to `out`. Up to 32 bytes, two overlapping loads and stores of 2, 4, 8 or 16 bytes
/// copy them; longer slices are copied by `extend_from_slice`.
#[inline(always)]
fn append_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    if n > 32 {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(32);
    let spare = out.spare_capacity_mut();
    match n {
        0 => {}
        1 => spare[0] = MaybeUninit::new(bytes[0]),
        2..=3 => copy_overlapping::<2>(spare, bytes),
        4..=7 => copy_overlapping::<4>(spare, bytes),
        8..=15 => copy_overlapping::<8>(spare, bytes),
        _ => copy_overlapping::<16>(spare, bytes),
    }
    // SAFETY: the capacity past the length holds at least 32 bytes (reserved above), of which the
    // first `n` were written just now, `n <= 32`.
    unsafe { out.set_len(out.len() + n) }
}

/// Copy `bytes` (`W..=2W` of them) to the start of `to` as its first and last `W` bytes.
#[inline(always)]
fn copy_overlapping<const W: usize>(to: &mut [MaybeUninit<u8>], bytes: &[u8]) {
    let n = bytes.len();
    to[..W].write_copy_of_slice(&bytes[..W]);
    to[n - W..n].write_copy_of_slice(&bytes[n - W..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_every_length_exactly_whatever_the_room_left() {
        for len in 0..=48 {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            for room in [0, 1, len, 33] {
                let mut out = Vec::with_capacity(3 + room);
                out.extend_from_slice(b"xyz");
                append_short(&mut out, &bytes);
                assert_eq!(&out[..3], b"xyz", "{len} bytes, {room} room");
                assert_eq!(&out[3..], &bytes[..], "{len} bytes, {room} room");
            }
        }
    }
}
