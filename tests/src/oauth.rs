//! OAuth 2.0 as GitLab's identity provider (Doorkeeper) serves it: applications, the authorize and
//! token endpoints, and the access tokens the API accepts.
//!
//! - `GET /oauth/authorize` checks the application and the redirect URI (unknown ones are refused with
//!   an error page, as GitLab does, never redirected to), then acts as a signed-in user who approves at
//!   once (or refuses: [`OAuthServer::set_user_approves`]): 302 to the redirect URI with `code` and
//!   `state`, or with `error`. An application that is not Confidential must use PKCE; a Confidential
//!   one ([`OAuthServer::register_confidential_application`]) may. A registered redirect URI on
//!   127.0.0.1 or [::1] matches any port (RFC 8252 §7.3).
//! - `POST /oauth/token` (form body) grants `authorization_code` (the code is single-use, lives ten
//!   minutes, belongs to one client and redirect URI, and needs the PKCE verifier of its challenge if
//!   it had one) and `refresh_token`, which rotates: the old refresh token and its access token stop
//!   working at once, as GitLab documents. A Confidential application's every token request must carry
//!   its `client_secret`, else `invalid_client`. Errors are OAuth's JSON (`invalid_grant`, ...).
//! - An API request carrying an access token issued here (`Authorization: Bearer`, or `access_token=`)
//!   acts as user 1; an expired or revoked one gets GitLab's 401 `invalid_token`. Access tokens live
//!   [`OAuthServer::set_access_token_lifetime`] (7200 s unless told) and, for tests that need a token to
//!   expire at an exact point of a run, serve at most [`OAuthServer::set_access_token_uses`] requests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, Method, Response, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::routes::App;
use crate::world::TOKEN_USER_ID;

/// How long an authorization code may wait for its exchange (Doorkeeper's default).
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// The largest token request body read.
const MAX_FORM_BYTES: usize = 64 * 1024;

const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the \
                             redirection URI used in the authorization request, or was issued to another client.";
const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, \
                              or unsupported authentication method.";
const TOKEN_EXPIRED: &str = "Token is expired. You can either do re-authorization or token refresh.";
const TOKEN_REVOKED: &str = "Token was revoked. You have to re-authorize from the user.";

/// The OAuth2 provider of one simulator.
pub struct OAuthServer {
    state: Mutex<State>,
}

struct State {
    applications: HashMap<String, Application>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    rng: ChaCha8Rng,
    lifetime: Duration,
    uses: Option<u64>,
    approves: bool,
    refreshes: u64,
}

struct Application {
    redirect_uri: String,
    scopes: Vec<String>,
    /// The secret of a Confidential application.
    secret: Option<String>,
}

/// An authorization code and what it was issued for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    /// The PKCE challenge and its method, if the authorization request had one.
    challenge: Option<(String, String)>,
    issued: Instant,
}

struct AccessToken {
    issued: Instant,
    lifetime: Duration,
    uses: u64,
    revoked: bool,
}

struct RefreshToken {
    client_id: String,
    scopes: Vec<String>,
    access_token: String,
    revoked: bool,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer").finish_non_exhaustive()
    }
}

impl Default for OAuthServer {
    fn default() -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self {
            state: Mutex::new(State {
                applications: HashMap::new(),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                lifetime: Duration::from_secs(7200),
                uses: None,
                approves: true,
                refreshes: 0,
            }),
        }
    }
}

impl OAuthServer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register an application `client_id` that is not Confidential (it logs in with PKCE) with its
    /// redirect URI and the scopes it may be granted.
    pub fn register_application(&self, client_id: &str, redirect_uri: &str, scopes: &[&str]) {
        self.register(client_id, None, redirect_uri, scopes);
    }

    /// Register a Confidential application `client_id`, whose token requests must carry `secret`.
    pub fn register_confidential_application(
        &self,
        client_id: &str,
        secret: &str,
        redirect_uri: &str,
        scopes: &[&str],
    ) {
        self.register(client_id, Some(secret), redirect_uri, scopes);
    }

    fn register(&self, client_id: &str, secret: Option<&str>, redirect_uri: &str, scopes: &[&str]) {
        let application = Application {
            redirect_uri: redirect_uri.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            secret: secret.map(str::to_owned),
        };
        self.lock().applications.insert(client_id.to_owned(), application);
    }

    /// The lifetime (and announced `expires_in`) of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    /// `Some(n)`: every access token expires after serving `n` API requests (counted from its issue).
    pub fn set_access_token_uses(&self, uses: Option<u64>) {
        self.lock().uses = uses;
    }

    /// Whether the simulated user approves authorization requests (default) or refuses them.
    pub fn set_user_approves(&self, approves: bool) {
        self.lock().approves = approves;
    }

    /// Successful refreshes so far.
    pub fn refreshes(&self) -> u64 {
        self.lock().refreshes
    }

    /// For an API request presenting `token`: `None` if it is not an access token issued here, else the
    /// caller or GitLab's 401 answer for an expired or revoked token.
    pub(crate) fn authenticate(&self, token: Option<&str>) -> Option<Result<Caller, Reply>> {
        let mut state = self.lock();
        let cap = state.uses;
        let access = state.access_tokens.get_mut(token?)?;
        if access.revoked {
            return Some(Err(invalid_token(TOKEN_REVOKED)));
        }
        if access.issued.elapsed() >= access.lifetime || cap.is_some_and(|cap| access.uses >= cap) {
            return Some(Err(invalid_token(TOKEN_EXPIRED)));
        }
        access.uses += 1;
        Some(Ok(Caller::User(TOKEN_USER_ID)))
    }
}

/// Whether `path` is one of the OAuth endpoints.
pub(crate) fn serves(path: &str) -> bool {
    path.starts_with("/oauth/")
}

/// Answer a request to an OAuth endpoint (logged like every other request).
pub(crate) async fn handle(app: &App, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let index = app.recorder.begin(&parts);
    let query = parts.uri.query().unwrap_or("");
    let reply = match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/oauth/authorize") => authorize(&app.oauth, &form(query.as_bytes())),
        (&Method::POST, "/oauth/token") => match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(bytes) => {
                // Doorkeeper reads the parameters from the query and the body alike.
                let mut params = form(query.as_bytes());
                params.extend(form(&bytes));
                token(&app.oauth, &params)
            }
            Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The request body is too large."),
        },
        _ => ApiError::NoRoute.reply(),
    };
    app.recorder.finish(index, reply.status.as_u16());
    reply.into_response(index as u64 + 1)
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().filter(|(_, v)| !v.is_empty()).collect()
}

/// `GET /oauth/authorize`.
fn authorize(server: &OAuthServer, params: &HashMap<String, String>) -> Reply {
    let get = |key: &str| params.get(key).map(String::as_str);
    let mut state = server.lock();
    let Some(application) = get("client_id").and_then(|id| state.applications.get(id)) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|uri| redirect_matches(&application.redirect_uri, uri)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "The redirect URI included is not valid.");
    };
    let redirect_uri = redirect_uri.to_owned();
    let confidential = application.secret.is_some();
    let scopes: Vec<String> = get("scope").unwrap_or("").split_whitespace().map(str::to_owned).collect();
    let allowed = application.scopes.clone();
    let back = |pairs: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        if let Some(state) = get("state") {
            query.append_pair("state", state);
        }
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        redirect(&format!("{redirect_uri}{separator}{}", query.finish()))
    };
    if get("response_type") != Some("code") {
        return back(&[
            ("error", "unsupported_response_type"),
            ("error_description", "The authorization server does not support this response type."),
        ]);
    }
    if scopes.is_empty() || scopes.iter().any(|s| !allowed.contains(s)) {
        return back(&[
            ("error", "invalid_scope"),
            ("error_description", "The requested scope is invalid, unknown, or malformed."),
        ]);
    }
    let challenge = get("code_challenge");
    if challenge.is_none() && !confidential {
        return back(&[("error", "invalid_request"), ("error_description", "Code challenge is required.")]);
    }
    let method = get("code_challenge_method").unwrap_or("plain");
    if challenge.is_some() && method != "S256" && method != "plain" {
        return back(&[
            ("error", "invalid_request"),
            ("error_description", "The code challenge method must be plain or S256."),
        ]);
    }
    if !state.approves {
        return back(&[
            ("error", "access_denied"),
            ("error_description", "The resource owner or authorization server denied the request."),
        ]);
    }
    let code = random_hex(&mut state.rng);
    let grant = Grant {
        client_id: get("client_id").unwrap_or_default().to_owned(),
        redirect_uri: redirect_uri.clone(),
        scopes,
        challenge: challenge.map(|challenge| (challenge.to_owned(), method.to_owned())),
        issued: Instant::now(),
    };
    state.codes.insert(code.clone(), grant);
    back(&[("code", &code)])
}

/// `POST /oauth/token`.
fn token(server: &OAuthServer, params: &HashMap<String, String>) -> Reply {
    let get = |key: &str| params.get(key).map(String::as_str);
    let missing = |name: &str| {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("Missing required parameter: {name}."))
    };
    let mut state = server.lock();
    let Some((client_id, application)) = get("client_id").and_then(|id| Some((id, state.applications.get(id)?))) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
    };
    if application.secret.as_deref().is_some_and(|secret| get("client_secret") != Some(secret)) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
    }
    let invalid_grant = || oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
    match get("grant_type") {
        Some("authorization_code") => {
            let Some(code) = get("code") else { return missing("code") };
            // A code is spent by any attempt to use it.
            let Some(grant) = state.codes.remove(code) else { return invalid_grant() };
            if grant.client_id != client_id
                || grant.issued.elapsed() >= CODE_LIFETIME
                || get("redirect_uri") != Some(grant.redirect_uri.as_str())
            {
                return invalid_grant();
            }
            if let Some((challenge, method)) = &grant.challenge {
                let Some(verifier) = get("code_verifier") else { return missing("code_verifier") };
                let expected = if method == "S256" { s256(verifier) } else { verifier.to_owned() };
                if expected != *challenge {
                    return invalid_grant();
                }
            }
            issue(&mut state, client_id, grant.scopes)
        }
        Some("refresh_token") => {
            let Some(presented) = get("refresh_token") else { return missing("refresh_token") };
            let Some(old) = state.refresh_tokens.get_mut(presented) else { return invalid_grant() };
            if old.revoked || old.client_id != client_id {
                return invalid_grant();
            }
            // Rotation: the old pair stops working before the new one exists.
            old.revoked = true;
            let (scopes, old_access) = (old.scopes.clone(), old.access_token.clone());
            if let Some(access) = state.access_tokens.get_mut(&old_access) {
                access.revoked = true;
            }
            state.refreshes += 1;
            issue(&mut state, client_id, scopes)
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
        None => missing("grant_type"),
    }
}

/// A new access and refresh token pair, as GitLab's token endpoint answers it.
fn issue(state: &mut State, client_id: &str, scopes: Vec<String>) -> Reply {
    let access = random_hex(&mut state.rng);
    let refresh = random_hex(&mut state.rng);
    let lifetime = state.lifetime;
    state
        .access_tokens
        .insert(access.clone(), AccessToken { issued: Instant::now(), lifetime, uses: 0, revoked: false });
    state.refresh_tokens.insert(
        refresh.clone(),
        RefreshToken {
            client_id: client_id.to_owned(),
            scopes: scopes.clone(),
            access_token: access.clone(),
            revoked: false,
        },
    );
    let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "refresh_token": refresh,
        "scope": scopes.join(" "),
        "created_at": created_at,
    });
    let mut reply = Reply::json(body.to_string().into_bytes());
    reply.headers.push((header::CACHE_CONTROL, "no-store".to_owned()));
    reply.headers.push((header::PRAGMA, "no-cache".to_owned()));
    reply
}

/// Whether `given` is the registered redirect URI, the port aside for a loopback one (RFC 8252 §7.3).
fn redirect_matches(registered: &str, given: &str) -> bool {
    registered == given || without_loopback_port(given).is_some_and(|given| given == registered)
}

/// `http://127.0.0.1:PORT/path` (or `[::1]`) without its port.
fn without_loopback_port(uri: &str) -> Option<String> {
    ["http://127.0.0.1:", "http://[::1]:"].iter().find_map(|prefix| {
        let rest = uri.strip_prefix(prefix)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0).then(|| format!("{}{}", &prefix[..prefix.len() - 1], &rest[digits..]))
    })
}

/// The S256 PKCE challenge of `verifier`.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 64 hexadecimal characters, the shape of GitLab's OAuth tokens and codes.
fn random_hex(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn redirect(location: &str) -> Reply {
    Reply {
        status: StatusCode::FOUND,
        headers: vec![(header::LOCATION, location.to_owned())],
        body: Default::default(),
        gzipped: false,
    }
}

/// An OAuth2 error answer, `{"error": ..., "error_description": ...}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    let body = serde_json::json!({ "error": error, "error_description": description });
    Reply { status, headers: Vec::new(), body: body.to_string().into_bytes().into(), gzipped: false }
}

/// GitLab's 401 for an OAuth access token it no longer accepts.
fn invalid_token(description: &str) -> Reply {
    let mut reply = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
    reply.headers.push((
        HeaderName::from_static("www-authenticate"),
        format!(
            "Bearer realm=\"Protected by OAuth 2.0\", error=\"invalid_token\", error_description=\"{description}\""
        ),
    ));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn location(reply: &Reply) -> HashMap<String, String> {
        assert_eq!(reply.status, StatusCode::FOUND, "{}", String::from_utf8_lossy(&reply.body));
        let location = &reply.headers.iter().find(|(n, _)| n == header::LOCATION).unwrap().1;
        form(location.split_once('?').unwrap().1.as_bytes())
    }

    fn json(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn server() -> OAuthServer {
        let server = OAuthServer::default();
        server.register_application("app", "http://127.0.0.1/callback", &["read_api", "api"]);
        server
    }

    fn authorize_code(server: &OAuthServer) -> String {
        let reply = authorize(
            server,
            &params(&[
                ("client_id", "app"),
                ("redirect_uri", "http://127.0.0.1:5555/callback"),
                ("response_type", "code"),
                ("scope", "read_api"),
                ("state", "xyz"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ]),
        );
        let back = location(&reply);
        assert_eq!(back["state"], "xyz");
        back["code"].clone()
    }

    fn exchange(server: &OAuthServer, code: &str, verifier: &str) -> Reply {
        token(
            server,
            &params(&[
                ("client_id", "app"),
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:5555/callback"),
                ("code_verifier", verifier),
            ]),
        )
    }

    #[test]
    fn the_code_flow_checks_pkce_and_spends_the_code() {
        let server = server();
        let code = authorize_code(&server);
        assert_eq!(json(&exchange(&server, &code, "wrong-verifier"))["error"], "invalid_grant");
        // The failed attempt spent the code.
        let code = authorize_code(&server);
        let answer = json(&exchange(&server, &code, VERIFIER));
        assert_eq!(answer["token_type"], "Bearer");
        assert_eq!(answer["expires_in"], 7200);
        assert_eq!(answer["scope"], "read_api");
        assert_eq!(json(&exchange(&server, &code, VERIFIER))["error"], "invalid_grant");
        let access = answer["access_token"].as_str().unwrap();
        assert!(matches!(server.authenticate(Some(access)), Some(Ok(Caller::User(1)))));
        assert!(server.authenticate(Some("unknown")).is_none());
    }

    #[test]
    fn refresh_rotates_the_pair() {
        let server = server();
        let first = json(&exchange(&server, &authorize_code(&server), VERIFIER));
        let refresh = |token: &str| {
            json(&token_reply(
                &server,
                &[("client_id", "app"), ("grant_type", "refresh_token"), ("refresh_token", token)],
            ))
        };
        let second = refresh(first["refresh_token"].as_str().unwrap());
        assert_ne!(second["access_token"], first["access_token"]);
        assert_eq!(refresh(first["refresh_token"].as_str().unwrap())["error"], "invalid_grant");
        let old = server.authenticate(first["access_token"].as_str()).unwrap().unwrap_err();
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
        assert!(String::from_utf8_lossy(&old.body).contains("Token was revoked"));
        assert!(matches!(server.authenticate(second["access_token"].as_str()), Some(Ok(_))));
        assert_eq!(server.refreshes(), 1);
    }

    fn token_reply(server: &OAuthServer, pairs: &[(&str, &str)]) -> Reply {
        token(server, &params(pairs))
    }

    #[test]
    fn access_tokens_expire_by_time_and_by_use() {
        let server = server();
        server.set_access_token_uses(Some(2));
        let answer = json(&exchange(&server, &authorize_code(&server), VERIFIER));
        let access = answer["access_token"].as_str();
        assert!(matches!(server.authenticate(access), Some(Ok(_))));
        assert!(matches!(server.authenticate(access), Some(Ok(_))));
        let expired = server.authenticate(access).unwrap().unwrap_err();
        assert!(String::from_utf8_lossy(&expired.body).contains("Token is expired"));
        server.set_access_token_uses(None);
        server.set_access_token_lifetime(Duration::ZERO);
        let answer = json(&exchange(&server, &authorize_code(&server), VERIFIER));
        assert_eq!(answer["expires_in"], 0);
        assert!(matches!(server.authenticate(answer["access_token"].as_str()), Some(Err(_))));
    }

    #[test]
    fn a_confidential_application_needs_its_secret_at_every_token_request_and_pkce_is_optional() {
        let server = server();
        server.register_confidential_application("conf", "s3cret", "http://127.0.0.1/callback", &["read_api"]);
        let code = || {
            let reply = authorize(
                &server,
                &params(&[
                    ("client_id", "conf"),
                    ("redirect_uri", "http://127.0.0.1:7/callback"),
                    ("response_type", "code"),
                    ("scope", "read_api"),
                ]),
            );
            location(&reply)["code"].clone()
        };
        let exchange = |code: &str, secret: Option<&str>| {
            let mut pairs = vec![
                ("client_id", "conf"),
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:7/callback"),
            ];
            pairs.extend(secret.map(|secret| ("client_secret", secret)));
            token_reply(&server, &pairs)
        };
        for secret in [None, Some("wrong")] {
            let refused = exchange(&code(), secret);
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
            assert_eq!(json(&refused)["error"], "invalid_client");
        }
        let tokens = json(&exchange(&code(), Some("s3cret")));
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let refresh = |secret: &'static str| {
            let pairs = [
                ("client_id", "conf"),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_secret", secret),
            ];
            json(&token_reply(&server, &pairs))
        };
        assert_eq!(refresh("wrong")["error"], "invalid_client");
        assert!(refresh("s3cret")["access_token"].is_string());
        // An application that is not Confidential still must use PKCE.
        let public = authorize(
            &server,
            &params(&[
                ("client_id", "app"),
                ("redirect_uri", "http://127.0.0.1:7/callback"),
                ("response_type", "code"),
                ("scope", "read_api"),
            ]),
        );
        assert_eq!(location(&public)["error"], "invalid_request");
    }

    #[test]
    fn authorize_refuses_unknown_clients_and_redirects() {
        let server = server();
        let base = [("client_id", "app"), ("response_type", "code"), ("scope", "read_api"), ("code_challenge", "c")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            authorize(&server, &params(&all))
        };
        assert_eq!(with(&[("redirect_uri", "http://evil.example/callback")]).status, StatusCode::BAD_REQUEST);
        assert_eq!(with(&[("redirect_uri", "http://127.0.0.1:1/other")]).status, StatusCode::BAD_REQUEST);
        let scope = with(&[("redirect_uri", "http://127.0.0.1:1/callback"), ("scope", "sudo")]);
        assert_eq!(location(&scope)["error"], "invalid_scope");
        server.set_user_approves(false);
        assert_eq!(location(&with(&[("redirect_uri", "http://127.0.0.1:9/callback")]))["error"], "access_denied");
        let unknown = authorize(&server, &params(&[("client_id", "nope")]));
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    }
}
