//! Who is calling: the token a request presents, checked against [`crate::SimConfig::token`].
//!
//! GitLab reads a personal access token from the `PRIVATE-TOKEN` header, an OAuth token from
//! `Authorization: Bearer <t>`, and (for old clients) either from the `private_token` /
//! `access_token` query parameters. With a configured token, a request must present exactly it
//! (else 401 `{"message":"401 Unauthorized"}`); it then acts as user 1. Without a configured
//! token, anonymous requests may read everything and any presented token acts as user 1.

use axum::http::HeaderMap;

use crate::query::Query;
use crate::reply::ApiError;
use crate::world::TOKEN_USER_ID;

/// The caller of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    Anonymous,
    User(u64),
}

impl Caller {
    pub fn user_id(self) -> Option<u64> {
        match self {
            Caller::Anonymous => None,
            Caller::User(id) => Some(id),
        }
    }
}

/// The token a request presents, if any.
pub(crate) fn presented_token<'a>(headers: &'a HeaderMap, query: &'a Query) -> Option<&'a str> {
    if let Some(t) = headers.get("private-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let auth = auth.trim();
        if let Some((scheme, token)) = auth.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim());
        }
        // Any other scheme (Basic, ...) is not a token GitLab's API accepts.
        return Some("");
    }
    query.get("private_token").or_else(|| query.get("access_token"))
}

/// Checks the presented token against the configured one.
pub(crate) fn authenticate(expected: Option<&str>, presented: Option<&str>) -> Result<Caller, ApiError> {
    match (expected, presented) {
        (Some(expected), Some(presented)) if !presented.is_empty() && presented == expected => {
            Ok(Caller::User(TOKEN_USER_ID))
        }
        (Some(_), _) => Err(ApiError::Unauthorized),
        (None, Some(presented)) if !presented.is_empty() => Ok(Caller::User(TOKEN_USER_ID)),
        (None, _) => Ok(Caller::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_sources() {
        let q = Query::default();
        assert_eq!(presented_token(&headers(&[("private-token", "abc")]), &q), Some("abc"));
        assert_eq!(presented_token(&headers(&[("authorization", "Bearer xyz")]), &q), Some("xyz"));
        assert_eq!(presented_token(&headers(&[("authorization", "Basic xyz")]), &q), Some(""));
        let q = Query::parse(Some("private_token=qq"));
        assert_eq!(presented_token(&HeaderMap::new(), &q), Some("qq"));
    }

    #[test]
    fn rules() {
        assert_eq!(authenticate(Some("t"), Some("t")), Ok(Caller::User(1)));
        assert_eq!(authenticate(Some("t"), Some("u")), Err(ApiError::Unauthorized));
        assert_eq!(authenticate(Some("t"), None), Err(ApiError::Unauthorized));
        assert_eq!(authenticate(None, None), Ok(Caller::Anonymous));
        assert_eq!(authenticate(None, Some("x")), Ok(Caller::User(1)));
    }
}
