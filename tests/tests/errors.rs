//! Bad input: each gets its own clear, one-line error, and no request is sent.

mod support;

use support::{TOKEN, host_run, simulator, small_simulator};

fn refused(args: &[&str], expected: &[&str]) {
    let sim = simulator();
    let dir = support::temp_dir();
    let out = dir.path().join("out");
    let dest = format!("jsonl:{}", out.display());
    let mut all = vec!["--dest", dest.as_str()];
    all.extend_from_slice(args);
    let run = host_run(&sim, &all, Some(TOKEN));
    assert!(!run.success, "{args:?} should fail");
    let error = run.error_line();
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

#[test]
fn a_filter_on_a_field_that_is_not_filterable_says_so() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "title = x"],
        &["field 'title' of object 'issue' cannot be filtered on", "filterable fields:"],
    );
}

#[test]
fn a_time_field_filtered_through_range_rows_names_them() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "created_at >= 2024-01-01"],
        &["field 'created_at' of object 'issue' cannot be filtered on; for a range of created_at, filter on \
           'created_after' (>=), 'created_before' (<=), 'created_before_after' (between); filterable fields:"],
    );
    refused(
        &["--object", "project", "--group", "acme", "--filter", "last_activity_at <= 2024-01-01"],
        &["filter on 'project.last_activity_at' does not accept '<='; allowed: >=; for a range of last_activity_at, \
           filter on 'last_activity_after' (>=), 'last_activity_before' (<=), 'last_activity_before_after' (between)"],
    );
}

#[test]
fn a_filter_only_row_cannot_be_selected_as_a_field() {
    refused(
        &["--object", "commit", "--project", "demo/api", "--fields", "title,since"],
        &["'since' is a filter, not a record field", "the fields of 'commit' are:"],
    );
}

#[test]
fn range_rows_take_their_own_operator_only() {
    refused(
        &["--object", "commit", "--project", "demo/api", "--filter", "since = 2024-01-01"],
        &["filter on 'commit.since' does not accept '='; allowed: >="],
    );
    refused(
        &["--object", "pipeline", "--project", "demo/api", "--filter", "updated_before >= 2024-01-01"],
        &["filter on 'pipeline.updated_before' does not accept '>='; allowed: <="],
    );
}

#[test]
fn a_range_whose_bounds_are_reversed_is_refused() {
    refused(
        &[
            "--object",
            "project_merge_request",
            "--project",
            "demo/api",
            "--filter",
            "deployed_before_after between 2024-02-01 and 2024-01-01",
        ],
        &[
            "'project_merge_request.deployed_before_after between' has its low bound",
            "after its high bound 2024-01-01T00:00:00.000Z: write the earlier one first",
        ],
    );
}

#[test]
fn a_list_filter_with_a_non_integer_is_refused() {
    refused(
        &["--object", "project_milestone", "--project", "demo/api", "--filter", "iids = 1,two"],
        &["filter 'project_milestone.iids': '1,two' is not an integer"],
    );
}

#[test]
fn a_filter_one_of_the_objects_lacks_refuses_the_whole_run() {
    refused(
        &["--object", "tag", "--object", "branch", "--project", "demo/api", "--filter", "order_by = name"],
        &["object 'branch' has no field 'order_by'"],
    );
}

#[test]
fn group_objects_cannot_be_read_at_project_scope() {
    for object in ["group", "group_label", "group_milestone"] {
        refused(
            &["--object", object, "--project", "demo/api"],
            &[&format!("object '{object}' cannot be read at project scope"), "it is read at:"],
        );
    }
}

#[test]
fn a_value_outside_the_set_gitlab_accepts_is_refused_with_the_set() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--filter", "state = bogus"],
        &[
            "--filter 'state = bogus': filter 'issue.state': GitLab does not accept 'bogus'; allowed: opened, closed, all",
        ],
    );
    refused(
        &["--object", "project_milestone", "--project", "demo/api", "--filter", "state = opened"],
        &["GitLab does not accept 'opened'; allowed: active, closed"],
    );
}

#[test]
fn a_memory_limit_too_small_to_start_the_plugin_says_what_it_needs() {
    refused(
        &["--object", "issue", "--project", "demo/api", "--memory-mib", "2"],
        &["the plugin needs at least ", " MiB of memory to start, more than its 2 MiB memory limit; raise the limit"],
    );
}

#[test]
fn a_value_gitlab_does_not_know_is_its_400_and_stops_the_run() {
    // The connector checks the fixed sets that stay the same across GitLab versions; a set that grows
    // with them (pipeline statuses) is left to GitLab, which refuses a value it does not know with a 400
    // naming the parameter, and the run stops there (every partition would fail alike).
    let sim = small_simulator();
    let dir = support::temp_dir();
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let run = host_run(
        &sim,
        &["--object", "pipeline", "--project", "demo/api", "--filter", "status = done", "--dest", &dest],
        Some(TOKEN),
    );
    assert!(!run.success);
    let error = run.error_line();
    assert!(error.contains("(400): status does not have a valid value"), "{error}");
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.last(), Some(&400), "{statuses:?}");
}
