//! Pagination: finding the next page in GitLab's response, and the page token that names it.
//!
//! GitLab links pages through the `Link` header (`<url>; rel="next"`), for offset and keyset pagination
//! alike; `X-Next-Page` is the fallback when a proxy strips `Link`. `X-Total` is not relied on: GitLab
//! omits it above 10,000 records. The token handed to the host is the next page's path and query below
//! the API root (`/projects/7/issues?page=3&per_page=100`): re-rooted on the connection's base URL, it
//! survives a GitLab whose external URL differs from the address the host reaches it by. The host
//! treats it as opaque.

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_link(link_header: &str) -> Option<&str> {
    link_header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim().split_once('='), Some(("rel", v)) if v.trim_matches('"').split(' ').any(|r| r == "next")));
        let target = target.trim();
        is_next.then(|| target.strip_prefix('<')?.strip_suffix('>')).flatten()
    })
}

/// The token for a URL below the API root: everything after `/api/v4`.
pub fn token_for(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("/api/v4/")?;
    Some(format!("/{rest}"))
}

/// `url` with its `page` query parameter set to `page` (the `X-Next-Page` fallback).
pub fn with_page(url: &str, page: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("page=")).collect();
    let page_pair = format!("page={page}");
    pairs.push(&page_pair);
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_among_other_relations() {
        let header = r#"<https://gitlab.example.com/api/v4/projects/8/issues?page=1&per_page=3>; rel="prev", <https://gitlab.example.com/api/v4/projects/8/issues?page=3&per_page=3>; rel="next", <https://gitlab.example.com/api/v4/projects/8/issues?page=1&per_page=3>; rel="first""#;
        assert_eq!(next_link(header), Some("https://gitlab.example.com/api/v4/projects/8/issues?page=3&per_page=3"));
        assert_eq!(next_link(r#"<https://x/api/v4/a?page=1>; rel="first""#), None);
    }

    #[test]
    fn tokens_are_relative_to_the_api_root() {
        assert_eq!(
            token_for("https://gitlab.example.com/gitlab/api/v4/projects?id_after=42&pagination=keyset").unwrap(),
            "/projects?id_after=42&pagination=keyset"
        );
    }

    #[test]
    fn page_parameter_is_replaced() {
        assert_eq!(
            with_page("http://h/api/v4/p?per_page=5&page=1&x=y", "2"),
            "http://h/api/v4/p?per_page=5&x=y&page=2"
        );
    }
}
