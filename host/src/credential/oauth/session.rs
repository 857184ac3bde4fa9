//! The OAuth2 credential of a run: the token set of one token file, shared by every partition, refreshed
//! before the access token expires and once after GitLab refuses it.
//!
//! A refresh is single-flight: partitions that find the token stale at the same moment queue on one
//! async lock, and all but the first find the fresh token already there. Across host processes sharing
//! the token file, the refresher holds the file's advisory lock and re-reads the file first: if another
//! process refreshed meanwhile, its tokens are adopted instead of spending a refresh token GitLab has
//! already revoked. GitLab rotates the pair on every refresh, so the new pair is written to the token
//! file (atomically) before the new access token is handed out; a refresh GitLab refuses with
//! `invalid_grant` ends the run with a message to log in again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use http::{HeaderName, HeaderValue};

use super::token_file::{self, TokenSet};
use super::{OAuthApp, endpoint, normalize_base_url};
use crate::credential::{Secret, TokenKind};

/// The tokens of one OAuth2 application, as a run uses them.
pub struct OAuthSession {
    shared: Arc<Shared>,
}

/// What the session's refresh tasks share with it.
struct Shared {
    app: OAuthApp,
    path: PathBuf,
    /// The token set in use.
    current: Mutex<TokenSet>,
    /// Held while refreshing: one refresh at a time in this process.
    refreshing: tokio::sync::Mutex<()>,
    /// Set when the tokens can no longer be refreshed: every later request fails with this message.
    broken: Mutex<Option<String>>,
}

impl OAuthSession {
    /// The session over the tokens `host auth login` stored for the GitLab at `base_url`: those of
    /// `token_file`, else of the default file of `client_id`.
    pub fn open(base_url: &str, client_id: Option<&str>, token_file: Option<&Path>) -> Result<OAuthSession> {
        let base_url = normalize_base_url(base_url)?;
        let path = match (token_file, client_id) {
            (Some(path), _) => path.to_owned(),
            (None, Some(client_id)) => token_file::default_token_file(&OAuthApp::new(&base_url, client_id)?)?,
            (None, None) => {
                bail!("say which OAuth2 application to use: --oauth-client-id ID or --oauth-token-file PATH")
            }
        };
        let login = match client_id {
            Some(client_id) => OAuthApp::new(&base_url, client_id)?.login_command(),
            None => format!("host auth login --base-url {base_url} --client-id ID --token-file {}", path.display()),
        };
        let tokens = token_file::read(&path).map_err(|e| anyhow!("{e:#}: run `{login}` first"))?;
        check_issuer(&path, &tokens, &base_url, client_id)?;
        let app = OAuthApp::new(&tokens.base_url, &tokens.client_id)?;
        let shared = Shared {
            app,
            path,
            current: Mutex::new(tokens),
            refreshing: tokio::sync::Mutex::new(()),
            broken: Mutex::new(None),
        };
        Ok(OAuthSession { shared: Arc::new(shared) })
    }

    /// `Authorization: Bearer <access token>`, refreshed first if it expires within the margin.
    pub async fn header(&self) -> Result<(HeaderName, HeaderValue)> {
        self.shared.check_usable()?;
        let tokens = self.shared.current();
        let tokens = if tokens.needs_refresh() { self.refresh(&tokens.access_token).await? } else { tokens };
        TokenKind::Bearer.header(&tokens.access_token)
    }

    /// Why the tokens can no longer be used (a refused refresh token...), once that is known.
    pub fn failure(&self) -> Option<String> {
        self.shared.broken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// GitLab refused `used`: refresh unless that already happened since `used` was handed out.
    /// True when a fresh header is available.
    pub async fn refresh_after_unauthorized(&self, used: &HeaderValue) -> Result<bool> {
        self.shared.check_usable()?;
        let current = self.shared.current();
        if !carries(used, &current.access_token) {
            return Ok(true);
        }
        tracing::info!(token_file = %self.shared.path.display(), "GitLab refused the OAuth2 access token; refreshing");
        self.refresh(&current.access_token).await?;
        Ok(true)
    }

    /// [`Shared::refresh`] in a task of its own: once GitLab has rotated the tokens they are stored, even
    /// if the request that asked is abandoned meanwhile (a deadline, a stopping run).
    async fn refresh(&self, stale: &Secret) -> Result<TokenSet> {
        let (shared, stale) = (self.shared.clone(), stale.clone());
        tokio::spawn(async move { shared.refresh(&stale).await }).await.context("the OAuth2 refresh task failed")?
    }
}

impl Shared {
    fn current(&self) -> TokenSet {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn check_usable(&self) -> Result<()> {
        match &*self.broken.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(message) => Err(anyhow!("{message}")),
            None => Ok(()),
        }
    }

    /// Remember that the tokens are beyond repair; the error to return.
    fn break_with(&self, message: String) -> anyhow::Error {
        *self.broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        anyhow!(message)
    }

    /// A token set whose access token is not `stale` and not about to expire: one another partition or
    /// process already obtained, else a new one from GitLab.
    async fn refresh(&self, stale: &Secret) -> Result<TokenSet> {
        let _turn = self.refreshing.lock().await;
        self.check_usable()?;
        let current = self.current();
        if current.access_token != *stale && !current.needs_refresh() {
            return Ok(current);
        }
        tracing::debug!(token_file = %self.path.display(), "waiting for the token file's lock to refresh the tokens");
        let path = self.path.clone();
        let _file_lock = tokio::task::spawn_blocking(move || token_file::lock(&path))
            .await
            .context("the task taking the token file's lock failed")??;
        let on_disk = token_file::read(&self.path)?;
        check_issuer(&self.path, &on_disk, &self.app.base_url, Some(&self.app.client_id))?;
        if on_disk.access_token != *stale && !on_disk.needs_refresh() {
            tracing::info!(token_file = %self.path.display(), "another process refreshed the OAuth2 tokens");
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = on_disk.clone();
            return Ok(on_disk);
        }
        let login = self.app.login_command();
        let Some(refresh_token) = &on_disk.refresh_token else {
            return Err(self.break_with(format!(
                "the OAuth2 access token in {} has expired and there is no refresh token; run `{login}` again",
                self.path.display()
            )));
        };
        let secret = on_disk.client_secret.as_ref();
        let answer = match endpoint::refresh(&self.app, refresh_token, &on_disk.redirect_uri, secret).await {
            Ok(answer) => answer,
            Err(refused) if refused.is_invalid_grant() => {
                return Err(self.break_with(format!(
                    "GitLab refused the OAuth2 refresh token of {} (invalid_grant: it was revoked, has expired or \
                     was already used); run `{login}` again",
                    self.path.display()
                )));
            }
            Err(error) => bail!("cannot refresh the OAuth2 access token at {}: {error}", self.app.base_url),
        };
        let secret = on_disk.client_secret.clone();
        let fresh = TokenSet::from_response(&self.app, &on_disk.redirect_uri, secret, answer, &on_disk.scopes);
        // GitLab has revoked the old pair: the new one must be on disk before it is used.
        if let Err(error) = token_file::write(&self.path, &fresh) {
            return Err(self.break_with(format!(
                "{error:#}; GitLab has already replaced the previous tokens, so run `{login}` again"
            )));
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        tracing::info!(token_file = %self.path.display(), expiry = %fresh.expiry_for_people(), "OAuth2 tokens refreshed");
        Ok(fresh)
    }
}

impl fmt::Display for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuth2 tokens of application {} ({})", self.shared.app.client_id, self.shared.path.display())
    }
}

/// Whether the header value `used` carries `token`.
fn carries(used: &HeaderValue, token: &Secret) -> bool {
    used.as_bytes().strip_prefix(b"Bearer ") == Some(token.expose().as_bytes())
}

/// Refuse tokens issued by another GitLab or to another application than the run's.
fn check_issuer(path: &Path, tokens: &TokenSet, base_url: &str, client_id: Option<&str>) -> Result<()> {
    if tokens.base_url != base_url {
        bail!(
            "the OAuth2 token file {} holds tokens of {}, not of {base_url}; give the token file of this GitLab",
            path.display(),
            tokens.base_url
        );
    }
    if let Some(client_id) = client_id
        && client_id != tokens.client_id
    {
        bail!(
            "the OAuth2 token file {} holds tokens of application {}, not of {client_id}",
            path.display(),
            tokens.client_id
        );
    }
    Ok(())
}
