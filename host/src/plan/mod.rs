//! Planning a run: from a flow to checked partitions, before anything is written.
//!
//! 1. Check, sending nothing ([`check`]): every object exists and is readable (`list-objects`,
//!    `describe-schema`), every scope can be read or expanded, every request is valid
//!    (`validate-request`: fields, filters, values; for incremental reads, the cursor filter too). One
//!    bad filter refuses the whole flow, and the error names the key of the flow it is about (the
//!    plugin refuses a request; validating its parts alone tells which part it refuses).
//! 2. Resolve scopes (`list-scopes`, the first page of each): a project or group given by path gets
//!    its numeric id (partitions are keyed by ids, which survive renames); a group or the instance, for
//!    an object read per project, lists the projects inside it (subgroups included), listed once and
//!    shared by the objects. A scope that is missing, forbidden or refuses the credential is known
//!    here, before the destination is opened: a 401 ends the run; a named scope GitLab does not show
//!    (404, 403) fails the reads under it ([`Unresolved`]), and the run reads the others. Each scope
//!    is one request, and a flow naming twenty projects does not make them one after the other:
//!    planning's sandbox and one more per free permit of the partitions (the flow's, or its
//!    tenant's) each ask the next ([`Resolvers`]).
//! 3. One partition per (object, scope), without duplicates, keyed by the flow's id, the object and the
//!    scope's id ([`PartitionKey`]).
//! 4. A listing longer than a page goes on as a [`Listing`], which the run reads beside the
//!    partitions already planned: a group of 3,000 projects starts reading its first 100 after one
//!    listing request, not thirty.
//!
//! ```text
//!  flow ──► check ──► first page of each scope ──► Plan { tables, partitions, unresolved, listing }
//!                                                                                         │
//!        the run reads `partitions` while `listing` reads the later pages ◄───────────────┘
//!        (see `listing`) and hands it theirs
//! ```

mod listing;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::dest::{Column, TableSchema};
use crate::flow::origin::Origins;
use crate::flow::{Flow, Mode, ObjectFlow, ScopeRef, connection};
use crate::gate::{GatePolicy, GateStats};
use crate::resume;
use crate::retry::{Ended, Retrier};
use crate::run::connector_message;
use crate::sandbox::wit::{self, ConnectorError, FieldType, ObjectInfo, Scope, ScopeKind};
use crate::sandbox::{CallFailure, Label, Limits, Plugin, Sandbox};
use crate::state::PartitionKey;

pub use listing::{Listed, Listing, Unlisted};

/// One (object, scope) pair to read.
#[derive(Clone, Debug)]
pub struct Partition {
    /// The first page's request, as the flow asks it (without the cursor filter an incremental read
    /// adds).
    pub request: wit::ReadRequest,
    /// For people: `project acme/api`.
    pub label: String,
    /// The checkpoint key: flow, object, scope by id.
    pub key: PartitionKey,
    pub mode: Mode,
    /// The object's incremental cursor, if it has one usable for incremental reads.
    pub cursor: Option<Cursor>,
    /// The object's key in the flow (`objects[1]`), for errors.
    pub flow_key: String,
    /// Where its report goes in the summary: after those of the scopes the flow names before its
    /// own, and after those listed before it under the same scope.
    pub position: Position,
}

/// A partition's place in the summary: the place in the flow of the scope it comes from (objects
/// in order, each object's scopes in order), then its place in that scope's listing.
pub type Position = (usize, usize);

/// An object's incremental cursor: a record field that only grows.
#[derive(Clone, Debug)]
pub struct Cursor {
    pub field: String,
    pub field_type: FieldType,
}

/// What a run reads and where it writes it.
pub struct Plan {
    pub tables: Vec<TableSchema>,
    pub partitions: Vec<Partition>,
    /// Reads that cannot happen because GitLab does not show the scope the flow names (404, 403):
    /// failed, with the reason, while the rest of the run goes on.
    pub unresolved: Vec<Unresolved>,
    /// The listings with pages still to read, and the planning sandbox that reads them; none when
    /// every listing fit in a page.
    pub listing: Option<Listing>,
}

/// An object whose named scope GitLab does not show (a typo, a project deleted or moved, a token
/// without access), and why: the flow asked for it by name, so its read fails rather than being
/// skipped; the scopes GitLab does show are read all the same.
#[derive(Clone, Debug)]
pub struct Unresolved {
    pub object: String,
    /// For people: `project acme/typo`.
    pub scope: String,
    pub reason: String,
    /// Where its report goes in the summary, among the partitions: in the flow's order.
    pub position: Position,
}

/// A flow checked by the plugin, sending nothing: every read it asks for, before scopes are resolved.
pub struct Checked {
    pub tables: Vec<TableSchema>,
    work: Vec<Work>,
}

/// One scope of one object, checked.
#[derive(Clone)]
struct Work {
    /// The request with a sample scope of the kind it is read at.
    request: wit::ReadRequest,
    /// The scope as the flow names it, and its key in the flow.
    scope: ScopeRef,
    reach: Reach,
    mode: Mode,
    cursor: Option<Cursor>,
    flow_key: String,
}

/// How one scope a person gave becomes the scopes an object is read under.
#[derive(Clone, Copy)]
enum Reach {
    /// Read under the scope itself (resolved to its id).
    Direct,
    /// Read under every scope of this kind inside it.
    Expand(ScopeKind),
}

/// How planning starts more sandboxes, to resolve several scopes at once.
pub struct Resolvers {
    pub plugin: Arc<Plugin>,
    /// The tenant's gate.
    pub policy: Arc<GatePolicy>,
    /// Planning's figures.
    pub stats: Arc<GateStats>,
    pub limits: Limits,
    pub label: Label,
    /// The partitions' permits (the tenant's, or the flow's own): each extra sandbox holds one while
    /// it lists, so planning asks at most one request more at once than the partitions may (its own
    /// sandbox's).
    pub permits: Arc<Semaphore>,
}

impl Resolvers {
    /// One more sandbox, with its permit, if a permit and a slot of the engine's pool are free now;
    /// `None` if not (planning then goes on with those it has: waiting for a slot while holding one
    /// could wait for ever, with tenants planning side by side on one engine).
    async fn sandbox(&self) -> Option<Result<(Sandbox, OwnedSemaphorePermit), CallFailure>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        let sandbox = self
            .plugin
            .try_instantiate(self.policy.clone(), self.stats.clone(), &self.limits, self.label.clone())
            .await?;
        Some(sandbox.map(|sandbox| (sandbox, permit)))
    }
}

/// Check and plan `flow` with the `control` sandbox (whose requests pass through the tenant's gate),
/// and as many more from `resolvers` as resolving its scopes at once takes. `list-scopes` calls are
/// retried by `retrier` (a 429, a 5xx, a network failure). The control sandbox goes on in the plan's
/// [`Listing`] if a listing has more pages.
pub async fn plan(
    mut control: Sandbox,
    resolvers: &Resolvers,
    retrier: Retrier,
    connection: &wit::Connection,
    flow: &Flow,
) -> Result<Plan> {
    let checked = check(&mut control, connection, flow).await?;
    let resolved = resolve(&mut control, resolvers, &retrier, connection, flow, checked.work).await?;
    let (rest, seen) = (resolved.rest, resolved.seen);
    let listing = (!rest.is_empty()).then(|| Listing {
        control,
        retrier,
        connection: connection.clone(),
        flow: flow.clone(),
        rest,
        seen,
    });
    Ok(Plan { tables: checked.tables, partitions: resolved.partitions, unresolved: resolved.unresolved, listing })
}

/// Check everything `flow` asks, sending nothing: objects, scopes, fields, filters, and (for
/// incremental reads) the cursor filter. An error names the key of the flow it is about.
pub async fn check(control: &mut Sandbox, connection: &wit::Connection, flow: &Flow) -> Result<Checked> {
    let objects = control.list_objects().await.map_err(|e| anyhow!(e.0))?;
    let origins = &flow.origins;
    let mut tables: Vec<TableSchema> = Vec::new();
    let mut work = Vec::new();
    for object_flow in &flow.objects {
        let (info, table) = describe(control, &objects, &object_flow.object)
            .await
            .map_err(|e| origins.error(&object_flow.key_of("object"), format!("{e:#}")))?;
        if object_flow.scopes.is_empty() {
            bail!(origins.message(&object_flow.key, format!("no scope given for '{}'", info.name)));
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
        let cursor = cursor(&info, &table);
        for scope_ref in &object_flow.scopes {
            let reach = reach(&info, &scope_ref.scope).map_err(|e| origins.error(&scope_ref.key, e))?;
            let sample_scope = match reach {
                Reach::Direct => scope_ref.scope.clone(),
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
            validate(control, connection, object_flow, scope_ref, &request, origins).await?;
            if let (Mode::Incremental, Some(cursor)) = (object_flow.mode, &cursor) {
                let mut incremental = request.clone();
                let sample = resume::sample_value(cursor.field_type).unwrap_or_default();
                incremental.filters.push(resume::cursor_filter(cursor, sample));
                if let Some(error) = refusal(control, connection, &incremental).await? {
                    bail!(origins.message(
                        &object_flow.key_of("mode"),
                        format!("'{}' cannot be read incrementally: {}", info.name, connector_message(&error))
                    ));
                }
            }
            work.push(Work {
                request,
                scope: scope_ref.clone(),
                reach,
                mode: object_flow.mode,
                cursor: cursor.clone(),
                flow_key: object_flow.key.clone(),
            });
        }
        if !tables.iter().any(|t| t.name == table.name) {
            tables.push(table);
        }
    }
    Ok(Checked { tables, work })
}

/// The object's cursor, when incremental reads can use it.
fn cursor(info: &ObjectInfo, table: &TableSchema) -> Option<Cursor> {
    let field = info.cursor_field.as_ref()?;
    let column = table.columns.iter().find(|c| &c.name == field)?;
    resume::sample_value(column.field_type)?;
    Some(Cursor { field: field.clone(), field_type: column.field_type })
}

/// Why the plugin refuses `request`, if it does.
async fn refusal(
    control: &mut Sandbox,
    connection: &wit::Connection,
    request: &wit::ReadRequest,
) -> Result<Option<wit::ConnectorError>> {
    Ok(control.validate_request(connection, request).await.map_err(|e| anyhow!(e.0))?.err())
}

/// Validate `request`; when the plugin refuses it, find the part it refuses (the scope, a field, a
/// filter) by validating each alone, and name that part's key.
async fn validate(
    control: &mut Sandbox,
    connection: &wit::Connection,
    object_flow: &ObjectFlow,
    scope_ref: &ScopeRef,
    request: &wit::ReadRequest,
    origins: &Origins,
) -> Result<()> {
    let Some(error) = refusal(control, connection, request).await? else {
        return Ok(());
    };
    let bare = wit::ReadRequest { fields: vec![], filters: vec![], ..request.clone() };
    let mut suspects: Vec<(String, wit::ReadRequest)> = vec![(scope_ref.key.clone(), bare.clone())];
    for (n, field) in object_flow.fields.iter().enumerate() {
        let alone = wit::ReadRequest { fields: vec![field.clone()], ..bare.clone() };
        suspects.push((object_flow.key_of(&format!("fields[{n}]")), alone));
    }
    for (n, filter) in object_flow.filters.iter().enumerate() {
        let alone = wit::ReadRequest { filters: vec![filter.clone()], ..bare.clone() };
        suspects.push((object_flow.key_of(&format!("filters[{n}]")), alone));
    }
    for (key, alone) in suspects {
        if let Some(error) = refusal(control, connection, &alone).await? {
            bail!(origins.message(&key, connector_message(&error)));
        }
    }
    // Each part passes alone; together they do not.
    bail!(origins.message(&object_flow.key, connector_message(&error)))
}

/// What resolving the scopes found: the partitions of every listing's first page, the reads whose
/// scope GitLab does not show, and the listings with more pages.
struct Resolved {
    partitions: Vec<Partition>,
    unresolved: Vec<Unresolved>,
    /// The listings with more pages, in the order the flow names their scopes.
    rest: Vec<listing::Rest>,
    /// The keys of the partitions planned so far (a scope named twice, or inside another, is read once).
    seen: HashSet<PartitionKey>,
}

/// Resolve the scopes of `work`, each once, and list the first page of those expanded: one
/// partition per (object, scope by id). A scope GitLab says is missing or forbidden fails the
/// objects read under it (and only them); a listing with more pages goes on in `rest`.
async fn resolve(
    control: &mut Sandbox,
    resolvers: &Resolvers,
    retrier: &Retrier,
    connection: &wit::Connection,
    flow: &Flow,
    work: Vec<Work>,
) -> Result<Resolved> {
    // Each listing once (a scope named twice, or by two objects read alike, is asked once);
    // `listing_of[n]` is the place in `wanted` of the listing work item n is read from.
    let mut wanted: Vec<ScopeListing> = Vec::new();
    let mut listing_of = Vec::with_capacity(work.len());
    for item in &work {
        let listed = ScopeListing::of(item);
        listing_of.push(wanted.iter().position(|w| w.is(&listed)).unwrap_or_else(|| {
            wanted.push(listed);
            wanted.len() - 1
        }));
    }
    let pages = first_pages(control, resolvers, retrier, connection, &wanted).await;
    let mut found: Vec<Result<wit::ScopePage, String>> = Vec::with_capacity(pages.len());
    for (at, (listed, page)) in wanted.iter().zip(pages).enumerate() {
        let page = match page {
            Ok(mut page) if listed.direct => {
                // The scope itself: the first entry of the first page (a group lists its
                // descendants after it, on later pages).
                page.scopes.truncate(1);
                page.next_page_token = None;
                Ok(page)
            }
            Ok(page) => Ok(page),
            Err(failure) => {
                // Named by the key of the first work read from it, as `host check` names it.
                let item = &work[listing_of.iter().position(|&of| of == at).expect("each listing is some work's")];
                let hidden = failure.is_hidden();
                let error = scope_error(flow, retrier.policy(), &item.scope.key, failure);
                if !hidden {
                    return Err(error);
                }
                Err(error.to_string())
            }
        };
        found.push(page);
    }
    let mut resolved =
        Resolved { partitions: Vec::new(), unresolved: Vec::new(), rest: Vec::new(), seen: HashSet::new() };
    for (place, (item, at)) in work.into_iter().zip(listing_of).enumerate() {
        let page = match &found[at] {
            Ok(page) => page,
            Err(reason) => {
                resolved.unresolved.push(Unresolved {
                    object: item.request.object.clone(),
                    scope: describe_scope(&item.scope.scope),
                    reason: reason.clone(),
                    position: (place, 0),
                });
                continue;
            }
        };
        for (n, entry) in page.scopes.iter().enumerate() {
            if let Some(partition) = item.partition(&flow.id, entry, (place, n), &mut resolved.seen) {
                resolved.partitions.push(partition);
            }
        }
        if let Some(token) = &page.next_page_token {
            match resolved.rest.iter_mut().find(|rest| rest.listing == at) {
                Some(rest) => rest.add(place, item),
                None => {
                    let listed = &wanted[at];
                    let mut rest =
                        listing::Rest::new(at, listed.within.clone(), listed.kind, token.clone(), page.scopes.len());
                    rest.add(place, item);
                    resolved.rest.push(rest);
                }
            }
        }
    }
    Ok(resolved)
}

/// A listing planning reads the first page of: the scopes of a kind within a scope.
struct ScopeListing {
    within: Scope,
    kind: ScopeKind,
    /// Only the scope itself is wanted (a project or group resolved to its id), not what is in it.
    direct: bool,
}

impl ScopeListing {
    /// The listing `item` is read from.
    fn of(item: &Work) -> ScopeListing {
        let within = item.scope.scope.clone();
        match item.reach {
            Reach::Direct => ScopeListing { kind: scope_kind(&within), within, direct: true },
            Reach::Expand(kind) => ScopeListing { within, kind, direct: false },
        }
    }

    /// Whether `other` is the same listing (of the same scope, named alike).
    fn is(&self, other: &ScopeListing) -> bool {
        self.kind == other.kind && describe_scope(&self.within) == describe_scope(&other.within)
    }
}

/// The first page of each listing `wanted`, in its order. The instance itself needs no request; the
/// others go several at a time, the `control` sandbox and one more per permit and engine slot free
/// (see [`Resolvers`]), each taking the next one left. After a failure that ends planning (not a 403
/// or 404, which fail only the reads of their scope), no more are asked.
async fn first_pages(
    control: &mut Sandbox,
    resolvers: &Resolvers,
    retrier: &Retrier,
    connection: &wit::Connection,
    wanted: &[ScopeListing],
) -> Vec<Result<wit::ScopePage, ScopeFailure>> {
    let to_ask = wanted.iter().filter(|w| !(w.direct && matches!(w.within, Scope::Instance))).count();
    let mut more = Vec::new();
    while more.len() + 1 < to_ask {
        match resolvers.sandbox().await {
            Some(Ok(sandbox)) => more.push(sandbox),
            // The sandboxes there are list its share.
            Some(Err(failure)) => {
                tracing::debug!("{} planning sandboxes, not more: {failure}", more.len() + 1);
                break;
            }
            None => break,
        }
    }
    let shared = FirstPages {
        wanted,
        retrier,
        connection,
        next: AtomicUsize::new(0),
        ended: AtomicBool::new(false),
        pages: Mutex::new(wanted.iter().map(|_| None).collect()),
    };
    let mut sandboxes = vec![control];
    sandboxes.extend(more.iter_mut().map(|(sandbox, _permit)| sandbox));
    futures_util::future::join_all(sandboxes.into_iter().map(|sandbox| shared.work(sandbox))).await;
    // Those never asked (after a failure) come after it, and are never looked at.
    shared
        .pages
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|page| page.unwrap_or_else(|| Err(ScopeFailure::Call("not listed: planning had failed".into()))))
        .collect()
}

/// The listings whose first page is wanted, and what the sandboxes listing them share (polled
/// together in one task, `join_all`; atomics and a lock only because the task moves between threads).
struct FirstPages<'a> {
    wanted: &'a [ScopeListing],
    retrier: &'a Retrier,
    connection: &'a wit::Connection,
    /// The next listing to ask.
    next: AtomicUsize,
    /// A failure that ends planning came: ask no more.
    ended: AtomicBool,
    pages: Mutex<Vec<Option<Result<wit::ScopePage, ScopeFailure>>>>,
}

impl FirstPages<'_> {
    /// With `sandbox`, ask the next listing left until none is.
    async fn work(&self, sandbox: &mut Sandbox) {
        while !self.ended.load(Ordering::Relaxed) {
            let at = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(listed) = self.wanted.get(at) else { return };
            let page = match (listed.direct, &listed.within) {
                (true, Scope::Instance) => Ok(wit::ScopePage {
                    scopes: vec![wit::ScopeEntry { scope: Scope::Instance, label: "instance".into() }],
                    next_page_token: None,
                }),
                (_, within) => list_scope_page(sandbox, self.retrier, self.connection, within, listed.kind, None).await,
            };
            if page.as_ref().is_err_and(|failure| !failure.is_hidden()) {
                self.ended.store(true, Ordering::Relaxed);
            }
            self.pages.lock().unwrap_or_else(|e| e.into_inner())[at] = Some(page);
        }
    }
}

impl Work {
    /// The partition of this work's object under `entry`, at `position`, unless `seen` has it.
    fn partition(
        &self,
        flow_id: &str,
        entry: &wit::ScopeEntry,
        position: Position,
        seen: &mut HashSet<PartitionKey>,
    ) -> Option<Partition> {
        let key = partition_key(flow_id, &self.request.object, &entry.scope);
        seen.insert(key.clone()).then(|| Partition {
            request: wit::ReadRequest { scope: entry.scope.clone(), ..self.request.clone() },
            label: format!("{} {}", scope_kind_name(scope_kind(&entry.scope)), entry.label),
            key,
            mode: self.mode,
            cursor: self.cursor.clone(),
            flow_key: self.flow_key.clone(),
            position,
        })
    }
}

/// Resolve each scope `checked` names to its id (the first page of `list-scopes`, one request each,
/// several at a time, see [`Resolvers`]), for `host check`: it proves each exists and is visible.
/// Returns `(scope, label)` pairs, in the flow's order.
pub async fn resolve_named_scopes(
    control: &mut Sandbox,
    resolvers: &Resolvers,
    retrier: &Retrier,
    connection: &wit::Connection,
    flow: &Flow,
    checked: &Checked,
) -> Result<Vec<(String, String)>> {
    let (mut wanted, mut keys) = (Vec::new(), Vec::new());
    for item in &checked.work {
        let within = item.scope.scope.clone();
        let listing = ScopeListing { kind: scope_kind(&within), within, direct: true };
        if !matches!(listing.within, Scope::Instance) && !wanted.iter().any(|w: &ScopeListing| w.is(&listing)) {
            wanted.push(listing);
            keys.push(item.scope.key.as_str());
        }
    }
    let pages = first_pages(control, resolvers, retrier, connection, &wanted).await;
    let mut resolved = Vec::new();
    for ((listing, key), page) in wanted.iter().zip(keys).zip(pages) {
        let page = page.map_err(|e| scope_error(flow, retrier.policy(), key, e))?;
        let label = page.scopes.first().map_or_else(|| "(none)".to_owned(), |e| describe_scope(&e.scope));
        resolved.push((describe_scope(&listing.within), label));
    }
    Ok(resolved)
}

/// A `list-scopes` failure, named by the key of the scope it was about (or of the credential, for a 401).
fn scope_error(flow: &Flow, policy: &GatePolicy, scope_key: &str, failure: ScopeFailure) -> anyhow::Error {
    match failure {
        ScopeFailure::Connector(ConnectorError::Unauthorized(m), _) => unauthorized(flow, policy, &m),
        ScopeFailure::Connector(ConnectorError::NotFound(m), context) => {
            flow.origins.error(scope_key, format!("{context}: not found, or hidden from the token: {m}"))
        }
        ScopeFailure::Connector(ConnectorError::Forbidden(m), context) => {
            flow.origins.error(scope_key, format!("{context}: the token may not read it: {m}"))
        }
        ScopeFailure::Connector(error, context) => {
            flow.origins.error(scope_key, format!("{context}: {}", connector_message(&error)))
        }
        ScopeFailure::Call(message) => flow.origins.error(scope_key, message),
    }
}

/// The error for a credential the upstream refused (401), named by where the credential came from;
/// when the credential itself knows why (GitLab refused the OAuth2 refresh), that reason.
pub fn unauthorized(flow: &Flow, policy: &GatePolicy, message: &str) -> anyhow::Error {
    if let Some(failure) = policy.credential_failure() {
        return flow.origins.error("connection.credential", failure);
    }
    let hint = connection::unauthorized_hint(flow.connection.credential.as_ref());
    flow.origins
        .error("connection.credential", format!("GitLab refused the token (401 Unauthorized): {message}; {hint}"))
}

/// The checkpoint key of `object` under `scope` (by id) in flow `flow_id`.
pub fn partition_key(flow_id: &str, object: &str, scope: &Scope) -> PartitionKey {
    PartitionKey { flow: flow_id.to_owned(), object: object.to_owned(), scope: scope_id(scope) }
}

/// A scope by id, as keys name it: `project-42`, `group-7`, `instance`.
pub fn scope_id(scope: &Scope) -> String {
    match scope {
        Scope::Instance => "instance".to_owned(),
        Scope::Group(id) => format!("group-{id}"),
        Scope::Project(id) => format!("project-{id}"),
    }
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

/// Why `list-scopes` failed.
enum ScopeFailure {
    /// The plugin answered with an error, in this context (`cannot list the projects of group 7`).
    Connector(ConnectorError, String),
    /// The call itself failed (a trap, a limit).
    Call(String),
}

impl ScopeFailure {
    /// GitLab does not show the scope (404, 403): only the reads under it fail, and planning goes on.
    fn is_hidden(&self) -> bool {
        matches!(self, ScopeFailure::Connector(ConnectorError::NotFound(_) | ConnectorError::Forbidden(_), _))
    }
}

/// One page of `list-scopes`: the first (`token` none) or the one at `token`, retried as the
/// tenant's retry policy allows.
async fn list_scope_page(
    control: &mut Sandbox,
    retrier: &Retrier,
    connection: &wit::Connection,
    within: &Scope,
    kind: ScopeKind,
    token: Option<&str>,
) -> Result<wit::ScopePage, ScopeFailure> {
    // The first page of a scope's own kind is the scope itself, first: its lookup.
    let (what, context) = if token.is_none() && kind == scope_kind(within) {
        (format!("looking up {}", describe_scope(within)), format!("cannot look up {}", describe_scope(within)))
    } else {
        let listing = format!("the {}s of {}", scope_kind_name(kind), describe_scope(within));
        (format!("listing {listing}"), format!("cannot list {listing}"))
    };
    let mut attempts = retrier.attempts(&what);
    let listed = loop {
        attempts.begin().await;
        let listed = control.list_scopes(connection, within, kind, token).await;
        match attempts.judge(listed).await {
            Ok(Some(page)) => break Ok(page),
            Ok(None) => {}
            Err(ended) => break Err(ended),
        }
    };
    match listed {
        Ok(page) => Ok(page),
        Err(Ended::Connector(error)) => Err(ScopeFailure::Connector(error, context)),
        Err(Ended::Call(failure)) => Err(ScopeFailure::Call(failure.0)),
        Err(Ended::Exhausted(message)) => Err(ScopeFailure::Call(message)),
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
