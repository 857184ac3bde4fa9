//! Retries: which failed plugin calls are tried again, after how long, and when to give up.
//!
//! Retries happen here, in the host's loop around a plugin call (`read-page`, `list-scopes`), not
//! inside the gate: the wait is then outside the plugin's call deadline, every kind of failure is seen
//! the same way (a 503, a refused connection, a body cut short, a stalled response), and calling again
//! with the same page token is idempotent: nothing of a failed page was written, and the checkpoint
//! stays where it was.
//!
//! A failed call is retried when the gate saw the upstream fail, never when the gate refused:
//!
//! | failure | wait before the next attempt |
//! | --- | --- |
//! | 429 (`rate-limited`) | `Retry-After`, else until `RateLimit-Reset`, else exponential with equal jitter |
//! | 500, 502, 503, 504 (`upstream`, with that status seen by the gate) | exponential with full jitter |
//! | connection failed, timed out, body cut short (`transport`) | exponential with full jitter |
//! | refused by the gate, any other status, a malformed body, a trap, a deadline | not retried |
//!
//! What the gate saw is the latest failed response of the sandbox, not the responses of the call: a
//! call may report the answer to a request sent by the call before (the connector reads the next
//! page ahead), so a failure is forgotten only when a call that began after it succeeds.
//!
//! Exponential: `backoff × 2^(n-1)` for the n-th retry, capped at [`RetryPolicy::max_backoff`]; full
//! jitter draws the wait uniformly below that, equal jitter in its upper half (a 429 is never retried at
//! once). A call is tried at most [`RetryPolicy::max_attempts`] times and waits at most
//! [`RetryPolicy::max_wait`] in total; then the error names what failed, how often it was tried, and
//! that the partition can be resumed.
//!
//! Every attempt first waits for its turn in the tenant's pace (`gate::Pacer`); that turn is handed to
//! the gate for the call's first request. The caller drives the attempts ([`Attempts`]) so that the
//! plugin call stays in its own code.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::gate::{GatePolicy, GateStats};
use crate::run::connector_message;
use crate::sandbox::CallFailure;
use crate::sandbox::wit::ConnectorError;

/// How a tenant's failed calls are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The longest one call may spend waiting between attempts, in total.
    pub max_wait: Duration,
    /// The first exponential backoff step.
    pub backoff: Duration,
    /// The longest single exponential backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_wait: Duration::from_secs(300),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Why an attempt failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cause {
    /// 429, with the wait the upstream asked for, if it said.
    RateLimited(Option<Duration>),
    /// 500, 502, 503 or 504.
    Server(u16),
    /// The connection failed, timed out, or the body was cut short.
    Transport,
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Stop: why.
    GiveUp(String),
}

impl RetryPolicy {
    /// After `failed` attempts (the last for `cause`) and `waited` in total so far; `unit` is a random
    /// number in [0, 1) for the jitter.
    pub fn decide(&self, failed: u32, waited: Duration, cause: Cause, unit: f64) -> Decision {
        if failed >= self.max_attempts {
            return Decision::GiveUp(format!("after {}", attempts(failed)));
        }
        let step = self.backoff.saturating_mul(1 << (failed.clamp(1, 31) - 1)).min(self.max_backoff);
        let wait = match cause {
            Cause::RateLimited(Some(asked)) => asked,
            Cause::RateLimited(None) => step / 2 + step.mul_f64(unit / 2.0),
            Cause::Server(_) | Cause::Transport => step.mul_f64(unit),
        };
        if waited + wait > self.max_wait {
            let left = self.max_wait.saturating_sub(waited);
            return Decision::GiveUp(match cause {
                Cause::RateLimited(Some(asked)) => format!(
                    "after {}: GitLab asked to wait {} s, more than the {} s left of the retry budget",
                    attempts(failed),
                    asked.as_secs(),
                    left.as_secs()
                ),
                _ => format!(
                    "after {} and {:.1} s of waiting (the retry budget)",
                    attempts(failed),
                    waited.as_secs_f64()
                ),
            });
        }
        Decision::Retry(wait)
    }
}

/// `text` on one line (an upstream's HTML error page spans several).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "1 attempt", "3 attempts".
fn attempts(n: u32) -> String {
    if n == 1 { "1 attempt".to_owned() } else { format!("{n} attempts") }
}

/// How a call ended, when it did not return a value.
#[derive(Debug)]
pub enum Ended {
    /// The plugin's error, not retried (or not retryable).
    Connector(ConnectorError),
    /// The call itself failed (trap, limit, deadline).
    Call(CallFailure),
    /// Retried until the budget ran out: the message says what, how often, and how to resume.
    Exhausted(String),
}

/// Calls with retries, for one sandbox of a tenant.
pub struct Retrier {
    policy: Arc<GatePolicy>,
    stats: Arc<GateStats>,
}

/// The attempts of one call: [`Attempts::begin`] before each, [`Attempts::judge`] after.
///
/// ```ignore
/// let mut attempts = retrier.attempts("reading page 3");
/// let page = loop {
///     attempts.begin().await;
///     if let Some(page) = attempts.judge(sandbox.read_page(&connection, &request).await).await? {
///         break page;
///     }
/// };
/// ```
pub struct Attempts<'a> {
    retrier: &'a Retrier,
    what: String,
    failed: u32,
    waited: Duration,
    refusals: usize,
    /// When the current attempt began.
    began: tokio::time::Instant,
}

impl Retrier {
    pub fn new(policy: Arc<GatePolicy>, stats: Arc<GateStats>) -> Retrier {
        Retrier { policy, stats }
    }

    /// The gate policy the retried calls pass.
    pub fn policy(&self) -> &GatePolicy {
        &self.policy
    }

    /// The attempts of the call `what` (named so in messages).
    pub fn attempts(&self, what: &str) -> Attempts<'_> {
        Attempts {
            retrier: self,
            what: what.to_owned(),
            failed: 0,
            waited: Duration::ZERO,
            refusals: 0,
            began: tokio::time::Instant::now(),
        }
    }
}

impl Attempts<'_> {
    /// Before an attempt: wait for its turn in the tenant's pace, and hand that turn to the gate.
    pub async fn begin(&mut self) {
        let stats = &self.retrier.stats;
        let turn = self.retrier.policy.pacer.turn().await;
        stats.prepay(turn);
        self.refusals = stats.refusal_count();
        self.began = tokio::time::Instant::now();
    }

    /// After an attempt: its value (`Some`), or `None` after waiting when it is worth another attempt, or
    /// how the call ended.
    pub async fn judge<T>(
        &mut self,
        result: Result<Result<T, ConnectorError>, CallFailure>,
    ) -> Result<Option<T>, Ended> {
        let retrier = self.retrier;
        drop(retrier.stats.unused_turn());
        let error = match result {
            Ok(Ok(value)) => {
                retrier.stats.forget_failure_before(self.began);
                return Ok(Some(value));
            }
            Ok(Err(error)) => error,
            Err(failure) => return Err(Ended::Call(failure)),
        };
        // A refused request or a broken byte limit would only be refused again.
        let refused = retrier.stats.refusal_count() > self.refusals || retrier.stats.exceeded().is_some();
        let Some(cause) = retrier.cause(&error).filter(|_| !refused) else {
            return Err(Ended::Connector(error));
        };
        self.failed += 1;
        let what = &self.what;
        match retrier.policy.settings.retry.decide(self.failed, self.waited, cause, fastrand::f64()) {
            Decision::Retry(wait) => {
                retrier.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "{what}: attempt {} failed ({}); trying again in {:.2} s",
                    self.failed,
                    one_line(&connector_message(&error)),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                self.waited += wait;
                Ok(None)
            }
            Decision::GiveUp(why) => Err(Ended::Exhausted(format!(
                "{what} gave up {why}: {}. Nothing of it was written and the checkpoint is intact: run the \
                 flow again to resume (--retry-attempts and --retry-max-wait-secs set the retry budget)",
                one_line(&connector_message(&error))
            ))),
        }
    }
}

impl Retrier {
    /// Whether `error` is worth retrying, judged with what the gate saw.
    fn cause(&self, error: &ConnectorError) -> Option<Cause> {
        let failure = self.stats.failure();
        match error {
            ConnectorError::RateLimited(limit) => {
                let asked = limit.retry_after_seconds.map(|s| Duration::from_secs(s.into()));
                // The gate's reading of the headers also knows `RateLimit-Reset`; count from when it saw them.
                let seen = failure.filter(|o| o.status == 429).and_then(|o| o.limits.wait().map(|w| (w, o.at)));
                let seen = seen.map(|(wait, at)| wait.saturating_sub(at.elapsed()));
                Some(Cause::RateLimited(asked.or(seen)))
            }
            ConnectorError::Upstream(_) => match failure.map(|o| o.status) {
                Some(status @ (500 | 502 | 503 | 504)) => Some(Cause::Server(status)),
                _ => None,
            },
            ConnectorError::Transport(_) => Some(Cause::Transport),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            max_wait: Duration::from_secs(20),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
        }
    }

    fn wait(decision: Decision) -> Duration {
        match decision {
            Decision::Retry(wait) => wait,
            Decision::GiveUp(why) => panic!("gave up: {why}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let p = policy();
        let top: Vec<u64> =
            (1..=4).map(|n| wait(p.decide(n, Duration::ZERO, Cause::Transport, 0.999_999)).as_secs()).collect();
        assert_eq!(top, [0, 1, 3, 3]); // just under 1, 2, 4, 4 (capped)
        assert_eq!(wait(p.decide(3, Duration::ZERO, Cause::Server(503), 0.0)), Duration::ZERO);
        assert_eq!(wait(p.decide(3, Duration::ZERO, Cause::Server(503), 0.5)), Duration::from_secs(2));
    }

    #[test]
    fn a_429_waits_as_asked_else_backs_off_but_never_retries_at_once() {
        let p = policy();
        let asked = Cause::RateLimited(Some(Duration::from_secs(7)));
        assert_eq!(wait(p.decide(1, Duration::ZERO, asked, 0.0)), Duration::from_secs(7));
        let unsaid = Cause::RateLimited(None);
        assert_eq!(wait(p.decide(2, Duration::ZERO, unsaid, 0.0)), Duration::from_secs(1));
        assert_eq!(wait(p.decide(2, Duration::ZERO, unsaid, 0.999_999)).as_millis(), 1999);
    }

    #[test]
    fn gives_up_after_the_attempts_or_the_wait_budget() {
        let p = policy();
        assert_eq!(p.decide(5, Duration::ZERO, Cause::Transport, 0.5), Decision::GiveUp("after 5 attempts".into()));
        let long = Cause::RateLimited(Some(Duration::from_secs(60)));
        let Decision::GiveUp(why) = p.decide(1, Duration::from_secs(5), long, 0.5) else { panic!() };
        assert_eq!(why, "after 1 attempt: GitLab asked to wait 60 s, more than the 15 s left of the retry budget");
        let Decision::GiveUp(why) = p.decide(2, Duration::from_secs(19), Cause::Server(502), 0.9) else { panic!() };
        assert!(why.contains("19.0 s of waiting"), "{why}");
    }
}
