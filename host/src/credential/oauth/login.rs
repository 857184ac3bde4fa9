//! `host auth login`: the authorization-code flow with PKCE, as a command-line program runs it.
//!
//! 1. Listen on `127.0.0.1:PORT` (a free port unless one is given): the redirect URI is
//!    `http://127.0.0.1:PORT/callback`.
//! 2. Print the authorize URL (client id, redirect URI, scopes, a random `state`, the S256 challenge of a
//!    random verifier); the user opens it in a browser and approves the application.
//! 3. GitLab sends the browser to the redirect URI with `code` and `state`. An answer whose `state` does
//!    not match is refused and ignored (it was not started here); an `error` ends the login.
//! 4. Exchange the code, with the verifier (and the application's secret, for a Confidential one), at
//!    `/oauth/token`; write the token set, the secret with it, to the token file (owner-only,
//!    atomically, under its lock), so that `host run` can refresh the tokens on its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wasmtime_wasi_http::io::TokioIo;

use super::pkce::{Pkce, random_token};
use super::token_file::{self, TokenSet};
use super::{OAuthApp, endpoint};
use crate::credential::Secret;

/// What `host auth login` was asked to do.
#[derive(Debug)]
pub struct LoginOptions {
    pub app: OAuthApp,
    /// The application's secret, for an application marked Confidential.
    pub client_secret: Option<Secret>,
    /// The scopes to ask for (`read_api`...).
    pub scopes: Vec<String>,
    /// Where the tokens go.
    pub token_file: PathBuf,
    /// The loopback port of the redirect URI; 0 for any free port.
    pub port: u16,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// What the browser brought back.
enum Callback {
    Code(Secret),
    Refused(String),
}

/// Run the login; the token set it stored.
pub async fn login(options: &LoginOptions) -> Result<TokenSet> {
    let app = &options.app;
    if options.scopes.is_empty() {
        bail!("ask for at least one scope, like --scopes read_api");
    }
    if let Ok(url) = url::Url::parse(&app.base_url)
        && url.scheme() == "http"
        && !matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
    {
        tracing::warn!("{} is not https: the tokens will cross the network unencrypted", app.base_url);
    }
    let listener = TcpListener::bind(("127.0.0.1", options.port)).await.with_context(|| {
        format!("cannot listen on 127.0.0.1:{} for GitLab's redirect; choose another --port", options.port)
    })?;
    let redirect_uri = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
    let pkce = Pkce::new()?;
    let state = random_token(24)?;
    let mut authorize = url::Url::parse(&app.endpoint("authorize")).context("the authorize URL is not a URL")?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", &state)
        .append_pair("scope", &options.scopes.join(" "))
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    println!("Open this address in a browser, sign in to GitLab if asked, and authorize the application:\n");
    println!("    {authorize}\n");
    println!("Waiting up to {} s for GitLab to send the browser back to {redirect_uri} ...", options.timeout.as_secs());

    let code = tokio::time::timeout(options.timeout, receive_code(listener, state)).await.map_err(|_| {
        anyhow!(
            "the browser did not come back within {} s: open the address above and authorize the application \
                 (or give more time with --timeout-secs)",
            options.timeout.as_secs()
        )
    })??;
    let secret = options.client_secret.as_ref();
    let answer = endpoint::exchange_code(app, &code, &redirect_uri, &pkce.verifier, secret)
        .await
        .map_err(|e| anyhow!("GitLab did not exchange the authorization code for tokens: {e}"))?;
    let secret = options.client_secret.clone();
    let tokens = TokenSet::from_response(app, &redirect_uri, secret, answer, &options.scopes);
    let path = options.token_file.clone();
    let lock = tokio::task::spawn_blocking(move || token_file::lock(&path))
        .await
        .context("the task taking the token file's lock failed")??;
    token_file::write(&options.token_file, &tokens)?;
    drop(lock);
    Ok(tokens)
}

/// Serve the redirect URI until a callback with the right `state` arrives; its code.
async fn receive_code(listener: TcpListener, state: String) -> Result<Secret> {
    let (sender, mut callbacks) = mpsc::channel::<Callback>(1);
    let state: Arc<str> = state.into();
    let mut connections = JoinSet::new();
    let callback = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!("accepting a connection on the redirect URI failed: {error}");
                        continue;
                    }
                };
                let (sender, state) = (sender.clone(), state.clone());
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let answer = answer_callback(request.uri(), &state, &sender);
                    async move { Ok::<_, Infallible>(answer) }
                });
                connections.spawn(async move {
                    // One answer per connection: the browser gets its page and the connection closes.
                    let _ = http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(callback) = callbacks.recv() => break callback,
        }
    };
    // Let the browser receive its page before the program goes on (and, soon, ends).
    let _ =
        tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} }).await;
    match callback {
        Callback::Code(code) => Ok(code),
        Callback::Refused(reason) => bail!("GitLab did not authorize the application: {reason}"),
    }
}

/// The page for one request to the redirect URI; a matching callback is passed on through `sender`.
fn answer_callback(uri: &http::Uri, state: &str, sender: &mpsc::Sender<Callback>) -> Response<Full<Bytes>> {
    if uri.path() != "/callback" {
        return page(StatusCode::NOT_FOUND, "Not found: GitLab sends the browser to /callback.");
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    if params.get("state").map(String::as_str) != Some(state) {
        tracing::warn!("ignored a request to the redirect URI whose state does not match this login");
        return page(
            StatusCode::BAD_REQUEST,
            "This answer does not belong to the login in progress (its state does not match); it was ignored.",
        );
    }
    if let Some(error) = params.get("error") {
        let reason = match params.get("error_description") {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        };
        let _ = sender.try_send(Callback::Refused(reason.clone()));
        return page(
            StatusCode::OK,
            &format!("GitLab did not authorize the application ({reason}). Return to the terminal."),
        );
    }
    match params.get("code").filter(|code| !code.is_empty()) {
        Some(code) => {
            let _ = sender.try_send(Callback::Code(Secret::new(code.as_str())));
            page(StatusCode::OK, "Authorized. You can close this tab and return to the terminal.")
        }
        None => page(StatusCode::BAD_REQUEST, "This answer carries neither an authorization code nor an error."),
    }
}

/// A plain-text page (plain text: nothing from the query can become markup).
fn page(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("host auth login: {text}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// `read_api,read_user` or `read_api read_user` as a list of scopes, each once.
pub fn parse_scopes(text: &str) -> Result<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
        if !scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            bail!("'{scope}' is not an OAuth2 scope; GitLab's are like read_api, read_user, api");
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_commas_and_spaces() {
        assert_eq!(parse_scopes("read_api, read_user read_api").unwrap(), ["read_api", "read_user"]);
        assert!(parse_scopes("").unwrap().is_empty());
        assert!(parse_scopes("read\"api").is_err());
    }

    #[test]
    fn only_the_matching_state_is_passed_on() {
        let (sender, mut receiver) = mpsc::channel(1);
        let uri = |q: &str| format!("/callback?{q}").parse::<http::Uri>().unwrap();
        assert_eq!(answer_callback(&uri("code=c1&state=other"), "s1", &sender).status(), StatusCode::BAD_REQUEST);
        assert_eq!(answer_callback(&"/favicon.ico".parse().unwrap(), "s1", &sender).status(), StatusCode::NOT_FOUND);
        assert!(receiver.try_recv().is_err());
        assert_eq!(answer_callback(&uri("code=c1&state=s1"), "s1", &sender).status(), StatusCode::OK);
        assert!(matches!(receiver.try_recv(), Ok(Callback::Code(code)) if code.expose() == "c1"));
        answer_callback(&uri("error=access_denied&error_description=no&state=s1"), "s1", &sender);
        assert!(matches!(receiver.try_recv(), Ok(Callback::Refused(reason)) if reason == "access_denied: no"));
    }
}
