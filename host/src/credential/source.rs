//! Where a credential comes from: [`CredentialSource`], the model the command line and flow files map
//! onto, and the reading of a static token from an environment variable or a file.
//!
//! A flow file may embed a source as a table tagged by `source`:
//!
//! ```toml
//! credential = { source = "env", var = "GITLAB_TOKEN" }                       # kind: private-token
//! credential = { source = "file", path = "/run/secrets/gitlab", kind = "bearer" }
//! credential = { source = "oauth", client_id = "0f3c...", token_file = "~/tokens.json" }
//! ```
//!
//! Errors name the source (the variable or the path), never the secret.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::secret::Secret;

/// The largest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 16 * 1024;

/// How GitLab receives a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// A personal, project or group access token, sent as `PRIVATE-TOKEN`.
    #[default]
    PrivateToken,
    /// An OAuth2 access token, sent as `Authorization: Bearer`.
    Bearer,
}

impl TokenKind {
    /// The header that carries `token`, its value marked sensitive so that no HTTP stack logs it.
    pub fn header(self, token: &Secret) -> Result<(HeaderName, HeaderValue)> {
        let (name, text) = match self {
            TokenKind::PrivateToken => (HeaderName::from_static("private-token"), token.expose().to_owned()),
            TokenKind::Bearer => (http::header::AUTHORIZATION, format!("Bearer {}", token.expose())),
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| anyhow::anyhow!("the GitLab token holds characters that cannot be sent in an HTTP header"))?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// `private token` or `bearer token`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::PrivateToken => "private token",
            TokenKind::Bearer => "bearer token",
        }
    }
}

/// Where a tenant's GitLab credential comes from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialSource {
    /// A token in an environment variable of the host.
    Env {
        var: String,
        #[serde(default)]
        kind: TokenKind,
    },
    /// A token alone in a file readable only by its owner (mode 0600 or stricter).
    File {
        path: PathBuf,
        #[serde(default)]
        kind: TokenKind,
    },
    /// OAuth2 tokens that `host auth login` stored for a GitLab application, refreshed as they expire.
    /// The token file defaults to the one `host auth login` writes for the base URL and `client_id`;
    /// given a token file, the client id defaults to the one recorded in it.
    #[serde(rename = "oauth")]
    OAuth { client_id: Option<String>, token_file: Option<PathBuf> },
}

impl CredentialSource {
    /// The source implied by the environment: `GITLAB_TOKEN` (a private token), else
    /// `GITLAB_OAUTH_TOKEN` (an OAuth2 bearer token); none when both are unset or empty.
    pub fn from_environment() -> Option<CredentialSource> {
        [("GITLAB_TOKEN", TokenKind::PrivateToken), ("GITLAB_OAUTH_TOKEN", TokenKind::Bearer)].into_iter().find_map(
            |(var, kind)| {
                std::env::var_os(var)
                    .is_some_and(|v| !v.is_empty())
                    .then(|| CredentialSource::Env { var: var.to_owned(), kind })
            },
        )
    }

    /// Where the credential comes from, for messages: `environment variable GITLAB_TOKEN`.
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Env { var, .. } => format!("environment variable {var}"),
            CredentialSource::File { path, .. } => format!("token file {}", path.display()),
            CredentialSource::OAuth { token_file: Some(path), .. } => format!("OAuth2 token file {}", path.display()),
            CredentialSource::OAuth { client_id, .. } => {
                format!("OAuth2 application {}", client_id.as_deref().unwrap_or("?"))
            }
        }
    }
}

/// The token in environment variable `var`, trimmed.
pub fn read_env(var: &str) -> Result<Secret> {
    let value = match std::env::var(var) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => {
            bail!("environment variable {var} is not set; export the GitLab token in it")
        }
        Err(std::env::VarError::NotUnicode(_)) => bail!("environment variable {var} does not hold text"),
    };
    let token = value.trim();
    if token.is_empty() {
        bail!("environment variable {var} is empty; export the GitLab token in it");
    }
    Ok(Secret::new(token))
}

/// The token alone in the file at `path`, trimmed; refused if anyone but its owner may read it.
pub fn read_file(path: &Path) -> Result<Secret> {
    read_secret_file(path, "token file", "the GitLab token")
}

/// The secret alone in the file at `path` (`what`, such as "token file", holding `holds`, such as "the
/// GitLab token", for messages), trimmed; refused if anyone but its owner may read it.
pub fn read_secret_file(path: &Path, what: &str, holds: &str) -> Result<Secret> {
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open the {what} {shown}"))?;
    check_private(path, &file)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the {what} {shown}"))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        bail!("the {what} {shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes; it must hold {holds} alone");
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the {what} {shown} does not hold text"))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the {what} {shown} is empty; write {holds} in it");
    }
    if token.contains(char::is_whitespace) {
        bail!("the {what} {shown} holds more than one word; it must hold {holds} alone");
    }
    Ok(Secret::new(token))
}

/// Refuse `file` (opened from `path`) unless it is a regular file only its owner may read or change,
/// as ssh does for private keys: a token anyone else can read may already be theirs.
pub fn check_private(path: &Path, file: &std::fs::File) -> Result<()> {
    let shown = path.display();
    let metadata = file.metadata().with_context(|| format!("cannot read the permissions of {shown}"))?;
    if !metadata.is_file() {
        bail!("{shown} is not a regular file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{shown} may be read or changed by other users (mode {mode:04o}); it holds a secret: restrict it \
                 with `chmod 600 {shown}`"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_with_mode(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_with_mode(dir.path(), "token", "  glpat-file-token-1\n", 0o600);
        assert_eq!(read_file(&path).unwrap().expose(), "glpat-file-token-1");
        let path = write_with_mode(dir.path(), "ro", "glpat-file-token-2", 0o400);
        assert_eq!(read_file(&path).unwrap().expose(), "glpat-file-token-2");
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix_and_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
            let path = write_with_mode(dir.path(), &format!("token-{mode:o}"), "glpat-leaky-token", mode);
            let error = format!("{:#}", read_file(&path).unwrap_err());
            assert!(error.contains(&format!("chmod 600 {}", path.display())), "{error}");
            assert!(error.contains(&format!("mode {mode:04o}")), "{error}");
            assert!(!error.contains("glpat-leaky-token"), "{error}");
        }
    }

    #[test]
    fn bad_contents_and_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write_with_mode(dir.path(), "empty", " \n", 0o600);
        assert!(read_file(&empty).unwrap_err().to_string().contains("is empty"));
        let two = write_with_mode(dir.path(), "two", "glpat-one\nglpat-two\n", 0o600);
        let error = read_file(&two).unwrap_err().to_string();
        assert!(error.contains("more than one word") && !error.contains("glpat-one"), "{error}");
        let missing = dir.path().join("missing");
        let error = format!("{:#}", read_file(&missing).unwrap_err());
        assert!(error.contains(&missing.display().to_string()), "{error}");
        let error = read_file(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn environment_variables_are_named_when_unusable() {
        let error = read_env("GITLAB_HOST_TEST_SURELY_UNSET_VAR").unwrap_err().to_string();
        assert!(error.contains("GITLAB_HOST_TEST_SURELY_UNSET_VAR is not set"), "{error}");
    }

    #[test]
    fn sources_deserialize_from_flow_tables() {
        let env: CredentialSource = serde_json::from_str(r#"{"source":"env","var":"GITLAB_TOKEN"}"#).unwrap();
        assert_eq!(env, CredentialSource::Env { var: "GITLAB_TOKEN".into(), kind: TokenKind::PrivateToken });
        let file: CredentialSource = serde_json::from_str(r#"{"source":"file","path":"/t","kind":"bearer"}"#).unwrap();
        assert_eq!(file, CredentialSource::File { path: "/t".into(), kind: TokenKind::Bearer });
        let oauth: CredentialSource = serde_json::from_str(r#"{"source":"oauth","client_id":"abc"}"#).unwrap();
        assert_eq!(oauth, CredentialSource::OAuth { client_id: Some("abc".into()), token_file: None });
        assert!(serde_json::from_str::<CredentialSource>(r#"{"source":"env","var":"X","token":"t"}"#).is_err());
    }

    #[test]
    fn headers_are_sensitive() {
        let token = Secret::new("glpat-header-token");
        let (name, value) = TokenKind::PrivateToken.header(&token).unwrap();
        assert_eq!((name.as_str(), value.is_sensitive()), ("private-token", true));
        let (name, value) = TokenKind::Bearer.header(&token).unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("authorization", "Bearer glpat-header-token"));
        assert!(TokenKind::Bearer.header(&Secret::new("bad\ntoken")).is_err());
    }
}
