//! A run: plan a flow's partitions, read them concurrently, write every page, report.
//!
//! ```text
//!  flow ──► plan (see `plan`: the whole flow checked, each scope resolved, the first page of each
//!           group's projects listed)
//!       ──► destination (open it; one table per object) and checkpoint store (see `state`)
//!       ──► partitions (object × scope), those planned and those the listing's later pages bring
//!           while the first are read (see `plan::listing`), at most `concurrency` reading at once
//!           (a partition's permit and sandbox are let go once its last page is read, before it
//!           waits for that page to be durable), each in its own sandbox, on one lane from start
//!           to end (see `lanes`):
//!             checkpoint ──► where the read starts (see `resume`: resume, incremental, full)
//!             loop { read-page (retried, see `retry`) ──► writer (page durable, then checkpoint)
//!                    ──► next token } until no token; pages n−1 and n are written while n+1 is
//!             read (two pages per partition in the writer's hands, see `dest::PAGES_IN_WRITER`; the
//!             next waits until the oldest is durable)
//!       ──► summary (records, pages, requests, retries, 429s, bytes and how each read started, per
//!           partition)
//! ```
//!
//! A 401 or an invalid request stops the whole run (every partition would fail alike); a 403 or 404
//! while reading skips only its partition (a project without CI/CD, issues turned off), while a
//! scope the flow names that GitLab does not show fails the reads under it; a listing page that
//! cannot be read fails its objects under that scope; a 429, a 5xx or a network failure is retried
//! within the tenant's retry budget; any other failure fails its partition and the run goes on. A
//! partition's watermark (the highest cursor value it read) moves only when its read completes.
//! Ctrl-C (see `interrupt`) stops every partition as an error that ends the run does, and also cuts
//! short the waits before a retry and for the tenant's pace, and planning.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::anyhow;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::dest::{self, PAGES_IN_WRITER, PendingPage, Writer};
use crate::flow::Flow;
use crate::gate::{GatePolicy, GateStats};
use crate::interrupt;
use crate::lanes::{self, AbortOnDrop};
use crate::plan::{self, Listed, Partition, Plan, Unlisted};
use crate::progress::{ObjectProgress, Progress};
use crate::resume;
use crate::retry::{Ended, Retrier};
use crate::sandbox::wit::{self, ConnectorError};
use crate::sandbox::{Label, Limits, Plugin, Sandbox};
use crate::state::{self, StatePlace};
use crate::summary::{Outcome, PartitionReport, Summary};

/// What a run shares between its partitions.
struct Shared {
    flow: Flow,
    plugin: Arc<Plugin>,
    policy: Arc<GatePolicy>,
    limits: Limits,
    connection: wit::Connection,
    writer: Writer,
    progress: Arc<Progress>,
    /// Set when a partition hit an error that every partition would hit; the others stop at their next page.
    stop: AtomicBool,
}

impl Shared {
    /// Why partitions must stop before their next page (a signal, or an error that ends the run), if
    /// they must.
    fn stopping(&self) -> Option<&'static str> {
        if interrupt::requested() {
            Some(interrupt::STOPPED)
        } else if self.stop.load(Ordering::Relaxed) {
            Some("stopped: another partition hit an error that ends the run")
        } else {
            None
        }
    }
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
    permits: Option<Arc<Semaphore>>,
) -> Result<Summary, RunFailure> {
    let started = Instant::now();
    let fail = |error: anyhow::Error| RunFailure { summary: Summary::new(flow, Vec::new(), started), error };

    // A tenant's flows share its partitions; a flow alone has its own.
    let permits = permits.unwrap_or_else(|| Arc::new(Semaphore::new(flow.concurrency.max(1))));
    let planning_stats = Arc::new(GateStats::default());
    let control = plugin
        .instantiate(policy.clone(), planning_stats.clone(), &limits, label(flow, "planning"))
        .await
        .map_err(|e| fail(e.into()))?;
    let connection = wit::Connection { base_url: flow.connection.base_url.clone(), options: vec![] };
    let retrier = Retrier::new(policy.clone(), planning_stats.clone());
    let resolvers = plan::Resolvers {
        plugin: plugin.clone(),
        policy: policy.clone(),
        stats: planning_stats.clone(),
        limits: limits.clone(),
        label: label(flow, "planning"),
        permits: permits.clone(),
    };
    // Nothing is opened yet: a signal during planning drops it and ends the run.
    let plan = interrupt::unless_signalled(plan::plan(control, &resolvers, retrier, &connection, flow))
        .await
        .unwrap_or_else(|| Err(anyhow!("interrupted while planning: nothing was read or written")));
    let planned = started.elapsed();
    let fail = |error: anyhow::Error| {
        let mut summary = Summary::new(flow, Vec::new(), started);
        summary.add_planning(&planning_stats, planned);
        RunFailure { summary, error }
    };
    let Plan { tables, partitions, unresolved, listing } =
        plan.map_err(|e| match planning_stats.refusals().first() {
            Some(refusal) => fail(anyhow!("request refused by the host: {refusal}")),
            None => fail(e),
        })?;

    let (destination, state, origins) = (flow.destination.clone(), flow.state.clone(), flow.origins.clone());
    // A signal while it opens (a database slow to answer) ends the run: the writer thread, given up
    // on, closes whatever it opened once it sees that no one waits for it.
    let opening = Writer::start(move || {
        let opened = dest::open(&destination).map_err(|e| origins.error("destination.url", format!("{e:#}")))?;
        let store = match StatePlace::choose(&destination, state.as_ref()) {
            StatePlace::Destination => None,
            StatePlace::Store(url) => {
                Some(state::open(&url).map_err(|e| origins.error("state.url", format!("{e:#}")))?)
            }
        };
        Ok((opened, store))
    });
    let writer = interrupt::unless_signalled(opening)
        .await
        .unwrap_or_else(|| Err(anyhow!("interrupted while opening the destination: nothing was read or written")))
        .map_err(fail)?;
    let objects: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    for table in tables {
        writer.prepare(table).await.map_err(fail)?;
    }
    let label = flow.tenant.as_ref().map(|tenant| format!("tenant {}, flow {}", tenant.id, flow.id));
    let progress = Arc::new(Progress::start(&objects, label));

    let shared = Arc::new(Shared {
        flow: flow.clone(),
        plugin,
        policy,
        limits,
        connection,
        writer: writer.clone(),
        progress: progress.clone(),
        stop: AtomicBool::new(false),
    });
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, partition: Partition| {
        let shared = shared.clone();
        let permits = permits.clone();
        if let Some(progress) = shared.progress.object(&partition.request.object) {
            progress.partition_planned();
        }
        // In the caller's span: a tenant's log lines carry its id.
        tasks.spawn(
            async move {
                // The permits are never closed: `None` cannot happen, and would only mean no limit.
                let permit = permits.acquire_owned().await.ok();
                let position = partition.position;
                let read = async move { read_partition(&shared, partition, permit).await }.in_current_span();
                let report = match lanes::lanes() {
                    Ok(lanes) => lanes.run(read).await.map_err(|panic| anyhow!("a partition task failed: {panic}")),
                    Err(error) => Err(error),
                };
                (position, report)
            }
            .in_current_span(),
        );
    };
    for partition in partitions {
        spawn(&mut tasks, partition);
    }
    // The listings' later pages, read beside the partitions: each new partition is read as it comes.
    let (listed_to, mut listed) = mpsc::unbounded_channel();
    let listing =
        listing.map(|listing| AbortOnDrop(tokio::spawn(listing.run(listed_to).in_current_span()).abort_handle()));
    let mut reports = Vec::new();
    let mut unlisted = Vec::new();
    loop {
        tokio::select! {
            Some(item) = listed.recv() => match item {
                Listed::Partition(partition) => spawn(&mut tasks, *partition),
                Listed::Failed(failure) => {
                    if failure.fatal {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    unlisted.push(failure);
                }
            },
            Some(joined) = tasks.join_next() => match joined {
                Ok((position, Ok(report))) => reports.push((position, report)),
                Ok((_, Err(error))) => return Err(fail(error)),
                Err(panic) => return Err(fail(anyhow!("a partition task failed: {panic}"))),
            },
            else => break,
        }
        if shared.stopping().is_some() {
            // The run ends: no more partitions to start.
            listed.close();
        }
    }
    drop(listing);
    reports.extend(unresolved.into_iter().map(|u| {
        let mut report = PartitionReport::new(&u.object, u.scope);
        report.outcome = Outcome::Failed(u.reason);
        (u.position, report)
    }));
    reports.sort_by_key(|(position, _)| *position);
    let mut reports: Vec<PartitionReport> = reports.into_iter().map(|(_, r)| r).collect();
    reports.extend(unlisted.into_iter().flat_map(|failure| unlisted_reports(flow, failure)));
    drop(shared);
    if let Some(progress) = Arc::into_inner(progress) {
        progress.finish();
    }

    let fatal = reports.iter().find_map(|r| match &r.outcome {
        Outcome::Fatal(message) => Some(message.clone()),
        _ => None,
    });
    let failed = reports.iter().any(|r| matches!(r.outcome, Outcome::Failed(_)));
    let destination_cpu = writer.cpu();
    let finished = if fatal.is_none() && !failed { writer.finish().await } else { writer.abort().await };
    let mut summary = Summary::new(flow, reports, started);
    summary.add_planning(&planning_stats, planned);
    summary.destination_cpu_seconds = destination_cpu.seconds();
    match (fatal, finished) {
        (Some(message), _) => Err(RunFailure { summary, error: anyhow!(message) }),
        (None, Err(error)) => Err(RunFailure { summary, error }),
        (None, Ok(())) => Ok(summary),
    }
}

/// The reports of a listing that ended early: one per object read under its scope.
fn unlisted_reports(flow: &Flow, failure: Unlisted) -> Vec<PartitionReport> {
    let (tenant, reason) = (flow.tenant.as_ref().map(|t| t.id.as_str()), crate::credential::redact(&failure.message));
    tracing::warn!(tenant, flow = %flow.id, scope = %failure.scope, "listing failed: {reason}");
    let outcome = match failure.fatal {
        true => Outcome::Fatal(failure.message),
        false => Outcome::Failed(failure.message),
    };
    let report = |object: &String| PartitionReport {
        outcome: outcome.clone(),
        ..PartitionReport::new(object, failure.scope.clone())
    };
    failure.objects.iter().map(report).collect()
}

/// Read `partition` to its end, holding `permit` (one of the flow's, or its tenant's, partitions at
/// once) while it reads from GitLab.
async fn read_partition(
    shared: &Shared,
    partition: Partition,
    permit: Option<OwnedSemaphorePermit>,
) -> PartitionReport {
    let started = Instant::now();
    let stats = Arc::new(GateStats::default());
    let mut report = PartitionReport::new(&partition.request.object, partition.label.clone());
    let progress = shared.progress.object(&partition.request.object);
    let outcome = read_pages(shared, &partition, permit, &stats, &mut report, progress.as_deref()).await;
    if let Some(progress) = &progress {
        progress.partition_ended();
    }
    // A request the ended sandbox left running could still count itself and leave after this.
    stats.running.settle().await;
    report.requests = stats.requests.load(Ordering::Relaxed);
    report.retries = stats.retries.load(Ordering::Relaxed);
    report.rate_limited = stats.rate_limited.load(Ordering::Relaxed);
    report.bytes_in = stats.bytes_in.load(Ordering::Relaxed);
    report.bytes_out = stats.bytes_out.load(Ordering::Relaxed);
    report.cpu_seconds = stats.plugin_cpu_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    report.seconds = started.elapsed().as_secs_f64();
    report.outcome = match outcome {
        Ok(()) => Outcome::Done,
        Err(outcome) => {
            // The gate explains a transport error better than the plugin can: a broken byte limit ends
            // this partition; a refused request (a foreign origin, a credential header) the whole run.
            match (outcome, stats.exceeded(), stats.refusals().first()) {
                (Outcome::Failed(_) | Outcome::Skipped(_), Some(limit), _) => Outcome::Failed(limit),
                (Outcome::Failed(_), None, Some(refusal)) => {
                    Outcome::Fatal(format!("request refused by the host: {refusal}"))
                }
                (outcome, _, _) => outcome,
            }
        }
    };
    if let Outcome::Failed(reason) | Outcome::Fatal(reason) = &report.outcome
        && reason != interrupt::STOPPED
    {
        let tenant = shared.flow.tenant.as_ref().map(|t| t.id.as_str());
        let partition = format!("{} {}", report.object, report.scope);
        tracing::warn!(tenant, flow = %shared.flow.id, partition, "partition failed: {}", crate::credential::redact(reason));
    }
    if matches!(report.outcome, Outcome::Fatal(_)) {
        shared.stop.store(true, Ordering::Relaxed);
    }
    report
}

async fn read_pages(
    shared: &Shared,
    partition: &Partition,
    permit: Option<OwnedSemaphorePermit>,
    stats: &Arc<GateStats>,
    report: &mut PartitionReport,
    progress: Option<&ObjectProgress>,
) -> Result<(), Outcome> {
    if let Some(reason) = shared.stopping() {
        // Not started: no sandbox, and nothing opened in the destination.
        return Err(Outcome::Failed(reason.into()));
    }
    let label = label(&shared.flow, format!("{} {}", partition.request.object, report.scope));
    let mut sandbox =
        shared.plugin.instantiate(shared.policy.clone(), stats.clone(), &shared.limits, label).await.map_err(
            |failure| {
                report.limit = failure.1;
                Outcome::Failed(failure.0)
            },
        )?;
    let retrier = Retrier::new(shared.policy.clone(), stats.clone());
    let part = &partition.key;
    let fatal = |e: anyhow::Error| Outcome::Fatal(format!("{e:#}"));
    let mut checkpoint = shared.writer.load(part).await.map_err(fatal)?.unwrap_or_default();
    let (mut request, start) = resume::start(partition, &mut checkpoint, shared.flow.lookback);
    report.resumed = start.resumed;
    report.incremental_since = start.incremental_since;
    report.start = start.note;
    shared.writer.open(part, checkpoint.dest_marker.clone()).await.map_err(fatal)?;
    // The pages handed to the writer and not yet durable, oldest first, with their record counts; at
    // most PAGES_IN_WRITER of them not yet written while the next one is read.
    let mut handed: VecDeque<(PendingPage, u64)> = VecDeque::new();
    loop {
        let page = if let Some(reason) = shared.stopping() {
            Err(Outcome::Failed(reason.into()))
        } else {
            fetch_page(shared, partition, &mut sandbox, &retrier, &request, report).await
        };
        // Room for this page in the writer's hands; or, when the read failed, every page handed
        // over durable first: a failed write outranks a failed read.
        match page.is_ok() {
            true => settle(&mut handed, PAGES_IN_WRITER - 1, progress).await,
            false => settle_all(&mut handed, progress).await,
        }
        .map_err(fatal)?;
        let page = page?;
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
            let pending = shared.writer.send_page(part, page.records, checkpoint.clone()).await.map_err(fatal)?;
            handed.push_back((pending, u64::from(page.record_count)));
        } else {
            shared.writer.save(part, checkpoint.clone()).await.map_err(fatal)?;
            if let Some(progress) = progress {
                progress.page(0);
            }
        }
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => {
                // Read to its end: the sandbox and the permit go to the next partition while this
                // one's last pages are made durable and its part closed (two commits' wait, which
                // held a permit from GitLab reads for nothing).
                drop(sandbox);
                drop(permit);
                settle_all(&mut handed, progress).await.map_err(fatal)?;
                return shared.writer.close(part).await.map_err(fatal);
            }
        }
    }
}

/// Read one page of `partition`, retried as the tenant's retry policy allows.
async fn fetch_page(
    shared: &Shared,
    partition: &Partition,
    sandbox: &mut Sandbox,
    retrier: &Retrier,
    request: &wit::ReadRequest,
    report: &mut PartitionReport,
) -> Result<wit::Page, Outcome> {
    let mut attempts = retrier.attempts(&format!("reading page {}", report.pages + 1));
    let interrupted = || Outcome::Failed(interrupt::STOPPED.into());
    loop {
        // The waits for the tenant's pace and before a retry end early on Ctrl-C; a call does not.
        interrupt::unless_signalled(attempts.begin()).await.ok_or_else(interrupted)?;
        let result = sandbox.read_page(&shared.connection, request).await;
        match interrupt::unless_signalled(attempts.judge(result)).await.ok_or_else(interrupted)? {
            Ok(Some(page)) => return Ok(page),
            Ok(None) => {}
            Err(Ended::Connector(error)) => return Err(classify(&shared.flow, &shared.policy, partition, &error)),
            Err(Ended::Call(failure)) => {
                report.limit = failure.1;
                return Err(Outcome::Failed(failure.0));
            }
            Err(Ended::Exhausted(message)) => return Err(Outcome::Failed(message)),
        }
    }
}

/// Wait until at most `keep` of the pages `handed` over are not yet written, and count those known
/// to be durable by now as done; an error is a page that could not be written or made durable.
async fn settle(
    handed: &mut VecDeque<(PendingPage, u64)>,
    keep: usize,
    progress: Option<&ObjectProgress>,
) -> anyhow::Result<()> {
    let unwritten = handed.iter().filter(|(page, _)| !page.is_written()).count();
    for (page, _) in handed.iter_mut().filter(|(page, _)| !page.is_written()).take(unwritten.saturating_sub(keep)) {
        page.written().await?;
    }
    while let Some(durable) = handed.front_mut().and_then(|(page, _)| page.try_durable()) {
        durable?;
        let (_, records) = handed.pop_front().expect("the page just looked at");
        if let Some(progress) = progress {
            progress.page(records);
        }
    }
    Ok(())
}

/// Wait until every page `handed` over is durable.
async fn settle_all(
    handed: &mut VecDeque<(PendingPage, u64)>,
    progress: Option<&ObjectProgress>,
) -> anyhow::Result<()> {
    while let Some((page, records)) = handed.pop_front() {
        page.durable().await?;
        if let Some(progress) = progress {
            progress.page(records);
        }
    }
    Ok(())
}

/// The label of a sandbox of `flow` for `job` (a partition, or `planning`): its tenant's id, if any.
fn label(flow: &Flow, job: impl Into<String>) -> Label {
    Label { tenant: flow.tenant.as_ref().map(|t| t.id.clone()), partition: job.into() }
}

/// The higher of two cursor values (RFC 3339 UTC strings and zero-padded numbers order as text).
fn highest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// What a connector error means for the run.
fn classify(flow: &Flow, policy: &GatePolicy, partition: &Partition, error: &ConnectorError) -> Outcome {
    let message = connector_message(error);
    match error {
        ConnectorError::Unauthorized(m) => Outcome::Fatal(format!("{:#}", plan::unauthorized(flow, policy, m))),
        ConnectorError::InvalidRequest(_) | ConnectorError::Unsupported(_) => {
            Outcome::Fatal(flow.origins.message(&partition.flow_key, message))
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
        ConnectorError::Unauthorized(m) => format!("GitLab refused the token (401 Unauthorized): {m}"),
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
