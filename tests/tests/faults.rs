//! The outgoing gate against a hostile upstream: the real host and gitlab.wasm, the simulator injecting
//! faults over real HTTP.
//!
//! Every fault the simulator injects is one failed attempt the host must retry, so the counts match
//! exactly: the records written are the world's, every request the host counted reached the simulator,
//! the summary's `retries` equal the faults injected and its `rate_limited` the 429s sent. Budgets are
//! small (a few attempts, millisecond backoffs, a one-second HTTP timeout) so that the file runs fast.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use gitlab_sim::{FaultCounts, Faults, GroupShape, RateLimit, SimConfig, Simulator, ThrottleHeaders, WorldShape};
use serde_json::Value;
use support::{HostRun, TOKEN, artifacts, host, host_command, host_run, read_jsonl_object, send_ctrl_c, temp_dir};

/// Retry flags that keep the tests fast: quick backoffs, a short HTTP timeout.
const FAST_RETRIES: [&str; 8] =
    ["--retry-attempts", "4", "--retry-backoff-ms", "5", "--http-timeout-secs", "1", "--call-timeout-secs", "10"];

fn simulator(faults: Faults) -> Simulator {
    Simulator::start(SimConfig {
        token: Some(TOKEN.into()),
        world: WorldShape::small(),
        faults,
        ..SimConfig::default()
    })
    .expect("starting the simulator")
}

/// A finished `host run`: what it printed, its summary, and where it wrote.
struct Run {
    run: HostRun,
    summary: Value,
    dir: tempfile::TempDir,
}

impl Run {
    fn total(&self, field: &str) -> u64 {
        self.summary[field].as_u64().unwrap_or_else(|| panic!("no {field} in {}", self.summary))
    }

    /// The ids written for `object`, checking that none is written twice.
    fn ids(&self, object: &str) -> BTreeSet<i64> {
        let records = read_jsonl_object(&self.dir.path().join("out"), object);
        let ids: BTreeSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), records.len(), "{object}: a record was written twice");
        ids
    }
}

/// `host run` against `sim` with `args` and the fast retry flags, into JSONL, with a JSON summary.
fn run(sim: &Simulator, args: &[&str]) -> Run {
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let summary_path = dir.path().join("summary.json");
    let summary_arg = summary_path.to_str().unwrap().to_owned();
    let mut all = vec!["--dest", &dest, "--summary-json", &summary_arg];
    all.extend_from_slice(&FAST_RETRIES);
    all.extend_from_slice(args);
    let run = host_run(sim, &all, Some(TOKEN));
    let summary = std::fs::read(&summary_path)
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", run.output()));
    Run { run, summary, dir }
}

/// The ids of `object` ("issue" or "project_merge_request") in the `demo` projects.
fn world_ids(sim: &Simulator, object: &str) -> BTreeSet<i64> {
    let world = sim.world();
    let demo = world.group_by_ref("demo").unwrap();
    let mut ids = BTreeSet::new();
    for project in world.projects_in_group(demo.id, false) {
        let records = if object == "issue" { world.issues(project.id) } else { world.merge_requests(project.id) };
        ids.extend(records.iter().map(|r| r["id"].as_i64().unwrap()));
    }
    ids
}

fn injected(counts: &FaultCounts) -> u64 {
    counts.throttled + counts.server_errors + counts.unauthorized + counts.truncated + counts.stalled
}

/// The run succeeded with the world's exact records, and its counts match what the simulator did.
fn assert_exact(sim: &Simulator, result: &Run, objects: &[&str]) {
    assert!(result.run.success, "{}", result.run.output());
    for object in objects {
        assert_eq!(result.ids(object), world_ids(sim, object), "{object}");
    }
    let counts = sim.faults_injected();
    assert_eq!(result.total("requests"), sim.request_count() as u64, "every request counted reached GitLab");
    assert_eq!(result.total("retries"), injected(&counts), "one retry per injected fault: {counts:?}");
    assert_eq!(result.total("rate_limited"), counts.throttled + counts.rate_limited, "{counts:?}");
    let partitions = result.summary["partitions"].as_array().unwrap();
    let retries: u64 = partitions.iter().map(|p| p["retries"].as_u64().unwrap()).sum();
    let planning_retries = result.total("retries") - retries;
    assert_eq!(
        result.total("pages") + result.total("planning_requests") + retries + planning_retries,
        result.total("requests"),
        "requests are pages, planning and retries, nothing else"
    );
    assert!(partitions.iter().all(|p| p["bytes_in"].as_u64().unwrap() > 0));
}

#[test]
fn server_errors_and_truncated_bodies_are_retried_to_the_exact_records() {
    let sim = simulator(Faults {
        server_error_percent: 25,
        truncate_percent: 10,
        max_in_a_row: Some(2),
        latency: Duration::from_millis(2),
        ..Faults::default()
    });
    let objects = ["issue", "project_merge_request"];
    let result = run(&sim, &["--object", objects[0], "--object", objects[1], "--group", "demo", "--page-size", "20"]);
    assert_exact(&sim, &result, &objects);
    let counts = sim.faults_injected();
    assert!(counts.server_errors >= 5 && counts.truncated >= 2, "too few faults to prove anything: {counts:?}");
    // Each 500/502/503/504 was answered as such.
    let statuses: BTreeSet<u16> = sim.requests().iter().map(|r| r.status).filter(|s| *s >= 500).collect();
    assert!(statuses.len() >= 3, "{statuses:?}");
}

/// `host run` of demo/api's issues while the simulator answers every request whose path holds `path`
/// with 429 "retry after 120 s": Ctrl-C once the first came, and return what the host printed, how
/// it exited and its JSON summary (if it wrote one).
fn ctrl_c_during_a_429_wait(path: &str) -> (String, Option<i32>, Option<Value>) {
    let sim = simulator(Faults {
        throttle_percent: 100,
        throttle_headers: ThrottleHeaders::RetryAfter,
        throttle_wait_secs: 120,
        path_contains: Some(path.into()),
        ..Faults::default()
    });
    let dir = temp_dir();
    let (plugin, base) = (artifacts().gitlab_wasm.display().to_string(), sim.base_url());
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let summary = dir.path().join("summary.json");
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--object", "issue", "--project", "demo/api"];
    let child = host_command(&args, Some(TOKEN), &[])
        .args(["--dest", &dest, "--summary-json", summary.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.faults_injected().throttled == 0 {
        assert!(Instant::now() < deadline, "no 429 was sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100)); // the host is now waiting
    let signalled = Instant::now();
    send_ctrl_c(&child);
    let run = HostRun::from(child.wait_with_output().unwrap());
    assert!(signalled.elapsed() < Duration::from_secs(20), "the 120 s wait was not cut short: {}", run.output());
    assert_eq!(sim.faults_injected().throttled, 1, "no request after the signal");
    let summary = std::fs::read(&summary).ok().map(|bytes| serde_json::from_slice(&bytes).unwrap());
    (run.output(), run.code, summary)
}

#[test]
fn ctrl_c_cuts_a_wait_for_a_429_short_and_the_run_ends_in_order() {
    // While reading: the partition stops, and the summary says so.
    let (printed, code, summary) = ctrl_c_during_a_429_wait("/issues");
    assert_eq!(code, Some(130), "{printed}");
    let partition = &summary.expect("a summary")["partitions"][0];
    assert_eq!(partition["reason"], "interrupted (the next run resumes from its last checkpoint)", "{printed}");
    assert_eq!((partition["rate_limited"].as_u64(), partition["records"].as_u64()), (Some(1), Some(0)));

    // While planning (looking the project up): no partition was planned, none is reported.
    let (printed, code, summary) = ctrl_c_during_a_429_wait("demo%2Fapi");
    assert_eq!(code, Some(130), "{printed}");
    assert!(printed.contains("error: interrupted while planning: nothing was read or written"), "{printed}");
    assert!(printed.contains("interrupted: run the same command again"), "{printed}");
    assert_eq!(summary.expect("a summary")["partitions"].as_array().map(Vec::len), Some(0), "{printed}");
}

#[test]
fn storms_of_429_are_waited_out_as_their_headers_say_or_backed_off_without_them() {
    for headers in [ThrottleHeaders::None, ThrottleHeaders::RetryAfter, ThrottleHeaders::RateLimit] {
        let sim = simulator(Faults {
            throttle_percent: 40,
            throttle_headers: headers,
            throttle_wait_secs: 1,
            max_in_a_row: Some(1),
            path_contains: Some("/issues".into()),
            ..Faults::default()
        });
        let result = run(&sim, &["--object", "issue", "--project", "demo/website", "--page-size", "40"]);
        let world = sim.world();
        let website = world.project_by_ref("demo/website").unwrap().id;
        let expected: BTreeSet<i64> = world.issues(website).iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert!(result.run.success, "{headers:?}: {}", result.run.output());
        assert_eq!(result.ids("issue"), expected, "{headers:?}");
        let counts = sim.faults_injected();
        assert!(counts.throttled >= 1, "{headers:?}: no 429 was injected");
        assert_eq!(result.total("rate_limited"), counts.throttled, "{headers:?}");
        assert_eq!(result.total("retries"), counts.throttled, "{headers:?}");
        assert_eq!(result.total("requests"), sim.request_count() as u64, "{headers:?}");
        if headers != ThrottleHeaders::None {
            // Each 429 asked for at least a second, and was waited out.
            let seconds = result.summary["seconds"].as_f64().unwrap();
            assert!(seconds >= counts.throttled as f64 * 0.95, "{headers:?}: {seconds} s for {counts:?}");
        }
    }
}

#[test]
fn a_server_error_on_a_page_read_ahead_is_retried_by_the_call_that_reads_it() {
    // The GET of page 2 leaves during the call that reads page 1; its 500 is seen by the gate then, and
    // reported by the next call. The host must still know it for a 500 and try again.
    let sim = simulator(Faults {
        server_error_percent: 100,
        max_in_a_row: Some(1),
        path_contains: Some("page=2".into()),
        ..Faults::default()
    });
    let result = run(&sim, &["--object", "issue", "--object", "project_merge_request", "--group", "demo"]);
    assert_exact(&sim, &result, &["issue", "project_merge_request"]);
    let counts = sim.faults_injected();
    assert!(counts.server_errors >= 2, "too few pages 2 to prove anything: {counts:?}");
}

#[test]
fn stalled_responses_time_out_and_are_retried() {
    let sim = simulator(Faults {
        stall_percent: 40,
        stall: Duration::from_secs(2),
        max_in_a_row: Some(1),
        path_contains: Some("/merge_requests".into()),
        ..Faults::default()
    });
    let result = run(&sim, &["--object", "project_merge_request", "--group", "demo", "--page-size", "5"]);
    assert_exact(&sim, &result, &["project_merge_request"]);
    let counts = sim.faults_injected();
    assert!(counts.stalled >= 2, "{counts:?}");
}

#[test]
fn an_upstream_that_keeps_failing_ends_its_partition_clearly_after_the_retry_budget() {
    let sim =
        simulator(Faults { server_error_percent: 100, path_contains: Some("/issues".into()), ..Faults::default() });
    let result = run(&sim, &["--object", "issue", "--object", "project_merge_request", "--project", "demo/api"]);
    assert!(!result.run.success);
    assert!(result.run.stderr.contains("error: some partitions failed"), "{}", result.run.output());
    let partitions = result.summary["partitions"].as_array().unwrap();
    let issue = partitions.iter().find(|p| p["object"] == "issue").unwrap();
    assert_eq!(issue["status"], "failed");
    let reason = issue["reason"].as_str().unwrap();
    for part in [
        "reading page 1 gave up after 4 attempts: GitLab answered 50",
        "the checkpoint is intact: run the flow again to resume",
        "--retry-attempts",
    ] {
        assert!(reason.contains(part), "'{reason}' should say '{part}'");
    }
    assert!(!reason.contains('\n'), "{reason}");
    assert_eq!(
        (issue["requests"].as_u64(), issue["retries"].as_u64(), issue["records"].as_u64()),
        (Some(4), Some(3), Some(0))
    );
    let issue_requests = sim.requests().iter().filter(|r| r.path.ends_with("/issues")).count();
    assert_eq!(issue_requests, 4, "exactly the attempts of the budget reached GitLab");
    // The other partition of the run finished with its exact count.
    let mrs = partitions.iter().find(|p| p["object"] == "project_merge_request").unwrap();
    let api = sim.world().project_by_ref("demo/api").unwrap().id;
    assert_eq!(mrs["status"], "done");
    assert_eq!(mrs["records"].as_u64(), Some(sim.world().merge_requests(api).len() as u64));
    let issues = read_jsonl_object(&result.dir.path().join("out"), "issue");
    assert!(issues.is_empty(), "no record of the failed partition is published");
    assert!(!result.run.output().contains(TOKEN));
}

#[test]
fn a_429_asking_for_more_than_the_budget_gives_up_at_once() {
    let sim = simulator(Faults {
        throttle_percent: 100,
        throttle_headers: ThrottleHeaders::RetryAfter,
        throttle_wait_secs: 120,
        path_contains: Some("/issues".into()),
        ..Faults::default()
    });
    let result = run(&sim, &["--object", "issue", "--project", "demo/api", "--retry-max-wait-secs", "5"]);
    assert!(!result.run.success);
    let issue = &result.summary["partitions"][0];
    let reason = issue["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "gave up after 1 attempt: GitLab asked to wait 120 s, more than the 5 s left of the retry budget"
        ),
        "{reason}"
    );
    assert_eq!(issue["rate_limited"].as_u64(), Some(1));
    assert!(result.summary["seconds"].as_f64().unwrap() < 5.0, "it did not wait");
}

#[test]
fn a_rate_limit_is_paced_without_429s_after_the_first_window() {
    let sim = simulator(Faults { rate_limit: Some(RateLimit { requests: 8, window_secs: 1 }), ..Faults::default() });
    let objects = ["issue", "project_merge_request"];
    let result = run(&sim, &["--object", objects[0], "--object", objects[1], "--group", "demo", "--page-size", "25"]);
    assert_exact(&sim, &result, &objects);
    let counts = sim.faults_injected();
    assert_eq!(counts.rate_limited_after_first_window, 0, "{counts:?}");
    // More requests than one window allows: the pacing had to spread them.
    assert!(sim.request_count() > 16, "{}", sim.request_count());
    let seconds = result.summary["seconds"].as_f64().unwrap();
    let windows = sim.request_count() as f64 / 8.0;
    assert!(seconds >= windows.floor() - 1.0, "{seconds} s");
    // And the windows were used whole: no turn of the pace was taken and left unused (a page read
    // ahead once left its call's turn unused and took another: half of each window went unused).
    assert!(seconds <= windows.ceil() + 1.5, "{} requests in {seconds} s", sim.request_count());
}

#[test]
fn a_requests_per_minute_cap_spaces_the_requests() {
    let sim = simulator(Faults::default());
    let result = run(
        &sim,
        &["--object", "issue", "--project", "demo/website", "--page-size", "25", "--max-requests-per-minute", "300"],
    );
    assert!(result.run.success, "{}", result.run.output());
    let requests = sim.request_count() as f64;
    assert!(requests >= 4.0, "{requests}");
    // 300 a minute: one every 200 ms.
    let seconds = result.summary["seconds"].as_f64().unwrap();
    assert!(seconds >= (requests - 1.0) * 0.2 * 0.95, "{requests} requests in {seconds} s");
}

#[test]
fn answers_are_gzipped_and_connections_kept_alive() {
    let args = ["--object", "issue", "--project", "demo/api", "--page-size", "10", "--concurrency", "1"];
    let zipped = simulator(Faults::default());
    let with_gzip = run(&zipped, &args);
    let plain = Simulator::start(SimConfig {
        token: Some(TOKEN.into()),
        world: WorldShape::small(),
        gzip: false,
        ..SimConfig::default()
    })
    .unwrap();
    let without = run(&plain, &args);
    assert!(with_gzip.run.success && without.run.success);
    assert_eq!(with_gzip.ids("issue"), without.ids("issue"));
    let (gz, raw) = (with_gzip.total("bytes_in"), without.total("bytes_in"));
    assert!(gz * 3 < raw, "gzip should shrink the JSON at least threefold: {gz} vs {raw} bytes");
    assert!(zipped.requests().iter().all(|r| r.header("accept-encoding") == Some("gzip")));
    // The requests of the run went over one kept-alive connection (two, should the pool have started a
    // connection just before the idle one came back).
    assert!(zipped.request_count() >= 8, "{}", zipped.request_count());
    assert!(zipped.connections() <= 2, "{} connections for {} requests", zipped.connections(), zipped.request_count());
}

#[test]
fn an_http_timeout_not_shorter_than_the_call_deadline_is_refused() {
    let sim = simulator(Faults::default());
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let base = sim.base_url();
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--object", "issue", "--project", "demo/api"];
    let mut args = args.to_vec();
    args.extend(["--http-timeout-secs", "30", "--call-timeout-secs", "30"]);
    let run = host(&args, Some(TOKEN));
    assert!(!run.success);
    assert!(
        run.stderr.contains("--http-timeout-secs (30) must be shorter than --call-timeout-secs (30)"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.request_count(), 0);
}

/// Run the hostile plugin's `fetch_scope` at `url`, with `allow` as an extra allowed origin.
fn thief_fetch(sim: &Simulator, allow: &str, url: &str) -> HostRun {
    let plugin = artifacts().token_thief_wasm.to_str().unwrap().to_owned();
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().display());
    let base = sim.base_url();
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--allow-origin", allow, "--object", "fetch_scope"];
    let mut args = args.to_vec();
    args.extend(["--project", url, "--dest", &dest]);
    host(&args, Some(TOKEN))
}

#[test]
fn private_addresses_are_refused_unless_they_are_the_tenants_own_gitlab() {
    let sim = simulator(Faults::default());
    let other = simulator(Faults::default());
    let port = other.addr().port();
    let cases = [
        (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{port}/api/v4/user"), "loopback (127.0.0.0/8)"),
        (format!("http://localhost:{port}"), format!("http://localhost:{port}/api/v4/user"), "loopback"),
        ("http://169.254.169.254".to_owned(), "http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
        ("http://10.11.12.13:8080".to_owned(), "http://10.11.12.13:8080/".to_owned(), "private (RFC 1918)"),
    ];
    for (allow, url, why) in &cases {
        let run = thief_fetch(&sim, allow, url);
        assert!(!run.success, "{url}: {}", run.output());
        let error = run.error_line();
        let origin = allow.replace("169.254.169.254", "169.254.169.254:80");
        assert!(error.contains(&format!("the plugin tried to reach {origin}, whose address")), "{error}");
        assert!(error.contains(why), "{error}");
        assert!(error.contains("only the tenant's own GitLab origin"), "{error}");
    }
    assert_eq!(other.request_count(), 0, "no refused request reached the other server");
    assert_eq!(other.connections(), 0, "no refused request even connected");
    // The tenant's own GitLab on 127.0.0.1 is reachable.
    let own = thief_fetch(&sim, "https://example.com", &format!("{}/api/v4/user", sim.base_url()));
    assert!(own.success, "{}", own.output());
    assert_eq!(sim.request_count(), 1);
}

#[test]
fn no_token_appears_anywhere_even_at_trace_level_under_faults() {
    let sim = simulator(Faults {
        server_error_percent: 20,
        throttle_percent: 10,
        throttle_headers: ThrottleHeaders::Both,
        truncate_percent: 10,
        max_in_a_row: Some(1),
        ..Faults::default()
    });
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let summary = dir.path().join("summary.json");
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let base = sim.base_url();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base, "--dest", &dest];
    args.extend(["--summary-json", summary.to_str().unwrap(), "--object", "issue", "--project", "demo/api"]);
    args.extend(FAST_RETRIES);
    // Everything at trace, but the compiler's own logs of compiling the plugin (no token is near them).
    let filter = "trace,cranelift_codegen=info,cranelift_frontend=info,wasmtime_internal_cranelift=info";
    let output = std::process::Command::new(&artifacts().host)
        .args(&args)
        .env("GITLAB_TOKEN", TOKEN)
        .env("HOST_LOG", filter)
        .env_remove("GITLAB_OAUTH_TOKEN")
        .output()
        .unwrap();
    let run = HostRun::from(output);
    let printed = run.output();
    assert!(run.success, "{}", &printed[printed.len().saturating_sub(4000)..]);
    assert!(printed.contains("TRACE") && printed.contains("trying again"), "the log is not at trace level");
    assert!(sim.faults_injected().server_errors > 0);
    assert!(!printed.contains(TOKEN), "the token leaked into the log");
    // Every file written: the summary, the records, the manifests, the checkpoint database.
    let mut written = std::fs::read(&summary).unwrap();
    let mut folders = vec![dir.path().join("out")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { folders.push(path) } else { written.extend(std::fs::read(path).unwrap()) }
        }
    }
    assert!(!written.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token leaked into the output files");
    assert!(sim.requests().iter().all(|r| r.header("private-token") == Some(TOKEN)));
}

#[test]
fn the_summary_says_how_long_planning_took_of_the_run() {
    let sim = simulator(Faults { latency: Duration::from_millis(100), ..Faults::default() });
    let result = run(&sim, &["--object", "issue", "--group", "demo"]);
    assert!(result.run.success, "{}", result.run.output());
    let seconds = |field: &str| result.summary[field].as_f64().unwrap_or_else(|| panic!("no {field}"));
    let (planning, whole) = (seconds("planning_seconds"), seconds("seconds"));
    // Planning's requests (listing the group's projects) come one after the other, each answered
    // 100 ms late; then every partition reads at least one page, as late.
    let requests = result.total("planning_requests");
    assert!(requests >= 1, "{}", result.summary);
    assert!(planning >= 0.1 * requests as f64 && planning <= whole - 0.1, "{planning} s of {whole} s");
    assert!(result.run.stdout.contains(&format!("({requests} planning, in {planning:.2} s)")), "{}", result.run.stdout);
}

/// A simulator whose group `acme` holds 130 projects (two pages of its listing, 100 and 30) with
/// `faults` on the requests for the listing's second page alone.
fn simulator_with_a_long_listing(faults: Faults) -> Simulator {
    let world = WorldShape {
        acme_groups: vec![
            GroupShape { path: String::new(), projects: 60 },
            GroupShape { path: "platform".to_owned(), projects: 70 },
        ],
        ..WorldShape::small()
    };
    let faults = Faults { path_contains: Some(LISTING_PAGE_2.into()), ..faults };
    Simulator::start(SimConfig { token: Some(TOKEN.into()), world, faults, ..SimConfig::default() })
        .expect("starting the simulator")
}

/// What only the request for the second page of `acme`'s projects has in its path and query.
const LISTING_PAGE_2: &str = "include_subgroups=true&simple=true&order_by=id&sort=asc&per_page=100&page=2";

/// The ids of the issues of every project in `acme`, subgroups included.
fn acme_issue_ids(sim: &Simulator) -> BTreeSet<i64> {
    let world = sim.world();
    let acme = world.group_by_ref("acme").unwrap();
    let projects = world.projects_in_group(acme.id, true);
    assert_eq!(projects.len(), 130);
    projects.iter().flat_map(|p| world.issues(p.id)).map(|r| r["id"].as_i64().unwrap()).collect()
}

/// How many partitions ended how (`done`, `skipped`, `failed`).
fn ended(partitions: &[Value]) -> BTreeMap<&str, usize> {
    let mut ended = BTreeMap::new();
    for partition in partitions {
        *ended.entry(partition["status"].as_str().unwrap()).or_default() += 1;
    }
    ended
}

#[test]
fn the_first_page_of_a_group_listing_is_read_while_the_next_is_listed() {
    // The second page of the listing stalls for a second (then the host's 1 s HTTP timeout retries
    // it); the 100 projects of the first page need not wait.
    let sim = simulator_with_a_long_listing(Faults {
        stall_percent: 100,
        stall: Duration::from_millis(1500),
        max_in_a_row: Some(1),
        ..Faults::default()
    });
    let result = run(&sim, &["--object", "issue", "--group", "acme", "--concurrency", "8"]);
    assert!(result.run.success, "{}", result.run.output());
    assert_eq!(result.ids("issue"), acme_issue_ids(&sim));
    assert_eq!(sim.faults_injected().stalled, 1);

    let requests = sim.requests();
    let page_2: Vec<usize> =
        (0..requests.len()).filter(|&n| requests[n].raw_path_and_query.contains(LISTING_PAGE_2)).collect();
    assert_eq!(page_2.len(), 2, "the stalled listing page, then its retry");
    let reads_meanwhile = requests[page_2[0]..page_2[1]].iter().filter(|r| r.path.ends_with("/issues")).count();
    assert!(reads_meanwhile >= 50, "only {reads_meanwhile} issue pages read while the listing was stalled");
    // The projects of the second page are read after it.
    let partitions = result.summary["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 130);
    assert_eq!(ended(partitions), BTreeMap::from([("done", 129), ("skipped", 1)]), "issues disabled in one project");
    assert_eq!(result.total("planning_requests"), 3, "the listing's requests count as planning's");
}

#[test]
fn a_group_listing_that_fails_past_its_first_page_fails_its_object_after_reading_what_was_listed() {
    let sim = simulator_with_a_long_listing(Faults { server_error_percent: 100, ..Faults::default() });
    let result = run(&sim, &["--object", "issue", "--group", "acme"]);
    assert!(!result.run.success, "{}", result.run.output());
    // The first page's 100 projects were read, whole, and none of the rest.
    let partitions = result.summary["partitions"].as_array().unwrap();
    assert_eq!(ended(partitions), BTreeMap::from([("done", 99), ("failed", 1), ("skipped", 1)]));
    let written = result.ids("issue");
    assert!(!written.is_empty() && written.is_subset(&acme_issue_ids(&sim)));
    let failed: Vec<&Value> = partitions.iter().filter(|p| p["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", result.summary);
    assert_eq!((failed[0]["object"].as_str(), failed[0]["scope"].as_str()), (Some("issue"), Some("group acme")));
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("--group acme: listing the projects of group acme")
            && reason.ends_with("(the listing stopped after 100 projects)"),
        "{reason}"
    );
    assert!(result.run.output().contains("after 100 projects"), "{}", result.run.output());
}

#[test]
fn a_token_refused_while_a_group_is_listed_ends_the_run() {
    // The token is revoked between the listing's first page and its second.
    let sim = simulator_with_a_long_listing(Faults { unauthorized_percent: 100, ..Faults::default() });
    let result = run(&sim, &["--object", "issue", "--group", "acme", "--concurrency", "2"]);
    assert!(!result.run.success, "{}", result.run.output());
    assert_eq!(sim.faults_injected().unauthorized, 1, "a 401 is not retried");
    let output = result.run.output();
    assert!(output.contains("GitLab refused the token (401 Unauthorized)"), "{output}");
    let partitions = result.summary["partitions"].as_array().unwrap();
    let fatal: Vec<&Value> = partitions.iter().filter(|p| p["status"] == "fatal").collect();
    assert_eq!(fatal.len(), 1, "{fatal:?}");
    assert_eq!(fatal[0]["scope"], "group acme");
    // The run stopped: of the first page's 100 projects, two at a time, most were never read.
    let ended = ended(partitions);
    assert!(ended.get("done").copied().unwrap_or(0) < 50, "{ended:?}");
}

#[test]
fn the_projects_a_flow_names_are_resolved_several_at_once() {
    let sim = simulator(Faults { latency: Duration::from_millis(200), ..Faults::default() });
    let world = sim.world();
    let paths: Vec<String> = ["acme", "demo"]
        .iter()
        .flat_map(|group| world.projects_in_group(world.group_by_ref(group).unwrap().id, true))
        .map(|project| project.path_with_namespace.clone())
        .collect();
    assert_eq!(paths.len(), 8);
    let mut args = vec!["--object", "issue", "--concurrency", "8"];
    for path in &paths {
        args.extend(["--project", path.as_str()]);
    }
    let result = run(&sim, &args);
    assert!(result.run.success, "{}", result.run.output());
    assert_eq!(result.total("planning_requests"), 8, "one lookup per project");
    let planning = result.summary["planning_seconds"].as_f64().unwrap();
    // One after the other, the eight lookups would take 1.6 s at least.
    assert!(planning < 0.8, "planning took {planning} s");
    let partitions = result.summary["partitions"].as_array().unwrap();
    let scopes: Vec<&str> = partitions.iter().map(|p| p["scope"].as_str().unwrap()).collect();
    let expected: Vec<String> = paths.iter().map(|path| format!("project {path}")).collect();
    assert_eq!(scopes, expected, "in the flow's order");
    assert_eq!(ended(partitions), BTreeMap::from([("done", 7), ("skipped", 1)]), "issues disabled in one project");
}
