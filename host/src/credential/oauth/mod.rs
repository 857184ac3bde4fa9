//! OAuth2 with a GitLab application (GitLab is a Doorkeeper-based OAuth2 provider).
//!
//! ```text
//!  host auth login ──► login: PKCE + state ──► the user opens /oauth/authorize and approves
//!       ◄── GitLab redirects the browser to http://127.0.0.1:PORT/callback?code&state (the login listens)
//!       ──► endpoint: POST /oauth/token (authorization_code + code_verifier) ──► token_file: written 0600
//!
//!  host run ──► OAuthSession (over the token file) ──► the gate asks it for `Authorization: Bearer`
//!       access token expiring, or a 401 ──► POST /oauth/token (refresh_token) under a lock:
//!       new pair written to the token file (temp + fsync + rename) before the new access token is used
//! ```
//!
//! - [`pkce`]: the code verifier and its S256 challenge, and the `state`.
//! - [`endpoint`]: the token endpoint: exchanging a code, refreshing, GitLab's error answers.
//! - [`token_file`]: the token set on disk: owner-only, written atomically, locked across processes.
//! - [`login`]: `host auth login`.
//! - [`session`]: the refreshing credential of a run.

mod endpoint;
mod login;
mod pkce;
mod session;
mod token_file;

use std::path::Path;

use anyhow::{Result, bail};

pub use login::{LoginOptions, login, parse_scopes};
pub use session::OAuthSession;
pub use token_file::default_token_file;

use super::Secret;
use super::source::read_secret_file;

/// The variable that may hold the secret of a Confidential application at `host auth login`.
pub const CLIENT_SECRET_VARIABLE: &str = "GITLAB_OAUTH_CLIENT_SECRET";

/// The secret of a Confidential application: the one alone in `file` (which only its owner may read),
/// else the one in [`CLIENT_SECRET_VARIABLE`]; none when neither is given (an application that is not
/// Confidential needs none: PKCE proves the login).
pub fn client_secret(file: Option<&Path>) -> Result<Option<Secret>> {
    if let Some(path) = file {
        return Ok(Some(read_secret_file(path, "client secret file", "the application's secret")?));
    }
    match std::env::var(CLIENT_SECRET_VARIABLE) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Secret::new(value.trim()))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("environment variable {CLIENT_SECRET_VARIABLE} does not hold text")
        }
    }
}

/// A GitLab instance and one of its OAuth2 applications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthApp {
    /// GitLab's base URL without a trailing slash (`https://gitlab.com`, `https://example.com/gitlab`).
    pub base_url: String,
    /// The application's ID, as GitLab shows it under Applications.
    pub client_id: String,
}

impl OAuthApp {
    /// The application `client_id` of the GitLab at `base_url`.
    pub fn new(base_url: &str, client_id: &str) -> Result<OAuthApp> {
        let base_url = normalize_base_url(base_url)?;
        let client_id = client_id.trim();
        if client_id.is_empty() || client_id.contains(|c: char| c.is_whitespace() || c.is_control()) {
            bail!("the OAuth2 client id '{client_id}' is not an application ID (GitLab: Preferences > Applications)");
        }
        Ok(OAuthApp { base_url, client_id: client_id.to_owned() })
    }

    /// `BASE/oauth/NAME`.
    fn endpoint(&self, name: &str) -> String {
        format!("{}/oauth/{name}", self.base_url)
    }

    /// The command that makes a new token set for this application.
    pub fn login_command(&self) -> String {
        format!("host auth login --base-url {} --client-id {}", self.base_url, self.client_id)
    }
}

/// `base_url` as tokens are keyed by it: an http(s) URL with a host, without query, fragment or
/// trailing slash.
pub fn normalize_base_url(base_url: &str) -> Result<String> {
    let parsed = url::Url::parse(base_url.trim())
        .map_err(|e| anyhow::anyhow!("'{base_url}' is not GitLab's address (like https://gitlab.com): {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("'{base_url}' is not GitLab's address: it must be an http or https URL, like https://gitlab.com");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        bail!("'{base_url}' is not GitLab's address: give it without user, query or fragment");
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized_and_checked() {
        assert_eq!(normalize_base_url("https://GitLab.com/").unwrap(), "https://gitlab.com");
        assert_eq!(normalize_base_url("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalize_base_url("https://example.com/gitlab/").unwrap(), "https://example.com/gitlab");
        for bad in ["gitlab.com", "ftp://x", "https://x?a=b", "https://u:p@x"] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
        let app = OAuthApp::new("https://gitlab.com/", " abc ").unwrap();
        assert_eq!(app.endpoint("token"), "https://gitlab.com/oauth/token");
        assert!(OAuthApp::new("https://gitlab.com", "a b").is_err());
    }
}
