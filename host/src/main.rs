//! `host`: the reference host for source connectors shipped as WebAssembly components.
//!
//! The host owns everything operational: the command line, flows, the sandbox each plugin runs in,
//! the credential and the outgoing-HTTP gate, concurrency, destinations and the run summary. It knows
//! nothing about GitLab beyond what the plugin's `list-objects` and `describe-schema` say.
//!
//! - [`cli`]: the commands and their flags.
//! - [`flow`]: what to read and where to write it.
//! - [`sandbox`]: the wasmtime engine, the plugin, one store per partition.
//! - [`gate`]: the host side of `wasi:http`: allow-list, credential, counting.
//! - [`credential`]: the tenant's token, never shown.
//! - [`plan`]: from a flow to checked partitions (scopes resolved and expanded).
//! - [`run`]: partitions read concurrently, the page loop, errors.
//! - [`dest`]: destinations (SQLite, PostgreSQL, JSONL, CSV, Parquet, S3) behind one writer thread.
//! - [`pg`], [`io_thread`]: PostgreSQL connections; async clients driven from synchronous code.
//! - [`state`]: checkpoints, saved after each durable page.
//! - [`summary`]: the report at the end.

mod cli;
mod credential;
mod dest;
mod flow;
mod gate;
mod io_thread;
mod pg;
mod plan;
mod run;
mod sandbox;
mod state;
mod summary;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::json;

use cli::{Cli, Command, RunArgs};
use credential::Credential;
use flow::{Flow, ObjectFlow};
use gate::{GatePolicy, GateStats, Origin};
use sandbox::wit::{self, FieldType, FilterOperator, ScopeKind};
use sandbox::{Limits, Plugin};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let credential = Credential::from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), credential.as_ref()),
    };
    match runtime.block_on(execute(cli, credential.clone())) {
        Ok(code) => code,
        Err(e) => fail(&format!("{e:#}"), credential.as_ref()),
    }
}

/// Print one `error:` line (with the token scrubbed, should it ever appear) and exit non-zero.
fn fail(message: &str, credential: Option<&Credential>) -> ExitCode {
    let message = credential.map_or_else(|| message.to_owned(), |c| c.scrub(message));
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn execute(cli: Cli, credential: Option<Credential>) -> Result<ExitCode> {
    let limits = Limits::default();
    match cli.command {
        Command::Objects { plugin, json } => {
            let plugin = Plugin::load(&plugin.plugin, 2)?;
            let mut sandbox = offline_sandbox(&plugin, &limits).await?;
            let objects = sandbox.list_objects().await.map_err(|e| anyhow!(e.0))?;
            if json {
                let list: Vec<_> = objects.iter().map(object_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<24} {:<24} {:<17} {:<22} {:<18} readable",
                    "name", "label", "scopes", "primary key", "cursor"
                );
                for o in &objects {
                    println!(
                        "{:<24} {:<24} {:<17} {:<22} {:<18} {}",
                        o.name,
                        o.label,
                        o.scopes.iter().map(|s| scope_name(*s)).collect::<Vec<_>>().join(","),
                        o.primary_key.join(","),
                        o.cursor_field.as_deref().unwrap_or("-"),
                        if o.readable { "yes" } else { "not yet" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { plugin, object, json } => {
            let plugin = Plugin::load(&plugin.plugin, 2)?;
            let mut sandbox = offline_sandbox(&plugin, &limits).await?;
            let schema = match sandbox.describe_schema(&object).await.map_err(|e| anyhow!(e.0))? {
                Ok(schema) => schema,
                Err(error) => bail!("{}", run::connector_message(&error)),
            };
            if json {
                let mut value = object_json(&schema.object);
                value["fields"] = schema.fields.iter().map(field_json).collect();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{:<34} {:<10} {:<9} {:<12} filters", "field", "type", "nullable", "kind");
                for f in &schema.fields {
                    println!(
                        "{:<34} {:<10} {:<9} {:<12} {}",
                        f.name,
                        type_name(f.field_type),
                        if f.nullable { "yes" } else { "no" },
                        if f.filter_only { "filter only" } else { "record" },
                        f.filter_operators.iter().map(|op| operator_name(*op)).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_command(args, credential, limits).await,
    }
}

/// A sandbox that may not reach anything: for `list-objects` and `describe-schema`.
async fn offline_sandbox(plugin: &Plugin, limits: &Limits) -> Result<sandbox::Sandbox> {
    let policy = Arc::new(GatePolicy { allowed: vec![], credential: None, timeout: limits.call_timeout });
    plugin.instantiate(policy, Arc::new(GateStats::default()), limits).await
}

async fn run_command(args: RunArgs, credential: Option<Credential>, mut limits: Limits) -> Result<ExitCode> {
    limits.memory_bytes = (args.memory_mib as usize) << 20;
    limits.call_timeout = Duration::from_secs(args.call_timeout_secs);
    let origin = Origin::of_url(&args.base_url)
        .map_err(|e| anyhow!("--base-url must be GitLab's address, like https://gitlab.com: {e}"))?;
    let mut scopes: Vec<wit::Scope> = Vec::new();
    scopes.extend(args.projects.iter().map(|p| wit::Scope::Project(p.clone())));
    scopes.extend(args.groups.iter().map(|g| wit::Scope::Group(g.clone())));
    if args.instance {
        scopes.push(wit::Scope::Instance);
    }
    if scopes.is_empty() {
        bail!("say where to read: --project ID_OR_PATH, --group ID_OR_PATH (both repeatable) or --instance");
    }
    let filters = args.filters.iter().map(|f| flow::parse_filter(f)).collect::<Result<Vec<_>>>()?;
    let flow = Flow {
        base_url: args.base_url.clone(),
        objects: args
            .objects
            .iter()
            .map(|object| ObjectFlow {
                object: object.clone(),
                scopes: scopes.clone(),
                fields: args.fields.clone(),
                filters: filters.clone(),
            })
            .collect(),
        destination: args.dest.clone(),
        page_size: args.page_size,
        concurrency: args.concurrency as usize,
    };
    let plugin = Arc::new(Plugin::load(&args.plugin.plugin, args.concurrency + 2)?);
    let policy = Arc::new(GatePolicy {
        allowed: vec![origin.clone()],
        credential: credential.clone().map(|c| (origin, c)),
        timeout: limits.call_timeout,
    });
    let outcome = run::run(&flow, plugin, policy, limits).await;
    let summary = match &outcome {
        Ok(summary) => summary,
        Err(failure) => &failure.summary,
    };
    let rendered = summary.render();
    let rendered = credential.as_ref().map_or(rendered.clone(), |c| c.scrub(&rendered));
    if !summary.partitions.is_empty() {
        print!("{rendered}");
    }
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match outcome {
        Ok(summary) if summary.partitions.iter().any(|p| matches!(p.outcome, summary::Outcome::Failed(_))) => {
            bail!("some partitions failed; see the summary above")
        }
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(failure) => Err(failure.error),
    }
}

fn object_json(o: &wit::ObjectInfo) -> serde_json::Value {
    json!({
        "name": o.name,
        "label": o.label,
        "scopes": o.scopes.iter().map(|s| scope_name(*s)).collect::<Vec<_>>(),
        "primary_key": o.primary_key,
        "cursor_field": o.cursor_field,
        "readable": o.readable,
    })
}

fn field_json(f: &wit::FieldInfo) -> serde_json::Value {
    json!({
        "name": f.name,
        "type": type_name(f.field_type),
        "nullable": f.nullable,
        "filter_operators": f.filter_operators.iter().map(|op| operator_name(*op)).collect::<Vec<_>>(),
        "filter_only": f.filter_only,
    })
}

fn scope_name(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Instance => "instance",
        ScopeKind::Group => "group",
        ScopeKind::Project => "project",
    }
}

fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "integer",
        FieldType::Number => "number",
        FieldType::String => "string",
        FieldType::Date => "date",
        FieldType::DateTime => "date-time",
        FieldType::Struct => "struct",
        FieldType::List => "list",
    }
}

fn operator_name(op: FilterOperator) -> &'static str {
    match op {
        FilterOperator::EqualTo => "EQUAL_TO",
        FilterOperator::GreaterThanOrEqualTo => "GREATER_THAN_OR_EQUAL_TO",
        FilterOperator::LessThanOrEqualTo => "LESS_THAN_OR_EQUAL_TO",
        FilterOperator::Between => "BETWEEN",
    }
}
