//! A plugin cannot hurt its neighbours: in one `host run`, hostile partitions (an infinite loop, a
//! sleep in a host call, a memory bomb, a 1 GiB page, a 24 MiB page, a panic, a flood of requests, a
//! flood of stdout) each end alone with an error naming the limit they hit, while the healthy
//! partitions of the same run and the same plugin read every issue; and the host's memory stays bounded.
//! A sandbox never has more than a few requests in flight, however many it starts.

mod support;

use serde_json::Value;
use support::{TOKEN, artifacts, host_with_env, simulator, temp_dir};

/// A hostile object, the limit it must hit (name and value; none for a plain trap), and how its error starts.
struct Hostile {
    object: &'static str,
    limit: Option<(&'static str, &'static str)>,
    error: &'static str,
}

const DEADLINE: &str = "the plugin exceeded its 2 s deadline per call in read-page";
const MEMORY: &str = "the plugin exceeded its 64 MiB memory limit in read-page";

const HOSTILE: [Hostile; 8] = [
    Hostile { object: "infinite_loop", limit: Some(("deadline", "2 s")), error: DEADLINE },
    Hostile { object: "sleeper", limit: Some(("deadline", "2 s")), error: DEADLINE },
    Hostile { object: "memory_bomb", limit: Some(("memory", "64 MiB")), error: MEMORY },
    Hostile { object: "page_1gib", limit: Some(("memory", "64 MiB")), error: MEMORY },
    Hostile {
        object: "page_24mib",
        limit: Some(("call-data", "16 MiB")),
        error: "the plugin exceeded its 16 MiB limit on data passed to the host in one call in read-page",
    },
    Hostile {
        object: "flood",
        limit: Some(("resources", "1000")),
        error: "the plugin exceeded its limit of 1000 open resource handles in read-page",
    },
    Hostile {
        object: "stdout_flood",
        limit: Some(("log-output", "1 MiB")),
        error: "the plugin exceeded its 1 MiB limit on stdout and stderr output per call in read-page",
    },
    Hostile {
        object: "trap",
        limit: None,
        error: "the plugin trapped in read-page: wasm `unreachable` instruction executed (its last words on stderr: \
                thread '<unnamed>'",
    },
];

/// Requests of one sandbox in flight at once (the host's default).
const REQUESTS_IN_FLIGHT: usize = 16;

const CONCURRENCY: u64 = 4;

#[test]
fn hostile_partitions_end_alone_naming_their_limit_while_healthy_ones_read_everything() {
    let sim = simulator();
    let world = sim.world();
    // Two projects of a few pages of issues each.
    let projects: Vec<u64> = world
        .projects()
        .iter()
        .filter(|p| p.issues_enabled && (101..=400).contains(&world.issues(p.id).len()))
        .map(|p| p.id)
        .take(2)
        .collect();
    assert_eq!(projects.len(), 2, "the standard world has projects with a few pages of issues");
    let dir = temp_dir();
    let summary_path = dir.path().join("summary.json");
    let (plugin, base) = (artifacts().hostile_wasm.to_str().unwrap().to_owned(), sim.base_url());
    let (dest, summary_arg) = (format!("jsonl:{}", dir.path().display()), summary_path.to_str().unwrap().to_owned());
    let ids: Vec<String> = projects.iter().map(u64::to_string).collect();
    let concurrency = CONCURRENCY.to_string();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base, "--object", "healthy"];
    for hostile in &HOSTILE {
        args.extend(["--object", hostile.object]);
    }
    for id in &ids {
        args.extend(["--project", id]);
    }
    args.extend(["--call-timeout-secs", "2", "--concurrency", &concurrency, "--dest", &dest]);
    args.extend(["--summary-json", &summary_arg]);
    let run = host_with_env(&args, Some(TOKEN), &[("HOST_LOG", "warn,plugin=debug")]);

    assert!(!run.success, "a failed partition fails the run: {}", run.output());
    assert!(run.stderr.contains("error: some partitions failed"), "{}", run.stderr);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let partitions = summary["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), (1 + HOSTILE.len()) * projects.len(), "{summary:#}");
    let partition = |object: &str, id: u64| {
        partitions
            .iter()
            .find(|p| p["object"] == object && p["scope"] == format!("project {id}"))
            .unwrap_or_else(|| panic!("no partition {object} project {id} in {summary:#}"))
    };

    for &id in &projects {
        // The healthy partitions read every issue, page by page, and the hostile ones did not disturb them.
        let healthy = partition("healthy", id);
        let issues = world.issues(id).len() as u64;
        assert_eq!(healthy["status"], "done", "{healthy:#}");
        assert_eq!(healthy["records"], issues, "{healthy:#}");
        assert_eq!(healthy["pages"], issues.div_ceil(100), "{healthy:#}");
        assert_eq!(healthy["limit"], Value::Null);
        let logged = format!("healthy: project {id} page 2: {} issues", (issues - 100).min(100));
        let line = run.stderr.lines().find(|l| l.contains(&logged)).unwrap_or_else(|| panic!("{logged} not logged"));
        assert!(line.contains(&format!("partition=\"healthy project {id}\"")), "the log names the partition: {line}");
        assert!(line.contains("stream=\"stdout\""), "{line}");

        for Hostile { object, limit, error } in HOSTILE {
            let hostile = partition(object, id);
            assert_eq!(hostile["status"], "failed", "{hostile:#}");
            let reason = hostile["reason"].as_str().unwrap();
            assert!(reason.starts_with(error), "{object}: {reason}");
            assert_eq!(hostile["records"], 0, "{hostile:#}");
            match limit {
                Some((name, value)) => assert_eq!(hostile["limit"], serde_json::json!({"name": name, "value": value})),
                None => assert_eq!(hostile["limit"], Value::Null),
            }
        }
        let reason = partition("trap", id)["reason"].as_str().unwrap().to_owned();
        assert!(reason.contains("panicked at tests/plugins/hostile/src/lib.rs:"), "where it panicked: {reason}");
        assert!(reason.ends_with(": the hostile plugin panics on purpose)"), "why it panicked: {reason}");

        // The flood started 5,000 requests and was stopped at 1,000 handles (each request it started
        // holds one): at most 16 at a time left the host (the next test proves the cap exactly, against a
        // server that never answers), and every one that left was counted. How many the fast simulator
        // answered while the handles piled up is a matter of timing, not a promise.
        let reached = sim.requests().iter().filter(|r| r.path == format!("/api/v4/projects/{id}")).count() as u64;
        let counted = partition("flood", id)["requests"].as_u64().unwrap();
        assert!(reached <= counted, "{reached} flood requests reached the simulator, {counted} were counted");
        assert!(counted < 1000, "{counted} flood requests left the host");
    }

    // The plugin wrote 2 GiB to stdout; the host logged at most its budget of 1 MiB per call.
    assert!(run.stderr.len() < 3 << 20, "{} bytes of log", run.stderr.len());
    assert!(run.stderr.contains(&"y".repeat(1000)), "the flood's first lines were logged");

    // Four sandboxes at once, each within 64 MiB: 1 GiB pages and memory bombs never reached the host.
    let peak = summary["peak_rss_bytes"].as_u64().expect("the summary reports the peak memory");
    let bound = CONCURRENCY * (64 << 20) + (128 << 20);
    assert!(peak < bound, "peak RSS {} MiB, bound {} MiB", peak >> 20, bound >> 20);
}

#[test]
fn a_sandbox_has_at_most_16_requests_in_flight_however_many_it_starts() {
    // A server that accepts connections and never answers: every request stays in flight.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push((std::time::Instant::now(), stream));
        }
    });
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().display());
    let plugin = artifacts().hostile_wasm.to_str().unwrap().to_owned();
    let run = host_with_env(
        &[
            "run",
            "--plugin",
            &plugin,
            "--base-url",
            &base,
            "--object",
            "flood_wait",
            "--project",
            "7",
            "--call-timeout-secs",
            "6",
            "--dest",
            &dest,
        ],
        Some(TOKEN),
        &[],
    );
    // 300 requests started at once: the first 16 connected at once; the others waited for a turn that
    // came only when those timed out (the HTTP timeout, 4 s after they were sent: two thirds of the
    // 6 s call deadline, well clear of the 2 s window counted below), and the partition failed.
    assert!(!run.success, "{}", run.output());
    assert!(run.stdout.contains("flood_wait project 7"), "{}", run.stdout);
    let accepted = accepted.lock().unwrap();
    let first = accepted.first().expect("the plugin's requests reached the server").0;
    let early = accepted.iter().filter(|(at, _)| at.duration_since(first) < std::time::Duration::from_secs(2)).count();
    assert_eq!(early, REQUESTS_IN_FLIGHT, "{} connections in all", accepted.len());
}
