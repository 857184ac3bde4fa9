//! The seeded dataset: users, groups, projects, labels and milestones, and (lazily) each project's
//! issues and merge requests.
//!
//! Data flow: [`World::generate`] builds the structure from the [`WorldShape`] (paths and ids do
//! not depend on the seed) and draws every attribute from a ChaCha RNG seeded from the seed
//! (dates, descriptions, counts, states). Project and group JSON is rendered once, here, by
//! `records`. A project's issues and merge requests are generated and rendered the first
//! time anything asks for them (`World::records`), from an RNG seeded from `(seed, project id)`,
//! so the result does not depend on which project is asked for first. Everything is immutable
//! afterwards; the server shares the world behind an `Arc`.
//!
//! Ids: users `1..=40` (user 1, `root`, is the token's user), groups from 10, projects from 100
//! (with a gap now and then, as deleted projects leave), issue ids from 1 and merge request ids
//! from 100,001, both globally unique and increasing with creation time inside a project. The
//! ids of what is generated on first use are reserved when the world is generated
//! (`reserve_ids`): labels (groups' first), group milestones (after the projects'), pipelines from
//! 200,001, jobs from 1,000,001, environments and deployments from 1, each a range per project.
//! Note ids are `issue or merge request id × 1000 + n`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::ci::Ci;
use crate::config::WorldShape;
use crate::content::{self, ProjectRecords};
use crate::discussions::Discussions;
use crate::labels::{GroupLabels, ProjectLabels};
use crate::members::Members;
use crate::records;
use crate::repository::Repository;
use crate::text::{self, CAST};
use crate::time::{Date, DateTime, Millis, ymd_ms};

/// The host every URL inside the JSON points at (fixed, so the JSON does not depend on the port).
pub const WEB_BASE: &str = "https://gitlab.example.com";

/// The first group id; group ids are consecutive from here.
pub const FIRST_GROUP_ID: u64 = 10;
/// The first project id.
pub const FIRST_PROJECT_ID: u64 = 100;
/// The first merge request id.
pub const FIRST_MERGE_REQUEST_ID: u64 = 100_001;
/// The first pipeline id; pipeline ids are consecutive per project, in creation order.
pub const FIRST_PIPELINE_ID: u64 = 200_001;
/// The first job id.
pub const FIRST_JOB_ID: u64 = 1_000_001;
/// The id of the user a valid token belongs to.
pub const TOKEN_USER_ID: u64 = 1;

/// Path of the project whose issues are disabled (its issues endpoint answers 403).
pub const ISSUES_DISABLED_PROJECT: &str = "acme/platform/secrets-vault";
/// Path of the project whose merge requests are disabled (its merge requests endpoint answers 403).
pub const MERGE_REQUESTS_DISABLED_PROJECT: &str = "acme/handbook";
/// Path of the project whose CI/CD is disabled (its pipelines and jobs endpoints answer 403).
pub const CI_DISABLED_PROJECT: &str = "acme/handbook";
/// Path of the project with an empty repository (no commits: its commits endpoint answers 404
/// `Repository Not Found`, its branch, tag and release lists are empty).
pub const EMPTY_REPOSITORY_PROJECT: &str = "acme/handbook";
/// Path of the project with more than 10,000 issues (standard shape only).
pub const BIG_PROJECT: &str = "bigco/monorepo";
/// Paths of the demo projects.
pub const DEMO_PROJECTS: [&str; 3] = ["demo/website", "demo/api", "demo/mobile-app"];

/// Earliest instant of generated data.
pub(crate) fn epoch_start() -> Millis {
    ymd_ms(2019, 1, 1)
}

/// Latest instant of generated data (leaves room for a +14:00 offset within 2025).
pub(crate) fn epoch_end() -> Millis {
    ymd_ms(2025, 12, 31)
}

/// A GitLab user.
#[derive(Debug)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    /// `active`, `blocked` or `deactivated`.
    pub state: String,
    pub bot: bool,
    pub avatar_url: String,
    pub web_url: String,
    pub(crate) created_at: Millis,
    /// The user's time zone, in minutes east of UTC: the offset of the git dates they write.
    pub(crate) utc_offset: i32,
}

impl User {
    /// The address the user's commits carry.
    pub fn email(&self) -> String {
        format!("{}@example.com", self.username)
    }
}

/// A group (namespace of kind `group`).
#[derive(Debug)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub full_path: String,
    pub full_name: String,
    pub parent_id: Option<u64>,
    pub description: String,
    pub visibility: String,
    pub web_url: String,
    pub created_at: DateTime,
    /// The group's milestones.
    pub milestones: Vec<Milestone>,
    /// Titles of the group's own labels (ids from `first_label_id`, in this order).
    pub(crate) label_names: Vec<&'static str>,
    pub(crate) first_label_id: u64,
    /// The list-shape JSON, rendered once.
    pub(crate) json: Box<[u8]>,
}

/// A project or group milestone.
#[derive(Debug)]
pub struct Milestone {
    pub id: u64,
    pub iid: u64,
    /// The project of a project milestone.
    pub project_id: Option<u64>,
    /// The group of a group milestone.
    pub group_id: Option<u64>,
    pub title: String,
    pub description: Option<String>,
    /// `active` or `closed`.
    pub state: String,
    pub due_date: Option<Date>,
    pub start_date: Option<Date>,
    pub expired: bool,
    pub web_url: String,
    pub(crate) created_at: Millis,
    pub(crate) updated_at: Millis,
}

/// Seldom-filtered switches of a project, drawn from the seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProjectFlags {
    pub has_readme: bool,
    pub registry_cleanup: bool,
    pub wiki: bool,
    pub service_desk: bool,
    pub strict_merges: bool,
    pub member: bool,
}

/// Where a project's CI records take their ids from (ids are global, so they are reserved when the
/// world is generated; the records themselves are generated on first use, see [`crate::ci`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CiIds {
    /// How many pipelines the project has.
    pub pipelines: usize,
    pub first_pipeline_id: u64,
    /// Jobs of pipeline `k` (0-based) take ids from `first_job_id + k * MAX_JOBS_PER_PIPELINE`.
    pub first_job_id: u64,
    pub first_environment_id: u64,
    pub first_deployment_id: u64,
}

/// The most jobs one pipeline has.
pub(crate) const MAX_JOBS_PER_PIPELINE: u64 = 8;
/// The most deployments one pipeline makes.
pub(crate) const MAX_DEPLOYMENTS_PER_PIPELINE: u64 = 2;

/// A project and what the filters of the project lists look at.
#[derive(Debug)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub path_with_namespace: String,
    pub name_with_namespace: String,
    /// Id of the group the project sits directly in.
    pub namespace_id: u64,
    pub description: Option<String>,
    /// `private`, `internal` or `public`.
    pub visibility: String,
    pub archived: bool,
    pub issues_enabled: bool,
    pub merge_requests_enabled: bool,
    /// CI/CD (pipelines and jobs) enabled.
    pub jobs_enabled: bool,
    /// The repository has no commits.
    pub empty_repo: bool,
    /// The configured default branch (GitLab shows `null` while the repository is empty).
    pub default_branch: String,
    pub topics: Vec<String>,
    pub web_url: String,
    pub issue_count: usize,
    pub merge_request_count: usize,
    pub open_issues_count: usize,
    pub star_count: u64,
    pub forks_count: u64,
    pub creator_id: u64,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    /// Written with a UTC offset for a minority of projects, as GitLab sometimes does.
    pub last_activity_at: DateTime,
    /// The project's labels, sorted.
    pub labels: Vec<String>,
    pub milestones: Vec<Milestone>,
    pub(crate) merge_method: &'static str,
    pub(crate) flags: ProjectFlags,
    pub(crate) first_issue_id: u64,
    pub(crate) first_merge_request_id: u64,
    /// Ids of the project's labels, in the order of `labels`, count from here.
    pub(crate) first_label_id: u64,
    pub(crate) ci: CiIds,
    pub(crate) json: Box<[u8]>,
    pub(crate) value: Value,
}

/// Lazily built per-project data.
#[derive(Default)]
struct ProjectCache {
    records: OnceLock<ProjectRecords>,
    issue_values: OnceLock<Vec<Value>>,
    merge_request_values: OnceLock<Vec<Value>>,
    repository: OnceLock<Repository>,
    ci: OnceLock<Ci>,
    labels: OnceLock<ProjectLabels>,
    members: OnceLock<Members>,
    discussions: OnceLock<Discussions>,
}

/// Lazily built per-group data.
#[derive(Default)]
struct GroupCache {
    labels: OnceLock<GroupLabels>,
    members: OnceLock<Members>,
}

/// The parts of a project's data that are generated on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Issues and merge requests.
    Records,
    /// Commits, branches, tags, releases.
    Repository,
    /// Pipelines, jobs, environments, deployments.
    Ci,
    /// Labels and milestones.
    Labels,
    Members,
    /// Notes and approvals.
    Discussions,
}

/// The whole generated dataset, deterministic from `(seed, shape)`.
pub struct World {
    seed: u64,
    shape: WorldShape,
    users: Vec<User>,
    groups: Vec<Group>,
    projects: Vec<Project>,
    group_by_id: HashMap<u64, usize>,
    group_by_path: HashMap<String, usize>,
    project_by_id: HashMap<u64, usize>,
    project_by_path: HashMap<String, usize>,
    user_by_name: HashMap<String, u64>,
    caches: Vec<ProjectCache>,
    group_caches: Vec<GroupCache>,
    current_user_json: Box<[u8]>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.seed)
            .field("users", &self.users.len())
            .field("groups", &self.groups.len())
            .field("projects", &self.projects.len())
            .finish_non_exhaustive()
    }
}

static NULL: Value = Value::Null;

/// Mixes numbers into a well-spread 64-bit value (SplitMix64's finalizer).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An RNG for one purpose (`stream`) of one thing (`id`), independent of every other draw.
pub(crate) fn rng_for(seed: u64, stream: u64, id: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ mix(stream ^ mix(id))))
}

/// Whether issue `iid` of a project with `count` issues is open: a pure function, so that the
/// project's `open_issues_count` can be known without generating its issues. Newer issues are
/// more likely open.
pub(crate) fn issue_is_open(seed: u64, project_id: u64, iid: u64, count: usize) -> bool {
    let h = mix(seed ^ mix(0x155E ^ mix(project_id << 24 ^ iid))) % 10_000;
    let age = iid as f64 / count.max(1) as f64;
    let p_open = 0.12 + 0.5 * age * age;
    (h as f64) < p_open * 10_000.0
}

/// A random instant in `[from, to]` (or `from` when the range is empty).
pub(crate) fn instant(rng: &mut impl Rng, from: Millis, to: Millis) -> Millis {
    if to <= from { from } else { rng.random_range(from..=to) }
}

/// Offsets GitLab-like servers write some local times with.
const OFFSETS: [i32; 6] = [120, 330, -420, 540, -180, 60];

/// Now and then, the same instant written with a UTC offset.
pub(crate) fn maybe_offset(rng: &mut impl Rng, millis: Millis) -> DateTime {
    let offset_minutes = if rng.random_ratio(3, 20) { *OFFSETS.choose(rng).unwrap_or(&120) } else { 0 };
    DateTime { millis, offset_minutes }
}

/// A pseudo gravatar hash of a username (seed-independent).
fn avatar_hash(username: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in username.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:016x}{:016x}", mix(h), mix(h ^ 0xA5A5))
}

fn capitalize(segment: &str) -> String {
    let mut chars = segment.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A project before its JSON is rendered: structure only.
struct ProjectPlan {
    name: String,
    path: String,
    group: usize,
    kind: PlanKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PlanKind {
    Acme,
    IssuesDisabled,
    /// `acme/handbook`: merge requests and CI/CD disabled, empty repository.
    Handbook,
    Big,
    Demo,
}

impl World {
    /// Generates the world. Same `(seed, shape)`, same world, byte for byte.
    pub fn generate(seed: u64, shape: &WorldShape) -> World {
        let users = make_users(seed, shape.users);
        let (groups, plans) = make_structure(seed, shape);
        let mut world = World {
            seed,
            shape: shape.clone(),
            users,
            groups,
            projects: Vec::with_capacity(plans.len()),
            group_by_id: HashMap::new(),
            group_by_path: HashMap::new(),
            project_by_id: HashMap::new(),
            project_by_path: HashMap::new(),
            user_by_name: HashMap::new(),
            caches: Vec::new(),
            group_caches: Vec::new(),
            current_user_json: Box::default(),
        };
        world.make_projects(plans);
        world.reserve_ids();
        for (i, g) in world.groups.iter().enumerate() {
            world.group_by_id.insert(g.id, i);
            world.group_by_path.insert(g.full_path.to_lowercase(), i);
        }
        for (i, p) in world.projects.iter().enumerate() {
            world.project_by_id.insert(p.id, i);
            world.project_by_path.insert(p.path_with_namespace.to_lowercase(), i);
        }
        for u in &world.users {
            world.user_by_name.insert(u.username.to_lowercase(), u.id);
        }
        world.caches = (0..world.projects.len()).map(|_| ProjectCache::default()).collect();
        world.group_caches = (0..world.groups.len()).map(|_| GroupCache::default()).collect();
        world.current_user_json = records::current_user(world.current_user()).into();
        world
    }

    fn make_projects(&mut self, plans: Vec<ProjectPlan>) {
        let seed = self.seed;
        let mut rng = rng_for(seed, 0x9_0001, 0);
        // Creation times of `acme` projects increase with the id, as in GitLab.
        let mut created: Vec<Millis> =
            (0..plans.len()).map(|_| instant(&mut rng, epoch_start(), ymd_ms(2023, 6, 30))).collect();
        created.sort_unstable();
        let mut next_id = FIRST_PROJECT_ID;
        let mut next_issue_id = 1;
        let mut next_mr_id = FIRST_MERGE_REQUEST_ID;
        let mut next_milestone_id = 1;
        let user_count = self.users.len() as u64;
        for (index, plan) in plans.into_iter().enumerate() {
            let id = next_id;
            next_id += if index % 9 == 8 { 2 } else { 1 };
            let mut rng = rng_for(seed, 0x9_0002, id);
            let ns = &self.groups[plan.group];
            let shape = &self.shape;
            let (issue_range, mr_range) = match plan.kind {
                PlanKind::Demo => (shape.demo_issues.clone(), shape.demo_merge_requests.clone()),
                PlanKind::Big => {
                    let big = shape.bigco.as_ref().map_or((0, 0), |b| (b.issues, b.merge_requests));
                    (big.0..=big.0, big.1..=big.1)
                }
                _ => (shape.acme_issues.clone(), shape.acme_merge_requests.clone()),
            };
            let issues_enabled = plan.kind != PlanKind::IssuesDisabled;
            // The handbook lives in its wiki: no merge requests, no CI/CD, an empty repository.
            let merge_requests_enabled = plan.kind != PlanKind::Handbook;
            let issue_count = if issues_enabled { draw(&mut rng, issue_range) } else { 0 };
            let merge_request_count = if merge_requests_enabled { draw(&mut rng, mr_range) } else { 0 };
            let open_issues_count =
                (1..=issue_count as u64).filter(|&iid| issue_is_open(seed, id, iid, issue_count)).count();
            // The big and demo projects are old, so their records span 2019 to 2025.
            let created_at = match plan.kind {
                PlanKind::Big => instant(&mut rng, epoch_start(), ymd_ms(2019, 2, 28)),
                PlanKind::Demo => instant(&mut rng, ymd_ms(2019, 3, 1), ymd_ms(2019, 12, 31)),
                _ => created[index],
            };
            let updated_at = instant(&mut rng, created_at, epoch_end());
            let last_activity = instant(&mut rng, updated_at.max(ymd_ms(2025, 1, 1)), epoch_end());
            let visibility = match plan.kind {
                PlanKind::Demo => "public",
                PlanKind::Big => "internal",
                _ => ["private", "private", "private", "internal", "public"]
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("private"),
            };
            let archived = plan.kind == PlanKind::Acme && rng.random_ratio(1, 15);
            let description = match plan.kind {
                PlanKind::Demo => Some(format!("Demo project “{}” for the sync demo.", plan.name)),
                PlanKind::Big => Some("One repository to rule them all 💍".to_owned()),
                _ => text::PROJECT_DESCRIPTIONS.choose(&mut rng).copied().flatten().map(str::to_owned),
            };
            let topic_count = rng.random_range(0..=3);
            let mut topics: Vec<String> =
                text::TOPICS.choose_multiple(&mut rng, topic_count).map(|t| (*t).to_owned()).collect();
            topics.sort();
            let label_count = rng.random_range(4..=10);
            let mut labels: Vec<String> =
                text::LABELS.choose_multiple(&mut rng, label_count).map(|l| (*l).to_owned()).collect();
            labels.sort();
            let default_branch = if rng.random_ratio(1, 6) { "master" } else { "main" }.to_owned();
            let path_with_namespace = format!("{}/{}", ns.full_path, plan.path);
            let web_url = format!("{WEB_BASE}/{path_with_namespace}");
            let milestone_count = match plan.kind {
                PlanKind::Big => 12,
                PlanKind::Demo => rng.random_range(3..=5),
                _ => rng.random_range(0..=3),
            };
            let milestones = (1..=milestone_count)
                .map(|iid| {
                    let owner = MilestoneOwner { project_id: Some(id), group_id: None, web_url: &web_url };
                    let m = make_milestone(&mut rng, next_milestone_id, iid, &owner, created_at);
                    next_milestone_id += 1;
                    m
                })
                .collect();
            let flags = ProjectFlags {
                has_readme: rng.random_ratio(9, 10),
                registry_cleanup: rng.random_bool(0.3),
                wiki: rng.random_bool(0.8),
                service_desk: rng.random_ratio(1, 10),
                strict_merges: rng.random_bool(0.4),
                member: plan.kind != PlanKind::Big,
            };
            let mut project = Project {
                id,
                name_with_namespace: format!("{} / {}", ns.full_name, plan.name),
                name: plan.name,
                path: plan.path,
                path_with_namespace,
                namespace_id: ns.id,
                description,
                visibility: visibility.to_owned(),
                archived,
                issues_enabled,
                merge_requests_enabled,
                jobs_enabled: plan.kind != PlanKind::Handbook,
                empty_repo: plan.kind == PlanKind::Handbook,
                default_branch,
                topics,
                web_url,
                issue_count,
                merge_request_count,
                open_issues_count,
                star_count: rng.random_range(0..=250),
                forks_count: rng.random_range(0..=12),
                creator_id: rng.random_range(1..=user_count.max(1)),
                created_at: DateTime::utc(created_at),
                updated_at: DateTime::utc(updated_at),
                last_activity_at: maybe_offset(&mut rng, last_activity),
                labels,
                milestones,
                merge_method: ["merge", "merge", "rebase_merge", "ff"].choose(&mut rng).copied().unwrap_or("merge"),
                flags,
                first_issue_id: next_issue_id,
                first_merge_request_id: next_mr_id,
                first_label_id: 0,
                ci: CiIds::default(),
                json: Box::default(),
                value: Value::Null,
            };
            next_issue_id += issue_count as u64;
            next_mr_id += merge_request_count as u64;
            let json = records::project(&project, ns);
            project.value = serde_json::from_slice(&json).unwrap_or(Value::Null);
            project.json = json.into();
            self.projects.push(project);
        }
    }

    /// Reserves the ids of what is generated later: labels (groups' first, then projects'), group
    /// milestones (after every project milestone) and CI records. Draws from streams of its own,
    /// so the projects' contents do not depend on it.
    fn reserve_ids(&mut self) {
        let seed = self.seed;
        let mut next_label = 1;
        for group in &mut self.groups {
            let mut rng = rng_for(seed, 0x0001_ABE1, group.id);
            let count = rng.random_range(2..=5);
            let mut names: Vec<&'static str> = text::GROUP_LABELS.choose_multiple(&mut rng, count).copied().collect();
            names.sort_unstable_by_key(|n| n.to_lowercase());
            group.label_names = names;
            group.first_label_id = next_label;
            next_label += count as u64;
        }
        for project in &mut self.projects {
            project.first_label_id = next_label;
            next_label += project.labels.len() as u64;
        }

        let mut next_milestone = 1 + self.projects.iter().map(|p| p.milestones.len() as u64).sum::<u64>();
        for group in &mut self.groups {
            let mut rng = rng_for(seed, 0x3_11E5, group.id);
            let count = match group.parent_id {
                None => rng.random_range(1..=3),
                Some(_) => rng.random_range(0..=2),
            };
            let owner = MilestoneOwner { project_id: None, group_id: Some(group.id), web_url: &group.web_url };
            group.milestones = (1..=count)
                .map(|iid| {
                    let m = make_milestone(&mut rng, next_milestone, iid, &owner, group.created_at.millis);
                    next_milestone += 1;
                    m
                })
                .collect();
        }

        let (mut pipeline, mut job, mut environment, mut deployment) = (FIRST_PIPELINE_ID, FIRST_JOB_ID, 1, 1);
        for project in &mut self.projects {
            let mut rng = rng_for(seed, 0xC1_0001, project.id);
            let pipelines = if !project.jobs_enabled || project.empty_repo {
                0
            } else if project.path_with_namespace == BIG_PROJECT {
                1_200
            } else if DEMO_PROJECTS.contains(&project.path_with_namespace.as_str()) {
                rng.random_range(120..=250)
            } else if rng.random_ratio(1, 5) {
                0
            } else {
                rng.random_range(1..=40)
            };
            project.ci = CiIds {
                pipelines,
                first_pipeline_id: pipeline,
                first_job_id: job,
                first_environment_id: environment,
                first_deployment_id: deployment,
            };
            pipeline += pipelines as u64;
            job += pipelines as u64 * MAX_JOBS_PER_PIPELINE;
            // `production`, `staging`, and a review app per merge request at most.
            environment += 2 + project.merge_request_count as u64;
            deployment += pipelines as u64 * MAX_DEPLOYMENTS_PER_PIPELINE;
        }
    }

    /// The seed the world was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The shape the world was generated from.
    pub fn shape(&self) -> &WorldShape {
        &self.shape
    }

    /// All users, by id.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user a valid token belongs to (`root`, id 1).
    pub fn current_user(&self) -> &User {
        &self.users[0]
    }

    pub(crate) fn current_user_json(&self) -> &[u8] {
        &self.current_user_json
    }

    /// A user by id.
    pub fn user(&self, id: u64) -> Option<&User> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.users.get(index)
    }

    /// A user id by username (case-insensitive).
    pub fn user_id_by_username(&self, username: &str) -> Option<u64> {
        self.user_by_name.get(&username.to_lowercase()).copied()
    }

    /// All groups, parents before children.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// All projects, by id.
    pub fn projects(&self) -> &[Project] {
        &self.projects
    }

    /// A group by numeric id or full path (case-insensitive), as `:id` in the API.
    pub fn group_by_ref(&self, id_or_path: &str) -> Option<&Group> {
        let index = match id_or_path.parse::<u64>() {
            Ok(id) => self.group_by_id.get(&id),
            Err(_) => self.group_by_path.get(&id_or_path.to_lowercase()),
        };
        index.map(|&i| &self.groups[i])
    }

    pub(crate) fn group_index(&self, id_or_path: &str) -> Option<usize> {
        match id_or_path.parse::<u64>() {
            Ok(id) => self.group_by_id.get(&id).copied(),
            Err(_) => self.group_by_path.get(&id_or_path.to_lowercase()).copied(),
        }
    }

    /// The index of the group with this id.
    pub(crate) fn group_index_of(&self, id: u64) -> Option<usize> {
        self.group_by_id.get(&id).copied()
    }

    /// The index of the project with this id.
    pub(crate) fn project_index_of(&self, id: u64) -> Option<usize> {
        self.project_by_id.get(&id).copied()
    }

    /// The groups above `group`, nearest first.
    pub(crate) fn ancestors(&self, group: &Group) -> Vec<&Group> {
        let mut out = Vec::new();
        let mut parent = group.parent_id;
        while let Some(id) = parent {
            let Some(g) = self.group(id) else { break };
            out.push(g);
            parent = g.parent_id;
        }
        out
    }

    /// A group by id.
    pub fn group(&self, id: u64) -> Option<&Group> {
        self.group_by_id.get(&id).map(|&i| &self.groups[i])
    }

    /// A project by numeric id or full path (case-insensitive), as `:id` in the API.
    pub fn project_by_ref(&self, id_or_path: &str) -> Option<&Project> {
        self.project_index(id_or_path).map(|i| &self.projects[i])
    }

    pub(crate) fn project_index(&self, id_or_path: &str) -> Option<usize> {
        match id_or_path.parse::<u64>() {
            Ok(id) => self.project_by_id.get(&id).copied(),
            Err(_) => self.project_by_path.get(&id_or_path.to_lowercase()).copied(),
        }
    }

    /// A project by id.
    pub fn project(&self, id: u64) -> Option<&Project> {
        self.project_by_id.get(&id).map(|&i| &self.projects[i])
    }

    /// Ids of `group` and, with `include_descendants`, of every group below it.
    pub fn group_and_descendants(&self, group: u64, include_descendants: bool) -> Vec<u64> {
        let mut ids = vec![group];
        if include_descendants {
            // Parents come before children, so one pass collects the whole subtree.
            for g in &self.groups {
                if g.parent_id.is_some_and(|p| ids.contains(&p)) {
                    ids.push(g.id);
                }
            }
        }
        ids
    }

    /// The projects directly in `group`, plus those of all its descendant groups when
    /// `include_subgroups`; in id order.
    pub fn projects_in_group(&self, group: u64, include_subgroups: bool) -> Vec<&Project> {
        let ids = self.group_and_descendants(group, include_subgroups);
        self.projects.iter().filter(|p| ids.contains(&p.namespace_id)).collect()
    }

    /// The generated (and rendered) issues and merge requests of the project at `index`; built on
    /// first use.
    pub(crate) fn records(&self, index: usize) -> &ProjectRecords {
        self.caches[index].records.get_or_init(|| content::generate(self, &self.projects[index]))
    }

    /// The commits, branches, tags and releases of the project at `index`; built on first use.
    pub(crate) fn repository_of(&self, index: usize) -> &Repository {
        self.caches[index].repository.get_or_init(|| Repository::generate(self, index))
    }

    /// The pipelines, jobs, environments and deployments of the project at `index`.
    pub(crate) fn ci_of(&self, index: usize) -> &Ci {
        self.caches[index].ci.get_or_init(|| Ci::generate(self, index))
    }

    /// The labels and milestones of the project at `index`.
    pub(crate) fn labels_of(&self, index: usize) -> &ProjectLabels {
        self.caches[index].labels.get_or_init(|| ProjectLabels::generate(self, index))
    }

    /// The direct members of the project at `index`.
    pub(crate) fn members_of(&self, index: usize) -> &Members {
        self.caches[index].members.get_or_init(|| Members::of_project(self, &self.projects[index]))
    }

    /// The notes and approvals of the project at `index` (notes are rendered per issue or merge
    /// request, on first use).
    pub(crate) fn discussions_of(&self, index: usize) -> &Discussions {
        self.caches[index].discussions.get_or_init(|| Discussions::generate(self, index))
    }

    /// The labels and milestones of the group at `index`.
    pub(crate) fn group_labels_of(&self, index: usize) -> &GroupLabels {
        self.group_caches[index].labels.get_or_init(|| GroupLabels::generate(self, index))
    }

    /// The direct members of the group at `index`.
    pub(crate) fn group_members_of(&self, index: usize) -> &Members {
        self.group_caches[index].members.get_or_init(|| Members::of_group(self, &self.groups[index]))
    }

    /// Whether `part` of the project at `index` is already built.
    pub(crate) fn is_built(&self, index: usize, part: Part) -> bool {
        let cache = &self.caches[index];
        match part {
            Part::Records => cache.records.get().is_some(),
            Part::Repository => cache.repository.get().is_some(),
            Part::Ci => cache.ci.get().is_some(),
            Part::Labels => cache.labels.get().is_some(),
            Part::Members => cache.members.get().is_some(),
            Part::Discussions => cache.discussions.get().is_some(),
        }
    }

    /// Builds `part` of the project at `index` (and what it is made from) now.
    pub(crate) fn build(&self, index: usize, part: Part) {
        match part {
            Part::Records => {
                self.records(index);
            }
            Part::Repository => {
                self.repository_of(index);
            }
            Part::Ci => {
                self.ci_of(index);
            }
            Part::Labels => {
                self.labels_of(index);
            }
            Part::Members => {
                self.members_of(index);
            }
            Part::Discussions => {
                self.discussions_of(index);
            }
        }
    }

    /// Generates and renders every project's data now (otherwise done on first use); notes are
    /// still rendered per issue or merge request on first use.
    pub fn prerender(&self) {
        for index in 0..self.projects.len() {
            for part in [Part::Records, Part::Repository, Part::Ci, Part::Labels, Part::Members, Part::Discussions] {
                self.build(index, part);
            }
        }
        for index in 0..self.groups.len() {
            self.group_labels_of(index);
            self.group_members_of(index);
        }
    }

    /// The full GitLab JSON of every issue of a project, by `iid` (empty for an unknown project).
    pub fn issues(&self, project_id: u64) -> &[Value] {
        let Some(&index) = self.project_by_id.get(&project_id) else {
            return &[];
        };
        self.caches[index].issue_values.get_or_init(|| {
            self.records(index)
                .issues
                .items
                .iter()
                .map(|r| serde_json::from_slice(&r.json).unwrap_or(Value::Null))
                .collect()
        })
    }

    /// The full GitLab JSON of every merge request of a project, by `iid`.
    pub fn merge_requests(&self, project_id: u64) -> &[Value] {
        let Some(&index) = self.project_by_id.get(&project_id) else {
            return &[];
        };
        self.caches[index].merge_request_values.get_or_init(|| {
            self.records(index)
                .merge_requests
                .items
                .iter()
                .map(|r| serde_json::from_slice(&r.json).unwrap_or(Value::Null))
                .collect()
        })
    }

    /// The GitLab JSON of a project (`Value::Null` for an unknown id).
    pub fn project_json(&self, project_id: u64) -> &Value {
        self.project(project_id).map_or(&NULL, |p| &p.value)
    }

    /// The GitLab JSON of a group, list shape (`Value::Null` for an unknown id).
    pub fn group_json(&self, group_id: u64) -> Value {
        self.group(group_id).and_then(|g| serde_json::from_slice(&g.json).ok()).unwrap_or(Value::Null)
    }
}

fn draw(rng: &mut impl Rng, range: std::ops::RangeInclusive<usize>) -> usize {
    if range.is_empty() { *range.start() } else { rng.random_range(range) }
}

fn make_users(seed: u64, count: usize) -> Vec<User> {
    let mut rng = rng_for(seed, 0x05E2, 0);
    CAST.iter()
        .take(count.clamp(1, CAST.len()))
        .enumerate()
        .map(|(i, c)| User {
            id: i as u64 + 1,
            username: c.username.to_owned(),
            name: c.name.to_owned(),
            state: c.state.to_owned(),
            bot: c.bot,
            avatar_url: format!("https://secure.gravatar.com/avatar/{}?s=80&d=identicon", avatar_hash(c.username)),
            web_url: format!("{WEB_BASE}/{}", c.username),
            created_at: instant(&mut rng, ymd_ms(2018, 1, 1), ymd_ms(2018, 12, 31)),
            utc_offset: *TIME_ZONES.choose(&mut rng_for(seed, 0x7_2002, i as u64 + 1)).unwrap_or(&0),
        })
        .collect()
}

/// Groups and project plans: a function of the shape only (paths and ids are seed-independent),
/// except for group creation dates and descriptions.
fn make_structure(seed: u64, shape: &WorldShape) -> (Vec<Group>, Vec<ProjectPlan>) {
    let mut rng = rng_for(seed, 0x6_0001, 0);
    let mut groups: Vec<Group> = Vec::new();
    let mut plans = Vec::new();
    let mut add_group =
        |groups: &mut Vec<Group>, name: String, path: &str, parent: Option<usize>, description: &str| {
            let (full_path, full_name, parent_id) = match parent {
                Some(p) => (
                    format!("{}/{path}", groups[p].full_path),
                    format!("{} / {name}", groups[p].full_name),
                    Some(groups[p].id),
                ),
                None => (path.to_owned(), name.clone(), None),
            };
            let mut group = Group {
                id: FIRST_GROUP_ID + groups.len() as u64,
                web_url: format!("{WEB_BASE}/groups/{full_path}"),
                name,
                path: path.to_owned(),
                full_path,
                full_name,
                parent_id,
                description: description.to_owned(),
                visibility: if path == "demo" { "public" } else { "private" }.to_owned(),
                created_at: DateTime::utc(instant(&mut rng, ymd_ms(2018, 6, 1), ymd_ms(2018, 12, 31))),
                milestones: Vec::new(),
                label_names: Vec::new(),
                first_label_id: 0,
                json: Box::default(),
            };
            group.json = records::group(&group).into();
            groups.push(group);
            groups.len() - 1
        };

    // Fixed, seed-independent project names for acme.
    let mut pool = text::project_name_pool();
    pool.shuffle(&mut ChaCha8Rng::seed_from_u64(0xAC3E));
    let mut pool = pool.into_iter().cycle().enumerate();
    let pool_len = 28 * 24;
    let mut used_paths: HashSet<String> = HashSet::new();

    let acme_root = if shape.acme_groups.is_empty() {
        None
    } else {
        Some(add_group(
            &mut groups,
            "ACME Corp".to_owned(),
            "acme",
            None,
            "Everything ACME builds — platform, apps & security.",
        ))
    };
    if let Some(root) = acme_root {
        for spec in &shape.acme_groups {
            let relative = spec.path.trim_matches('/');
            let index = if relative.is_empty() {
                root
            } else {
                let full = format!("acme/{relative}");
                match groups.iter().position(|g| g.full_path == full) {
                    Some(existing) => existing,
                    None => {
                        let (parent_path, leaf) = match full.rsplit_once('/') {
                            Some(split) => split,
                            None => ("acme", relative),
                        };
                        let parent = groups.iter().position(|g| g.full_path == parent_path).unwrap_or(root);
                        let description = format!("The {leaf} team.");
                        add_group(&mut groups, capitalize(leaf), leaf, Some(parent), &description)
                    }
                }
            };
            for k in 0..spec.projects {
                let special = match (relative, k) {
                    ("", 0) => Some(("Handbook", PlanKind::Handbook)),
                    ("platform", 0) => Some(("Secrets Vault", PlanKind::IssuesDisabled)),
                    _ => None,
                };
                let (name, kind) = match special {
                    Some((name, kind)) => (name.to_owned(), kind),
                    None => loop {
                        let (n, base) = pool.next().unwrap_or_default();
                        let name = if n < pool_len { base } else { format!("{base} {}", n / pool_len + 1) };
                        let key = format!("{}/{}", groups[index].full_path, text::slug(&name));
                        if !used_paths.contains(&key) && name != "Handbook" {
                            break (name, PlanKind::Acme);
                        }
                    },
                };
                let path = text::slug(&name);
                used_paths.insert(format!("{}/{path}", groups[index].full_path));
                plans.push(ProjectPlan { name, path, group: index, kind });
            }
        }
    }
    if shape.bigco.is_some() {
        let g = add_group(&mut groups, "BigCo".to_owned(), "bigco", None, "A big company with a big monorepo.");
        plans.push(ProjectPlan {
            name: "Monorepo".to_owned(),
            path: "monorepo".to_owned(),
            group: g,
            kind: PlanKind::Big,
        });
    }
    let demo = add_group(&mut groups, "Demo".to_owned(), "demo", None, "Projects the demo syncs.");
    for (name, path) in [("Website", "website"), ("API", "api"), ("Mobile App", "mobile-app")] {
        plans.push(ProjectPlan { name: name.to_owned(), path: path.to_owned(), group: demo, kind: PlanKind::Demo });
    }
    (groups, plans)
}

/// Time zones of the cast (minutes east of UTC), as their git dates show them.
const TIME_ZONES: [i32; 12] = [0, 60, 120, 330, 480, 540, -300, -420, -180, 600, 345, -240];

const MILESTONE_TITLES: [&str; 8] =
    ["v1.0", "v1.1", "v2.0 – “Hydra”", "Sprint 42", "Q3 2024 🚀", "Backlog", "Release 3.0", "Hardening"];

const GROUP_MILESTONE_TITLES: [&str; 4] =
    ["FY25 Q1 planning", "Roadmap 2025", "Security review 🔐", "Migración a la nube"];

/// Whose milestone it is, and where its page lives.
struct MilestoneOwner<'a> {
    project_id: Option<u64>,
    group_id: Option<u64>,
    /// The web URL of the project or group.
    web_url: &'a str,
}

fn make_milestone(
    rng: &mut impl Rng,
    id: u64,
    iid: u64,
    owner: &MilestoneOwner<'_>,
    owner_created: Millis,
) -> Milestone {
    let titles: &[&str] = if owner.group_id.is_some() { &GROUP_MILESTONE_TITLES } else { &MILESTONE_TITLES };
    let created_at = instant(rng, owner_created, ymd_ms(2024, 12, 31));
    let updated_at = instant(rng, created_at, epoch_end());
    let start = created_at + rng.random_range(0..30) * 86_400_000;
    let due = start + rng.random_range(14..120) * 86_400_000;
    let state = if rng.random_bool(0.5) { "closed" } else { "active" };
    let title = titles.get((iid as usize - 1) % titles.len()).copied().unwrap_or("Next");
    let title = if iid as usize > titles.len() { format!("{title} ({iid})") } else { title.to_owned() };
    Milestone {
        id,
        iid,
        project_id: owner.project_id,
        group_id: owner.group_id,
        title,
        description: rng.random_bool(0.6).then(|| "Goals: ship it 🚢, fix the top bugs, write the docs.".to_owned()),
        state: state.to_owned(),
        due_date: rng.random_bool(0.8).then_some(Date::of(due)),
        start_date: rng.random_bool(0.6).then_some(Date::of(start)),
        expired: state == "active" && due < ymd_ms(2025, 6, 1),
        web_url: format!("{}/-/milestones/{iid}", owner.web_url),
        created_at,
        updated_at,
    }
}
