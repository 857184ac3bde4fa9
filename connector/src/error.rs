//! The connector's errors, one variant per thing a host can do about it (mirrors `connector-error`).

use std::fmt;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorError {
    /// The request is wrong; retrying it cannot succeed.
    InvalidRequest(String),
    /// The object or scope is known but cannot be read (yet).
    Unsupported(String),
    /// HTTP 401: the credential was refused.
    Unauthorized(String),
    /// HTTP 403: the credential may not read this.
    Forbidden(String),
    /// HTTP 404: the scope or object does not exist or is hidden.
    NotFound(String),
    /// HTTP 429: slow down, for this many seconds when the upstream said.
    RateLimited { retry_after_seconds: Option<u32>, message: String },
    /// HTTP 5xx, or a body the connector cannot read.
    Upstream(String),
    /// The request did not complete (refused by the host, connection failed, timed out).
    Transport(String),
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectorError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            ConnectorError::Unsupported(m) => write!(f, "unsupported: {m}"),
            ConnectorError::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            ConnectorError::Forbidden(m) => write!(f, "forbidden: {m}"),
            ConnectorError::NotFound(m) => write!(f, "not found: {m}"),
            ConnectorError::RateLimited { retry_after_seconds: Some(s), message } => {
                write!(f, "rate limited (retry after {s} s): {message}")
            }
            ConnectorError::RateLimited { retry_after_seconds: None, message } => {
                write!(f, "rate limited: {message}")
            }
            ConnectorError::Upstream(m) => write!(f, "upstream error: {m}"),
            ConnectorError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for ConnectorError {}

/// Shorthand for an invalid-request error.
pub fn invalid(message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest(message.into())
}
