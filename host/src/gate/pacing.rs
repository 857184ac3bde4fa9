//! Pacing: when each of a tenant's requests may start, so that the tenant stays within GitLab's rate
//! limit instead of bursting into 429s.
//!
//! Every request takes a [`Turn`] from the tenant's [`Pacer`] before it is sent and hands it back with
//! what the response said ([`RateLimitHeaders`]: `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset`, `Retry-After`). The pacer keeps:
//!
//! - a minimum spacing from the tenant's requests-per-minute cap, if any (60 s / cap between starts);
//! - an estimate of the current window: the requests left (the last `RateLimit-Remaining` less the
//!   requests still in flight, counted down at each turn) and when it resets. While plenty are left,
//!   requests go at once; once at most a fifth of the limit is left, the remaining requests are spread
//!   evenly until the reset; none left, the next request waits for the reset. A new window starts
//!   with the whole limit (once a response told it), ending a window's length later (the shortest
//!   time seen between two resets); its first response corrects both;
//! - after a 429 that says how long (`Retry-After`, else `RateLimit-Reset`), a block of the whole tenant
//!   until then, bounded by the tenant's retry budget.
//!
//! Waiting for a turn happens in the page loop, before a plugin call (outside its deadline), for the
//! first request of the call; further requests in the same call wait in the gate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use tokio::time::Instant;

/// Above this many seconds a `RateLimit-Reset` is taken as a Unix time, below it as seconds to wait.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;
/// Waits an upstream asks for are capped at this (a wrong header must not park a tenant for days).
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// A `Date` header this far from the local clock means the clocks disagree: use the server's.
const SKEW_TOLERANCE: Duration = Duration::from_secs(2);
/// Waiting for a window's reset, wait this much longer, so as not to arrive a hair early.
const RESET_MARGIN: Duration = Duration::from_millis(100);
/// A window's length until two resets have been seen.
const SHORTEST_WINDOW: Duration = Duration::from_secs(1);

/// What one response said about the tenant's rate limit; every field optional, as GitLab sends them
/// only on some responses.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Limit`: requests allowed per window.
    pub limit: Option<u64>,
    /// `RateLimit-Remaining`: requests left in this window.
    pub remaining: Option<u64>,
    /// `RateLimit-Reset` (a Unix time), as the time left until the window resets.
    pub reset_in: Option<Duration>,
    /// `Retry-After` (seconds or an HTTP date), on a 429.
    pub retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    /// Read the headers of a response received at `now` (the local clock).
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> RateLimitHeaders {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        // Measure against the server's clock when ours is clearly off.
        let server_now = text("date").and_then(|d| httpdate::parse_http_date(d).ok()).filter(|date| {
            let skew = date.duration_since(now).or_else(|_| now.duration_since(*date)).unwrap_or_default();
            skew > SKEW_TOLERANCE
        });
        let now = server_now.unwrap_or(now);
        let until = |epoch: SystemTime| epoch.duration_since(now).unwrap_or_default().min(LONGEST_WAIT);
        let reset_in = number("ratelimit-reset").map(|reset| {
            if reset >= EPOCH_THRESHOLD {
                until(UNIX_EPOCH + Duration::from_secs(reset))
            } else {
                Duration::from_secs(reset).min(LONGEST_WAIT)
            }
        });
        let retry_after = text("retry-after").and_then(|v| match v.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds).min(LONGEST_WAIT)),
            Err(_) => httpdate::parse_http_date(v).ok().map(until),
        });
        RateLimitHeaders {
            limit: number("ratelimit-limit"),
            remaining: number("ratelimit-remaining"),
            reset_in,
            retry_after,
        }
    }

    /// How long a 429 asks to wait: `Retry-After`, else until `RateLimit-Reset`.
    pub fn wait(&self) -> Option<Duration> {
        self.retry_after.or(self.reset_in)
    }
}

/// A tenant's pacer (see the module docs).
pub struct Pacer {
    /// From the requests-per-minute cap.
    min_spacing: Duration,
    /// The longest a 429 may block the tenant (its retry budget).
    longest_block: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The earliest the next request may start.
    next_start: Option<Instant>,
    /// After a 429: no request starts before this.
    blocked_until: Option<Instant>,
    window: Option<Window>,
    /// Turns taken and not yet handed back.
    in_flight: u64,
    /// The reset of the last window a response told of, and the shortest time seen between two
    /// such resets: the window's length, to carry the budget across a reset.
    last_reset: Option<Instant>,
    window_length: Option<Duration>,
}

/// The upstream's current rate-limit window, as estimated.
#[derive(Debug)]
struct Window {
    limit: Option<u64>,
    remaining: u64,
    reset_at: Instant,
}

impl Window {
    /// Once this few requests are left, they are spread until the reset.
    fn low(&self) -> u64 {
        self.limit.map_or(10, |limit| limit.div_ceil(5)).max(1)
    }
}

/// One request's place in the pace; hand it back with [`Turn::finish`] (dropping it counts as a
/// request that got no answer).
pub struct Turn {
    pacer: Option<Arc<Pacer>>,
}

impl Turn {
    /// The request was answered with `status` and these headers.
    pub fn finish(mut self, status: u16, headers: &RateLimitHeaders) {
        if let Some(pacer) = self.pacer.take() {
            pacer.observe(Instant::now(), status, headers);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(pacer) = self.pacer.take() {
            let mut state = pacer.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

impl Pacer {
    /// A pacer with at most `per_minute` requests a minute (none: no cap), whose 429 blocks last at most
    /// `longest_block`.
    pub fn new(per_minute: Option<u32>, longest_block: Duration) -> Pacer {
        let min_spacing = per_minute.filter(|n| *n > 0).map_or(Duration::ZERO, |n| Duration::from_secs(60) / n);
        let state = State {
            next_start: None,
            blocked_until: None,
            window: None,
            in_flight: 0,
            last_reset: None,
            window_length: None,
        };
        Pacer { min_spacing, longest_block, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for this request's turn.
    pub async fn turn(self: &Arc<Self>) -> Turn {
        let start = self.reserve(Instant::now());
        if start > Instant::now() {
            tracing::debug!(wait_ms = (start - Instant::now()).as_millis() as u64, "pacing");
            tokio::time::sleep_until(start).await;
        }
        Turn { pacer: Some(self.clone()) }
    }

    /// When a request asked for at `now` may start; counts it in flight.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let mut start = state.next_start.map_or(now, |next| now.max(next));
        match state.blocked_until {
            Some(until) if until > start => start = until,
            Some(_) => state.blocked_until = None,
            None => {}
        }
        let mut spacing = self.min_spacing;
        let length = state.window_length.unwrap_or(SHORTEST_WINDOW);
        if let Some(window) = &mut state.window {
            if window.remaining == 0 {
                start = start.max(window.reset_at + RESET_MARGIN);
            }
            if start >= window.reset_at + RESET_MARGIN {
                // The next window. With the limit known, it starts with the whole limit and ends a
                // window's length later (a response of it corrects both at once); else its budget is
                // unknown until a response tells.
                match window.limit {
                    Some(limit) => {
                        // The window that `start` falls in (an idle tenant may have skipped several).
                        let behind = start - (window.reset_at + RESET_MARGIN);
                        let windows = u32::try_from(behind.as_nanos() / length.as_nanos() + 1).unwrap_or(u32::MAX);
                        window.reset_at += length.saturating_mul(windows);
                        window.remaining = limit;
                    }
                    None => state.window = None,
                }
            }
        }
        if let Some(window) = &mut state.window {
            if window.remaining <= window.low() {
                let left = window.reset_at.saturating_duration_since(start);
                spacing = spacing.max(left / u32::try_from(window.remaining.max(1)).unwrap_or(u32::MAX));
            }
            window.remaining = window.remaining.saturating_sub(1);
        }
        state.next_start = Some(start + spacing);
        state.in_flight += 1;
        start
    }

    /// A turn ended at `now` with `status` and `headers`.
    fn observe(&self, now: Instant, status: u16, headers: &RateLimitHeaders) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if let (Some(remaining), Some(reset_in)) = (headers.remaining, headers.reset_in)
            && !reset_in.is_zero()
        {
            let reset_at = now + reset_in;
            // What the upstream counted, less what it has not seen yet.
            let estimate = remaining.saturating_sub(state.in_flight);
            let half = Duration::from_millis(500);
            match &mut state.window {
                Some(window) if reset_at + half < window.reset_at => {} // a late answer from an older window
                Some(window) if reset_at < window.reset_at + half => {
                    window.remaining = window.remaining.min(estimate);
                    window.limit = headers.limit.or(window.limit);
                }
                _ => {
                    if let Some(last) = state.last_reset
                        && reset_at > last + half
                    {
                        let length = reset_at - last;
                        state.window_length = Some(state.window_length.map_or(length, |l| l.min(length)));
                    }
                    state.last_reset = Some(reset_at);
                    state.window = Some(Window { limit: headers.limit, remaining: estimate, reset_at });
                }
            }
        }
        if status == 429 {
            if let Some(wait) = headers.wait() {
                let until = now + wait.min(self.longest_block);
                state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
            }
            if let Some(window) = &mut state.window {
                window.remaining = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn reads_gitlab_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = RateLimitHeaders::parse(
            &headers(&[
                ("ratelimit-limit", "2000"),
                ("ratelimit-remaining", "1990"),
                ("ratelimit-reset", "1700000042"),
                ("retry-after", "7"),
            ]),
            now,
        );
        assert_eq!(h.limit, Some(2000));
        assert_eq!(h.remaining, Some(1990));
        assert_eq!(h.reset_in, Some(Duration::from_secs(42)));
        assert_eq!(h.wait(), Some(Duration::from_secs(7)));
        // A reset in the past is now; a reset that is a small number is seconds to wait.
        let past = RateLimitHeaders::parse(&headers(&[("ratelimit-reset", "1699999990")]), now);
        assert_eq!(past.reset_in, Some(Duration::ZERO));
        let delta = RateLimitHeaders::parse(&headers(&[("ratelimit-reset", "30")]), now);
        assert_eq!(delta.wait(), Some(Duration::from_secs(30)));
        // Absurd waits are capped; garbage is ignored.
        let huge = RateLimitHeaders::parse(&headers(&[("retry-after", "99999999")]), now);
        assert_eq!(huge.retry_after, Some(LONGEST_WAIT));
        assert_eq!(RateLimitHeaders::parse(&headers(&[("retry-after", "soon")]), now), RateLimitHeaders::default());
    }

    #[test]
    fn a_skewed_clock_is_corrected_by_the_date_header() {
        // Our clock is 100 s ahead of the server's.
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let server = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let h = RateLimitHeaders::parse(&headers(&[("ratelimit-reset", "1700000030"), ("date", &server)]), now);
        assert_eq!(h.reset_in, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_cap_spaces_requests_evenly() {
        let pacer = Pacer::new(Some(120), Duration::from_secs(60));
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..4).map(|_| pacer.reserve(t0) - t0).collect();
        assert_eq!(starts, [0, 500, 1000, 1500].map(Duration::from_millis));
    }

    #[test]
    fn plenty_left_goes_at_once_and_the_last_fifth_is_spread_until_the_reset() {
        let pacer = Pacer::new(None, Duration::from_secs(60));
        let t0 = Instant::now();
        pacer.reserve(t0);
        let limits = RateLimitHeaders {
            limit: Some(20),
            remaining: Some(6),
            reset_in: Some(Duration::from_secs(10)),
            retry_after: None,
        };
        pacer.observe(t0, 200, &limits);
        // 6 left, of which the last 4 (a fifth of 20) are spread over the 10 s left: two go at once, then
        // one every 2.5 s.
        let starts: Vec<u128> = (0..6).map(|_| (pacer.reserve(t0) - t0).as_millis()).collect();
        assert_eq!(starts, [0, 0, 0, 2500, 5000, 7500]);
        // None left: the next waits for the reset (and a margin); the new window has the whole limit.
        assert_eq!((pacer.reserve(t0) - t0).as_millis(), 10_100);
        assert_eq!((pacer.reserve(t0) - t0).as_millis(), 10_100);
    }

    #[test]
    fn the_limit_carries_across_a_reset_into_a_window_as_long_as_the_last() {
        let pacer = Pacer::new(None, Duration::from_secs(60));
        let t0 = Instant::now();
        let told = |at: Instant, remaining: u64, reset_in: u64| {
            pacer.reserve(at);
            let reset_in = Some(Duration::from_secs(reset_in));
            pacer.observe(
                at,
                200,
                &RateLimitHeaders { limit: Some(10), remaining: Some(remaining), reset_in, retry_after: None },
            );
        };
        // Two windows' answers, 5 s apart: windows are 5 s long.
        told(t0, 9, 2);
        told(t0 + Duration::from_secs(3), 0, 4);
        // This window is spent: the next request waits for its reset (7 s and a margin), and the 9
        // after it go at once in the new window (no spreading yet: 10 left of 10), the last of the
        // fifth spread until its reset at 12 s; then the window after.
        let starts: Vec<u128> = (0..11).map(|_| (pacer.reserve(t0) - t0).as_millis()).collect();
        assert_eq!(starts[..8], [7_100; 8]);
        assert_eq!(starts[8..], [7_100, 9_550, 12_100]);
        // Idle for a while: a request at 30 s falls in the window ending at 32 s, with the whole limit.
        assert_eq!((pacer.reserve(t0 + Duration::from_secs(30)) - t0).as_millis(), 30_000);
        let after: Vec<u128> = (0..9).map(|_| (pacer.reserve(t0 + Duration::from_secs(30)) - t0).as_millis()).collect();
        assert_eq!(after[..7], [30_000; 7]);
    }

    #[test]
    fn in_flight_requests_count_against_what_the_upstream_reports() {
        let pacer = Pacer::new(None, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..4 {
            pacer.reserve(t0);
        }
        // The first answer says 3 left; 3 more requests are still in flight: none is really left.
        let limits = RateLimitHeaders {
            limit: Some(100),
            remaining: Some(3),
            reset_in: Some(Duration::from_secs(5)),
            retry_after: None,
        };
        pacer.observe(t0, 200, &limits);
        assert_eq!((pacer.reserve(t0) - t0).as_millis(), 5_100);
    }

    #[test]
    fn a_429_blocks_the_tenant_for_as_long_as_asked_within_the_budget() {
        let pacer = Pacer::new(None, Duration::from_secs(30));
        let t0 = Instant::now();
        pacer.reserve(t0);
        let asked = RateLimitHeaders { retry_after: Some(Duration::from_secs(7)), ..Default::default() };
        pacer.observe(t0, 429, &asked);
        assert_eq!((pacer.reserve(t0) - t0).as_secs(), 7);
        pacer.reserve(t0 + Duration::from_secs(8));
        let too_long = RateLimitHeaders { retry_after: Some(Duration::from_secs(600)), ..Default::default() };
        pacer.observe(t0, 429, &too_long);
        assert_eq!((pacer.reserve(t0) - t0).as_secs(), 30);
        // A 429 without headers does not block (the page loop backs off on its own).
        let pacer = Pacer::new(None, Duration::from_secs(30));
        pacer.observe(t0, 429, &RateLimitHeaders::default());
        assert_eq!(pacer.reserve(t0), t0);
    }
}
