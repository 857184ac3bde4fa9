//! GitLab's JSON shapes, as `Serialize` structs whose field order is the order GitLab's API
//! entities emit (`API::Entities::Project`, `Issue`, `MergeRequestBasic`, `Group`, `UserBasic`,
//! `Milestone`).
//!
//! The structs borrow from the world ([`crate::world`]) and from the facts drawn in
//! [`crate::content`]; they are serialized exactly once per record, when a project's records are
//! first needed, and the bytes are kept (see [`crate::content::ProjectRecords`]). Field values
//! follow GitLab's real shapes where the reference TSV simplifies them: `closed_by`, `merged_by`
//! and `merge_user` are user objects or `null`, `discussion_locked` is `null` or a boolean,
//! `empty_Repo` is `empty_repo`, `approvals_before_merge` is `null`.

use serde::Serialize;

use crate::time::{Date, DateTime};
use crate::world::{Group, Milestone, Project, User, WEB_BASE};

/// `UserBasic`: how a user appears inside other records (author, assignees, ...).
#[derive(Serialize)]
pub(crate) struct UserRef<'a> {
    id: u64,
    username: &'a str,
    name: &'a str,
    state: &'a str,
    locked: bool,
    avatar_url: &'a str,
    web_url: &'a str,
}

impl<'a> From<&'a User> for UserRef<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            username: &u.username,
            name: &u.name,
            state: &u.state,
            locked: u.state == "blocked",
            avatar_url: &u.avatar_url,
            web_url: &u.web_url,
        }
    }
}

/// `GET /user`: the token's user with the private fields GitLab shows to the user itself.
#[derive(Serialize)]
pub(crate) struct CurrentUser<'a> {
    id: u64,
    username: &'a str,
    name: &'a str,
    state: &'a str,
    locked: bool,
    avatar_url: &'a str,
    web_url: &'a str,
    created_at: DateTime,
    bio: &'a str,
    location: &'a str,
    public_email: Option<&'a str>,
    skype: &'a str,
    linkedin: &'a str,
    twitter: &'a str,
    discord: &'a str,
    website_url: &'a str,
    organization: &'a str,
    job_title: &'a str,
    pronouns: Option<&'a str>,
    bot: bool,
    work_information: Option<&'a str>,
    local_time: Option<&'a str>,
    last_sign_in_at: DateTime,
    confirmed_at: DateTime,
    last_activity_on: Date,
    email: String,
    theme_id: u32,
    color_scheme_id: u32,
    projects_limit: u32,
    current_sign_in_at: DateTime,
    identities: [(); 0],
    can_create_group: bool,
    can_create_project: bool,
    two_factor_enabled: bool,
    external: bool,
    private_profile: bool,
    commit_email: String,
    is_admin: bool,
}

pub(crate) fn current_user(u: &User) -> Vec<u8> {
    let email = format!("{}@example.com", u.username);
    let record = CurrentUser {
        id: u.id,
        username: &u.username,
        name: &u.name,
        state: &u.state,
        locked: false,
        avatar_url: &u.avatar_url,
        web_url: &u.web_url,
        created_at: DateTime::utc(u.created_at),
        bio: "",
        location: "",
        public_email: None,
        skype: "",
        linkedin: "",
        twitter: "",
        discord: "",
        website_url: "",
        organization: "ACME Corp",
        job_title: "",
        pronouns: None,
        bot: u.bot,
        work_information: None,
        local_time: None,
        last_sign_in_at: DateTime::utc(u.created_at + 86_400_000),
        confirmed_at: DateTime::utc(u.created_at + 60_000),
        last_activity_on: Date::of(u.created_at + 2 * 86_400_000),
        email: email.clone(),
        theme_id: 1,
        color_scheme_id: 1,
        projects_limit: 100_000,
        current_sign_in_at: DateTime::utc(u.created_at + 2 * 86_400_000),
        identities: [],
        can_create_group: true,
        can_create_project: true,
        two_factor_enabled: false,
        external: false,
        private_profile: false,
        commit_email: email,
        is_admin: u.id == 1,
    };
    to_bytes(&record)
}

/// `Milestone`, as embedded in issues and merge requests and listed by the milestones endpoints
/// (`project_id` for a project milestone, `group_id` for a group milestone).
#[derive(Serialize)]
pub(crate) struct MilestoneRef<'a> {
    id: u64,
    iid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<u64>,
    title: &'a str,
    description: Option<&'a str>,
    state: &'a str,
    created_at: DateTime,
    updated_at: DateTime,
    due_date: Option<Date>,
    start_date: Option<Date>,
    expired: bool,
    web_url: &'a str,
}

impl<'a> From<&'a Milestone> for MilestoneRef<'a> {
    fn from(m: &'a Milestone) -> Self {
        Self {
            id: m.id,
            iid: m.iid,
            project_id: m.project_id,
            group_id: m.group_id,
            title: &m.title,
            description: m.description.as_deref(),
            state: &m.state,
            created_at: DateTime::utc(m.created_at),
            updated_at: DateTime::utc(m.updated_at),
            due_date: m.due_date,
            start_date: m.start_date,
            expired: m.expired,
            web_url: &m.web_url,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct TimeStats {
    pub time_estimate: u64,
    pub total_time_spent: u64,
    pub human_time_estimate: Option<String>,
    pub human_total_time_spent: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct TaskCompletionStatus {
    pub count: u32,
    pub completed_count: u32,
}

#[derive(Serialize)]
pub(crate) struct References {
    pub short: String,
    pub relative: String,
    pub full: String,
}

#[derive(Serialize)]
pub(crate) struct IssueLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub notes: String,
    pub award_emoji: String,
    pub project: String,
    pub closed_as_duplicate_of: Option<String>,
}

/// `API::Entities::Issue` (the list shape of `GET /projects/:id/issues`).
#[derive(Serialize)]
pub(crate) struct IssueRecord<'a> {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub state: &'static str,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub closed_at: Option<DateTime>,
    pub closed_by: Option<UserRef<'a>>,
    pub labels: Vec<&'a str>,
    pub milestone: Option<MilestoneRef<'a>>,
    pub assignees: Vec<UserRef<'a>>,
    pub author: UserRef<'a>,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub assignee: Option<UserRef<'a>>,
    pub user_notes_count: u32,
    pub merge_requests_count: u32,
    pub upvotes: u32,
    pub downvotes: u32,
    pub due_date: Option<Date>,
    pub confidential: bool,
    pub discussion_locked: Option<bool>,
    pub issue_type: &'static str,
    pub web_url: String,
    pub time_stats: TimeStats,
    pub task_completion_status: TaskCompletionStatus,
    pub blocking_issues_count: u32,
    pub has_tasks: bool,
    pub task_status: String,
    pub _links: IssueLinks,
    pub references: References,
    pub severity: &'static str,
    pub moved_to_id: Option<u64>,
    pub imported: bool,
    pub imported_from: &'static str,
    pub service_desk_reply_to: Option<&'a str>,
}

/// `API::Entities::MergeRequestBasic` (the list shape of `GET /projects/:id/merge_requests`).
#[derive(Serialize)]
pub(crate) struct MergeRequestRecord<'a> {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub state: &'static str,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub merged_by: Option<UserRef<'a>>,
    pub merge_user: Option<UserRef<'a>>,
    pub merged_at: Option<DateTime>,
    pub closed_by: Option<UserRef<'a>>,
    pub closed_at: Option<DateTime>,
    pub target_branch: &'a str,
    pub source_branch: &'a str,
    pub user_notes_count: u32,
    pub upvotes: u32,
    pub downvotes: u32,
    pub author: UserRef<'a>,
    pub assignees: Vec<UserRef<'a>>,
    pub assignee: Option<UserRef<'a>>,
    pub reviewers: Vec<UserRef<'a>>,
    pub source_project_id: u64,
    pub target_project_id: u64,
    pub labels: Vec<&'a str>,
    pub draft: bool,
    pub imported: bool,
    pub imported_from: &'static str,
    pub work_in_progress: bool,
    pub milestone: Option<MilestoneRef<'a>>,
    pub merge_when_pipeline_succeeds: bool,
    pub merge_status: &'static str,
    pub detailed_merge_status: &'static str,
    pub merge_after: Option<DateTime>,
    pub sha: &'a str,
    pub merge_commit_sha: Option<&'a str>,
    pub squash_commit_sha: Option<&'a str>,
    pub discussion_locked: Option<bool>,
    pub should_remove_source_branch: Option<bool>,
    pub force_remove_source_branch: bool,
    pub prepared_at: DateTime,
    pub allow_collaboration: bool,
    pub allow_maintainer_to_push: bool,
    pub reference: String,
    pub references: References,
    pub web_url: String,
    pub time_stats: TimeStats,
    pub squash: bool,
    pub squash_on_merge: bool,
    pub task_completion_status: TaskCompletionStatus,
    pub has_conflicts: bool,
    pub blocking_discussions_resolved: bool,
    pub approvals_before_merge: Option<u32>,
}

#[derive(Serialize)]
struct Namespace<'a> {
    id: u64,
    name: &'a str,
    path: &'a str,
    kind: &'static str,
    full_path: &'a str,
    parent_id: Option<u64>,
    avatar_url: Option<&'a str>,
    web_url: &'a str,
}

#[derive(Serialize)]
struct ProjectLinks {
    #[serde(rename = "self")]
    self_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merge_requests: Option<String>,
    repo_branches: String,
    labels: String,
    events: String,
    members: String,
    cluster_agents: String,
}

#[derive(Serialize)]
struct ContainerExpirationPolicy {
    cadence: &'static str,
    enabled: bool,
    keep_n: u32,
    older_than: &'static str,
    name_regex: &'static str,
    name_regex_keep: Option<&'static str>,
    next_run_at: DateTime,
}

#[derive(Serialize)]
struct Access {
    access_level: u32,
    notification_level: u32,
}

#[derive(Serialize)]
struct Permissions {
    project_access: Option<Access>,
    group_access: Option<Access>,
}

/// `API::Entities::ProjectWithAccess` (what `GET /projects` and `GET /projects/:id` return),
/// without `statistics`.
#[derive(Serialize)]
struct ProjectRecord<'a> {
    id: u64,
    description: Option<&'a str>,
    name: &'a str,
    name_with_namespace: &'a str,
    path: &'a str,
    path_with_namespace: &'a str,
    created_at: DateTime,
    default_branch: Option<&'a str>,
    tag_list: &'a [String],
    topics: &'a [String],
    ssh_url_to_repo: String,
    http_url_to_repo: String,
    web_url: &'a str,
    readme_url: Option<String>,
    forks_count: u64,
    avatar_url: Option<&'a str>,
    star_count: u64,
    last_activity_at: DateTime,
    namespace: Namespace<'a>,
    container_registry_image_prefix: String,
    _links: ProjectLinks,
    packages_enabled: bool,
    empty_repo: bool,
    archived: bool,
    visibility: &'a str,
    resolve_outdated_diff_discussions: bool,
    container_expiration_policy: ContainerExpirationPolicy,
    repository_object_format: &'static str,
    issues_enabled: bool,
    merge_requests_enabled: bool,
    wiki_enabled: bool,
    jobs_enabled: bool,
    snippets_enabled: bool,
    container_registry_enabled: bool,
    service_desk_enabled: bool,
    can_create_merge_request_in: bool,
    issues_access_level: &'static str,
    repository_access_level: &'static str,
    merge_requests_access_level: &'static str,
    forking_access_level: &'static str,
    wiki_access_level: &'static str,
    builds_access_level: &'static str,
    snippets_access_level: &'static str,
    pages_access_level: &'static str,
    analytics_access_level: &'static str,
    container_registry_access_level: &'static str,
    security_and_compliance_access_level: &'static str,
    releases_access_level: &'static str,
    environments_access_level: &'static str,
    feature_flags_access_level: &'static str,
    infrastructure_access_level: &'static str,
    monitor_access_level: &'static str,
    model_experiments_access_level: &'static str,
    model_registry_access_level: &'static str,
    requirements_access_level: &'static str,
    operations_access_level: &'static str,
    emails_disabled: bool,
    emails_enabled: bool,
    shared_runners_enabled: bool,
    lfs_enabled: bool,
    creator_id: u64,
    import_url: Option<&'a str>,
    import_type: Option<&'a str>,
    import_status: &'static str,
    import_error: Option<&'a str>,
    open_issues_count: usize,
    description_html: String,
    updated_at: DateTime,
    repository_storage: &'static str,
    ci_default_git_depth: u32,
    ci_forward_deployment_enabled: bool,
    ci_forward_deployment_rollback_allowed: bool,
    ci_job_token_scope_enabled: bool,
    ci_separated_caches: bool,
    ci_allow_fork_pipelines_to_run_in_parent_project: bool,
    ci_id_token_sub_claim_components: [&'static str; 2],
    build_git_strategy: &'static str,
    keep_latest_artifact: bool,
    restrict_user_defined_variables: bool,
    ci_pipeline_variables_minimum_override_role: &'static str,
    runner_token_expiration_interval: Option<u64>,
    group_runners_enabled: bool,
    auto_cancel_pending_pipelines: &'static str,
    build_timeout: u32,
    auto_devops_enabled: bool,
    auto_devops_deploy_strategy: &'static str,
    ci_push_repository_for_job_token_allowed: bool,
    ci_config_path: Option<&'static str>,
    public_jobs: bool,
    shared_with_groups: [(); 0],
    only_allow_merge_if_pipeline_succeeds: bool,
    allow_merge_on_skipped_pipeline: Option<bool>,
    request_access_enabled: bool,
    only_allow_merge_if_all_discussions_are_resolved: bool,
    remove_source_branch_after_merge: bool,
    printing_merge_request_link_enabled: bool,
    merge_method: &'static str,
    squash_option: &'static str,
    enforce_auth_checks_on_uploads: bool,
    suggestion_commit_message: Option<&'static str>,
    merge_commit_template: Option<&'static str>,
    squash_commit_template: Option<&'static str>,
    issue_branch_template: Option<&'static str>,
    warn_about_potentially_unwanted_characters: bool,
    autoclose_referenced_issues: bool,
    external_authorization_classification_label: &'static str,
    requirements_enabled: bool,
    security_and_compliance_enabled: bool,
    compliance_frameworks: [(); 0],
    permissions: Permissions,
}

/// The pre-rendered JSON of a project.
pub(crate) fn project(p: &Project, ns: &Group) -> Vec<u8> {
    let api = format!("{WEB_BASE}/api/v4/projects/{}", p.id);
    let feature = |enabled: bool| if enabled { "enabled" } else { "disabled" };
    let flags = p.flags;
    let record = ProjectRecord {
        id: p.id,
        description: p.description.as_deref(),
        name: &p.name,
        name_with_namespace: &p.name_with_namespace,
        path: &p.path,
        path_with_namespace: &p.path_with_namespace,
        created_at: p.created_at,
        // An empty repository has no default branch yet.
        default_branch: (!p.empty_repo).then_some(p.default_branch.as_str()),
        tag_list: &p.topics,
        topics: &p.topics,
        ssh_url_to_repo: format!("git@gitlab.example.com:{}.git", p.path_with_namespace),
        http_url_to_repo: format!("{}.git", p.web_url),
        web_url: &p.web_url,
        readme_url: (flags.has_readme && !p.empty_repo)
            .then(|| format!("{}/-/blob/{}/README.md", p.web_url, p.default_branch)),
        forks_count: p.forks_count,
        avatar_url: None,
        star_count: p.star_count,
        last_activity_at: p.last_activity_at,
        namespace: Namespace {
            id: ns.id,
            name: &ns.name,
            path: &ns.path,
            kind: "group",
            full_path: &ns.full_path,
            parent_id: ns.parent_id,
            avatar_url: None,
            web_url: &ns.web_url,
        },
        container_registry_image_prefix: format!("registry.gitlab.example.com/{}", p.path_with_namespace),
        _links: ProjectLinks {
            issues: p.issues_enabled.then(|| format!("{api}/issues")),
            merge_requests: p.merge_requests_enabled.then(|| format!("{api}/merge_requests")),
            repo_branches: format!("{api}/repository/branches"),
            labels: format!("{api}/labels"),
            events: format!("{api}/events"),
            members: format!("{api}/members"),
            cluster_agents: format!("{api}/cluster_agents"),
            self_: api,
        },
        packages_enabled: true,
        empty_repo: p.empty_repo,
        archived: p.archived,
        visibility: &p.visibility,
        resolve_outdated_diff_discussions: false,
        container_expiration_policy: ContainerExpirationPolicy {
            cadence: "1d",
            enabled: flags.registry_cleanup,
            keep_n: 10,
            older_than: "90d",
            name_regex: ".*",
            name_regex_keep: None,
            next_run_at: DateTime::utc(p.created_at.millis + 86_400_000),
        },
        repository_object_format: "sha1",
        issues_enabled: p.issues_enabled,
        merge_requests_enabled: p.merge_requests_enabled,
        wiki_enabled: flags.wiki,
        jobs_enabled: p.jobs_enabled,
        snippets_enabled: true,
        container_registry_enabled: true,
        service_desk_enabled: flags.service_desk,
        can_create_merge_request_in: true,
        issues_access_level: feature(p.issues_enabled),
        repository_access_level: "enabled",
        merge_requests_access_level: feature(p.merge_requests_enabled),
        forking_access_level: "enabled",
        wiki_access_level: feature(flags.wiki),
        builds_access_level: feature(p.jobs_enabled),
        snippets_access_level: "enabled",
        pages_access_level: if p.visibility == "public" { "enabled" } else { "private" },
        analytics_access_level: "enabled",
        container_registry_access_level: "enabled",
        security_and_compliance_access_level: "private",
        releases_access_level: "enabled",
        environments_access_level: "enabled",
        feature_flags_access_level: "enabled",
        infrastructure_access_level: "enabled",
        monitor_access_level: "enabled",
        model_experiments_access_level: "enabled",
        model_registry_access_level: "enabled",
        requirements_access_level: "enabled",
        operations_access_level: "enabled",
        emails_disabled: false,
        emails_enabled: true,
        shared_runners_enabled: true,
        lfs_enabled: true,
        creator_id: p.creator_id,
        import_url: None,
        import_type: None,
        import_status: "none",
        import_error: None,
        open_issues_count: p.open_issues_count,
        description_html: description_html(p.description.as_deref()),
        updated_at: p.updated_at,
        // Shown to administrators, as the token's user is.
        repository_storage: "default",
        ci_default_git_depth: 20,
        ci_forward_deployment_enabled: true,
        ci_forward_deployment_rollback_allowed: true,
        ci_job_token_scope_enabled: false,
        ci_separated_caches: true,
        ci_allow_fork_pipelines_to_run_in_parent_project: true,
        ci_id_token_sub_claim_components: ["project_path", "ref_type"],
        build_git_strategy: "fetch",
        keep_latest_artifact: true,
        restrict_user_defined_variables: false,
        ci_pipeline_variables_minimum_override_role: "developer",
        runner_token_expiration_interval: None,
        group_runners_enabled: true,
        auto_cancel_pending_pipelines: "enabled",
        build_timeout: 3600,
        auto_devops_enabled: false,
        auto_devops_deploy_strategy: "continuous",
        ci_push_repository_for_job_token_allowed: false,
        ci_config_path: None,
        public_jobs: true,
        shared_with_groups: [],
        only_allow_merge_if_pipeline_succeeds: flags.strict_merges,
        allow_merge_on_skipped_pipeline: flags.strict_merges.then_some(false),
        request_access_enabled: true,
        only_allow_merge_if_all_discussions_are_resolved: flags.strict_merges,
        remove_source_branch_after_merge: true,
        printing_merge_request_link_enabled: true,
        merge_method: p.merge_method,
        squash_option: "default_off",
        enforce_auth_checks_on_uploads: true,
        suggestion_commit_message: None,
        merge_commit_template: None,
        squash_commit_template: None,
        issue_branch_template: None,
        warn_about_potentially_unwanted_characters: true,
        autoclose_referenced_issues: true,
        external_authorization_classification_label: "",
        requirements_enabled: false,
        security_and_compliance_enabled: true,
        compliance_frameworks: [],
        permissions: Permissions {
            project_access: flags.member.then_some(Access { access_level: 30, notification_level: 3 }),
            group_access: Some(Access { access_level: 50, notification_level: 3 }),
        },
    };
    to_bytes(&record)
}

/// GitLab renders markdown to HTML; a paragraph with the escaped text is close enough.
fn description_html(description: Option<&str>) -> String {
    match description {
        None | Some("") => String::new(),
        Some(text) => {
            let mut html = format!("<p data-sourcepos=\"1:1-1:{}\" dir=\"auto\">", text.chars().count());
            for c in text.chars() {
                match c {
                    '<' => html.push_str("&lt;"),
                    '>' => html.push_str("&gt;"),
                    '&' => html.push_str("&amp;"),
                    '"' => html.push_str("&quot;"),
                    c => html.push(c),
                }
            }
            html.push_str("</p>");
            html
        }
    }
}

#[derive(Serialize)]
struct BranchProtectionDefaults {
    allowed_to_push: [Access1; 1],
    allow_force_push: bool,
    allowed_to_merge: [Access1; 1],
}

#[derive(Serialize)]
struct Access1 {
    access_level: u32,
}

/// `API::Entities::Group` (the list shape; `GET /groups/:id` adds `projects` and friends).
#[derive(Serialize)]
struct GroupRecord<'a> {
    id: u64,
    web_url: &'a str,
    name: &'a str,
    path: &'a str,
    description: &'a str,
    visibility: &'a str,
    share_with_group_lock: bool,
    require_two_factor_authentication: bool,
    two_factor_grace_period: u32,
    project_creation_level: &'static str,
    auto_devops_enabled: Option<bool>,
    subgroup_creation_level: &'static str,
    emails_disabled: bool,
    emails_enabled: bool,
    mentions_disabled: Option<bool>,
    lfs_enabled: bool,
    math_rendering_limits_enabled: bool,
    lock_math_rendering_limits_enabled: bool,
    default_branch: Option<&'a str>,
    default_branch_protection: u32,
    default_branch_protection_defaults: BranchProtectionDefaults,
    avatar_url: Option<&'a str>,
    request_access_enabled: bool,
    full_name: &'a str,
    full_path: &'a str,
    created_at: DateTime,
    parent_id: Option<u64>,
    organization_id: u64,
    shared_runners_setting: &'static str,
    ldap_cn: Option<&'a str>,
    ldap_access: Option<u32>,
    wiki_access_level: &'static str,
    file_template_project_id: Option<u64>,
    ip_restriction_ranges: Option<&'a str>,
}

/// The pre-rendered JSON of a group (list shape).
pub(crate) fn group(g: &Group) -> Vec<u8> {
    let record = GroupRecord {
        id: g.id,
        web_url: &g.web_url,
        name: &g.name,
        path: &g.path,
        description: &g.description,
        visibility: &g.visibility,
        share_with_group_lock: false,
        require_two_factor_authentication: false,
        two_factor_grace_period: 48,
        project_creation_level: "developer",
        auto_devops_enabled: None,
        subgroup_creation_level: "maintainer",
        emails_disabled: false,
        emails_enabled: true,
        mentions_disabled: None,
        lfs_enabled: true,
        math_rendering_limits_enabled: true,
        lock_math_rendering_limits_enabled: false,
        default_branch: None,
        default_branch_protection: 2,
        default_branch_protection_defaults: BranchProtectionDefaults {
            allowed_to_push: [Access1 { access_level: 40 }],
            allow_force_push: false,
            allowed_to_merge: [Access1 { access_level: 40 }],
        },
        avatar_url: None,
        request_access_enabled: true,
        full_name: &g.full_name,
        full_path: &g.full_path,
        created_at: g.created_at,
        parent_id: g.parent_id,
        organization_id: 1,
        shared_runners_setting: "enabled",
        ldap_cn: None,
        ldap_access: None,
        wiki_access_level: "enabled",
        file_template_project_id: None,
        ip_restriction_ranges: None,
    };
    to_bytes(&record)
}

/// Serializes a record; the shapes above hold only strings, numbers and options, which cannot
/// fail to serialize.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}
