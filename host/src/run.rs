//! A run: plan a flow's partitions, read them concurrently, write every page, report.
//!
//! ```text
//!  flow ──► plan (see `plan`: the whole flow checked, then group scopes expanded to their projects)
//!       ──► destination (open it; one table per object)
//!       ──► partitions (object × scope), at most `concurrency` at once, each in its own sandbox:
//!             loop { read-page (retried, see `retry`) ──► writer (durable) ──► next token } until no token
//!       ──► summary (records, pages, requests, retries, 429s, bytes per partition)
//! ```
//!
//! A 401 or an invalid request stops the whole run (every partition would fail alike); a 403 or 404
//! skips only its partition; a 429, a 5xx or a network failure is retried within the tenant's retry
//! budget; any other failure fails its partition and the run goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::anyhow;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dest::{self, Writer};
use crate::flow::Flow;
use crate::gate::{GatePolicy, GateStats};
use crate::plan::{self, Partition, Plan};
use crate::retry::{Ended, Retrier};
use crate::sandbox::wit::{self, ConnectorError};
use crate::sandbox::{Limits, Plugin};
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
    let retrier = Retrier::new(policy.clone(), planning_stats.clone());
    let plan = plan::plan(&mut control, &retrier, &connection, flow).await;
    let fail = |error: anyhow::Error| {
        let mut summary = Summary::new(flow, Vec::new(), started);
        summary.add_planning(&planning_stats);
        RunFailure { summary, error }
    };
    let Plan { tables, partitions } = plan.map_err(|e| match planning_stats.refusals().first() {
        Some(refusal) => fail(anyhow!("request refused by the host: {refusal}")),
        None => fail(e),
    })?;
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
    let mut summary = Summary::new(flow, reports, started);
    summary.add_planning(&planning_stats);
    match (fatal, finished) {
        (Some(message), _) => Err(RunFailure { summary, error: anyhow!(message) }),
        (None, Err(error)) => Err(RunFailure { summary, error }),
        (None, Ok(())) => Ok(summary),
    }
}

/// Read every page of one partition (one object under one scope: `request` is its first page).
async fn read_partition(shared: &Shared, partition: Partition) -> PartitionReport {
    let started = Instant::now();
    let stats = Arc::new(GateStats::default());
    let mut report = PartitionReport::new(&partition.request.object, partition.label.clone());
    let outcome = read_pages(shared, partition.request, &stats, &mut report).await;
    report.requests = stats.requests.load(Ordering::Relaxed);
    report.retries = stats.retries.load(Ordering::Relaxed);
    report.rate_limited = stats.rate_limited.load(Ordering::Relaxed);
    report.bytes_in = stats.bytes_in.load(Ordering::Relaxed);
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
    let retrier = Retrier::new(shared.policy.clone(), stats.clone());
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(Outcome::Failed("stopped: another partition hit an error that ends the run".into()));
        }
        let mut attempts = retrier.attempts(&format!("reading page {}", report.pages + 1));
        let page = loop {
            attempts.begin().await;
            match attempts.judge(sandbox.read_page(&shared.connection, &request).await).await {
                Ok(Some(page)) => break page,
                Ok(None) => {}
                Err(Ended::Connector(error)) => return Err(classify(&error)),
                Err(Ended::Call(failure)) => return Err(Outcome::Failed(failure.0)),
                Err(Ended::Exhausted(message)) => return Err(Outcome::Failed(message)),
            }
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
