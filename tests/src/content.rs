//! A project's issues and merge requests: drawn from the seed, rendered to JSON once, and kept as
//! bytes next to the few attributes the API filters and sorts on.
//!
//! [`generate`] runs once per project (on first use, see [`crate::World::records`]). Each record
//! becomes a [`Stored`]: its [`IssueMeta`] / [`MergeRequestMeta`] (ids, times, people, labels,
//! state, lowercase search text) and its JSON bytes. Records are kept in `iid` order, which is
//! also creation order; a second index orders them by `updated_at`. A list request then filters
//! the metas and joins the bytes of the page ([`crate::routes`]), without serializing anything.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::discussions::{Noteable, note_counts};
use crate::records::{
    IssueLinks, IssueRecord, MergeRequestRecord, MilestoneRef, References, TaskCompletionStatus, TimeStats, UserRef,
    to_bytes,
};
use crate::text;
use crate::time::{Date, DateTime, Days, MS_PER_DAY, Millis, ymd_ms};
use crate::world::{Project, WEB_BASE, World, epoch_end, instant, issue_is_open, maybe_offset, rng_for};

/// One record: what filters need, and its rendered JSON.
pub(crate) struct Stored<M> {
    pub meta: M,
    pub json: Box<[u8]>,
}

/// A project's records of one kind.
pub(crate) struct RecordSet<M> {
    /// By `iid`, which is also by `(created_at, id)`.
    pub items: Vec<Stored<M>>,
    /// Indexes into `items`, by `(updated_at, id)`.
    pub by_updated: Vec<u32>,
}

impl<M: HasCommon> RecordSet<M> {
    fn new(items: Vec<Stored<M>>) -> Self {
        let mut by_updated: Vec<u32> = (0..items.len() as u32).collect();
        by_updated.sort_by_key(|&i| {
            let c = items[i as usize].meta.common();
            (c.updated_at, c.id)
        });
        Self { items, by_updated }
    }

    /// The record with this `iid`.
    pub fn by_iid(&self, iid: u64) -> Option<&Stored<M>> {
        let index = usize::try_from(iid.checked_sub(1)?).ok()?;
        self.items.get(index)
    }
}

/// All generated records of a project.
pub(crate) struct ProjectRecords {
    pub issues: RecordSet<IssueMeta>,
    pub merge_requests: RecordSet<MergeRequestMeta>,
}

/// What issues and merge requests share for filtering.
pub(crate) struct Common {
    pub id: u64,
    pub iid: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub author: u64,
    pub assignees: Vec<u64>,
    /// Indexes into the project's labels.
    pub labels: Vec<u16>,
    /// Index into the project's milestones.
    pub milestone: Option<u16>,
    pub title: Box<str>,
    /// Lowercase title and description, for `search`.
    pub search_text: Box<str>,
}

pub(crate) trait HasCommon {
    fn common(&self) -> &Common;
}

pub(crate) struct IssueMeta {
    pub common: Common,
    pub open: bool,
    pub confidential: bool,
    pub incident: bool,
    pub due_date: Option<Days>,
}

impl HasCommon for IssueMeta {
    fn common(&self) -> &Common {
        &self.common
    }
}

/// A merge request's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MrState {
    Opened,
    Closed,
    Merged,
    Locked,
}

impl MrState {
    pub fn as_str(self) -> &'static str {
        match self {
            MrState::Opened => "opened",
            MrState::Closed => "closed",
            MrState::Merged => "merged",
            MrState::Locked => "locked",
        }
    }
}

pub(crate) struct MergeRequestMeta {
    pub common: Common,
    pub state: MrState,
    pub draft: bool,
    pub reviewers: Vec<u64>,
    pub source_branch: Box<str>,
    pub target_branch: Box<str>,
    pub merged_at: Option<Millis>,
    /// Who merged or closed it.
    pub finished_by: Option<u64>,
    /// The head commit of the source branch.
    pub sha: Box<str>,
    /// The commit a merge left on the target branch (the merge or the squash commit).
    pub merge_commit: Option<Box<str>>,
    /// Merged by squashing.
    pub squash: bool,
}

impl HasCommon for MergeRequestMeta {
    fn common(&self) -> &Common {
        &self.common
    }
}

/// Generates and renders every issue and merge request of `project`.
pub(crate) fn generate(world: &World, project: &Project) -> ProjectRecords {
    let ctx = Ctx::new(world, project);
    ProjectRecords { issues: RecordSet::new(ctx.issues()), merge_requests: RecordSet::new(ctx.merge_requests()) }
}

struct Ctx<'a> {
    world: &'a World,
    project: &'a Project,
    usernames: Vec<&'a str>,
}

/// Last instant a record may be created at.
fn last_creation() -> Millis {
    ymd_ms(2025, 10, 31)
}

impl<'a> Ctx<'a> {
    fn new(world: &'a World, project: &'a Project) -> Self {
        Self { world, project, usernames: world.users().iter().map(|u| u.username.as_str()).collect() }
    }

    /// A user id, skewed towards the first users (the ones with the interesting names).
    fn person(&self, rng: &mut impl Rng) -> u64 {
        let n = self.world.users().len() as u64;
        let a = rng.random_range(1..=n);
        let b = rng.random_range(1..=n);
        a.min(b)
    }

    fn people(&self, rng: &mut impl Rng, weights: &[u32]) -> Vec<u64> {
        let count = weighted(rng, weights);
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count.min(self.world.users().len()) {
            let id = self.person(rng);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    fn user(&self, id: u64) -> UserRef<'a> {
        let users = self.world.users();
        let user = self.world.user(id).unwrap_or(&users[0]);
        UserRef::from(user)
    }

    fn labels(&self, rng: &mut impl Rng) -> Vec<u16> {
        let n = self.project.labels.len();
        let count = weighted(rng, &[35, 30, 20, 10, 5]).min(n);
        let mut picked: Vec<u16> = Vec::with_capacity(count);
        while picked.len() < count {
            let i = rng.random_range(0..n) as u16;
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        // GitLab lists labels by title; the project's labels are sorted, so sort the indexes.
        picked.sort_unstable();
        picked
    }

    fn milestone(&self, rng: &mut impl Rng) -> Option<u16> {
        let n = self.project.milestones.len();
        (n > 0 && rng.random_bool(0.4)).then(|| rng.random_range(0..n) as u16)
    }

    fn creation_times(&self, rng: &mut impl Rng, n: usize) -> Vec<Millis> {
        let mut created: Vec<Millis> =
            (0..n).map(|_| instant(rng, self.project.created_at.millis, last_creation())).collect();
        created.sort_unstable();
        created
    }

    fn updated_after(&self, rng: &mut impl Rng, created: Millis) -> Millis {
        if rng.random_ratio(1, 5) {
            created
        } else {
            let latest = (created + 400 * MS_PER_DAY).min(epoch_end());
            instant(rng, created + 1, latest)
        }
    }

    fn issues(&self) -> Vec<Stored<IssueMeta>> {
        let project = self.project;
        let seed = self.world.seed();
        let count = project.issue_count;
        let mut rng = rng_for(seed, 0x1_5503, project.id);
        let created = self.creation_times(&mut rng, count);
        let mut out = Vec::with_capacity(count);
        for (i, &created_at) in created.iter().enumerate() {
            let iid = i as u64 + 1;
            let id = project.first_issue_id + i as u64;
            let open = issue_is_open(seed, project.id, iid, count);
            let mut updated_at = self.updated_after(&mut rng, created_at);
            let title = text::issue_title(&mut rng);
            let description = text::description(&mut rng, &self.usernames);
            let author = self.person(&mut rng);
            let assignees = self.people(&mut rng, &[30, 55, 10, 5]);
            let labels = self.labels(&mut rng);
            let milestone = self.milestone(&mut rng);
            let incident = rng.random_ratio(1, 20);
            let confidential = rng.random_ratio(2, 25);
            let (closed_at, closed_by) = if open {
                (None, None)
            } else {
                if updated_at == created_at && rng.random_bool(0.5) {
                    let latest = (created_at + 30 * MS_PER_DAY).min(epoch_end());
                    updated_at = instant(&mut rng, created_at + 1, latest);
                }
                let closed_at = instant(&mut rng, created_at, updated_at);
                let closer = if rng.random_bool(0.6) {
                    assignees.first().copied().unwrap_or(author)
                } else {
                    self.person(&mut rng)
                };
                (Some(closed_at), Some(closer))
            };
            let due_date = rng.random_ratio(1, 4).then(|| Date::of(created_at).0 + rng.random_range(3..=90));
            let discussion_locked = match rng.random_range(0..20) {
                0 => Some(true),
                1..=3 => Some(false),
                _ => None,
            };
            let time_stats = time_stats(&mut rng);
            let severity = if incident {
                ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"].choose(&mut rng).copied().unwrap_or("UNKNOWN")
            } else {
                "UNKNOWN"
            };
            // The count comes from the notes themselves (see `discussions`); the draw keeps the stream.
            let _ = skewed(&mut rng, 40);
            let user_notes_count = note_counts(seed, project.id, Noteable::Issue, iid, created_at, updated_at).user;
            let merge_requests_count = weighted(&mut rng, &[70, 20, 7, 3]) as u32;
            let upvotes = skewed(&mut rng, 12);
            let downvotes = skewed(&mut rng, 3);
            let blocking_issues_count = weighted(&mut rng, &[90, 8, 2]) as u32;
            let service_desk = project.flags.service_desk && rng.random_ratio(1, 10);

            let api = format!("{WEB_BASE}/api/v4/projects/{}", project.id);
            let record = IssueRecord {
                id,
                iid,
                project_id: project.id,
                title: &title,
                description: description.text.as_deref(),
                state: if open { "opened" } else { "closed" },
                created_at: DateTime::utc(created_at),
                updated_at: DateTime::utc(updated_at),
                closed_at: closed_at.map(DateTime::utc),
                closed_by: closed_by.map(|u| self.user(u)),
                labels: self.label_names(&labels),
                milestone: milestone.map(|m| MilestoneRef::from(&project.milestones[m as usize])),
                assignees: assignees.iter().map(|&u| self.user(u)).collect(),
                author: self.user(author),
                type_: if incident { "INCIDENT" } else { "ISSUE" },
                assignee: assignees.first().map(|&u| self.user(u)),
                user_notes_count,
                merge_requests_count,
                upvotes,
                downvotes,
                due_date: due_date.map(Date),
                confidential,
                discussion_locked,
                issue_type: if incident { "incident" } else { "issue" },
                web_url: format!("{}/-/issues/{iid}", project.web_url),
                time_stats,
                task_completion_status: TaskCompletionStatus {
                    count: description.tasks.0,
                    completed_count: description.tasks.1,
                },
                blocking_issues_count,
                has_tasks: description.tasks.0 > 0,
                task_status: text::task_status(description.text.as_deref(), description.tasks),
                _links: IssueLinks {
                    self_: format!("{api}/issues/{iid}"),
                    notes: format!("{api}/issues/{iid}/notes"),
                    award_emoji: format!("{api}/issues/{iid}/award_emoji"),
                    project: api.clone(),
                    closed_as_duplicate_of: None,
                },
                references: References {
                    short: format!("#{iid}"),
                    relative: format!("#{iid}"),
                    full: format!("{}#{iid}", project.path_with_namespace),
                },
                severity,
                moved_to_id: None,
                imported: false,
                imported_from: "none",
                service_desk_reply_to: service_desk.then_some("customer@example.org"),
            };
            let json = to_bytes(&record).into_boxed_slice();
            let search_text = search_text(&title, description.text.as_deref());
            out.push(Stored {
                meta: IssueMeta {
                    common: Common {
                        id,
                        iid,
                        created_at,
                        updated_at,
                        author,
                        assignees,
                        labels,
                        milestone,
                        title: title.into_boxed_str(),
                        search_text,
                    },
                    open,
                    confidential,
                    incident,
                    due_date,
                },
                json,
            });
        }
        out
    }

    fn label_names(&self, labels: &[u16]) -> Vec<&'a str> {
        labels.iter().map(|&l| self.project.labels[l as usize].as_str()).collect()
    }

    fn merge_requests(&self) -> Vec<Stored<MergeRequestMeta>> {
        let project = self.project;
        let count = project.merge_request_count;
        let mut rng = rng_for(self.world.seed(), 0x3_3303, project.id);
        let created = self.creation_times(&mut rng, count);
        let mut out = Vec::with_capacity(count);
        for (i, &created_at) in created.iter().enumerate() {
            let iid = i as u64 + 1;
            let id = project.first_merge_request_id + i as u64;
            let state = match rng.random_range(0..100) {
                0..55 => MrState::Merged,
                55..80 => MrState::Opened,
                80..98 => MrState::Closed,
                _ => MrState::Locked,
            };
            let mut updated_at = self.updated_after(&mut rng, created_at);
            if state != MrState::Opened && updated_at == created_at {
                let latest = (created_at + 20 * MS_PER_DAY).min(epoch_end());
                updated_at = instant(&mut rng, created_at + 60_000, latest);
            }
            let draft = matches!(state, MrState::Opened | MrState::Closed) && rng.random_ratio(1, 6);
            let base_title = text::issue_title(&mut rng);
            let title = match (draft, rng.random_ratio(1, 4)) {
                (true, _) => format!("Draft: {base_title}"),
                (false, true) => format!("Resolve \"{base_title}\""),
                (false, false) => base_title.clone(),
            };
            let description = text::description(&mut rng, &self.usernames);
            let author = self.person(&mut rng);
            let assignees = self.people(&mut rng, &[35, 55, 10]);
            let reviewers = self.people(&mut rng, &[40, 45, 15]);
            let labels = self.labels(&mut rng);
            let milestone = self.milestone(&mut rng);
            let source_branch = text::branch_name(&mut rng, iid, &base_title);
            let target_branch = match rng.random_range(0..20) {
                0 => "develop".to_owned(),
                1 => "release/2.x".to_owned(),
                _ => project.default_branch.clone(),
            };
            let squash = rng.random_bool(0.3);
            let sha = text::sha(&mut rng);
            let finisher =
                if rng.random_bool(0.6) { reviewers.first().copied().unwrap_or(author) } else { self.person(&mut rng) };
            let finished_at = instant(&mut rng, created_at, updated_at);
            let (merged_at, closed_at) = match state {
                MrState::Merged => (Some(finished_at), None),
                MrState::Closed => (None, Some(finished_at)),
                _ => (None, None),
            };
            let merged_at_text = merged_at.map(|m| maybe_offset(&mut rng, m));
            let finish_sha = text::sha(&mut rng);
            let (merge_commit_sha, squash_commit_sha) = match (state, squash) {
                (MrState::Merged, true) => (None, Some(finish_sha.as_str())),
                (MrState::Merged, false) => (Some(finish_sha.as_str()), None),
                _ => (None, None),
            };
            let (merge_status, detailed_merge_status, has_conflicts) = match state {
                MrState::Opened | MrState::Locked if draft => ("can_be_merged", "draft_status", false),
                MrState::Opened | MrState::Locked => match rng.random_range(0..20) {
                    0..=12 => ("can_be_merged", "mergeable", false),
                    13..=15 => ("cannot_be_merged", "conflict", true),
                    16..=17 => ("unchecked", "checking", false),
                    _ => ("can_be_merged", "ci_must_pass", false),
                },
                _ => ("can_be_merged", "not_open", false),
            };
            let merge_when_pipeline_succeeds = state == MrState::Opened && rng.random_ratio(1, 8);
            let should_remove_source_branch = rng.random_bool(0.5).then_some(true);
            let force_remove_source_branch = rng.random_bool(0.7);
            let discussion_locked = match rng.random_range(0..20) {
                0 => Some(true),
                1..=3 => Some(false),
                _ => None,
            };
            let time_stats = time_stats(&mut rng);
            let _ = skewed(&mut rng, 30);
            let user_notes_count =
                note_counts(self.world.seed(), project.id, Noteable::MergeRequest, iid, created_at, updated_at).user;
            let upvotes = skewed(&mut rng, 8);
            let downvotes = skewed(&mut rng, 2);
            let finished_by = matches!(state, MrState::Merged | MrState::Closed);

            let record = MergeRequestRecord {
                id,
                iid,
                project_id: project.id,
                title: &title,
                description: description.text.as_deref(),
                state: state.as_str(),
                created_at: DateTime::utc(created_at),
                updated_at: DateTime::utc(updated_at),
                merged_by: (state == MrState::Merged).then(|| self.user(finisher)),
                merge_user: (state == MrState::Merged).then(|| self.user(finisher)),
                merged_at: merged_at_text,
                closed_by: (state == MrState::Closed).then(|| self.user(finisher)),
                closed_at: closed_at.map(DateTime::utc),
                target_branch: &target_branch,
                source_branch: &source_branch,
                user_notes_count,
                upvotes,
                downvotes,
                author: self.user(author),
                assignees: assignees.iter().map(|&u| self.user(u)).collect(),
                assignee: assignees.first().map(|&u| self.user(u)),
                reviewers: reviewers.iter().map(|&u| self.user(u)).collect(),
                source_project_id: project.id,
                target_project_id: project.id,
                labels: self.label_names(&labels),
                draft,
                imported: false,
                imported_from: "none",
                work_in_progress: draft,
                milestone: milestone.map(|m| MilestoneRef::from(&project.milestones[m as usize])),
                merge_when_pipeline_succeeds,
                merge_status,
                detailed_merge_status,
                merge_after: None,
                sha: &sha,
                merge_commit_sha,
                squash_commit_sha,
                discussion_locked,
                should_remove_source_branch,
                force_remove_source_branch,
                prepared_at: DateTime::utc(created_at + 2_000),
                allow_collaboration: false,
                allow_maintainer_to_push: false,
                reference: format!("!{iid}"),
                references: References {
                    short: format!("!{iid}"),
                    relative: format!("!{iid}"),
                    full: format!("{}!{iid}", project.path_with_namespace),
                },
                web_url: format!("{}/-/merge_requests/{iid}", project.web_url),
                time_stats,
                squash,
                squash_on_merge: squash,
                task_completion_status: TaskCompletionStatus {
                    count: description.tasks.0,
                    completed_count: description.tasks.1,
                },
                has_conflicts,
                blocking_discussions_resolved: !finished_by || rng.random_bool(0.9),
                approvals_before_merge: None,
            };
            let json = to_bytes(&record).into_boxed_slice();
            let search_text = search_text(&title, description.text.as_deref());
            out.push(Stored {
                meta: MergeRequestMeta {
                    common: Common {
                        id,
                        iid,
                        created_at,
                        updated_at,
                        author,
                        assignees,
                        labels,
                        milestone,
                        title: title.into_boxed_str(),
                        search_text,
                    },
                    state,
                    draft,
                    reviewers,
                    source_branch: source_branch.into_boxed_str(),
                    target_branch: target_branch.into_boxed_str(),
                    merged_at,
                    finished_by: finished_by.then_some(finisher),
                    sha: sha.into_boxed_str(),
                    merge_commit: merge_commit_sha.or(squash_commit_sha).map(Into::into),
                    squash,
                },
                json,
            });
        }
        out
    }
}

fn search_text(title: &str, description: Option<&str>) -> Box<str> {
    let mut s = title.to_lowercase();
    if let Some(d) = description {
        s.push('\n');
        s.push_str(&d.to_lowercase());
    }
    s.into_boxed_str()
}

/// An index drawn with the given weights.
fn weighted(rng: &mut impl Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if roll < w {
            return i;
        }
        roll -= w;
    }
    0
}

/// A count in `0..=max`, small values far more likely.
fn skewed(rng: &mut impl Rng, max: u32) -> u32 {
    let a = rng.random_range(0..=max);
    let b = rng.random_range(0..=max);
    let c = rng.random_range(0..=max);
    a.min(b).min(c)
}

fn time_stats(rng: &mut impl Rng) -> TimeStats {
    if rng.random_bool(0.7) {
        return TimeStats {
            time_estimate: 0,
            total_time_spent: 0,
            human_time_estimate: None,
            human_total_time_spent: None,
        };
    }
    let estimate = rng.random_range(1..=24u64) * 1800;
    let spent = if rng.random_bool(0.5) { rng.random_range(0..=estimate / 900) * 900 } else { 0 };
    TimeStats {
        time_estimate: estimate,
        total_time_spent: spent,
        human_time_estimate: Some(text::human_duration(estimate)),
        human_total_time_spent: (spent > 0).then(|| text::human_duration(spent)),
    }
}
