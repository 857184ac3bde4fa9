//! The log of every request a simulator received, for tests to inspect
//! ([`crate::Simulator::requests`]).
//!
//! A request is logged when it arrives (`Recorder::begin`, so the log is in arrival order even
//! when answers finish out of order) and completed with its status when the answer is ready
//! (`Recorder::finish`); until then its `status` is 0. The `gitlab-sim` binary ([`crate::serve`])
//! has nobody to show a log to, and keeps none (`Recorder::counting`): under a load test it would
//! only grow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

/// One request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The percent-decoded path (`/api/v4/projects/acme/platform/issues`).
    pub path: String,
    /// The path and query exactly as sent (`/api/v4/projects/acme%2Fplatform/issues?page=2`).
    pub raw_path_and_query: String,
    /// Decoded query pairs, in order (`+` decodes to a space).
    pub query: Vec<(String, String)>,
    /// Every header, names in lowercase, in the order received (auth headers included).
    pub headers: Vec<(String, String)>,
    /// The response status (0 while the answer is being prepared).
    pub status: u16,
}

impl RecordedRequest {
    /// The last value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The last value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The request log of one simulator.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    entries: Mutex<Vec<RecordedRequest>>,
    /// Keep no log, only count (see [`Recorder::counting`]).
    counting_only: bool,
    /// Requests counted when `counting_only`.
    counted: AtomicUsize,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the log inconsistent; keep going.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A recorder that keeps no log: `begin` only numbers the requests.
    pub fn counting() -> Self {
        Self { counting_only: true, ..Self::default() }
    }

    /// Logs an arriving request; returns its index for [`Recorder::finish`].
    pub fn begin(&self, parts: &Parts) -> usize {
        if self.counting_only {
            return self.counted.fetch_add(1, Ordering::Relaxed);
        }
        let uri = &parts.uri;
        let raw_path_and_query =
            uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let entry = RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: percent_decode_str(uri.path()).decode_utf8_lossy().into_owned(),
            raw_path_and_query,
            query: uri
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            status: 0,
        };
        let mut entries = self.lock();
        entries.push(entry);
        entries.len() - 1
    }

    /// Records the status of the request logged at `index`.
    pub fn finish(&self, index: usize, status: u16) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.status = status;
        }
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        if self.counting_only {
            return self.counted.load(Ordering::Relaxed);
        }
        self.lock().len()
    }
}
