//! `host run --tenants tenants.toml --flows DIR`: every tenant's flows at once, in one process.
//!
//! ```text
//!  tenants.toml ──► TenantSpec ... ┐
//!  DIR/*.toml   ──► Flow ([tenant] id) ... ┴─► checked whole: every file, tenant, credential and origin
//!  one SandboxEngine (pool sized for every tenant's partitions, up to MOST_SANDBOXES) ─► one Plugin per wasm file
//!  per tenant: one credential, one GatePolicy (allow-list, pace, byte budget), one partition semaphore
//!  per flow: crate::run::run(flow, plugin, the tenant's gate, the tenant's limits, its semaphore)
//!  ──► a summary per flow, a TenantReport per tenant, one exit status
//! ```
//!
//! Nothing is shared between tenants but the engine and the compiled code: a tenant that hits a limit,
//! is refused by the gate or by GitLab ends only its own partitions (or flow), never another's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::TenantSpec;
use crate::cli::RunArgs;
use crate::credential;
use crate::flow::Flow;
use crate::flow::flags::Overrides;
use crate::gate::{GatePolicy, Origin};
use crate::interrupt;
use crate::summary::{Outcome, Summary, TenantReport};

/// One tenant's flows and what they share.
struct TenantRun {
    spec: TenantSpec,
    flows: Vec<Flow>,
}

/// Run every flow of `flows_dir` for the tenants of `tenants_path`; print and write the summaries.
pub async fn run_all(
    args: &RunArgs,
    tenants_path: &Path,
    flows_dir: &Path,
    cache_dir: Option<PathBuf>,
) -> Result<ExitCode> {
    let overrides = Overrides { plugin: args.flow.plugin.clone(), mode: args.flow.mode, ..Overrides::default() };
    let runs = plan(&super::load(tenants_path)?, flows_dir, &overrides)?;
    crate::progress::side_by_side();

    let instances: usize = runs.iter().map(|t| t.spec.concurrency() as usize + t.flows.len()).sum();
    let engine = crate::start_engine(u32::try_from(instances).unwrap_or(u32::MAX), cache_dir)?;
    let mut plugins = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Each task's flow, to report a flow whose task panicked.
    let mut flows_of_tasks = HashMap::new();
    let started = std::time::Instant::now();
    for TenantRun { spec, flows } in runs {
        let first = &flows[0];
        let limits = crate::limits_of(&args.flow, Some(&spec));
        let credential = crate::resolve_credential(first).map_err(|e| anyhow!("tenant {}: {e:#}", spec.id))?;
        let origin =
            Origin::of_url(&first.connection.base_url).map_err(|e| first.origins.error("connection.base_url", e))?;
        let settings = crate::gate_settings(&args.flow, origin, credential, &limits, Some(&spec))
            .map_err(|e| anyhow!("tenant {}: {e:#}", spec.id))?;
        let policy = Arc::new(GatePolicy::new(settings));
        let permits = Arc::new(Semaphore::new(spec.concurrency() as usize));
        for flow in flows {
            let plugin = match plugins.get(&flow.plugin) {
                Some(plugin) => Arc::clone(plugin),
                None => {
                    let plugin =
                        engine.load(&flow.plugin).map_err(|e| flow.origins.error("plugin", format!("{e:#}")))?;
                    plugins.insert(flow.plugin.clone(), plugin.clone());
                    plugin
                }
            };
            let (policy, limits, permits) = (policy.clone(), limits.clone(), permits.clone());
            let span = tracing::info_span!("tenant", id = %spec.id, flow = %flow.id);
            let task = tasks.spawn(
                {
                    let flow = flow.clone();
                    async move {
                        let outcome = crate::run::run(&flow, plugin, policy, limits, Some(permits)).await;
                        match outcome {
                            Ok(summary) => (summary, None),
                            Err(failure) => (failure.summary, Some(format!("{:#}", failure.error))),
                        }
                    }
                }
                .instrument(span),
            );
            flows_of_tasks.insert(task.id(), flow);
        }
    }

    let mut ended = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        ended.push(match joined {
            Ok((_, ended)) => ended,
            // A bug in the host, not the tenant's doing: that flow fails, the others go on.
            Err(failed) => {
                let flow = &flows_of_tasks[&failed.id()];
                (Summary::new(flow, Vec::new(), started), Some(format!("the flow's task failed: {failed}")))
            }
        });
    }
    ended.sort_by(|a, b| (&a.0.tenant, &a.0.flow).cmp(&(&b.0.tenant, &b.0.flow)));
    report(args, &ended)
}

/// Read the flows of `dir` and group them by tenant, checking everything that can be checked before
/// any request: each flow names a known tenant and no settings of its own, ids are unique, a tenant's
/// flows share one GitLab and one credential.
fn plan(tenants: &[TenantSpec], dir: &Path, overrides: &Overrides) -> Result<Vec<TenantRun>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the flows folder {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list the flows folder {}", dir.display()))?;
    files.retain(|path| path.extension().is_some_and(|x| x == "toml"));
    files.sort();
    if files.is_empty() {
        bail!("the flows folder {} holds no flow file (*.toml)", dir.display());
    }
    let known: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let mut by_tenant: BTreeMap<String, TenantRun> = BTreeMap::new();
    let mut ids = HashSet::new();
    for path in &files {
        let mut flow = crate::flow::file::load(path, overrides)?;
        let Some(named) = &flow.tenant else {
            bail!(
                flow.origins
                    .message("id", "names no tenant: add [tenant] with id = \"...\", one of the tenants file's")
            );
        };
        let Some(spec) = tenants.iter().find(|t| t.id == named.id) else {
            bail!(flow.origins.message(
                "tenant",
                format!("unknown tenant '{}': the tenants file has {}", named.id, known.join(", "))
            ));
        };
        if named.has_settings() {
            bail!(flow.origins.message(
                "tenant",
                format!("under --tenants, tenant {}'s credential, origins and limits are set in the tenants file only: keep just its id here", spec.id)
            ));
        }
        if let Some(credential) = &spec.credential {
            if flow.connection.credential.is_some() {
                bail!(flow.origins.message(
                    "connection.credential",
                    format!("tenant {} has its credential in the tenants file: remove this one", spec.id)
                ));
            }
            flow.connection.credential = Some(credential.clone());
        }
        if !ids.insert(flow.id.clone()) {
            bail!(flow.origins.message(
                "id",
                format!(
                    "another flow of {} has the id '{}': ids key checkpoints, so they must differ",
                    dir.display(),
                    flow.id
                )
            ));
        }
        flow.tenant = Some(spec.clone());
        let run =
            by_tenant.entry(spec.id.clone()).or_insert_with(|| TenantRun { spec: spec.clone(), flows: Vec::new() });
        run.flows.push(flow);
    }
    for (id, TenantRun { flows, .. }) in &by_tenant {
        let first = &flows[0];
        for other in &flows[1..] {
            if Origin::of_url(&other.connection.base_url).ok() != Origin::of_url(&first.connection.base_url).ok() {
                bail!(other.origins.message(
                    "connection.base_url",
                    format!(
                        "tenant {id}'s flows must share one GitLab: {} reads {}",
                        first.id, first.connection.base_url
                    )
                ));
            }
            if other.connection.credential != first.connection.credential {
                bail!(other.origins.message(
                    "connection.credential",
                    format!("tenant {id}'s flows must share one credential (as {} names it); or give the tenant one in the tenants file", first.id)
                ));
            }
        }
    }
    Ok(by_tenant.into_values().collect())
}

/// Print each flow's summary and the tenants' table; write the JSON summary; the exit status.
fn report(args: &RunArgs, ended: &[(Summary, Option<String>)]) -> Result<ExitCode> {
    let mut tenants: BTreeMap<String, TenantReport> = BTreeMap::new();
    for (summary, error) in ended {
        let tenant = summary.tenant.clone().unwrap_or_default();
        println!("tenant {tenant}, flow {}:", summary.flow);
        print!("{}", credential::redact(&summary.render()));
        if let Some(error) = error {
            println!("flow failed: {}", credential::redact(error));
        }
        println!();
        let report =
            tenants.entry(tenant.clone()).or_insert_with(|| TenantReport { tenant, ..TenantReport::default() });
        report.add(summary, error.as_deref());
        report.wall_seconds = report.wall_seconds.max(summary.seconds);
    }
    let tenants: Vec<TenantReport> = tenants.into_values().collect();
    print!("{}", TenantReport::render(&tenants));
    if let Some(path) = &args.summary_json {
        let flows: Vec<serde_json::Value> = ended
            .iter()
            .map(|(summary, error)| {
                let mut value = serde_json::to_value(summary).unwrap_or_default();
                value["error"] = error.clone().into();
                value
            })
            .collect();
        let json = serde_json::json!({ "tenants": tenants, "flows": flows, "peak_rss_bytes": crate::summary::peak_rss_bytes() });
        let text = credential::redact(&serde_json::to_string_pretty(&json)?);
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if interrupt::requested() {
        return Ok(interrupt::exit_code());
    }
    let failing: Vec<&str> = tenants.iter().filter(|t| !t.errors.is_empty()).map(|t| t.tenant.as_str()).collect();
    if failing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let failed_flows = ended
        .iter()
        .filter(|(s, e)| {
            e.is_some() || s.partitions.iter().any(|p| matches!(p.outcome, Outcome::Failed(_) | Outcome::Fatal(_)))
        })
        .count();
    bail!(
        "{failed_flows} of {} flows had failures, for tenant(s) {}; the other tenants' flows are unaffected (see the summaries above)",
        ended.len(),
        failing.join(", ")
    )
}
