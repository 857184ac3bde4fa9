//! The connection of a flow: the upstream's base URL and where its credential comes from.
//!
//! A flow names the credential's *source* (an environment variable, a file, an OAuth2 app: a
//! [`CredentialSource`]), never the secret itself; `credential::open` reads it when the flow is
//! checked, before any request. The secret then lives only in the provider the gate holds.

pub use crate::credential::{CredentialSource, TokenKind};

/// Where the upstream is and how the host authenticates to it.
#[derive(Clone, Debug)]
pub struct ConnectionSpec {
    /// The upstream's base URL (`https://gitlab.com`).
    pub base_url: String,
    /// The credential's source; none for anonymous access.
    pub credential: Option<CredentialSource>,
}

/// What to do about a refused (401) credential, given where it came from.
pub fn unauthorized_hint(credential: Option<&CredentialSource>) -> String {
    let create = "create a personal access token with the read_api scope (GitLab: Preferences > Access tokens)";
    match credential {
        Some(source @ CredentialSource::OAuth { .. }) => {
            format!("authorize again with `host auth login` ({})", source.describe())
        }
        Some(source) => format!("{create} and put it in the {}", source.describe()),
        None => format!("no token was given: {create} and export it as GITLAB_TOKEN"),
    }
}
