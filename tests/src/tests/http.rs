//! A started simulator, spoken to over real HTTP (ureq): pagination, keyset pagination, auth,
//! path-encoded ids, filters, errors and the request log.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::Value;

use crate::auth::Caller;
use crate::cache::ListCache;
use crate::pagination::RequestUrl;
use crate::query::Query;
use crate::routes::Ctx;
use crate::{BIG_PROJECT, ISSUES_DISABLED_PROJECT, MERGE_REQUESTS_DISABLED_PROJECT, SimConfig, Simulator, WorldShape};

pub(super) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn items(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(items) => items,
            other => panic!("not an array: {other}"),
        }
    }

    /// The URL of a `rel` in the Link header.
    pub fn link(&self, rel: &str) -> Option<String> {
        let link = self.header("link")?;
        link.split(", ").find_map(|part| {
            let (url, r) = part.split_once(">; rel=\"")?;
            (r.trim_end_matches('"') == rel).then(|| url.trim_start_matches('<').to_owned())
        })
    }
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

pub(super) fn get_with(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut request = agent.get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let headers =
        response.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    Resp {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_string().unwrap(),
    }
}

pub(super) fn get(sim: &Simulator, path_and_query: &str) -> Resp {
    get_with(&agent(), &format!("{}{path_and_query}", sim.base_url()), &[])
}

pub(super) fn small() -> Simulator {
    Simulator::start(SimConfig { world: WorldShape::small(), ..SimConfig::default() }).unwrap()
}

pub(super) fn ids(items: &[Value]) -> Vec<u64> {
    items.iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

#[test]
fn offset_pagination_headers_first_middle_last() {
    let sim = small();
    let project = sim.world().project_by_ref("demo/api").unwrap();
    let total = project.issue_count;
    let per_page = 7;
    let pages = total.div_ceil(per_page);
    let base = format!("/api/v4/projects/{}/issues?state=all&per_page={per_page}", project.id);

    let first = get(&sim, &base);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-page"), Some("1"));
    assert_eq!(first.header("x-per-page"), Some("7"));
    assert_eq!(first.header("x-prev-page"), Some(""));
    assert_eq!(first.header("x-next-page"), Some("2"));
    assert_eq!(first.header("x-total"), Some(total.to_string().as_str()));
    assert_eq!(first.header("x-total-pages"), Some(pages.to_string().as_str()));
    assert!(first.link("prev").is_none());
    assert!(first.link("next").is_some() && first.link("first").is_some());
    assert!(first.link("last").unwrap().contains(&format!("page={pages}")));
    assert_eq!(first.items().len(), per_page);

    let middle = get(&sim, &format!("{base}&page=2"));
    assert_eq!(middle.header("x-prev-page"), Some("1"));
    assert_eq!(middle.header("x-next-page"), Some("3"));
    assert!(middle.link("prev").unwrap().contains("page=1"));

    let last = get(&sim, &format!("{base}&page={pages}"));
    assert_eq!(last.header("x-next-page"), Some(""));
    assert!(last.link("next").is_none());
    assert_eq!(last.items().len(), total - (pages - 1) * per_page);

    let past = get(&sim, &format!("{base}&page={}", pages + 5));
    assert_eq!(past.status, 200);
    assert_eq!(past.body, "[]");
    assert_eq!(past.header("x-total"), Some(total.to_string().as_str()));

    // Walking with Link rel="next" visits every issue once, newest first.
    let mut seen = Vec::new();
    let mut url = Some(format!("{}{base}", sim.base_url()));
    let agent = agent();
    while let Some(u) = url {
        let page = get_with(&agent, &u, &[]);
        seen.extend(ids(&page.items()));
        url = page.link("next");
    }
    let mut expected: Vec<u64> = ids(sim.world().issues(project.id));
    expected.reverse();
    assert_eq!(seen, expected);
}

#[test]
fn links_keep_every_other_parameter() {
    let sim = small();
    let project = sim.world().project_by_ref("demo/website").unwrap();
    let label = project.labels[0].replace(' ', "%20").replace(':', "%3A");
    let query = format!("state=all&labels={label}&iids%5B%5D=1&iids%5B%5D=2&order_by=updated_at&sort=asc");
    let resp = get(&sim, &format!("/api/v4/projects/demo%2Fwebsite/issues?{query}&per_page=1"));
    assert_eq!(resp.status, 200);
    let first = resp.link("first").unwrap();
    assert_eq!(first, format!("{}/api/v4/projects/demo%2Fwebsite/issues?{query}&per_page=1&page=1", sim.base_url()));
}

#[test]
fn per_page_is_clamped_and_validated() {
    let sim = small();
    let resp = get(&sim, "/api/v4/projects/demo%2Fapi/issues?per_page=1000");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-per-page"), Some("100"));
    assert!(resp.items().len() <= 100);
    for bad in ["0", "-3", "ten", "1.5"] {
        let resp = get(&sim, &format!("/api/v4/projects/demo%2Fapi/issues?per_page={bad}"));
        assert_eq!(resp.status, 400, "per_page={bad}");
        assert_eq!(resp.json()["error"], "per_page is invalid");
    }
    for bad in ["state=open", "sort=up", "updated_after=yesterday", "iids[]=x", "order_by=x"] {
        let resp = get(&sim, &format!("/api/v4/projects/demo%2Fapi/issues?{bad}"));
        assert_eq!(resp.status, 400, "{bad}");
        assert!(resp.json()["error"].is_string());
    }
}

#[test]
fn counts_above_ten_thousand_are_not_disclosed() {
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let big = sim.world().project_by_ref(BIG_PROJECT).unwrap();
    let path = format!("/api/v4/projects/{}/issues", "bigco%2Fmonorepo");
    let resp = get(&sim, &format!("{path}?state=all&per_page=100"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.items().len(), 100);
    assert_eq!(resp.header("x-total"), None);
    assert_eq!(resp.header("x-total-pages"), None);
    assert!(resp.link("last").is_none());
    assert_eq!(resp.header("x-next-page"), Some("2"));
    let last_page = 12_345usize.div_ceil(100);
    let last = get(&sim, &format!("{path}?state=all&per_page=100&page={last_page}"));
    assert_eq!(last.items().len(), 45);
    assert_eq!(last.header("x-next-page"), Some(""));
    // A filtered list under the limit is counted again.
    let closed = big.issue_count - big.open_issues_count;
    assert!(closed <= 10_000);
    let resp = get(&sim, &format!("{path}?state=closed&per_page=100"));
    assert_eq!(resp.header("x-total"), Some(closed.to_string().as_str()));
    assert!(resp.link("last").is_some());
}

#[test]
fn keyset_pagination_walks_all_projects() {
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let all: Vec<u64> = sim.world().projects().iter().map(|p| p.id).collect();
    for (sort, cursor) in [("asc", "id_after"), ("desc", "id_before")] {
        let agent = agent();
        let mut url = Some(format!(
            "{}/api/v4/projects?pagination=keyset&per_page=20&order_by=id&sort={sort}&archived=false",
            sim.base_url()
        ));
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(u) = url {
            let page = get_with(&agent, &u, &[]);
            assert_eq!(page.status, 200);
            for h in ["x-total", "x-total-pages", "x-page"] {
                assert_eq!(page.header(h), None, "{h}");
            }
            url = page.link("next");
            if let Some(next) = &url {
                assert!(next.contains("archived=false"), "{next}");
                assert!(next.contains(&format!("{cursor}=")), "{next}");
                assert!(page.link("prev").is_none() && page.link("last").is_none());
            }
            seen.extend(ids(&page.items()));
            pages += 1;
        }
        let mut expected: Vec<u64> = sim.world().projects().iter().filter(|p| !p.archived).map(|p| p.id).collect();
        if sort == "desc" {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{sort}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
        assert!(pages > 5);
    }
    assert!(all.len() > 150);
}

#[test]
fn auth_rules() {
    let sim = Simulator::start(SimConfig {
        token: Some("glpat-secret".into()),
        world: WorldShape::small(),
        ..SimConfig::default()
    })
    .unwrap();
    let agent = agent();
    let url = format!("{}/api/v4/user", sim.base_url());
    let by_header = get_with(&agent, &url, &[("PRIVATE-TOKEN", "glpat-secret")]);
    assert_eq!(by_header.status, 200);
    assert_eq!(by_header.json()["username"], "root");
    let bearer = get_with(&agent, &url, &[("Authorization", "Bearer glpat-secret")]);
    assert_eq!(bearer.status, 200);
    for headers in [vec![("PRIVATE-TOKEN", "wrong")], vec![("Authorization", "Bearer wrong")], vec![]] {
        let resp = get_with(&agent, &url, &headers);
        assert_eq!(resp.status, 401);
        assert_eq!(resp.body, r#"{"message":"401 Unauthorized"}"#);
        let projects = get_with(&agent, &format!("{}/api/v4/projects", sim.base_url()), &headers);
        assert_eq!(projects.status, 401);
    }
    let recorded = sim.requests();
    assert_eq!(recorded.len(), sim.request_count());
    assert_eq!(recorded[0].header("private-token"), Some("glpat-secret"));
    assert_eq!(recorded[0].status, 200);
    assert_eq!(recorded[2].status, 401);

    // Without a configured token everything is readable anonymously, but there is no `/user`.
    let open = small();
    assert_eq!(get(&open, "/api/v4/projects").status, 200);
    assert_eq!(get(&open, "/api/v4/user").status, 401);
}

#[test]
fn ids_may_be_url_encoded_paths() {
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let project =
        sim.world().projects().iter().find(|p| p.path_with_namespace.starts_with("acme/platform/infra/")).unwrap();
    let encoded = project.path_with_namespace.replace('/', "%2F");
    let by_path = get(&sim, &format!("/api/v4/projects/{encoded}"));
    let by_id = get(&sim, &format!("/api/v4/projects/{}", project.id));
    assert_eq!(by_path.status, 200);
    assert_eq!(by_path.body, by_id.body);
    assert_eq!(by_path.json()["path_with_namespace"], project.path_with_namespace);

    let group = get(&sim, "/api/v4/groups/acme%2Fplatform%2Finfra");
    assert_eq!(group.status, 200);
    assert_eq!(group.json()["full_path"], "acme/platform/infra");
    assert!(group.json()["projects"].is_array());

    let subgroups = get(&sim, "/api/v4/groups/acme/projects?include_subgroups=true&per_page=100");
    assert_eq!(subgroups.header("x-total"), Some("150"));
    let direct = get(&sim, "/api/v4/groups/acme/projects");
    let direct_count = sim.world().projects_in_group(sim.world().group_by_ref("acme").unwrap().id, false).len();
    assert_eq!(direct.header("x-total"), Some(direct_count.to_string().as_str()));

    let missing = get(&sim, "/api/v4/projects/acme%2Fnope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, r#"{"message":"404 Project Not Found"}"#);
    let missing = get(&sim, "/api/v4/groups/999999/projects");
    assert_eq!(missing.body, r#"{"message":"404 Group Not Found"}"#);
    let route = get(&sim, "/api/v4/projects/acme/platform/issues");
    assert_eq!(route.status, 404);
    assert_eq!(route.body, r#"{"error":"404 Not Found"}"#);

    let recorded = sim.requests();
    assert_eq!(recorded[0].path, format!("/api/v4/projects/{}", project.path_with_namespace));
    assert_eq!(recorded[0].raw_path_and_query, format!("/api/v4/projects/{encoded}"));
    assert_eq!(recorded[3].query_param("include_subgroups"), Some("true"));
    assert!(recorded.iter().all(|r| r.headers.iter().all(|(n, _)| *n == n.to_lowercase())));
}

#[test]
fn disabled_features_answer_403() {
    let sim = small();
    let resp = get(&sim, "/api/v4/projects/acme%2Fplatform%2Fsecrets-vault/issues");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body, r#"{"message":"403 Forbidden"}"#);
    let mrs = get(&sim, "/api/v4/projects/acme%2Fplatform%2Fsecrets-vault/merge_requests");
    assert_eq!(mrs.status, 200);
    let path = MERGE_REQUESTS_DISABLED_PROJECT.replace('/', "%2F");
    assert_eq!(get(&sim, &format!("/api/v4/projects/{path}/merge_requests")).status, 403);
    assert!(sim.world().project_by_ref(ISSUES_DISABLED_PROJECT).is_some());
    let enabled_only = get(&sim, "/api/v4/projects?with_issues_enabled=true&per_page=100");
    assert!(enabled_only.items().iter().all(|p| p["issues_enabled"] == true));
}

#[test]
fn issue_filters() {
    let sim = small();
    let world = sim.world();
    let project = world.project_by_ref("demo/mobile-app").unwrap();
    let all = world.issues(project.id);
    let base = format!("/api/v4/projects/{}/issues?per_page=100", project.id);
    let fetch_all = |extra: &str| -> Vec<Value> {
        let agent = agent();
        let mut out = Vec::new();
        let mut url = Some(format!("{}{base}{extra}", sim.base_url()));
        while let Some(u) = url {
            let page = get_with(&agent, &u, &[]);
            assert_eq!(page.status, 200, "{u}: {}", page.body);
            out.extend(page.items());
            url = page.link("next");
        }
        out
    };

    let opened = fetch_all("&state=opened");
    assert_eq!(opened.len(), project.open_issues_count);
    assert!(opened.iter().all(|i| i["state"] == "opened"));
    let closed = fetch_all("&state=closed");
    assert_eq!(opened.len() + closed.len(), all.len());

    // updated_after / updated_before are inclusive, to the millisecond.
    let pivot = &all[all.len() / 2];
    let at = pivot["updated_at"].as_str().unwrap();
    let encoded = at.replace(':', "%3A");
    let after = fetch_all(&format!("&updated_after={encoded}"));
    let before = fetch_all(&format!("&updated_before={encoded}"));
    assert!(ids(&after).contains(&pivot["id"].as_u64().unwrap()));
    assert!(ids(&before).contains(&pivot["id"].as_u64().unwrap()));
    let at_count = all.iter().filter(|i| i["updated_at"] == at).count();
    assert_eq!(after.len() + before.len(), all.len() + at_count);
    assert!(after.iter().all(|i| i["updated_at"].as_str().unwrap() >= at));

    // iids[] (repeatable).
    let picked = fetch_all("&iids[]=3&iids[]=1&iids%5B%5D=5");
    let mut iids: Vec<u64> = picked.iter().map(|i| i["iid"].as_u64().unwrap()).collect();
    iids.sort_unstable();
    assert_eq!(iids, vec![1, 3, 5]);

    // Default order: created_at desc; asc reverses it.
    let asc = fetch_all("&sort=asc");
    assert_eq!(asc.first().unwrap()["iid"], 1);

    // Labels: every listed label must be present.
    let label = &project.labels[0];
    let labelled = fetch_all(&format!("&labels={}", label.replace(' ', "+").replace(':', "%3A")));
    let expected = all.iter().filter(|i| i["labels"].as_array().unwrap().iter().any(|l| l == label.as_str())).count();
    assert_eq!(labelled.len(), expected);

    // Unknown author: nothing, not an error.
    assert!(fetch_all("&author_username=nobody-here").is_empty());
    let author = all[0]["author"]["id"].as_u64().unwrap();
    let by_author = fetch_all(&format!("&author_id={author}"));
    assert!(!by_author.is_empty() && by_author.iter().all(|i| i["author"]["id"] == author));
}

#[test]
fn merge_request_filters() {
    let sim = small();
    let project = sim.world().project_by_ref("demo/api").unwrap();
    let all = sim.world().merge_requests(project.id);
    let merged = all.iter().filter(|m| m["state"] == "merged").count();
    let resp = get(&sim, &format!("/api/v4/projects/{}/merge_requests?state=merged&per_page=100", project.id));
    assert_eq!(resp.header("x-total"), Some(merged.to_string().as_str()));
    assert!(resp.items().iter().all(|m| m["state"] == "merged"));
    let drafts = get(&sim, &format!("/api/v4/projects/{}/merge_requests?wip=yes&per_page=100", project.id));
    assert!(drafts.items().iter().all(|m| m["draft"] == true));
    let bad = get(&sim, &format!("/api/v4/projects/{}/merge_requests?state=nope", project.id));
    assert_eq!(bad.status, 400);
}

#[test]
fn same_seed_same_answers() {
    let a = small();
    let b = small();
    for path in [
        "/api/v4/projects?per_page=100",
        "/api/v4/projects/demo%2Fapi/issues?per_page=100&page=2",
        "/api/v4/projects/demo%2Fapi/merge_requests?per_page=100",
        "/api/v4/groups/demo",
    ] {
        assert_eq!(get(&a, path).body, get(&b, path).body, "{path}");
    }
    let c = Simulator::start(SimConfig { seed: 7, world: WorldShape::small(), ..SimConfig::default() }).unwrap();
    let path = "/api/v4/projects/demo%2Fapi/issues?per_page=100";
    assert_ne!(get(&a, path).body, get(&c, path).body);
}

#[test]
fn start_async_serves_on_the_callers_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let sim =
            Simulator::start_async(SimConfig { world: WorldShape::small(), ..SimConfig::default() }).await.unwrap();
        let url = format!("{}/api/v4/projects/demo%2Fapi", sim.base_url());
        let body = tokio::task::spawn_blocking(move || get_with(&agent(), &url, &[])).await.unwrap();
        assert_eq!(body.status, 200);
        assert_eq!(sim.request_count(), 1);
    });
}

#[test]
fn a_page_of_100_issues_is_cheap() {
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let world = sim.world();
    let path = BIG_PROJECT;
    let query = Query::parse(Some("state=all&per_page=100&page=50"));
    let lists = ListCache::default();
    let ctx = Ctx {
        world,
        lists: &lists,
        query: &query,
        caller: Caller::Anonymous,
        url: RequestUrl {
            host: "127.0.0.1:1",
            path: "/api/v4/projects/bigco%2Fmonorepo/issues",
            query: "state=all&per_page=100&page=50",
        },
    };
    let started = Instant::now();
    let first = ctx.issues(path).unwrap();
    eprintln!("first page (generates bigco/monorepo's 12,345 issues): {:?}", started.elapsed());
    let rounds = 200;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += ctx.issues(path).unwrap().body.len();
    }
    let per_page = started.elapsed() / rounds;
    eprintln!("a page of 100 issues ({} bytes) in {per_page:?}", bytes / rounds as usize);
    assert_eq!(first.body.len(), bytes / rounds as usize);
    // Filtered by updated_after over all 12,345 issues.
    let query = Query::parse(Some("state=opened&updated_after=2024-01-01T00:00:00Z&per_page=100"));
    let ctx = Ctx { query: &query, ..ctx };
    let started = Instant::now();
    for _ in 0..rounds {
        ctx.issues(path).unwrap();
    }
    eprintln!("a filtered page of 100 issues in {:?}", started.elapsed() / rounds);
    // Generous bound (shared CI machines); typical is well under a millisecond.
    assert!(per_page.as_millis() < 20, "{per_page:?}");

    let agent = agent();
    let url = format!("{}/api/v4/projects/bigco%2Fmonorepo/issues?per_page=100", sim.base_url());
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(get_with(&agent, &url, &[]).status, 200);
    }
    eprintln!("over HTTP (keep-alive, ureq): {:?} per page", started.elapsed() / 50);
}

#[test]
fn dropping_the_simulator_stops_it_promptly() {
    let sim = small();
    let agent = agent();
    let url = format!("{}/api/v4/version", sim.base_url());
    // Leave a keep-alive connection open in the agent's pool.
    assert_eq!(get_with(&agent, &url, &[]).status, 200);
    let head = agent.head(&format!("{}/api/v4/projects/demo%2Fapi", sim.base_url())).call().unwrap();
    assert_eq!(head.status().as_u16(), 200);
    let addr = sim.addr();
    let started = Instant::now();
    drop(sim);
    assert!(started.elapsed().as_secs_f64() < 2.0, "drop took {:?}", started.elapsed());
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after drop");
}
