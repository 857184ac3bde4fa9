//! Two bounded caches that keep the simulator cheap under load without changing a byte it sends.
//!
//! - [`ListCache`]: the matching records of an issues or merge requests list, in order (indexes
//!   into the project's record set), keyed by everything but the page: a client walking the 500
//!   pages of a 50,000-issue list filters and sorts it once, not 500 times.
//! - [`ReplyCache`]: whole successful answers to `GET` list requests (headers and body, the body
//!   gzip-compressed when the client accepts it), keyed by the request: a page asked for again is
//!   not paginated or compressed again.
//!
//! Both are safe because the world is immutable once generated (its lazy parts are deterministic)
//! and the key holds everything else an answer depends on: the caller, the request's `Host` (Link
//! URLs), its raw path and query, whether it is gzipped, and today's date (`milestone=Upcoming`,
//! `due_date=overdue`). They sit below the request log and the fault injection (`routes::handle`
//! records and admits a request before it reaches them), and only successful answers are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::http::{HeaderName, StatusCode};

use crate::auth::Caller;
use crate::reply::Reply;

/// At most this many lists are kept...
const LIST_ENTRIES: usize = 64;
/// ...holding at most this many record indexes in all (64 MiB).
const LIST_INDEXES: usize = 16 << 20;
/// Answers are kept up to this many bytes in all (bodies as sent, plus headers and keys).
const REPLY_BYTES: usize = 256 << 20;

/// Which list of a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Issues,
    MergeRequests,
}

/// What a list's matching records depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListKey {
    pub kind: ListKind,
    pub project: usize,
    pub caller: Caller,
    pub today: i64,
    /// The raw query string without its `page` and `per_page` parameters.
    pub query: String,
}

/// The record lists computed lately, least recently used first.
#[derive(Debug, Default)]
pub(crate) struct ListCache {
    entries: Mutex<VecDeque<(ListKey, Arc<[u32]>)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a cache inconsistent; keep going.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ListCache {
    /// The list for `key`, computed by `compute` (outside the lock) if it is not kept.
    pub fn get_or_compute(&self, key: ListKey, compute: impl FnOnce() -> Vec<u32>) -> Arc<[u32]> {
        {
            let mut entries = lock(&self.entries);
            if let Some(at) = entries.iter().position(|(k, _)| *k == key) {
                let entry = entries.remove(at).expect("a position found above");
                let list = Arc::clone(&entry.1);
                entries.push_back(entry);
                return list;
            }
        }
        let list: Arc<[u32]> = compute().into();
        if list.len() > LIST_INDEXES {
            return list;
        }
        let mut entries = lock(&self.entries);
        if !entries.iter().any(|(k, _)| *k == key) {
            entries.push_back((key, Arc::clone(&list)));
            let mut total: usize = entries.iter().map(|(_, l)| l.len()).sum();
            while entries.len() > LIST_ENTRIES || total > LIST_INDEXES {
                let Some((_, evicted)) = entries.pop_front() else { break };
                total -= evicted.len();
            }
        }
        list
    }
}

/// What a successful list answer depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReplyKey {
    pub caller: Caller,
    pub today: i64,
    pub host: String,
    pub path_and_query: String,
    /// Whether the answer is gzipped (the client accepts it and the simulator compresses).
    pub gzip: bool,
}

impl ReplyKey {
    fn size(&self) -> usize {
        self.host.len() + self.path_and_query.len() + std::mem::size_of::<Self>()
    }
}

/// A kept answer.
#[derive(Debug)]
struct Kept {
    headers: Vec<(HeaderName, String)>,
    body: Bytes,
    gzipped: bool,
}

impl Kept {
    fn size(&self) -> usize {
        self.body.len() + self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum::<usize>() + 64
    }

    fn reply(&self) -> Reply {
        Reply { status: StatusCode::OK, headers: self.headers.clone(), body: self.body.clone(), gzipped: self.gzipped }
    }
}

#[derive(Debug, Default)]
struct Replies {
    map: HashMap<ReplyKey, Arc<Kept>>,
    /// Keys in insertion order, oldest first (evicted first).
    order: VecDeque<ReplyKey>,
    bytes: usize,
}

/// Successful `GET` list answers, oldest evicted first beyond [`REPLY_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct ReplyCache {
    replies: Mutex<Replies>,
}

impl ReplyCache {
    /// The kept answer for `key`.
    pub fn get(&self, key: &ReplyKey) -> Option<Reply> {
        let kept = lock(&self.replies).map.get(key).cloned();
        kept.map(|kept| kept.reply())
    }

    /// Keeps `reply` (a 200) for `key`.
    pub fn insert(&self, key: ReplyKey, reply: &Reply) {
        if reply.status != StatusCode::OK {
            return;
        }
        let kept = Kept { headers: reply.headers.clone(), body: reply.body.clone(), gzipped: reply.gzipped };
        let size = kept.size() + key.size();
        if size > REPLY_BYTES / 16 {
            return;
        }
        let mut replies = lock(&self.replies);
        if replies.map.contains_key(&key) {
            return;
        }
        while replies.bytes + size > REPLY_BYTES {
            let Some(oldest) = replies.order.pop_front() else { break };
            if let Some(evicted) = replies.map.remove(&oldest) {
                replies.bytes -= evicted.size() + oldest.size();
            }
        }
        replies.bytes += size;
        replies.order.push_back(key.clone());
        replies.map.insert(key, Arc::new(kept));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_key(query: &str) -> ListKey {
        ListKey { kind: ListKind::Issues, project: 1, caller: Caller::Anonymous, today: 0, query: query.into() }
    }

    #[test]
    fn lists_are_computed_once_and_bounded() {
        let cache = ListCache::default();
        let first = cache.get_or_compute(list_key("state=all"), || vec![3, 1, 2]);
        let again = cache.get_or_compute(list_key("state=all"), || unreachable!("kept"));
        assert_eq!(&*again, &[3, 1, 2]);
        assert!(Arc::ptr_eq(&first, &again));
        let other = cache.get_or_compute(list_key("state=opened"), || vec![1]);
        assert_eq!(&*other, &[1]);
        for i in 0..LIST_ENTRIES * 2 {
            cache.get_or_compute(list_key(&format!("search={i}")), Vec::new);
        }
        assert_eq!(lock(&cache.entries).len(), LIST_ENTRIES);
        let recomputed = cache.get_or_compute(list_key("state=all"), || vec![9]);
        assert_eq!(&*recomputed, &[9]);
    }

    fn reply_key(page: usize) -> ReplyKey {
        ReplyKey {
            caller: Caller::User(1),
            today: 0,
            host: "127.0.0.1:1".into(),
            path_and_query: format!("/api/v4/projects/1/issues?page={page}"),
            gzip: false,
        }
    }

    #[test]
    fn replies_are_kept_if_successful_and_bounded() {
        let cache = ReplyCache::default();
        let mut reply = Reply::json(b"[1]".to_vec());
        reply.headers.push((HeaderName::from_static("x-page"), "1".into()));
        cache.insert(reply_key(1), &reply);
        let kept = cache.get(&reply_key(1)).unwrap();
        assert_eq!((kept.status, &kept.headers, &kept.body[..]), (StatusCode::OK, &reply.headers, &b"[1]"[..]));
        assert!(cache.get(&ReplyKey { gzip: true, ..reply_key(1) }).is_none());
        assert!(cache.get(&ReplyKey { caller: Caller::Anonymous, ..reply_key(1) }).is_none());

        let mut error = Reply::json(b"{}".to_vec());
        error.status = StatusCode::NOT_FOUND;
        cache.insert(reply_key(2), &error);
        assert!(cache.get(&reply_key(2)).is_none());

        let big = Reply::json(vec![b' '; REPLY_BYTES / 20]);
        for page in 10..40 {
            cache.insert(reply_key(page), &big);
        }
        let replies = lock(&cache.replies);
        assert!(replies.bytes <= REPLY_BYTES, "{}", replies.bytes);
        assert_eq!(replies.map.len(), replies.order.len());
        assert!(!replies.map.contains_key(&reply_key(10)), "the oldest went first");
        assert!(replies.map.contains_key(&reply_key(39)));
    }
}
