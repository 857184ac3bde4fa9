//! A project's CI/CD: pipelines, jobs, environments and deployments, generated on first use from
//! its repository and merge requests, and kept as rendered JSON next to what the filters need.
//!
//! Pipelines run for default-branch commits (pushes and schedules), for merge requests' head
//! commits (`refs/merge-requests/:iid/head`) and for tags; their ids and iids grow with time.
//! Each pipeline has up to [`MAX_JOBS_PER_PIPELINE`] jobs in the stages `build`, `test` and
//! `deploy`, whose statuses agree with the pipeline's (a failed pipeline has a failed job and
//! skipped jobs after it). Deploy jobs make deployments: `deploy:staging` to `staging`,
//! `deploy:production` (manual) to `production`, `deploy:review` to `review/<branch>`. A merged
//! merge request is deployed to an environment by its first successful deployment of the target
//! branch after it was merged (the `deployed_after` / `deployed_before` filters of merge requests).
//!
//! Endpoints (the `Ctx` handlers at the bottom): `GET /projects/:id/pipelines`, `/jobs` (offset,
//! or keyset with `pagination=keyset`: a `cursor` in `Link`), `/environments`, `/deployments`.
//! Pipelines and jobs answer 403 when the project's CI/CD is disabled.

use std::collections::HashMap;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::content::{MrState, ProjectRecords};
use crate::pagination::{PageRequest, cursor_page, offset_page, parse_id_cursor, per_page};
use crate::query::Query;
use crate::records::{UserRef, to_bytes};
use crate::reply::{ApiError, Reply};
use crate::repository::{CommitData, Repository, values};
use crate::routes::Ctx;
use crate::time::{DateTime, MS_PER_DAY, Millis};
use crate::world::{MAX_JOBS_PER_PIPELINE, Project, User, World, rng_for};

/// Pipeline statuses GitLab knows (the `status` filter).
const PIPELINE_STATUSES: [&str; 11] = [
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];

/// Pipeline sources GitLab knows (the `source` filter).
const PIPELINE_SOURCES: [&str; 18] = [
    "push",
    "web",
    "trigger",
    "schedule",
    "api",
    "external",
    "pipeline",
    "chat",
    "webide",
    "merge_request_event",
    "external_pull_request_event",
    "parent_pipeline",
    "ondemand_dast_scan",
    "ondemand_dast_validation",
    "security_orchestration_policy",
    "container_registry_push",
    "duo_workflow",
    "pipeline_execution_policy_schedule",
];

/// Job statuses (the jobs' `scope` filter).
const JOB_STATUSES: [&str; 12] = [
    "created",
    "pending",
    "running",
    "failed",
    "success",
    "canceled",
    "canceling",
    "skipped",
    "waiting_for_resource",
    "manual",
    "preparing",
    "scheduled",
];

/// Deployment statuses (the deployments' `status` filter).
const DEPLOYMENT_STATUSES: [&str; 7] = ["created", "running", "success", "failed", "canceled", "skipped", "blocked"];

/// `API::Entities::Ci::PipelineBasic`: the list shape of pipelines, and a job's `pipeline`.
#[derive(Serialize)]
pub(crate) struct PipelineRecord<'a> {
    id: u64,
    iid: u64,
    project_id: u64,
    sha: &'a str,
    #[serde(rename = "ref")]
    ref_: &'a str,
    status: &'a str,
    source: &'a str,
    created_at: DateTime,
    updated_at: DateTime,
    web_url: String,
}

/// A pipeline and what the filters look at.
pub(crate) struct Pipeline {
    pub id: u64,
    pub iid: u64,
    pub status: &'static str,
    pub source: &'static str,
    pub ref_: Box<str>,
    pub sha: Box<str>,
    /// A tag pipeline.
    pub tag: bool,
    /// A merge request pipeline (its ref is `refs/merge-requests/:iid/head`).
    pub merge_request: bool,
    pub user: u64,
    pub yaml_errors: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub json: Box<[u8]>,
}

impl Pipeline {
    fn record<'a>(&'a self, project: &Project) -> PipelineRecord<'a> {
        PipelineRecord {
            id: self.id,
            iid: self.iid,
            project_id: project.id,
            sha: &self.sha,
            ref_: &self.ref_,
            status: self.status,
            source: self.source,
            created_at: DateTime::utc(self.created_at),
            updated_at: DateTime::utc(self.updated_at),
            web_url: format!("{}/-/pipelines/{}", project.web_url, self.id),
        }
    }
}

/// A job.
pub(crate) struct Job {
    pub id: u64,
    pub status: &'static str,
    pub json: Box<[u8]>,
}

/// An environment.
pub(crate) struct Environment {
    pub name: Box<str>,
    pub state: &'static str,
    pub json: Box<[u8]>,
}

/// A deployment.
pub(crate) struct Deployment {
    pub id: u64,
    pub ref_: Box<str>,
    pub status: &'static str,
    /// Index into the environments.
    pub environment: usize,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
    pub json: Box<[u8]>,
}

/// A project's CI/CD records.
#[derive(Default)]
pub(crate) struct Ci {
    /// By id (oldest first).
    pub pipelines: Vec<Pipeline>,
    /// By id, highest first (the order GitLab lists jobs in).
    pub jobs: Vec<Job>,
    /// By id.
    pub environments: Vec<Environment>,
    /// By id.
    pub deployments: Vec<Deployment>,
    /// `(merge request iid, environment index, when it was deployed there)`.
    pub deployed_merge_requests: Vec<(u64, usize, Millis)>,
}

/// `API::Entities::User`, as jobs show who ran them.
#[derive(Serialize)]
struct JobUser<'a> {
    #[serde(flatten)]
    basic: UserRef<'a>,
    created_at: DateTime,
    bio: &'static str,
    location: &'static str,
    public_email: Option<&'a str>,
    skype: &'static str,
    linkedin: &'static str,
    twitter: &'static str,
    discord: &'static str,
    website_url: &'static str,
    organization: &'static str,
    job_title: &'static str,
    pronouns: Option<&'static str>,
    bot: bool,
    work_information: Option<&'static str>,
    followers: u32,
    following: u32,
    is_followed: bool,
    local_time: Option<&'static str>,
}

impl<'a> From<&'a User> for JobUser<'a> {
    fn from(u: &'a User) -> Self {
        JobUser {
            basic: UserRef::from(u),
            created_at: DateTime::utc(u.created_at),
            bio: "",
            location: "",
            public_email: None,
            skype: "",
            linkedin: "",
            twitter: "",
            discord: "",
            website_url: "",
            organization: "ACME Corp",
            job_title: "",
            pronouns: None,
            bot: u.bot,
            work_information: None,
            followers: (u.id % 7) as u32,
            following: (u.id % 5) as u32,
            is_followed: false,
            local_time: None,
        }
    }
}

#[derive(Serialize)]
struct ArtifactsFile {
    filename: &'static str,
    size: u64,
}

#[derive(Serialize)]
struct Artifact {
    file_type: &'static str,
    size: u64,
    filename: &'static str,
    file_format: Option<&'static str>,
}

#[derive(Serialize)]
struct Runner {
    id: u64,
    description: &'static str,
    ip_address: Option<&'static str>,
    active: bool,
    paused: bool,
    is_shared: bool,
    runner_type: &'static str,
    name: &'static str,
    online: bool,
    status: &'static str,
}

#[derive(Serialize)]
struct RunnerManager {
    id: u64,
    system_id: String,
    version: &'static str,
    revision: &'static str,
    platform: &'static str,
    architecture: &'static str,
    created_at: DateTime,
    contacted_at: DateTime,
    ip_address: String,
    status: &'static str,
}

#[derive(Serialize)]
struct JobProject {
    ci_job_token_scope_enabled: bool,
}

/// `API::Entities::Ci::Job`.
#[derive(Serialize)]
struct JobRecord<'a> {
    id: u64,
    status: &'a str,
    stage: &'a str,
    name: &'a str,
    #[serde(rename = "ref")]
    ref_: &'a str,
    tag: bool,
    coverage: Option<f64>,
    allow_failure: bool,
    created_at: DateTime,
    started_at: Option<DateTime>,
    finished_at: Option<DateTime>,
    erased_at: Option<DateTime>,
    duration: Option<f64>,
    queued_duration: Option<f64>,
    user: JobUser<'a>,
    commit: Option<crate::repository::CommitRecord<'a>>,
    pipeline: PipelineRecord<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
    web_url: String,
    project: JobProject,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifacts_file: Option<ArtifactsFile>,
    artifacts: Vec<Artifact>,
    runner: Option<Runner>,
    runner_manager: Option<RunnerManager>,
    artifacts_expire_at: Option<DateTime>,
    archived: bool,
    tag_list: Vec<&'static str>,
}

/// `API::Entities::EnvironmentBasic`, as deployments show their environment.
#[derive(Serialize)]
struct EnvironmentBasic<'a> {
    id: u64,
    name: &'a str,
    slug: &'a str,
    external_url: Option<&'a str>,
    created_at: DateTime,
    updated_at: DateTime,
}

/// `API::Entities::Environment`.
#[derive(Serialize)]
struct EnvironmentRecord<'a> {
    #[serde(flatten)]
    basic: EnvironmentBasic<'a>,
    tier: &'a str,
    state: &'a str,
    auto_stop_at: Option<DateTime>,
    auto_stop_setting: &'static str,
    description: Option<&'static str>,
    cluster_agent: Option<()>,
    kubernetes_namespace: Option<&'static str>,
    flux_resource_path: Option<&'static str>,
}

/// `API::Entities::Deployment`.
#[derive(Serialize)]
struct DeploymentRecord<'a> {
    id: u64,
    iid: u64,
    #[serde(rename = "ref")]
    ref_: &'a str,
    sha: &'a str,
    created_at: DateTime,
    updated_at: DateTime,
    status: &'a str,
    user: UserRef<'a>,
    environment: EnvironmentBasic<'a>,
    /// Written as `null`, then replaced by the deploy job's JSON.
    deployable: (),
}

/// An environment while CI is generated.
struct EnvDraft {
    name: String,
    slug: String,
    tier: &'static str,
    external_url: Option<String>,
    created_at: Millis,
    updated_at: Millis,
    state: &'static str,
    auto_stop_at: Option<Millis>,
}

impl EnvDraft {
    fn basic(&self, id: u64) -> EnvironmentBasic<'_> {
        EnvironmentBasic {
            id,
            name: &self.name,
            slug: &self.slug,
            external_url: self.external_url.as_deref(),
            created_at: DateTime::utc(self.created_at),
            updated_at: DateTime::utc(self.updated_at),
        }
    }
}

/// GitLab's environment slug: lowercase letters, digits and `-`, at most 24 characters; a slug
/// that had to change gets a 6-character suffix.
fn environment_slug(name: &str, rng: &mut impl Rng) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_owned();
    if slug == name && slug.len() <= 24 {
        return slug;
    }
    let mut short: String = slug.chars().take(17).collect();
    while short.ends_with('-') {
        short.pop();
    }
    format!("{short}-{}", crate::text::hex(rng, 6))
}

/// A job while it is planned: its name, stage, and what happened to it.
struct JobPlan {
    name: &'static str,
    stage: &'static str,
    status: &'static str,
    allow_failure: bool,
    /// The environment a deploy job deploys to.
    deploys_to: Option<String>,
}

/// The jobs of a pipeline that ended with `status`, for a pipeline of `kind`.
fn plan_jobs(rng: &mut impl Rng, status: &'static str, kind: Kind, branch: &str) -> Vec<JobPlan> {
    let mut plans =
        vec![JobPlan { name: "compile", stage: "build", status: "", allow_failure: false, deploys_to: None }];
    if rng.random_bool(0.4) {
        plans.push(JobPlan {
            name: "docker-build",
            stage: "build",
            status: "",
            allow_failure: false,
            deploys_to: None,
        });
    }
    let tests = ["lint", "unit-tests: [ruby 3.2]", "rspec 1/4", "cargo test", "e2e 🧪"];
    let count = rng.random_range(1..=3);
    for name in tests.choose_multiple(rng, count) {
        let allow_failure = *name == "e2e 🧪";
        plans.push(JobPlan { name, stage: "test", status: "", allow_failure, deploys_to: None });
    }
    match kind {
        Kind::Push => {
            plans.push(JobPlan {
                name: "deploy:staging",
                stage: "deploy",
                status: "",
                allow_failure: false,
                deploys_to: Some("staging".into()),
            });
            plans.push(JobPlan {
                name: "deploy:production",
                stage: "deploy",
                status: "",
                allow_failure: true,
                deploys_to: Some("production".into()),
            });
        }
        Kind::MergeRequest if rng.random_bool(0.5) => plans.push(JobPlan {
            name: "deploy:review",
            stage: "deploy",
            status: "",
            allow_failure: true,
            deploys_to: Some(format!("review/{branch}")),
        }),
        _ => {}
    }
    // Statuses that agree with the pipeline's.
    let failing = plans.iter().rposition(|p| p.stage == "test").unwrap_or(0);
    let running = rng.random_range(0..plans.len());
    let played = rng.random_bool(0.5);
    for (i, plan) in plans.iter_mut().enumerate() {
        plan.status = match status {
            "success" | "manual" if plan.name == "deploy:production" => {
                if played && status == "success" {
                    "success"
                } else {
                    "manual"
                }
            }
            "success" | "manual" => "success",
            "failed" if i < failing => "success",
            "failed" if i == failing => "failed",
            "failed" => "skipped",
            "canceled" if i < running => "success",
            "canceled" => "canceled",
            "running" if i < running => "success",
            "running" if i == running => "running",
            "running" => "created",
            "pending" if i == 0 => "pending",
            "skipped" => "skipped",
            _ => "created",
        };
    }
    plans
}

/// What started a pipeline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Push,
    Schedule,
    MergeRequest,
    Tag,
    Web,
}

/// A pipeline before it has its id (pipelines are numbered in time order).
struct PipelineDraft {
    kind: Kind,
    ref_: String,
    sha: Box<str>,
    commit: Option<usize>,
    /// The merge request's source branch, for review apps.
    branch: String,
    user: u64,
    created_at: Millis,
}

impl Ci {
    /// Generates the CI records of the project at `index` (its repository first).
    pub(crate) fn generate(world: &World, index: usize) -> Ci {
        let project = &world.projects()[index];
        if project.ci.pipelines == 0 {
            return Ci::default();
        }
        let repo = world.repository_of(index);
        let records = world.records(index);
        let mut rng = rng_for(world.seed(), 0xC1_0002, project.id);
        let drafts = pipeline_drafts(world, project, repo, records, &mut rng);
        let mut run = Runs {
            world,
            project,
            repo,
            pipelines: Vec::new(),
            jobs: Vec::new(),
            environments: Vec::new(),
            deployments: Vec::new(),
        };
        let newest = drafts.len();
        for (k, draft) in drafts.into_iter().enumerate() {
            run.pipeline(&mut rng, k, draft, k + 1 == newest);
        }
        run.stop_review_apps(records);
        run.finish(records)
    }
}

/// What each pipeline of a project ran for, oldest first: default-branch commits (pushes,
/// schedules, runs from the web or the API), merge requests' head commits and tags.
fn pipeline_drafts(
    world: &World,
    project: &Project,
    repo: &Repository,
    records: &ProjectRecords,
    rng: &mut ChaCha8Rng,
) -> Vec<PipelineDraft> {
    let n = world.users().len() as u64;
    let person = |rng: &mut ChaCha8Rng| rng.random_range(1..=n).min(rng.random_range(1..=n));
    let mainline: Vec<usize> = (0..repo.commits.len())
        .filter(|&i| repo.commits[i].default_pos.is_some() && !repo.commits[i].second_parent)
        .collect();
    let sha_index: HashMap<&str, usize> = repo.commits.iter().enumerate().map(|(i, c)| (&*c.data.sha, i)).collect();
    let merge_requests: Vec<_> = records
        .merge_requests
        .items
        .iter()
        .map(|m| &m.meta)
        .filter(|m| matches!(m.state, MrState::Opened | MrState::Merged))
        .collect();
    let mut drafts: Vec<PipelineDraft> = (0..project.ci.pipelines)
        .map(|_| {
            let roll = rng.random_range(0..100);
            if roll < 15 && !merge_requests.is_empty() {
                let m = merge_requests.choose(rng).copied().unwrap_or(merge_requests[0]);
                let at = m.common.created_at + rng.random_range(1..=600) * 60_000;
                PipelineDraft {
                    kind: Kind::MergeRequest,
                    ref_: format!("refs/merge-requests/{}/head", m.common.iid),
                    sha: m.sha.clone(),
                    commit: sha_index.get(&*m.sha).copied(),
                    branch: m.source_branch.to_string(),
                    user: m.common.author,
                    created_at: at,
                }
            } else if roll < 20 && !repo.tags.is_empty() {
                let tag = repo.tags.choose(rng).unwrap_or(&repo.tags[0]);
                let commit = &repo.commits[tag.commit];
                PipelineDraft {
                    kind: Kind::Tag,
                    ref_: tag.name.to_string(),
                    sha: commit.data.sha.clone(),
                    commit: Some(tag.commit),
                    branch: String::new(),
                    user: person(rng),
                    created_at: commit.committed_at + rng.random_range(10..=700) * 60_000,
                }
            } else {
                let c = *mainline.choose(rng).unwrap_or(&0);
                let commit = &repo.commits[c];
                let kind = match roll {
                    20..25 => Kind::Schedule,
                    25..30 => Kind::Web,
                    _ => Kind::Push,
                };
                let delay = if kind == Kind::Push { rng.random_range(0..=2) } else { rng.random_range(30..=3_000) };
                PipelineDraft {
                    kind,
                    ref_: project.default_branch.clone(),
                    sha: commit.data.sha.clone(),
                    commit: Some(c),
                    branch: String::new(),
                    user: person(rng),
                    created_at: commit.committed_at + delay * 60_000 + rng.random_range(1_000..=59_000),
                }
            }
        })
        .collect();
    drafts.sort_by_key(|d| d.created_at);
    drafts
}

/// Pipelines being run, in time order, with what their jobs leave behind.
struct Runs<'a> {
    world: &'a World,
    project: &'a Project,
    repo: &'a Repository,
    pipelines: Vec<Pipeline>,
    /// `(id, JSON, status)`.
    jobs: Vec<(u64, Box<[u8]>, &'static str)>,
    /// In the order of their first deployment, which is also their creation order.
    environments: Vec<EnvDraft>,
    /// `(environment index, job id, the deploy job)`.
    deployments: Vec<(usize, u64, JobPlanned)>,
}

impl Runs<'_> {
    /// Runs pipeline `k` (0-based, in time order): its status, its jobs (rendered), and the
    /// deployments its deploy jobs make. Only the newest pipeline may still be running.
    fn pipeline(&mut self, rng: &mut ChaCha8Rng, k: usize, d: PipelineDraft, newest: bool) {
        let (world, project, ids) = (self.world, self.project, self.project.ci);
        let yaml_errors = rng.random_ratio(1, 100);
        let status: &'static str = if yaml_errors {
            "failed"
        } else if newest && rng.random_bool(0.5) {
            ["running", "pending", "created"][rng.random_range(0..3)]
        } else {
            match rng.random_range(0..100) {
                0..72 => "success",
                72..86 => "failed",
                86..92 => "canceled",
                92..95 => "skipped",
                _ => "manual",
            }
        };
        let source = match d.kind {
            Kind::Push | Kind::Tag => "push",
            Kind::Schedule => "schedule",
            Kind::MergeRequest => "merge_request_event",
            Kind::Web => ["web", "api", "trigger"][rng.random_range(0..3)],
        };
        let plans = if yaml_errors {
            Vec::new()
        } else {
            plan_jobs(rng, status, if d.kind == Kind::Schedule { Kind::Web } else { d.kind }, &d.branch)
        };
        // Jobs run one stage after the other.
        let mut clock = d.created_at + rng.random_range(1_000..=30_000);
        let mut timings = Vec::with_capacity(plans.len());
        for plan in &plans {
            let ran = matches!(plan.status, "success" | "failed" | "canceled" | "running");
            let queued = rng.random_range(500..=40_000);
            let duration = rng.random_range(8_000..=600_000);
            let started = ran.then_some(clock + queued);
            let finished = (ran && plan.status != "running").then_some(clock + queued + duration);
            if let Some(f) = finished {
                clock = clock.max(f);
            }
            timings.push((started, finished, queued, duration));
        }
        let updated_at = timings.iter().filter_map(|t| t.1.or(t.0)).max().unwrap_or(d.created_at + 2_000);
        let mut pipeline = Pipeline {
            id: ids.first_pipeline_id + k as u64,
            iid: k as u64 + 1,
            status,
            source,
            ref_: d.ref_.clone().into_boxed_str(),
            sha: d.sha.clone(),
            tag: d.kind == Kind::Tag,
            merge_request: d.kind == Kind::MergeRequest,
            user: d.user,
            yaml_errors,
            created_at: d.created_at,
            updated_at,
            json: Box::default(),
        };
        pipeline.json = to_bytes(&pipeline.record(project)).into_boxed_slice();
        let user = world.user(d.user).unwrap_or(world.current_user());
        let commit: Option<&CommitData> = d.commit.map(|c| &self.repo.commits[c].data);
        for (j, (plan, timing)) in plans.iter().zip(&timings).enumerate() {
            let job_id = ids.first_job_id + k as u64 * MAX_JOBS_PER_PIPELINE + j as u64;
            let job = PlannedJob { id: job_id, plan, timing: *timing, pipeline: &pipeline, project, user, commit };
            let json = to_bytes(&job.record(rng)).into_boxed_slice();
            let deployed = !matches!(plan.status, "created" | "skipped");
            if let Some(env) = plan.deploys_to.as_deref().filter(|_| deployed) {
                let e = match self.environments.iter().position(|e| e.name == env) {
                    Some(e) => e,
                    None => {
                        self.environments.push(new_environment(rng, env, project, d.created_at));
                        self.environments.len() - 1
                    }
                };
                let environment = &mut self.environments[e];
                environment.updated_at = environment.updated_at.max(timing.1.unwrap_or(d.created_at));
                let planned = JobPlanned {
                    status: plan.status,
                    ref_: d.ref_.clone(),
                    sha: d.sha.to_string(),
                    user: d.user,
                    created_at: d.created_at,
                    finished_at: timing.1,
                    job_json: json.clone(),
                };
                self.deployments.push((e, job_id, planned));
            }
            self.jobs.push((job_id, json, plan.status));
        }
        self.pipelines.push(pipeline);
    }

    /// Review apps of merge requests that are no longer open are stopped.
    fn stop_review_apps(&mut self, records: &ProjectRecords) {
        for env in &mut self.environments {
            let Some(branch) = env.name.strip_prefix("review/") else { continue };
            let done = records
                .merge_requests
                .items
                .iter()
                .any(|m| &*m.meta.source_branch == branch && m.meta.state != MrState::Opened);
            if done {
                env.state = "stopped";
                env.auto_stop_at = None;
            }
        }
    }

    /// Renders the environments and deployments, and finds which merged merge request each
    /// environment got, and when.
    fn finish(self, records: &ProjectRecords) -> Ci {
        let ids = self.project.ci;
        let mut ci = Ci { pipelines: self.pipelines, ..Ci::default() };
        let mut jobs = self.jobs;
        jobs.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
        ci.jobs = jobs.into_iter().map(|(id, json, status)| Job { id, status, json }).collect();
        let envs = self.environments;
        let env_id = |e: usize| ids.first_environment_id + e as u64;
        let mut deployments = self.deployments;
        deployments.sort_by_key(|(_, job, d)| (d.created_at, *job));
        for (n, (e, _, d)) in deployments.iter().enumerate() {
            let status = match d.status {
                "manual" | "pending" => "created",
                other => other,
            };
            let updated_at = d.finished_at.unwrap_or(d.created_at + 1_000);
            let user = self.world.user(d.user).unwrap_or(self.world.current_user());
            let record = DeploymentRecord {
                id: ids.first_deployment_id + n as u64,
                iid: n as u64 + 1,
                ref_: &d.ref_,
                sha: &d.sha,
                created_at: DateTime::utc(d.created_at),
                updated_at: DateTime::utc(updated_at),
                status,
                user: UserRef::from(user),
                environment: envs[*e].basic(env_id(*e)),
                deployable: (),
            };
            // The deployable is the deploy job, exactly as the jobs list shows it: it replaces
            // the `null` the record ends with.
            let mut json = to_bytes(&record);
            json.truncate(json.len() - b"null}".len());
            json.extend_from_slice(&d.job_json);
            json.push(b'}');
            ci.deployments.push(Deployment {
                id: ids.first_deployment_id + n as u64,
                ref_: d.ref_.clone().into_boxed_str(),
                status,
                environment: *e,
                created_at: d.created_at,
                updated_at,
                finished_at: (status == "success").then_some(updated_at),
                json: json.into_boxed_slice(),
            });
        }
        ci.environments = envs
            .iter()
            .enumerate()
            .map(|(e, env)| {
                let record = EnvironmentRecord {
                    basic: env.basic(env_id(e)),
                    tier: env.tier,
                    state: env.state,
                    auto_stop_at: env.auto_stop_at.map(DateTime::utc),
                    auto_stop_setting: "always",
                    description: None,
                    cluster_agent: None,
                    kubernetes_namespace: None,
                    flux_resource_path: None,
                };
                Environment {
                    name: env.name.clone().into_boxed_str(),
                    state: env.state,
                    json: to_bytes(&record).into_boxed_slice(),
                }
            })
            .collect();
        for m in records.merge_requests.items.iter().map(|m| &m.meta) {
            let Some(merged_at) = m.merged_at else { continue };
            for e in 0..ci.environments.len() {
                let first = ci
                    .deployments
                    .iter()
                    .filter(|d| d.environment == e && d.status == "success" && *d.ref_ == *m.target_branch)
                    .filter_map(|d| d.finished_at)
                    .filter(|&f| f >= merged_at)
                    .min();
                if let Some(at) = first {
                    ci.deployed_merge_requests.push((m.common.iid, e, at));
                }
            }
        }
        ci
    }
}
/// A deploy job, remembered to make its deployment.
struct JobPlanned {
    status: &'static str,
    ref_: String,
    sha: String,
    user: u64,
    created_at: Millis,
    finished_at: Option<Millis>,
    job_json: Box<[u8]>,
}

fn new_environment(rng: &mut impl Rng, name: &str, project: &Project, at: Millis) -> EnvDraft {
    let slug = environment_slug(name, rng);
    let (tier, external_url, auto_stop_at) = match name {
        "production" => ("production", Some(format!("https://{}.example.com", project.path)), None),
        "staging" => ("staging", Some(format!("https://staging.{}.example.com", project.path)), None),
        _ => ("development", Some(format!("https://{slug}.review.example.com")), Some(at + 7 * MS_PER_DAY)),
    };
    EnvDraft {
        slug,
        name: name.to_owned(),
        tier,
        external_url,
        created_at: at,
        updated_at: at,
        state: "available",
        auto_stop_at,
    }
}

/// Everything one job's JSON is made of.
struct PlannedJob<'a> {
    id: u64,
    plan: &'a JobPlan,
    /// (started, finished, queued ms, duration ms).
    timing: (Option<Millis>, Option<Millis>, Millis, Millis),
    pipeline: &'a Pipeline,
    project: &'a Project,
    user: &'a User,
    commit: Option<&'a CommitData>,
}

impl<'a> PlannedJob<'a> {
    fn record(&self, rng: &mut impl Rng) -> JobRecord<'a> {
        let plan = self.plan;
        let (started, finished, queued, duration) = self.timing;
        let ran = started.is_some();
        let artifacts = if ran {
            let mut list = Vec::new();
            if plan.stage == "build" {
                list.push(Artifact {
                    file_type: "archive",
                    size: rng.random_range(10_000..=90_000_000),
                    filename: "artifacts.zip",
                    file_format: Some("zip"),
                });
                list.push(Artifact {
                    file_type: "metadata",
                    size: rng.random_range(200..=9_000),
                    filename: "metadata.gz",
                    file_format: Some("gzip"),
                });
            }
            list.push(Artifact {
                file_type: "trace",
                size: rng.random_range(1_000..=2_000_000),
                filename: "job.log",
                file_format: None,
            });
            list
        } else {
            Vec::new()
        };
        let runner_id = 1 + rng.random_range(0..3u64);
        let created = self.pipeline.created_at;
        JobRecord {
            id: self.id,
            status: plan.status,
            stage: plan.stage,
            name: plan.name,
            ref_: &self.pipeline.ref_,
            tag: self.pipeline.tag,
            coverage: (plan.stage == "test" && plan.status == "success" && rng.random_bool(0.5))
                .then(|| f64::from(rng.random_range(5_000..=9_990u32)) / 100.0),
            allow_failure: plan.allow_failure,
            created_at: DateTime::utc(created),
            started_at: started.map(DateTime::utc),
            finished_at: finished.map(DateTime::utc),
            erased_at: None,
            duration: finished.map(|_| duration as f64 / 1000.0 + f64::from(rng.random_range(0..1000u32)) / 1e6),
            queued_duration: started.map(|_| queued as f64 / 1000.0 + f64::from(rng.random_range(0..1000u32)) / 1e6),
            user: JobUser::from(self.user),
            commit: self.commit.map(|c| c.record(false)),
            pipeline: self.pipeline.record(self.project),
            failure_reason: (plan.status == "failed").then(|| {
                ["script_failure", "script_failure", "runner_system_failure", "stuck_or_timeout_failure"]
                    [rng.random_range(0..4)]
            }),
            web_url: format!("{}/-/jobs/{}", self.project.web_url, self.id),
            project: JobProject { ci_job_token_scope_enabled: false },
            artifacts_file: (ran && plan.stage == "build")
                .then(|| ArtifactsFile { filename: "artifacts.zip", size: artifacts.first().map_or(0, |a| a.size) }),
            artifacts,
            runner: ran.then(|| Runner {
                id: runner_id,
                description: ["shared-runner-linux-1", "shared-runner-linux-2", "gpu-runner 🚀"]
                    [runner_id as usize - 1],
                ip_address: None,
                active: true,
                paused: false,
                is_shared: runner_id < 3,
                runner_type: if runner_id < 3 { "instance_type" } else { "group_type" },
                name: "gitlab-runner",
                online: true,
                status: "online",
            }),
            runner_manager: ran.then(|| RunnerManager {
                id: runner_id * 10,
                system_id: format!("s_{}", crate::text::hex(rng, 12)),
                version: "17.6.0",
                revision: "374d34fd",
                platform: "linux",
                architecture: "amd64",
                created_at: DateTime::utc(crate::world::epoch_start()),
                contacted_at: DateTime::utc(finished.or(started).unwrap_or(created)),
                ip_address: format!("10.0.{}.{}", runner_id, 10 + runner_id),
                status: "online",
            }),
            artifacts_expire_at: finished.filter(|_| plan.stage == "build").map(|f| DateTime::utc(f + 30 * MS_PER_DAY)),
            archived: false,
            tag_list: if plan.stage == "build" { vec!["docker", "linux"] } else { Vec::new() },
        }
    }
}

/// `GET /projects/:id/pipelines` parameters.
struct PipelineQuery<'q> {
    scope: Option<&'static str>,
    status: Option<&'static str>,
    source: Option<&'static str>,
    ref_: Option<&'q str>,
    sha: Option<&'q str>,
    username: Option<&'q str>,
    name: Option<&'q str>,
    yaml_errors: Option<bool>,
    updated: (Option<i64>, Option<i64>),
    created: (Option<i64>, Option<i64>),
    order: &'static str,
    desc: bool,
}

impl<'q> PipelineQuery<'q> {
    fn parse(q: &'q Query) -> Result<Self, ApiError> {
        Ok(Self {
            scope: q.choice("scope", &["running", "pending", "finished", "branches", "tags"])?,
            status: q.choice("status", &PIPELINE_STATUSES)?,
            source: q.choice("source", &PIPELINE_SOURCES)?,
            ref_: q.get("ref"),
            sha: q.get("sha"),
            username: q.get("username"),
            name: q.get("name"),
            yaml_errors: q.flag("yaml_errors")?,
            updated: (q.time("updated_after")?, q.time("updated_before")?),
            created: (q.time("created_after")?, q.time("created_before")?),
            order: q.choice("order_by", &["id", "status", "ref", "updated_at", "user_id"])?.unwrap_or("id"),
            desc: q.sort(true)?,
        })
    }

    fn matches(&self, p: &Pipeline, world: &World) -> bool {
        let within = |at: Millis, (after, before): (Option<i64>, Option<i64>)| {
            let us = at.saturating_mul(1000);
            after.is_none_or(|a| us >= a) && before.is_none_or(|b| us <= b)
        };
        let scope_ok = match self.scope {
            Some("running") => p.status == "running",
            Some("pending") => p.status == "pending",
            Some("finished") => matches!(p.status, "success" | "failed" | "canceled" | "skipped"),
            Some("branches") => !p.tag && !p.merge_request,
            Some("tags") => p.tag,
            _ => true,
        };
        scope_ok
            && self.status.is_none_or(|s| p.status == s)
            && self.source.is_none_or(|s| p.source == s)
            && self.ref_.is_none_or(|r| *p.ref_ == *r)
            && self.sha.is_none_or(|s| *p.sha == *s)
            && self.username.is_none_or(|u| world.user(p.user).is_some_and(|user| user.username.eq_ignore_ascii_case(u)))
            // Pipelines are not named in this world.
            && self.name.is_none()
            && self.yaml_errors.is_none_or(|y| p.yaml_errors == y)
            && within(p.updated_at, self.updated)
            && within(p.created_at, self.created)
    }
}

impl Ctx<'_> {
    /// The CI records of a project route: 404 unknown project, 403 CI/CD disabled.
    fn ci(&self, id_or_path: &str, needs_jobs: bool) -> Result<(&Project, &Ci), ApiError> {
        let index = self.project_at(id_or_path)?;
        let project = &self.world.projects()[index];
        if needs_jobs && !project.jobs_enabled {
            return Err(ApiError::Forbidden);
        }
        Ok((project, self.world.ci_of(index)))
    }

    /// `GET /projects/:id/pipelines`.
    pub(crate) fn pipelines(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = PipelineQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let (_, ci) = self.ci(id_or_path, true)?;
        let mut kept: Vec<&Pipeline> = ci.pipelines.iter().filter(|p| spec.matches(p, self.world)).collect();
        if matches!(spec.scope, Some("branches" | "tags")) {
            // The latest pipeline of each branch or tag.
            let mut latest: HashMap<&str, &Pipeline> = HashMap::new();
            for p in &kept {
                latest.insert(&p.ref_, p);
            }
            kept.retain(|p| latest.get(&*p.ref_).is_some_and(|l| l.id == p.id));
        }
        let username = |p: &Pipeline| self.world.user(p.user).map_or(0, |u| u.id);
        match spec.order {
            "status" => kept.sort_by(|a, b| (a.status, a.id).cmp(&(b.status, b.id))),
            "ref" => kept.sort_by(|a, b| (&a.ref_, a.id).cmp(&(&b.ref_, b.id))),
            "updated_at" => kept.sort_by_key(|p| (p.updated_at, p.id)),
            "user_id" => kept.sort_by_key(|p| (username(p), p.id)),
            _ => {}
        }
        if spec.desc {
            kept.reverse();
        }
        let items: Vec<&[u8]> = kept.iter().map(|p| &*p.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/jobs`: `scope` (one status or `scope[]=` several), highest id first;
    /// keyset pagination with `pagination=keyset` (by id, descending only).
    pub(crate) fn jobs(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let scopes = self.query.list("scope");
        if scopes.iter().any(|s| !JOB_STATUSES.contains(s)) {
            return Err(ApiError::bad_value("scope"));
        }
        self.query.flag("include_retried")?;
        let keyset = self.query.choice("pagination", &["keyset", "offset"])? == Some("keyset");
        // Jobs are ordered by id only; keyset pagination walks them highest first.
        self.query.choice("order_by", &["id"])?;
        let desc = self.query.sort(true)?;
        if keyset && !desc {
            return Err(ApiError::KeysetUnsupported);
        }
        let page = PageRequest::from_query(self.query)?;
        let (_, ci) = self.ci(id_or_path, true)?;
        let kept: Vec<&Job> = ci.jobs.iter().filter(|j| scopes.is_empty() || scopes.contains(&j.status)).collect();
        if keyset {
            let after = match self.query.get("cursor") {
                Some(cursor) => Some(parse_id_cursor(cursor).ok_or_else(|| ApiError::invalid("cursor"))?),
                None => None,
            };
            let items: Vec<(u64, &[u8])> = kept.iter().map(|j| (j.id, &*j.json)).collect();
            return Ok(cursor_page(&self.url, per_page(self.query)?, after, &items));
        }
        let mut items: Vec<&[u8]> = kept.iter().map(|j| &*j.json).collect();
        if !desc {
            items.reverse();
        }
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/environments`: `name` (exact), `search` (at least 3 characters; not
    /// with `name`), `states`.
    pub(crate) fn environments(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let name = self.query.get("name");
        let search = self.query.get("search");
        if name.is_some() && search.is_some() {
            return Err(ApiError::BadRequest("name, search are mutually exclusive".into()));
        }
        if search.is_some_and(|s| s.chars().count() < 3) {
            return Err(ApiError::BadRequest("search must be at least 3 characters".into()));
        }
        let states = self.query.choice("states", &["available", "stopping", "stopped"])?;
        let page = PageRequest::from_query(self.query)?;
        let (_, ci) = self.ci(id_or_path, false)?;
        let search = search.map(str::to_lowercase);
        let items: Vec<&[u8]> = ci
            .environments
            .iter()
            .filter(|e| name.is_none_or(|n| *e.name == *n))
            .filter(|e| search.as_deref().is_none_or(|s| e.name.to_lowercase().contains(s)))
            .filter(|e| states.is_none_or(|s| e.state == s))
            .map(|e| &*e.json)
            .collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/deployments`: `order_by` (`id` default, `iid`, `created_at`,
    /// `updated_at`, `finished_at`, `ref`), `sort` (default `asc`), `updated_after/before` (only
    /// with `order_by=updated_at`, as GitLab requires), `finished_after/before` (only with
    /// `order_by=finished_at`), `environment` (a name), `status`.
    pub(crate) fn deployments(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let q = self.query;
        let order =
            q.choice("order_by", &["id", "iid", "created_at", "updated_at", "finished_at", "ref"])?.unwrap_or("id");
        let desc = q.sort(false)?;
        let updated = (q.time("updated_after")?, q.time("updated_before")?);
        let finished = (q.time("finished_after")?, q.time("finished_before")?);
        let status = q.choice("status", &DEPLOYMENT_STATUSES)?;
        let environment = q.get("environment");
        if (updated.0.is_some() || updated.1.is_some()) && order != "updated_at" {
            return Err(ApiError::BadRequestMessage("`updated_at` filter requires `updated_at` sort".into()));
        }
        if (finished.0.is_some() || finished.1.is_some()) && order != "finished_at" {
            return Err(ApiError::BadRequestMessage("`finished_at` filter requires `finished_at` sort.".into()));
        }
        let page = PageRequest::from_query(q)?;
        let (_, ci) = self.ci(id_or_path, false)?;
        let within = |at: Option<Millis>, (after, before): (Option<i64>, Option<i64>)| {
            if after.is_none() && before.is_none() {
                return true;
            }
            at.is_some_and(|at| {
                let us = at.saturating_mul(1000);
                after.is_none_or(|a| us >= a) && before.is_none_or(|b| us <= b)
            })
        };
        let mut kept: Vec<&Deployment> = ci
            .deployments
            .iter()
            .filter(|d| status.is_none_or(|s| d.status == s))
            .filter(|d| environment.is_none_or(|name| *ci.environments[d.environment].name == *name))
            .filter(|d| within(Some(d.updated_at), updated) && within(d.finished_at, finished))
            .collect();
        match order {
            "created_at" => kept.sort_by_key(|d| (d.created_at, d.id)),
            "updated_at" => kept.sort_by_key(|d| (d.updated_at, d.id)),
            "finished_at" => kept.sort_by_key(|d| (d.finished_at, d.id)),
            "ref" => kept.sort_by(|a, b| (&a.ref_, a.id).cmp(&(&b.ref_, b.id))),
            _ => {}
        }
        if desc {
            kept.reverse();
        }
        let items: Vec<&[u8]> = kept.iter().map(|d| &*d.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }
}

impl Ci {
    /// The iids of the merge requests deployed within `(after, before)` (microseconds,
    /// inclusive) to the environment named `environment` (any environment when `None`).
    pub(crate) fn deployed(&self, environment: Option<&str>, after: Option<i64>, before: Option<i64>) -> Vec<u64> {
        let mut iids: Vec<u64> = self
            .deployed_merge_requests
            .iter()
            .filter(|(_, e, _)| environment.is_none_or(|name| *self.environments[*e].name == *name))
            .filter(|(_, _, at)| {
                let us = at.saturating_mul(1000);
                after.is_none_or(|a| us >= a) && before.is_none_or(|b| us <= b)
            })
            .map(|(iid, _, _)| *iid)
            .collect();
        iids.sort_unstable();
        iids.dedup();
        iids
    }
}

impl World {
    /// What `GET /projects/:id/pipelines` lists without parameters: every pipeline, newest first.
    pub fn pipelines(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.ci_of(index).pipelines.iter().rev().map(|p| &*p.json)))
    }

    /// What `GET /projects/:id/jobs` lists: every job, highest id first.
    pub fn jobs(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.ci_of(index).jobs.iter().map(|j| &*j.json)))
    }

    /// What `GET /projects/:id/environments` lists: every environment, by id.
    pub fn environments(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.ci_of(index).environments.iter().map(|e| &*e.json)))
    }

    /// What `GET /projects/:id/deployments` lists: every deployment, by id.
    pub fn deployments(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.ci_of(index).deployments.iter().map(|d| &*d.json)))
    }
}
