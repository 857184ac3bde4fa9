//! The tenant's GitLab credential: where it comes from, how the gate gets the header that carries it,
//! and how it stays out of every log, error and output.
//!
//! ```text
//!  CredentialSource (command line, flow file)
//!     ├─ env { var } / file { path } ──► a static token, read once
//!     └─ oauth { client_id, token_file } ──► oauth::OAuthSession over the token file that
//!                                            `host auth login` wrote (refreshed, rotated, persisted)
//!  open(source, base_url) ──► CredentialProvider ──► the gate: header() before each request to the
//!                                                     tenant's GitLab, refresh_after_unauthorized() after a 401
//! ```
//!
//! Every token is a [`Secret`] from the moment it is read: it prints as `[redacted]`, its header value is
//! marked sensitive, and [`redact`] scrubs every token the process has held from text that leaves it.

pub mod oauth;
mod secret;
mod source;

use std::fmt;

use anyhow::Result;
use http::{HeaderName, HeaderValue};

pub use secret::{Secret, redact};
pub use source::{CredentialSource, TokenKind};

/// What the gate asks for the header of each request bound for the tenant's GitLab.
pub enum CredentialProvider {
    /// A token that never changes (a personal, project or group access token, or a bearer token).
    Static { kind: TokenKind, token: Secret, source: String },
    /// OAuth2 tokens, refreshed before they expire or after GitLab refuses them.
    OAuth(Box<oauth::OAuthSession>),
}

impl CredentialProvider {
    /// The header to add to the next request, refreshing an OAuth2 access token first if it has
    /// expired or is about to.
    pub async fn header(&self) -> Result<(HeaderName, HeaderValue)> {
        match self {
            CredentialProvider::Static { kind, token, .. } => kind.header(token),
            CredentialProvider::OAuth(session) => session.header().await,
        }
    }

    /// Why the credential can no longer be used (e.g. GitLab refused the OAuth2 refresh token): the real
    /// cause behind a 401, to report instead of the bare refusal.
    pub fn failure(&self) -> Option<String> {
        match self {
            CredentialProvider::Static { .. } => None,
            CredentialProvider::OAuth(session) => session.failure(),
        }
    }

    /// GitLab answered 401 to a request that carried `used`: true when a fresh header is now available
    /// (this call refreshed the tokens, or someone else did since `used` was handed out), so the request
    /// is worth sending once more; false when nothing can change (a static token).
    pub async fn refresh_after_unauthorized(&self, used: &HeaderValue) -> Result<bool> {
        match self {
            CredentialProvider::Static { .. } => Ok(false),
            CredentialProvider::OAuth(session) => session.refresh_after_unauthorized(used).await,
        }
    }
}

impl fmt::Display for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialProvider::Static { kind, source, .. } => write!(f, "{} from {source}", kind.label()),
            CredentialProvider::OAuth(session) => write!(f, "{session}"),
        }
    }
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The provider of `source` for the GitLab at `base_url`: a static token is read now, an OAuth2 token
/// file is read and checked against `base_url` now (a refresh, if needed, waits for the first request).
pub fn open(source: &CredentialSource, base_url: &str) -> Result<CredentialProvider> {
    Ok(match source {
        CredentialSource::Env { var, kind } => {
            CredentialProvider::Static { kind: *kind, token: source::read_env(var)?, source: source.describe() }
        }
        CredentialSource::File { path, kind } => {
            CredentialProvider::Static { kind: *kind, token: source::read_file(path)?, source: source.describe() }
        }
        CredentialSource::OAuth { client_id, token_file } => CredentialProvider::OAuth(Box::new(
            oauth::OAuthSession::open(base_url, client_id.as_deref(), token_file.as_deref())?,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_secret() {
        let provider = CredentialProvider::Static {
            kind: TokenKind::PrivateToken,
            token: Secret::new("glpat-secret-in-provider"),
            source: "environment variable GITLAB_TOKEN".into(),
        };
        let shown = format!("{provider} {provider:?}");
        assert_eq!(shown.matches("private token from environment variable GITLAB_TOKEN").count(), 2);
        assert!(!shown.contains("glpat-secret-in-provider"));
        assert_eq!(redact("token glpat-secret-in-provider here"), "token [redacted] here");
    }
}
