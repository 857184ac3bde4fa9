//! The token set on disk: what `host auth login` stores and every refresh replaces.
//!
//! - Only its owner may read it: it is created 0600 (its folder 0700 when the host creates it), and a
//!   token file anyone else may read or change is refused, as the token files of [`super::super`] are.
//! - It is replaced atomically: the new set goes to a temporary file in the same folder, which is
//!   flushed to disk (`fsync`) and renamed over the old one, then the folder is flushed, so a crash
//!   leaves either the old set or the new one, never half of either.
//! - Writers take an exclusive advisory lock (`flock`) on a sibling `PATH.lock` file, which is never
//!   renamed (a lock on the token file itself would be lost with the inode each rename replaces), so
//!   two host processes never refresh the same tokens at once.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::OAuthApp;
use super::endpoint::TokenResponse;
use crate::credential::Secret;
use crate::credential::source::check_private;

/// The format of the file, should it ever change.
const VERSION: u32 = 1;
/// The largest token file read.
const MAX_BYTES: u64 = 1 << 20;
/// The longest an access token is refreshed before it expires.
const MAX_REFRESH_MARGIN_SECS: i64 = 60;

/// One application's tokens, as GitLab issued them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenSet {
    pub version: u32,
    /// The GitLab that issued the tokens (normalized base URL).
    pub base_url: String,
    pub client_id: String,
    /// The redirect URI of the login, sent again with each refresh as GitLab's documentation does.
    pub redirect_uri: String,
    /// The secret of a Confidential application, which GitLab asks for with each refresh too; absent
    /// for an application that is not Confidential (and in files written before it was stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    pub token_type: String,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub scopes: Vec<String>,
    /// When GitLab created the access token (Unix seconds, GitLab's clock).
    pub created_at: Option<i64>,
    /// The access token's lifetime in seconds, as GitLab announced it.
    pub expires_in: Option<i64>,
    /// When the access token expires (Unix seconds, this machine's clock: received + expires_in).
    pub expires_at: Option<i64>,
}

impl TokenSet {
    /// The set GitLab answered `response` with, received now, for the login that used `redirect_uri`
    /// and (for a Confidential application) `client_secret`.
    pub fn from_response(
        app: &OAuthApp,
        redirect_uri: &str,
        client_secret: Option<Secret>,
        response: TokenResponse,
        asked_scopes: &[String],
    ) -> Self {
        let now = unix_now();
        let scopes = match &response.scope {
            Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
            None => asked_scopes.to_vec(),
        };
        TokenSet {
            version: VERSION,
            base_url: app.base_url.clone(),
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            client_secret,
            token_type: response.token_type.unwrap_or_else(|| "Bearer".to_owned()),
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            scopes,
            created_at: response.created_at,
            expires_in: response.expires_in,
            expires_at: response.expires_in.map(|secs| now + secs),
        }
    }

    /// Whether the access token has expired or expires within the refresh margin: a minute, or half its
    /// lifetime when that is shorter. A token without an expiry is used until GitLab refuses it.
    pub fn needs_refresh(&self) -> bool {
        let Some(expires_at) = self.expires_at else { return false };
        let margin = self.expires_in.map_or(MAX_REFRESH_MARGIN_SECS, |life| (life / 2).min(MAX_REFRESH_MARGIN_SECS));
        unix_now() >= expires_at - margin
    }

    /// `in 2 h`, `in 59 s`, `now`: when the access token expires, for people.
    pub fn expiry_for_people(&self) -> String {
        match self.expires_at {
            None => "does not expire".to_owned(),
            Some(at) => match at - unix_now() {
                left if left <= 0 => "has expired".to_owned(),
                left if left >= 7200 => format!("expires in {} h", left / 3600),
                left if left >= 120 => format!("expires in {} min", left / 60),
                left => format!("expires in {left} s"),
            },
        }
    }
}

/// Seconds since the Unix epoch, by this machine's clock.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Where `host auth login` keeps the tokens of `app` unless told otherwise:
/// `$XDG_CONFIG_HOME/gitlab-host/` (or `~/.config/gitlab-host/`), one file per base URL and client id.
pub fn default_token_file(app: &OAuthApp) -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let config = match non_empty("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        Some(config) => config,
        None => non_empty("HOME")
            .map(|home| home.join(".config"))
            .context("neither XDG_CONFIG_HOME nor HOME is set: say where the tokens go with --token-file PATH")?,
    };
    let url = url::Url::parse(&app.base_url).context("the base URL is not a URL")?;
    let mut label: String = url.host_str().unwrap_or("gitlab").to_owned();
    if let Some(port) = url.port() {
        label.push_str(&format!("-{port}"));
    }
    let label: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let digest = Sha256::digest(format!("{}\n{}", app.base_url, app.client_id).as_bytes());
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(config.join("gitlab-host").join(format!("oauth-{label}-{hash}.json")))
}

/// The token set in `path`, refused if anyone but its owner may read it.
pub fn read(path: &Path) -> Result<TokenSet> {
    let shown = path.display();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("there is no OAuth2 token file {shown}")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open the OAuth2 token file {shown}")),
    };
    check_private(path, &file)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the OAuth2 token file {shown}"))?;
    // serde_json's messages quote no input, so no token can appear in them.
    let tokens: TokenSet = serde_json::from_slice(&bytes)
        .with_context(|| format!("the OAuth2 token file {shown} is damaged or was not written by `host auth login`"))?;
    if tokens.version != VERSION {
        bail!("the OAuth2 token file {shown} has format version {}, this host reads {VERSION}", tokens.version);
    }
    Ok(tokens)
}

/// Replace the token set in `path` atomically (see the module docs); its folder is created 0700 if
/// missing.
pub fn write(path: &Path, tokens: &TokenSet) -> Result<()> {
    let shown = path.display();
    let dir = parent(path);
    create_private_dir(dir)?;
    let name = path.file_name().with_context(|| format!("{shown} names no file"))?.to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), super::pkce::random_token(6)?));
    let result = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_owner_only()
            .open(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        let mut json = serde_json::to_vec_pretty(tokens).context("cannot serialize the token set")?;
        json.push(b'\n');
        file.write_all(&json).with_context(|| format!("cannot write {}", temporary.display()))?;
        file.sync_all().with_context(|| format!("cannot flush {} to disk", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("cannot rename the new token set onto {shown}"))?;
        // The rename itself is durable once the folder is flushed.
        File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot flush {} to disk", dir.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("cannot save the OAuth2 tokens to {shown}"))
}

/// Take the exclusive lock that guards `path` against other writers, waiting for it; released when
/// the returned file is dropped. Blocking: call it from a blocking thread.
pub fn lock(path: &Path) -> Result<File> {
    create_private_dir(parent(path))?;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode_owner_only()
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    file.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(file)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Create `dir` (and its missing parents) readable only by the owner, if it does not exist.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("cannot create the folder {}", dir.display()))
}

/// `OpenOptions::mode(0o600)` where there are Unix modes.
trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for OpenOptions {
    fn mode_owner_only(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sample(expires_in: Option<i64>) -> TokenSet {
        let app = OAuthApp::new("https://gitlab.example.com", "app-1").unwrap();
        let response = TokenResponse {
            access_token: Secret::new("access-sample-token"),
            token_type: Some("Bearer".into()),
            expires_in,
            refresh_token: Some(Secret::new("refresh-sample-token")),
            scope: Some("read_api read_user".into()),
            created_at: Some(1_700_000_000),
        };
        TokenSet::from_response(&app, "http://127.0.0.1:1/callback", None, response, &[])
    }

    #[test]
    fn written_owner_only_in_a_private_folder_and_read_back() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("new/dir/tokens.json");
        write(&path, &sample(Some(7200))).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("new/dir")), 0o700);
        assert_eq!(mode(&root.path().join("new")), 0o700);
        let back = read(&path).unwrap();
        assert_eq!(back.access_token.expose(), "access-sample-token");
        assert_eq!(back.scopes, ["read_api", "read_user"]);
        // Replaced in place; no temporary file left behind.
        write(&path, &sample(Some(60))).unwrap();
        assert_eq!(read(&path).unwrap().expires_in, Some(60));
        let names: Vec<_> =
            std::fs::read_dir(root.path().join("new/dir")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["tokens.json"]);
    }

    #[test]
    fn a_token_file_others_may_read_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("tokens.json");
        write(&path, &sample(None)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("chmod 600"), "{error}");
        assert!(!error.contains("sample-token"), "{error}");
        let error = format!("{:#}", read(&root.path().join("none.json")).unwrap_err());
        assert!(error.contains("there is no OAuth2 token file"), "{error}");
    }

    #[test]
    fn refresh_margin_is_a_minute_or_half_the_lifetime() {
        let mut tokens = sample(Some(7200));
        assert!(!tokens.needs_refresh());
        tokens.expires_at = Some(unix_now() + 59);
        assert!(tokens.needs_refresh());
        let mut short = sample(Some(10));
        assert!(!short.needs_refresh());
        short.expires_at = Some(unix_now() + 5);
        assert!(short.needs_refresh());
        assert!(!sample(None).needs_refresh());
    }

    #[test]
    fn default_files_differ_per_instance_and_application() {
        let a = default_token_file(&OAuthApp::new("https://gitlab.com", "one").unwrap()).unwrap();
        let b = default_token_file(&OAuthApp::new("https://gitlab.com", "two").unwrap()).unwrap();
        let c = default_token_file(&OAuthApp::new("http://127.0.0.1:8080", "one").unwrap()).unwrap();
        assert_ne!(a, b);
        assert!(a.to_string_lossy().contains("gitlab-host/oauth-gitlab.com-"), "{}", a.display());
        assert!(c.file_name().unwrap().to_string_lossy().starts_with("oauth-127.0.0.1-8080-"));
    }

    #[test]
    fn the_lock_is_exclusive_across_open_files() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("tokens.json");
        let held = lock(&path).unwrap();
        let other = File::open(root.path().join("tokens.json.lock")).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
