//! Pagination as GitLab does it: offset pagination (`page`, `per_page`, the `X-*` headers and a
//! `Link` header) for every list, and keyset pagination (`pagination=keyset`, a `Link` header with
//! only `rel="next"`) for `GET /projects` (`id_after` / `id_before` cursors) and
//! `GET /projects/:id/jobs` (an opaque `cursor`, base64 of `{"id":"N","_kd":"n"}`).
//!
//! A handler hands over the matching records in order as pre-rendered JSON bytes; this module
//! picks the page, joins its bytes into a JSON array and computes the headers. Link URLs are
//! absolute (`http://` + the request's `Host` + its raw path) and keep every other query
//! parameter of the request exactly as it was sent; only `page` and `per_page` (or the keyset
//! cursor) are set. Counts above 10,000 are not disclosed (no `X-Total`, `X-Total-Pages`,
//! `rel="last"`), as GitLab omits them for performance; some lists (commits) never disclose them.

use std::borrow::Cow;

use axum::http::HeaderName;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;

use crate::query::Query;
use crate::reply::{ApiError, Reply};

/// GitLab's default page size.
pub const DEFAULT_PER_PAGE: u64 = 20;
/// GitLab's largest page size; larger requests are clamped to it.
pub const MAX_PER_PAGE: u64 = 100;
/// Above this many records GitLab stops counting.
pub const COUNT_LIMIT: usize = 10_000;

/// Where a request was sent, to build the URLs of other pages.
pub(crate) struct RequestUrl<'a> {
    /// `Host` header value (`127.0.0.1:PORT`).
    pub host: &'a str,
    /// Raw (still percent-encoded) path.
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: &'a str,
}

impl RequestUrl<'_> {
    /// The request's URL with the given parameters set: each replaces the first occurrence of
    /// its key (later ones are dropped) or is appended; every other parameter is kept verbatim.
    pub fn with(&self, set: &[(&str, String)]) -> String {
        let mut done = vec![false; set.len()];
        let mut parts: Vec<String> = Vec::new();
        for piece in self.query.split('&').filter(|p| !p.is_empty()) {
            let raw_key = piece.split_once('=').map_or(piece, |(k, _)| k);
            let key: String =
                form_urlencoded::parse(raw_key.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default();
            match set.iter().position(|(k, _)| *k == key) {
                Some(i) if !done[i] => {
                    done[i] = true;
                    parts.push(format!("{}={}", set[i].0, set[i].1));
                }
                Some(_) => {}
                None => parts.push(piece.to_owned()),
            }
        }
        for (i, (k, v)) in set.iter().enumerate() {
            if !done[i] {
                parts.push(format!("{k}={v}"));
            }
        }
        format!("http://{}{}?{}", self.host, self.path, parts.join("&"))
    }
}

/// `per_page`: default 20, clamped to 100; zero, negative or not a number is a 400.
pub(crate) fn per_page(query: &Query) -> Result<u64, ApiError> {
    match query.int("per_page")? {
        None => Ok(DEFAULT_PER_PAGE),
        Some(n) if n <= 0 => Err(ApiError::invalid("per_page")),
        Some(n) => Ok((n as u64).min(MAX_PER_PAGE)),
    }
}

/// The page a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub page: u64,
    pub per_page: u64,
}

impl PageRequest {
    /// `page` (default 1; zero and negative count as 1, as Kaminari does; not a number is a 400)
    /// and `per_page`.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let page = match query.int("page")? {
            None => 1,
            Some(n) => n.max(1) as u64,
        };
        Ok(Self { page, per_page: per_page(query)? })
    }
}

/// Joins JSON records into a JSON array.
pub(crate) fn json_array<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let items: Vec<&[u8]> = items.into_iter().collect();
    let mut body = Vec::with_capacity(2 + items.iter().map(|i| i.len() + 1).sum::<usize>());
    body.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.push(b']');
    body
}

/// Whether an offset-paginated list tells how many records it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counting {
    /// `X-Total`, `X-Total-Pages` and `rel="last"` up to [`COUNT_LIMIT`] records.
    UpToLimit,
    /// Never (GitLab does not count commits).
    Never,
}

/// An offset-paginated answer: the page of `items` (all matching records, in order) with
/// GitLab's headers.
pub(crate) fn offset_page(url: &RequestUrl<'_>, request: PageRequest, items: &[&[u8]]) -> Reply {
    offset_page_counting(url, request, items, Counting::UpToLimit)
}

/// [`offset_page`], with the given way of counting.
pub(crate) fn offset_page_counting(
    url: &RequestUrl<'_>,
    request: PageRequest,
    items: &[&[u8]],
    counting: Counting,
) -> Reply {
    let PageRequest { page, per_page } = request;
    let total = items.len();
    let start = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let end = start.saturating_add(per_page as usize).min(total);
    let body = json_array(items.get(start..end).unwrap_or(&[]).iter().copied());
    let mut reply = Reply::json(body);
    reply.headers = offset_headers(url, request, total, counting);
    reply
}

/// An offset-paginated answer whose records are rendered per request (`render` is called for the
/// page's records only): for JSON that depends on the request's parameters.
pub(crate) fn offset_page_mapped<'i, T>(
    url: &RequestUrl<'_>,
    request: PageRequest,
    items: &'i [T],
    counting: Counting,
    render: impl Fn(&'i T) -> Cow<'i, [u8]>,
) -> Reply {
    let PageRequest { page, per_page } = request;
    let total = items.len();
    let start = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let end = start.saturating_add(per_page as usize).min(total);
    let rendered: Vec<Cow<'i, [u8]>> = items.get(start..end).unwrap_or(&[]).iter().map(render).collect();
    let mut reply = Reply::json(json_array(rendered.iter().map(|c| &**c)));
    reply.headers = offset_headers(url, request, total, counting);
    reply
}

/// GitLab's offset pagination headers for `total` matching records.
pub(crate) fn offset_headers(
    url: &RequestUrl<'_>,
    request: PageRequest,
    total: usize,
    counting: Counting,
) -> Vec<(HeaderName, String)> {
    let PageRequest { page, per_page } = request;
    let pages = (total as u64).div_ceil(per_page);
    let counted = total <= COUNT_LIMIT && counting == Counting::UpToLimit;
    let next = (page < pages).then_some(page + 1);
    // Kaminari: no previous page for the first page or a page past the end.
    let prev = (page > 1 && page <= pages).then_some(page - 1);
    let link_to = |p: u64| url.with(&[("page", p.to_string()), ("per_page", per_page.to_string())]);
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("<{}>; rel=\"prev\"", link_to(p)));
    }
    if let Some(n) = next {
        links.push(format!("<{}>; rel=\"next\"", link_to(n)));
    }
    links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    if counted {
        links.push(format!("<{}>; rel=\"last\"", link_to(pages.max(1))));
    }
    let mut headers = vec![
        (HeaderName::from_static("link"), links.join(", ")),
        (HeaderName::from_static("x-page"), page.to_string()),
        (HeaderName::from_static("x-per-page"), per_page.to_string()),
        (HeaderName::from_static("x-next-page"), next.map(|n| n.to_string()).unwrap_or_default()),
        (HeaderName::from_static("x-prev-page"), prev.map(|p| p.to_string()).unwrap_or_default()),
    ];
    if counted {
        headers.push((HeaderName::from_static("x-total"), total.to_string()));
        headers.push((HeaderName::from_static("x-total-pages"), pages.max(1).to_string()));
    }
    headers
}

/// A keyset-paginated answer. `items` are the records after the cursor, in order, with their ids;
/// the page is the first `per_page`, and when more follow, `Link` holds `rel="next"` with
/// `cursor_key=<id of the page's last record>`.
pub(crate) fn keyset_page(url: &RequestUrl<'_>, per_page: u64, cursor_key: &str, items: &[(u64, &[u8])]) -> Reply {
    let take = (per_page as usize).min(items.len());
    let page = &items[..take];
    let mut reply = Reply::json(json_array(page.iter().map(|(_, json)| *json)));
    if items.len() > take
        && let Some((last_id, _)) = page.last()
    {
        let next = url.with(&[(cursor_key, last_id.to_string())]);
        reply.headers.push((HeaderName::from_static("link"), format!("<{next}>; rel=\"next\"")));
    }
    reply
}

/// The opaque `cursor` of GitLab's generic keyset pagination for a record id: URL-safe base64
/// of `{"id":"N","_kd":"n"}` (`_kd`: the direction, next).
pub(crate) fn id_cursor(id: u64) -> String {
    URL_SAFE.encode(format!(r#"{{"id":"{id}","_kd":"n"}}"#))
}

/// The record id a `cursor` points after, or `None` when it is not one [`id_cursor`] wrote.
pub(crate) fn parse_id_cursor(cursor: &str) -> Option<u64> {
    let bytes = URL_SAFE.decode(cursor.trim()).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("id")?.as_str()?.parse().ok()
}

/// A page of cursor-keyset pagination by id, descending: `items` are every matching record with
/// its id, highest id first; the page is the first `per_page` below `after` (the id of the
/// request's cursor), and when more follow, `Link` holds `rel="next"` with `cursor=` naming the
/// page's last id.
pub(crate) fn cursor_page(url: &RequestUrl<'_>, per_page: u64, after: Option<u64>, items: &[(u64, &[u8])]) -> Reply {
    let start = match after {
        Some(id) => items.iter().position(|(i, _)| *i < id).unwrap_or(items.len()),
        None => 0,
    };
    let rest = &items[start..];
    let take = (per_page as usize).min(rest.len());
    let page = &rest[..take];
    let mut reply = Reply::json(json_array(page.iter().map(|(_, json)| *json)));
    if rest.len() > take
        && let Some((last_id, _)) = page.last()
    {
        let cursor = id_cursor(*last_id).replace('=', "%3D");
        let next = url.with(&[("cursor", cursor), ("per_page", per_page.to_string())]);
        reply.headers.push((HeaderName::from_static("link"), format!("<{next}>; rel=\"next\"")));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(query: &str) -> RequestUrl<'_> {
        RequestUrl { host: "127.0.0.1:9", path: "/api/v4/projects/acme%2Fapi/issues", query }
    }

    fn header<'a>(headers: &'a [(HeaderName, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn link_keeps_other_params_verbatim() {
        let u = url("state=all&labels=a%2Cb&page=1&iids[]=1&iids[]=2");
        assert_eq!(
            u.with(&[("page", "2".into()), ("per_page", "20".into())]),
            "http://127.0.0.1:9/api/v4/projects/acme%2Fapi/issues?state=all&labels=a%2Cb&page=2&iids[]=1&iids[]=2&per_page=20"
        );
    }

    #[test]
    fn headers_middle_page() {
        let h =
            offset_headers(&url("per_page=10&page=3"), PageRequest { page: 3, per_page: 10 }, 45, Counting::UpToLimit);
        assert_eq!(header(&h, "x-page"), Some("3"));
        assert_eq!(header(&h, "x-next-page"), Some("4"));
        assert_eq!(header(&h, "x-prev-page"), Some("2"));
        assert_eq!(header(&h, "x-total"), Some("45"));
        assert_eq!(header(&h, "x-total-pages"), Some("5"));
        let link = header(&h, "link").unwrap();
        assert!(link.contains("per_page=10&page=2>; rel=\"prev\""), "{link}");
        assert!(link.contains("rel=\"last\""));
    }

    #[test]
    fn uncounted_above_limit() {
        let h = offset_headers(&url(""), PageRequest { page: 1, per_page: 100 }, COUNT_LIMIT + 1, Counting::UpToLimit);
        assert_eq!(header(&h, "x-total"), None);
        assert_eq!(header(&h, "x-total-pages"), None);
        assert!(!header(&h, "link").unwrap().contains("rel=\"last\""));
        assert_eq!(header(&h, "x-next-page"), Some("2"));
    }

    #[test]
    fn empty_list() {
        let h = offset_headers(&url(""), PageRequest { page: 1, per_page: 20 }, 0, Counting::UpToLimit);
        assert_eq!(header(&h, "x-total"), Some("0"));
        assert_eq!(header(&h, "x-total-pages"), Some("1"));
        assert_eq!(header(&h, "x-next-page"), Some(""));
        assert_eq!(header(&h, "x-prev-page"), Some(""));
    }

    #[test]
    fn never_counted() {
        let h = offset_headers(&url(""), PageRequest { page: 1, per_page: 20 }, 30, Counting::Never);
        assert_eq!(header(&h, "x-total"), None);
        assert_eq!(header(&h, "x-next-page"), Some("2"));
        assert!(!header(&h, "link").unwrap().contains("rel=\"last\""));
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(id_cursor(10), "eyJpZCI6IjEwIiwiX2tkIjoibiJ9");
        assert_eq!(parse_id_cursor(&id_cursor(1_000_123)), Some(1_000_123));
        assert_eq!(parse_id_cursor("not a cursor"), None);
    }

    #[test]
    fn per_page_rules() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(per_page(&q("")), Ok(20));
        assert_eq!(per_page(&q("per_page=500")), Ok(100));
        assert!(per_page(&q("per_page=0")).is_err());
        assert!(per_page(&q("per_page=-5")).is_err());
        assert!(per_page(&q("per_page=ten")).is_err());
        assert_eq!(PageRequest::from_query(&q("page=0")).unwrap().page, 1);
        assert!(PageRequest::from_query(&q("page=x")).is_err());
    }
}
