//! What a simulator is asked to be: [`SimConfig`] (seed, token, shape, gzip, faults) and
//! [`WorldShape`] (how big the generated world is).
//!
//! The shape fixes the *structure* of the world (which groups and projects exist, their paths and
//! ids, how many records the big projects hold); the seed fixes the *contents* (texts, dates,
//! people, states, the per-project record counts drawn from the ranges below). Both go into
//! [`crate::World::generate`], which is a pure function of them.

use std::ops::RangeInclusive;

use crate::faults::Faults;

/// How a [`crate::Simulator`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Seed of the generated data (default 42).
    pub seed: u64,
    /// `Some(t)`: every request must carry `t` (`PRIVATE-TOKEN: t` or `Authorization: Bearer t`),
    /// else 401. `None`: anonymous requests may read everything.
    pub token: Option<String>,
    /// How big the world is (default [`WorldShape::standard`]).
    pub world: WorldShape,
    /// Compress JSON answers when the client accepts gzip, as GitLab does (default true).
    pub gzip: bool,
    /// Faults to inject (default none); their draws use [`SimConfig::seed`].
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { seed: 42, token: None, world: WorldShape::standard(), gzip: true, faults: Faults::default() }
    }
}

/// One group under `acme`, and how many projects sit directly in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupShape {
    /// Path below `acme` (`""` is `acme` itself, `"platform/infra"` is `acme/platform/infra`).
    /// Parents must come before their children.
    pub path: String,
    /// Projects directly in this group.
    pub projects: usize,
}

/// The `bigco/monorepo` project: one project with very many records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigShape {
    /// Issues of `bigco/monorepo` (standard: 12,345, more than GitLab's 10,000 counting limit).
    pub issues: usize,
    /// Merge requests of `bigco/monorepo`.
    pub merge_requests: usize,
}

/// How many users, groups, projects and records the world has.
///
/// Fixed projects, whatever the shape: `acme/handbook` is the first project of `acme` (merge
/// requests disabled) and `acme/platform/secrets-vault` the first project of `acme/platform`
/// (issues disabled), when those groups have at least one project; `demo` always holds
/// `demo/website`, `demo/api` and `demo/mobile-app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldShape {
    /// Number of users (ids 1..=users; at most 40, the built-in cast).
    pub users: usize,
    /// `acme` and its subgroups, parents first.
    pub acme_groups: Vec<GroupShape>,
    /// Issues of each `acme` project, drawn from this range.
    pub acme_issues: RangeInclusive<usize>,
    /// Merge requests of each `acme` project, drawn from this range.
    pub acme_merge_requests: RangeInclusive<usize>,
    /// `bigco/monorepo`, or no `bigco` group at all.
    pub bigco: Option<BigShape>,
    /// Issues of each `demo` project, drawn from this range.
    pub demo_issues: RangeInclusive<usize>,
    /// Merge requests of each `demo` project, drawn from this range.
    pub demo_merge_requests: RangeInclusive<usize>,
}

impl WorldShape {
    /// The full world: 150 projects under `acme` (nested four levels deep), `bigco/monorepo` with
    /// 12,345 issues, and `demo`.
    pub fn standard() -> Self {
        let groups = [
            ("", 12),
            ("platform", 20),
            ("platform/infra", 25),
            ("platform/infra/k8s", 8),
            ("platform/data", 15),
            ("apps", 10),
            ("apps/mobile", 22),
            ("apps/web", 30),
            ("security", 8),
        ];
        Self {
            users: 40,
            acme_groups: groups
                .iter()
                .map(|&(path, projects)| GroupShape { path: path.to_owned(), projects })
                .collect(),
            acme_issues: 0..=30,
            acme_merge_requests: 0..=20,
            bigco: Some(BigShape { issues: 12_345, merge_requests: 300 }),
            demo_issues: 50..=250,
            demo_merge_requests: 20..=60,
        }
    }

    /// A small world for the demo and quick tests: `demo` plus `acme` with three projects and one
    /// subgroup `acme/platform` with two (one of them `acme/platform/secrets-vault`); no `bigco`.
    pub fn small() -> Self {
        Self {
            users: 40,
            acme_groups: vec![
                GroupShape { path: String::new(), projects: 3 },
                GroupShape { path: "platform".to_owned(), projects: 2 },
            ],
            acme_issues: 0..=30,
            acme_merge_requests: 0..=20,
            bigco: None,
            demo_issues: 50..=250,
            demo_merge_requests: 20..=60,
        }
    }

    /// Number of projects in `acme` and its subgroups.
    pub fn acme_project_count(&self) -> usize {
        self.acme_groups.iter().map(|g| g.projects).sum()
    }
}

impl Default for WorldShape {
    fn default() -> Self {
        Self::standard()
    }
}
