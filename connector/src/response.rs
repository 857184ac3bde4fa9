//! Reading GitLab's answer: the status becomes a typed error, the body a page of records, and the
//! `Link` header the next page's token.

use serde_json::Value;

use crate::error::ConnectorError;
use crate::normalize::write_page;
use crate::pagination::{next_link, token_for, with_page};
use crate::request::Plan;
use crate::types::Page;

/// A response as the connector needs it: status, a header lookup, and the whole body.
pub struct Response<'a> {
    pub status: u16,
    /// The value of a header by lowercase name, if present.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// A whole response, owned: what a GET through `wasi:http` brings back.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// Header names in lowercase, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (lowercase), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Look at this answer as a [`Response`].
    pub fn view<T>(&self, f: impl FnOnce(&Response<'_>) -> T) -> T {
        let header = |name: &str| self.header(name);
        f(&Response { status: self.status, header: &header, body: &self.body })
    }
}

/// Turn `response` to the request `plan` fetched into a page, or a typed error.
pub fn interpret(plan: &Plan, response: &Response<'_>) -> Result<Page, ConnectorError> {
    let status = response.status;
    if !(200..300).contains(&status) {
        return Err(status_error(plan, response));
    }
    let mut page = Page { records: Vec::with_capacity(response.body.len()), ..Page::default() };
    if let Some(then) = &plan.then {
        // A single record read ahead of its list.
        let mut wrapped = Vec::with_capacity(response.body.len() + 2);
        wrapped.push(b'[');
        wrapped.extend_from_slice(response.body);
        wrapped.push(b']');
        let (count, high) = write_page(&mut page.records, plan.schema, &plan.fields, &wrapped, plan.scope_id)?;
        page.record_count = count;
        page.high_watermark = high;
        page.next_page_token = Some(then.clone());
        return Ok(page);
    }
    let (count, high) = write_page(&mut page.records, plan.schema, &plan.fields, response.body, plan.scope_id)?;
    page.record_count = count;
    page.high_watermark = high;
    // An empty page never links on: GitLab past its end would only repeat it.
    page.next_page_token = if count == 0 { None } else { next_page_token(plan, response)? };
    Ok(page)
}

/// The token of the page after the successful `response`, as GitLab links it (`Link`, else
/// `X-Next-Page`); `None` on the last page.
pub fn next_page_token(plan: &Plan, response: &Response<'_>) -> Result<Option<String>, ConnectorError> {
    if let Some(then) = &plan.then {
        return Ok(Some(then.clone()));
    }
    let next_url = match (response.header)("link").as_deref().and_then(next_link) {
        Some(url) => Some(url.to_owned()),
        None => {
            (response.header)("x-next-page").filter(|p| !p.trim().is_empty()).map(|p| with_page(&plan.url, p.trim()))
        }
    };
    next_url
        .map(|url| {
            token_for(&url).ok_or_else(|| {
                ConnectorError::Upstream(format!("GitLab linked the next page to '{url}', which is not an API v4 URL"))
            })
        })
        .transpose()
}

/// The URL the next `read-page` call will GET after `response`, when it is worth reading ahead: a
/// successful, non-empty page that links on. (The next call's plan builds the same URL from the token.)
pub fn ahead_url(plan: &Plan, response: &Response<'_>) -> Option<String> {
    let empty = response.body.trim_ascii() == b"[]";
    if !(200..300).contains(&response.status) || empty {
        return None;
    }
    let token = next_page_token(plan, response).ok()??;
    Some(format!("{}{token}", plan.api_root))
}

fn status_error(plan: &Plan, response: &Response<'_>) -> ConnectorError {
    status_error_for(&format!("{} at {}", plan.schema.spec.name, without_query(&plan.url)), response)
}

/// The typed error for a non-2xx `response` to the request for `what`.
pub fn status_error_for(what: &str, response: &Response<'_>) -> ConnectorError {
    let status = response.status;
    let message = upstream_message(response.body);
    match status {
        401 => ConnectorError::Unauthorized(format!("GitLab answered 401 for {what}: {message}")),
        403 => ConnectorError::Forbidden(format!("GitLab answered 403 for {what}: {message}")),
        404 => ConnectorError::NotFound(format!("GitLab answered 404 for {what}: {message}")),
        429 => ConnectorError::RateLimited {
            retry_after_seconds: (response.header)("retry-after").and_then(|v| v.trim().parse().ok()),
            message: format!("GitLab answered 429 for {what}: {message}"),
        },
        500..=599 => ConnectorError::Upstream(format!("GitLab answered {status} for {what}: {message}")),
        _ => ConnectorError::InvalidRequest(format!("GitLab refused the request for {what} ({status}): {message}")),
    }
}

/// GitLab's `message` or `error`, else the start of the body.
fn upstream_message(body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error", "error_description"] {
            match map.get(key) {
                Some(Value::String(s)) => return s.clone(),
                Some(other) if !other.is_null() => return other.to_string(),
                _ => {}
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(200).collect();
    if text.trim().is_empty() { "(empty body)".to_owned() } else { text }
}

pub fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::plan;
    use crate::types::{Connection, ReadRequest, Scope};

    fn issue_plan() -> Plan {
        let connection = Connection { base_url: "http://127.0.0.1:1".into(), options: vec![] };
        let request = ReadRequest {
            object: "issue".into(),
            scope: Scope::Project("5".into()),
            fields: vec!["title".into()],
            filters: vec![],
            page_size: 2,
            page_token: None,
        };
        plan(&connection, &request).unwrap()
    }

    #[test]
    fn follows_link_next() {
        let header = |name: &str| {
            (name == "link")
                .then(|| r#"<http://127.0.0.1:1/api/v4/projects/5/issues?page=2&per_page=2>; rel="next""#.to_owned())
        };
        let body = br#"[{"id":1,"title":"a"},{"id":2,"title":"b"}]"#;
        let page = interpret(&issue_plan(), &Response { status: 200, header: &header, body }).unwrap();
        assert_eq!(page.record_count, 2);
        assert_eq!(page.next_page_token.as_deref(), Some("/projects/5/issues?page=2&per_page=2"));
    }

    #[test]
    fn last_page_has_no_token() {
        let page = interpret(&issue_plan(), &Response { status: 200, header: &|_| None, body: b"[]" }).unwrap();
        assert_eq!((page.record_count, page.next_page_token), (0, None));
    }

    #[test]
    fn statuses_become_typed_errors() {
        let plan = issue_plan();
        let body = br#"{"message":"401 Unauthorized"}"#;
        let err = interpret(&plan, &Response { status: 401, header: &|_| None, body }).unwrap_err();
        assert_eq!(
            err,
            ConnectorError::Unauthorized(
                "GitLab answered 401 for issue at http://127.0.0.1:1/api/v4/projects/5/issues: 401 Unauthorized".into()
            )
        );
        let retry = |name: &str| (name == "retry-after").then(|| "30".to_owned());
        let err = interpret(&plan, &Response { status: 429, header: &retry, body: b"" }).unwrap_err();
        assert!(matches!(err, ConnectorError::RateLimited { retry_after_seconds: Some(30), .. }));
        let err = interpret(&plan, &Response { status: 502, header: &|_| None, body: b"<html>bad gateway</html>" })
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Upstream(_)));
    }

    #[test]
    fn a_body_that_is_not_records_is_an_upstream_error() {
        let err =
            interpret(&issue_plan(), &Response { status: 200, header: &|_| None, body: b"{\"oops\":1}" }).unwrap_err();
        assert!(matches!(err, ConnectorError::Upstream(_)), "{err}");
    }
}
