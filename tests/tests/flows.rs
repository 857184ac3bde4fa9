//! Flows end to end: flow files (good ones run, bad ones are refused whole with `file:line: key`
//! errors before any request or write), `host check`, incremental reruns from the watermark, and a
//! `kill -9` or a Ctrl-C in the middle of a run resumed from its checkpoint; a Ctrl-C while the
//! destination is being connected to ends the run at once. The real host, the real gitlab.wasm, the
//! simulator over real HTTP.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitlab_sim::Simulator;
use serde_json::Value;
use support::{HostRun, SilentServer, TOKEN, artifacts, send_ctrl_c, simulator, sqlite_ids, temp_dir, utc_millis};

/// A flow file: the plugin and `top` (top-level keys), the simulator with the token from
/// `GITLAB_TOKEN`, `body` (the objects), and `sqlite:out.db` beside the file.
fn flow_text(sim: &Simulator, top: &str, body: &str) -> String {
    format!(
        "plugin = \"{}\"\n{top}\n[connection]\nbase_url = \"{}\"\n\n[connection.credential]\nenv = \"GITLAB_TOKEN\"\n\n\
         {body}\n[destination]\nurl = \"sqlite:out.db\"\n",
        artifacts().gitlab_wasm.display(),
        sim.base_url()
    )
}

/// Run the host in `dir` (so that a flow file there is named `flow.toml` in errors).
fn host_in(dir: &Path, args: &[&str], token: Option<&str>) -> HostRun {
    command(dir, args, token).output().expect("running host").into()
}

fn command(dir: &Path, args: &[&str], token: Option<&str>) -> Command {
    let mut command = Command::new(&artifacts().host);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("GITLAB_TOKEN")
        .env_remove("GITLAB_OAUTH_TOKEN")
        .env_remove("HOST_PLUGIN");
    if let Some(token) = token {
        command.env("GITLAB_TOKEN", token);
    }
    command
}

/// The `error:` line of a failed run.
fn error_line(run: &HostRun) -> String {
    assert!(!run.success, "should have failed: {}", run.output());
    run.error_line().to_owned()
}

/// The 1-based line of the first line of `text` containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines().position(|l| l.contains(marker)).unwrap_or_else(|| panic!("'{marker}' not in {text}")) + 1
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The checkpoints in `db`: (scope, page token, watermark) by scope.
fn checkpoints(db: &Path, flow: &str) -> HashMap<String, (Option<String>, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.prepare("SELECT scope, page_token, watermark FROM _checkpoints WHERE flow = ?1")
        .unwrap()
        .query_map([flow], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The highest `updated_at` of a project's issues, as the connector normalizes it.
fn newest_issue(sim: &Simulator, project: &str) -> String {
    let world = sim.world();
    let id = world.project_by_ref(project).unwrap().id;
    world.issues(id).iter().map(|i| utc_millis(i["updated_at"].as_str().unwrap())).max().unwrap()
}

/// `at` minus `minutes`, in the connector's format.
fn minus_minutes(at: &str, minutes: i64) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc);
    (at - chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn a_flow_file_runs_its_objects_with_a_token_from_a_file() {
    let sim = simulator();
    let dir = temp_dir();
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // A token file only its owner may read, as the host requires.
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        r#"plugin = "{plugin}"
concurrency = 2

[connection]
base_url = "{base}"

[connection.credential]
file = "token.txt"
kind = "bearer"

[[objects]]
object = "issue"
projects = ["demo/api"]
fields = ["title", "state"]
filters = ["state = opened"]

[[objects]]
object = "project_merge_request"
projects = ["demo/website", "demo/api"]

[destination]
url = "sqlite:out/gitlab.db"
"#,
        plugin = artifacts().gitlab_wasm.display(),
        base = sim.base_url()
    );
    std::fs::write(dir.path().join("nightly.toml"), &text).unwrap();
    let run = host_in(dir.path(), &["run", "--flow", "nightly.toml", "--summary-json", "summary.json"], None);
    assert!(run.success, "{}", run.output());

    // Paths in the file are relative to it; the token file's token went out as a bearer token.
    let db = dir.path().join("out/gitlab.db");
    let world = sim.world();
    let api = world.project_by_ref("demo/api").unwrap().id;
    let website = world.project_by_ref("demo/website").unwrap().id;
    let opened: BTreeSet<i64> =
        world.issues(api).iter().filter(|i| i["state"] == "opened").map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(!opened.is_empty());
    assert_eq!(sqlite_ids(&db, "issue"), opened);
    let mrs: BTreeSet<i64> = [api, website]
        .iter()
        .flat_map(|p| world.merge_requests(*p).iter().map(|m| m["id"].as_i64().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_eq!(sqlite_ids(&db, "project_merge_request"), mrs);
    for request in sim.requests() {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(request.header("private-token"), None);
    }
    assert!(!run.output().contains(TOKEN));

    let summary = read_json(&dir.path().join("summary.json"));
    assert_eq!(summary["flow"], "nightly", "the id is the file's stem");
    assert_eq!(summary["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(summary["records"].as_u64().unwrap() as usize, opened.len() + mrs.len());
    assert_eq!(summary["requests"].as_u64().unwrap() as usize, sim.request_count());
    assert!(summary["partitions"].as_array().unwrap().iter().all(|p| p["start"] == "full" && p["status"] == "done"));
    // The destination's threads (checking, inserting, syncing) used CPU, and the summary says how much.
    let destination_cpu = summary["destination_cpu_seconds"].as_f64().unwrap();
    assert!(destination_cpu > 0.0 && destination_cpu < summary["seconds"].as_f64().unwrap() * 2.0, "{summary:#}");
    // And the whole process's, which holds both.
    let process_cpu = summary["process_cpu_seconds"].as_f64().unwrap();
    assert!(process_cpu >= destination_cpu + summary["cpu_seconds"].as_f64().unwrap(), "{summary:#}");
    assert!(
        run.stdout.contains(&format!(
            "s in the plugin, {destination_cpu:.2} s in the destination, {process_cpu:.2} s in the whole process"
        )),
        "{}",
        run.stdout
    );
    let keys: BTreeSet<String> = checkpoints(&db, "nightly").into_keys().collect();
    assert_eq!(keys, BTreeSet::from([format!("project-{api}"), format!("project-{website}")]));
}

#[test]
fn bad_flow_files_are_refused_whole_naming_file_line_and_key() {
    let sim = simulator();
    let good_object = "[[objects]]\nobject = \"issue\"\nprojects = [\"demo/api\"]\n";
    // (top-level keys, objects, the text marking the line at fault, the key, what the error says)
    let cases: &[(&str, String, &str, &str, &str)] = &[
        ("", format!("{good_object}colour = \"red\"\n"), "colour", "objects[0].colour", "unknown field `colour`"),
        (
            "concurrency = \"eight\"\n",
            good_object.to_owned(),
            "concurrency",
            "concurrency",
            "invalid type: string \"eight\", expected u32",
        ),
        (
            "",
            format!("{good_object}filters = [\"state\"]\n"),
            "filters",
            "objects[0].filters[0]",
            "filter 'state' is incomplete",
        ),
        (
            "",
            format!("{good_object}filters = [\n  \"state = opened\",\n  \"state >= opened\",\n]\n"),
            "state >=",
            "objects[0].filters[1]",
            "filter on 'issue.state' does not accept '>='; allowed: =",
        ),
        (
            "",
            format!("{good_object}fields = [\"title\", \"colour\"]\n"),
            "fields",
            "objects[0].fields[1]",
            "'colour' is not a field of this object",
        ),
        (
            "",
            format!("{good_object}\n[[objects]]\nobject = \"issues\"\ngroups = [\"demo\"]\n"),
            "\"issues\"",
            "objects[1].object",
            "unknown object 'issues'",
        ),
        (
            "",
            "[[objects]]\nobject = \"issue\"\nfields = [\"title\"]\n".to_owned(),
            "[[objects]]",
            "objects[0]",
            "no scope to read 'issue' under",
        ),
        (
            "",
            format!("{good_object}\n[state]\nurl = \"postgres://u@db.example/state?sslmode=require\"\n"),
            "postgres://",
            "state.url",
            "asks for sslmode=require, but this host speaks to PostgreSQL without TLS",
        ),
        (
            "",
            "[[objects]]\nobject = \"group_member\"\nprojects = [\"demo/api\"]\n".to_owned(),
            "projects",
            "objects[0].projects[0]",
            "object 'group_member' cannot be read at project scope",
        ),
    ];
    for (top, body, marker, key, says) in cases {
        let dir = temp_dir();
        let text = flow_text(&sim, top, body);
        std::fs::write(dir.path().join("flow.toml"), &text).unwrap();
        let run = host_in(dir.path(), &["run", "--flow", "flow.toml"], Some(TOKEN));
        let error = error_line(&run);
        let place = format!("error: flow.toml:{}: {key}: ", line_of(&text, marker));
        assert!(error.starts_with(&place), "expected '{place}...', got '{error}'");
        assert!(error.contains(says), "'{error}' should say '{says}'");
        assert_eq!(sim.request_count(), 0, "{key}: no request may be sent");
        assert!(!dir.path().join("out.db").exists(), "{key}: nothing may be written");
    }

    // A credential the flow names but the environment lacks.
    let dir = temp_dir();
    let text = flow_text(&sim, "", good_object).replace("GITLAB_TOKEN", "HOST_TEST_UNSET_TOKEN");
    std::fs::write(dir.path().join("flow.toml"), &text).unwrap();
    let error = error_line(&host_in(dir.path(), &["run", "--flow", "flow.toml"], Some(TOKEN)));
    let place = format!("error: flow.toml:{}: connection.credential.env: ", line_of(&text, "HOST_TEST_UNSET_TOKEN"));
    assert!(error.starts_with(&place) && error.contains("HOST_TEST_UNSET_TOKEN is not set"), "{error}");
    assert_eq!(sim.request_count(), 0);
}

#[test]
fn host_check_names_the_tokens_user_or_explains_the_401() {
    let sim = simulator();
    let dir = temp_dir();
    let projects = ["demo/api", "demo/website", "demo/mobile-app"];
    let objects = format!("[[objects]]\nobject = \"issue\"\nprojects = {projects:?}\n");
    let text = flow_text(&sim, "", &objects);
    std::fs::write(dir.path().join("flow.toml"), &text).unwrap();

    let run = host_in(dir.path(), &["check", "--flow", "flow.toml"], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    assert!(run.stdout.contains("flow.toml: valid"), "{}", run.stdout);
    assert!(run.stdout.contains("authenticated as @root"), "{}", run.stdout);
    // Looked up at once, reported in the flow's order.
    let scopes: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("scope: ")).collect();
    let expected: Vec<String> = projects
        .iter()
        .map(|p| format!("scope: project {p} is project {}", sim.world().project_by_ref(p).unwrap().id))
        .collect();
    assert_eq!(scopes, expected, "{}", run.stdout);
    let paths: BTreeSet<String> = sim.requests().iter().map(|r| r.path.clone()).collect();
    let mut one_each: BTreeSet<String> = projects.iter().map(|p| format!("/api/v4/projects/{p}")).collect();
    one_each.insert("/api/v4/user".into());
    assert_eq!(paths, one_each, "one request for the token, one per scope");
    assert_eq!(sim.request_count(), 4);
    assert!(!dir.path().join("out.db").exists(), "check writes nothing");

    let wrong = "glpat-wrong-0000000000";
    let run = host_in(dir.path(), &["check", "--flow", "flow.toml"], Some(wrong));
    let error = error_line(&run);
    let place = format!("error: flow.toml:{}: connection.credential: ", line_of(&text, "[connection.credential]"));
    assert!(error.starts_with(&place), "expected '{place}...', got '{error}'");
    assert!(error.contains("GitLab refused the token (401 Unauthorized)"), "{error}");
    assert!(error.contains("put it in the environment variable GITLAB_TOKEN"), "{error}");
    assert!(!run.output().contains(wrong), "the token leaked: {}", run.output());
    assert_eq!(sim.request_count(), 5, "the 401 stops the check at its first request");
}

#[test]
fn an_incremental_rerun_reads_from_the_watermark_minus_the_lookback() {
    let sim = simulator();
    let dir = temp_dir();
    let projects = ["demo/api", "demo/website"];
    let text = flow_text(
        &sim,
        "mode = \"incremental\"\npage_size = 20\n",
        "[[objects]]\nobject = \"issue\"\nprojects = [\"demo/api\", \"demo/website\"]\n",
    );
    std::fs::write(dir.path().join("flow.toml"), &text).unwrap();
    let db = dir.path().join("out.db");
    let world = sim.world();
    let ids: Vec<u64> = projects.iter().map(|p| world.project_by_ref(p).unwrap().id).collect();
    let all_issues: usize = ids.iter().map(|id| world.issues(*id).len()).sum();

    // First run: no watermark yet, so everything.
    let run = host_in(dir.path(), &["run", "--flow", "flow.toml", "--summary-json", "first.json"], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let first = read_json(&dir.path().join("first.json"));
    for partition in first["partitions"].as_array().unwrap() {
        assert_eq!(partition["start"], "full: no watermark yet");
        assert!(partition["pages"].as_u64().unwrap() > 1, "demo projects have more than 20 issues");
    }
    assert_eq!(first["records"].as_u64().unwrap() as usize, all_issues);
    let saved = checkpoints(&db, "flow");
    for (project, id) in projects.iter().zip(&ids) {
        let (token, watermark) = &saved[&format!("project-{id}")];
        assert_eq!(token, &None, "the read completed");
        assert_eq!(watermark.as_deref(), Some(newest_issue(&sim, project).as_str()), "{project}");
    }

    // Second run, nothing changed upstream: one page per partition, from the watermark minus 5 minutes.
    let before = sim.request_count();
    let run = host_in(dir.path(), &["run", "--flow", "flow.toml", "--summary-json", "second.json"], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let second = read_json(&dir.path().join("second.json"));
    let requests = &sim.requests()[before..];
    assert_eq!(second["requests"].as_u64().unwrap() as usize, requests.len());
    for (project, id) in projects.iter().zip(&ids) {
        let since = minus_minutes(&newest_issue(&sim, project), 5);
        let partition = second["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["scope"] == format!("project {project}"))
            .unwrap();
        assert_eq!(partition["incremental_since"], since.as_str());
        assert_eq!(partition["start"], format!("incremental from {since}"));
        assert_eq!((partition["pages"].as_u64(), partition["requests"].as_u64()), (Some(1), Some(1)));
        let pages: Vec<_> = requests.iter().filter(|r| r.path == format!("/api/v4/projects/{id}/issues")).collect();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].query_param("updated_after"), Some(since.as_str()), "the cursor filter, pushed down");
        let changed = world.issues(*id).iter().filter(|i| utc_millis(i["updated_at"].as_str().unwrap()) >= since);
        assert_eq!(partition["records"].as_u64().unwrap() as usize, changed.count());
    }
    assert_eq!(sqlite_ids(&db, "issue").len(), all_issues, "upserts: the overlap doubles nothing");

    // The flow's selection changes (a new filter): its watermark belongs to other records, so one full read.
    let filtered = text.replace("projects = [", "filters = [\"state = opened\"]\nprojects = [");
    std::fs::write(dir.path().join("flow.toml"), filtered).unwrap();
    let before = sim.request_count();
    let run = host_in(dir.path(), &["run", "--flow", "flow.toml", "--summary-json", "third.json"], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let third = read_json(&dir.path().join("third.json"));
    for partition in third["partitions"].as_array().unwrap() {
        assert_eq!(partition["start"], "full: the flow's selection changed since the last read");
    }
    assert!(sim.requests()[before..].iter().all(|r| r.query_param("updated_after").is_none()));
}

#[test]
fn flags_map_onto_the_same_flow_with_mode_state_and_lookback() {
    let sim = simulator();
    let dir = temp_dir();
    let state = dir.path().join("state/checkpoints.db");
    let state_url = format!("sqlite:{}", state.display());
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let base = sim.base_url();
    let args = [
        "run",
        "--plugin",
        &plugin,
        "--base-url",
        &base,
        "--object",
        "project",
        "--group",
        "demo",
        "--mode",
        "incremental",
        "--lookback",
        "10m",
        "--state",
        &state_url,
        "--dest",
        &dest,
        "--summary-json",
    ];
    let run = host_in(dir.path(), &[&args[..], &["first.json"]].concat(), Some(TOKEN));
    assert!(run.success, "{}", run.output());
    assert!(!dir.path().join("out/.checkpoints.db").exists(), "--state moves the checkpoints");
    let saved = checkpoints(&state, "cli");
    let demo = sim.world().group_by_ref("demo").unwrap().id;
    let (token, watermark) = &saved[&format!("group-{demo}")];
    assert_eq!(token, &None);
    let newest = sim
        .world()
        .projects_in_group(demo, true)
        .iter()
        .map(|p| utc_millis(sim.world().project_json(p.id)["last_activity_at"].as_str().unwrap()))
        .max()
        .unwrap();
    assert_eq!(watermark.as_deref(), Some(newest.as_str()));

    let before = sim.request_count();
    let run = host_in(dir.path(), &[&args[..], &["second.json"]].concat(), Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let second = read_json(&dir.path().join("second.json"));
    let since = minus_minutes(&newest, 10);
    assert_eq!(second["flow"], "cli");
    assert_eq!(second["state"], state_url);
    assert_eq!(second["partitions"][0]["incremental_since"], since.as_str());
    let page = sim.requests()[before..].iter().find(|r| r.path.ends_with("/projects")).cloned().unwrap();
    assert_eq!(page.query_param("last_activity_after"), Some(since.as_str()));
}

/// A run of `bigco/monorepo`'s issues into `DIR/big.db` (summary in `DIR/summary.json`), and what
/// the simulator holds for it.
struct BigRun {
    args: Vec<String>,
    db: std::path::PathBuf,
    project: u64,
    expected: BTreeSet<i64>,
    total_pages: usize,
}

impl BigRun {
    fn new(sim: &Simulator, dir: &Path) -> BigRun {
        let db = dir.join("big.db");
        let (plugin, base) = (artifacts().gitlab_wasm.display().to_string(), sim.base_url());
        let dest = format!("sqlite:{}", db.display());
        let args =
            ["run", "--plugin", &plugin, "--base-url", &base, "--object", "issue", "--project", "bigco/monorepo"]
                .into_iter()
                .chain(["--dest", &dest, "--summary-json", "summary.json"])
                .map(str::to_owned)
                .collect();
        let world = sim.world();
        let project = world.project_by_ref("bigco/monorepo").unwrap().id;
        let expected: BTreeSet<i64> = world.issues(project).iter().map(|i| i["id"].as_i64().unwrap()).collect();
        assert!(expected.len() > 10_000);
        BigRun { args, db, project, total_pages: expected.len().div_ceil(100), expected }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Start the run in `dir`; return it once a third of its pages were asked for.
    fn start_and_wait_for_a_third(&self, sim: &Simulator, dir: &Path) -> std::process::Child {
        let mut child =
            command(dir, &self.args(), Some(TOKEN)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while sim.request_count() < 1 + self.total_pages / 3 {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
            assert!(Instant::now() < deadline, "the run did not get going");
            std::thread::sleep(Duration::from_millis(1));
        }
        child
    }

    /// The page the saved checkpoint resumes from; every page before it is in the database, and
    /// nothing else: page and checkpoint commit together.
    fn next_page_saved(&self) -> usize {
        let saved = checkpoints(&self.db, "cli");
        let token = saved[&format!("project-{}", self.project)].0.clone().expect("a read in progress");
        let next_page = token.split(['?', '&']).find_map(|p| p.strip_prefix("page=")).unwrap().parse().unwrap();
        assert_eq!(sqlite_ids(&self.db, "issue").len(), (next_page - 1) * 100);
        next_page
    }

    /// Run the same command again in `dir`, after `asked` requests: it resumes at `next_page` and ends
    /// with exactly the upstream's issues.
    fn resume_and_check(&self, sim: &Simulator, dir: &Path, asked: usize, next_page: usize) {
        let run = host_in(dir, &self.args(), Some(TOKEN));
        assert!(run.success, "{}", run.output());
        let summary = read_json(&dir.join("summary.json"));
        let partition = &summary["partitions"][0];
        assert_eq!(partition["resumed"], true);
        assert_eq!(partition["start"], "resumed from checkpoint");
        assert_eq!(partition["pages"].as_u64().unwrap() as usize, self.total_pages - (next_page - 1));
        assert_eq!(partition["requests"], partition["pages"]);
        assert!(
            (summary["requests"].as_u64().unwrap() as usize) < 1 + self.total_pages,
            "fewer requests than a full read"
        );
        let resumed = &sim.requests()[asked..];
        let first_page = resumed.iter().find(|r| r.path.ends_with("/issues")).unwrap();
        assert_eq!(first_page.query_param("page"), Some(next_page.to_string().as_str()));
        assert_eq!(sqlite_ids(&self.db, "issue"), self.expected, "none missing, none doubled");
        let (token, watermark) = &checkpoints(&self.db, "cli")[&format!("project-{}", self.project)];
        assert_eq!(token, &None);
        assert_eq!(watermark.as_deref(), Some(newest_issue(sim, "bigco/monorepo").as_str()));
    }
}

#[test]
fn a_run_killed_mid_way_resumes_from_its_checkpoint_and_ends_exact() {
    let sim = simulator();
    let dir = temp_dir();
    let big = BigRun::new(&sim, dir.path());
    let mut child = big.start_and_wait_for_a_third(&sim, dir.path());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let asked = sim.request_count();
    assert!(asked < 1 + big.total_pages, "killed mid-way ({asked} requests)");
    let next_page = big.next_page_saved();
    big.resume_and_check(&sim, dir.path(), asked, next_page);
}

#[test]
fn ctrl_c_while_a_silent_database_is_being_connected_to_ends_the_run_at_once() {
    // A PostgreSQL destination that takes the connection and never answers: the host would wait for
    // it up to its 30 s connection limit. A Ctrl-C stops the wait: nothing was read or written.
    let sim = simulator();
    let dir = temp_dir();
    let silent = SilentServer::start();
    let dest = format!("postgres://etl@127.0.0.1:{}/warehouse", silent.port);
    let (plugin, base) = (artifacts().gitlab_wasm.display().to_string(), sim.base_url());
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--object", "issue", "--project", "demo/api"];
    let child = command(dir.path(), &args, Some(TOKEN))
        .args(["--dest", &dest, "--summary-json", "summary.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while silent.connections() == 0 {
        assert!(Instant::now() < deadline, "the host never connected to its destination");
        std::thread::sleep(Duration::from_millis(5));
    }
    let signalled = Instant::now();
    send_ctrl_c(&child);
    let run = HostRun::from(child.wait_with_output().unwrap());
    assert!(signalled.elapsed() < Duration::from_secs(15), "the wait was not cut short: {}", run.output());
    assert_eq!(run.code, Some(130), "{}", run.output());
    assert!(
        run.stderr.contains("error: interrupted while opening the destination: nothing was read or written"),
        "{}",
        run.output()
    );
    let summary = read_json(&dir.path().join("summary.json"));
    assert_eq!(summary["partitions"].as_array().map(Vec::len), Some(0), "{}", run.output());
    assert_eq!(sim.request_count(), 1, "only planning's lookup of the project");
}

#[test]
fn a_run_interrupted_by_ctrl_c_writes_what_it_read_reports_and_resumes_exact() {
    let sim = simulator();
    let dir = temp_dir();
    let big = BigRun::new(&sim, dir.path());
    let child = big.start_and_wait_for_a_third(&sim, dir.path());
    send_ctrl_c(&child);
    let run = HostRun::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(130), "exit status 130, as for Ctrl-C\n{}", run.output());
    assert!(run.stderr.contains("interrupted: writing the pages already read, then stopping"), "{}", run.stderr);
    assert!(
        run.stderr
            .trim_end()
            .ends_with("interrupted: run the same command again to resume where each partition stopped")
    );
    assert!(
        run.stdout.contains("failed: interrupted (the next run resumes from its last checkpoint)"),
        "{}",
        run.stdout
    );
    let asked = sim.request_count();
    assert!(asked < 1 + big.total_pages, "stopped mid-way ({asked} requests)");

    // Every page it read is written, and its summary says how many: the last read page is durable.
    let summary = read_json(&dir.path().join("summary.json"));
    let partition = &summary["partitions"][0];
    assert_eq!(partition["status"], "failed");
    assert_eq!(partition["reason"], "interrupted (the next run resumes from its last checkpoint)");
    let next_page = big.next_page_saved();
    assert_eq!(partition["pages"].as_u64().unwrap() as usize, next_page - 1, "every page read was written");
    assert_eq!(partition["records"].as_u64().unwrap() as usize, sqlite_ids(&big.db, "issue").len());
    big.resume_and_check(&sim, dir.path(), asked, next_page);
}
