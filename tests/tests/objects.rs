//! Every object of the catalogue, read end to end (the real host, the real gitlab.wasm, the
//! simulator over HTTP): exactly the simulator's records arrive, each field of its declared type
//! and equal to GitLab's value after normalization; forbidden and missing partitions are skipped
//! with their reason while the run goes on; and filters reach GitLab as its query parameters.
//!
//! One table drives it: each object and where the simulator keeps the records GitLab would list
//! for it (the library's accessors, e.g. `World::branches`).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::thread;

use gitlab_sim::{CI_DISABLED_PROJECT, EMPTY_REPOSITORY_PROJECT, ISSUES_DISABLED_PROJECT, World};
use serde_json::Value;
use support::{
    TOKEN, artifacts, assert_typed_as, field_types, host, host_run, key_of, normalized, read_jsonl_object,
    small_simulator, temp_dir,
};

/// Where an object's records come from: per project, per group, or once for the instance.
#[derive(Clone, Copy)]
enum Source {
    Project(fn(&World, u64) -> Vec<Value>),
    Group(fn(&World, u64) -> Vec<Value>),
    Instance(fn(&World) -> Vec<Value>),
}

/// Every object and the simulator's records of it.
const OBJECTS: &[(&str, Source)] = &[
    ("branch", Source::Project(World::branches)),
    ("commit", Source::Project(World::commits)),
    ("group", Source::Instance(|w| w.groups().iter().map(|g| w.group_json(g.id)).collect())),
    ("group_member", Source::Group(World::group_members)),
    ("group_label", Source::Group(World::group_labels)),
    ("group_milestone", Source::Group(World::group_milestones)),
    ("issue", Source::Project(|w, id| w.issues(id).to_vec())),
    ("job", Source::Project(World::jobs)),
    ("pipeline", Source::Project(World::pipelines)),
    ("project", Source::Instance(|w| w.projects().iter().map(|p| w.project_json(p.id).clone()).collect())),
    ("project_label", Source::Project(World::project_labels)),
    ("project_member", Source::Project(World::project_members)),
    ("project_merge_request", Source::Project(|w, id| w.merge_requests(id).to_vec())),
    ("project_milestone", Source::Project(World::project_milestones)),
    ("release", Source::Project(World::releases)),
    ("tag", Source::Project(World::tags)),
    ("deployment", Source::Project(World::deployments)),
    ("environment", Source::Project(World::environments)),
    // Read per parent: the children of every issue or merge request of the project.
    ("issue_note", Source::Project(|w, id| per_iid(w.issues(id), |iid| w.issue_notes(id, iid)))),
    (
        "merge_request_note",
        Source::Project(|w, id| per_iid(w.merge_requests(id), |iid| w.merge_request_notes(id, iid))),
    ),
    (
        "merge_request_approval",
        Source::Project(|w, id| per_iid(w.merge_requests(id), |iid| vec![w.merge_request_approvals(id, iid)])),
    ),
];

/// The children of every parent, by the parent's `iid`.
fn per_iid(parents: &[Value], children: impl Fn(u64) -> Vec<Value>) -> Vec<Value> {
    parents.iter().flat_map(|p| children(p["iid"].as_u64().expect("a parent with an iid"))).collect()
}

/// Fields GitLab sends as `null` (or leaves out) for every record of this world, with why.
const ALWAYS_NULL: &[(&str, &str)] = &[
    // Nobody uploaded an avatar; no group uses LDAP, file templates or IP restrictions; unset
    // group switches are `null`.
    ("group", "avatar_url"),
    ("group", "auto_devops_enabled"),
    ("group", "mentions_disabled"),
    ("group", "ldap_cn"),
    ("group", "ldap_access"),
    ("group", "file_template_project_id"),
    ("group", "ip_restriction_ranges"),
    ("project", "avatar_url"),
    ("project", "ci_config_path"),
    ("project", "merge_commit_template"),
    ("project", "squash_commit_template"),
    ("project", "suggestion_commit_message"),
    ("project", "runner_token_expiration_interval"),
    // No issue was moved; the small world's projects have no service desk issue.
    ("issue", "moved_to_id"),
    ("issue", "service_desk_reply_to"),
    ("project_merge_request", "approvals_before_merge"),
    // Counts come only with `with_counts=true`, seat use only with `show_seat_info=true`.
    ("group_label", "open_issues_count"),
    ("group_label", "closed_issues_count"),
    ("group_label", "open_merge_requests_count"),
    ("project_label", "open_issues_count"),
    ("project_label", "closed_issues_count"),
    ("project_label", "open_merge_requests_count"),
    ("group_member", "is_using_seat"),
    ("project_member", "is_using_seat"),
    // SAML identities belong to group memberships.
    ("project_member", "group_saml_identity"),
    // GitLab keeps `attachment` for notes of long ago; uploads are links in the body now.
    ("issue_note", "attachment"),
    ("merge_request_note", "attachment"),
];

/// `host objects --json`: each object's primary key.
fn primary_keys() -> HashMap<String, Vec<String>> {
    static KEYS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    KEYS.get_or_init(read_primary_keys).clone()
}

fn read_primary_keys() -> HashMap<String, Vec<String>> {
    let run = host(&["objects", "--plugin", artifacts().gitlab_wasm.to_str().unwrap(), "--json"], None);
    assert!(run.success, "{}", run.output());
    let objects: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    objects
        .iter()
        .map(|o| {
            let key = o["primary_key"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
            (o["name"].as_str().unwrap().to_owned(), key)
        })
        .collect()
}

/// GitLab's records of `source` under the given projects or groups, with the scope id each
/// record carries (GitLab leaves `project_id` / `group_id` out of some objects; the connector
/// adds it).
fn expected_records(world: &World, source: Source, projects: &[u64], groups: &[u64]) -> Vec<Value> {
    let with_scope = |mut records: Vec<Value>, field: &str, id: u64| {
        for r in &mut records {
            if r.get(field).is_none_or(Value::is_null) {
                r[field] = Value::from(id);
            }
        }
        records
    };
    match source {
        Source::Project(records) => {
            projects.iter().flat_map(|&id| with_scope(records(world, id), "project_id", id)).collect()
        }
        Source::Group(records) => {
            groups.iter().flat_map(|&id| with_scope(records(world, id), "group_id", id)).collect()
        }
        Source::Instance(records) => records(world),
    }
}

/// The records written for `object` equal `expected`: the same primary keys, no record twice,
/// every field of its declared type and equal to GitLab's value, normalized.
fn assert_same_records(object: &str, key: &[String], got: &[Value], expected: &[Value]) -> usize {
    let types = field_types(object);
    assert_typed_as(object, &types, got);
    let by_key: HashMap<String, &Value> = expected.iter().map(|r| (key_of(r, key), r)).collect();
    assert_eq!(by_key.len(), expected.len(), "{object}: the simulator's keys are not unique");
    let got_keys: BTreeSet<String> = got.iter().map(|r| key_of(r, key)).collect();
    assert_eq!(got_keys.len(), got.len(), "{object}: a record arrived twice");
    let want: BTreeSet<String> = by_key.keys().cloned().collect();
    assert_eq!(got_keys, want, "{object}: not exactly the simulator's records");
    for record in got {
        let original = by_key[&key_of(record, key)];
        for (field, kind) in &types {
            let want = normalized(original.get(field), kind);
            assert_eq!(record[field], want, "{object} {}: {field} ({kind})", key_of(record, key));
        }
    }
    got.len()
}

/// Fields of `object` that are null in every record.
fn always_null(object: &str, got: &[Value]) -> Vec<String> {
    let types = field_types(object);
    let mut null: Vec<String> = types.keys().filter(|f| got.iter().all(|r| r[f.as_str()].is_null())).cloned().collect();
    null.sort();
    null
}

fn jsonl(dir: &std::path::Path, object: &str) -> Vec<Value> {
    read_jsonl_object(dir, object)
}

/// The summary line of a partition.
fn summary_line<'a>(stdout: &'a str, object: &str, scope: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{object} project {scope} ")) || l.starts_with(&format!("{object} {scope} ")))
        .unwrap_or_else(|| panic!("no summary line for {object} {scope}:\n{stdout}"))
}

#[test]
fn every_object_over_the_instance_reads_exactly_the_simulators_records() {
    let sim = small_simulator();
    let dir = temp_dir();
    let out = dir.path().join("out");
    let dest = format!("jsonl:{}", out.display());
    let mut args = vec!["--instance", "--dest", dest.as_str()];
    for (object, _) in OBJECTS {
        args.extend(["--object", object]);
    }
    let run = host_run(&sim, &args, Some(TOKEN));
    assert!(run.success, "{}", run.output());

    // Forbidden and missing partitions are skipped with their reason; the others are read.
    for (object, project, reason) in [
        ("pipeline", CI_DISABLED_PROJECT, "403 Forbidden"),
        ("job", CI_DISABLED_PROJECT, "403 Forbidden"),
        ("commit", EMPTY_REPOSITORY_PROJECT, "404 Repository Not Found"),
        ("issue", ISSUES_DISABLED_PROJECT, "403 Forbidden"),
    ] {
        let line = summary_line(&run.stdout, object, project);
        assert!(line.contains("skipped") && line.contains(reason), "{line}");
    }
    let skipped = run.stdout.lines().filter(|l| l.contains("skipped")).count();
    assert_eq!(
        skipped, 8,
        "pipeline, job, commit, merge requests, their notes and approvals of the handbook; issues and their \
         notes of the vault:\n{}",
        run.stdout
    );

    let world = sim.world();
    let projects: Vec<u64> = world.projects().iter().map(|p| p.id).collect();
    let groups: Vec<u64> = world.groups().iter().map(|g| g.id).collect();
    let keys = primary_keys();
    let mut total = 0;
    for (object, source) in OBJECTS {
        let got = jsonl(&out, object);
        let expected = expected_records(world, *source, &projects, &groups);
        assert!(!expected.is_empty(), "{object}: the small world has none");
        total += assert_same_records(object, &keys[*object], &got, &expected);
        let null: Vec<String> =
            always_null(object, &got).into_iter().filter(|f| !ALWAYS_NULL.contains(&(*object, f.as_str()))).collect();
        assert!(null.is_empty(), "{object}: always null, is the field misnamed? {null:?}");
    }
    assert!(run.stdout.contains(&format!("total: {total} records")), "{}", run.stdout);
}

#[test]
fn objects_under_a_group_read_the_group_its_subgroups_and_their_projects() {
    let sim = small_simulator();
    let dir = temp_dir();
    let out = dir.path().join("out");
    let dest = format!("jsonl:{}", out.display());
    let read = ["group", "group_label", "group_member", "group_milestone", "release", "project_member", "environment"];
    let mut args = vec!["--group", "acme", "--dest", dest.as_str()];
    for object in read {
        args.extend(["--object", object]);
    }
    let run = host_run(&sim, &args, Some(TOKEN));
    assert!(run.success, "{}", run.output());

    let world = sim.world();
    let acme = world.group_by_ref("acme").unwrap();
    let tree = world.group_and_descendants(acme.id, true);
    assert!(tree.len() > 1, "acme has subgroups");
    let projects: Vec<u64> = world.projects_in_group(acme.id, true).iter().map(|p| p.id).collect();
    let keys = primary_keys();
    for object in read {
        let source = OBJECTS.iter().find(|(o, _)| *o == object).unwrap().1;
        let expected = match (object, source) {
            // The group itself, then every group below it.
            ("group", _) => tree.iter().map(|&id| world.group_json(id)).collect(),
            // Group objects under the group itself.
            (_, Source::Group(_)) => expected_records(world, source, &[], &[acme.id]),
            // Project objects under every project of the group and its subgroups.
            _ => expected_records(world, source, &projects, &[]),
        };
        assert_same_records(object, &keys[object], &jsonl(&out, object), &expected);
    }
}

/// One end-to-end filter case: an object read under a scope with filters, and the GitLab query
/// parameters the requests for its records must carry.
struct Case {
    object: &'static str,
    scope: &'static [&'static str],
    filters: &'static [&'static str],
    params: &'static [(&'static str, &'static str)],
}

/// A handful of filter rows per object, with the values `--filter` takes and the parameters
/// GitLab must receive (date-times in UTC with milliseconds, lists as `key[]`).
const CASES: &[Case] = &[
    Case {
        object: "branch",
        scope: &["--project", "demo/api"],
        filters: &["search = ^fix"],
        params: &[("search", "^fix")],
    },
    Case {
        object: "commit",
        scope: &["--project", "demo/api"],
        filters: &[
            "since_until between 2021-01-01 and 2024-06-30T12:00:00+02:00",
            "first_parent = true",
            "with_stats = true",
            "trailers = true",
            "order = topo",
            "path = src",
            "all = false",
        ],
        params: &[
            ("since", "2021-01-01T00:00:00.000Z"),
            ("until", "2024-06-30T10:00:00.000Z"),
            ("first_parent", "true"),
            ("with_stats", "true"),
            ("trailers", "true"),
            ("order", "topo"),
            ("path", "src"),
            ("all", "false"),
        ],
    },
    Case {
        object: "group",
        scope: &["--instance"],
        filters: &[
            "top_level_only = true",
            "order_by = path",
            "sort = desc",
            "skip_groups = 11,99",
            "statistics = true",
            "min_access_level = 10",
            "owned = false",
            "with_custom_attributes = false",
            "search = e",
        ],
        params: &[
            ("top_level_only", "true"),
            ("order_by", "path"),
            ("sort", "desc"),
            ("skip_groups[]", "11"),
            ("skip_groups[]", "99"),
            ("statistics", "true"),
            ("min_access_level", "10"),
            ("owned", "false"),
            ("with_custom_attributes", "false"),
            ("search", "e"),
        ],
    },
    Case {
        object: "group_member",
        scope: &["--group", "acme"],
        filters: &["query = a", "user_ids = 1,2,27", "skip_users = 3", "show_seat_info = true"],
        params: &[
            ("query", "a"),
            ("user_ids[]", "1"),
            ("user_ids[]", "2"),
            ("user_ids[]", "27"),
            ("skip_users[]", "3"),
            ("show_seat_info", "true"),
        ],
    },
    Case {
        object: "group_label",
        scope: &["--group", "acme/platform"],
        filters: &[
            "include_ancestor_groups = false",
            "include_descendant_groups = true",
            "only_group_labels = false",
            "with_counts = true",
            "search = e",
        ],
        params: &[
            ("include_ancestor_groups", "false"),
            ("include_descendant_groups", "true"),
            ("only_group_labels", "false"),
            ("with_counts", "true"),
            ("search", "e"),
        ],
    },
    Case {
        object: "group_milestone",
        scope: &["--group", "acme"],
        filters: &[
            "state = closed",
            "iids = 1,2",
            "include_parent_milestones = false",
            "search = q1",
            "title = FY25 Q1 planning",
        ],
        params: &[
            ("state", "closed"),
            ("iids[]", "1"),
            ("iids[]", "2"),
            ("include_parent_milestones", "false"),
            ("search", "q1"),
            ("title", "FY25 Q1 planning"),
        ],
    },
    Case {
        object: "issue",
        scope: &["--project", "demo/website"],
        filters: &[
            "created_before_after between 2020-01-01 and 2024-12-31T23:59:59Z",
            "updated_after >= 2021-01-01",
            "state = opened",
            "scope = all",
            "order_by = updated_at",
            "sort = asc",
            "confidential = false",
            "issue_type = issue",
            "milestone_id = Any",
            "due_date = any",
            "my_reaction_emoji = None",
            "non_archived = true",
            "with_labels_details = true",
            "search = the",
        ],
        params: &[
            ("created_after", "2020-01-01T00:00:00.000Z"),
            ("created_before", "2024-12-31T23:59:59.000Z"),
            ("updated_after", "2021-01-01T00:00:00.000Z"),
            ("state", "opened"),
            ("scope", "all"),
            ("order_by", "updated_at"),
            ("sort", "asc"),
            ("confidential", "false"),
            ("issue_type", "issue"),
            ("milestone_id", "Any"),
            ("due_date", "any"),
            ("my_reaction_emoji", "None"),
            ("non_archived", "true"),
            ("with_labels_details", "true"),
            ("search", "the"),
        ],
    },
    Case {
        object: "job",
        scope: &["--project", "demo/api"],
        filters: &["scope = success"],
        params: &[("pagination", "keyset"), ("order_by", "id"), ("sort", "desc"), ("scope", "success")],
    },
    Case {
        object: "pipeline",
        scope: &["--project", "demo/api"],
        filters: &[
            "updated_before_after between 2020-01-01 and 2025-12-31",
            "status = success",
            "source = push",
            "scope = finished",
            "order_by = updated_at",
            "sort = asc",
            "yaml_errors = false",
        ],
        params: &[
            ("updated_after", "2020-01-01T00:00:00.000Z"),
            ("updated_before", "2025-12-31T00:00:00.000Z"),
            ("status", "success"),
            ("source", "push"),
            ("scope", "finished"),
            ("order_by", "updated_at"),
            ("sort", "asc"),
            ("yaml_errors", "false"),
        ],
    },
    Case {
        object: "project",
        scope: &["--group", "acme"],
        filters: &[
            "last_activity_before_after between 2024-01-01 and 2025-12-31T00:00:00Z",
            "archived = false",
            "visibility = public",
            "with_programming_language = Rust",
            "imported = false",
            "with_issues_enabled = true",
        ],
        params: &[
            ("include_subgroups", "true"),
            ("last_activity_after", "2024-01-01T00:00:00.000Z"),
            ("last_activity_before", "2025-12-31T00:00:00.000Z"),
            ("archived", "false"),
            ("visibility", "public"),
            ("with_programming_language", "Rust"),
            ("imported", "false"),
            ("with_issues_enabled", "true"),
        ],
    },
    Case {
        object: "project_label",
        scope: &["--project", "demo/api"],
        filters: &["with_counts = true", "include_ancestor_groups = false", "search = o"],
        params: &[("with_counts", "true"), ("include_ancestor_groups", "false"), ("search", "o")],
    },
    Case {
        object: "project_member",
        scope: &["--project", "demo/api"],
        filters: &["query = e", "skip_users = 1", "show_seat_info = true"],
        params: &[("query", "e"), ("skip_users[]", "1"), ("show_seat_info", "true")],
    },
    Case {
        object: "project_merge_request",
        scope: &["--project", "demo/api"],
        filters: &[
            "deployed_before_after between 2019-01-01 and 2025-12-31",
            "environment = staging",
            "state = merged",
            "wip = no",
            "with_merge_status_recheck = false",
            "scope = all",
        ],
        params: &[
            ("deployed_after", "2019-01-01T00:00:00.000Z"),
            ("deployed_before", "2025-12-31T00:00:00.000Z"),
            ("environment", "staging"),
            ("state", "merged"),
            ("wip", "no"),
            ("with_merge_status_recheck", "false"),
            ("scope", "all"),
        ],
    },
    Case {
        object: "project_milestone",
        scope: &["--project", "demo/api"],
        filters: &["state = active", "iids = 1,2,3", "include_parent_milestones = true", "search = v"],
        params: &[
            ("state", "active"),
            ("iids[]", "1"),
            ("iids[]", "2"),
            ("iids[]", "3"),
            ("include_parent_milestones", "true"),
            ("search", "v"),
        ],
    },
    Case {
        object: "release",
        scope: &["--project", "demo/api"],
        filters: &["order_by = created_at", "sort = asc", "include_html_description = true"],
        params: &[("order_by", "created_at"), ("sort", "asc"), ("include_html_description", "true")],
    },
    Case {
        object: "tag",
        scope: &["--project", "demo/api"],
        filters: &["order_by = version", "sort = asc", "search = ^v0"],
        params: &[("order_by", "version"), ("sort", "asc"), ("search", "^v0")],
    },
    Case {
        object: "deployment",
        scope: &["--project", "demo/api"],
        filters: &[
            "updated_before_after between 2020-01-01 and 2025-12-31",
            "status = success",
            "environment = staging",
        ],
        params: &[
            ("order_by", "updated_at"),
            ("updated_after", "2020-01-01T00:00:00.000Z"),
            ("updated_before", "2025-12-31T00:00:00.000Z"),
            ("status", "success"),
            ("environment", "staging"),
        ],
    },
    Case {
        object: "environment",
        scope: &["--project", "demo/api"],
        filters: &["states = available", "search = review"],
        params: &[("states", "available"), ("search", "review")],
    },
];

/// Runs one case with its own simulator (whose request log is the evidence): every request for
/// the object's records carries exactly the case's parameters (plus `per_page`, and on later pages
/// the page or the cursor), GitLab answers them all with 200, and records arrive.
fn check_case(case: &Case) -> Result<(), String> {
    let sim = small_simulator();
    let dir = temp_dir();
    let out = dir.path().join("out");
    let dest = format!("jsonl:{}", out.display());
    let mut args = vec!["--object", case.object, "--dest", dest.as_str()];
    args.extend_from_slice(case.scope);
    for f in case.filters {
        args.extend(["--filter", f]);
    }
    let run = host_run(&sim, &args, Some(TOKEN));
    let object = case.object;
    if !run.success {
        return Err(format!("{object}: the run failed: {}", run.output()));
    }
    if jsonl(&out, object).is_empty() {
        return Err(format!("{object}: the filters should leave some records"));
    }
    let expected: Vec<(String, String)> = case.params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let paging = ["per_page", "page", "cursor"];
    // The requests for records (planning requests carry no `per_page`, or `simple=true`).
    let requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.query_param("per_page").is_some() && r.query_param("simple").is_none())
        .collect();
    if requests.is_empty() {
        return Err(format!("{object}: no request for records"));
    }
    for r in &requests {
        let query: Vec<(String, String)> =
            r.query.iter().filter(|(k, _)| !paging.contains(&k.as_str())).cloned().collect();
        if r.status != 200 || query != expected {
            return Err(format!(
                "{object}: {} answered {}; expected the parameters {expected:?}",
                r.raw_path_and_query, r.status
            ));
        }
    }
    if object == "job" && (requests.len() < 2 || requests[1..].iter().any(|r| r.query_param("cursor").is_none())) {
        return Err(format!("job: keyset pagination should name a cursor on every page after the first: {requests:?}"));
    }
    Ok(())
}

#[test]
fn filters_reach_gitlab_as_its_query_parameters_for_every_object() {
    // Four host runs at a time; every case is checked, and every failure reported.
    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = CASES
            .chunks(CASES.len().div_ceil(4))
            .map(|chunk| scope.spawn(move || chunk.iter().filter_map(|c| check_case(c).err()).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(CASES.len(), 18, "one case per object");
}
