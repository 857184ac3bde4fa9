//! `host objects` and `host describe` against the real gitlab.wasm: the whole AppFlow catalogue.

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::{artifacts, host};

/// Where the table's type is not what GitLab sends, the catalogue corrects it:
/// (object, field, the type GitLab really sends).
const CORRECTIONS: &[(&str, &str, &str)] = &[
    ("group", "auto_devops_enabled", "boolean"),
    ("group", "emails_disabled", "boolean"),
    ("group", "mentions_disabled", "boolean"),
    ("group", "ldap_access", "integer"),
    ("group", "parent_id", "integer"),
    ("group_member", "expires_at", "date"),
    ("group_member", "is_using_seat", "boolean"),
    ("project_member", "expires_at", "date"),
    ("project_member", "is_using_seat", "boolean"),
    ("issue", "closed_by", "struct"),
    ("issue", "moved_to_id", "integer"),
    ("job", "duration", "number"),
    ("job", "queued_duration", "number"),
    ("job", "coverage", "number"),
    ("job", "runner", "struct"),
    ("project", "allow_merge_on_skipped_pipeline", "boolean"),
    ("project", "emails_disabled", "boolean"),
    ("project", "runner_token_expiration_interval", "integer"),
    ("project", "with_programming_language", "string"),
    ("project_merge_request", "author_username", "string"),
    ("project_merge_request", "discussion_locked", "boolean"),
    ("project_merge_request", "closed_by", "struct"),
    ("project_merge_request", "approvals_before_merge", "integer"),
];

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
    // Each key is unique in GitLab's data: branch and tag names and release tags only within a
    // project, member ids (user ids) and listed labels only within their project or group (a
    // group's labels and milestones are listed under each of its projects too).
    for object in &objects {
        let name = object["name"].as_str().unwrap();
        let expected: &[&str] = match name {
            "branch" | "tag" => &["project_id", "name"],
            "release" => &["project_id", "tag_name"],
            "commit" | "project_label" | "project_member" | "project_milestone" => &["project_id", "id"],
            "group_label" | "group_member" => &["group_id", "id"],
            _ => &["id"],
        };
        assert_eq!(object["primary_key"], serde_json::json!(expected), "{name}");
    }

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
    let mut corrections_seen = 0;
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
        let corrected = CORRECTIONS.iter().find(|(o, f, _)| *o == name.as_str() && *f == field.as_str());
        match corrected {
            Some((_, _, real)) => {
                assert_ne!(*real, expected_type.as_str(), "{name}.{field} needs no correction");
                assert_eq!(found["type"], *real, "{name}.{field}");
                corrections_seen += 1;
            }
            None => assert_eq!(found["type"], expected_type.as_str(), "{name}.{field}"),
        }
        rows += 1;
    }
    assert_eq!(rows, 467);
    assert_eq!(corrections_seen, CORRECTIONS.len(), "every correction is of a row of the table");
    let issue = &described["issue"];
    let search = issue["fields"].as_array().unwrap().iter().find(|f| f["name"] == "search").unwrap();
    assert_eq!(search["filter_only"], true);
    let state = issue["fields"].as_array().unwrap().iter().find(|f| f["name"] == "state").unwrap();
    assert_eq!(state["filter_only"], false);
    // A filter GitLab takes from a fixed set says which; any other says nothing.
    assert_eq!(state["filter_values"], serde_json::json!(["opened", "closed", "all"]));
    assert_eq!(search["filter_values"], serde_json::json!([]));
}

#[test]
fn describing_an_unknown_object_lists_the_known_ones() {
    let run = host(&["describe", "--plugin", &plugin(), "issues"], None);
    assert!(!run.success);
    assert!(run.stderr.starts_with("error: unknown object 'issues'; known objects: branch, commit,"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_plugin_that_is_not_a_component_is_named_for_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "garbage, not wasm").unwrap();
    // A core module: the magic, version 1, no sections.
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    for (file, says) in [
        (&text, "is not WebAssembly (it does not start with `\\0asm`): --plugin takes a component"),
        (&module, "is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2"),
    ] {
        let run = host(&["objects", "--plugin", file.to_str().unwrap()], None);
        assert!(!run.success);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
}

#[test]
fn a_missing_plugin_says_how_to_build_it() {
    let run = host(&["objects", "--plugin", "/nonexistent/gitlab.wasm"], None);
    assert!(!run.success);
    assert!(run.stderr.contains("cannot read the plugin /nonexistent/gitlab.wasm"), "{}", run.stderr);
}
