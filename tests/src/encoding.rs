//! gzip on the way out, as GitLab's nginx does it: a JSON answer of at least [`MIN_BYTES`] is
//! compressed when the request's `Accept-Encoding` accepts gzip (and not with `q=0`).

use std::io::Write;

use axum::body::Body;
use axum::http::{HeaderValue, Response, header, request::Parts};
use flate2::Compression;
use flate2::write::GzEncoder;

/// Smaller answers go as they are.
const MIN_BYTES: usize = 256;

/// Whether `accept_encoding` (an `Accept-Encoding` value) accepts gzip.
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let zero = parts.any(|p| p.replace(' ', "").trim_start_matches("q=").parse::<f32>().is_ok_and(|q| q == 0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
    })
}

/// Marks a response whose body is already gzip-compressed (an answer kept by `crate::cache`):
/// [`gzip`] gives it the headers of a compressed answer and leaves the body alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gzipped;

/// Whether the request accepts a gzip-compressed answer.
pub(crate) fn accepted(parts: &Parts) -> bool {
    parts.headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| v.to_str().is_ok_and(accepts_gzip))
}

/// `body` compressed, or `None` when it is too small to be worth it (or compression failed).
pub(crate) fn compress(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < MIN_BYTES {
        return None;
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 6), Compression::fast());
    encoder.write_all(body).and_then(|()| encoder.finish()).ok()
}

/// `response`, gzip-compressed if the request accepts it and it is JSON worth compressing.
pub(crate) async fn gzip(parts: &Parts, response: Response<Body>) -> Response<Body> {
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !accepted(parts) || !json || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let body = if head.extensions.remove::<Gzipped>().is_some() {
        body
    } else {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        match compress(&bytes) {
            Some(compressed) => Body::from(compressed),
            None => return Response::from_parts(head, Body::from(bytes)),
        }
    };
    head.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    head.headers.insert(header::VARY, HeaderValue::from_static("Origin, Accept-Encoding"));
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, body)
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn reads_accept_encoding() {
        for yes in ["gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8", "*", "GZIP"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "identity", "br", "gzip;q=0", "gzip; q=0.0"] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
