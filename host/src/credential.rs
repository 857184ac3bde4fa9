//! The tenant's credential: read from the environment by the host, added to requests by the gate,
//! never shown. Its `Debug` and `Display` print only its kind.

use std::fmt;

use http::HeaderValue;

/// How GitLab is authenticated.
#[derive(Clone)]
pub enum Credential {
    /// A personal, project or group access token, sent as `PRIVATE-TOKEN`.
    PrivateToken(String),
    /// An OAuth2 access token, sent as `Authorization: Bearer`.
    Bearer(String),
}

impl Credential {
    /// The credential from `GITLAB_TOKEN` (a private token) or `GITLAB_OAUTH_TOKEN` (an OAuth2 bearer
    /// token); none when both are unset or empty (anonymous access, which GitLab allows for public data).
    pub fn from_env() -> Option<Credential> {
        let read = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        read("GITLAB_TOKEN")
            .map(Credential::PrivateToken)
            .or_else(|| read("GITLAB_OAUTH_TOKEN").map(Credential::Bearer))
    }

    /// The header that carries this credential, marked sensitive so that no HTTP stack logs it.
    pub fn header(&self) -> Result<(http::HeaderName, HeaderValue), String> {
        let (name, value) = match self {
            Credential::PrivateToken(token) => (http::HeaderName::from_static("private-token"), token.clone()),
            Credential::Bearer(token) => (http::header::AUTHORIZATION, format!("Bearer {token}")),
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| "the GitLab token holds characters that cannot be sent in an HTTP header".to_owned())?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// The secret itself, for the one purpose of scrubbing it from text.
    fn secret(&self) -> &str {
        match self {
            Credential::PrivateToken(t) | Credential::Bearer(t) => t,
        }
    }

    /// `text` with every occurrence of the secret replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.secret().is_empty() { text.to_owned() } else { text.replace(self.secret(), "[redacted]") }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::PrivateToken(_) => f.write_str("private token [redacted]"),
            Credential::Bearer(_) => f.write_str("bearer token [redacted]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_secret() {
        let c = Credential::PrivateToken("glpat-secret".into());
        assert!(!format!("{c} {c:?}").contains("glpat-secret"));
        assert_eq!(c.scrub("token glpat-secret here"), "token [redacted] here");
        let (name, value) = c.header().unwrap();
        assert_eq!(name, "private-token");
        assert!(value.is_sensitive());
    }
}
