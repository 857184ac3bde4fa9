//! `host run` end to end: the real host, the real gitlab.wasm, the simulator over real HTTP.

mod support;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use support::{
    TOKEN, assert_typed, host_run, is_utc_millis, read_jsonl_object, simulator, sqlite_ids, temp_dir, utc_millis,
};

#[test]
fn a_group_of_150_projects_across_subgroups_syncs_every_project() {
    let sim = simulator();
    let dir = temp_dir();
    let db = dir.path().join("out.db");
    let dest = format!("sqlite:{}", db.display());
    let run = host_run(&sim, &["--object", "project", "--group", "acme", "--dest", &dest], Some(TOKEN));
    assert!(run.success, "{}", run.output());

    let world = sim.world();
    let acme = world.group_by_ref("acme").unwrap();
    let expected: BTreeSet<i64> = world.projects_in_group(acme.id, true).iter().map(|p| p.id as i64).collect();
    assert_eq!(expected.len(), 150);
    assert_eq!(sqlite_ids(&db, "project"), expected);
    // One request resolves the group's path to its id, then two pages of 100, and not one request more.
    let paths: Vec<String> = sim.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/v4/groups/acme",
            &format!("/api/v4/groups/{}/projects", acme.id),
            &format!("/api/v4/groups/{}/projects", acme.id)
        ]
    );
    assert!(run.stdout.contains("total: 150 records, 2 pages, 3 requests (1 planning, in "), "{}", run.stdout);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let (created, namespace, archived): (String, String, i64) = conn
        .query_row("SELECT created_at, namespace, archived FROM project ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(is_utc_millis(&created), "{created}");
    assert!(serde_json::from_str::<Value>(&namespace).unwrap().is_object());
    assert!(archived == 0 || archived == 1);
    let column_type: String = conn
        .query_row("SELECT type FROM pragma_table_info('project') WHERE name = 'star_count'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(column_type, "INTEGER");
}

#[test]
fn instance_scope_reads_every_project_with_keyset_pagination() {
    let sim = simulator();
    let dir = temp_dir();
    let out = dir.path().join("jsonl");
    let dest = format!("jsonl:{}", out.display());
    let run = host_run(&sim, &["--object", "project", "--instance", "--dest", &dest], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let records = read_jsonl_object(&out, "project");
    let ids: BTreeSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let all: BTreeSet<i64> = sim.world().projects().iter().map(|p| p.id as i64).collect();
    assert_eq!(ids, all);
    assert_eq!(records.len(), all.len(), "no project twice");
    let requests = sim.requests();
    assert_eq!(requests.len(), all.len().div_ceil(100));
    assert!(requests.iter().all(|r| r.raw_path_and_query.contains("pagination=keyset")), "keyset on every page");
    assert_typed("project", &records);
    // GitLab's offset date-times arrive in UTC.
    for (record, project) in records.iter().zip(sim.world().projects()) {
        let original = sim.world().project_json(project.id);
        if record["id"] == original["id"] {
            assert_eq!(record["last_activity_at"], utc_millis(original["last_activity_at"].as_str().unwrap()).as_str());
        }
    }
}

#[test]
fn every_issue_of_a_project_with_more_than_10000_arrives() {
    let sim = simulator();
    let dir = temp_dir();
    let db = dir.path().join("big.db");
    let dest = format!("sqlite:{}", db.display());
    let run = host_run(&sim, &["--object", "issue", "--project", "bigco/monorepo", "--dest", &dest], Some(TOKEN));
    assert!(run.success, "{}", run.output());

    let world = sim.world();
    let project = world.project_by_ref("bigco/monorepo").unwrap();
    let expected: BTreeSet<i64> = world.issues(project.id).iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(expected.len() > 10_000);
    assert_eq!(sqlite_ids(&db, "issue"), expected);
    // The path is resolved to the project's id once, then one request per page, none after the last.
    let requests = sim.requests();
    assert_eq!(requests.len(), 1 + expected.len().div_ceil(100));
    assert_eq!(requests[0].path, "/api/v4/projects/bigco/monorepo");
    let pages = format!("/api/v4/projects/{}/issues", project.id);
    assert!(requests[1..].iter().all(|r| r.path == pages), "{:?}", requests[1].path);

    // One known record, field by field.
    let original = &world.issues(project.id)[0];
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (title, updated, author, labels, project_id): (String, String, String, String, i64) = conn
        .query_row(
            "SELECT title, updated_at, author, labels, project_id FROM issue WHERE id = ?1",
            [original["id"].as_i64().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(title, original["title"].as_str().unwrap());
    assert_eq!(updated, utc_millis(original["updated_at"].as_str().unwrap()));
    assert_eq!(serde_json::from_str::<Value>(&author).unwrap(), original["author"]);
    assert_eq!(serde_json::from_str::<Value>(&labels).unwrap(), original["labels"]);
    assert_eq!(project_id, project.id as i64);
}

#[test]
fn merge_requests_and_issues_are_typed_as_the_schema_says() {
    let sim = simulator();
    let dir = temp_dir();
    let out = dir.path().join("jsonl");
    let dest = format!("jsonl:{}", out.display());
    let run = host_run(
        &sim,
        &[
            "--object",
            "issue",
            "--object",
            "project_merge_request",
            "--project",
            "demo/website",
            "--project",
            "demo/api",
            "--dest",
            &dest,
        ],
        Some(TOKEN),
    );
    assert!(run.success, "{}", run.output());
    let world = sim.world();
    for object in ["issue", "project_merge_request"] {
        let records = read_jsonl_object(&out, object);
        let expected: usize = ["demo/website", "demo/api"]
            .iter()
            .map(|p| {
                let id = world.project_by_ref(p).unwrap().id;
                if object == "issue" { world.issues(id).len() } else { world.merge_requests(id).len() }
            })
            .sum();
        assert_eq!(records.len(), expected, "{object}");
        assert_typed(object, &records);
    }
}

#[test]
fn projection_keeps_the_selected_fields_and_the_key() {
    let sim = simulator();
    let dir = temp_dir();
    let out = dir.path().join("jsonl");
    let dest = format!("jsonl:{}", out.display());
    let run = host_run(
        &sim,
        &["--object", "issue", "--project", "demo/api", "--fields", "title,state", "--dest", &dest],
        Some(TOKEN),
    );
    assert!(run.success, "{}", run.output());
    let records = read_jsonl_object(&out, "issue");
    assert!(!records.is_empty());
    for record in &records {
        let keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "state", "title"]);
    }
}

#[test]
fn filters_are_pushed_down_to_gitlab() {
    let sim = simulator();
    let dir = temp_dir();
    let out = dir.path().join("jsonl");
    let dest = format!("jsonl:{}", out.display());
    let (low, high) = ("2022-01-01T00:00:00Z", "2023-06-30T23:59:59Z");
    let between = format!("updated_before_after between {low} and {high}");
    let run = host_run(
        &sim,
        &[
            "--object",
            "issue",
            "--project",
            "bigco/monorepo",
            "--filter",
            "state = opened",
            "--filter",
            &between,
            "--dest",
            &dest,
        ],
        Some(TOKEN),
    );
    assert!(run.success, "{}", run.output());
    let requests = sim.requests();
    let first = requests.iter().find(|r| r.path.ends_with("/issues")).expect("an issues request");
    let query: HashMap<&str, &str> = first.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(query["state"], "opened");
    assert_eq!(query["updated_after"], "2022-01-01T00:00:00.000Z");
    assert_eq!(query["updated_before"], "2023-06-30T23:59:59.000Z");
    assert_eq!(query["per_page"], "100");

    let world = sim.world();
    let project = world.project_by_ref("bigco/monorepo").unwrap();
    let expected: BTreeSet<i64> = world
        .issues(project.id)
        .iter()
        .filter(|i| {
            let updated = utc_millis(i["updated_at"].as_str().unwrap());
            i["state"] == "opened"
                && updated.as_str() >= "2022-01-01T00:00:00.000Z"
                && updated.as_str() <= "2023-06-30T23:59:59.000Z"
        })
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(!expected.is_empty());
    let got: BTreeSet<i64> = read_jsonl_object(&out, "issue").iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(got, expected);
}

#[test]
fn rerunning_into_sqlite_upserts_instead_of_doubling() {
    let sim = simulator();
    let dir = temp_dir();
    let db = dir.path().join("twice.db");
    let dest = format!("sqlite:{}", db.display());
    for _ in 0..2 {
        let run = host_run(
            &sim,
            &["--object", "project_merge_request", "--project", "demo/website", "--dest", &dest],
            Some(TOKEN),
        );
        assert!(run.success, "{}", run.output());
    }
    let world = sim.world();
    let id = world.project_by_ref("demo/website").unwrap().id;
    assert_eq!(sqlite_ids(&db, "project_merge_request").len(), world.merge_requests(id).len());
}

#[test]
fn a_forbidden_project_is_skipped_and_the_run_goes_on() {
    let sim = simulator();
    let forbidden = sim
        .world()
        .projects()
        .iter()
        .find(|p| sim.world().project_json(p.id)["issues_enabled"] == false)
        .expect("the standard world has a project with issues disabled")
        .path_with_namespace
        .clone();
    let dir = temp_dir();
    let db = dir.path().join("skip.db");
    let dest = format!("sqlite:{}", db.display());
    let run = host_run(
        &sim,
        &["--object", "issue", "--project", &forbidden, "--project", "demo/api", "--dest", &dest],
        Some(TOKEN),
    );
    assert!(run.success, "{}", run.output());
    assert!(run.stdout.contains("skipped, the token may not read this"), "{}", run.stdout);
    assert!(run.stdout.contains("403"), "{}", run.stdout);
    let world = sim.world();
    let api = world.project_by_ref("demo/api").unwrap().id;
    assert_eq!(sqlite_ids(&db, "issue").len(), world.issues(api).len());
}

#[test]
fn a_project_the_flow_names_that_gitlab_does_not_show_fails_and_the_others_are_read() {
    let sim = simulator();
    let dir = temp_dir();
    let db = dir.path().join("missing.db");
    let dest = format!("sqlite:{}", db.display());
    let summary = dir.path().join("summary.json");
    let run = host_run(
        &sim,
        &[
            "--object",
            "issue",
            "--project",
            "nobody/nothing",
            "--project",
            "demo/api",
            "--dest",
            &dest,
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        Some(TOKEN),
    );
    // A typo, or a project deleted or moved, is not a success: the run says which and exits 1.
    assert!(!run.success, "{}", run.output());
    assert!(run.stderr.contains("some partitions failed"), "{}", run.output());
    let line = run.stdout.lines().find(|l| l.contains("nobody/nothing")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        line.contains("failed: --project nobody/nothing: ") && line.contains("not found, or hidden from the token")
    );
    assert!(line.contains("404"), "{line}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let statuses: Vec<(&str, &str)> = summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["scope"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("project nobody/nothing", "failed"), ("project demo/api", "done")], "in the flow's order");
    // The project GitLab does show is read whole.
    let world = sim.world();
    let api = world.project_by_ref("demo/api").unwrap().id;
    assert_eq!(sqlite_ids(&db, "issue").len(), world.issues(api).len());
}
