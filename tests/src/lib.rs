//! # gitlab-sim: a GitLab v4 REST API simulator
//!
//! A deterministic, seeded stand-in for a GitLab instance, served over real HTTP/1.1 on a
//! loopback port, for the integration tests, the demo and benchmarks. It answers the read
//! endpoints a GitLab source connector uses, for every object of the catalogue: groups and
//! projects, issues and merge requests (with their notes and approvals), the repository
//! (commits, branches, tags, releases), CI/CD (pipelines, jobs, environments, deployments),
//! labels, milestones and members of projects and groups. It uses the JSON shapes, filters,
//! pagination headers, keyset pagination and error bodies of GitLab's documentation, and records
//! every request it receives.
//!
//! ```no_run
//! use gitlab_sim::{SimConfig, Simulator, WorldShape};
//!
//! let sim = Simulator::start(SimConfig {
//!     token: Some("glpat-test".into()),
//!     world: WorldShape::small(),
//!     ..SimConfig::default()
//! })?;
//! let url = format!("{}/api/v4/projects/demo%2Fapi/issues?per_page=100", sim.base_url());
//! // ... GET it with `PRIVATE-TOKEN: glpat-test` ...
//! let api = sim.world().project_by_ref("demo/api").unwrap();
//! assert!(!sim.world().branches(api.id).is_empty());
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! ## How data flows
//!
//! 1. `config`: a [`SimConfig`] (seed, token, [`WorldShape`]).
//! 2. `world`: [`World::generate`] builds users, groups, projects, labels and milestones from the
//!    seed, reserves the ids of what comes later, and renders project and group JSON (`records`).
//!    The rest of a project's data is generated the first time a request (or an accessor such as
//!    [`World::jobs`]) needs it, from RNG streams of its own, and kept as rendered JSON bytes
//!    next to the few attributes filters look at:
//!    - `content`: issues and merge requests;
//!    - `repository`: commits, branches, tags, releases, made from the merge requests;
//!    - `ci`: pipelines, jobs, environments, deployments, made from the repository;
//!    - `labels`: labels and milestones of projects and groups; `members`: memberships;
//!    - `discussions`: notes (per issue or merge request) and merge request approvals.
//! 3. `server`: [`Simulator`] binds a port and runs axum; every request goes to `routes`, which
//!    logs it (`recorder`), checks the token (`auth`), has the data it reads generated off the
//!    async workers if needed, parses the query (`query`, `filters`) and answers a page of
//!    pre-rendered records (`pagination`) or a GitLab error body (`reply`). The handlers of each
//!    object live with its data (`repository`, `ci`, `labels`, `members`, `discussions`).
//!    `cache` keeps the filtered record lists of issues and merge requests (a client walking pages
//!    filters once) and whole successful list answers, gzipped as sent (a page asked again costs
//!    a lookup); both sit below the log and the faults and change no byte of an answer.
//!
//! Texts come from `text`; dates are formatted and parsed by `time`. On its way out, an answer is
//! gzip-compressed when the client accepts it (`encoding`), and `faults` may delay it, answer 429 or
//! 5xx instead, or break its body (see [`Faults`]).
//! `oauth` is GitLab's OAuth2 provider (`/oauth/authorize`, `/oauth/token`) and checks the access
//! tokens it issued.

mod auth;
mod cache;
mod ci;
pub mod config;
mod content;
mod discussions;
mod encoding;
pub mod faults;
mod filters;
mod labels;
mod members;
pub mod oauth;
pub mod pagination;
mod query;
pub mod recorder;
mod records;
mod reply;
mod repository;
mod routes;
pub mod server;
mod text;
pub mod time;
pub mod world;

pub use config::{BigShape, GroupShape, SimConfig, WorldShape};
pub use faults::{FaultCounts, Faults, RateLimit, ThrottleHeaders};
pub use oauth::OAuthServer;
pub use recorder::RecordedRequest;
pub use server::{Simulator, serve};
pub use time::{Date, DateTime};
pub use world::{
    BIG_PROJECT, CI_DISABLED_PROJECT, DEMO_PROJECTS, EMPTY_REPOSITORY_PROJECT, FIRST_GROUP_ID, FIRST_JOB_ID,
    FIRST_MERGE_REQUEST_ID, FIRST_PIPELINE_ID, FIRST_PROJECT_ID, Group, ISSUES_DISABLED_PROJECT,
    MERGE_REQUESTS_DISABLED_PROJECT, Milestone, Project, TOKEN_USER_ID, User, WEB_BASE, World,
};

#[cfg(test)]
mod tests;
