//! Checking the multi-byte characters of a string as the scanner meets them.
//!
//! The scanner reads a body as bytes, not as a `str` checked beforehand: outside strings JSON is
//! ASCII, which the grammar checks byte by byte anyway, and inside them a plain run of ASCII is found
//! 16 bytes at a time (`runs`), stopping at the first byte above 0x7f. What starts there is checked
//! here, one character at a time, up to the next ASCII byte. A whole-body check first (simdutf8,
//! SIMD) cost the plugin 0.25 M of the 3.85 M instructions of a page of 100 issues in wasm; checked
//! here, the page costs 3.80 M, with its 789 runs of non-ASCII (names, emoji, sentences in other
//! scripts), and 3.65 M with the same bytes in ASCII.

/// The end of the run of multi-byte characters at `at` (the index of the first ASCII byte after
/// it, or the text's length), or `Err` with the index of the first character that is not UTF-8.
#[inline]
pub(crate) fn multibyte_run_end(bytes: &[u8], mut at: usize) -> Result<usize, usize> {
    while let Some(&lead) = bytes.get(at) {
        if lead <= 0x7f {
            return Ok(at);
        }
        // The well-formed sequences (The Unicode Standard, table 3-7): the first byte gives the
        // length and the range of the second; every other byte is 0x80..=0xbf. This leaves out
        // overlong forms, surrogates and what is above U+10FFFF, as `str` does.
        let (width, low, high) = match lead {
            0xc2..=0xdf => (2, 0x80, 0xbf),
            0xe0 => (3, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
            0xed => (3, 0x80, 0x9f),
            0xf0 => (4, 0x90, 0xbf),
            0xf1..=0xf3 => (4, 0x80, 0xbf),
            0xf4 => (4, 0x80, 0x8f),
            _ => return Err(at),
        };
        let within = |i: usize, low: u8, high: u8| bytes.get(at + i).is_some_and(|&b| low <= b && b <= high);
        if !within(1, low, high) || (width > 2 && !within(2, 0x80, 0xbf)) || (width > 3 && !within(3, 0x80, 0xbf)) {
            return Err(at);
        }
        at += width;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that start, continue or break characters, and their edges.
    const EDGES: [u8; 16] =
        [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xf4, 0xff];

    /// What `std` says of `bytes`, in `multibyte_run_end`'s terms, when every byte is above 0x7f.
    fn by_std(bytes: &[u8]) -> Result<usize, usize> {
        std::str::from_utf8(bytes).map(|_| bytes.len()).map_err(|e| e.valid_up_to())
    }

    fn check(bytes: &[u8]) {
        if bytes.iter().all(|&b| b > 0x7f) {
            assert_eq!(multibyte_run_end(bytes, 0), by_std(bytes), "{bytes:x?}");
            // An ASCII byte after it ends the run, and changes nothing before it.
            let mut then_ascii = bytes.to_vec();
            then_ascii.push(b'"');
            assert_eq!(multibyte_run_end(&then_ascii, 0), by_std(bytes), "{then_ascii:x?}");
        } else if let Some(ascii) = bytes.iter().position(|&b| b <= 0x7f) {
            // The run ends at its first ASCII byte, unless a character before it is broken.
            let expected = by_std(&bytes[..ascii]);
            assert_eq!(multibyte_run_end(bytes, 0), expected, "{bytes:x?}");
        }
    }

    #[test]
    fn every_sequence_of_two_bytes_is_judged_as_std_judges_it() {
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                check(&[first, second]);
            }
        }
    }

    #[test]
    fn longer_sequences_are_judged_as_std_judges_them() {
        for first in 0xc0..=0xffu8 {
            for second in EDGES {
                for third in EDGES {
                    check(&[first, second, third]);
                    for fourth in EDGES {
                        check(&[first, second, third, fourth]);
                    }
                }
            }
        }
        for text in ["é", "中文", "🚀", "👨‍👩‍👧", "üñï", "بيئة"] {
            let bytes = text.as_bytes();
            assert_eq!(multibyte_run_end(bytes, 0), Ok(bytes.len()));
            // Cut anywhere inside its last character: broken there.
            let last = text.char_indices().last().unwrap().0;
            for cut in last + 1..bytes.len() {
                assert_eq!(multibyte_run_end(&bytes[..cut], 0), Err(last), "{text} cut at {cut}");
            }
        }
    }
}
