//! Notes on issues and merge requests, and merge request approvals.
//!
//! How many notes a record has is a pure function ([`note_counts`]), so the records' own
//! `user_notes_count` agrees with their notes without generating them: most have none, a few
//! have more than 100 (mostly comments, plus system notes such as `added ~12 label` or
//! `merged`). A record's notes are generated and rendered the first time they are asked for
//! (one record at a time: the big project has 12,345 issues), with ids `noteable id × 1000 + n`,
//! unique across the world. Approvals follow the merge request's reviewers and state, and are
//! rendered with the project's other discussion data.
//!
//! Endpoints (the `Ctx` handlers at the bottom): `GET /projects/:id/issues/:iid/notes`,
//! `/merge_requests/:iid/notes` (`sort`, `order_by`, `activity_filter`) and
//! `/merge_requests/:iid/approvals`.

use std::sync::OnceLock;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::Serialize;
use serde_json::Value;

use crate::content::{Common, MrState};
use crate::pagination::{PageRequest, offset_page};
use crate::records::{UserRef, to_bytes};
use crate::reply::{ApiError, Reply};
use crate::repository::values;
use crate::routes::Ctx;
use crate::text;
use crate::time::{DateTime, Millis};
use crate::world::{Project, World, instant, mix, rng_for};

/// What a note is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Noteable {
    Issue,
    MergeRequest,
}

impl Noteable {
    fn type_name(self) -> &'static str {
        match self {
            Noteable::Issue => "Issue",
            Noteable::MergeRequest => "MergeRequest",
        }
    }

    fn not_found(self) -> ApiError {
        match self {
            Noteable::Issue => ApiError::NotFound("Issue"),
            Noteable::MergeRequest => ApiError::NotFound("Merge Request"),
        }
    }
}

/// How many notes a record has: comments (`user`, its `user_notes_count`) and system notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoteCounts {
    pub user: u32,
    pub system: u32,
}

/// The note counts of record `iid`: none for a record never updated after its creation, none for
/// about 40% of the others, more than 100 for about 2%.
pub(crate) fn note_counts(
    seed: u64,
    project_id: u64,
    kind: Noteable,
    iid: u64,
    created_at: Millis,
    updated_at: Millis,
) -> NoteCounts {
    if updated_at <= created_at + 60_000 {
        return NoteCounts { user: 0, system: 0 };
    }
    let h = mix(seed ^ mix((0x4E07 + kind as u64) ^ mix(project_id << 24 ^ iid)));
    let roll = h % 1000;
    let r = h / 1000;
    match roll {
        0..20 => {
            let total = 101 + (r % 160) as u32;
            let user = total * 3 / 5 + (r / 160 % 7) as u32;
            NoteCounts { user, system: total - user }
        }
        20..420 => NoteCounts { user: 0, system: 0 },
        _ => NoteCounts { user: ((r % 9) as u32).min((r / 9 % 9) as u32), system: 1 + (r / 81 % 6) as u32 },
    }
}

/// A DiffNote's place in the diff.
#[derive(Serialize)]
struct Position<'a> {
    base_sha: &'a str,
    start_sha: &'a str,
    head_sha: &'a str,
    old_path: &'static str,
    new_path: &'static str,
    position_type: &'static str,
    old_line: Option<u32>,
    new_line: Option<u32>,
    line_range: Option<()>,
}

/// `API::Entities::Note`.
#[derive(Serialize)]
struct NoteRecord<'a> {
    id: u64,
    #[serde(rename = "type")]
    type_: Option<&'static str>,
    body: String,
    attachment: Option<&'static str>,
    author: UserRef<'a>,
    created_at: DateTime,
    updated_at: DateTime,
    system: bool,
    noteable_id: u64,
    noteable_type: &'static str,
    project_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<Position<'a>>,
    resolvable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_by: Option<Option<UserRef<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<Option<DateTime>>,
    confidential: bool,
    internal: bool,
    imported: bool,
    imported_from: &'static str,
    noteable_iid: u64,
    commands_changes: Empty,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

/// One note.
pub(crate) struct Note {
    pub id: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub system: bool,
    pub json: Box<[u8]>,
}

/// The notes of one issue or merge request, in creation order.
pub(crate) struct NoteSet {
    pub notes: Vec<Note>,
}

/// `approved_by` entries.
#[derive(Serialize)]
struct Approver<'a> {
    user: UserRef<'a>,
}

/// The body of `GET /projects/:id/merge_requests/:iid/approvals` (GitLab Premium's shape).
#[derive(Serialize)]
struct ApprovalsRecord<'a> {
    id: u64,
    iid: u64,
    project_id: u64,
    title: &'a str,
    description: &'a Value,
    state: &'a Value,
    created_at: &'a Value,
    updated_at: &'a Value,
    merge_status: &'a Value,
    approved: bool,
    approvals_required: u32,
    approvals_left: u32,
    require_password_to_approve: bool,
    approved_by: Vec<Approver<'a>>,
    suggested_approvers: Vec<UserRef<'a>>,
    approvers: [(); 0],
    approver_groups: [(); 0],
    user_has_approved: bool,
    user_can_approve: bool,
    approval_rules_left: [(); 0],
    has_approval_rules: bool,
    merge_request_approvers_available: bool,
    multiple_approval_rules_available: bool,
    invalid_approvers_rules: [(); 0],
}

/// A project's notes (rendered per record on first use) and approvals.
pub(crate) struct Discussions {
    issue_notes: Vec<OnceLock<NoteSet>>,
    merge_request_notes: Vec<OnceLock<NoteSet>>,
    /// By merge request iid − 1.
    pub approvals: Vec<Box<[u8]>>,
}

impl Discussions {
    /// Prepares the project's notes and renders its approvals (its records first).
    pub(crate) fn generate(world: &World, index: usize) -> Discussions {
        let project = &world.projects()[index];
        let records = world.records(index);
        let mut rng = rng_for(world.seed(), 0xA99_0001, project.id);
        let required = [0, 1, 1, 2][rng.random_range(0..4)];
        let approvals = records
            .merge_requests
            .items
            .iter()
            .map(|item| {
                let m = &item.meta;
                let json: Value = serde_json::from_slice(&item.json).unwrap_or(Value::Null);
                let mut reviewers: Vec<u64> = m.reviewers.iter().copied().filter(|&r| r != m.common.author).collect();
                let approving = match m.state {
                    MrState::Merged => {
                        reviewers.len().min(required.max(usize::from(rng.random_bool(0.7)) as u32) as usize)
                    }
                    MrState::Opened | MrState::Locked => rng.random_range(0..=reviewers.len()),
                    MrState::Closed => rng.random_range(0..=reviewers.len().min(1)),
                };
                let pending = reviewers.split_off(approving);
                let user = |id: u64| UserRef::from(world.user(id).unwrap_or(world.current_user()));
                let approvals_left = required.saturating_sub(reviewers.len() as u32);
                let record = ApprovalsRecord {
                    id: m.common.id,
                    iid: m.common.iid,
                    project_id: project.id,
                    title: &m.common.title,
                    description: &json["description"],
                    state: &json["state"],
                    created_at: &json["created_at"],
                    updated_at: &json["updated_at"],
                    merge_status: &json["merge_status"],
                    approved: approvals_left == 0,
                    approvals_required: required,
                    approvals_left,
                    require_password_to_approve: false,
                    approved_by: reviewers.iter().map(|&id| Approver { user: user(id) }).collect(),
                    suggested_approvers: pending.iter().map(|&id| user(id)).collect(),
                    approvers: [],
                    approver_groups: [],
                    user_has_approved: reviewers.contains(&1),
                    user_can_approve: m.state == MrState::Opened && m.common.author != 1 && !reviewers.contains(&1),
                    approval_rules_left: [],
                    has_approval_rules: required > 0,
                    merge_request_approvers_available: true,
                    multiple_approval_rules_available: true,
                    invalid_approvers_rules: [],
                };
                to_bytes(&record).into_boxed_slice()
            })
            .collect();
        Discussions {
            issue_notes: (0..records.issues.items.len()).map(|_| OnceLock::new()).collect(),
            merge_request_notes: (0..records.merge_requests.items.len()).map(|_| OnceLock::new()).collect(),
            approvals,
        }
    }

    /// The notes of issue or merge request `iid` of the project at `index`, rendered on first use.
    pub(crate) fn notes(&self, world: &World, index: usize, kind: Noteable, iid: u64) -> Option<&NoteSet> {
        let slot = usize::try_from(iid.checked_sub(1)?).ok()?;
        let cell = match kind {
            Noteable::Issue => self.issue_notes.get(slot)?,
            Noteable::MergeRequest => self.merge_request_notes.get(slot)?,
        };
        Some(cell.get_or_init(|| generate_notes(world, index, kind, slot)))
    }
}

/// What system notes say, `{}` filled per note.
const ISSUE_EVENTS: [&str; 8] = [
    "added ~{label} label",
    "assigned to @{user}",
    "changed the description",
    "mentioned in merge request !{n}",
    "changed milestone to %{n}",
    "marked the checklist item **Write a failing test** as completed",
    "changed title from **{old}** to **{new}**",
    "changed due date to March 5, 2024",
];

const MERGE_REQUEST_EVENTS: [&str; 6] = [
    "added 1 commit<br><ul><li>{sha} - fix review comments</li></ul>",
    "requested review from @{user}",
    "approved this merge request",
    "resolved all threads",
    "marked this merge request as **ready**",
    "added ~{label} label",
];

fn generate_notes(world: &World, index: usize, kind: Noteable, slot: usize) -> NoteSet {
    let project = &world.projects()[index];
    let records = world.records(index);
    let (common, extra): (&Common, Option<(&str, MrState)>) = match kind {
        Noteable::Issue => (&records.issues.items[slot].meta.common, None),
        Noteable::MergeRequest => {
            let m = &records.merge_requests.items[slot].meta;
            (&m.common, Some((&*m.sha, m.state)))
        }
    };
    let counts = note_counts(world.seed(), project.id, kind, common.iid, common.created_at, common.updated_at);
    let total = (counts.user + counts.system) as usize;
    let mut rng = rng_for(world.seed(), 0x40_7E00 + kind as u64, common.id);
    let mut times: Vec<Millis> =
        (0..total).map(|_| instant(&mut rng, common.created_at + 60_000, common.updated_at)).collect();
    times.sort_unstable();
    // Which of the notes are system notes: spread among the comments.
    let mut system = vec![false; total];
    for flag in system.iter_mut().take(counts.system as usize) {
        *flag = true;
    }
    system.shuffle(&mut rng);
    let n = world.users().len() as u64;
    let notes = times
        .iter()
        .zip(&system)
        .enumerate()
        .map(|(k, (&created_at, &is_system))| {
            let id = common.id * 1_000 + k as u64 + 1;
            let author_id = rng.random_range(1..=n).min(rng.random_range(1..=n));
            let author = world.user(author_id).unwrap_or(world.current_user());
            let edited = !is_system && rng.random_ratio(1, 10);
            let updated_at = if edited { instant(&mut rng, created_at, common.updated_at) } else { created_at };
            let body = if is_system { system_body(&mut rng, project, kind, world) } else { comment(&mut rng) };
            let (type_, resolvable) = match (is_system, kind, rng.random_range(0..10)) {
                (true, _, _) => (None, false),
                (false, Noteable::MergeRequest, 0..2) => (Some("DiffNote"), true),
                (false, Noteable::MergeRequest, 2..7) => (Some("DiscussionNote"), true),
                (false, _, 0..5) => (Some("DiscussionNote"), false),
                _ => (None, false),
            };
            let resolved = resolvable && rng.random_bool(0.6);
            let resolver = world.user(common.author).unwrap_or(world.current_user());
            let head_sha = extra.map_or("", |(sha, _)| sha);
            let internal = kind == Noteable::Issue && !is_system && rng.random_ratio(1, 12);
            let record = NoteRecord {
                id,
                type_,
                body,
                attachment: None,
                author: UserRef::from(author),
                created_at: DateTime::utc(created_at),
                updated_at: DateTime::utc(updated_at),
                system: is_system,
                noteable_id: common.id,
                noteable_type: kind.type_name(),
                project_id: project.id,
                commit_id: (type_ == Some("DiffNote")).then_some(head_sha),
                position: (type_ == Some("DiffNote")).then(|| {
                    let file = text::FILES[rng.random_range(3..text::FILES.len())];
                    let line = rng.random_range(1..=400);
                    Position {
                        base_sha: head_sha,
                        start_sha: head_sha,
                        head_sha,
                        old_path: file,
                        new_path: file,
                        position_type: "text",
                        old_line: rng.random_bool(0.3).then_some(line),
                        new_line: Some(line + 2),
                        line_range: None,
                    }
                }),
                resolvable,
                resolved: resolvable.then_some(resolved),
                resolved_by: resolvable.then(|| resolved.then(|| UserRef::from(resolver))),
                resolved_at: resolvable.then(|| resolved.then(|| DateTime::utc(updated_at))),
                confidential: internal,
                internal,
                imported: false,
                imported_from: "none",
                noteable_iid: common.iid,
                commands_changes: Empty {},
            };
            Note { id, created_at, updated_at, system: is_system, json: to_bytes(&record).into_boxed_slice() }
        })
        .collect();
    NoteSet { notes }
}

/// A comment: a sentence or three, sometimes a code block or a suggestion.
fn comment(rng: &mut impl Rng) -> String {
    let mut body = String::new();
    for i in 0..rng.random_range(1..=3) {
        if i > 0 {
            body.push(' ');
        }
        body.push_str(text::SENTENCES.choose(rng).unwrap_or(&""));
    }
    if rng.random_ratio(1, 6) {
        body.push_str("\n\n```rust\nlet page = reader.next_page()?;\n```");
    }
    body
}

fn system_body(rng: &mut impl Rng, project: &Project, kind: Noteable, world: &World) -> String {
    let template = match kind {
        Noteable::Issue => ISSUE_EVENTS.choose(rng),
        Noteable::MergeRequest => MERGE_REQUEST_EVENTS.choose(rng),
    }
    .copied()
    .unwrap_or("changed the description");
    let user = &world.users()[rng.random_range(0..world.users().len())];
    let label = project.first_label_id + rng.random_range(0..project.labels.len().max(1)) as u64;
    template
        .replace("{label}", &label.to_string())
        .replace("{user}", &user.username)
        .replace("{n}", &rng.random_range(1..=40).to_string())
        .replace("{old}", "Fix it")
        .replace("{new}", "Fix the login flow on Safari")
        .replace("{sha}", &text::hex(rng, 8))
}

/// `sort`, `order_by` and `activity_filter` of the notes lists.
struct NoteQuery {
    desc: bool,
    by_updated: bool,
    activity: Option<bool>,
}

impl Ctx<'_> {
    /// `GET /projects/:id/{issues,merge_requests}/:iid/notes`: newest first by default.
    pub(crate) fn notes(&self, id_or_path: &str, kind: Noteable, iid: &str) -> Result<Reply, ApiError> {
        let q = self.query;
        let spec = NoteQuery {
            desc: q.sort(true)?,
            by_updated: q.choice("order_by", &["created_at", "updated_at"])? == Some("updated_at"),
            activity: match q.choice("activity_filter", &["all_notes", "only_comments", "only_activity"])? {
                Some("only_comments") => Some(false),
                Some("only_activity") => Some(true),
                _ => None,
            },
        };
        let page = PageRequest::from_query(q)?;
        let index = self.noteable_project(id_or_path, kind)?;
        let iid: u64 = iid.parse().map_err(|_| kind.not_found())?;
        let discussions = self.world.discussions_of(index);
        let set = discussions.notes(self.world, index, kind, iid).ok_or_else(|| kind.not_found())?;
        let mut kept: Vec<&Note> = set.notes.iter().filter(|n| spec.activity.is_none_or(|s| n.system == s)).collect();
        if spec.by_updated {
            kept.sort_by_key(|n| (n.updated_at, n.id));
        } else {
            kept.sort_by_key(|n| (n.created_at, n.id));
        }
        if spec.desc {
            kept.reverse();
        }
        let items: Vec<&[u8]> = kept.iter().map(|n| &*n.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/merge_requests/:iid/approvals`.
    pub(crate) fn approvals(&self, id_or_path: &str, iid: &str) -> Result<Reply, ApiError> {
        let index = self.noteable_project(id_or_path, Noteable::MergeRequest)?;
        let iid: u64 = iid.parse().map_err(|_| ApiError::NotFound("Merge Request"))?;
        let approvals = &self.world.discussions_of(index).approvals;
        let slot = usize::try_from(iid.saturating_sub(1)).unwrap_or(usize::MAX);
        let json = approvals.get(slot).filter(|_| iid > 0).ok_or(ApiError::NotFound("Merge Request"))?;
        Ok(Reply::json(json.to_vec()))
    }

    /// The project of a notes route: 404 unknown, 403 when the feature is disabled.
    fn noteable_project(&self, id_or_path: &str, kind: Noteable) -> Result<usize, ApiError> {
        let index = self.project_at(id_or_path)?;
        let project = &self.world.projects()[index];
        let enabled = match kind {
            Noteable::Issue => project.issues_enabled,
            Noteable::MergeRequest => project.merge_requests_enabled,
        };
        if !enabled {
            return Err(ApiError::Forbidden);
        }
        Ok(index)
    }
}

impl World {
    /// What `GET /projects/:id/issues/:iid/notes` lists without parameters: newest first.
    pub fn issue_notes(&self, project_id: u64, iid: u64) -> Vec<Value> {
        self.notes_of(project_id, Noteable::Issue, iid)
    }

    /// What `GET /projects/:id/merge_requests/:iid/notes` lists without parameters: newest first.
    pub fn merge_request_notes(&self, project_id: u64, iid: u64) -> Vec<Value> {
        self.notes_of(project_id, Noteable::MergeRequest, iid)
    }

    fn notes_of(&self, project_id: u64, kind: Noteable, iid: u64) -> Vec<Value> {
        let Some(index) = self.project_index_of(project_id) else { return Vec::new() };
        let Some(set) = self.discussions_of(index).notes(self, index, kind, iid) else { return Vec::new() };
        let mut notes: Vec<&Note> = set.notes.iter().collect();
        notes.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
        values(notes.into_iter().map(|n| &*n.json))
    }

    /// What `GET /projects/:id/merge_requests/:iid/approvals` answers (`Value::Null` for none).
    pub fn merge_request_approvals(&self, project_id: u64, iid: u64) -> Value {
        let Some(index) = self.project_index_of(project_id) else { return Value::Null };
        let slot = usize::try_from(iid.saturating_sub(1)).unwrap_or(usize::MAX);
        self.discussions_of(index)
            .approvals
            .get(slot)
            .filter(|_| iid > 0)
            .and_then(|json| serde_json::from_slice(json).ok())
            .unwrap_or(Value::Null)
    }
}
