//! Records read per parent: the notes of each issue, the approvals of each merge request.
//!
//! GitLab serves these children only below their parent (`/projects/:id/issues/:iid/notes`), so a
//! read lists the parents a page at a time (the object's filters, incremental cursor included, apply
//! to that list), then reads the children of several parents at once. Where the read stands is
//! carried whole in the page token ([`Progress`]): the parents' next page, the parents listed but not
//! read yet, and the children's later pages still to read. Each `read-page` call:
//!
//! ```text
//!  nothing pending? ──► GET a page of parents ──► their keys become pending
//!  up to CHILDREN_AT_ONCE children ──► GET them concurrently ──► records (+ later pages pending)
//!  anything left? ──► the next page token
//! ```
//!
//! A parent that vanished between the listing and the read of its children (404) has no children.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ConnectorError, invalid};
use crate::normalize::write_page;
use crate::pagination::{next_link, token_for};
use crate::request::{MAX_PAGE_SIZE, PerParent, Plan, checked_token};
use crate::response::{Answer, Response, status_error_for, without_query};
use crate::types::Page;

/// How many parents' children one call reads at once.
pub const CHILDREN_AT_ONCE: usize = 8;

/// What makes these tokens recognizable.
const TOKEN_PREFIX: &str = "per-parent:";

/// Where a per-parent read stands; it travels in the page token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The next page of parents (a path below the API root); none once every page was listed.
    #[serde(rename = "p", skip_serializing_if = "Option::is_none", default)]
    parents: Option<String>,
    /// Keys of parents listed but whose children are not read yet.
    #[serde(rename = "k", skip_serializing_if = "VecDeque::is_empty", default)]
    pending: VecDeque<i64>,
    /// Later pages of children still to read (paths below the API root).
    #[serde(rename = "c", skip_serializing_if = "VecDeque::is_empty", default)]
    more: VecDeque<String>,
}

impl Progress {
    /// A read that starts at the first page of parents.
    pub fn start(first_page: String) -> Progress {
        Progress { parents: Some(first_page), ..Progress::default() }
    }

    /// The progress a page token carries, if this connector issued it.
    pub fn decode(token: &str) -> Result<Progress, ConnectorError> {
        let not_ours = || invalid(format!("'{token}' is not a page token this connector issued"));
        let json = token.strip_prefix(TOKEN_PREFIX).ok_or_else(not_ours)?;
        let progress: Progress = serde_json::from_str(json).map_err(|_| not_ours())?;
        for path in progress.parents.iter().chain(&progress.more) {
            checked_token(path)?;
        }
        Ok(progress)
    }

    /// The next page of parents to list, if any.
    pub fn parents(&self) -> Option<&str> {
        self.parents.as_deref()
    }

    fn encode(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        format!("{TOKEN_PREFIX}{}", serde_json::to_string(self).unwrap_or_default())
    }

    fn is_done(&self) -> bool {
        self.parents.is_none() && self.pending.is_empty() && self.more.is_empty()
    }
}

/// GETs several URLs at once; the answers in the same order.
pub type FetchAll<'a> = dyn FnMut(&[String]) -> Vec<Result<Answer, ConnectorError>> + 'a;

/// Read one page of a per-parent read.
pub fn read_page(plan: &Plan, fetch: &mut FetchAll<'_>) -> Result<Page, ConnectorError> {
    let per_parent = plan.per_parent.as_ref().ok_or_else(|| invalid("not a per-parent read"))?;
    let mut progress = per_parent.progress.clone();
    if progress.pending.is_empty()
        && progress.more.is_empty()
        && let Some(parents) = progress.parents.take()
    {
        let url = format!("{}{parents}", plan.api_root);
        let answer = fetch(std::slice::from_ref(&url)).pop().unwrap_or_else(|| Err(no_answer(&url)))?;
        let (keys, next) = answer.view(|r| list_parents(plan, per_parent, &url, r))?;
        progress.pending.extend(keys);
        progress.parents = next;
    }

    let mut urls = Vec::new();
    while urls.len() < CHILDREN_AT_ONCE {
        if let Some(path) = progress.more.pop_front() {
            urls.push(format!("{}{path}", plan.api_root));
        } else if let Some(key) = progress.pending.pop_front() {
            urls.push(first_children_url(plan, per_parent, key));
        } else {
            break;
        }
    }
    let mut page = Page::default();
    let answers = if urls.is_empty() { Vec::new() } else { fetch(&urls) };
    if answers.len() != urls.len() {
        return Err(ConnectorError::Transport(format!("{} requests sent, {} answered", urls.len(), answers.len())));
    }
    for (url, answer) in urls.iter().zip(answers) {
        let answer = answer?;
        if let Some(later) = answer.view(|r| children(plan, per_parent, url, r, &mut page))? {
            progress.more.push_back(later);
        }
    }
    page.next_page_token = (!progress.is_done()).then(|| progress.encode());
    Ok(page)
}

/// The parents' keys in one page of parents, and the token of the next page.
fn list_parents(
    plan: &Plan,
    per_parent: &PerParent,
    url: &str,
    response: &Response<'_>,
) -> Result<(Vec<i64>, Option<String>), ConnectorError> {
    let what = || format!("the parents of {} at {}", plan.schema.spec.name, without_query(url));
    if !(200..300).contains(&response.status) {
        return Err(status_error_for(&what(), response));
    }
    let parents: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(response.body)
        .map_err(|e| ConnectorError::Upstream(format!("{}: not a JSON array of objects: {e}", what())))?;
    let key = per_parent.children.parent_key;
    let keys = parents
        .iter()
        .map(|parent| {
            parent
                .get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| ConnectorError::Upstream(format!("{}: a parent without an integer '{key}'", what())))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let next = match (response.header)("link").as_deref().and_then(next_link) {
        Some(link) if !keys.is_empty() => Some(token_for(link).ok_or_else(|| {
            ConnectorError::Upstream(format!("{}: GitLab linked to '{link}', not an API v4 URL", what()))
        })?),
        _ => None,
    };
    Ok((keys, next))
}

/// The URL of the first page of one parent's children.
fn first_children_url(plan: &Plan, per_parent: &PerParent, key: i64) -> String {
    let path = per_parent.children.path.replace("{id}", &per_parent.scope).replace("{parent}", &key.to_string());
    let query = if per_parent.children.single { String::new() } else { format!("?per_page={MAX_PAGE_SIZE}") };
    format!("{}{path}{query}", plan.api_root)
}

/// Write one answer's children into `page`; return the token of their next page, if any.
fn children(
    plan: &Plan,
    per_parent: &PerParent,
    url: &str,
    response: &Response<'_>,
    page: &mut Page,
) -> Result<Option<String>, ConnectorError> {
    if response.status == 404 {
        // The parent was deleted after it was listed: it has no children any more.
        return Ok(None);
    }
    let what = format!("{} at {}", plan.schema.spec.name, without_query(url));
    if !(200..300).contains(&response.status) {
        return Err(status_error_for(&what, response));
    }
    let (count, high) = if per_parent.children.single {
        let mut wrapped = Vec::with_capacity(response.body.len() + 2);
        wrapped.push(b'[');
        wrapped.extend_from_slice(response.body);
        wrapped.push(b']');
        write_page(&mut page.records, plan.schema, &plan.fields, &wrapped, plan.scope_id)?
    } else {
        write_page(&mut page.records, plan.schema, &plan.fields, response.body, plan.scope_id)?
    };
    page.record_count += count;
    if let Some(high) = high
        && page.high_watermark.as_ref().is_none_or(|h| high > *h)
    {
        page.high_watermark = Some(high);
    }
    if per_parent.children.single || count == 0 {
        return Ok(None);
    }
    match (response.header)("link").as_deref().and_then(next_link) {
        Some(link) => Ok(Some(token_for(link).ok_or_else(|| {
            ConnectorError::Upstream(format!("{what}: GitLab linked to '{link}', not an API v4 URL"))
        })?)),
        None => Ok(None),
    }
}

fn no_answer(url: &str) -> ConnectorError {
    ConnectorError::Transport(format!("GET {url}: no answer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::plan;
    use crate::types::{Connection, ReadRequest, Scope};

    fn request(token: Option<String>) -> ReadRequest {
        ReadRequest {
            object: "issue_note".into(),
            scope: Scope::Project("5".into()),
            fields: vec!["body".into(), "project_id".into()],
            filters: vec![],
            page_size: 100,
            page_token: token,
        }
    }

    fn answer(body: &str, link: Option<&str>) -> Answer {
        let headers = link.map(|l| vec![("link".to_owned(), format!("<{l}>; rel=\"next\"").into_bytes())]);
        Answer { status: 200, headers: headers.unwrap_or_default(), body: body.as_bytes().to_vec() }
    }

    /// A fake GitLab: 10 issues over two pages; issue 3 has two pages of notes, issue 7 is gone.
    fn gitlab(url: &str) -> Answer {
        let root = "http://gl/api/v4";
        let path = url.strip_prefix(root).unwrap();
        match path {
            "/projects/5/issues?per_page=100" => answer(
                r#"[{"iid":1},{"iid":2},{"iid":3},{"iid":4},{"iid":5},{"iid":6}]"#,
                Some(&format!("{root}/projects/5/issues?page=2")),
            ),
            "/projects/5/issues?page=2" => answer(r#"[{"iid":7},{"iid":8},{"iid":9},{"iid":10}]"#, None),
            "/projects/5/issues/7/notes?per_page=100" => Answer { status: 404, ..Answer::default() },
            "/projects/5/issues/3/notes?per_page=100" => {
                answer(r#"[{"id":31,"body":"a"}]"#, Some(&format!("{root}/projects/5/issues/3/notes?page=2")))
            }
            "/projects/5/issues/3/notes?page=2" => answer(r#"[{"id":32,"body":"b"}]"#, None),
            other => {
                let iid: i64 = other.split('/').nth(4).unwrap().parse().unwrap();
                answer(&format!(r#"[{{"id":{},"body":"n"}}]"#, iid * 10), None)
            }
        }
    }

    #[test]
    fn reads_every_child_of_every_parent_once() {
        let connection = Connection { base_url: "http://gl".into(), options: vec![] };
        let mut token = None;
        let mut ids = Vec::new();
        let mut requests = 0;
        loop {
            let plan = plan(&connection, &request(token)).unwrap();
            let mut fetch = |urls: &[String]| {
                requests += urls.len();
                urls.iter().map(|u| Ok(gitlab(u))).collect()
            };
            let page = read_page(&plan, &mut fetch).unwrap();
            for line in page.records.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let record: Value = serde_json::from_slice(line).unwrap();
                assert_eq!(record["project_id"], 5, "{record}");
                ids.push(record["id"].as_i64().unwrap());
            }
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        ids.sort_unstable();
        assert_eq!(ids, [10, 20, 31, 32, 40, 50, 60, 80, 90, 100]);
        // 2 pages of parents, 10 children's first pages, 1 later page: nothing twice, nothing more.
        assert_eq!(requests, 13);
    }

    #[test]
    fn foreign_tokens_are_refused() {
        let connection = Connection { base_url: "http://gl".into(), options: vec![] };
        for token in ["/projects/5/issues?page=2", "per-parent:{\"p\":\"https://evil.example/x\"}", "per-parent:oops"] {
            let err = plan(&connection, &request(Some(token.into()))).unwrap_err();
            assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{token}: {err}");
        }
    }
}
