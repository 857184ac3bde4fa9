//! Planning a page read: from a `read-request` to the URL of the page to fetch.
//!
//! The first page's URL is built from the catalogue's endpoint for the request's scope, the filters'
//! query parameters and `per_page`; later pages come from the page token. Everything is checked here,
//! before any request is sent: the object, its scope, the selected fields and every filter.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::catalogue::{self, Children, RecordField, Schema};
use crate::error::{ConnectorError, invalid};
use crate::fanout::Progress;
use crate::filters;
use crate::normalize::projection;
use crate::types::{Connection, ReadRequest};

/// GitLab's maximum `per_page`.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Characters left as they are in a path segment; everything else (`/` included) is percent-encoded,
/// as GitLab wants for `:id` given as a full path (`acme%2Fplatform`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A checked read: what to fetch and how to turn the answer into records.
#[derive(Debug)]
pub struct Plan {
    pub schema: &'static Schema,
    /// The record fields to write, in order.
    pub fields: Vec<&'static RecordField>,
    /// The URL of the page to fetch.
    pub url: String,
    /// The numeric id of the scope, when known, for records that GitLab sends without it.
    pub scope_id: Option<i64>,
    /// Set when `url` is a single record read before a list (the group before its descendants): the
    /// token of that list's first page.
    pub then: Option<String>,
    /// `https://gitlab.example.com/api/v4`.
    pub api_root: String,
    /// Set for records read per parent (the notes of each issue): see [`crate::fanout`].
    pub per_parent: Option<PerParent>,
}

/// A read of records per parent: the children's endpoint, and where the read stands.
#[derive(Debug)]
pub struct PerParent {
    pub children: &'static Children,
    /// The scope's reference, encoded as a path segment.
    pub scope: String,
    /// What is left to read, from the page token (or the first page of parents).
    pub progress: Progress,
}

/// Check `request` and plan the fetch of its page.
pub fn plan(connection: &Connection, request: &ReadRequest) -> Result<Plan, ConnectorError> {
    let schema = catalogue::schema(&request.object)?;
    let spec = schema.spec;
    let kind = request.scope.kind();
    let endpoint = spec.endpoints.iter().find(|e| e.scope == kind).ok_or_else(|| {
        let scopes: Vec<&str> = spec.endpoints.iter().map(|e| e.scope.as_str()).collect();
        invalid(format!(
            "object '{}' is not read at {} scope; it is read at: {}",
            spec.name,
            kind.as_str(),
            scopes.join(", ")
        ))
    })?;
    let fields = projection(schema, &request.fields)?;
    let filter_query = filters::to_query(schema, &request.filters)?;
    if !spec.readable {
        return Err(ConnectorError::Unsupported(format!("object '{}' is described but not readable yet", spec.name)));
    }
    let api_root = api_root(&connection.base_url)?;
    let reference = request.scope.reference();
    if reference.is_some_and(|r| r.trim().is_empty()) {
        return Err(invalid(format!("the {} scope needs an id or a full path", kind.as_str())));
    }
    let scope_id = reference.and_then(|r| r.parse::<i64>().ok());

    let encoded_ref = reference.map(encode_segment);
    let fill = |path: &str| match &encoded_ref {
        Some(r) => path.replace("{id}", r),
        None => path.to_owned(),
    };
    let first_page = || {
        // The endpoint's own parameters, unless a filter sets them (a filter's value wins).
        let mut query: Vec<(String, String)> = endpoint
            .params
            .iter()
            .filter(|(k, _)| !filter_query.iter().any(|(f, _)| f == k))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sets_order = filter_query.iter().any(|(k, _)| k == "order_by" || k == "sort");
        if !sets_order {
            query.extend(endpoint.keyset.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        }
        query.extend(filter_query);
        let per_page = match request.page_size {
            0 => MAX_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        query.push(("per_page".to_owned(), per_page.to_string()));
        format!("{}?{}", fill(endpoint.path), encode_pairs(&query))
    };
    let (url, then, per_parent) = match (&endpoint.children, &request.page_token) {
        (Some(children), token) => {
            let progress = match token {
                Some(token) => Progress::decode(token)?,
                None => Progress::start(first_page()),
            };
            let scope = encoded_ref.clone().unwrap_or_default();
            // The next page of parents, when one is still to be listed.
            let url = format!("{api_root}{}", progress.parents().map_or_else(|| fill(endpoint.path), str::to_owned));
            (url, None, Some(PerParent { children, scope, progress }))
        }
        (None, Some(token)) => (format!("{api_root}{}", checked_token(token)?), None, None),
        (None, None) => match endpoint.head {
            Some(head) => (format!("{api_root}{}", fill(head)), Some(first_page()), None),
            None => (format!("{api_root}{}", first_page()), None, None),
        },
    };
    Ok(Plan { schema, fields, url, scope_id, then, api_root, per_parent })
}

/// `token` if it is one this connector could have issued: a path and query below the API root.
pub fn checked_token(token: &str) -> Result<&str, ConnectorError> {
    if !token.starts_with('/') || token.starts_with("//") || token.contains("://") || token.contains('#') {
        return Err(invalid(format!("'{token}' is not a page token this connector issued")));
    }
    Ok(token)
}

/// `k=v&k=v`, percent-encoded.
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v))).collect();
    encoded.join("&")
}

/// A group or project reference as a path segment (`acme/api` → `acme%2Fapi`).
pub fn encode_segment(reference: &str) -> String {
    utf8_percent_encode(reference.trim(), SEGMENT).to_string()
}

/// `https://gitlab.example.com[/prefix]` → `https://gitlab.example.com[/prefix]/api/v4`.
pub fn api_root(base_url: &str) -> Result<String, ConnectorError> {
    let base = base_url.trim().trim_end_matches('/');
    let base = base.strip_suffix("/api/v4").unwrap_or(base);
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| invalid(format!("base URL '{base_url}' must start with https:// or http://")))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ']) {
        return Err(invalid(format!(
            "base URL '{base_url}' must be an origin with an optional path, like https://gitlab.example.com"
        )));
    }
    Ok(format!("{base}/api/v4"))
}

fn encode_query(text: &str) -> String {
    const QUERY: &AsciiSet = &SEGMENT.remove(b'[').remove(b']').remove(b':');
    utf8_percent_encode(text, QUERY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Filter, FilterOperator, Scope};

    fn connection() -> Connection {
        Connection { base_url: "https://gitlab.example.com/".into(), options: vec![] }
    }

    fn request(object: &str, scope: Scope) -> ReadRequest {
        ReadRequest { object: object.into(), scope, fields: vec![], filters: vec![], page_size: 500, page_token: None }
    }

    #[test]
    fn group_projects_include_subgroups_and_encode_paths() {
        let plan = plan(&connection(), &request("project", Scope::Group("acme/platform".into()))).unwrap();
        assert_eq!(
            plan.url,
            "https://gitlab.example.com/api/v4/groups/acme%2Fplatform/projects?include_subgroups=true&per_page=100"
        );
    }

    #[test]
    fn instance_projects_use_keyset_pagination() {
        let plan = plan(&connection(), &request("project", Scope::Instance)).unwrap();
        assert_eq!(
            plan.url,
            "https://gitlab.example.com/api/v4/projects?membership=true&pagination=keyset&order_by=id&sort=asc&per_page=100"
        );
    }

    #[test]
    fn filters_become_query_parameters() {
        let mut req = request("issue", Scope::Project("42".into()));
        req.filters.push(Filter {
            field: "state".into(),
            operator: FilterOperator::EqualTo,
            values: vec!["opened".into()],
        });
        req.page_size = 20;
        let plan = plan(&connection(), &req).unwrap();
        assert_eq!(plan.url, "https://gitlab.example.com/api/v4/projects/42/issues?state=opened&per_page=20");
        assert_eq!(plan.scope_id, Some(42));
    }

    #[test]
    fn later_pages_come_from_the_token() {
        let mut req = request("issue", Scope::Project("42".into()));
        req.page_token = Some("/projects/42/issues?page=2&per_page=100".into());
        assert_eq!(
            plan(&connection(), &req).unwrap().url,
            "https://gitlab.example.com/api/v4/projects/42/issues?page=2&per_page=100"
        );
        req.page_token = Some("https://evil.example/x".into());
        assert!(plan(&connection(), &req).is_err());
    }

    #[test]
    fn a_scope_the_object_is_not_read_at_is_refused() {
        let err = plan(&connection(), &request("issue", Scope::Group("acme".into()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid request: object 'issue' is not read at group scope; it is read at: project"
        );
    }

    #[test]
    fn a_group_is_read_before_its_descendants() {
        let plan = plan(&connection(), &request("group", Scope::Group("acme".into()))).unwrap();
        assert_eq!(plan.url, "https://gitlab.example.com/api/v4/groups/acme");
        assert_eq!(plan.then.as_deref(), Some("/groups/acme/descendant_groups?per_page=100"));
    }

    #[test]
    fn base_urls_are_checked() {
        let mut conn = connection();
        conn.base_url = "gitlab.example.com".into();
        let err = plan(&conn, &request("issue", Scope::Project("1".into()))).unwrap_err();
        assert!(err.to_string().contains("must start with https://"), "{err}");
    }
}
