//! `host objects` and `host describe` against the real gitlab.wasm: the whole AppFlow catalogue.

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::{artifacts, host};

fn plugin() -> String {
    artifacts().gitlab_wasm.to_str().unwrap().to_owned()
}

/// The AppFlow table the connector embeds: (object label, field, type, operator).
fn table() -> Vec<(String, String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../connector/src/catalogue/appflow-fields.tsv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].into(), c[1].into(), c[2].into(), c.get(3).copied().unwrap_or("").into())
        })
        .collect()
}

#[test]
fn objects_lists_appflows_sixteen_then_ours() {
    let run = host(&["objects", "--plugin", &plugin(), "--json"], None);
    assert!(run.success, "{}", run.output());
    let objects: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = objects.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "branch",
            "commit",
            "group",
            "group_member",
            "group_label",
            "group_milestone",
            "issue",
            "job",
            "pipeline",
            "project",
            "project_label",
            "project_member",
            "project_merge_request",
            "project_milestone",
            "release",
            "tag",
            "deployment",
            "environment",
            "issue_note",
            "merge_request_note",
            "merge_request_approval",
        ]
    );
    let unreadable: Vec<&str> =
        objects.iter().filter(|o| o["readable"] != true).map(|o| o["name"].as_str().unwrap()).collect();
    assert!(unreadable.is_empty(), "not readable: {unreadable:?}");
    let project = &objects[9];
    assert_eq!(project["scopes"], serde_json::json!(["group", "instance"]));
    assert_eq!(project["primary_key"], serde_json::json!(["id"]));

    let table_run = host(&["objects", "--plugin", &plugin()], None);
    assert_eq!(table_run.stdout.lines().count(), objects.len() + 1, "{}", table_run.stdout);
}

#[test]
fn describe_lists_every_row_of_the_table_for_each_object() {
    let objects: Vec<Value> =
        serde_json::from_str(&host(&["objects", "--plugin", &plugin(), "--json"], None).stdout).unwrap();
    let labels: HashMap<String, String> = objects
        .iter()
        .map(|o| (o["label"].as_str().unwrap().to_owned(), o["name"].as_str().unwrap().to_owned()))
        .collect();
    let mut described: HashMap<String, Value> = HashMap::new();
    let mut rows = 0;
    for (label, field, kind, operator) in table() {
        let name = &labels[&label];
        let schema = described.entry(name.clone()).or_insert_with(|| {
            let run = host(&["describe", "--plugin", &plugin(), name, "--json"], None);
            assert!(run.success, "{}", run.output());
            serde_json::from_str(&run.stdout).unwrap()
        });
        assert_eq!(schema["name"], name.as_str());
        // Two table quirks are corrected to GitLab's real JSON: `empty_Repo` is `empty_repo`.
        let field = if field == "empty_Repo" { "empty_repo".to_owned() } else { field };
        let found = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field.as_str())
            .unwrap_or_else(|| panic!("{name}.{field} is not described"));
        if !operator.is_empty() {
            assert!(
                found["filter_operators"].as_array().unwrap().iter().any(|op| op == operator.as_str()),
                "{name}.{field} should accept {operator}: {found}"
            );
        }
        let expected_type = match kind.as_str() {
            "DateTime" => "date-time".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        // The corrections to the table's types, each to what GitLab really sends.
        let retyped = matches!(
            (name.as_str(), field.as_str()),
            ("issue" | "project_merge_request", "closed_by")
                | ("project_merge_request", "author_username" | "discussion_locked")
                | ("job", "duration" | "queued_duration" | "runner")
        );
        if !retyped {
            assert_eq!(found["type"], expected_type.as_str(), "{name}.{field}");
        }
        rows += 1;
    }
    assert_eq!(rows, 467);
    let issue = &described["issue"];
    let search = issue["fields"].as_array().unwrap().iter().find(|f| f["name"] == "search").unwrap();
    assert_eq!(search["filter_only"], true);
    let state = issue["fields"].as_array().unwrap().iter().find(|f| f["name"] == "state").unwrap();
    assert_eq!(state["filter_only"], false);
}

#[test]
fn describing_an_unknown_object_lists_the_known_ones() {
    let run = host(&["describe", "--plugin", &plugin(), "issues"], None);
    assert!(!run.success);
    assert!(run.stderr.starts_with("error: unknown object 'issues'; known objects: branch, commit,"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_missing_plugin_says_how_to_build_it() {
    let run = host(&["objects", "--plugin", "/nonexistent/gitlab.wasm"], None);
    assert!(!run.success);
    assert!(run.stderr.contains("cannot read the plugin /nonexistent/gitlab.wasm"), "{}", run.stderr);
}
