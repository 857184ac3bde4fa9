//! The objects beyond projects, issues and merge requests, over real HTTP: their data agree with
//! each other (commits with merge requests, branches, tags and releases; jobs with pipelines and
//! deployments; notes with `user_notes_count`), their filters select what GitLab would, their
//! pagination and their errors are GitLab's.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::http::{Resp, agent, get, get_with, ids, small};
use crate::time::parse_datetime_micros;
use crate::{CI_DISABLED_PROJECT, EMPTY_REPOSITORY_PROJECT, ISSUES_DISABLED_PROJECT, Simulator};

/// Every record of a list, following `Link: rel="next"` from `path`.
fn fetch_all(sim: &Simulator, path: &str) -> Vec<Value> {
    let agent = agent();
    let mut out = Vec::new();
    let mut url = Some(format!("{}{path}", sim.base_url()));
    while let Some(u) = url {
        let page = get_with(&agent, &u, &[]);
        assert_eq!(page.status, 200, "{u}: {}", page.body);
        out.extend(page.items());
        url = page.link("next");
    }
    out
}

fn micros(v: &Value) -> i64 {
    parse_datetime_micros(v.as_str().unwrap_or_else(|| panic!("not a date-time: {v}"))).expect("ISO 8601")
}

fn error(resp: &Resp) -> String {
    resp.body.clone()
}

fn strings(items: &[Value], field: &str) -> Vec<String> {
    items.iter().map(|i| i[field].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn the_repository_agrees_with_the_merge_requests() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/api").unwrap();
    let commits = world.commits(project.id);
    let shas: HashSet<&str> = commits.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let branches = world.branches(project.id);
    let mut merged = 0;
    for mr in world.merge_requests(project.id) {
        let on_default = mr["target_branch"] == project.default_branch.as_str();
        match mr["state"].as_str().unwrap() {
            "merged" if on_default => {
                let merge = mr["merge_commit_sha"].as_str().or(mr["squash_commit_sha"].as_str()).unwrap();
                assert!(shas.contains(merge), "merge commit of !{} on {}", mr["iid"], project.default_branch);
                merged += 1;
            }
            "opened" => {
                let branch = branches.iter().find(|b| b["name"] == mr["source_branch"]).expect("the source branch");
                assert_eq!(branch["commit"]["id"], mr["sha"]);
            }
            _ => {}
        }
    }
    assert!(merged > 5);
    let default = branches.iter().find(|b| b["default"] == true).unwrap();
    assert_eq!(default["name"], project.default_branch.as_str());
    assert_eq!(default["commit"], commits[0], "the default branch's head is the newest commit");
    // Git dates carry the committer's offset, always written out; they are in time order.
    assert!(commits.iter().all(|c| c["committed_date"].as_str().is_some_and(|d| !d.ends_with('Z'))));
    assert!(commits.iter().any(|c| !c["committed_date"].as_str().unwrap().ends_with("+00:00")));
    assert!(commits.windows(2).all(|w| micros(&w[0]["committed_date"]) >= micros(&w[1]["committed_date"])));
    // Tags sit on default-branch commits; releases on tags that name them.
    let tags = world.tags(project.id);
    assert!(!tags.is_empty());
    assert!(tags.iter().all(|t| shas.contains(t["commit"]["id"].as_str().unwrap())));
    for release in world.releases(project.id) {
        let tag = tags.iter().find(|t| t["name"] == release["tag_name"]).expect("the release's tag");
        assert_eq!(tag["release"]["tag_name"], release["tag_name"]);
        assert_eq!(tag["commit"], release["commit"]);
        assert_eq!(release["assets"]["count"], 4 + release["assets"]["links"].as_array().unwrap().len());
    }
}

#[test]
fn commits_filter_and_paginate_like_gitlab() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/website").unwrap();
    let base = format!("/api/v4/projects/{}/repository/commits?per_page=100", project.id);
    let all_default = world.commits(project.id);
    assert_eq!(fetch_all(&sim, &base), all_default);

    // No counts, as GitLab; the next page is still linked.
    let first = get(&sim, &format!("/api/v4/projects/{}/repository/commits?per_page=5", project.id));
    assert_eq!(first.header("x-total"), None);
    assert_eq!(first.header("x-total-pages"), None);
    assert_eq!(first.header("x-next-page"), Some("2"));
    assert!(first.link("last").is_none());

    // since / until are inclusive, on the committed date.
    let middle = &all_default[all_default.len() / 2];
    let at = middle["committed_date"].as_str().unwrap().replace('+', "%2B");
    let since = fetch_all(&sim, &format!("{base}&since={at}"));
    let want: Vec<&Value> =
        all_default.iter().filter(|c| micros(&c["committed_date"]) >= micros(&middle["committed_date"])).collect();
    assert_eq!(since.iter().collect::<Vec<_>>(), want);
    let until = fetch_all(&sim, &format!("{base}&until={at}"));
    assert_eq!(since.len() + until.len(), all_default.len() + 1);

    // `all` adds the other branches' commits; `first_parent` leaves merged branches' commits out.
    let all = fetch_all(&sim, &format!("{base}&all=true"));
    assert!(all.len() > all_default.len());
    let first_parent = fetch_all(&sim, &format!("{base}&first_parent=true"));
    assert!(first_parent.len() < all_default.len());
    assert!(first_parent.iter().all(|c| c["parent_ids"].as_array().unwrap().len() <= 2));

    // A branch reaches its own commits and the default branch's up to where it forked.
    let branch =
        world.branches(project.id).into_iter().find(|b| b["default"] == false && b["merged"] == false).unwrap();
    let name = branch["name"].as_str().unwrap().replace('/', "%2F");
    let on_branch = fetch_all(&sim, &format!("{base}&ref_name={name}"));
    assert_eq!(on_branch[0]["id"], branch["commit"]["id"]);
    let unknown = get(&sim, &format!("{base}&ref_name=no-such-branch"));
    assert_eq!(unknown.items(), Vec::<Value>::new());

    // `path`, `with_stats`, `trailers`, `order`.
    let docs = fetch_all(&sim, &format!("{base}&path=docs"));
    assert!(!docs.is_empty() && docs.len() < all_default.len());
    let stats = get(&sim, &format!("{base}&with_stats=true")).items();
    assert!(stats.iter().all(|c| c["stats"]["total"]
        == c["stats"]["additions"].as_u64().unwrap() + c["stats"]["deletions"].as_u64().unwrap()));
    let plain = get(&sim, &base).items();
    assert!(plain.iter().all(|c| c["trailers"] == serde_json::json!({})));
    let parsed = fetch_all(&sim, &format!("{base}&trailers=true"));
    assert!(parsed.iter().any(|c| c["trailers"].as_object().is_some_and(|t| !t.is_empty())));
    let topo = fetch_all(&sim, &format!("{base}&order=topo"));
    assert_eq!(ids_of(&topo), ids_of(&all_default));
    assert_ne!(strings(&topo, "id"), strings(&all_default, "id"), "topological order differs from date order");
    assert_eq!(error(&get(&sim, &format!("{base}&order=newest"))), r#"{"error":"order does not have a valid value"}"#);
    assert_eq!(get(&sim, &format!("{base}&since=yesterday")).status, 400);

    let empty = EMPTY_REPOSITORY_PROJECT.replace('/', "%2F");
    let resp = get(&sim, &format!("/api/v4/projects/{empty}/repository/commits"));
    assert_eq!((resp.status, resp.body.as_str()), (404, r#"{"message":"404 Repository Not Found"}"#));
    assert_eq!(get(&sim, &format!("/api/v4/projects/{empty}/repository/branches")).items(), Vec::<Value>::new());
    let missing = get(&sim, "/api/v4/projects/999999/repository/tags");
    assert_eq!((missing.status, missing.body.as_str()), (404, r#"{"message":"404 Project Not Found"}"#));
}

fn ids_of(items: &[Value]) -> BTreeSet<String> {
    items.iter().map(|i| i["id"].to_string()).collect()
}

#[test]
fn branches_tags_and_releases_search_and_sort() {
    let sim = small();
    let project = sim.world().project_by_ref("demo/mobile-app").unwrap();
    let api = format!("/api/v4/projects/{}", project.id);
    let names = |items: &[Value], key: &str| strings(items, key);

    let branches = fetch_all(&sim, &format!("{api}/repository/branches?per_page=100"));
    let sorted = {
        let mut n = names(&branches, "name");
        n.sort();
        n
    };
    assert_eq!(names(&branches, "name"), sorted, "by name");
    for (search, test) in [
        ("%5Efix", Box::new(|n: &str| n.starts_with("fix")) as Box<dyn Fn(&str) -> bool>),
        ("ui$", Box::new(|n: &str| n.ends_with("ui"))),
        ("FEATURE", Box::new(|n: &str| n.contains("feature"))),
    ] {
        let found = fetch_all(&sim, &format!("{api}/repository/branches?per_page=100&search={search}"));
        let want: Vec<String> = names(&branches, "name").into_iter().filter(|n| test(n)).collect();
        assert_eq!(names(&found, "name"), want, "{search}");
    }

    let tags = fetch_all(&sim, &format!("{api}/repository/tags?per_page=100"));
    assert!(tags.len() > 3);
    let by_name = fetch_all(&sim, &format!("{api}/repository/tags?per_page=100&order_by=name&sort=asc"));
    let mut sorted = names(&tags, "name");
    sorted.sort();
    assert_eq!(names(&by_name, "name"), sorted);
    let by_version = fetch_all(&sim, &format!("{api}/repository/tags?per_page=100&order_by=version&sort=asc"));
    let version = |t: &Value| -> Vec<u64> {
        let name = t["name"].as_str().unwrap();
        name.trim_start_matches('v').split(['.', '-']).filter_map(|p| p.parse().ok()).collect()
    };
    assert!(by_version.windows(2).all(|w| version(&w[0])[..3] <= version(&w[1])[..3]));
    let dated = |t: &Value| micros(&t["commit"]["committed_date"]);
    assert!(tags.windows(2).all(|w| dated(&w[0]) >= dated(&w[1])), "newest first by default");
    assert_eq!(get(&sim, &format!("{api}/repository/tags?order_by=date")).status, 400);

    let releases = fetch_all(&sim, &format!("{api}/releases?per_page=100"));
    assert!(releases.windows(2).all(|w| micros(&w[0]["released_at"]) >= micros(&w[1]["released_at"])));
    let created = fetch_all(&sim, &format!("{api}/releases?per_page=100&order_by=created_at&sort=asc"));
    assert!(created.windows(2).all(|w| micros(&w[0]["created_at"]) <= micros(&w[1]["created_at"])));
    assert!(releases.iter().all(|r| r.get("description_html").is_none()));
    let html = fetch_all(&sim, &format!("{api}/releases?per_page=100&include_html_description=true"));
    assert!(html.iter().all(|r| r["description_html"].is_string()));
}

#[test]
fn pipelines_filter_and_sort() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/api").unwrap();
    let api = format!("/api/v4/projects/{}/pipelines?per_page=100", project.id);
    let all = world.pipelines(project.id);
    assert_eq!(fetch_all(&sim, &api), all);
    assert!(all.windows(2).all(|w| w[0]["id"].as_u64() > w[1]["id"].as_u64()), "newest first");
    let check = |query: &str, keep: &dyn Fn(&Value) -> bool| {
        let got = fetch_all(&sim, &format!("{api}&{query}"));
        let want: Vec<Value> = all.iter().filter(|p| keep(p)).cloned().collect();
        assert!(!want.is_empty(), "{query} selects nothing");
        assert_eq!(ids(&got), ids(&want), "{query}");
    };
    check("status=success", &|p| p["status"] == "success");
    check("source=merge_request_event", &|p| p["source"] == "merge_request_event");
    check("ref=main", &|p| p["ref"] == "main");
    check("scope=finished", &|p| ["success", "failed", "canceled", "skipped"].contains(&p["status"].as_str().unwrap()));
    let middle = micros(&all[all.len() / 2]["updated_at"]);
    let at = all[all.len() / 2]["updated_at"].as_str().unwrap();
    check(&format!("updated_after={at}"), &|p| micros(&p["updated_at"]) >= middle);
    check(&format!("updated_before={at}"), &|p| micros(&p["updated_at"]) <= middle);
    let branches = fetch_all(&sim, &format!("{api}&scope=branches"));
    let refs: HashSet<&str> = branches.iter().map(|p| p["ref"].as_str().unwrap()).collect();
    assert_eq!(refs.len(), branches.len(), "the latest pipeline of each branch");
    let asc = fetch_all(&sim, &format!("{api}&order_by=updated_at&sort=asc"));
    assert!(asc.windows(2).all(|w| micros(&w[0]["updated_at"]) <= micros(&w[1]["updated_at"])));
    assert_eq!(error(&get(&sim, &format!("{api}&status=done"))), r#"{"error":"status does not have a valid value"}"#);
    assert_eq!(
        error(&get(&sim, &format!("{api}&scope=everything"))),
        r#"{"error":"scope does not have a valid value"}"#
    );
    let ci_off = CI_DISABLED_PROJECT.replace('/', "%2F");
    for what in ["pipelines", "jobs"] {
        let resp = get(&sim, &format!("/api/v4/projects/{ci_off}/{what}"));
        assert_eq!((resp.status, resp.body.as_str()), (403, r#"{"message":"403 Forbidden"}"#), "{what}");
    }
}

#[test]
fn jobs_agree_with_pipelines_and_walk_by_keyset() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/website").unwrap();
    let jobs = world.jobs(project.id);
    assert!(jobs.len() > 250);
    let pipelines = world.pipelines(project.id);
    for job in &jobs {
        let pipeline = pipelines.iter().find(|p| p["id"] == job["pipeline"]["id"]).expect("the job's pipeline");
        assert_eq!(&job["pipeline"], pipeline);
        if pipeline["status"] == "failed" && job["status"] == "failed" {
            assert!(job["failure_reason"].is_string());
        }
        assert_eq!(job.get("failure_reason").is_some(), job["status"] == "failed");
    }
    // Keyset pagination visits every job once, highest id first; the cursor is opaque.
    let keyset = format!("/api/v4/projects/{}/jobs?pagination=keyset&order_by=id&sort=desc&per_page=100", project.id);
    let first = get(&sim, &keyset);
    assert_eq!(first.header("x-total"), None);
    assert!(first.link("next").unwrap().contains("cursor="));
    assert_eq!(ids(&fetch_all(&sim, &keyset)), ids(&jobs));
    assert!(jobs.windows(2).all(|w| w[0]["id"].as_u64() > w[1]["id"].as_u64()));
    // `scope` takes one status or several.
    let failed = fetch_all(&sim, &format!("/api/v4/projects/{}/jobs?scope=failed&per_page=100", project.id));
    assert!(!failed.is_empty() && failed.iter().all(|j| j["status"] == "failed"));
    let two = fetch_all(
        &sim,
        &format!("/api/v4/projects/{}/jobs?scope%5B%5D=failed&scope%5B%5D=manual&per_page=100", project.id),
    );
    let want = jobs.iter().filter(|j| j["status"] == "failed" || j["status"] == "manual").count();
    assert_eq!(two.len(), want);
    assert_eq!(
        error(&get(&sim, &format!("/api/v4/projects/{}/jobs?scope=broken", project.id))),
        r#"{"error":"scope does not have a valid value"}"#
    );
    let ascending = get(&sim, &format!("/api/v4/projects/{}/jobs?pagination=keyset&order_by=id&sort=asc", project.id));
    assert_eq!(ascending.status, 405);
}

#[test]
fn deployments_and_environments_filter_like_gitlab() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/api").unwrap();
    let api = format!("/api/v4/projects/{}", project.id);
    let deployments = world.deployments(project.id);
    let environments = world.environments(project.id);
    let jobs = world.jobs(project.id);
    assert!(!deployments.is_empty());
    for d in &deployments {
        let job = jobs.iter().find(|j| j["id"] == d["deployable"]["id"]).expect("the deploy job");
        assert_eq!(&d["deployable"], job);
        let env = environments.iter().find(|e| e["id"] == d["environment"]["id"]).expect("the environment");
        assert_eq!(env["name"], d["environment"]["name"]);
    }
    let refused = get(&sim, &format!("{api}/deployments?updated_after=2020-01-01"));
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (400, r#"{"message":"400 Bad request - `updated_at` filter requires `updated_at` sort"}"#)
    );
    let at = deployments[deployments.len() / 2]["updated_at"].as_str().unwrap();
    let after = fetch_all(&sim, &format!("{api}/deployments?per_page=100&order_by=updated_at&updated_after={at}"));
    let want = deployments.iter().filter(|d| micros(&d["updated_at"]) >= parse_datetime_micros(at).unwrap()).count();
    assert_eq!(after.len(), want);
    assert!(after.windows(2).all(|w| micros(&w[0]["updated_at"]) <= micros(&w[1]["updated_at"])), "ascending");
    let staging = fetch_all(&sim, &format!("{api}/deployments?per_page=100&environment=staging&status=success"));
    assert!(!staging.is_empty());
    assert!(staging.iter().all(|d| d["environment"]["name"] == "staging" && d["status"] == "success"));

    let envs = |query: &str| fetch_all(&sim, &format!("{api}/environments?per_page=100&{query}"));
    assert_eq!(strings(&envs("name=production"), "name"), ["production"]);
    assert!(envs("search=review").iter().all(|e| e["name"].as_str().unwrap().contains("review")));
    assert!(envs("states=stopped").iter().all(|e| e["state"] == "stopped"));
    assert_eq!(get(&sim, &format!("{api}/environments?search=re")).status, 400);
    assert_eq!(get(&sim, &format!("{api}/environments?search=review&name=production")).status, 400);

    // Merge requests deployed to an environment within dates.
    let merged =
        fetch_all(&sim, &format!("{api}/merge_requests?per_page=100&environment=staging&deployed_after=2019-01-01"));
    assert!(!merged.is_empty());
    assert!(merged.iter().all(|m| m["state"] == "merged"));
    let none = fetch_all(&sim, &format!("{api}/merge_requests?per_page=100&deployed_before=2019-01-01"));
    assert!(none.is_empty());
}

#[test]
fn labels_and_milestones_of_projects_and_groups() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("acme/platform/secrets-vault").unwrap();
    let api = format!("/api/v4/projects/{}", project.id);
    let labels = fetch_all(&sim, &format!("{api}/labels?per_page=100"));
    let own: Vec<&Value> = labels.iter().filter(|l| l["is_project_label"] == true).collect();
    assert_eq!(own.len(), project.labels.len());
    // Both groups above the project lend it their labels.
    let platform = world.group_labels(world.group_by_ref("acme/platform").unwrap().id);
    assert_eq!(labels.len(), own.len() + platform.len());
    let only_own = fetch_all(&sim, &format!("{api}/labels?per_page=100&include_ancestor_groups=false"));
    assert_eq!(only_own.len(), own.len());
    assert!(labels.iter().all(|l| l["open_issues_count"].is_null()));

    let demo = world.project_by_ref("demo/website").unwrap();
    let counted = fetch_all(&sim, &format!("/api/v4/projects/{}/labels?per_page=100&with_counts=true", demo.id));
    let issues = world.issues(demo.id);
    for label in counted.iter().filter(|l| l["is_project_label"] == true) {
        let name = label["name"].as_str().unwrap();
        let tagged = |state: &str| {
            issues
                .iter()
                .filter(|i| i["state"] == state && i["labels"].as_array().unwrap().iter().any(|l| l == name))
                .count()
        };
        assert_eq!(label["open_issues_count"], tagged("opened"), "{name}");
        assert_eq!(label["closed_issues_count"], tagged("closed"), "{name}");
    }
    let search = fetch_all(&sim, &format!("/api/v4/projects/{}/labels?per_page=100&search=PRIORITY", demo.id));
    assert!(search.iter().all(|l| l["name"].as_str().unwrap().contains("priority")
        || l["description"].as_str().unwrap_or("").to_lowercase().contains("priority")));

    let acme = world.group_by_ref("acme").unwrap();
    let group_api = format!("/api/v4/groups/{}", acme.id);
    let with_descendants = fetch_all(&sim, &format!("{group_api}/labels?per_page=100&include_descendant_groups=true"));
    assert!(with_descendants.len() > world.group_labels(acme.id).len());
    assert!(with_descendants.iter().all(|l| l.get("is_project_label").is_none()), "group label shape");
    // With the projects' labels, counted from their issues.
    let platform_group = world.group_by_ref("acme/platform").unwrap();
    let with_projects = fetch_all(
        &sim,
        &format!("/api/v4/groups/{}/labels?per_page=100&only_group_labels=false&with_counts=true", platform_group.id),
    );
    let vault_labels: Vec<&str> = project.labels.iter().map(String::as_str).collect();
    assert!(vault_labels.iter().all(|name| with_projects.iter().any(|l| l["name"] == *name)));
    assert!(with_projects.iter().all(|l| l["open_issues_count"].is_u64()));

    let milestones = fetch_all(&sim, &format!("/api/v4/projects/{}/milestones?per_page=100", demo.id));
    assert_eq!(milestones, world.project_milestones(demo.id));
    let closed = fetch_all(&sim, &format!("/api/v4/projects/{}/milestones?state=closed", demo.id));
    assert!(closed.iter().all(|m| m["state"] == "closed"));
    let first = fetch_all(&sim, &format!("/api/v4/projects/{}/milestones?iids%5B%5D=1", demo.id));
    assert_eq!(first.len(), 1);
    let title = first[0]["title"].as_str().unwrap().replace(' ', "%20");
    assert_eq!(fetch_all(&sim, &format!("/api/v4/projects/{}/milestones?title={title}", demo.id)).len(), 1);
    let with_groups =
        fetch_all(&sim, &format!("/api/v4/projects/{}/milestones?include_parent_milestones=true", demo.id));
    assert!(with_groups.iter().any(|m| m["group_id"].is_u64()));
    assert_eq!(get(&sim, &format!("{group_api}/milestones?state=open")).status, 400);
    assert!(world.group_milestones(acme.id).iter().all(|m| m["group_id"] == acme.id));
}

#[test]
fn members_filter_and_show_seats() {
    let sim = small();
    let world = sim.world();
    let acme = world.group_by_ref("acme").unwrap();
    let api = format!("/api/v4/groups/{}/members?per_page=100", acme.id);
    let members = world.group_members(acme.id);
    assert_eq!(fetch_all(&sim, &api), members);
    assert_eq!(members[0]["username"], "root");
    assert_eq!(members[0]["access_level"], 50);
    let first_user = members[1]["id"].as_u64().unwrap();
    let picked = fetch_all(&sim, &format!("{api}&user_ids%5B%5D=1&user_ids%5B%5D={first_user}"));
    assert_eq!(ids(&picked), [1, first_user]);
    let skipped = fetch_all(&sim, &format!("{api}&skip_users%5B%5D=1"));
    assert_eq!(skipped.len(), members.len() - 1);
    let query = fetch_all(&sim, &format!("{api}&query=ROOT"));
    assert_eq!(ids(&query), [1]);
    let seats = fetch_all(&sim, &format!("{api}&show_seat_info=true"));
    assert!(seats.iter().all(|m| m["is_using_seat"].is_boolean()));
    assert!(members.iter().all(|m| m.get("is_using_seat").is_none()));
    let demo = world.project_by_ref("demo/website").unwrap();
    let project_members = world.project_members(demo.id);
    assert!(project_members.iter().any(|m| m["id"] == demo.creator_id && m["access_level"] == 40));
    assert!(project_members.iter().all(|m| m["expires_at"].as_str().is_none_or(|d| d.len() == 10)));
    assert_eq!(get(&sim, "/api/v4/groups/nope/members").status, 404);
}

#[test]
fn notes_agree_with_their_records_and_sort() {
    let sim = small();
    let world = sim.world();
    let mut heavy = 0;
    let mut empty = 0;
    for path in ["demo/website", "demo/api", "demo/mobile-app"] {
        let project = world.project_by_ref(path).unwrap();
        for issue in world.issues(project.id) {
            let iid = issue["iid"].as_u64().unwrap();
            let notes = world.issue_notes(project.id, iid);
            let comments = notes.iter().filter(|n| n["system"] == false).count();
            assert_eq!(issue["user_notes_count"], comments, "{path}#{iid}");
            heavy += usize::from(notes.len() > 100);
            empty += usize::from(notes.is_empty());
            assert!(notes.iter().all(|n| n["noteable_id"] == issue["id"] && n["noteable_type"] == "Issue"));
        }
        for mr in world.merge_requests(project.id) {
            let notes = world.merge_request_notes(project.id, mr["iid"].as_u64().unwrap());
            assert_eq!(mr["user_notes_count"], notes.iter().filter(|n| n["system"] == false).count());
        }
    }
    assert!(heavy > 0, "some records have more than 100 notes");
    assert!(empty > 100, "many have none");

    let project = world.project_by_ref("demo/website").unwrap();
    let busiest = world
        .issues(project.id)
        .iter()
        .map(|i| i["iid"].as_u64().unwrap())
        .max_by_key(|&iid| world.issue_notes(project.id, iid).len())
        .unwrap();
    let api = format!("/api/v4/projects/{}/issues/{busiest}/notes", project.id);
    let notes = world.issue_notes(project.id, busiest);
    assert_eq!(fetch_all(&sim, &format!("{api}?per_page=100")), notes, "newest first, over pages");
    let asc = fetch_all(&sim, &format!("{api}?per_page=100&sort=asc"));
    assert_eq!(asc.iter().rev().cloned().collect::<Vec<_>>(), notes);
    let updated = fetch_all(&sim, &format!("{api}?per_page=100&order_by=updated_at&sort=asc"));
    assert!(updated.windows(2).all(|w| micros(&w[0]["updated_at"]) <= micros(&w[1]["updated_at"])));
    let comments = fetch_all(&sim, &format!("{api}?per_page=100&activity_filter=only_comments"));
    assert!(comments.iter().all(|n| n["system"] == false));
    let unique: HashSet<u64> = ids(&notes).into_iter().collect();
    assert_eq!(unique.len(), notes.len());
    assert_eq!(get(&sim, &format!("/api/v4/projects/{}/issues/99999/notes", project.id)).status, 404);
    let vault = ISSUES_DISABLED_PROJECT.replace('/', "%2F");
    assert_eq!(get(&sim, &format!("/api/v4/projects/{vault}/issues/1/notes")).status, 403);
}

#[test]
fn approvals_follow_the_reviewers() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/mobile-app").unwrap();
    for mr in world.merge_requests(project.id) {
        let iid = mr["iid"].as_u64().unwrap();
        let resp = get(&sim, &format!("/api/v4/projects/{}/merge_requests/{iid}/approvals", project.id));
        assert_eq!(resp.status, 200);
        let a = resp.json();
        assert_eq!(a, world.merge_request_approvals(project.id, iid));
        assert_eq!(
            (a["id"].clone(), a["iid"].clone(), a["state"].clone()),
            (mr["id"].clone(), mr["iid"].clone(), mr["state"].clone())
        );
        let approved = a["approved_by"].as_array().unwrap();
        let left = a["approvals_required"].as_u64().unwrap().saturating_sub(approved.len() as u64);
        assert_eq!(a["approvals_left"], left);
        assert_eq!(a["approved"], left == 0);
        let reviewers: HashSet<u64> = ids(mr["reviewers"].as_array().unwrap()).into_iter().collect();
        assert!(approved.iter().all(|u| reviewers.contains(&u["user"]["id"].as_u64().unwrap())));
    }
    assert_eq!(get(&sim, &format!("/api/v4/projects/{}/merge_requests/9999/approvals", project.id)).status, 404);
}
