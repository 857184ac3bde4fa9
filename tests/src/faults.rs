//! A hostile upstream on demand: latency, 429 storms, random 5xx, truncated bodies, stalled responses
//! and a GitLab-style rate limit, switched on by [`Faults`] in [`crate::SimConfig`].
//!
//! How a request meets them (`routes::handle` calls [`FaultState::admit`] before answering and
//! [`FaultState::deliver`] after):
//!
//! 1. the configured latency is slept;
//! 2. with a rate limit of N requests per window, the window's count is checked: over the limit, the
//!    answer is 429 with `Retry-After` and GitLab's `RateLimit-*` headers; under it, the answer carries
//!    the `RateLimit-*` headers (`Limit`, `Observed`, `Remaining`, `Reset` as a Unix time, `ResetTime`).
//!    Windows are aligned on multiples of their length since the Unix epoch, as GitLab's are;
//! 3. otherwise one random draw decides whether this request gets a fault: a 429 (with the headers the
//!    storm is set to send), a 500/502/503/504, a 401 (the token revoked or expired mid-run), a
//!    truncated body (a `Content-Length` larger than what
//!    is sent, then the connection closed) or a stall (headers, then nothing for [`Faults::stall`]).
//!
//! The draw is deterministic: a function of the seed, the request (method, path and query) and how many
//! times that same request was asked before, so a run's faults do not depend on the order concurrent
//! requests arrive in. [`Faults::max_in_a_row`] bounds how many faults one request meets before it is
//! answered normally (a hostile but recoverable upstream); without it, a 100% mix never recovers.
//! [`FaultState::counts`] tells a test what was injected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header, request::Parts};
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which headers a 429 of a storm carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThrottleHeaders {
    /// Neither `Retry-After` nor `RateLimit-*`: the client must guess (GitLab sometimes does this).
    #[default]
    None,
    /// `Retry-After` only.
    RetryAfter,
    /// `RateLimit-*` only (`RateLimit-Reset` says when).
    RateLimit,
    /// Both.
    Both,
}

/// A GitLab-style rate limit: at most `requests` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    /// Whole seconds (GitLab's `RateLimit-Reset` is a Unix time in seconds).
    pub window_secs: u32,
}

/// The faults a simulator injects (all off by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Slept before every answer.
    pub latency: Duration,
    /// Percent of requests answered 429.
    pub throttle_percent: u8,
    /// The headers of those 429s.
    pub throttle_headers: ThrottleHeaders,
    /// The wait those headers ask for, in seconds.
    pub throttle_wait_secs: u32,
    /// Percent of requests answered 500, 502, 503 or 504.
    pub server_error_percent: u8,
    /// Percent of requests answered 401, as GitLab answers once a token is revoked or has expired.
    pub unauthorized_percent: u8,
    /// Percent of requests whose body is cut short.
    pub truncate_percent: u8,
    /// Percent of requests whose body never comes.
    pub stall_percent: u8,
    /// How long a stalled body hangs before the connection is closed.
    pub stall: Duration,
    /// After this many faults in a row for the same request, it is answered normally.
    pub max_in_a_row: Option<u32>,
    /// A rate limit, with GitLab's headers on every answer.
    pub rate_limit: Option<RateLimit>,
    /// Close the connection after every answer (`Connection: close`): no keep-alive.
    pub close_connections: bool,
    /// Only requests whose path (with its query) contains this meet the random faults (default: all
    /// requests): `/issues` for one endpoint, `page=2` for one page.
    pub path_contains: Option<String>,
}

impl Faults {
    /// Whether any fault is configured.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// Why these faults make no sense, if they do not.
    pub fn check(&self) -> Result<(), String> {
        let total: u32 = self.table().iter().map(|(p, _)| u32::from(*p)).sum();
        if total > 100 {
            return Err(format!("the fault percentages add up to {total}, more than 100"));
        }
        if let Some(limit) = self.rate_limit
            && (limit.requests == 0 || limit.window_secs == 0)
        {
            return Err("a rate limit needs at least 1 request per window of at least 1 second".into());
        }
        Ok(())
    }

    /// The random faults and their shares, in draw order.
    fn table(&self) -> [(u8, Kind); 5] {
        [
            (self.throttle_percent, Kind::Throttle),
            (self.server_error_percent, Kind::ServerError),
            (self.unauthorized_percent, Kind::Unauthorized),
            (self.truncate_percent, Kind::Truncate),
            (self.stall_percent, Kind::Stall),
        ]
    }

    /// The fault (if any) for the `attempt`-th time (from 0) a request with this `key` is asked, and a
    /// number to pick its variant.
    fn draw(&self, seed: u64, key: &str, attempt: u32) -> Option<(Kind, u32)> {
        if self.max_in_a_row.is_some_and(|max| attempt >= max) {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(key.as_bytes()) ^ u64::from(attempt).rotate_left(32));
        let roll = rng.random_range(0..100u32);
        let variant = rng.random();
        let mut bound = 0;
        for (percent, kind) in self.table() {
            bound += u32::from(percent);
            if roll < bound {
                return Some((kind, variant));
            }
        }
        None
    }
}

/// FNV-1a: a hash that stays the same across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Throttle,
    ServerError,
    Unauthorized,
    Truncate,
    Stall,
}

/// How many of each fault a simulator injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// 429s of a storm.
    pub throttled: u64,
    /// 500/502/503/504 answers.
    pub server_errors: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// Bodies cut short.
    pub truncated: u64,
    /// Bodies that never came.
    pub stalled: u64,
    /// 429s of the rate limit.
    pub rate_limited: u64,
    /// 429s of the rate limit after its first window (the one of the first request).
    pub rate_limited_after_first_window: u64,
}

/// What [`FaultState::admit`] decided for a request.
pub(crate) enum Admission {
    /// Answer normally, then [`Admitted::deliver`].
    Answer(Admitted),
    /// Answer this (with this status) instead.
    Refuse(Response<Body>, u16),
}

/// An admitted request: the headers its answer gets, and whether its body is broken.
pub(crate) struct Admitted {
    headers: Vec<(HeaderName, String)>,
    body: Option<BodyFault>,
    close: bool,
}

impl Admitted {
    /// `response` as it goes on the wire: with the rate-limit headers, gzip-compressed if the client
    /// accepts it and `gzip` is on, and its body broken if so drawn.
    pub async fn deliver(self, parts: &Parts, mut response: Response<Body>, gzip: bool) -> Response<Body> {
        add_headers(&mut response, self.headers);
        if self.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if gzip {
            response = crate::encoding::gzip(parts, response).await;
        }
        match self.body {
            Some(fault) => break_body(response, fault).await,
            None => response,
        }
    }
}

/// How an answer's body is broken.
#[derive(Clone, Copy, Debug)]
enum BodyFault {
    Truncate,
    Stall(Duration),
}

/// The faults of a running simulator and what they have done.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    seed: u64,
    /// How often each request was asked.
    attempts: Mutex<HashMap<String, u32>>,
    /// The rate limit's first and current windows (their index since the epoch), and the current count.
    window: Mutex<Option<(u64, u64, u32)>>,
    counts: Mutex<FaultCounts>,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> FaultState {
        FaultState { faults, seed, attempts: Mutex::default(), window: Mutex::default(), counts: Mutex::default() }
    }

    /// What was injected so far.
    pub fn counts(&self) -> FaultCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, kind: impl FnOnce(&mut FaultCounts) -> &mut u64) {
        *kind(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner())) += 1;
    }

    /// Before answering `parts`: sleep the latency, apply the rate limit, draw a fault.
    pub async fn admit(&self, parts: &Parts) -> Admission {
        let faults = &self.faults;
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let mut headers = Vec::new();
        if let Some(limit) = faults.rate_limit {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let window = now.as_secs() / u64::from(limit.window_secs);
            let reset = (window + 1) * u64::from(limit.window_secs);
            let (first, observed) = {
                let mut state = self.window.lock().unwrap_or_else(|e| e.into_inner());
                let (first, current, count) = state.get_or_insert((window, window, 0));
                if *current != window {
                    (*current, *count) = (window, 0);
                }
                *count += 1;
                (*first, *count)
            };
            headers = rate_limit_headers(limit.requests, observed.min(limit.requests), reset);
            if observed > limit.requests {
                self.count(|c| &mut c.rate_limited);
                if window != first {
                    self.count(|c| &mut c.rate_limited_after_first_window);
                }
                let wait = Duration::from_secs(reset).saturating_sub(now).as_secs_f64().ceil().max(1.0);
                headers.push((header::RETRY_AFTER, format!("{wait}")));
                return Admission::Refuse(too_many_requests(headers), 429);
            }
        }
        let targeted = faults
            .path_contains
            .as_deref()
            .is_none_or(|part| parts.uri.path_and_query().is_some_and(|p| p.as_str().contains(part)));
        if !targeted || faults.table().iter().all(|(percent, _)| *percent == 0) {
            return Admission::Answer(Admitted { headers, body: None, close: faults.close_connections });
        }
        let key = format!("{} {}", parts.method, parts.uri.path_and_query().map_or("", |p| p.as_str()));
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let n = attempts.entry(key.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let Some((kind, variant)) = faults.draw(self.seed, &key, attempt) else {
            return Admission::Answer(Admitted { headers, body: None, close: faults.close_connections });
        };
        match kind {
            Kind::Throttle => {
                self.count(|c| &mut c.throttled);
                let wait = u64::from(faults.throttle_wait_secs.max(1));
                // The next whole second, so that the reset is at least `wait` away.
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 1;
                let mut headers = Vec::new();
                if matches!(faults.throttle_headers, ThrottleHeaders::RetryAfter | ThrottleHeaders::Both) {
                    headers.push((header::RETRY_AFTER, wait.to_string()));
                }
                if matches!(faults.throttle_headers, ThrottleHeaders::RateLimit | ThrottleHeaders::Both) {
                    headers.extend(rate_limit_headers(600, 600, now + wait));
                }
                Admission::Refuse(too_many_requests(headers), 429)
            }
            Kind::ServerError => {
                self.count(|c| &mut c.server_errors);
                let (status, body) = SERVER_ERRORS[variant as usize % SERVER_ERRORS.len()];
                Admission::Refuse(server_error(status, body), status.as_u16())
            }
            Kind::Unauthorized => {
                self.count(|c| &mut c.unauthorized);
                Admission::Refuse(server_error(StatusCode::UNAUTHORIZED, UNAUTHORIZED), 401)
            }
            Kind::Truncate => {
                self.count(|c| &mut c.truncated);
                Admission::Answer(Admitted { headers, body: Some(BodyFault::Truncate), close: true })
            }
            Kind::Stall => {
                self.count(|c| &mut c.stalled);
                Admission::Answer(Admitted { headers, body: Some(BodyFault::Stall(faults.stall)), close: true })
            }
        }
    }
}

/// GitLab's `RateLimit-*` headers.
fn rate_limit_headers(limit: u32, observed: u32, reset: u64) -> Vec<(HeaderName, String)> {
    let reset_time = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(reset));
    vec![
        (HeaderName::from_static("ratelimit-limit"), limit.to_string()),
        (HeaderName::from_static("ratelimit-observed"), observed.to_string()),
        (HeaderName::from_static("ratelimit-remaining"), limit.saturating_sub(observed).to_string()),
        (HeaderName::from_static("ratelimit-reset"), reset.to_string()),
        (HeaderName::from_static("ratelimit-resettime"), reset_time),
    ]
}

/// The 5xx answers, as GitLab and the proxies in front of it send them.
const SERVER_ERRORS: [(StatusCode, &str); 4] = [
    (StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"500 Internal Server Error"}"#),
    (StatusCode::BAD_GATEWAY, "<html><body><h1>502 Bad Gateway</h1></body></html>\n"),
    (StatusCode::SERVICE_UNAVAILABLE, "<html><body><h1>503 Service Unavailable</h1></body></html>\n"),
    (StatusCode::GATEWAY_TIMEOUT, "<html><body><h1>GitLab is not responding</h1></body></html>\n"),
];

/// GitLab's 401 for a token it no longer accepts.
const UNAUTHORIZED: &str = r#"{"message":"401 Unauthorized"}"#;

fn too_many_requests(headers: Vec<(HeaderName, String)>) -> Response<Body> {
    let mut response = Response::new(Body::from("Retry later\n"));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    add_headers(&mut response, headers);
    response
}

/// An error answer of `status` with `body` (JSON or HTML, as its first byte says).
fn server_error(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let kind = if body.starts_with('{') { "application/json" } else { "text/html" };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

/// Add `headers` to `response`.
fn add_headers(response: &mut Response<Body>, headers: Vec<(HeaderName, String)>) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Break `response`'s body as `fault` says: the headers (with the full `Content-Length`) go out, then
/// half the body (truncated) or nothing (stalled), then the connection is closed.
async fn break_body(response: Response<Body>, fault: BodyFault) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let (sent, pause) = match fault {
        BodyFault::Truncate => (bytes.slice(..bytes.len() / 2), Duration::from_millis(50)),
        BodyFault::Stall(stall) => (bytes.slice(..0), stall),
    };
    let head = futures_util::stream::iter((!sent.is_empty()).then_some(Ok::<_, std::io::Error>(sent)));
    let end = futures_util::stream::once(async move {
        // Let what was sent reach the client before the connection is closed.
        tokio::time::sleep(pause).await;
        Err(std::io::Error::other("fault injected: the connection is closed mid-body"))
    });
    Response::from_parts(parts, Body::from_stream(head.chain(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix() -> Faults {
        Faults {
            throttle_percent: 10,
            server_error_percent: 20,
            truncate_percent: 5,
            stall_percent: 5,
            max_in_a_row: Some(2),
            ..Faults::default()
        }
    }

    #[test]
    fn draws_are_deterministic_and_near_their_shares() {
        let faults = mix();
        let draws: Vec<Option<Kind>> =
            (0..2000).map(|i| faults.draw(7, &format!("GET /api/v4/x?page={i}"), 0).map(|d| d.0)).collect();
        let again: Vec<Option<Kind>> =
            (0..2000).map(|i| faults.draw(7, &format!("GET /api/v4/x?page={i}"), 0).map(|d| d.0)).collect();
        assert_eq!(draws, again);
        let share = |kind| draws.iter().filter(|d| **d == Some(kind)).count() as f64 / 2000.0;
        assert!((share(Kind::ServerError) - 0.20).abs() < 0.03, "{}", share(Kind::ServerError));
        assert!((share(Kind::Throttle) - 0.10).abs() < 0.03, "{}", share(Kind::Throttle));
        let other_seed = (0..2000).filter(|i| faults.draw(8, &format!("GET /api/v4/x?page={i}"), 0).is_some()).count();
        assert_ne!(draws.iter().filter(|d| d.is_some()).count(), other_seed);
    }

    #[test]
    fn max_in_a_row_lets_a_request_through_at_last() {
        let all = Faults { server_error_percent: 100, max_in_a_row: Some(3), ..Faults::default() };
        let kinds: Vec<bool> = (0..5).map(|n| all.draw(1, "GET /x", n).is_some()).collect();
        assert_eq!(kinds, [true, true, true, false, false]);
        let forever = Faults { server_error_percent: 100, ..Faults::default() };
        assert!((0..50).all(|n| forever.draw(1, "GET /x", n).is_some()));
    }

    #[test]
    fn percentages_over_100_are_refused() {
        let too_much = Faults { throttle_percent: 60, server_error_percent: 50, ..Faults::default() };
        assert_eq!(too_much.check().unwrap_err(), "the fault percentages add up to 110, more than 100");
        assert!(mix().check().is_ok());
    }
}
