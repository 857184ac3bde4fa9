//! The connection of a flow: the upstream's base URL and where its credential comes from.
//!
//! A flow names the credential's *source* (an environment variable, a file, an OAuth2 app), never the
//! secret itself; [`CredentialSpec::resolve`] reads it when the flow is checked, before any request.
//! The secret then lives only in the [`Credential`] the gate holds.

use std::path::PathBuf;

use serde::Deserialize;

use crate::credential::Credential;

/// Where the upstream is and how the host authenticates to it.
#[derive(Clone, Debug)]
pub struct ConnectionSpec {
    /// The upstream's base URL (`https://gitlab.com`).
    pub base_url: String,
    /// The credential's source; none for anonymous access.
    pub credential: Option<CredentialSpec>,
}

/// How a token is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// A personal, project or group access token: `PRIVATE-TOKEN`.
    PrivateToken,
    /// An OAuth2 access token: `Authorization: Bearer`.
    Bearer,
}

/// Where a credential is read from.
#[derive(Clone, Debug, PartialEq)]
pub enum CredentialSource {
    /// An environment variable holding the token.
    Env(String),
    /// A file holding the token (surrounding whitespace ignored).
    File(PathBuf),
    /// An OAuth2 application whose tokens the host keeps (and refreshes) in `token_file`.
    OAuth { client_id: String, token_file: PathBuf },
}

/// A credential's source and how it is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialSpec {
    pub source: CredentialSource,
    pub kind: TokenKind,
}

impl CredentialSpec {
    /// Read the credential. The error says what is missing, never the secret.
    pub fn resolve(&self) -> Result<Credential, String> {
        let token = match &self.source {
            CredentialSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => value.trim().to_owned(),
                Ok(_) => return Err(format!("the environment variable {var} is empty: export the token in it")),
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("the environment variable {var} is not set: export the token in it"));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("the environment variable {var} does not hold text"));
                }
            },
            CredentialSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(format!("the token file {} is empty", path.display()));
                }
                token.to_owned()
            }
            CredentialSource::OAuth { .. } => {
                return Err("OAuth2 credentials are not wired into this build yet: use env = \"VAR\" or \
                            file = \"PATH\" with an access token"
                    .to_owned());
            }
        };
        Ok(match self.kind {
            TokenKind::PrivateToken => Credential::PrivateToken(token),
            TokenKind::Bearer => Credential::Bearer(token),
        })
    }

    /// Where the token is, for people: `$GITLAB_TOKEN`, `the file /etc/gitlab-token`.
    pub fn describe(&self) -> String {
        match &self.source {
            CredentialSource::Env(var) => format!("${var}"),
            CredentialSource::File(path) => format!("the file {}", path.display()),
            CredentialSource::OAuth { client_id, .. } => format!("the OAuth2 app {client_id}"),
        }
    }
}

/// What to do about a refused (401) credential, given where it came from.
pub fn unauthorized_hint(credential: Option<&CredentialSpec>) -> String {
    let create = "create a personal access token with the read_api scope (GitLab: Preferences > Access tokens)";
    match credential {
        Some(spec) => match &spec.source {
            CredentialSource::OAuth { .. } => format!("authorize {} again", spec.describe()),
            _ => format!("{create} and put it in {}", spec.describe()),
        },
        None => format!("no token was given: {create} and export it as GITLAB_TOKEN"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_a_token_file_and_explains_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("credential-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "glpat-from-file\n").unwrap();
        let spec = CredentialSpec { source: CredentialSource::File(path.clone()), kind: TokenKind::Bearer };
        let credential = spec.resolve().unwrap();
        assert!(matches!(&credential, Credential::Bearer(t) if t == "glpat-from-file"));

        let missing = CredentialSpec { source: CredentialSource::File(dir.join("nope")), kind: TokenKind::Bearer };
        assert!(missing.resolve().unwrap_err().contains("cannot read the token file"));
        let unset = CredentialSpec {
            source: CredentialSource::Env("HOST_TEST_SURELY_UNSET_VARIABLE".into()),
            kind: TokenKind::PrivateToken,
        };
        assert!(unset.resolve().unwrap_err().contains("HOST_TEST_SURELY_UNSET_VARIABLE is not set"));
        let oauth = CredentialSpec {
            source: CredentialSource::OAuth { client_id: "app".into(), token_file: path },
            kind: TokenKind::Bearer,
        };
        assert!(oauth.resolve().unwrap_err().contains("not wired into this build yet"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
