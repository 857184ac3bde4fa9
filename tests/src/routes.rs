//! The `/api/v4` routes: one axum fallback handler that logs the request, matches the path
//! itself, checks the token and answers from the world's pre-rendered JSON.
//!
//! Flow of a request: [`handle`] logs it ([`crate::recorder`]), [`Route::parse`] splits the raw
//! path into percent-decoded segments (so `acme%2Fplatform` is one `:id` segment), the method and
//! token are checked ([`crate::auth`]), the part of a project's data the route reads is generated
//! on a blocking thread if this is its first use ([`Route::needs`]), and the handler filters and
//! paginates ([`crate::pagination`]) the records into a [`Reply`]. The handlers of issues, merge
//! requests, projects and groups are here (their filters in [`crate::filters`]); those of the
//! other objects live with their data: [`crate::repository`], [`crate::ci`], [`crate::labels`],
//! [`crate::members`], [`crate::discussions`]. Matching the path by hand (rather than with axum's
//! router and extractors) keeps every error in GitLab's JSON shape.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, Response, StatusCode, header, request::Parts};
use percent_encoding::percent_decode_str;

use crate::auth::{Caller, authenticate, presented_token};
use crate::cache::{ListCache, ListKey, ListKind, ReplyCache, ReplyKey};
use crate::discussions::Noteable;
use crate::faults::{Admission, FaultState};
use crate::filters::{GroupQuery, IssueQuery, MergeRequestQuery, ProjectQuery};
use crate::oauth::{self, OAuthServer};
use crate::pagination::{
    self, Counting, PageRequest, RequestUrl, json_array, keyset_page, offset_page, offset_page_mapped,
};
use crate::query::Query;
use crate::recorder::Recorder;
use crate::reply::{ApiError, Reply};
use crate::world::{Group, Part, Project, World};

/// Shared state of one running simulator.
pub(crate) struct App {
    pub world: Arc<World>,
    pub token: Option<String>,
    pub recorder: Arc<Recorder>,
    /// The OAuth2 provider (`/oauth/*`, and the access tokens it issued).
    pub oauth: Arc<OAuthServer>,
    /// Used for Link URLs when a request has no `Host` header.
    pub local_addr: SocketAddr,
    /// Compress JSON answers for clients that accept gzip.
    pub gzip: bool,
    /// Faults to inject, and what was injected.
    pub faults: Arc<FaultState>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicU64>,
    /// The record lists of issues and merge requests computed lately (see [`crate::cache`]).
    pub lists: ListCache,
    /// Successful `GET` list answers (see [`crate::cache`]).
    pub replies: ReplyCache,
}

/// Every API route the simulator knows. `String`s are decoded `:id` / `:iid` segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    User,
    Groups,
    Group(String),
    GroupProjects(String),
    Subgroups(String),
    DescendantGroups(String),
    Projects,
    Project(String),
    Issues(String),
    Issue(String, String),
    MergeRequests(String),
    MergeRequest(String, String),
    IssueNotes(String, String),
    MergeRequestNotes(String, String),
    Approvals(String, String),
    Commits(String),
    Branches(String),
    Tags(String),
    Releases(String),
    Pipelines(String),
    Jobs(String),
    Environments(String),
    Deployments(String),
    ProjectLabels(String),
    ProjectMilestones(String),
    ProjectMembers(String),
    GroupLabels(String),
    GroupMilestones(String),
    GroupMembers(String),
}

impl Route {
    /// Matches a raw (percent-encoded) request path.
    pub fn parse(raw_path: &str) -> Option<Route> {
        let rest = raw_path.strip_prefix("/api/v4/")?;
        let segments: Vec<String> =
            rest.split('/').map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let id = |v: &str| v.to_owned();
        Some(match s.as_slice() {
            ["version"] => Route::Version,
            ["user"] => Route::User,
            ["groups"] => Route::Groups,
            ["groups", g] if !g.is_empty() => Route::Group(id(g)),
            ["groups", g, "projects"] => Route::GroupProjects(id(g)),
            ["groups", g, "subgroups"] => Route::Subgroups(id(g)),
            ["groups", g, "descendant_groups"] => Route::DescendantGroups(id(g)),
            ["groups", g, "labels"] => Route::GroupLabels(id(g)),
            ["groups", g, "milestones"] => Route::GroupMilestones(id(g)),
            ["groups", g, "members"] => Route::GroupMembers(id(g)),
            ["projects"] => Route::Projects,
            ["projects", p] if !p.is_empty() => Route::Project(id(p)),
            ["projects", p, "issues"] => Route::Issues(id(p)),
            ["projects", p, "issues", i] => Route::Issue(id(p), id(i)),
            ["projects", p, "merge_requests"] => Route::MergeRequests(id(p)),
            ["projects", p, "merge_requests", i] => Route::MergeRequest(id(p), id(i)),
            ["projects", p, "issues", i, "notes"] => Route::IssueNotes(id(p), id(i)),
            ["projects", p, "merge_requests", i, "notes"] => Route::MergeRequestNotes(id(p), id(i)),
            ["projects", p, "merge_requests", i, "approvals"] => Route::Approvals(id(p), id(i)),
            ["projects", p, "repository", "commits"] => Route::Commits(id(p)),
            ["projects", p, "repository", "branches"] => Route::Branches(id(p)),
            ["projects", p, "repository", "tags"] => Route::Tags(id(p)),
            ["projects", p, "releases"] => Route::Releases(id(p)),
            ["projects", p, "pipelines"] => Route::Pipelines(id(p)),
            ["projects", p, "jobs"] => Route::Jobs(id(p)),
            ["projects", p, "environments"] => Route::Environments(id(p)),
            ["projects", p, "deployments"] => Route::Deployments(id(p)),
            ["projects", p, "labels"] => Route::ProjectLabels(id(p)),
            ["projects", p, "milestones"] => Route::ProjectMilestones(id(p)),
            ["projects", p, "members"] => Route::ProjectMembers(id(p)),
            _ => return None,
        })
    }

    /// Whether the route answers a list (a page of records), which [`ReplyCache`] may keep.
    fn is_list(&self) -> bool {
        !matches!(
            self,
            Route::Version
                | Route::User
                | Route::Group(_)
                | Route::Project(_)
                | Route::Issue(..)
                | Route::MergeRequest(..)
                | Route::Approvals(..)
        )
    }

    /// The project this route reads, and the part of its data that must be generated first.
    fn needs(&self) -> Option<(&str, Part)> {
        Some(match self {
            Route::Issues(p) | Route::Issue(p, _) | Route::MergeRequests(p) | Route::MergeRequest(p, _) => {
                (p, Part::Records)
            }
            Route::IssueNotes(p, _) | Route::MergeRequestNotes(p, _) | Route::Approvals(p, _) => (p, Part::Discussions),
            Route::Commits(p) | Route::Branches(p) | Route::Tags(p) | Route::Releases(p) => (p, Part::Repository),
            Route::Pipelines(p) | Route::Jobs(p) | Route::Environments(p) | Route::Deployments(p) => (p, Part::Ci),
            Route::ProjectLabels(p) | Route::ProjectMilestones(p) => (p, Part::Labels),
            Route::ProjectMembers(p) => (p, Part::Members),
            _ => return None,
        })
    }
}

/// The axum handler for every request.
pub(crate) async fn handle(State(app): State<Arc<App>>, request: Request) -> Response<Body> {
    if oauth::serves(request.uri().path()) {
        return oauth::handle(&app, request).await;
    }
    let (parts, _body) = request.into_parts();
    let index = app.recorder.begin(&parts);
    // A fault or the rate limit may answer first, or break the answer on its way out.
    let admitted = match app.faults.admit(&parts).await {
        Admission::Refuse(response, status) => {
            app.recorder.finish(index, status);
            return response;
        }
        Admission::Answer(admitted) => admitted,
    };
    let reply = respond(&app, &parts).await;
    app.recorder.finish(index, reply.status.as_u16());
    admitted.deliver(&parts, reply.into_response(index as u64 + 1), app.gzip).await
}

async fn respond(app: &Arc<App>, parts: &Parts) -> Reply {
    let Some(route) = Route::parse(parts.uri.path()) else {
        return ApiError::NoRoute.reply();
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return ApiError::MethodNotAllowed.reply();
    }
    let query = Query::parse(parts.uri.query());
    let presented = presented_token(&parts.headers, &query);
    let caller = match app.oauth.authenticate(presented) {
        Some(Ok(caller)) => caller,
        Some(Err(reply)) => return reply,
        None => match authenticate(app.token.as_deref(), presented) {
            Ok(caller) => caller,
            Err(e) => return e.reply(),
        },
    };
    // First use of a project's data: generate it off the async workers.
    if let Some((project, part)) = route.needs()
        && let Some(index) = app.world.project_index(project)
        && !app.world.is_built(index, part)
    {
        let world = Arc::clone(&app.world);
        let _ = tokio::task::spawn_blocking(move || world.build(index, part)).await;
    }
    let fallback_host = app.local_addr.to_string();
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(&fallback_host);
    // A list asked for before is answered as it was (gzipped as it was, if it was).
    let gzip = app.gzip && crate::encoding::accepted(parts);
    let key = (parts.method == Method::GET && route.is_list()).then(|| ReplyKey {
        caller,
        today: crate::time::today(),
        host: host.to_owned(),
        path_and_query: parts.uri.path_and_query().map_or(parts.uri.path(), |pq| pq.as_str()).to_owned(),
        gzip,
    });
    if let Some(kept) = key.as_ref().and_then(|key| app.replies.get(key)) {
        return kept;
    }
    let ctx = Ctx {
        world: &app.world,
        lists: &app.lists,
        query: &query,
        caller,
        url: RequestUrl { host, path: parts.uri.path(), query: parts.uri.query().unwrap_or("") },
    };
    let mut reply = ctx.route(&route).unwrap_or_else(|e| e.reply());
    if let Some(key) = key
        && reply.status == StatusCode::OK
    {
        if gzip && let Some(compressed) = crate::encoding::compress(&reply.body) {
            reply.body = compressed.into();
            reply.gzipped = true;
        }
        app.replies.insert(key, &reply);
    }
    reply
}

/// One request being answered.
pub(crate) struct Ctx<'a> {
    pub world: &'a World,
    pub lists: &'a ListCache,
    pub query: &'a Query,
    pub caller: Caller,
    pub url: RequestUrl<'a>,
}

impl Ctx<'_> {
    pub fn route(&self, route: &Route) -> Result<Reply, ApiError> {
        match route {
            Route::Version => Ok(Reply::json(
                br#"{"version":"17.6.0-ee","revision":"gitlab-sim","kas":{"enabled":false,"externalUrl":null,"externalK8sProxyUrl":null,"version":null},"enterprise":true}"#
                    .to_vec(),
            )),
            Route::User => match self.caller {
                Caller::Anonymous => Err(ApiError::Unauthorized),
                Caller::User(_) => Ok(Reply::json(self.world.current_user_json().to_vec())),
            },
            Route::Groups => self.groups(None, false),
            Route::Group(g) => self.group(g),
            Route::Subgroups(g) => self.groups(Some(self.find_group(g)?), false),
            Route::DescendantGroups(g) => self.groups(Some(self.find_group(g)?), true),
            Route::GroupProjects(g) => self.group_projects(g),
            Route::Projects => self.projects(),
            Route::Project(p) => Ok(Reply::json(self.find_project(p)?.json.to_vec())),
            Route::Issues(p) => self.issues(p),
            Route::Issue(p, iid) => self.issue(p, iid),
            Route::MergeRequests(p) => self.merge_requests(p),
            Route::MergeRequest(p, iid) => self.merge_request(p, iid),
            Route::IssueNotes(p, iid) => self.notes(p, Noteable::Issue, iid),
            Route::MergeRequestNotes(p, iid) => self.notes(p, Noteable::MergeRequest, iid),
            Route::Approvals(p, iid) => self.approvals(p, iid),
            Route::Commits(p) => self.commits(p),
            Route::Branches(p) => self.branches(p),
            Route::Tags(p) => self.tags(p),
            Route::Releases(p) => self.releases(p),
            Route::Pipelines(p) => self.pipelines(p),
            Route::Jobs(p) => self.jobs(p),
            Route::Environments(p) => self.environments(p),
            Route::Deployments(p) => self.deployments(p),
            Route::ProjectLabels(p) => self.project_labels(p),
            Route::ProjectMilestones(p) => self.project_milestones(p),
            Route::ProjectMembers(p) => self.project_members(p),
            Route::GroupLabels(g) => self.group_labels(g),
            Route::GroupMilestones(g) => self.group_milestones(g),
            Route::GroupMembers(g) => self.group_members(g),
        }
    }

    /// The key of a list of the project at `index` for this request: everything but the page.
    fn list_key(&self, kind: ListKind, project: usize) -> ListKey {
        let query = self
            .url
            .query
            .split('&')
            .filter(|piece| {
                let raw_key = piece.split_once('=').map_or(*piece, |(k, _)| k);
                let key = form_urlencoded::parse(raw_key.as_bytes()).next().map(|(k, _)| k);
                !matches!(key.as_deref(), Some("page" | "per_page"))
            })
            .collect::<Vec<_>>()
            .join("&");
        ListKey { kind, project, caller: self.caller, today: crate::time::today(), query }
    }

    /// The index of a route's project; 404 `Project Not Found` for an unknown one.
    pub(crate) fn project_at(&self, id_or_path: &str) -> Result<usize, ApiError> {
        self.world.project_index(id_or_path).ok_or(ApiError::NotFound("Project"))
    }

    fn find_group(&self, id_or_path: &str) -> Result<&Group, ApiError> {
        self.world.group_by_ref(id_or_path).ok_or(ApiError::NotFound("Group"))
    }

    fn find_project(&self, id_or_path: &str) -> Result<&Project, ApiError> {
        self.world.project_by_ref(id_or_path).ok_or(ApiError::NotFound("Project"))
    }

    /// `GET /groups/:id`: the group with its direct projects (at most 100), as GitLab's
    /// `GroupDetail` does.
    fn group(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let with_projects = self.query.flag("with_projects")?.unwrap_or(true);
        let group = self.find_group(id_or_path)?;
        let list_json = &group.json[..group.json.len().saturating_sub(1)];
        let mut body = Vec::with_capacity(list_json.len() + 256);
        body.extend_from_slice(list_json);
        body.extend_from_slice(br#","shared_with_groups":[],"prevent_sharing_groups_outside_hierarchy":false"#);
        if with_projects {
            let projects = self.world.projects_in_group(group.id, false);
            body.extend_from_slice(br#","projects":"#);
            body.extend(json_array(projects.iter().take(100).map(|p| &*p.json)));
            body.extend_from_slice(br#","shared_projects":[]"#);
        }
        body.push(b'}');
        Ok(Reply::json(body))
    }

    /// `GET /groups`, `/groups/:id/subgroups` (`below`, direct children) and
    /// `/groups/:id/descendant_groups` (`below`, all descendants).
    fn groups(&self, below: Option<&Group>, descendants: bool) -> Result<Reply, ApiError> {
        let spec = GroupQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let scope: Option<Vec<u64>> = below.map(|g| {
            let mut ids = self.world.group_and_descendants(g.id, true);
            ids.retain(|&id| id != g.id);
            ids
        });
        let mut groups: Vec<&Group> = self
            .world
            .groups()
            .iter()
            .filter(|g| match (&scope, below) {
                (None, _) => true,
                (Some(ids), Some(parent)) => ids.contains(&g.id) && (descendants || g.parent_id == Some(parent.id)),
                (Some(_), None) => false,
            })
            .filter(|g| spec.matches(g))
            .collect();
        spec.sort(&mut groups);
        let items: Vec<&[u8]> = groups.iter().map(|g| &*g.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /groups/:id/projects`.
    fn group_projects(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = ProjectQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let include_subgroups = self.query.flag("include_subgroups")?.unwrap_or(false);
        let group = self.find_group(id_or_path)?;
        let mut projects: Vec<&Project> =
            self.world.projects_in_group(group.id, include_subgroups).into_iter().filter(|p| spec.matches(p)).collect();
        // Keyset pagination is a `GET /projects` feature; here it is plain offset pagination.
        let mut spec = spec;
        spec.keyset = false;
        spec.sort(&mut projects);
        let items: Vec<&[u8]> = projects.iter().map(|p| &*p.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects`, with offset or keyset pagination.
    fn projects(&self) -> Result<Reply, ApiError> {
        let spec = ProjectQuery::parse(self.query)?;
        self.query.flag("membership")?;
        self.query.flag("owned")?;
        self.query.flag("starred")?;
        self.query.flag("simple")?;
        self.query.flag("statistics")?;
        if spec.keyset && spec.order_given && spec.order != crate::filters::ProjectOrder::Id {
            return Err(ApiError::KeysetUnsupported);
        }
        let mut projects: Vec<&Project> = self.world.projects().iter().filter(|p| spec.matches(p)).collect();
        spec.sort(&mut projects);
        if spec.keyset {
            let per_page = pagination::per_page(self.query)?;
            let cursor = if spec.desc { "id_before" } else { "id_after" };
            let items: Vec<(u64, &[u8])> = projects.iter().map(|p| (p.id, &*p.json)).collect();
            return Ok(keyset_page(&self.url, per_page, cursor, &items));
        }
        let page = PageRequest::from_query(self.query)?;
        let items: Vec<&[u8]> = projects.iter().map(|p| &*p.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// The project of an issues route, and its index; 404 unknown, 403 issues disabled.
    fn issues_project(&self, id_or_path: &str) -> Result<(&Project, usize), ApiError> {
        let index = self.world.project_index(id_or_path).ok_or(ApiError::NotFound("Project"))?;
        let project = &self.world.projects()[index];
        if !project.issues_enabled {
            return Err(ApiError::Forbidden);
        }
        Ok((project, index))
    }

    fn merge_requests_project(&self, id_or_path: &str) -> Result<(&Project, usize), ApiError> {
        let index = self.world.project_index(id_or_path).ok_or(ApiError::NotFound("Project"))?;
        let project = &self.world.projects()[index];
        if !project.merge_requests_enabled {
            return Err(ApiError::Forbidden);
        }
        Ok((project, index))
    }

    /// `GET /projects/:id/issues`.
    pub fn issues(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = IssueQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let (project, index) = self.issues_project(id_or_path)?;
        let set = &self.world.records(index).issues;
        let kept = self.lists.get_or_compute(self.list_key(ListKind::Issues, index), || {
            let filter = spec.resolve(self.world, project, self.caller);
            crate::filters::ordered(set, spec.order, spec.desc, |m| filter.matches(m), |m| m.due_date)
        });
        Ok(offset_page_mapped(&self.url, page, &kept, Counting::UpToLimit, |&i| {
            Cow::Borrowed(&set.items[i as usize].json)
        }))
    }

    /// `GET /projects/:id/issues/:iid`.
    fn issue(&self, id_or_path: &str, iid: &str) -> Result<Reply, ApiError> {
        let (_, index) = self.issues_project(id_or_path)?;
        let iid: u64 = iid.parse().map_err(|_| ApiError::NotFound("Issue"))?;
        let record = self.world.records(index).issues.by_iid(iid).ok_or(ApiError::NotFound("Issue"))?;
        Ok(Reply::json(record.json.to_vec()))
    }

    /// `GET /projects/:id/merge_requests`.
    pub fn merge_requests(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = MergeRequestQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let (project, index) = self.merge_requests_project(id_or_path)?;
        let set = &self.world.records(index).merge_requests;
        let kept = self.lists.get_or_compute(self.list_key(ListKind::MergeRequests, index), || {
            let filter = spec.resolve(self.world, project, self.caller);
            // Deployment filters: the merge requests the project's deployments shipped.
            let deployed: Option<Vec<u64>> = spec
                .deployment
                .as_ref()
                .map(|d| self.world.ci_of(index).deployed(d.environment.as_deref(), d.after, d.before));
            let keep = |m: &crate::content::MergeRequestMeta| {
                filter.matches(m) && deployed.as_ref().is_none_or(|iids| iids.binary_search(&m.common.iid).is_ok())
            };
            crate::filters::ordered(set, spec.order, spec.desc, keep, |m| m.merged_at)
        });
        let json = |&i: &u32| &*set.items[i as usize].json;
        if spec.simple {
            return Ok(offset_page_mapped(&self.url, page, &kept, Counting::UpToLimit, |i| {
                simple_view(json(i)).into()
            }));
        }
        Ok(offset_page_mapped(&self.url, page, &kept, Counting::UpToLimit, |i| Cow::Borrowed(json(i))))
    }

    /// `GET /projects/:id/merge_requests/:iid`.
    fn merge_request(&self, id_or_path: &str, iid: &str) -> Result<Reply, ApiError> {
        let (_, index) = self.merge_requests_project(id_or_path)?;
        let iid: u64 = iid.parse().map_err(|_| ApiError::NotFound("Merge Request"))?;
        let record = self.world.records(index).merge_requests.by_iid(iid).ok_or(ApiError::NotFound("Merge Request"))?;
        Ok(Reply::json(record.json.to_vec()))
    }
}

/// A merge request as `view=simple` shows it (`API::Entities::MergeRequestSimple`).
fn simple_view(json: &[u8]) -> Vec<u8> {
    let full: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json).unwrap_or_default();
    let fields = ["id", "iid", "project_id", "title", "description", "state", "created_at", "updated_at", "web_url"];
    let simple: serde_json::Map<String, serde_json::Value> =
        fields.iter().filter_map(|f| full.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect();
    serde_json::to_vec(&simple).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse("/api/v4/projects/acme%2Fplatform%2Finfra/issues"),
            Some(Route::Issues("acme/platform/infra".into()))
        );
        assert_eq!(
            Route::parse("/api/v4/projects/7/merge_requests/3"),
            Some(Route::MergeRequest("7".into(), "3".into()))
        );
        assert_eq!(
            Route::parse("/api/v4/projects/demo%2Fapi/merge_requests/3/approvals"),
            Some(Route::Approvals("demo/api".into(), "3".into()))
        );
        assert_eq!(Route::parse("/api/v4/projects/5/repository/commits"), Some(Route::Commits("5".into())));
        assert_eq!(Route::parse("/api/v4/groups/acme/members"), Some(Route::GroupMembers("acme".into())));
        assert_eq!(Route::parse("/api/v4/projects/acme/platform/issues"), None);
        assert_eq!(Route::parse("/api/v4/nope"), None);
        assert_eq!(Route::parse("/projects"), None);
        assert_eq!(Route::parse("/api/v4/projects/"), None);
    }
}
