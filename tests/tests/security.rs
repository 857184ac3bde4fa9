//! The sandbox's promises: the token is added by the host for the GitLab origin only, a plugin can
//! neither see nor set it, and it cannot reach any other origin.

mod support;

use support::{TOKEN, artifacts, host, host_run, simulator, temp_dir};

#[test]
fn a_wrong_token_fails_clearly_and_is_never_printed() {
    let sim = simulator();
    let wrong = "glpat-wrong-0000000000";
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().display());
    let run = host_run(&sim, &["--object", "issue", "--project", "demo/api", "--dest", &dest], Some(wrong));
    assert!(!run.success);
    let error_line = run.error_line();
    assert!(error_line.contains("GitLab refused the token (401 Unauthorized)"), "{error_line}");
    assert!(error_line.contains("GITLAB_TOKEN"), "{error_line}");
    assert!(!run.output().contains(wrong), "the token leaked: {}", run.output());
    assert_eq!(sim.request_count(), 1, "a 401 stops the run");
}

#[test]
fn no_token_is_anonymous_and_refused_by_a_private_gitlab() {
    let sim = simulator();
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().display());
    let run = host_run(&sim, &["--object", "project", "--group", "demo", "--dest", &dest], None);
    assert!(!run.success);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    let request = &sim.requests()[0];
    assert!(!request.headers.iter().any(|(k, _)| k == "private-token" || k == "authorization"));
}

#[test]
fn the_host_adds_the_token_for_the_gitlab_origin() {
    let sim = simulator();
    let dir = temp_dir();
    let dest = format!("jsonl:{}", dir.path().display());
    let run = host_run(&sim, &["--object", "project", "--group", "demo", "--dest", &dest], Some(TOKEN));
    assert!(run.success, "{}", run.output());
    for request in sim.requests() {
        let token: Vec<&str> =
            request.headers.iter().filter(|(k, _)| k == "private-token").map(|(_, v)| v.as_str()).collect();
        assert_eq!(token, [TOKEN]);
    }
    assert!(!run.output().contains(TOKEN));
}

/// Run the hostile plugin's `object` against the simulator.
fn thief(sim: &gitlab_sim::Simulator, object: &str, dir: &std::path::Path) -> support::HostRun {
    let plugin = artifacts().token_thief_wasm.to_str().unwrap().to_owned();
    let dest = format!("jsonl:{}", dir.display());
    let base = sim.base_url();
    host(
        &["run", "--plugin", &plugin, "--base-url", &base, "--object", object, "--project", "1", "--dest", &dest],
        Some(TOKEN),
    )
}

fn thief_outcome(sim: &gitlab_sim::Simulator, object: &str) -> String {
    let dir = temp_dir();
    let run = thief(sim, object, dir.path());
    assert!(run.success, "{}", run.output());
    let records = support::read_jsonl_object(dir.path(), object);
    records[0]["outcome"].as_str().unwrap().to_owned()
}

/// Sandboxes reuse the pool's slots, and a freed slot keeps some of its memory resident for the next
/// (see the host's `memory_keep_resident`): what one partition's plugin wrote must never be seen by
/// the next. Eight partitions one at a time, each looking for the marks of those before it.
#[test]
fn a_sandbox_never_sees_the_memory_an_earlier_sandbox_wrote() {
    let sim = simulator();
    let dir = temp_dir();
    let plugin = artifacts().token_thief_wasm.to_str().unwrap().to_owned();
    let dest = format!("jsonl:{}", dir.path().display());
    let base = sim.base_url();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base, "--object", "leftovers", "--concurrency", "1"];
    let projects: Vec<String> = (1..=8).map(|n| n.to_string()).collect();
    for project in &projects {
        args.extend(["--project", project.as_str()]);
    }
    args.extend(["--dest", &dest]);
    let run = host(&args, Some(TOKEN));
    assert!(run.success, "{}", run.output());
    let outcomes: Vec<String> = support::read_jsonl_object(dir.path(), "leftovers")
        .iter()
        .map(|record| record["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    for outcome in outcomes {
        assert_eq!(outcome, "before=clean after=marked");
    }
}

#[test]
fn the_plugin_sees_no_environment_no_arguments_and_no_files() {
    let sim = simulator();
    let outcome = thief_outcome(&sim, "environment");
    assert!(!outcome.contains(TOKEN), "{outcome}");
    assert!(outcome.starts_with("vars=[] args=[]"), "{outcome}");
    assert!(outcome.contains("root=denied"), "{outcome}");
}

#[test]
fn the_plugin_cannot_set_credential_headers() {
    let sim = simulator();
    for object in ["set_private_token", "set_authorization"] {
        let outcome = thief_outcome(&sim, object);
        assert_eq!(outcome, "append=Err(HeaderError::Forbidden) from_list=Err(HeaderError::Forbidden)", "{object}");
    }
}

#[test]
fn the_plugin_reaches_its_gitlab_but_never_sees_the_token() {
    let sim = simulator();
    let outcome = thief_outcome(&sim, "fetch_own");
    assert_eq!(outcome, "status=200 headers_seen=[]");
    let request = sim.requests().pop().unwrap();
    assert_eq!(request.path, "/api/v4/user");
    assert!(request.headers.iter().any(|(k, v)| k == "private-token" && v == TOKEN));
}

#[test]
fn other_origins_are_refused_and_named() {
    let sim = simulator();
    for (object, origin) in
        [("fetch_foreign", "https://evil.example.com:443"), ("fetch_metadata", "http://169.254.169.254:80")]
    {
        let dir = temp_dir();
        let run = thief(&sim, object, dir.path());
        assert!(!run.success, "{object}: {}", run.output());
        let error = run.error_line();
        assert!(error.contains(&format!("the plugin tried to reach {origin}")), "{error}");
        assert!(error.contains("not in this tenant's allow-list"), "{error}");
    }
    assert_eq!(sim.request_count(), 0);
}
