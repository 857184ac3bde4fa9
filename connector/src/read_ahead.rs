//! Read-ahead: the next page is on its way while the host writes this one.
//!
//! GitLab names the next page in the headers of this one. So once a page's body has arrived, the
//! connector sends the GET for the next page, and only then normalizes this one and returns it: the
//! upstream's latency overlaps the normalizing here and the host's writing. When the host comes back
//! for the next page, its URL is the one read ahead and the answer is already, or nearly, here.
//!
//! ```text
//!  read-page(token n) ──► answer n (read ahead by the last call, or GET now) ──► GET n+1 sent
//!                     ──► normalize n ──► page n        ...host writes page n...
//!  read-page(token n+1) ──► answer n+1 (read ahead) ──► GET n+2 sent ──► normalize n+1 ...
//! ```
//!
//! The read-ahead is a head start, never a source of truth: a call for any other URL drops it (which
//! cancels the request) and sends its own, and a failed read-ahead is simply the next call's answer
//! (the host retries it like any other). At most one request per sandbox is read ahead, only after
//! a non-empty page that links on, so the host's gate (allow-list, rate limit, byte budgets, in-flight
//! cap) sees the very requests it would see without it, one page earlier.

use std::cell::RefCell;

use crate::ConnectorError;
use crate::guest::wasi::http::outgoing_handler::FutureIncomingResponse;
use crate::http;
use crate::response::Answer;

thread_local! {
    /// The request sent ahead: its URL and its pending answer.
    static AHEAD: RefCell<Option<(String, FutureIncomingResponse)>> = const { RefCell::new(None) };
}

/// GET `url`: the answer read ahead when it is for `url`, else a request sent now.
pub fn get(url: &str) -> Result<Answer, ConnectorError> {
    match AHEAD.with_borrow_mut(Option::take) {
        Some((ahead, future)) if ahead == url => http::receive(url, future),
        stale => {
            drop(stale);
            http::get(url)
        }
    }
}

/// Send the GET of `url` now, for the next call to pick up. A request the host refuses here is
/// forgotten: the next call sends it again and reports why.
pub fn send(url: String) {
    if let Ok(future) = http::send(&url) {
        AHEAD.with_borrow_mut(|ahead| *ahead = Some((url, future)));
    }
}
