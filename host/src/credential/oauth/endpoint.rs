//! GitLab's token endpoint, `POST /oauth/token`: exchanging an authorization code (with its PKCE
//! verifier) and refreshing, each with the application's secret when it is Confidential, and GitLab's
//! OAuth2 error answers (`invalid_grant`, `invalid_client`...).
//!
//! The host sends these requests itself, outside any sandbox, through the HTTP client the gate uses
//! for the plugin's requests (wasmtime-wasi-http's: hyper over TCP, rustls with the webpki roots for
//! https). The form body carries the secrets; nothing here logs a body, and the answer is parsed into
//! [`Secret`]s at once.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use wasmtime_wasi_http::{RequestOptions, default_send_request};

use super::OAuthApp;
use crate::credential::Secret;

/// Connect, first-byte and between-bytes timeout of a token request.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the token endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A successful answer of the token endpoint.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub token_type: Option<String>,
    pub expires_in: Option<i64>,
    pub refresh_token: Option<Secret>,
    pub scope: Option<String>,
    pub created_at: Option<i64>,
}

/// Why the token endpoint gave no tokens.
#[derive(Debug)]
pub enum TokenError {
    /// GitLab refused: the OAuth2 error code and description it sent.
    Refused { status: u16, error: String, description: Option<String> },
    /// No usable answer: the network, or an answer that is not OAuth2's.
    Failed(anyhow::Error),
}

impl TokenError {
    /// The grant (authorization code or refresh token) is invalid, expired, revoked or already used:
    /// only a new login helps.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenError::Refused { error, .. } if error == "invalid_grant")
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Refused { status, error, description } => {
                write!(f, "GitLab answered {status} {error}")?;
                if let Some(description) = description {
                    write!(f, ": {description}")?;
                }
                if error == "invalid_client" {
                    f.write_str(
                        " (check the client id; an application marked Confidential also needs its secret: \
                         --client-secret-file PATH or GITLAB_OAUTH_CLIENT_SECRET at `host auth login`)",
                    )?;
                }
                Ok(())
            }
            TokenError::Failed(error) => write!(f, "{error:#}"),
        }
    }
}

/// Exchange an authorization `code` for tokens (the authorization-code grant with PKCE; with the
/// application's secret too when it is Confidential).
pub async fn exchange_code(
    app: &OAuthApp,
    code: &Secret,
    redirect_uri: &str,
    verifier: &Secret,
    client_secret: Option<&Secret>,
) -> Result<TokenResponse, TokenError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", &app.client_id),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.expose()),
    ];
    request(app, &form, client_secret).await
}

/// Trade `refresh_token` for a new token pair. GitLab revokes the old access and refresh tokens as it
/// answers: the answer must be stored before anything else.
pub async fn refresh(
    app: &OAuthApp,
    refresh_token: &Secret,
    redirect_uri: &str,
    client_secret: Option<&Secret>,
) -> Result<TokenResponse, TokenError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &app.client_id),
        ("refresh_token", refresh_token.expose()),
        ("redirect_uri", redirect_uri),
    ];
    request(app, &form, client_secret).await
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// POST `form` to the token endpoint, with `client_secret` as a form field too (OAuth2's
/// `client_secret_post`, which GitLab accepts) when the application has one.
async fn request(
    app: &OAuthApp,
    form: &[(&str, &str)],
    client_secret: Option<&Secret>,
) -> Result<TokenResponse, TokenError> {
    let url = app.endpoint("token");
    let grant = form.iter().find(|(k, _)| *k == "grant_type").map_or("", |(_, v)| *v);
    tracing::debug!(url, grant, confidential = client_secret.is_some(), "OAuth2 token request");
    let secret = client_secret.map(|secret| ("client_secret", secret.expose()));
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter().chain(&secret)).finish();
    let (status, answer) = post_form(&url, body).await.map_err(TokenError::Failed)?;
    tracing::debug!(url, grant, status = status.as_u16(), "OAuth2 token answer");
    if status.is_success() {
        return serde_json::from_slice::<TokenResponse>(&answer)
            .map_err(|_| TokenError::Failed(anyhow!("GitLab's answer to POST {url} is not an OAuth2 token response")));
    }
    match serde_json::from_slice::<ErrorAnswer>(&answer) {
        Ok(ErrorAnswer { error, error_description }) => {
            Err(TokenError::Refused { status: status.as_u16(), error, description: error_description })
        }
        Err(_) => Err(TokenError::Failed(anyhow!(
            "POST {url} answered {status} without an OAuth2 error: is {} the address of GitLab?",
            app.base_url
        ))),
    }
}

/// POST `body` as a form to `url`; the status and the (bounded) answer.
async fn post_form(url: &str, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
    let uri: http::Uri = url.parse().with_context(|| format!("'{url}' is not a valid URL"))?;
    let host = uri.authority().with_context(|| format!("'{url}' has no host"))?.as_str().to_owned();
    let body = Full::new(Bytes::from(body)).map_err(|never| match never {});
    let request = http::Request::post(uri)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .context("cannot build the token request")?;
    let options = RequestOptions {
        connect_timeout: Some(TIMEOUT),
        first_byte_timeout: Some(TIMEOUT),
        between_bytes_timeout: Some(TIMEOUT),
    };
    let exchange = async {
        let (response, connection) =
            default_send_request(request, Some(options)).await.map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
        // The connection must be driven while the body is read; it is closed when the body is in.
        let connection = tokio::spawn(connection);
        let (parts, body) = response.into_parts();
        let answer = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow!("cannot read the answer of {url}: {e}"))?
            .to_bytes();
        connection.abort();
        Ok((parts.status, answer))
    };
    tokio::time::timeout(TIMEOUT * 2, exchange)
        .await
        .map_err(|_| anyhow!("{url} did not answer within {:?}", TIMEOUT * 2))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_gitlab_said() {
        let error =
            TokenError::Refused { status: 400, error: "invalid_grant".into(), description: Some("gone".into()) };
        assert!(error.is_invalid_grant());
        assert_eq!(error.to_string(), "GitLab answered 400 invalid_grant: gone");
        let client = TokenError::Refused { status: 401, error: "invalid_client".into(), description: None };
        assert!(!client.is_invalid_grant());
        assert!(client.to_string().contains("marked Confidential also needs its secret"));
    }
}
