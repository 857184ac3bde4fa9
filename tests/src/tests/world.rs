//! The generated world: determinism, the standard shape's counts, the JSON fields GitLab emits.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::Value;

use crate::time::parse_datetime_micros;
use crate::{
    BIG_PROJECT, CI_DISABLED_PROJECT, DEMO_PROJECTS, EMPTY_REPOSITORY_PROJECT, ISSUES_DISABLED_PROJECT,
    MERGE_REQUESTS_DISABLED_PROJECT, World, WorldShape,
};

/// Fields of the reference TSV (rows without a filter) each record must carry
/// (`empty_Repo` is GitLab's `empty_repo`).
const PROJECT_FIELDS: &[&str] = &[
    "_links",
    "allow_merge_on_skipped_pipeline",
    "analytics_access_level",
    "auto_cancel_pending_pipelines",
    "auto_devops_deploy_strategy",
    "auto_devops_enabled",
    "autoclose_referenced_issues",
    "avatar_url",
    "build_timeout",
    "builds_access_level",
    "can_create_merge_request_in",
    "ci_allow_fork_pipelines_to_run_in_parent_project",
    "ci_config_path",
    "ci_default_git_depth",
    "ci_forward_deployment_enabled",
    "ci_job_token_scope_enabled",
    "ci_separated_caches",
    "compliance_frameworks",
    "container_expiration_policy",
    "container_registry_access_level",
    "container_registry_enabled",
    "container_registry_image_prefix",
    "created_at",
    "creator_id",
    "default_branch",
    "description",
    "emails_disabled",
    "empty_repo",
    "enforce_auth_checks_on_uploads",
    "external_authorization_classification_label",
    "forking_access_level",
    "forks_count",
    "http_url_to_repo",
    "id",
    "import_status",
    "issues_access_level",
    "issues_enabled",
    "jobs_enabled",
    "keep_latest_artifact",
    "last_activity_at",
    "lfs_enabled",
    "merge_commit_template",
    "merge_method",
    "merge_requests_access_level",
    "merge_requests_enabled",
    "name",
    "name_with_namespace",
    "namespace",
    "only_allow_merge_if_all_discussions_are_resolved",
    "only_allow_merge_if_pipeline_succeeds",
    "open_issues_count",
    "operations_access_level",
    "packages_enabled",
    "pages_access_level",
    "path",
    "path_with_namespace",
    "permissions",
    "printing_merge_request_link_enabled",
    "public_jobs",
    "readme_url",
    "remove_source_branch_after_merge",
    "repository_access_level",
    "request_access_enabled",
    "requirements_access_level",
    "requirements_enabled",
    "resolve_outdated_diff_discussions",
    "restrict_user_defined_variables",
    "runner_token_expiration_interval",
    "security_and_compliance_access_level",
    "security_and_compliance_enabled",
    "service_desk_enabled",
    "shared_runners_enabled",
    "shared_with_groups",
    "snippets_access_level",
    "snippets_enabled",
    "squash_commit_template",
    "squash_option",
    "ssh_url_to_repo",
    "star_count",
    "suggestion_commit_message",
    "tag_list",
    "topics",
    "web_url",
    "wiki_access_level",
    "wiki_enabled",
    "archived",
    "visibility",
    "updated_at",
];

const ISSUE_FIELDS: &[&str] = &[
    "_links",
    "assignee",
    "assignees",
    "author",
    "blocking_issues_count",
    "closed_at",
    "closed_by",
    "created_at",
    "description",
    "discussion_locked",
    "downvotes",
    "has_tasks",
    "id",
    "iid",
    "labels",
    "merge_requests_count",
    "milestone",
    "moved_to_id",
    "project_id",
    "references",
    "service_desk_reply_to",
    "severity",
    "task_completion_status",
    "task_status",
    "time_stats",
    "title",
    "type",
    "updated_at",
    "upvotes",
    "user_notes_count",
    "web_url",
    "state",
    "confidential",
    "due_date",
    "issue_type",
];

const MERGE_REQUEST_FIELDS: &[&str] = &[
    "allow_collaboration",
    "allow_maintainer_to_push",
    "approvals_before_merge",
    "assignee",
    "assignees",
    "author",
    "blocking_discussions_resolved",
    "closed_at",
    "closed_by",
    "created_at",
    "description",
    "discussion_locked",
    "downvotes",
    "draft",
    "force_remove_source_branch",
    "has_conflicts",
    "id",
    "iid",
    "labels",
    "merge_commit_sha",
    "merge_status",
    "merge_user",
    "merge_when_pipeline_succeeds",
    "merged_at",
    "merged_by",
    "milestone",
    "project_id",
    "references",
    "reviewers",
    "sha",
    "should_remove_source_branch",
    "source_project_id",
    "squash",
    "squash_commit_sha",
    "target_project_id",
    "task_completion_status",
    "time_stats",
    "title",
    "updated_at",
    "upvotes",
    "user_notes_count",
    "web_url",
    "work_in_progress",
    "state",
    "source_branch",
    "target_branch",
];

fn has_fields(value: &Value, fields: &[&str], what: &str) {
    let object = value.as_object().expect("a JSON object");
    for field in fields {
        assert!(object.contains_key(*field), "{what} lacks `{field}`: {value}");
    }
}

/// Every byte the world renders, in a fixed order.
fn all_json(world: &World) -> Vec<u8> {
    let mut out = Vec::new();
    for g in world.groups() {
        out.extend_from_slice(&g.json);
    }
    for p in world.projects() {
        out.extend_from_slice(&p.json);
        let index = world.project_index(&p.id.to_string()).unwrap();
        let records = world.records(index);
        for r in &records.issues.items {
            out.extend_from_slice(&r.json);
        }
        for r in &records.merge_requests.items {
            out.extend_from_slice(&r.json);
        }
        let id = p.id;
        let mut lists = vec![
            world.all_commits(id),
            world.branches(id),
            world.tags(id),
            world.releases(id),
            world.pipelines(id),
            world.jobs(id),
            world.environments(id),
            world.deployments(id),
            world.project_labels(id),
            world.project_milestones(id),
            world.project_members(id),
        ];
        for iid in 1..=records.issues.items.len().min(5) as u64 {
            lists.push(world.issue_notes(id, iid));
        }
        for iid in 1..=records.merge_requests.items.len() as u64 {
            lists.push(world.merge_request_notes(id, iid));
            lists.push(vec![world.merge_request_approvals(id, iid)]);
        }
        for list in lists {
            out.extend(serde_json::to_vec(&list).unwrap());
        }
    }
    for g in world.groups() {
        for list in [world.group_labels(g.id), world.group_milestones(g.id), world.group_members(g.id)] {
            out.extend(serde_json::to_vec(&list).unwrap());
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let shape = WorldShape::small();
    let a = all_json(&World::generate(42, &shape));
    let b = all_json(&World::generate(42, &shape));
    let c = all_json(&World::generate(43, &shape));
    assert!(a == b, "same seed, different JSON");
    assert!(a != c, "different seed, same JSON");
    // Structure does not depend on the seed: same paths and project ids.
    let (w1, w2) = (World::generate(1, &shape), World::generate(2, &shape));
    let ids = |w: &World| -> Vec<(u64, String)> {
        w.projects().iter().map(|p| (p.id, p.path_with_namespace.clone())).collect()
    };
    assert_eq!(ids(&w1), ids(&w2));
}

#[test]
fn records_do_not_depend_on_access_order() {
    let shape = WorldShape::small();
    let w1 = World::generate(7, &shape);
    let w2 = World::generate(7, &shape);
    let demo = w1.project_by_ref("demo/api").unwrap().id;
    let first = w1.issues(demo).to_vec();
    let (jobs, notes) = (w1.jobs(demo), w1.issue_notes(demo, 2));
    // In w2, touch every other project first, and its other data before its jobs and notes.
    for p in w2.projects().iter().rev() {
        let _ = w2.merge_requests(p.id);
        let _ = w2.deployments(p.id);
        let _ = w2.issue_notes(p.id, 1);
    }
    assert_eq!(first, w2.issues(demo));
    assert_eq!(jobs, w2.jobs(demo));
    assert_eq!(notes, w2.issue_notes(demo, 2));
}

#[test]
fn standard_shape_counts() {
    let started = Instant::now();
    let world = World::generate(42, &WorldShape::standard());
    let generated = started.elapsed();
    eprintln!("standard world generated in {generated:?}");
    assert!(generated.as_secs_f64() < 2.0, "generation took {generated:?}");

    let acme = world.group_by_ref("acme").expect("acme");
    assert_eq!(acme.parent_id, None);
    assert_eq!(world.projects_in_group(acme.id, true).len(), 150);
    assert!(!world.projects_in_group(acme.id, false).is_empty());
    let deep = world.group_by_ref("acme/platform/infra/k8s").expect("4 levels");
    let infra = world.group_by_ref("acme/platform/infra");
    assert_eq!(deep.parent_id, infra.map(|g| g.id));
    for path in ["acme/platform", "acme/platform/infra", "acme/apps", "acme/apps/mobile"] {
        assert!(world.group_by_ref(path).is_some(), "{path}");
    }

    let big = world.project_by_ref(BIG_PROJECT).expect("bigco/monorepo");
    let issues = world.issues(big.id);
    assert_eq!(issues.len(), 12_345);
    assert_eq!(world.merge_requests(big.id).len(), 300);
    let open = issues.iter().filter(|i| i["state"] == "opened").count();
    assert_eq!(open, big.open_issues_count);
    assert_eq!(world.project_json(big.id)["open_issues_count"], open);

    for path in DEMO_PROJECTS {
        let p = world.project_by_ref(path).expect(path);
        assert!((50..=250).contains(&world.issues(p.id).len()), "{path}");
        assert!((20..=60).contains(&world.merge_requests(p.id).len()), "{path}");
    }

    let disabled = world.project_by_ref(ISSUES_DISABLED_PROJECT).unwrap();
    let json = world.project_json(disabled.id);
    assert_eq!(json["issues_enabled"], false);
    assert_eq!(json["issues_access_level"], "disabled");
    let no_mrs = world.project_by_ref(MERGE_REQUESTS_DISABLED_PROJECT).unwrap();
    assert_eq!(world.project_json(no_mrs.id)["merge_requests_enabled"], false);
    // The handbook: no CI/CD, an empty repository (so no default branch yet).
    let handbook = world.project_json(world.project_by_ref(CI_DISABLED_PROJECT).unwrap().id);
    assert_eq!(handbook["jobs_enabled"], false);
    assert_eq!(handbook["builds_access_level"], "disabled");
    assert_eq!(handbook["empty_repo"], true);
    assert_eq!(handbook["default_branch"], Value::Null);
    assert_eq!(world.project_by_ref(EMPTY_REPOSITORY_PROJECT).unwrap().id, no_mrs.id);

    // Ids of the records generated later are unique across the world.
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    for p in world.projects() {
        for (kind, list) in [
            ("pipeline", world.pipelines(p.id)),
            ("job", world.jobs(p.id)),
            ("environment", world.environments(p.id)),
            ("deployment", world.deployments(p.id)),
            ("label", world.project_labels(p.id).into_iter().filter(|l| l["is_project_label"] == true).collect()),
            ("milestone", world.project_milestones(p.id)),
        ] {
            for record in list {
                assert!(seen.insert((kind, record["id"].as_u64().unwrap())), "duplicate {kind} id: {record}");
            }
        }
    }
    for g in world.groups() {
        for record in world.group_milestones(g.id) {
            assert!(seen.insert(("milestone", record["id"].as_u64().unwrap())), "duplicate milestone id: {record}");
        }
    }

    // Group and project ids are distinct.
    let groups: HashSet<u64> = world.groups().iter().map(|g| g.id).collect();
    assert!(world.projects().iter().all(|p| !groups.contains(&p.id)));
    // Paths and ids are unique.
    let paths: HashSet<&str> = world.projects().iter().map(|p| p.path_with_namespace.as_str()).collect();
    assert_eq!(paths.len(), world.projects().len());
}

fn micros(v: &Value) -> i64 {
    parse_datetime_micros(v.as_str().expect("a date-time string")).expect("ISO 8601")
}

#[test]
fn records_are_consistent_and_complete() {
    let world = World::generate(42, &WorldShape::standard());
    let (lo, hi) = (parse_datetime_micros("2019-01-01").unwrap(), parse_datetime_micros("2026-01-01").unwrap());
    let mut issue_ids = HashSet::new();
    let mut mr_ids = HashSet::new();
    let mut offsets = 0;
    for p in world.projects() {
        let pj = world.project_json(p.id);
        has_fields(pj, PROJECT_FIELDS, "project");
        for key in ["id", "name", "path", "kind", "full_path", "parent_id", "avatar_url", "web_url"] {
            assert!(pj["namespace"].get(key).is_some(), "namespace.{key}");
        }
        let last_activity = pj["last_activity_at"].as_str().unwrap();
        offsets += usize::from(!last_activity.ends_with('Z'));
        for (n, issue) in world.issues(p.id).iter().enumerate() {
            has_fields(issue, ISSUE_FIELDS, "issue");
            assert_eq!(issue["iid"], n as u64 + 1);
            assert_eq!(issue["project_id"], p.id);
            assert!(issue_ids.insert(issue["id"].as_u64().unwrap()), "duplicate issue id");
            let (c, u) = (micros(&issue["created_at"]), micros(&issue["updated_at"]));
            assert!(lo <= c && c <= u && u < hi, "{issue}");
            match issue["state"].as_str().unwrap() {
                "opened" => assert!(issue["closed_at"].is_null() && issue["closed_by"].is_null()),
                "closed" => {
                    let closed = micros(&issue["closed_at"]);
                    assert!(c <= closed && closed <= u);
                    assert!(issue["closed_by"]["username"].is_string());
                }
                other => panic!("state {other}"),
            }
            if let Some(due) = issue["due_date"].as_str() {
                assert_eq!(due.len(), 10);
            }
        }
        for (n, mr) in world.merge_requests(p.id).iter().enumerate() {
            has_fields(mr, MERGE_REQUEST_FIELDS, "merge request");
            assert_eq!(mr["iid"], n as u64 + 1);
            assert!(mr_ids.insert(mr["id"].as_u64().unwrap()), "duplicate MR id");
            let (c, u) = (micros(&mr["created_at"]), micros(&mr["updated_at"]));
            assert!(lo <= c && c <= u && u < hi, "{mr}");
            if mr["state"] == "merged" {
                assert!(mr["merged_by"]["id"].is_u64());
                let merged = mr["merged_at"].as_str().unwrap();
                offsets += usize::from(!merged.ends_with('Z'));
                assert!(micros(&mr["merged_at"]) <= u);
            } else {
                assert!(mr["merged_at"].is_null());
            }
        }
    }
    assert!(offsets > 10, "too few offset date-times: {offsets}");
    // Unicode and null descriptions are present.
    let demo = world.project_by_ref("demo/website").unwrap();
    let issues = world.issues(demo.id);
    assert!(issues.iter().any(|i| i["description"].is_null()));
    let names: String = world.users().iter().map(|u| u.name.as_str()).collect();
    for name in ["Zoë Ångström", "李小龙", "José Ñúñez"] {
        assert!(names.contains(name));
    }
}

#[test]
fn prerender_standard_world() {
    let world = World::generate(42, &WorldShape::standard());
    let started = Instant::now();
    world.prerender();
    eprintln!(
        "every project's records, repository, CI, labels, members and approvals rendered in {:?}",
        started.elapsed()
    );
}
