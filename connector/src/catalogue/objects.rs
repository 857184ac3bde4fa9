//! The GitLab-specific half of the catalogue: for each object, where GitLab serves it and how it is keyed.
//!
//! The fields and their filter operators come from the AppFlow table (`appflow-fields.tsv`); this table
//! adds what the AppFlow table does not say: the REST endpoint per scope, the primary key, the cursor
//! field for incremental reads, which filter rows are also record fields, and the corrections the
//! table needs to match GitLab's real JSON.

use crate::types::{FieldType, ScopeKind};

/// How one object is read under one scope.
#[derive(Debug)]
pub struct Endpoint {
    /// The scope this endpoint serves.
    pub scope: ScopeKind,
    /// The path below `/api/v4`, with `{id}` standing for the URL-encoded group or project reference.
    pub path: &'static str,
    /// Query parameters always sent on the first page.
    pub params: &'static [(&'static str, &'static str)],
    /// The parameters of keyset pagination where the endpoint supports it (empty where it does not).
    /// Keyset pagination passes GitLab's 50,000-record offset cap; it is used unless the request sets
    /// its own `order_by` or `sort`.
    pub keyset: &'static [(&'static str, &'static str)],
    /// A single record to emit before the list (`GET /groups/:id` before its descendant groups).
    pub head: Option<&'static str>,
    /// Set when the records are children of the listed records (the notes of each issue): `path`
    /// lists the parents, and this says where each parent's children are.
    pub children: Option<Children>,
}

/// Records read per parent: `path` lists the parents (filters apply to them), then each parent's
/// children come from `path` below (see [`crate::fanout`]).
#[derive(Debug)]
pub struct Children {
    /// The children's path, with `{id}` the scope and `{parent}` the parent's key.
    pub path: &'static str,
    /// The parent's field that fills `{parent}` (`iid`).
    pub parent_key: &'static str,
    /// The children's endpoint answers one object per parent, not a list.
    pub single: bool,
}

/// Keyset pagination of `GET /projects`: by id, ascending.
const KEYSET_BY_ID_ASC: &[(&str, &str)] = &[("pagination", "keyset"), ("order_by", "id"), ("sort", "asc")];
/// Keyset pagination of `GET /projects/:id/jobs`: GitLab allows only id, descending.
const KEYSET_BY_ID_DESC: &[(&str, &str)] = &[("pagination", "keyset"), ("order_by", "id"), ("sort", "desc")];

/// The incremental cursor of an object: a record field that only grows, and the GitLab query parameter
/// that reads records at or after a value of it.
#[derive(Debug)]
pub struct Cursor {
    pub field: &'static str,
    pub after_param: &'static str,
}

/// One object of the catalogue.
#[derive(Debug)]
pub struct ObjectSpec {
    /// The machine name: the AppFlow label in snake_case.
    pub name: &'static str,
    /// The object's label in the AppFlow table.
    pub label: &'static str,
    /// Endpoints by scope; the first is the object's natural scope.
    pub endpoints: &'static [Endpoint],
    /// The fields that identify a record.
    pub primary_key: &'static [&'static str],
    /// The incremental cursor, if the object has one.
    pub cursor: Option<Cursor>,
    /// Filter rows of the table that are also record fields (every other filter row is filter-only).
    pub record_filters: &'static [&'static str],
    /// The scope id this object's records carry (`project_id`, `group_id`), added when GitLab omits it.
    pub scope_field: Option<&'static str>,
    /// Fields the table spells differently from GitLab's JSON: (table name, GitLab name).
    pub renames: &'static [(&'static str, &'static str)],
    /// Fields the table types wrongly: (field, the type GitLab really sends).
    pub retypes: &'static [(&'static str, FieldType)],
    /// Whether `read-page` serves this object yet.
    pub readable: bool,
}

const fn project(path: &'static str) -> Endpoint {
    Endpoint { scope: ScopeKind::Project, path, params: &[], keyset: &[], head: None, children: None }
}

const fn group(path: &'static str) -> Endpoint {
    Endpoint { scope: ScopeKind::Group, path, params: &[], keyset: &[], head: None, children: None }
}

/// The children of each of a project's parents: `parents` lists them, `children` reads each one's.
const fn per_parent(parents: &'static str, path: &'static str, single: bool) -> Endpoint {
    Endpoint {
        scope: ScopeKind::Project,
        path: parents,
        params: &[],
        keyset: &[],
        head: None,
        children: Some(Children { path, parent_key: "iid", single }),
    }
}

/// Members of groups and projects: what GitLab really sends where the table says otherwise.
const MEMBER_RETYPES: &[(&str, FieldType)] = &[("expires_at", FieldType::Date), ("is_using_seat", FieldType::Boolean)];

const UPDATED_AT: Option<Cursor> = Some(Cursor { field: "updated_at", after_param: "updated_after" });

/// Every object, in the order `list-objects` reports them.
pub static OBJECTS: &[ObjectSpec] = &[
    ObjectSpec {
        name: "branch",
        label: "Branch",
        endpoints: &[project("/projects/{id}/repository/branches")],
        primary_key: &["project_id", "name"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "commit",
        label: "Commit",
        endpoints: &[project("/projects/{id}/repository/commits")],
        primary_key: &["project_id", "id"],
        cursor: Some(Cursor { field: "committed_date", after_param: "since" }),
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "group",
        label: "Group",
        endpoints: &[
            Endpoint {
                scope: ScopeKind::Instance,
                path: "/groups",
                params: &[],
                keyset: &[],
                head: None,
                children: None,
            },
            // The group itself, then every group below it.
            Endpoint {
                scope: ScopeKind::Group,
                path: "/groups/{id}/descendant_groups",
                params: &[],
                keyset: &[],
                head: Some("/groups/{id}"),
                children: None,
            },
        ],
        primary_key: &["id"],
        cursor: None,
        record_filters: &[],
        scope_field: None,
        renames: &[],
        // The table calls these strings; GitLab sends booleans (`null` when unset) and integers.
        retypes: &[
            ("auto_devops_enabled", FieldType::Boolean),
            ("emails_disabled", FieldType::Boolean),
            ("mentions_disabled", FieldType::Boolean),
            ("ldap_access", FieldType::Integer),
            ("parent_id", FieldType::Integer),
        ],
        readable: true,
    },
    ObjectSpec {
        name: "group_member",
        label: "Group Member",
        endpoints: &[group("/groups/{id}/members")],
        primary_key: &["group_id", "id"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("group_id"),
        renames: &[],
        // GitLab sends a membership's expiry as a date (`2024-10-22`), and `is_using_seat` (with
        // `show_seat_info=true`) as a boolean.
        retypes: MEMBER_RETYPES,
        readable: true,
    },
    ObjectSpec {
        name: "group_label",
        label: "Group label",
        endpoints: &[group("/groups/{id}/labels")],
        primary_key: &["group_id", "id"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("group_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "group_milestone",
        label: "Group milestone",
        endpoints: &[group("/groups/{id}/milestones")],
        primary_key: &["id"],
        cursor: None,
        record_filters: &["state", "title"],
        scope_field: Some("group_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "issue",
        label: "Issue",
        endpoints: &[project("/projects/{id}/issues")],
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &["confidential", "due_date", "issue_type", "state"],
        scope_field: Some("project_id"),
        renames: &[],
        // GitLab sends the closing user as an object, like `author`, and the id of the issue it was
        // moved to as an integer.
        retypes: &[("closed_by", FieldType::Struct), ("moved_to_id", FieldType::Integer)],
        readable: true,
    },
    ObjectSpec {
        name: "job",
        label: "Job",
        endpoints: &[Endpoint {
            scope: ScopeKind::Project,
            path: "/projects/{id}/jobs",
            params: &[],
            keyset: KEYSET_BY_ID_DESC,
            head: None,
            children: None,
        }],
        primary_key: &["id"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        // GitLab sends durations in seconds with a fraction, the coverage as a percentage with a
        // fraction (`98.29`), and the runner as an object.
        retypes: &[
            ("duration", FieldType::Number),
            ("queued_duration", FieldType::Number),
            ("coverage", FieldType::Number),
            ("runner", FieldType::Struct),
        ],
        readable: true,
    },
    ObjectSpec {
        name: "pipeline",
        label: "Pipeline",
        endpoints: &[project("/projects/{id}/pipelines")],
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &["ref", "sha", "source", "status"],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "project",
        label: "Project",
        endpoints: &[
            Endpoint {
                scope: ScopeKind::Group,
                path: "/groups/{id}/projects",
                // Every project of the group's subgroups too; never the list embedded in
                // `GET /groups/:id`, which GitLab caps at 100 projects.
                params: &[("include_subgroups", "true")],
                keyset: &[],
                head: None,
                children: None,
            },
            Endpoint {
                scope: ScopeKind::Instance,
                path: "/projects",
                params: &[("membership", "true")],
                keyset: KEYSET_BY_ID_ASC,
                head: None,
                children: None,
            },
        ],
        primary_key: &["id"],
        cursor: Some(Cursor { field: "last_activity_at", after_param: "last_activity_after" }),
        record_filters: &["archived", "repository_storage", "visibility"],
        scope_field: None,
        renames: &[("empty_Repo", "empty_repo")],
        // The table calls two flags and a number of seconds strings; GitLab sends booleans and an
        // integer. `with_programming_language` is a language name (`Ruby`), not a boolean.
        retypes: &[
            ("allow_merge_on_skipped_pipeline", FieldType::Boolean),
            ("emails_disabled", FieldType::Boolean),
            ("runner_token_expiration_interval", FieldType::Integer),
            ("with_programming_language", FieldType::String),
        ],
        readable: true,
    },
    ObjectSpec {
        name: "project_label",
        label: "Project Label",
        endpoints: &[project("/projects/{id}/labels")],
        primary_key: &["project_id", "id"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "project_member",
        label: "Project Member",
        endpoints: &[project("/projects/{id}/members")],
        primary_key: &["project_id", "id"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        // GitLab sends a membership's expiry as a date (`2024-10-22`), and `is_using_seat` (with
        // `show_seat_info=true`) as a boolean.
        retypes: MEMBER_RETYPES,
        readable: true,
    },
    ObjectSpec {
        name: "project_merge_request",
        label: "Project Merge Request",
        endpoints: &[project("/projects/{id}/merge_requests")],
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &["source_branch", "state", "target_branch"],
        scope_field: Some("project_id"),
        renames: &[],
        // The table types a username as an integer and three fields as strings; GitLab sends a
        // string, a boolean, an object and an integer.
        retypes: &[
            ("author_username", FieldType::String),
            ("discussion_locked", FieldType::Boolean),
            ("closed_by", FieldType::Struct),
            ("approvals_before_merge", FieldType::Integer),
        ],
        readable: true,
    },
    ObjectSpec {
        name: "project_milestone",
        label: "Project milestone",
        endpoints: &[project("/projects/{id}/milestones")],
        // A group milestone is listed under every project of the group (`include_parent_milestones`),
        // so a milestone id alone is not unique among a group's project partitions.
        primary_key: &["project_id", "id"],
        cursor: None,
        record_filters: &["state", "title"],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "release",
        label: "Release",
        endpoints: &[project("/projects/{id}/releases")],
        primary_key: &["project_id", "tag_name"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "tag",
        label: "Tag",
        endpoints: &[project("/projects/{id}/repository/tags")],
        primary_key: &["project_id", "name"],
        cursor: None,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    // Beyond the AppFlow table (fields in `beyond-fields.tsv`).
    ObjectSpec {
        name: "deployment",
        label: "Deployment",
        // GitLab refuses `updated_after` / `updated_before` (the cursor's parameters) unless the list
        // is ordered by `updated_at` (400 "`updated_at` filter requires `updated_at` sort"), so the
        // list is read in that order; an `order_by` filter replaces it.
        endpoints: &[Endpoint {
            scope: ScopeKind::Project,
            path: "/projects/{id}/deployments",
            params: &[("order_by", "updated_at")],
            keyset: &[],
            head: None,
            children: None,
        }],
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &["status", "environment"],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "environment",
        label: "Environment",
        endpoints: &[project("/projects/{id}/environments")],
        primary_key: &["id"],
        cursor: None,
        record_filters: &["name"],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "issue_note",
        label: "Issue Note",
        endpoints: &[per_parent("/projects/{id}/issues", "/projects/{id}/issues/{parent}/notes", false)],
        primary_key: &["id"],
        // A new note touches its issue's `updated_at`: reading the issues updated since the notes'
        // watermark finds every new or edited note.
        cursor: UPDATED_AT,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "merge_request_note",
        label: "Merge Request Note",
        endpoints: &[per_parent(
            "/projects/{id}/merge_requests",
            "/projects/{id}/merge_requests/{parent}/notes",
            false,
        )],
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &[],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
    ObjectSpec {
        name: "merge_request_approval",
        label: "Merge Request Approval",
        endpoints: &[per_parent(
            "/projects/{id}/merge_requests",
            "/projects/{id}/merge_requests/{parent}/approvals",
            true,
        )],
        // One record per merge request, keyed by the merge request's id.
        primary_key: &["id"],
        cursor: UPDATED_AT,
        record_filters: &["state"],
        scope_field: Some("project_id"),
        renames: &[],
        retypes: &[],
        readable: true,
    },
];
