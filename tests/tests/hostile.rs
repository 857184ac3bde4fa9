//! A plugin cannot hurt its neighbours: in one `host run`, hostile partitions (an infinite loop, a
//! sleep in a host call, a memory bomb, a 1 GiB page, a 24 MiB page, a panic, a flood of requests, a
//! flood of stdout) each end alone with an error naming the limit they hit, while the healthy
//! partitions of the same run and the same plugin read every issue; and the host's memory stays bounded.

mod support;

use serde_json::Value;
use support::{TOKEN, artifacts, host_with_env, simulator, temp_dir};

/// Each hostile object, the limit it must hit (none for a plain trap), and the start of its error.
const HOSTILE: [(&str, Option<(&str, &str)>, &str); 8] = [
    ("infinite_loop", Some(("deadline", "2 s")), "the plugin exceeded its 2 s deadline per call in read-page"),
    ("sleeper", Some(("deadline", "2 s")), "the plugin exceeded its 2 s deadline per call in read-page"),
    ("memory_bomb", Some(("memory", "64 MiB")), "the plugin exceeded its 64 MiB memory limit in read-page"),
    ("page_1gib", Some(("memory", "64 MiB")), "the plugin exceeded its 64 MiB memory limit in read-page"),
    (
        "page_24mib",
        Some(("call-data", "16 MiB")),
        "the plugin exceeded its 16 MiB limit on data passed to the host in one call in read-page",
    ),
    ("flood", Some(("resources", "1000")), "the plugin exceeded its limit of 1000 open resource handles in read-page"),
    (
        "stdout_flood",
        Some(("log-output", "1 MiB")),
        "the plugin exceeded its 1 MiB limit on stdout and stderr output per call in read-page",
    ),
    (
        "trap",
        None,
        "the plugin trapped in read-page: wasm `unreachable` instruction executed (its last words on stderr: \
         thread '<unnamed>' panicked at",
    ),
];

/// Requests of one sandbox in flight at once (the host's default).
const REQUESTS_IN_FLIGHT: usize = 16;

const CONCURRENCY: u64 = 4;

#[test]
fn hostile_partitions_end_alone_naming_their_limit_while_healthy_ones_read_everything() {
    let sim = simulator();
    let world = sim.world();
    let projects: Vec<u64> =
        ["demo/api", "demo/website"].iter().map(|path| world.project_by_ref(path).unwrap().id).collect();
    let dir = temp_dir();
    let summary_path = dir.path().join("summary.json");
    let (plugin, base) = (artifacts().hostile_wasm.to_str().unwrap().to_owned(), sim.base_url());
    let (dest, summary_arg) = (format!("jsonl:{}", dir.path().display()), summary_path.to_str().unwrap().to_owned());
    let ids: Vec<String> = projects.iter().map(u64::to_string).collect();
    let concurrency = CONCURRENCY.to_string();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base, "--object", "healthy"];
    for (object, _, _) in &HOSTILE {
        args.extend(["--object", object]);
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
        assert!(issues > 100, "the test wants more than one page");
        assert_eq!(healthy["status"], "done", "{healthy:#}");
        assert_eq!(healthy["records"], issues, "{healthy:#}");
        assert_eq!(healthy["pages"], issues.div_ceil(100), "{healthy:#}");
        assert_eq!(healthy["limit"], Value::Null);
        let logged = format!("healthy: project {id} page 2: {} issues", (issues - 100).min(100));
        let line = run.stderr.lines().find(|l| l.contains(&logged)).unwrap_or_else(|| panic!("{logged} not logged"));
        assert!(line.contains(&format!("partition=healthy project {id}")), "the log names the partition: {line}");
        assert!(line.contains("stream=\"stdout\""), "{line}");

        for (object, limit, error) in HOSTILE {
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
        assert!(reason.ends_with("the hostile plugin panics on purpose)"), "the panic's message is told: {reason}");

        // The flood started 5,000 requests; no more than the cap in flight ever reached GitLab.
        let flood_path = format!("/api/v4/projects/{id}");
        let reached = sim.requests().iter().filter(|r| r.path == flood_path).count();
        assert!(reached <= REQUESTS_IN_FLIGHT, "{reached} flood requests reached the simulator");
    }

    // The plugin wrote 2 GiB to stdout; the host logged at most its budget of 1 MiB per call.
    assert!(run.stderr.len() < 3 << 20, "{} bytes of log", run.stderr.len());
    assert!(run.stderr.contains(&"y".repeat(1000)), "the flood's first lines were logged");

    // Four sandboxes at once, each within 64 MiB: 1 GiB pages and memory bombs never reached the host.
    let peak = summary["peak_rss_bytes"].as_u64().expect("the summary reports the peak memory");
    let bound = CONCURRENCY * (64 << 20) + (128 << 20);
    assert!(peak < bound, "peak RSS {} MiB, bound {} MiB", peak >> 20, bound >> 20);
}
