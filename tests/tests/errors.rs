//! Bad input: each gets its own clear, one-line error, and no request is sent.

mod support;

use support::{TOKEN, host_run, simulator};

fn refused(args: &[&str], expected: &[&str]) {
    let sim = simulator();
    let dir = support::temp_dir();
    let out = dir.path().join("out");
    let dest = format!("jsonl:{}", out.display());
    let mut all = vec!["--dest", dest.as_str()];
    all.extend_from_slice(args);
    let run = host_run(&sim, &all, Some(TOKEN));
    assert!(!run.success, "{args:?} should fail");
    let error = run.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{}", run.output()));
    for part in expected {
        assert!(error.contains(part), "{args:?}: '{error}' should contain '{part}'");
    }
    assert_eq!(sim.request_count(), 0, "{args:?}: no request may be sent");
    assert!(!out.exists(), "{args:?}: nothing may be written");
}

#[test]
fn an_unknown_object_lists_the_known_ones() {
    refused(&["--object", "issues", "--project", "demo/api"], &["unknown object 'issues'", "project_merge_request"]);
}

#[test]
fn a_filter_with_a_wrong_operator_names_field_operator_and_allowed_ones() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "state >= opened"],
        &["filter on 'issue.state' does not accept '>='; allowed: ="],
    );
}

#[test]
fn a_filter_on_an_unknown_field_lists_the_filterable_ones() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "colour = red"],
        &["has no field 'colour'", "updated_after"],
    );
}

#[test]
fn a_filter_value_of_the_wrong_type_is_refused() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "confidential = maybe"],
        &["'maybe' is not a boolean"],
    );
    refused(
        &["--object", "project_merge_request", "--project", "demo/api", "--filter", "created_after >= last-week"],
        &["'last-week' is not a date-time"],
    );
}

#[test]
fn a_malformed_filter_shows_the_syntax() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "state"],
        &["write a filter as 'FIELD OP VALUE'"],
    );
}

#[test]
fn an_unknown_field_is_refused() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--fields", "title,colour"],
        &["'colour' is not a field of this object"],
    );
}

#[test]
fn a_scope_the_object_is_not_read_at_is_refused() {
    refused(
        &["--object", "group_member", "--project", "demo/api"],
        &["object 'group_member' cannot be read at project scope", "it is read at: group"],
    );
}

#[test]
fn a_bad_base_url_is_refused() {
    let sim = simulator();
    let run = support::host(
        &[
            "run",
            "--plugin",
            support::artifacts().gitlab_wasm.to_str().unwrap(),
            "--base-url",
            "gitlab.example.com",
            "--object",
            "issue",
            "--project",
            "1",
        ],
        Some(TOKEN),
    );
    assert!(!run.success);
    assert!(run.stderr.contains("--base-url must be GitLab's address"), "{}", run.stderr);
    assert_eq!(sim.request_count(), 0);
}
