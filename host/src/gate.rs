//! The outgoing-HTTP gate: the host side of `wasi:http`, through which every request a plugin makes
//! must pass.
//!
//! For each request it checks the origin against the tenant's allow-list (refusing with
//! `HttpRequestDenied` and recording why), refuses any credential header the plugin set itself (those
//! headers are also forbidden when the plugin builds its header fields), adds the tenant's credential
//! only when the request is bound for the tenant's GitLab origin, counts the request, and sends it.
//!
//! The credential's header is asked for asynchronously, as the request is sent, so that an expiring
//! OAuth2 access token can be refreshed first; when GitLab answers 401 to a GET that carried an OAuth2
//! token, the provider refreshes once and the gate sends the same request again, unseen by the plugin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
};

use crate::credential::CredentialProvider;

/// Headers that carry credentials: only the host may set them.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "private-token", "job-token", "cookie"];

/// An origin: scheme, host and port, as in `https://gitlab.com:443`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// The origin of an absolute URL.
    pub fn of_url(url: &str) -> Result<Origin, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("'{url}' is not a valid URL: {e}"))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => return Err(format!("'{url}' uses scheme '{other}'; only http and https are supported")),
        }
        let host = parsed.host_str().ok_or_else(|| format!("'{url}' has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        Ok(Origin(format!("{}://{}:{port}", parsed.scheme(), host.to_ascii_lowercase())))
    }

    fn of_uri(uri: &http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?;
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some(Origin(format!("{scheme}://{}:{port}", host.to_ascii_lowercase())))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a tenant's plugin may reach, and with which credential.
#[derive(Debug)]
pub struct GatePolicy {
    /// Origins the plugin may send requests to.
    pub allowed: Vec<Origin>,
    /// The tenant's GitLab origin and credential: added to requests for that origin only.
    pub credential: Option<(Origin, Arc<CredentialProvider>)>,
    /// Connect, first-byte and between-bytes timeouts for each request.
    pub timeout: Duration,
}

/// What the gate saw, shared between the sandbox and the host that reports on it.
#[derive(Debug, Default)]
pub struct GateStats {
    /// Requests sent upstream.
    pub requests: AtomicU64,
    /// Requests refused, each with the reason.
    pub refusals: Mutex<Vec<String>>,
}

impl GateStats {
    fn refuse(&self, reason: String) -> Box<dyn Future<Output = GateResult> + Send> {
        let error = self.deny(reason);
        Box::new(async { Err(error) })
    }

    /// Record why a request is refused; the error the plugin gets.
    fn deny(&self, reason: String) -> HttpError {
        tracing::warn!("outgoing request refused: {reason}");
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).push(reason);
        HttpError::HttpRequestDenied
    }

    /// The refusals so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type GateResult = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

/// The `wasi:http` hooks of one sandbox.
pub struct Gate {
    pub policy: Arc<GatePolicy>,
    pub stats: Arc<GateStats>,
}

impl WasiHttpHooks for Gate {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name: &HeaderName| {
            DEFAULT_FORBIDDEN_HEADERS.contains(name) || CREDENTIAL_HEADERS.contains(&name.as_str())
        })
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = GateResult> + Send> {
        drop(fut);
        let Some(origin) = Origin::of_uri(request.uri()) else {
            return self.stats.refuse(format!("'{}' is not an absolute http(s) URL", request.uri()));
        };
        if !self.policy.allowed.contains(&origin) {
            let allowed: Vec<String> = self.policy.allowed.iter().map(Origin::to_string).collect();
            return self.stats.refuse(format!(
                "the plugin tried to reach {origin}, which is not in this tenant's allow-list ({})",
                allowed.join(", ")
            ));
        }
        if let Some(name) = CREDENTIAL_HEADERS.iter().find(|h| request.headers().contains_key(**h)) {
            return self.stats.refuse(format!("the plugin set the credential header '{name}' itself"));
        }
        let credential = match &self.policy.credential {
            Some((credential_origin, provider)) if *credential_origin == origin => Some(provider.clone()),
            _ => None,
        };
        let timeout = Some(self.policy.timeout);
        let options = RequestOptions {
            connect_timeout: options.and_then(|o| o.connect_timeout).or(timeout),
            first_byte_timeout: options.and_then(|o| o.first_byte_timeout).or(timeout),
            between_bytes_timeout: options.and_then(|o| o.between_bytes_timeout).or(timeout),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(method = %request.method(), uri = %request.uri(), "outgoing request");
        let stats = self.stats.clone();
        Box::new(async move {
            let Some(provider) = credential else { return send(request, options).await };
            let (name, value) = provider.header().await.map_err(|e| stats.deny(format!("{e:#}")))?;
            // A GET can be sent again as it was (its body is empty), should GitLab refuse the token.
            let again = (request.method() == Method::GET).then(|| {
                let mut copy = http::Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
                *copy.method_mut() = Method::GET;
                *copy.uri_mut() = request.uri().clone();
                *copy.version_mut() = request.version();
                *copy.headers_mut() = request.headers().clone();
                copy
            });
            request.headers_mut().insert(name, value.clone());
            let (response, io) = send(request, options).await?;
            let Some(mut again) = again.filter(|_| response.status() == StatusCode::UNAUTHORIZED) else {
                return Ok((response, io));
            };
            match provider.refresh_after_unauthorized(&value).await {
                Ok(true) => {}
                Ok(false) => return Ok((response, io)),
                Err(e) => return Err(stats.deny(format!("{e:#}"))),
            }
            drop((response, io));
            let (name, value) = provider.header().await.map_err(|e| stats.deny(format!("{e:#}")))?;
            again.headers_mut().insert(name, value);
            stats.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(uri = %again.uri(), "outgoing request sent again with a refreshed credential");
            send(again, options).await
        })
    }
}

/// Send `request` upstream.
async fn send(request: http::Request<WasiBody>, options: RequestOptions) -> GateResult {
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalize_default_ports_and_case() {
        assert_eq!(Origin::of_url("https://GitLab.com/api/v4").unwrap(), Origin("https://gitlab.com:443".into()));
        assert_eq!(Origin::of_url("http://127.0.0.1:8080/x").unwrap().to_string(), "http://127.0.0.1:8080");
        assert!(Origin::of_url("ftp://x").is_err());
    }
}
