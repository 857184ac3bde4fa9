//! A gzip response body decoded as it arrives, straight into the frames the plugin reads.
//!
//! ```text
//!  compressed frames (hyper) ──► input ──► inflate (zlib-rs: header, CRC-32 and length checked)
//!                                            └─► output: one frame per input frame, up to FRAME_BYTES
//! ```
//!
//! zlib-rs writes the decoded bytes into the spare room of the very `Vec` handed on as the frame: no
//! intermediate buffer, no copy, no `Vec` grown by doubling. A frame holds what one compressed frame
//! decodes to, up to [`FRAME_BYTES`], so that a page arrives in one large frame (or a few) and the plugin
//! reads it in one call (or a few). What the body may decode to in all is bounded
//! ([`MAX_DECODED_BYTES`]: decompression bombs); a stream cut short, corrupt, or followed by more
//! bytes is an error naming what was wrong.

use bytes::{Buf, Bytes};
use flate2::{Decompress, FlushDecompress, Status};
use wasmtime_wasi_http::Error as HttpError;

/// The most a gzip body may grow to once decoded (a guard against decompression bombs).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;
/// The most one decoded frame holds: what the connector reads at once. A page of 100 GitLab records
/// (~270 KB) then comes whole in one frame, read in one call, where frames of 256 KB split it in two
/// and the connector grew its buffer (a copy of the first in wasm) to append the second.
const FRAME_BYTES: usize = 1 << 20;
/// What a frame reserves at least (a small answer is not given a large buffer).
const FRAME_MIN_BYTES: usize = 16 << 10;
/// The window gzip bodies are decoded with: 2^15, the largest deflate allows.
const WINDOW_BITS: u8 = 15;

/// Streaming gzip decoding, a frame at a time.
pub struct Gunzip {
    inflate: Decompress,
    /// Compressed bytes not decoded yet.
    pending: Bytes,
    /// What a decoded frame reserves: eight times the last compressed frame (JSON shrinks five to
    /// ten times), within [`FRAME_MIN_BYTES`, `FRAME_BYTES`].
    reserve: usize,
    /// Whether the last call may have left decoded bytes inside the decoder (its output was full).
    more_inside: bool,
    /// Whether the gzip stream's end (with its CRC-32 and length checked) was reached.
    ended: bool,
    decoded: u64,
}

impl Default for Gunzip {
    fn default() -> Self {
        Gunzip {
            inflate: Decompress::new_gzip(WINDOW_BITS),
            pending: Bytes::new(),
            reserve: FRAME_MIN_BYTES,
            more_inside: false,
            ended: false,
            decoded: 0,
        }
    }
}

impl Gunzip {
    /// Take the next compressed frame (after [`Gunzip::output`] gave `None`: all before is decoded).
    pub fn input(&mut self, data: Bytes) {
        debug_assert!(self.pending.is_empty());
        self.reserve = data.len().saturating_mul(8).clamp(FRAME_MIN_BYTES, FRAME_BYTES);
        self.pending = data;
    }

    /// The next decoded frame, if the input so far yields one.
    pub fn output(&mut self) -> Result<Option<Bytes>, HttpError> {
        if self.pending.is_empty() && !self.more_inside {
            return Ok(None);
        }
        if self.ended {
            return Err(corrupt("bytes follow the end of the gzip stream"));
        }
        let mut out = Vec::with_capacity(self.reserve);
        loop {
            let (read, wrote) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(&self.pending, &mut out, FlushDecompress::None)
                .map_err(|e| corrupt(&e.to_string()))?;
            self.pending.advance((self.inflate.total_in() - read) as usize);
            self.more_inside = out.len() == out.capacity();
            let progress = self.inflate.total_in() > read || out.len() > wrote;
            if status == Status::StreamEnd {
                self.ended = true;
                self.more_inside = false;
                if !self.pending.is_empty() {
                    return Err(corrupt("bytes follow the end of the gzip stream"));
                }
            }
            if self.ended || self.more_inside || self.pending.is_empty() || !progress {
                break;
            }
        }
        self.decoded += out.len() as u64;
        if self.decoded > MAX_DECODED_BYTES {
            return Err(HttpError::HttpResponseBodySize(Some(self.decoded)));
        }
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }

    /// At the end of the body, once [`Gunzip::output`] gave `None`: the gzip stream must have ended.
    pub fn finish(&self) -> Result<(), HttpError> {
        match self.ended || (self.inflate.total_in() == 0 && self.decoded == 0) {
            true => Ok(()),
            false => Err(corrupt("the body ends before the gzip stream does")),
        }
    }
}

fn corrupt(what: &str) -> HttpError {
    HttpError::HttpResponseContentCoding(Some(format!("the gzip body is corrupt or cut short: {what}")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::gate::tests::gzip;

    /// Decode `zipped` handed over in pieces of `piece` bytes: the frames, then what `finish` says.
    fn decode(zipped: &[u8], piece: usize) -> (Vec<Bytes>, Result<(), HttpError>) {
        let mut gunzip = Gunzip::default();
        let mut frames = Vec::new();
        for chunk in zipped.chunks(piece) {
            gunzip.input(Bytes::copy_from_slice(chunk));
            loop {
                match gunzip.output() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(error) => return (frames, Err(error)),
                }
            }
        }
        (frames, gunzip.finish())
    }

    /// A page-like text: records whose fields repeat, as GitLab's do, with some variety.
    fn page(records: usize) -> Vec<u8> {
        let mut text = b"[".to_vec();
        for n in 0..records {
            let record = format!(
                r#"{{"id":{n},"title":"issue number {n}","description":"{}","state":"opened"}},"#,
                "words ".repeat(n % 97)
            );
            text.extend_from_slice(record.as_bytes());
        }
        text.push(b']');
        text
    }

    #[test]
    fn a_body_decodes_alike_whatever_pieces_it_arrives_in_and_in_bounded_frames() {
        let json = page(3000);
        let zipped = gzip(&json);
        for piece in [1, 7, 4096, 65536, zipped.len()] {
            let (frames, end) = decode(&zipped, piece);
            end.unwrap();
            assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= FRAME_BYTES), "piece {piece}");
            assert_eq!(frames.concat(), json, "piece {piece}");
        }
        // Whole, it comes in large frames (each but the last filled to what it reserved).
        let (frames, _) = decode(&zipped, zipped.len());
        let (last, full) = frames.split_last().unwrap();
        assert!(full.iter().all(|f| f.len() >= 64 << 10), "{:?}", frames.iter().map(Bytes::len).collect::<Vec<_>>());
        assert!(!last.is_empty());
    }

    #[test]
    fn a_stream_cut_short_anywhere_is_an_error() {
        let json = page(200);
        let zipped = gzip(&json);
        for cut in [1, 10, zipped.len() / 2, zipped.len() - 8, zipped.len() - 1] {
            let (_, end) = decode(&zipped[..cut], 512);
            let error = end.unwrap_err();
            assert!(
                matches!(&error, HttpError::HttpResponseContentCoding(Some(m)) if m.contains("ends before")),
                "cut at {cut}: {error:?}"
            );
        }
    }

    #[test]
    fn a_wrong_checksum_or_bytes_after_the_end_are_errors() {
        let json = page(200);
        let mut zipped = gzip(&json);
        let crc = zipped.len() - 8;
        zipped[crc] ^= 1;
        let (_, end) = decode(&zipped, 4096);
        assert!(matches!(end, Err(HttpError::HttpResponseContentCoding(_))), "{end:?}");

        let mut zipped = gzip(&json);
        zipped.extend_from_slice(b"more");
        let (_, end) = decode(&zipped, 4096);
        assert!(
            matches!(&end, Err(HttpError::HttpResponseContentCoding(Some(m))) if m.contains("follow the end")),
            "{end:?}"
        );
        let (_, end) = decode(b"not gzip at all", 4096);
        assert!(matches!(end, Err(HttpError::HttpResponseContentCoding(_))), "{end:?}");
    }

    #[test]
    fn a_body_that_decodes_past_the_limit_is_stopped() {
        // 300 MiB of zeros: about 300 KiB compressed.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            encoder.write_all(&zeros).unwrap();
        }
        let zipped = encoder.finish().unwrap();
        let (frames, end) = decode(&zipped, 1 << 20);
        assert!(matches!(end, Err(HttpError::HttpResponseBodySize(_))), "{end:?}");
        let decoded: usize = frames.iter().map(Bytes::len).sum();
        assert!(decoded as u64 <= MAX_DECODED_BYTES);
    }

    #[test]
    fn an_empty_body_is_no_gzip_stream_and_no_error() {
        let (frames, end) = decode(b"", 1);
        assert!(frames.is_empty());
        end.unwrap();
    }
}
