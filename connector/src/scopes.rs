//! `list-scopes`: the projects or groups inside a wider scope, by numeric id, a page at a time.
//!
//! The host uses it to read a project-level object over a whole group (or the instance), and to turn
//! the paths people type into the ids partitions are keyed by:
//!
//! | within       | kind    | GitLab request                                                        |
//! |--------------|---------|-----------------------------------------------------------------------|
//! | project P    | project | `GET /projects/P` (resolves a path)                                   |
//! | group G      | group   | `GET /groups/G`, then `GET /groups/G/descendant_groups`              |
//! | group G      | project | `GET /groups/G/projects?include_subgroups=true&simple=true`           |
//! | instance     | project | `GET /projects?membership=true&simple=true`, keyset by id             |
//! | instance     | group   | `GET /groups`                                                         |

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ConnectorError, invalid};
use crate::pagination::{next_link, token_for};
use crate::request::{MAX_PAGE_SIZE, api_root, checked_token, encode_segment};
use crate::response::{Response, status_error_for, without_query};
use crate::types::{Connection, Scope, ScopeKind};

/// A found scope and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeEntry {
    pub scope: Scope,
    pub label: String,
}

/// One page of found scopes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScopePage {
    pub scopes: Vec<ScopeEntry>,
    pub next_page_token: Option<String>,
}

/// What to fetch for one `list-scopes` page.
#[derive(Debug)]
pub struct ScopePlan {
    pub url: String,
    /// The kind of scope the answer lists.
    kind: ScopeKind,
    /// The answer is one object (not a list), followed by the list at this token, if any.
    single_then: Option<Option<String>>,
}

/// Plan the fetch of one `list-scopes` page.
pub fn plan(
    connection: &Connection,
    within: &Scope,
    kind: ScopeKind,
    token: Option<&str>,
) -> Result<ScopePlan, ConnectorError> {
    let root = api_root(&connection.base_url)?;
    if let Some(token) = token {
        return Ok(ScopePlan { url: format!("{root}{}", checked_token(token)?), kind, single_then: None });
    }
    if within.reference().is_some_and(|r| r.trim().is_empty()) {
        return Err(invalid(format!("the {} scope needs an id or a full path", within.kind().as_str())));
    }
    let per_page = format!("per_page={MAX_PAGE_SIZE}");
    let (url, single_then) = match (within, kind) {
        (Scope::Project(p), ScopeKind::Project) => (format!("/projects/{}", encode_segment(p)), Some(None)),
        (Scope::Group(g), ScopeKind::Group) => {
            let g = encode_segment(g);
            (
                format!("/groups/{g}"),
                Some(Some(format!("/groups/{g}/descendant_groups?order_by=id&sort=asc&{per_page}"))),
            )
        }
        (Scope::Group(g), ScopeKind::Project) => (
            format!(
                "/groups/{}/projects?include_subgroups=true&simple=true&order_by=id&sort=asc&{per_page}",
                encode_segment(g)
            ),
            None,
        ),
        (Scope::Instance, ScopeKind::Project) => {
            (format!("/projects?membership=true&simple=true&pagination=keyset&order_by=id&sort=asc&{per_page}"), None)
        }
        (Scope::Instance, ScopeKind::Group) => (format!("/groups?order_by=id&sort=asc&{per_page}"), None),
        (within, kind) => {
            return Err(invalid(format!(
                "there are no {} scopes within a {} scope",
                kind.as_str(),
                within.kind().as_str()
            )));
        }
    };
    Ok(ScopePlan { url: format!("{root}{url}"), kind, single_then })
}

/// Turn GitLab's answer into a page of scopes.
pub fn interpret(plan: &ScopePlan, response: &Response<'_>) -> Result<ScopePage, ConnectorError> {
    if !(200..300).contains(&response.status) {
        // `project at URL` for a scope's own lookup, `projects at URL` for a listing.
        let plural = if plan.single_then.is_some() { "" } else { "s" };
        let what = format!("{}{plural} at {}", plan.kind.as_str(), without_query(&plan.url));
        return Err(status_error_for(&what, response));
    }
    let items = match listed(plan, response.body) {
        Some(items) => items,
        None => listed_from_tree(plan, response.body)?,
    };
    let scopes = items.iter().map(|item| entry(plan.kind, item)).collect::<Result<_, _>>()?;
    let next_page_token = match &plan.single_then {
        Some(then) => then.clone(),
        None => match (response.header)("link").as_deref().and_then(next_link) {
            Some(url) if !items.is_empty() => Some(
                token_for(url)
                    .ok_or_else(|| ConnectorError::Upstream(format!("GitLab linked to '{url}', not an API v4 URL")))?,
            ),
            _ => None,
        },
    };
    Ok(ScopePage { scopes, next_page_token })
}

/// What a listed project or group says that a scope needs; GitLab's other fields are skipped unread.
#[derive(Deserialize)]
struct Listed {
    id: Option<Value>,
    path_with_namespace: Option<Value>,
    full_path: Option<Value>,
}

/// The answer read straight into [`Listed`] entries: a page of 100 projects is ~100 KB of fields a
/// scope does not use, which a tree of it allocated one by one (most of a large group's listing
/// CPU). `None` when the answer is not the JSON expected, for [`listed_from_tree`] to say why.
fn listed(plan: &ScopePlan, body: &[u8]) -> Option<Vec<Listed>> {
    match plan.single_then {
        Some(_) => serde_json::from_slice::<Listed>(body).ok().map(|item| vec![item]),
        None => serde_json::from_slice::<Vec<Listed>>(body).ok(),
    }
}

/// The answer read as a tree of JSON, for an answer [`listed`] could not take: a body that is not
/// JSON or not the expected object or list is refused with what it holds; entries that are not
/// objects, or fields written twice, are read as a tree reads them.
fn listed_from_tree(plan: &ScopePlan, body: &[u8]) -> Result<Vec<Listed>, ConnectorError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ConnectorError::Upstream(format!("GitLab sent a body that is not JSON for {}: {e}", plan.url)))?;
    let items = match (&plan.single_then, body) {
        (Some(_), item @ Value::Object(_)) => vec![item],
        (None, Value::Array(items)) => items,
        (_, other) => {
            let shown: String = other.to_string().chars().take(80).collect();
            return Err(ConnectorError::Upstream(format!("GitLab sent an unexpected body for {}: {shown}", plan.url)));
        }
    };
    let field = |item: &Value, name: &str| item.get(name).cloned();
    Ok(items
        .iter()
        .map(|item| Listed {
            id: field(item, "id"),
            path_with_namespace: field(item, "path_with_namespace"),
            full_path: field(item, "full_path"),
        })
        .collect())
}

fn entry(kind: ScopeKind, item: &Listed) -> Result<ScopeEntry, ConnectorError> {
    let id = item
        .id
        .as_ref()
        .and_then(Value::as_i64)
        .ok_or_else(|| ConnectorError::Upstream(format!("GitLab sent a {} without a numeric id", kind.as_str())))?;
    let label = if kind == ScopeKind::Project { &item.path_with_namespace } else { &item.full_path };
    let label = label.as_ref().and_then(Value::as_str).map_or_else(|| id.to_string(), str::to_owned);
    let scope = if kind == ScopeKind::Project { Scope::Project(id.to_string()) } else { Scope::Group(id.to_string()) };
    Ok(ScopeEntry { scope, label })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection { base_url: "https://gitlab.example.com".into(), options: vec![] }
    }

    #[test]
    fn group_projects_are_listed_by_id_with_subgroups() {
        let plan = plan(&connection(), &Scope::Group("acme/platform".into()), ScopeKind::Project, None).unwrap();
        assert_eq!(
            plan.url,
            "https://gitlab.example.com/api/v4/groups/acme%2Fplatform/projects?include_subgroups=true&simple=true&order_by=id&sort=asc&per_page=100"
        );
        let link = |name: &str| {
            (name == "link")
                .then(|| "<https://gitlab.example.com/api/v4/groups/5/projects?page=2>; rel=\"next\"".to_owned())
        };
        let body = br#"[{"id":7,"path_with_namespace":"acme/platform/api"},{"id":9,"path_with_namespace":"acme/platform/web"}]"#;
        let page = interpret(&plan, &Response { status: 200, header: &link, body }).unwrap();
        assert_eq!(page.scopes[0], ScopeEntry { scope: Scope::Project("7".into()), label: "acme/platform/api".into() });
        assert_eq!(page.next_page_token.as_deref(), Some("/groups/5/projects?page=2"));
    }

    #[test]
    fn a_project_path_resolves_to_its_id() {
        let plan = plan(&connection(), &Scope::Project("acme/api".into()), ScopeKind::Project, None).unwrap();
        assert_eq!(plan.url, "https://gitlab.example.com/api/v4/projects/acme%2Fapi");
        let body = br#"{"id":42,"path_with_namespace":"acme/api"}"#;
        let page = interpret(&plan, &Response { status: 200, header: &|_| None, body }).unwrap();
        assert_eq!(page.scopes, [ScopeEntry { scope: Scope::Project("42".into()), label: "acme/api".into() }]);
        assert_eq!(page.next_page_token, None);
    }

    #[test]
    fn a_group_comes_before_its_descendants() {
        let plan = plan(&connection(), &Scope::Group("acme".into()), ScopeKind::Group, None).unwrap();
        let body = br#"{"id":10,"full_path":"acme"}"#;
        let page = interpret(&plan, &Response { status: 200, header: &|_| None, body }).unwrap();
        assert_eq!(page.scopes[0].scope, Scope::Group("10".into()));
        assert_eq!(
            page.next_page_token.as_deref(),
            Some("/groups/acme/descendant_groups?order_by=id&sort=asc&per_page=100")
        );
    }

    #[test]
    fn a_listing_is_read_for_its_ids_and_odd_answers_as_a_tree_reads_them() {
        let listing = plan(&connection(), &Scope::Group("acme".into()), ScopeKind::Project, None).unwrap();
        let read = |body: &[u8]| interpret(&listing, &Response { status: 200, header: &|_| None, body });
        let project = |id: &str, label: &str| ScopeEntry { scope: Scope::Project(id.into()), label: label.into() };
        // GitLab's other fields, of any shape, are skipped; a missing or null label is the id.
        let body = br#"[{"id":7,"name":"api","namespace":{"id":1,"full_path":"acme"},"tag_list":["x"],"path_with_namespace":"acme/api"},
                        {"id":8,"path_with_namespace":null},{"id":9}]"#;
        assert_eq!(read(body).unwrap().scopes, [project("7", "acme/api"), project("8", "8"), project("9", "9")]);
        // A field written twice is the last one, as in a tree of the JSON.
        let twice = br#"[{"id":1,"id":2,"path_with_namespace":"a","path_with_namespace":"b"}]"#;
        assert_eq!(read(twice).unwrap().scopes, [project("2", "b")]);
        let refused = |body: &[u8]| read(body).unwrap_err().to_string();
        assert_eq!(refused(br#"[{"id":"7"}]"#), "upstream error: GitLab sent a project without a numeric id");
        assert_eq!(refused(b"[3]"), "upstream error: GitLab sent a project without a numeric id");
        let url = "https://gitlab.example.com/api/v4/groups/acme/projects?include_subgroups=true&simple=true&order_by=id&sort=asc&per_page=100";
        assert_eq!(
            refused(br#"{"id":7}"#),
            format!("upstream error: GitLab sent an unexpected body for {url}: {{\"id\":7}}")
        );
        assert!(
            refused(b"[{\"id\":7}")
                .starts_with(&format!("upstream error: GitLab sent a body that is not JSON for {url}: "))
        );
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let err = plan(&connection(), &Scope::Project("1".into()), ScopeKind::Group, None).unwrap_err();
        assert_eq!(err.to_string(), "invalid request: there are no group scopes within a project scope");
        let plan = plan(&connection(), &Scope::Group("nope".into()), ScopeKind::Project, None).unwrap();
        let body = br#"{"message":"404 Group Not Found"}"#;
        let err = interpret(&plan, &Response { status: 404, header: &|_| None, body }).unwrap_err();
        assert!(matches!(err, ConnectorError::NotFound(ref m) if m.contains("404 Group Not Found")), "{err}");
    }

    #[test]
    fn an_error_names_a_lookup_by_its_scope_and_a_listing_by_what_it_lists() {
        let body = br#"{"message":"404 Project Not Found"}"#;
        let answer = Response { status: 404, header: &|_| None, body };
        let lookup = plan(&connection(), &Scope::Project("acme/typo".into()), ScopeKind::Project, None).unwrap();
        assert_eq!(
            interpret(&lookup, &answer).unwrap_err().to_string(),
            "not found: GitLab answered 404 for project at https://gitlab.example.com/api/v4/projects/acme%2Ftypo: \
             404 Project Not Found"
        );
        let listing = plan(&connection(), &Scope::Group("acme".into()), ScopeKind::Project, None).unwrap();
        let error = interpret(&listing, &answer).unwrap_err().to_string();
        assert!(error.contains("for projects at https://gitlab.example.com/api/v4/groups/acme/projects:"), "{error}");
    }
}
