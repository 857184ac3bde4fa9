//! A run: plan a flow's partitions, read them concurrently, write every page, report.
//!
//! ```text
//!  flow ──► plan (see `plan`: the whole flow checked, then group scopes expanded to their projects)
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

use anyhow::anyhow;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dest::{self, DestinationUrl, Writer};
use crate::flow::Flow;
use crate::gate::{GatePolicy, GateStats};
use crate::plan::{self, Partition, Plan};
use crate::sandbox::wit::{self, ConnectorError};
use crate::sandbox::{Limits, Plugin};
use crate::state::sqlite::SqliteCheckpoints;
use crate::state::{CheckpointStore, PartitionKey};
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

    let planning_stats = Arc::new(GateStats::default());
    let mut control = plugin.instantiate(policy.clone(), planning_stats.clone(), &limits).await.map_err(fail)?;
    let connection = wit::Connection { base_url: flow.base_url.clone(), options: vec![] };
    let plan = plan::plan(&mut control, &connection, flow).await;
    let planning_requests = planning_stats.requests.load(Ordering::Relaxed);
    let fail = |error: anyhow::Error| {
        let mut summary = Summary::new(flow, Vec::new(), started);
        summary.planning_requests = planning_requests;
        summary.requests += planning_requests;
        RunFailure { summary, error }
    };
    let Plan { tables, partitions } = plan.map_err(|e| match planning_stats.refusals().first() {
        Some(refusal) => fail(anyhow!("request refused by the host: {refusal}")),
        None => fail(e),
    })?;
    drop(control);

    let mut destination = dest::open(&flow.destination).map_err(fail)?;
    let store = match destination.checkpoints() {
        Some(_) => None,
        None => Some(separate_store(&flow.destination).map_err(fail)?),
    };
    let writer = Writer::start(destination, store);
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
    let mut summary = Summary::new(flow, reports, started);
    summary.planning_requests = planning_requests;
    summary.requests += planning_requests;
    match (fatal, finished) {
        (Some(message), _) => Err(RunFailure { summary, error: anyhow!(message) }),
        (None, Err(error)) => Err(RunFailure { summary, error }),
        (None, Ok(())) => Ok(summary),
    }
}

/// The checkpoint store of a destination that keeps none itself: a SQLite file beside it.
fn separate_store(destination: &DestinationUrl) -> anyhow::Result<Box<dyn CheckpointStore>> {
    let path = destination
        .default_checkpoints()
        .ok_or_else(|| anyhow!("the destination {destination} keeps no checkpoints and names no store"))?;
    Ok(Box::new(SqliteCheckpoints::open(&path)?))
}

/// The key of a partition: its object and its scope by stable id.
fn partition_key(request: &wit::ReadRequest) -> PartitionKey {
    let scope = match &request.scope {
        wit::Scope::Instance => "instance".to_owned(),
        wit::Scope::Group(id) => format!("group-{id}"),
        wit::Scope::Project(id) => format!("project-{id}"),
    };
    PartitionKey { flow: "cli".to_owned(), object: request.object.clone(), scope }
}

/// Read every page of one partition (one object under one scope: `request` is its first page).
async fn read_partition(shared: &Shared, partition: Partition) -> PartitionReport {
    let started = Instant::now();
    let stats = Arc::new(GateStats::default());
    let mut report = PartitionReport::new(&partition.request.object, partition.label.clone());
    let outcome = read_pages(shared, partition.request, &stats, &mut report).await;
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
    let part = partition_key(&request);
    let fatal = |e: anyhow::Error| Outcome::Fatal(format!("{e:#}"));
    let mut checkpoint = shared.writer.load(&part).await.map_err(fatal)?.unwrap_or_default();
    if checkpoint.in_progress() {
        // An interrupted read: go on from its next page, past what was durably written.
        request.page_token.clone_from(&checkpoint.page_token);
    } else {
        checkpoint.read_high = None;
        checkpoint.dest_marker = None;
    }
    shared.writer.open(&part, checkpoint.dest_marker.clone()).await.map_err(fatal)?;
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
        checkpoint.page_token.clone_from(&page.next_page_token);
        checkpoint.read_high = highest(checkpoint.read_high.take(), page.high_watermark);
        if page.next_page_token.is_none() {
            // The read completed: its highest cursor value becomes the watermark.
            checkpoint.watermark = highest(checkpoint.watermark.take(), checkpoint.read_high.take());
            checkpoint.dest_marker = None;
        }
        if page.record_count > 0 {
            shared.writer.write(&part, page.records, checkpoint.clone()).await.map_err(fatal)?;
        } else {
            shared.writer.save(&part, checkpoint.clone()).await.map_err(fatal)?;
        }
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => return shared.writer.close(&part).await.map_err(fatal),
        }
    }
}

/// The higher of two cursor values (RFC 3339 UTC strings and zero-padded numbers order as text).
fn highest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
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
