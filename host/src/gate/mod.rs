//! The outgoing-HTTP gate: the host side of `wasi:http`, through which every request a plugin makes
//! must pass.
//!
//! ```text
//!  plugin request ──► origin in the tenant's allow-list? ── no ──► refused (HttpRequestDenied), reason kept
//!                 ──► a credential header set by the plugin? ── yes ──► refused
//!                 ──► its turn in the tenant's pace (`pacing`; the page loop usually took it already)
//!                 ──► the tenant's credential, for the tenant's GitLab origin only; `accept-encoding: gzip`
//!                 ──► the tenant's pooled client (`upstream`): resolve, refuse non-global addresses
//!                     (except the tenant's own GitLab origin), connect, send
//!                 ──► response: status and `RateLimit-*` headers noted (pace, 429 count, retry advice);
//!                     a 401 lets a refreshable credential refresh and the request go again (up to
//!                     `CREDENTIAL_RESENDS` times);
//!                     the body counted, timed and gzip-decoded by a task of its own as it arrives,
//!                     queued for the plugin (`buffered`)
//! ```
//!
//! - [`address`]: which IP addresses are not global.
//! - [`upstream`]: the pooled client and its checking connector, the response body.
//! - [`buffered`]: response bodies drained off the connection while the plugin works.
//! - [`gunzip`]: gzip bodies decoded as they arrive, into the frames the plugin reads.
//! - [`pacing`]: when each request may start.
//! - [`running`]: a sandbox's requests still running, settled before its figures are read.
//!
//! Per-tenant state ([`GatePolicy`]: settings, pooled client, pacer) is shared by the tenant's sandboxes;
//! per-sandbox figures ([`GateStats`]) are read by the page loop and the summary. The gate itself never
//! retries (but for the resends after a credential refresh): retries happen in the page loop
//! (`crate::retry`), outside the plugin's call deadline.

mod address;
mod buffered;
mod gunzip;
mod pacing;
mod running;
mod upstream;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
};

use crate::credential::CredentialProvider;
use crate::retry::RetryPolicy;
use buffered::{BodyBudget, BufferedBody};
pub use pacing::{Pacer, RateLimitHeaders, Turn};
pub use running::RunningRequests;
pub use upstream::Timeouts;
use upstream::{GateBody, SendError, Upstream};

/// Headers that carry credentials: only the host may set them.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "private-token", "job-token", "cookie"];

/// An origin: scheme, host and port, as in `https://gitlab.com:443`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

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
        Ok(Origin { scheme: parsed.scheme().to_owned(), host: host.to_ascii_lowercase(), port })
    }

    fn of_uri(uri: &http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?;
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some(Origin { scheme: scheme.to_owned(), host: host.to_ascii_lowercase(), port })
    }

    fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the gate gets the tenant's credential: a header before every request bound for the tenant's
/// GitLab origin, and a chance to refresh when GitLab refuses it (401), after which the gate resends the
/// request. A static token never refreshes; an OAuth2 credential refreshes its access token.
pub trait CredentialHeader: Send + Sync {
    /// The header to send (marked sensitive), or why there is none.
    fn header(&self) -> BoxFuture<'_, Result<(HeaderName, HeaderValue), String>>;
    /// GitLab answered 401 to a request that carried `rejected`: true when a fresh header is now ready.
    fn refresh(&self, rejected: &HeaderValue) -> BoxFuture<'_, bool>;
    /// Why the credential can no longer be used, once a refresh has failed for good.
    fn failure(&self) -> Option<String> {
        None
    }
}

impl CredentialHeader for CredentialProvider {
    fn header(&self) -> BoxFuture<'_, Result<(HeaderName, HeaderValue), String>> {
        Box::pin(async move { CredentialProvider::header(self).await.map_err(|e| format!("{e:#}")) })
    }

    fn refresh(&self, rejected: &HeaderValue) -> BoxFuture<'_, bool> {
        let rejected = rejected.clone();
        Box::pin(async move {
            match self.refresh_after_unauthorized(&rejected).await {
                Ok(fresh) => fresh,
                // The refresh failed (e.g. the refresh token was revoked): the next header() says why.
                Err(e) => {
                    tracing::warn!(
                        "refreshing the credential failed: {}",
                        crate::credential::redact(&format!("{e:#}"))
                    );
                    false
                }
            }
        })
    }

    fn failure(&self) -> Option<String> {
        CredentialProvider::failure(self)
    }
}

/// A tenant's gate settings, as the command line (and later the tenant's file) gives them.
pub struct GateSettings {
    /// Origins the plugin may send requests to.
    pub allowed: Vec<Origin>,
    /// The tenant's GitLab origin: the only one that gets the credential, and the only one that may be at
    /// a non-global address.
    pub gitlab: Option<Origin>,
    /// The tenant's credential, sent to `gitlab` only.
    pub credential: Option<Arc<dyn CredentialHeader>>,
    pub timeouts: Timeouts,
    /// At most this many requests a minute (none: as fast as the upstream's rate limit allows).
    pub max_requests_per_minute: Option<u32>,
    /// How retryable failures are retried (by the page loop).
    pub retry: RetryPolicy,
    /// The most body bytes one response may carry (as received); none: no limit.
    pub max_response_bytes: Option<u64>,
    /// The most response body bytes all the tenant's requests of the run may carry; none: no limit.
    pub max_run_bytes: Option<u64>,
}

/// A tenant's gate: its settings, its pooled client and its pace, shared by all its sandboxes.
pub struct GatePolicy {
    pub settings: GateSettings,
    upstream: Upstream,
    pub pacer: Arc<Pacer>,
    /// Response body bytes received by all the tenant's sandboxes in this run.
    run_bytes: AtomicU64,
}

impl std::fmt::Debug for GatePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatePolicy")
            .field("allowed", &self.settings.allowed)
            .field("gitlab", &self.settings.gitlab)
            .finish_non_exhaustive()
    }
}

impl GatePolicy {
    pub fn new(settings: GateSettings) -> GatePolicy {
        let upstream = Upstream::new(settings.gitlab.clone(), settings.timeouts.connect);
        let pacer = Arc::new(Pacer::new(settings.max_requests_per_minute, settings.retry.max_wait));
        GatePolicy { settings, upstream, pacer, run_bytes: AtomicU64::new(0) }
    }

    /// Count `bytes` of a response body received; the limit they broke, if they broke one.
    fn receive(&self, bytes: u64, response_so_far: u64) -> Option<String> {
        let run = self.run_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(limit) = self.settings.max_response_bytes
            && response_so_far > limit
        {
            return Some(format!("a response exceeded the tenant's limit of {limit} bytes per response"));
        }
        self.run_over_budget(run)
    }

    /// Why the tenant may receive nothing more this run, if `received` bytes are past its budget.
    fn run_over_budget(&self, received: u64) -> Option<String> {
        let limit = self.settings.max_run_bytes?;
        (received > limit).then(|| format!("the tenant exceeded its limit of {limit} response bytes per run"))
    }

    /// Why the tenant's credential can no longer be used (a refused OAuth2 refresh...), if it is known.
    pub fn credential_failure(&self) -> Option<String> {
        self.settings.credential.as_ref().and_then(|c| c.failure())
    }

    /// A gate that lets nothing out: for `list-objects` and `describe-schema`.
    pub fn offline(timeout: Duration) -> GatePolicy {
        GatePolicy::new(GateSettings {
            allowed: Vec::new(),
            gitlab: None,
            credential: None,
            timeouts: Timeouts { connect: timeout, first_byte: timeout, between_bytes: timeout },
            max_requests_per_minute: None,
            retry: RetryPolicy::default(),
            max_response_bytes: None,
            max_run_bytes: None,
        })
    }

    fn allows(&self, origin: &Origin) -> bool {
        self.settings.allowed.contains(origin)
    }
}

/// A failed response the gate saw for a sandbox: its status, its rate-limit headers, and when.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    pub status: u16,
    pub limits: RateLimitHeaders,
    pub at: tokio::time::Instant,
}

/// What the gate saw for one sandbox, shared between the sandbox and the host that reports on it.
#[derive(Default)]
pub struct GateStats {
    /// Requests sent upstream.
    pub requests: AtomicU64,
    /// Requests refused, each with the reason.
    pub refusals: Mutex<Vec<String>>,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Response body bytes received (as sent, before decompression).
    pub bytes_in: AtomicU64,
    /// Request bytes sent: request lines, headers (the credential's included) and bodies.
    pub bytes_out: AtomicU64,
    /// Calls retried by the page loop.
    pub retries: AtomicU64,
    /// CPU time spent in calls into the plugin (its code and the host functions it called), in ns.
    pub plugin_cpu_nanos: AtomicU64,
    /// The tenant's byte limit the sandbox broke, if it broke one (its partition ends, alone).
    exceeded: Mutex<Option<String>>,
    /// The latest response with a failing status (4xx, 5xx): what the retry loop checks a plugin's
    /// report of an upstream failure against.
    failure: Mutex<Option<Observed>>,
    /// A turn the page loop took for the next request.
    prepaid: Mutex<Option<Turn>>,
    /// How much of its response bodies the sandbox may have drained and not read yet.
    body_budget: BodyBudget,
    /// Its requests still running (see `running`): settled before its figures are read.
    pub running: Arc<RunningRequests>,
}

impl std::fmt::Debug for GateStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateStats").field("requests", &self.requests).finish_non_exhaustive()
    }
}

impl GateStats {
    fn refuse(&self, reason: String) -> HttpError {
        tracing::warn!("outgoing request refused: {reason}");
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).push(reason);
        HttpError::HttpRequestDenied
    }

    /// Note that a byte limit was broken; the error the plugin sees.
    fn exceed(&self, reason: String) -> HttpError {
        tracing::warn!("{reason}");
        self.exceeded.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(reason);
        HttpError::HttpResponseBodySize(None)
    }

    /// The byte limit the sandbox broke, if any.
    pub fn exceeded(&self) -> Option<String> {
        self.exceeded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The refusals so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests were refused so far.
    pub fn refusal_count(&self) -> usize {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Hand the gate a turn already waited for, for the next request.
    pub fn prepay(&self, turn: Turn) {
        *self.prepaid.lock().unwrap_or_else(|e| e.into_inner()) = Some(turn);
    }

    /// Take back the prepaid turn if no request used it.
    pub fn unused_turn(&self) -> Option<Turn> {
        self.prepaid.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Forget a failed response seen before `instant` (a call that began then has since succeeded, so
    /// that failure is behind it). One seen later stays: it may be the answer to a request read ahead
    /// during that call, which the next call will report.
    pub fn forget_failure_before(&self, instant: tokio::time::Instant) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_some_and(|f| f.at < instant) {
            *failure = None;
        }
    }

    /// The latest failed response not forgotten by [`GateStats::forget_failure_before`].
    pub fn failure(&self) -> Option<Observed> {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn observe(&self, status: u16, limits: RateLimitHeaders) {
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        if status >= 400 {
            let observed = Observed { status, limits, at: tokio::time::Instant::now() };
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(observed);
        }
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
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = GateResult> + Send> {
        drop(fut);
        let refused = |reason: String| -> Box<dyn Future<Output = GateResult> + Send> {
            let error = self.stats.refuse(reason);
            Box::new(async { Err(error) })
        };
        let Some(origin) = Origin::of_uri(request.uri()) else {
            return refused(format!("'{}' is not an absolute http(s) URL", request.uri()));
        };
        if !self.policy.allows(&origin) {
            let allowed: Vec<String> = self.policy.settings.allowed.iter().map(Origin::to_string).collect();
            return refused(format!(
                "the plugin tried to reach {origin}, which is not in this tenant's allow-list ({})",
                allowed.join(", ")
            ));
        }
        if let Some(name) = CREDENTIAL_HEADERS.iter().find(|h| request.headers().contains_key(**h)) {
            return refused(format!("the plugin set the credential header '{name}' itself"));
        }
        if let Some(reason) = self.policy.run_over_budget(self.policy.run_bytes.load(Ordering::Relaxed)) {
            let error = self.stats.exceed(reason);
            return Box::new(async { Err(error) });
        }
        let settings = &self.policy.settings;
        // The plugin may ask for shorter timeouts, never longer ones.
        let shorter = |asked: Option<Duration>, ours: Duration| asked.map_or(ours, |a| a.min(ours));
        let timeouts = Timeouts {
            connect: shorter(options.and_then(|o| o.connect_timeout), settings.timeouts.connect),
            first_byte: shorter(options.and_then(|o| o.first_byte_timeout), settings.timeouts.first_byte),
            between_bytes: shorter(options.and_then(|o| o.between_bytes_timeout), settings.timeouts.between_bytes),
        };
        let credential = settings.credential.clone().filter(|_| settings.gitlab.as_ref() == Some(&origin));
        // The page loop's turn is taken now, in the plugin's call: the request itself leaves in a task
        // of its own, perhaps after the call returned (a page read ahead) and its turn was handed back.
        let prepaid = self.stats.unused_turn();
        Box::new(send(self.policy.clone(), self.stats.clone(), request, credential, timeouts, prepaid))
    }
}

/// Send an allowed request (see the module docs).
async fn send(
    policy: Arc<GatePolicy>,
    stats: Arc<GateStats>,
    mut request: http::Request<WasiBody>,
    credential: Option<Arc<dyn CredentialHeader>>,
    timeouts: Timeouts,
    prepaid: Option<Turn>,
) -> GateResult {
    let gzip = !request.headers().contains_key(header::ACCEPT_ENCODING);
    if gzip {
        request.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // A bodiless request can be sent again after a credential refresh.
    let resend = (credential.is_some() && request.body().is_end_stream()).then(|| with_body(&request, ()));
    let mut response = exchange(&policy, &stats, request, credential.as_deref(), timeouts, prepaid).await?;
    let mut resends = 0;
    while response.status() == http::StatusCode::UNAUTHORIZED
        && resends < CREDENTIAL_RESENDS
        && let (Some(credential), Some(again)) = (&credential, &resend)
        && let Some(rejected) = response.extensions().get::<SentCredential>()
        && credential.refresh(&rejected.0).await
    {
        resends += 1;
        tracing::info!("GitLab refused the credential; it was refreshed and the request is sent again");
        let again = with_body(again, Empty::new().map_err(|never| match never {}).boxed_unsync());
        response = exchange(&policy, &stats, again, Some(credential.as_ref()), timeouts, None).await?;
    }
    let gzip = gzip && response.headers().get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() == b"gzip");
    if gzip {
        response.headers_mut().remove(header::CONTENT_ENCODING);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let budget = stats.body_budget.clone();
    let response = response.map(|body| {
        BufferedBody::new(GateBody::new(body, policy, stats, timeouts.between_bytes, gzip), budget).boxed_unsync()
    });
    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
}

/// `request`'s method, URL and headers, with `body`.
fn with_body<A, B>(request: &http::Request<A>, body: B) -> http::Request<B> {
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// The bytes of a request as HTTP/1.1 sends them: request line, headers and a known-length body.
fn request_size(request: &http::Request<WasiBody>) -> u64 {
    let line = request.method().as_str().len() + request.uri().to_string().len() + " HTTP/1.1\r\n ".len();
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    let body = request.body().size_hint().exact().unwrap_or(0);
    (line + headers + 2) as u64 + body
}

/// How many times the gate sends a request again after GitLab refused its credential (401) and the
/// credential was refreshed. More than once: processes sharing an OAuth2 token file adopt each
/// other's refreshed tokens, and a token adopted may be spent or replaced again before this request
/// uses it. Each resend needs a refresh that succeeded, so a refused refresh ends it at once.
const CREDENTIAL_RESENDS: u32 = 3;

/// The credential header a response was answered to (kept on the response for the 401 path).
#[derive(Clone)]
struct SentCredential(HeaderValue);

/// One request and its response headers, in the tenant's pace.
async fn exchange(
    policy: &Arc<GatePolicy>,
    stats: &GateStats,
    mut request: http::Request<WasiBody>,
    credential: Option<&dyn CredentialHeader>,
    timeouts: Timeouts,
    prepaid: Option<Turn>,
) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
    let sent = match credential {
        Some(credential) => {
            let (name, value) = credential.header().await.map_err(|reason| stats.refuse(reason))?;
            request.headers_mut().insert(name, value.clone());
            Some(SentCredential(value))
        }
        None => None,
    };
    let turn = match prepaid {
        Some(turn) => turn,
        None => policy.pacer.turn().await,
    };
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats.bytes_out.fetch_add(request_size(&request), Ordering::Relaxed);
    let method = request.method().clone();
    let target = request.uri().clone();
    let started = tokio::time::Instant::now();
    match policy.upstream.send(request, timeouts).await {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let limits = RateLimitHeaders::parse(response.headers(), SystemTime::now());
            tracing::debug!(%method, uri = %target, status, ms = started.elapsed().as_millis() as u64, "response");
            turn.finish(status, &limits);
            stats.observe(status, limits);
            if let Some(sent) = sent {
                response.extensions_mut().insert(sent);
            }
            Ok(response)
        }
        Err(SendError::Refused(reason)) => Err(stats.refuse(reason)),
        Err(SendError::Failed(error)) => {
            tracing::debug!(%method, uri = %target, %error, "no response");
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests;
