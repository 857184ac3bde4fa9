//! The query parameters of the list endpoints: validated into specs, resolved against the world,
//! matched against the records' metadata, and turned into an ordering.
//!
//! Two phases, as in GitLab: parsing ([`IssueQuery::parse`], [`MergeRequestQuery::parse`],
//! [`ProjectQuery::parse`], [`GroupQuery::parse`]) validates types and enumerations and fails
//! with a 400 before any lookup; resolving (`resolve`) turns names (usernames, label titles,
//! milestone titles) into ids for the project at hand. An unknown name matches nothing (an empty
//! list, not an error), as in GitLab. Date-time bounds are inclusive: `*_after` is `>=` and
//! `*_before` is `<=`, compared in microseconds.

use crate::auth::Caller;
use crate::content::{Common, HasCommon, IssueMeta, MergeRequestMeta, MrState, RecordSet};
use crate::query::Query;
use crate::reply::ApiError;
use crate::text;
use crate::time::{Days, Millis, today};
use crate::world::{Group, Project, World};

/// Who a person parameter asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PersonSpec {
    Id(u64),
    Username(String),
    None,
    Any,
}

/// A resolved person condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PersonMatch {
    Id(u64),
    None,
    Any,
    Nothing,
}

impl PersonMatch {
    fn matches(self, people: &[u64]) -> bool {
        match self {
            PersonMatch::Id(id) => people.contains(&id),
            PersonMatch::None => people.is_empty(),
            PersonMatch::Any => !people.is_empty(),
            PersonMatch::Nothing => false,
        }
    }
}

fn resolve_person(spec: &PersonSpec, world: &World) -> PersonMatch {
    match spec {
        PersonSpec::Id(id) => PersonMatch::Id(*id),
        PersonSpec::Username(name) => world.user_id_by_username(name).map_or(PersonMatch::Nothing, PersonMatch::Id),
        PersonSpec::None => PersonMatch::None,
        PersonSpec::Any => PersonMatch::Any,
    }
}

/// `<id>_id` (an integer, `None` or `Any`) or `<id>_username`; both at once is a 400.
fn person(q: &Query, id_key: &str, name_key: &str, wildcards: bool) -> Result<Option<PersonSpec>, ApiError> {
    let by_id = q.get(id_key);
    let by_name = q.get(name_key);
    if by_id.is_some() && by_name.is_some() {
        return Err(ApiError::BadRequest(format!("{id_key}, {name_key} are mutually exclusive")));
    }
    if let Some(v) = by_id {
        return Ok(Some(match v {
            v if wildcards && v.eq_ignore_ascii_case("none") => PersonSpec::None,
            v if wildcards && v.eq_ignore_ascii_case("any") => PersonSpec::Any,
            v => PersonSpec::Id(v.trim().parse().map_err(|_| ApiError::invalid(id_key))?),
        }));
    }
    Ok(by_name.map(|n| PersonSpec::Username(n.to_owned())))
}

#[derive(Clone, Debug)]
enum Wildcard<T> {
    Is(T),
    None,
    Any,
}

fn wildcard(value: &str) -> Wildcard<&str> {
    if value.eq_ignore_ascii_case("none") {
        Wildcard::None
    } else if value.eq_ignore_ascii_case("any") {
        Wildcard::Any
    } else {
        Wildcard::Is(value)
    }
}

/// `scope` of the issue and merge request lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    All,
    CreatedByMe,
    AssignedToMe,
}

/// Parameters shared by issues and merge requests.
#[derive(Clone, Debug)]
struct RecordSpec {
    iids: Option<Vec<u64>>,
    author: Option<PersonSpec>,
    assignee: Option<PersonSpec>,
    labels: Option<Wildcard<Vec<String>>>,
    milestone: Option<Wildcard<String>>,
    search: Option<String>,
    created_after: Option<i64>,
    created_before: Option<i64>,
    updated_after: Option<i64>,
    updated_before: Option<i64>,
    scope: Scope,
    /// `my_reaction_emoji`: `None` matches every record (the token's user reacted to none in
    /// this world); `Any` or an emoji name matches none.
    reacted: Option<bool>,
}

impl RecordSpec {
    fn parse(q: &Query) -> Result<Self, ApiError> {
        let labels = q.get("labels").map(|v| match wildcard(v) {
            Wildcard::None => Wildcard::None,
            Wildcard::Any => Wildcard::Any,
            Wildcard::Is(_) => {
                Wildcard::Is(v.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
            }
        });
        let scope =
            match q.choice("scope", &["all", "created_by_me", "created-by-me", "assigned_to_me", "assigned-to-me"])? {
                Some("created_by_me" | "created-by-me") => Scope::CreatedByMe,
                Some("assigned_to_me" | "assigned-to-me") => Scope::AssignedToMe,
                _ => Scope::All,
            };
        Ok(Self {
            iids: q.id_list("iids")?.map(|mut v| {
                v.sort_unstable();
                v
            }),
            author: person(q, "author_id", "author_username", false)?,
            assignee: person(q, "assignee_id", "assignee_username", true)?,
            labels,
            milestone: q.get("milestone").map(|m| match wildcard(m) {
                Wildcard::Is(title) => Wildcard::Is(title.to_owned()),
                Wildcard::None => Wildcard::None,
                Wildcard::Any => Wildcard::Any,
            }),
            search: q.get("search").map(str::to_lowercase),
            created_after: q.time("created_after")?,
            created_before: q.time("created_before")?,
            updated_after: q.time("updated_after")?,
            updated_before: q.time("updated_before")?,
            scope,
            reacted: q.get("my_reaction_emoji").map(|e| !e.eq_ignore_ascii_case("none")),
        })
    }

    fn resolve(&self, world: &World, project: &Project, caller: Caller) -> RecordFilter {
        let mut author = self.author.as_ref().map(|a| resolve_person(a, world));
        let mut assignee = self.assignee.as_ref().map(|a| resolve_person(a, world));
        if let Some(me) = caller.user_id() {
            match self.scope {
                Scope::CreatedByMe => author = Some(PersonMatch::Id(me)),
                Scope::AssignedToMe => assignee = Some(PersonMatch::Id(me)),
                Scope::All => {}
            }
        }
        let labels = self.labels.as_ref().map(|l| match l {
            Wildcard::None => LabelMatch::None,
            Wildcard::Any => LabelMatch::Any,
            Wildcard::Is(names) => {
                let mut wanted = Vec::with_capacity(names.len());
                for name in names {
                    match project.labels.iter().position(|l| l.to_lowercase() == name.to_lowercase()) {
                        Some(i) => wanted.push(i as u16),
                        None => return LabelMatch::Nothing,
                    }
                }
                LabelMatch::All(wanted)
            }
        });
        let milestone = self.milestone.as_ref().map(|m| match m {
            Wildcard::None => MilestoneMatch::None,
            Wildcard::Any => MilestoneMatch::Any,
            Wildcard::Is(title) => project
                .milestones
                .iter()
                .position(|m| m.title == *title)
                .map_or(MilestoneMatch::Nothing, |i| MilestoneMatch::Is(i as u16)),
        });
        RecordFilter {
            iids: self.iids.clone(),
            author,
            assignee,
            labels,
            milestone,
            search: self.search.clone(),
            created: (self.created_after, self.created_before),
            updated: (self.updated_after, self.updated_before),
            nothing: self.reacted == Some(true),
        }
    }
}

#[derive(Clone, Debug)]
enum LabelMatch {
    All(Vec<u16>),
    None,
    Any,
    Nothing,
}

#[derive(Clone, Copy, Debug)]
enum MilestoneMatch {
    Is(u16),
    None,
    Any,
    Nothing,
}

/// Conditions shared by issues and merge requests, resolved for one project.
#[derive(Clone, Debug)]
struct RecordFilter {
    iids: Option<Vec<u64>>,
    author: Option<PersonMatch>,
    assignee: Option<PersonMatch>,
    labels: Option<LabelMatch>,
    milestone: Option<MilestoneMatch>,
    search: Option<String>,
    created: (Option<i64>, Option<i64>),
    updated: (Option<i64>, Option<i64>),
    /// Nothing can match (a reaction nobody gave).
    nothing: bool,
}

/// Whether `at` (milliseconds) lies within the inclusive bounds (microseconds).
fn within(at: Millis, (after, before): (Option<i64>, Option<i64>)) -> bool {
    let us = at.saturating_mul(1000);
    after.is_none_or(|a| us >= a) && before.is_none_or(|b| us <= b)
}

impl RecordFilter {
    fn matches(&self, c: &Common) -> bool {
        if self.nothing {
            return false;
        }
        if let Some(iids) = &self.iids
            && iids.binary_search(&c.iid).is_err()
        {
            return false;
        }
        if let Some(author) = self.author
            && !author.matches(std::slice::from_ref(&c.author))
        {
            return false;
        }
        if let Some(assignee) = self.assignee
            && !assignee.matches(&c.assignees)
        {
            return false;
        }
        let labels_ok = match &self.labels {
            None => true,
            Some(LabelMatch::All(wanted)) => wanted.iter().all(|l| c.labels.contains(l)),
            Some(LabelMatch::None) => c.labels.is_empty(),
            Some(LabelMatch::Any) => !c.labels.is_empty(),
            Some(LabelMatch::Nothing) => false,
        };
        let milestone_ok = match self.milestone {
            None => true,
            Some(MilestoneMatch::Is(m)) => c.milestone == Some(m),
            Some(MilestoneMatch::None) => c.milestone.is_none(),
            Some(MilestoneMatch::Any) => c.milestone.is_some(),
            Some(MilestoneMatch::Nothing) => false,
        };
        labels_ok
            && milestone_ok
            && within(c.created_at, self.created)
            && within(c.updated_at, self.updated)
            && self.search.as_ref().is_none_or(|s| c.search_text.contains(s.as_str()))
    }
}

/// How a record list is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordOrder {
    CreatedAt,
    UpdatedAt,
    Title,
    DueDate,
    MergedAt,
}

/// The records of `set` that `keep`, in `order` (ties by id, in the same direction), as indexes
/// into `set.items` (`key`: the value of a `due_date` or `merged_at` order).
pub(crate) fn ordered<M: HasCommon>(
    set: &RecordSet<M>,
    order: RecordOrder,
    desc: bool,
    keep: impl Fn(&M) -> bool,
    key: impl Fn(&M) -> Option<i64>,
) -> Vec<u32> {
    let kept = |i: &u32| keep(&set.items[*i as usize].meta);
    let all = 0..set.items.len() as u32;
    match order {
        RecordOrder::CreatedAt if desc => all.rev().filter(kept).collect(),
        RecordOrder::CreatedAt => all.filter(kept).collect(),
        RecordOrder::UpdatedAt if desc => set.by_updated.iter().rev().copied().filter(kept).collect(),
        RecordOrder::UpdatedAt => set.by_updated.iter().copied().filter(kept).collect(),
        RecordOrder::Title => {
            let mut kept: Vec<u32> = all.filter(kept).collect();
            kept.sort_by(|&a, &b| {
                let (a, b) = (set.items[a as usize].meta.common(), set.items[b as usize].meta.common());
                (&a.title, a.id).cmp(&(&b.title, b.id))
            });
            if desc {
                kept.reverse();
            }
            kept
        }
        RecordOrder::DueDate | RecordOrder::MergedAt => {
            // Records without a value come last in both directions.
            let mut kept: Vec<(Option<i64>, u64, u32)> = all
                .filter(kept)
                .map(|i| {
                    let meta = &set.items[i as usize].meta;
                    (key(meta), meta.common().id, i)
                })
                .collect();
            kept.sort_by(|a, b| match (a.0, b.0) {
                (Some(x), Some(y)) => {
                    let o = (x, a.1).cmp(&(y, b.1));
                    if desc { o.reverse() } else { o }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => {
                    let o = a.1.cmp(&b.1);
                    if desc { o.reverse() } else { o }
                }
            });
            kept.into_iter().map(|(_, _, i)| i).collect()
        }
    }
}

/// `GET /projects/:id/issues` parameters.
#[derive(Clone, Debug)]
pub(crate) struct IssueQuery {
    common: RecordSpec,
    /// `Some(true)`: opened only; `Some(false)`: closed only.
    open: Option<bool>,
    confidential: Option<bool>,
    /// `Some(Some(incident))`, or `Some(None)` for a type no record has.
    incident: Option<Option<bool>>,
    /// `milestone_id`: `None`, `Any`, `Upcoming` or `Started`.
    timebox: Option<&'static str>,
    /// `due_date`: `0` (none), `any`, `today`, `tomorrow`, `overdue`, `week`, `month`,
    /// `next_month_and_previous_two_weeks`.
    due: Option<&'static str>,
    pub order: RecordOrder,
    pub desc: bool,
}

/// A resolved issue filter.
pub(crate) struct IssueFilter<'q> {
    query: &'q IssueQuery,
    common: RecordFilter,
    /// The project's milestones `milestone_id` allows (by index), when it is `Upcoming` or `Started`.
    timeboxed: Option<Vec<u16>>,
    today: Days,
}

impl IssueQuery {
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        let open = match q.choice("state", &["opened", "closed", "all"])? {
            Some("opened") => Some(true),
            Some("closed") => Some(false),
            _ => None,
        };
        let incident = q.choice("issue_type", &["issue", "incident", "test_case", "task"])?.map(|t| match t {
            "issue" => Some(false),
            "incident" => Some(true),
            _ => None,
        });
        let order = match q.choice(
            "order_by",
            &[
                "created_at",
                "updated_at",
                "priority",
                "due_date",
                "relative_position",
                "label_priority",
                "milestone_due",
                "popularity",
                "weight",
                "title",
            ],
        )? {
            Some("updated_at") => RecordOrder::UpdatedAt,
            Some("title") => RecordOrder::Title,
            Some("due_date") => RecordOrder::DueDate,
            _ => RecordOrder::CreatedAt,
        };
        q.flag("non_archived")?;
        q.flag("with_labels_details")?;
        let timebox = q
            .choice("milestone_id", &["None", "Any", "Upcoming", "Started", "none", "any", "upcoming", "started"])?
            .map(|t| match t {
                "none" => "None",
                "any" => "Any",
                "upcoming" => "Upcoming",
                "started" => "Started",
                other => other,
            });
        let due = q.choice(
            "due_date",
            &["0", "any", "today", "tomorrow", "overdue", "week", "month", "next_month_and_previous_two_weeks"],
        )?;
        Ok(Self {
            common: RecordSpec::parse(q)?,
            open,
            confidential: q.flag("confidential")?,
            incident,
            timebox,
            due,
            order,
            desc: q.sort(true)?,
        })
    }

    pub fn resolve(&self, world: &World, project: &Project, caller: Caller) -> IssueFilter<'_> {
        let today = today();
        let timeboxed = match self.timebox {
            Some("Upcoming") => {
                // The milestone with the nearest due date in the future.
                let next = project
                    .milestones
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.state == "active" && m.due_date.is_some_and(|d| d.0 > today))
                    .min_by_key(|(_, m)| m.due_date);
                Some(next.map(|(i, _)| vec![i as u16]).unwrap_or_default())
            }
            Some("Started") => Some(
                project
                    .milestones
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.state == "active" && m.start_date.is_some_and(|d| d.0 <= today))
                    .map(|(i, _)| i as u16)
                    .collect(),
            ),
            _ => None,
        };
        IssueFilter { query: self, common: self.common.resolve(world, project, caller), timeboxed, today }
    }
}

impl IssueFilter<'_> {
    pub fn matches(&self, m: &IssueMeta) -> bool {
        let q = self.query;
        let milestone = m.common.milestone;
        let timebox_ok = match q.timebox {
            Some("None") => milestone.is_none(),
            Some("Any") => milestone.is_some(),
            _ => self.timeboxed.as_ref().is_none_or(|allowed| milestone.is_some_and(|i| allowed.contains(&i))),
        };
        let today = self.today;
        let due_ok = match (q.due, m.due_date) {
            (None, _) => true,
            (Some("0"), due) => due.is_none(),
            (Some(_), None) => false,
            (Some("any"), Some(_)) => true,
            (Some("today"), Some(d)) => d == today,
            (Some("tomorrow"), Some(d)) => d == today + 1,
            (Some("overdue"), Some(d)) => d < today,
            (Some("week"), Some(d)) => (today..today + 7).contains(&d),
            (Some("month"), Some(d)) => (today..today + 30).contains(&d),
            (Some(_), Some(d)) => (today - 14..today + 60).contains(&d),
        };
        q.open.is_none_or(|open| m.open == open)
            && q.confidential.is_none_or(|c| m.confidential == c)
            && q.incident.is_none_or(|i| i == Some(m.incident))
            && timebox_ok
            && due_ok
            && self.common.matches(&m.common)
    }
}

/// `GET /projects/:id/merge_requests` parameters.
#[derive(Clone, Debug)]
pub(crate) struct MergeRequestQuery {
    common: RecordSpec,
    state: Option<MrState>,
    source_branch: Option<String>,
    target_branch: Option<String>,
    reviewer: Option<PersonSpec>,
    draft: Option<bool>,
    /// `environment`, `deployed_after`, `deployed_before`: only merge requests deployed (to that
    /// environment) within the dates.
    pub deployment: Option<DeploymentFilter>,
    /// `view=simple`: only the simple fields of each merge request.
    pub simple: bool,
    pub order: RecordOrder,
    pub desc: bool,
}

/// Which deployments a merge request must have had.
#[derive(Clone, Debug)]
pub(crate) struct DeploymentFilter {
    pub environment: Option<String>,
    pub after: Option<i64>,
    pub before: Option<i64>,
}

/// A resolved merge request filter.
pub(crate) struct MergeRequestFilter<'q> {
    query: &'q MergeRequestQuery,
    common: RecordFilter,
    reviewer: Option<PersonMatch>,
}

impl MergeRequestQuery {
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        let state = match q.choice("state", &["opened", "closed", "locked", "merged", "all"])? {
            Some("opened") => Some(MrState::Opened),
            Some("closed") => Some(MrState::Closed),
            Some("locked") => Some(MrState::Locked),
            Some("merged") => Some(MrState::Merged),
            _ => None,
        };
        let draft = match (q.choice("draft", &["yes", "no"])?, q.choice("wip", &["yes", "no"])?) {
            (Some(v), _) | (None, Some(v)) => Some(v == "yes"),
            (None, None) => None,
        };
        let order = match q.choice(
            "order_by",
            &[
                "created_at",
                "updated_at",
                "title",
                "merged_at",
                "label_priority",
                "milestone_due",
                "popularity",
                "priority",
            ],
        )? {
            Some("updated_at") => RecordOrder::UpdatedAt,
            Some("title") => RecordOrder::Title,
            Some("merged_at") => RecordOrder::MergedAt,
            _ => RecordOrder::CreatedAt,
        };
        q.flag("with_labels_details")?;
        q.flag("with_merge_status_recheck")?;
        let simple = q.choice("view", &["simple"])?.is_some();
        let deployment = DeploymentFilter {
            environment: q.get("environment").map(str::to_owned),
            after: q.time("deployed_after")?,
            before: q.time("deployed_before")?,
        };
        let deployment =
            (deployment.environment.is_some() || deployment.after.is_some() || deployment.before.is_some())
                .then_some(deployment);
        Ok(Self {
            common: RecordSpec::parse(q)?,
            deployment,
            simple,
            state,
            source_branch: q.get("source_branch").map(str::to_owned),
            target_branch: q.get("target_branch").map(str::to_owned),
            reviewer: person(q, "reviewer_id", "reviewer_username", true)?,
            draft,
            order,
            desc: q.sort(true)?,
        })
    }

    pub fn resolve(&self, world: &World, project: &Project, caller: Caller) -> MergeRequestFilter<'_> {
        MergeRequestFilter {
            query: self,
            common: self.common.resolve(world, project, caller),
            reviewer: self.reviewer.as_ref().map(|r| resolve_person(r, world)),
        }
    }
}

impl MergeRequestFilter<'_> {
    pub fn matches(&self, m: &MergeRequestMeta) -> bool {
        let q = self.query;
        q.state.is_none_or(|s| m.state == s)
            && q.draft.is_none_or(|d| m.draft == d)
            && q.source_branch.as_deref().is_none_or(|b| *m.source_branch == *b)
            && q.target_branch.as_deref().is_none_or(|b| *m.target_branch == *b)
            && self.reviewer.is_none_or(|r| r.matches(&m.reviewers))
            && self.common.matches(&m.common)
    }
}

/// How a project list is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProjectOrder {
    Id,
    Name,
    Path,
    CreatedAt,
    UpdatedAt,
    LastActivityAt,
    StarCount,
}

/// Parameters of `GET /projects` and `GET /groups/:id/projects`.
#[derive(Clone, Debug)]
pub(crate) struct ProjectQuery {
    search: Option<String>,
    search_namespaces: bool,
    archived: Option<bool>,
    visibility: Option<&'static str>,
    with_issues_enabled: bool,
    with_merge_requests_enabled: bool,
    id_after: Option<u64>,
    id_before: Option<u64>,
    last_activity_after: Option<i64>,
    last_activity_before: Option<i64>,
    topics: Vec<String>,
    /// `topic_id`: the index of the topic in [`text::TOPICS`] (ids count from 1), or `None` for
    /// an unknown id.
    topic_id: Option<Option<usize>>,
    imported: Option<bool>,
    repository_storage: Option<String>,
    language: Option<String>,
    pub order: ProjectOrder,
    /// Whether `order_by` was given.
    pub order_given: bool,
    pub desc: bool,
    pub keyset: bool,
}

impl ProjectQuery {
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        let order_by = q.choice(
            "order_by",
            &[
                "id",
                "name",
                "path",
                "created_at",
                "updated_at",
                "last_activity_at",
                "similarity",
                "star_count",
                "repository_size",
                "storage_size",
                "packages_size",
                "wiki_size",
            ],
        )?;
        let order = match order_by {
            Some("id" | "repository_size" | "storage_size" | "packages_size" | "wiki_size") => ProjectOrder::Id,
            Some("name") => ProjectOrder::Name,
            Some("path") => ProjectOrder::Path,
            Some("updated_at") => ProjectOrder::UpdatedAt,
            Some("last_activity_at") => ProjectOrder::LastActivityAt,
            Some("star_count") => ProjectOrder::StarCount,
            _ => ProjectOrder::CreatedAt,
        };
        let keyset = matches!(q.choice("pagination", &["keyset", "offset"])?, Some("keyset"));
        // The token's user administers everything: these narrow nothing, but are checked.
        q.choice("min_access_level", &["5", "10", "15", "20", "30", "40", "50"])?;
        q.flag("with_custom_attributes")?;
        Ok(Self {
            search: q.get("search").map(str::to_lowercase),
            search_namespaces: q.flag("search_namespaces")?.unwrap_or(false),
            archived: q.flag("archived")?,
            visibility: q.choice("visibility", &["public", "internal", "private"])?,
            with_issues_enabled: q.flag("with_issues_enabled")?.unwrap_or(false),
            with_merge_requests_enabled: q.flag("with_merge_requests_enabled")?.unwrap_or(false),
            id_after: q.id("id_after")?,
            id_before: q.id("id_before")?,
            last_activity_after: q.time("last_activity_after")?,
            last_activity_before: q.time("last_activity_before")?,
            topics: q.get("topic").map(|t| t.split(',').map(|s| s.trim().to_lowercase()).collect()).unwrap_or_default(),
            topic_id: q.id("topic_id")?.map(|id| {
                usize::try_from(id).ok().and_then(|id| id.checked_sub(1)).filter(|&i| i < text::TOPICS.len())
            }),
            imported: q.flag("imported")?,
            repository_storage: q.get("repository_storage").map(str::to_owned),
            language: q.get("with_programming_language").map(str::to_lowercase),
            order,
            order_given: order_by.is_some(),
            desc: q.sort(true)?,
            keyset,
        })
    }

    pub fn matches(&self, p: &Project) -> bool {
        if let Some(s) = &self.search {
            let name_hit = p.name.to_lowercase().contains(s.as_str()) || p.path.to_lowercase().contains(s.as_str());
            let ns_hit = self.search_namespaces
                && (p.path_with_namespace.to_lowercase().contains(s.as_str())
                    || p.name_with_namespace.to_lowercase().contains(s.as_str()));
            if !name_hit && !ns_hit {
                return false;
            }
        }
        self.archived.is_none_or(|a| p.archived == a)
            && self.visibility.is_none_or(|v| p.visibility == v)
            && (!self.with_issues_enabled || p.issues_enabled)
            && (!self.with_merge_requests_enabled || p.merge_requests_enabled)
            && self.id_after.is_none_or(|a| p.id > a)
            && self.id_before.is_none_or(|b| p.id < b)
            && within(p.last_activity_at.millis, (self.last_activity_after, self.last_activity_before))
            && self.topics.iter().all(|t| p.topics.iter().any(|pt| pt.to_lowercase() == *t))
            && self.topic_id.is_none_or(|t| t.is_some_and(|i| p.topics.iter().any(|pt| pt == text::TOPICS[i])))
            // No project in this world was imported; every one is on the `default` storage.
            && self.imported.is_none_or(|i| !i)
            && self.repository_storage.as_deref().is_none_or(|s| s == "default")
            && self.language.as_deref().is_none_or(|l| l == programming_language(p).to_lowercase())
    }

    /// Sorts projects by the requested order (ties by id, same direction).
    pub fn sort(&self, projects: &mut [&Project]) {
        let order = if self.keyset { ProjectOrder::Id } else { self.order };
        projects.sort_by(|a, b| {
            let o = match order {
                ProjectOrder::Id => a.id.cmp(&b.id),
                ProjectOrder::Name => a.name.cmp(&b.name),
                ProjectOrder::Path => a.path.cmp(&b.path),
                ProjectOrder::CreatedAt => a.created_at.millis.cmp(&b.created_at.millis),
                ProjectOrder::UpdatedAt => a.updated_at.millis.cmp(&b.updated_at.millis),
                ProjectOrder::LastActivityAt => a.last_activity_at.millis.cmp(&b.last_activity_at.millis),
                ProjectOrder::StarCount => a.star_count.cmp(&b.star_count),
            }
            .then(a.id.cmp(&b.id));
            if self.desc { o.reverse() } else { o }
        });
    }
}

/// A project's main language, as `with_programming_language` matches it: the language among its
/// topics, else one drawn from its id.
pub(crate) fn programming_language(p: &Project) -> &'static str {
    for (topic, language) in [("rust", "Rust"), ("go", "Go"), ("python", "Python"), ("terraform", "HCL")] {
        if p.topics.iter().any(|t| t == topic) {
            return language;
        }
    }
    ["Ruby", "Go", "Rust", "Python", "TypeScript", "HCL"][(p.id % 6) as usize]
}

/// Parameters of the group lists (`GET /groups`, `/groups/:id/subgroups`, `/descendant_groups`).
#[derive(Clone, Debug)]
pub(crate) struct GroupQuery {
    search: Option<String>,
    top_level_only: bool,
    skip_groups: Vec<u64>,
    order: &'static str,
    desc: bool,
}

impl GroupQuery {
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        // The token's user owns and administers every group: these narrow nothing.
        q.choice("min_access_level", &["5", "10", "15", "20", "30", "40", "50"])?;
        for flag in ["owned", "statistics", "with_custom_attributes", "all_available"] {
            q.flag(flag)?;
        }
        Ok(Self {
            search: q.get("search").map(str::to_lowercase),
            top_level_only: q.flag("top_level_only")?.unwrap_or(false),
            skip_groups: q.id_list("skip_groups")?.unwrap_or_default(),
            order: q.choice("order_by", &["name", "path", "id", "similarity"])?.unwrap_or("name"),
            desc: q.sort(false)?,
        })
    }

    pub fn matches(&self, g: &Group) -> bool {
        self.search
            .as_ref()
            .is_none_or(|s| g.name.to_lowercase().contains(s.as_str()) || g.path.to_lowercase().contains(s.as_str()))
            && (!self.top_level_only || g.parent_id.is_none())
            && !self.skip_groups.contains(&g.id)
    }

    pub fn sort(&self, groups: &mut [&Group]) {
        groups.sort_by(|a, b| {
            let o = match self.order {
                "path" => a.path.cmp(&b.path),
                "id" => a.id.cmp(&b.id),
                _ => a.name.cmp(&b.name),
            }
            .then(a.id.cmp(&b.id));
            if self.desc { o.reverse() } else { o }
        });
    }
}
