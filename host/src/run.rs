//! A run: plan a flow's partitions, read them concurrently, write every page, report.
//!
//! ```text
//!  flow ──► plan (list-objects, describe-schema, validate-request: the whole flow, before any request)
//!       ──► destination (open it; one table per object)
//!       ──► partitions (object × scope), at most `concurrency` at once, each in its own sandbox:
//!             loop { read-page ──► writer (durable) ──► next token } until no token
//!       ──► summary (records, pages, requests, seconds per partition)
//! ```
//!
//! A 401 or an invalid request stops the whole run (every partition would fail alike); a 403 or 404
//! skips only its partition; any other failure fails its partition and the run goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dest::{self, Column, TableSchema, Writer};
use crate::flow::Flow;
use crate::gate::{GatePolicy, GateStats};
use crate::sandbox::wit::{self, ConnectorError, ObjectInfo, Scope};
use crate::sandbox::{Limits, Plugin, Sandbox};
use crate::summary::{Outcome, PartitionReport, Summary};

/// What a run shares between its partitions.
struct Shared {
    plugin: Arc<Plugin>,
    policy: Arc<GatePolicy>,
    limits: Limits,
    connection: wit::Connection,
    writer: Writer,
    /// Set when a partition hit an error that every partition would hit; the others stop at their next page.
    stop: AtomicBool,
}

/// The error that ends a whole run, with the summary of what was done before it.
#[derive(Debug)]
pub struct RunFailure {
    pub summary: Summary,
    pub error: anyhow::Error,
}

/// Run `flow` with `plugin`, whose requests pass through `policy`.
pub async fn run(
    flow: &Flow,
    plugin: Arc<Plugin>,
    policy: Arc<GatePolicy>,
    limits: Limits,
) -> Result<Summary, RunFailure> {
    let started = Instant::now();
    let fail = |error: anyhow::Error| RunFailure { summary: Summary::new(flow, Vec::new(), started), error };

    let mut control = plugin
        .instantiate(
            Arc::new(GatePolicy { allowed: vec![], credential: None, timeout: limits.call_timeout }),
            Arc::default(),
            &limits,
        )
        .await
        .map_err(fail)?;
    let objects = control.list_objects().await.map_err(|e| fail(anyhow!(e.0)))?;
    let connection = wit::Connection { base_url: flow.base_url.clone(), options: vec![] };

    // The whole flow is checked before anything is sent or written.
    let mut tables = Vec::new();
    let mut partitions = Vec::new();
    for object_flow in &flow.objects {
        let table =
            plan_object(&mut control, &objects, &object_flow.object, &object_flow.scopes).await.map_err(fail)?;
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
            let request = wit::ReadRequest {
                object: object_flow.object.clone(),
                scope: scope.clone(),
                fields: fields.clone(),
                filters: object_flow.filters.clone(),
                page_size: flow.page_size,
                page_token: None,
            };
            match control.validate_request(&connection, &request).await.map_err(|e| fail(anyhow!(e.0)))? {
                Ok(()) => partitions.push(request),
                Err(error) => return Err(fail(anyhow!(connector_message(&error)))),
            }
        }
        tables.push(table);
    }
    drop(control);

    let destination = dest::open(&flow.destination).map_err(fail)?;
    let writer = Writer::start(destination);
    for table in tables {
        writer.prepare(table).await.map_err(fail)?;
    }

    let shared =
        Arc::new(Shared { plugin, policy, limits, connection, writer: writer.clone(), stop: AtomicBool::new(false) });
    let permits = Arc::new(Semaphore::new(flow.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (index, partition) in partitions.into_iter().enumerate() {
        let shared = shared.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, read_partition(&shared, partition).await)
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(report) => reports.push(report),
            Err(panic) => return Err(fail(anyhow!("a partition task failed: {panic}"))),
        }
    }
    reports.sort_by_key(|(index, _)| *index);
    let reports: Vec<PartitionReport> = reports.into_iter().map(|(_, r)| r).collect();

    let fatal = reports.iter().find_map(|r| match &r.outcome {
        Outcome::Fatal(message) => Some(message.clone()),
        _ => None,
    });
    let failed = reports.iter().any(|r| matches!(r.outcome, Outcome::Failed(_)));
    drop(shared);
    let finished = if fatal.is_none() && !failed { writer.finish().await } else { writer.abort().await };
    let summary = Summary::new(flow, reports, started);
    match (fatal, finished) {
        (Some(message), _) => Err(RunFailure { summary, error: anyhow!(message) }),
        (None, Err(error)) => Err(RunFailure { summary, error }),
        (None, Ok(())) => Ok(summary),
    }
}

/// Check that `object` exists, is readable and can be read under `scopes`; return its table schema.
async fn plan_object(
    control: &mut Sandbox,
    objects: &[ObjectInfo],
    object: &str,
    scopes: &[Scope],
) -> Result<TableSchema> {
    let schema = match control.describe_schema(object).await.map_err(|e| anyhow!(e.0))? {
        Ok(schema) => schema,
        Err(error) => bail!("{}", connector_message(&error)),
    };
    let info = objects.iter().find(|o| o.name == object).unwrap_or(&schema.object);
    if !info.readable {
        bail!("object '{object}' is described but not readable yet");
    }
    if scopes.is_empty() {
        bail!("no scope given for '{object}': add --project ID_OR_PATH, --group ID_OR_PATH or --instance");
    }
    for scope in scopes {
        let kind = scope_kind(scope);
        if !info.scopes.contains(&kind) {
            let allowed: Vec<&str> = info.scopes.iter().map(|k| scope_kind_name(*k)).collect();
            bail!(
                "object '{object}' cannot be read at {} scope ({}); it is read at: {}",
                scope_kind_name(kind),
                describe_scope(scope),
                allowed.join(", ")
            );
        }
    }
    Ok(TableSchema {
        name: object.to_owned(),
        columns: schema
            .fields
            .iter()
            .filter(|f| !f.filter_only)
            .map(|f| Column { name: f.name.clone(), field_type: f.field_type })
            .collect(),
        primary_key: info.primary_key.clone(),
    })
}

/// Read every page of one partition (one object under one scope: `request` is its first page).
async fn read_partition(shared: &Shared, request: wit::ReadRequest) -> PartitionReport {
    let started = Instant::now();
    let stats = Arc::new(GateStats::default());
    let mut report = PartitionReport::new(&request.object, describe_scope(&request.scope));
    let outcome = read_pages(shared, request, &stats, &mut report).await;
    report.requests = stats.requests.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    report.outcome = match outcome {
        Ok(()) => Outcome::Done,
        Err(outcome) => {
            // A refusal by the gate explains a transport error better than the plugin can.
            match (outcome, stats.refusals().first()) {
                (Outcome::Failed(_), Some(refusal)) => {
                    Outcome::Fatal(format!("request refused by the host: {refusal}"))
                }
                (outcome, _) => outcome,
            }
        }
    };
    if matches!(report.outcome, Outcome::Fatal(_)) {
        shared.stop.store(true, Ordering::Relaxed);
    }
    report
}

async fn read_pages(
    shared: &Shared,
    mut request: wit::ReadRequest,
    stats: &Arc<GateStats>,
    report: &mut PartitionReport,
) -> Result<(), Outcome> {
    let mut sandbox = shared
        .plugin
        .instantiate(shared.policy.clone(), stats.clone(), &shared.limits)
        .await
        .map_err(|e| Outcome::Failed(format!("{e:#}")))?;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(Outcome::Failed("stopped: another partition hit an error that ends the run".into()));
        }
        let page = match sandbox.read_page(&shared.connection, &request).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(classify(&error)),
            Err(failure) => return Err(Outcome::Failed(failure.0)),
        };
        report.pages += 1;
        report.records += u64::from(page.record_count);
        if page.record_count > 0 {
            shared.writer.write(&request.object, page.records).await.map_err(|e| Outcome::Fatal(format!("{e:#}")))?;
        }
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => return Ok(()),
        }
    }
}

/// What a connector error means for the run.
fn classify(error: &ConnectorError) -> Outcome {
    let message = connector_message(error);
    match error {
        ConnectorError::Unauthorized(_) | ConnectorError::InvalidRequest(_) | ConnectorError::Unsupported(_) => {
            Outcome::Fatal(message)
        }
        ConnectorError::Forbidden(_) | ConnectorError::NotFound(_) => Outcome::Skipped(message),
        _ => Outcome::Failed(message),
    }
}

/// One line saying what went wrong and, where the user can fix it, how.
pub fn connector_message(error: &ConnectorError) -> String {
    match error {
        ConnectorError::InvalidRequest(m) => m.clone(),
        ConnectorError::Unsupported(m) => m.clone(),
        ConnectorError::Unauthorized(m) => format!(
            "GitLab refused the token (401 Unauthorized): {m}. Create a personal access token with the read_api \
             scope (GitLab: Preferences > Access tokens) and export it as GITLAB_TOKEN"
        ),
        ConnectorError::Forbidden(m) => format!("skipped, the token may not read this: {m}"),
        ConnectorError::NotFound(m) => format!("skipped, not found or hidden from the token: {m}"),
        ConnectorError::RateLimited(r) => match r.retry_after_seconds {
            Some(s) => format!("rate limited by GitLab (retry after {s} s): {}", r.message),
            None => format!("rate limited by GitLab: {}", r.message),
        },
        ConnectorError::Upstream(m) => m.clone(),
        ConnectorError::Transport(m) => m.clone(),
    }
}

fn scope_kind(scope: &Scope) -> wit::ScopeKind {
    match scope {
        Scope::Instance => wit::ScopeKind::Instance,
        Scope::Group(_) => wit::ScopeKind::Group,
        Scope::Project(_) => wit::ScopeKind::Project,
    }
}

fn scope_kind_name(kind: wit::ScopeKind) -> &'static str {
    match kind {
        wit::ScopeKind::Instance => "instance",
        wit::ScopeKind::Group => "group",
        wit::ScopeKind::Project => "project",
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
