//! What a handler answers: a [`Reply`] (status, extra headers, JSON bytes) or an [`ApiError`]
//! rendered with the body GitLab uses for it.
//!
//! GitLab has two error body shapes: `{"message": "..."}` for resource and permission errors
//! (`401 Unauthorized`, `403 Forbidden`, `404 Project Not Found`) and `{"error": "..."}` for
//! parameter validation and unknown routes (`per_page is invalid`, `404 Not Found`).

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};

/// A successful (or error) answer before it becomes an HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
    /// `body` is already gzip-compressed (see `crate::cache`): `crate::encoding` only labels it.
    pub gzipped: bool,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: Vec<u8>) -> Self {
        Self { status: StatusCode::OK, headers: Vec::new(), body: body.into(), gzipped: false }
    }

    /// Turns the reply into an HTTP response (`Content-Type: application/json`).
    pub fn into_response(self, request_id: u64) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        if self.gzipped {
            response.extensions_mut().insert(crate::encoding::Gzipped);
        }
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0, private, must-revalidate"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Ok(v) = HeaderValue::from_str(&format!("01SIM{request_id:021}")) {
            headers.insert(HeaderName::from_static("x-request-id"), v);
        }
        for (name, value) in self.headers {
            // Values are built from the request's own (valid) header and query text.
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// The errors the API answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400 `{"error": msg}` (a query parameter GitLab would reject).
    BadRequest(String),
    /// 400 `{"message": "400 Bad request - msg"}` (a combination of parameters GitLab refuses).
    BadRequestMessage(String),
    /// 401 `{"message":"401 Unauthorized"}`.
    Unauthorized,
    /// 403 `{"message":"403 Forbidden"}`.
    Forbidden,
    /// 404 `{"message":"404 <what> Not Found"}`.
    NotFound(&'static str),
    /// 404 `{"error":"404 Not Found"}` (no such route).
    NoRoute,
    /// 405 `{"error":"405 Method Not Allowed"}`.
    MethodNotAllowed,
    /// 405 for keyset pagination on an unsupported ordering.
    KeysetUnsupported,
}

impl ApiError {
    pub fn invalid(param: &str) -> Self {
        ApiError::BadRequest(format!("{param} is invalid"))
    }

    pub fn bad_value(param: &str) -> Self {
        ApiError::BadRequest(format!("{param} does not have a valid value"))
    }

    pub fn reply(&self) -> Reply {
        let (status, key, text) = match self {
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, "error", msg.clone()),
            ApiError::BadRequestMessage(msg) => {
                (StatusCode::BAD_REQUEST, "message", format!("400 Bad request - {msg}"))
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "message", "401 Unauthorized".to_owned()),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "message", "403 Forbidden".to_owned()),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "message", format!("404 {what} Not Found")),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "error", "404 Not Found".to_owned()),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "error", "405 Method Not Allowed".to_owned())
            }
            ApiError::KeysetUnsupported => (
                StatusCode::METHOD_NOT_ALLOWED,
                "error",
                "Keyset pagination is not yet available for this type of request".to_owned(),
            ),
        };
        let mut body = serde_json::Map::new();
        body.insert(key.to_owned(), serde_json::Value::String(text));
        Reply {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
            gzipped: false,
        }
    }
}
