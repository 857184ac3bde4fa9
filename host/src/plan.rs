//! Planning a run: from a flow to checked partitions, before anything is written.
//!
//! 1. Check, sending nothing: every object exists and is readable (`list-objects`, `describe-schema`),
//!    every scope can be read or expanded, every request is valid (`validate-request`: fields,
//!    filters, values). One bad filter refuses the whole flow.
//! 2. Resolve scopes (`list-scopes`): a project or group given by path gets its numeric id (partitions
//!    are keyed by ids, which survive renames); a group or the instance, for an object read per project,
//!    expands to every project inside it (subgroups included), listed once and shared by the objects.
//! 3. One partition per (object, scope), without duplicates.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, anyhow, bail};

use crate::dest::{Column, TableSchema};
use crate::flow::Flow;
use crate::retry::{Ended, Retrier};
use crate::run::connector_message;
use crate::sandbox::wit::{self, ObjectInfo, Scope, ScopeKind};
use crate::sandbox::{CallFailure, Sandbox};

/// One (object, scope) pair to read: its first page's request and a label for people.
#[derive(Clone, Debug)]
pub struct Partition {
    pub request: wit::ReadRequest,
    pub label: String,
}

/// What a run reads and where it writes it.
pub struct Plan {
    pub tables: Vec<TableSchema>,
    pub partitions: Vec<Partition>,
}

/// How one scope a person gave becomes the scopes an object is read under.
enum Reach {
    /// Read under the scope itself (resolved to its id).
    Direct,
    /// Read under every scope of this kind inside it.
    Expand(ScopeKind),
}

/// Plan `flow` with the `control` sandbox (whose requests pass through the tenant's gate, and are
/// retried by `retrier`).
pub async fn plan(control: &mut Sandbox, retrier: &Retrier, connection: &wit::Connection, flow: &Flow) -> Result<Plan> {
    let objects = control.list_objects().await.map_err(|e| anyhow!(e.0))?;

    // 1. Check everything, sending nothing.
    let mut tables = Vec::new();
    let mut work = Vec::new();
    for object_flow in &flow.objects {
        let (info, table) = describe(control, &objects, &object_flow.object).await?;
        if object_flow.scopes.is_empty() {
            bail!("no scope given for '{}': add --project ID_OR_PATH, --group ID_OR_PATH or --instance", info.name);
        }
        let mut fields = object_flow.fields.clone();
        if !fields.is_empty() {
            // Records without their key cannot be upserted: always read it.
            for key in table.primary_key.iter().rev() {
                if !fields.contains(key) {
                    fields.insert(0, key.clone());
                }
            }
        }
        for scope in &object_flow.scopes {
            let reach = reach(&info, scope)?;
            let sample_scope = match reach {
                Reach::Direct => scope.clone(),
                Reach::Expand(ScopeKind::Group) => Scope::Group("1".into()),
                Reach::Expand(_) => Scope::Project("1".into()),
            };
            let request = wit::ReadRequest {
                object: info.name.clone(),
                scope: sample_scope,
                fields: fields.clone(),
                filters: object_flow.filters.clone(),
                page_size: flow.page_size,
                page_token: None,
            };
            if let Err(error) = control.validate_request(connection, &request).await.map_err(|e| anyhow!(e.0))? {
                bail!("{}", connector_message(&error));
            }
            work.push((request, scope.clone(), reach));
        }
        tables.push(table);
    }

    // 2. Resolve and expand scopes, each once.
    let mut found: HashMap<(String, u8), Vec<wit::ScopeEntry>> = HashMap::new();
    let mut partitions = Vec::new();
    let mut seen = HashSet::new();
    for (request, scope, reach) in work {
        let kind = match reach {
            Reach::Direct => scope_kind(&scope),
            Reach::Expand(kind) => kind,
        };
        let key = (describe_scope(&scope), kind as u8);
        if !found.contains_key(&key) {
            let entries = match (&reach, &scope) {
                (Reach::Direct, Scope::Instance) => {
                    vec![wit::ScopeEntry { scope: Scope::Instance, label: "instance".into() }]
                }
                // The scope itself: the first entry of the first page (a group lists its
                // descendants after it, on later pages).
                (Reach::Direct, _) => {
                    let mut entries = list_scopes(control, retrier, connection, &scope, kind, Pages::First).await?;
                    entries.truncate(1);
                    entries
                }
                (Reach::Expand(_), _) => list_scopes(control, retrier, connection, &scope, kind, Pages::All).await?,
            };
            found.insert(key.clone(), entries);
        }
        for entry in &found[&key] {
            if seen.insert((request.object.clone(), describe_scope(&entry.scope))) {
                let label = format!("{} {}", scope_kind_name(scope_kind(&entry.scope)), entry.label);
                partitions.push(Partition {
                    request: wit::ReadRequest { scope: entry.scope.clone(), ..request.clone() },
                    label,
                });
            }
        }
    }
    Ok(Plan { tables, partitions })
}

/// The object's info and its destination table, or why it cannot be read.
async fn describe(control: &mut Sandbox, objects: &[ObjectInfo], object: &str) -> Result<(ObjectInfo, TableSchema)> {
    let schema = match control.describe_schema(object).await.map_err(|e| anyhow!(e.0))? {
        Ok(schema) => schema,
        Err(error) => bail!("{}", connector_message(&error)),
    };
    let info = objects.iter().find(|o| o.name == object).unwrap_or(&schema.object).clone();
    if !info.readable {
        bail!("object '{object}' is described but not readable yet");
    }
    let table = TableSchema {
        name: object.to_owned(),
        columns: schema
            .fields
            .iter()
            .filter(|f| !f.filter_only)
            .map(|f| Column { name: f.name.clone(), field_type: f.field_type })
            .collect(),
        primary_key: info.primary_key.clone(),
    };
    Ok((info, table))
}

/// How `info` is read under `scope`, or why it cannot be.
fn reach(info: &ObjectInfo, scope: &Scope) -> Result<Reach> {
    let kind = scope_kind(scope);
    if info.scopes.contains(&kind) {
        return Ok(Reach::Direct);
    }
    // A wider scope than the object's: read the object in every narrower scope inside it.
    for narrower in [ScopeKind::Project, ScopeKind::Group] {
        let wider = matches!((kind, narrower), (ScopeKind::Instance, _) | (ScopeKind::Group, ScopeKind::Project));
        if wider && info.scopes.contains(&narrower) {
            return Ok(Reach::Expand(narrower));
        }
    }
    let allowed: Vec<&str> = info.scopes.iter().map(|k| scope_kind_name(*k)).collect();
    bail!(
        "object '{}' cannot be read at {} scope ({}); it is read at: {}",
        info.name,
        scope_kind_name(kind),
        describe_scope(scope),
        allowed.join(", ")
    )
}

/// How much of `list-scopes` to read.
#[derive(Clone, Copy, PartialEq)]
enum Pages {
    /// The first page only: enough to resolve a path to its id.
    First,
    /// Every page: every scope inside.
    All,
}

/// The entries of `list-scopes`, from the first page only or from every page.
async fn list_scopes(
    control: &mut Sandbox,
    retrier: &Retrier,
    connection: &wit::Connection,
    within: &Scope,
    kind: ScopeKind,
    pages: Pages,
) -> Result<Vec<wit::ScopeEntry>> {
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut attempts =
            retrier.attempts(&format!("listing the {}s of {}", scope_kind_name(kind), describe_scope(within)));
        let listed = loop {
            attempts.begin().await;
            let listed = control.list_scopes(connection, within, kind, token.as_deref()).await;
            match attempts.judge(listed).await {
                Ok(Some(page)) => break Ok(page),
                Ok(None) => {}
                Err(ended) => break Err(ended),
            }
        };
        let page = match listed {
            Ok(page) => page,
            Err(Ended::Call(failure)) => bail!("{}", failure.0),
            Err(ended) => bail!(
                "cannot list the {}s of {}: {}",
                scope_kind_name(kind),
                describe_scope(within),
                match ended {
                    Ended::Connector(error) => connector_message(&error),
                    Ended::Exhausted(message) | Ended::Call(CallFailure(message)) => message,
                }
            ),
        };
        entries.extend(page.scopes);
        match page.next_page_token {
            Some(next) if pages == Pages::All => token = Some(next),
            _ => return Ok(entries),
        }
    }
}

fn scope_kind(scope: &Scope) -> ScopeKind {
    match scope {
        Scope::Instance => ScopeKind::Instance,
        Scope::Group(_) => ScopeKind::Group,
        Scope::Project(_) => ScopeKind::Project,
    }
}

pub fn scope_kind_name(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Instance => "instance",
        ScopeKind::Group => "group",
        ScopeKind::Project => "project",
    }
}

/// `project acme/api`, `group 7`, `instance`.
pub fn describe_scope(scope: &Scope) -> String {
    match scope {
        Scope::Instance => "instance".to_owned(),
        Scope::Group(r) => format!("group {r}"),
        Scope::Project(r) => format!("project {r}"),
    }
}
