//! `host`: the reference host for source connectors shipped as WebAssembly components.
//!
//! The host owns everything operational: the command line, flows, the sandbox each plugin runs in,
//! the credential and the outgoing-HTTP gate, concurrency, destinations and the run summary. It knows
//! nothing about GitLab beyond what the plugin's `list-objects` and `describe-schema` say.
//!
//! - [`cli`]: the commands and their flags.
//! - [`flow`]: what to read and where to write it: flow files and flags, one model.
//! - [`sandbox`]: the wasmtime engine, the plugin, one store per partition.
//! - [`gate`]: the host side of `wasi:http`: allow-list, credential, counting.
//! - [`credential`]: the tenant's token (static or OAuth2, refreshed), never shown; `host auth login`.
//! - [`plan`]: from a flow to checked partitions (scopes resolved and expanded).
//! - [`resume`]: where a partition's read starts (resumed, incremental, full).
//! - [`run`]: partitions read concurrently, the page loop, errors.
//! - [`progress`]: bars on a terminal, log lines otherwise.
//! - [`dest`]: destinations (SQLite, PostgreSQL, JSONL, CSV, Parquet, S3) behind one writer thread (and
//!   its committer, which makes what it wrote durable).
//! - [`pg`], [`io_thread`]: PostgreSQL connections; async clients driven from synchronous code.
//! - [`state`]: checkpoints, saved after each durable page.
//! - [`summary`]: the report at the end.
//! - [`tenant`]: tenants, and many tenants' flows run side by side.
//! - [`threads`]: the host's own threads, and what to do when the system refuses one.

mod cli;
mod credential;
mod dest;
mod flow;
mod gate;
mod interrupt;
mod io_thread;
mod lanes;
mod pg;
mod plan;
mod progress;
mod resume;
mod retry;
mod run;
mod sandbox;
mod state;
mod summary;
mod tenant;
mod threads;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::json;

use cli::{AuthCommand, Cli, Command, FlowArgs, LoginArgs, RunArgs};
use credential::{CredentialProvider, oauth};
use dest::type_name;
use flow::Flow;
use gate::{CredentialHeader, GatePolicy, GateSettings, GateStats, Origin, Timeouts};
use retry::{Retrier, RetryPolicy};
use sandbox::wit::{self, FilterOperator, ScopeKind};
use sandbox::{EngineOptions, Label, Limits, Plugin, SandboxEngine};
use tenant::TenantSpec;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours for people at a terminal; plain text when the log goes to a file or another program.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// Print one `error:` line and exit non-zero.
fn fail(message: &str) -> ExitCode {
    print_error(message);
    ExitCode::FAILURE
}

/// Print one `error:` line, scrubbed of every token the process held.
fn print_error(message: &str) {
    eprintln!("error: {}", credential::redact(message));
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    let limits = Limits::default();
    let cache_dir = match cli.cache_dir {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir),
        None => sandbox::default_cache_dir(),
    };
    match cli.command {
        Command::Objects { plugin, json } => {
            let plugin = start_engine(1, cache_dir)?.load(&plugin.plugin)?;
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
            let plugin = start_engine(1, cache_dir)?.load(&plugin.plugin)?;
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
                    let mut filters =
                        f.filter_operators.iter().map(|op| operator_name(*op)).collect::<Vec<_>>().join(", ");
                    if !f.filter_values.is_empty() {
                        filters = format!("{filters} (one of: {})", f.filter_values.join(", "));
                    }
                    println!(
                        "{:<34} {:<10} {:<9} {:<12} {filters}",
                        f.name,
                        type_name(f.field_type),
                        if f.nullable { "yes" } else { "no" },
                        if f.filter_only { "filter only" } else { "record" },
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            interrupt::listen()?;
            if let (Some(tenants), Some(flows)) = (&args.flow.tenants, &args.flow.flows) {
                return tenant::run::run_all(&args, tenants, flows, cache_dir).await;
            }
            let flow = flow::flags::flow_of(&args.flow)?;
            let credential = resolve_credential(&flow)?;
            run_command(&args, &flow, credential, cache_dir).await
        }
        Command::Check(args) => {
            if args.tenants.is_some() {
                bail!("host check takes one flow: check each flow of --flows with --flow FILE");
            }
            let flow = flow::flags::flow_of(&args)?;
            let credential = resolve_credential(&flow)?;
            check_command(&args, &flow, credential, cache_dir).await
        }
        Command::Auth(AuthCommand::Login(args)) => login_command(args).await,
    }
}

/// The flow's credential, opened from its source (none: anonymous), or why it cannot be (naming the
/// flow's key, never the secret).
fn resolve_credential(flow: &Flow) -> Result<Option<Arc<CredentialProvider>>> {
    let Some(source) = &flow.connection.credential else {
        tracing::info!("no credential: anonymous requests");
        return Ok(None);
    };
    let key = match source {
        flow::connection::CredentialSource::Env { .. } => "connection.credential.env",
        flow::connection::CredentialSource::File { .. } => "connection.credential.file",
        flow::connection::CredentialSource::OAuth { .. } => "connection.credential.oauth",
    };
    let provider =
        credential::open(source, &flow.connection.base_url).map_err(|e| flow.origins.error(key, format!("{e:#}")))?;
    tracing::info!("credential: {provider}");
    Ok(Some(Arc::new(provider)))
}

/// `host auth login`: authorize the application and store its tokens.
async fn login_command(args: LoginArgs) -> Result<ExitCode> {
    let app = oauth::OAuthApp::new(&args.base_url, &args.client_id)?;
    let token_file = match args.token_file {
        Some(path) => path,
        None => oauth::default_token_file(&app)?,
    };
    let options = oauth::LoginOptions {
        client_secret: oauth::client_secret(args.client_secret_file.as_deref())?,
        scopes: oauth::parse_scopes(&args.scopes)?,
        app,
        token_file,
        port: args.port,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let tokens = oauth::login(&options).await?;
    println!(
        "Logged in to {} with application {} (scopes: {}); the access token {} and is refreshed as needed.",
        options.app.base_url,
        options.app.client_id,
        tokens.scopes.join(" "),
        tokens.expiry_for_people()
    );
    let what = if tokens.client_secret.is_some() { "Tokens and the application's secret" } else { "Tokens" };
    println!("{what} saved to {} (readable only by you).", options.token_file.display());
    Ok(ExitCode::SUCCESS)
}

/// The sandbox limits: a flag wins over the tenant's setting, which wins over the default.
fn limits_of(args: &FlowArgs, tenant: Option<&TenantSpec>) -> Limits {
    let memory_mib = args.memory_mib.or(tenant.and_then(|t| t.memory_mib)).unwrap_or(tenant::DEFAULT_MEMORY_MIB);
    let call_timeout = args.call_timeout_secs.or(tenant.and_then(|t| t.call_timeout_secs)).map(Duration::from_secs);
    Limits {
        memory_bytes: (memory_mib as usize) << 20,
        call_timeout: call_timeout.unwrap_or(tenant::DEFAULT_CALL_TIMEOUT),
        ..Limits::default()
    }
}

/// The plugin of `flow` on an engine sized for `instances` sandboxes at once (an error names the
/// `plugin` key), and the gate policy its requests pass.
fn load_plugin(
    args: &FlowArgs,
    flow: &Flow,
    credential: Option<Arc<CredentialProvider>>,
    instances: u32,
    limits: &Limits,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(Arc<Plugin>, Arc<GatePolicy>)> {
    let plugin = start_engine(instances, cache_dir)?
        .load(&flow.plugin)
        .map_err(|e| flow.origins.error("plugin", format!("{e:#}")))?;
    let origin = Origin::of_url(&flow.connection.base_url).map_err(|e| flow.origins.error("connection.base_url", e))?;
    let policy = Arc::new(GatePolicy::new(gate_settings(args, origin, credential, limits, flow.tenant.as_ref())?));
    Ok((plugin, policy))
}

/// The gate settings of a tenant whose GitLab is at `origin`, from the command line and the tenant's
/// own settings (a flag wins).
fn gate_settings(
    args: &FlowArgs,
    origin: Origin,
    credential: Option<Arc<CredentialProvider>>,
    limits: &Limits,
    tenant: Option<&TenantSpec>,
) -> Result<GateSettings> {
    let mut allowed = vec![origin.clone()];
    for url in &args.allow_origins {
        allowed.push(
            Origin::of_url(url)
                .map_err(|e| anyhow!("--allow-origin must be an origin like https://example.com: {e}"))?,
        );
    }
    for url in tenant.map(|t| t.allowed_origins.as_slice()).unwrap_or_default() {
        // Checked when the tenant was read.
        allowed.push(Origin::of_url(url).map_err(|e| anyhow!("allowed_origins: {e}"))?);
    }
    let http_timeout = match args.http_timeout_secs.map(Duration::from_secs) {
        Some(timeout) if timeout >= limits.call_timeout => bail!(
            "--http-timeout-secs ({}) must be shorter than --call-timeout-secs ({}), so that a stalled response \
             fails as a network error the host retries, not as a plugin deadline",
            timeout.as_secs(),
            limits.call_timeout.as_secs()
        ),
        Some(timeout) => timeout,
        None => (limits.call_timeout * 2 / 3).min(Duration::from_secs(20)),
    };
    Ok(GateSettings {
        allowed,
        gitlab: Some(origin),
        credential: credential.map(|c| c as Arc<dyn CredentialHeader>),
        timeouts: Timeouts { connect: http_timeout, first_byte: http_timeout, between_bytes: http_timeout },
        max_requests_per_minute: args.max_requests_per_minute.or(tenant.and_then(|t| t.requests_per_minute)),
        retry: RetryPolicy {
            max_attempts: args.retry_attempts,
            max_wait: Duration::from_secs(args.retry_max_wait_secs),
            backoff: Duration::from_millis(args.retry_backoff_ms),
            max_backoff: Duration::from_secs(60),
        },
        max_response_bytes: tenant.and_then(|t| t.max_response_bytes),
        max_run_bytes: tenant.and_then(|t| t.max_run_bytes),
    })
}

/// The process's engine, sized for `instances` sandboxes at once.
fn start_engine(instances: u32, cache_dir: Option<std::path::PathBuf>) -> Result<SandboxEngine> {
    if cache_dir.is_none() {
        tracing::debug!("no cache folder (turned off, or no XDG_CACHE_HOME nor HOME): compiling plugins anew");
    }
    SandboxEngine::new(&EngineOptions { instances, cache_dir })
}

/// A sandbox that may not reach anything: for `list-objects` and `describe-schema`.
async fn offline_sandbox(plugin: &Plugin, limits: &Limits) -> Result<sandbox::Sandbox> {
    let policy = Arc::new(GatePolicy::offline(limits.call_timeout));
    Ok(plugin.instantiate(policy, Arc::new(GateStats::default()), limits, Label::partition("catalogue")).await?)
}

async fn run_command(
    args: &RunArgs,
    flow: &Flow,
    credential: Option<Arc<CredentialProvider>>,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let limits = limits_of(&args.flow, flow.tenant.as_ref());
    // The run's partitions, and the planning sandbox before them.
    let (plugin, policy) = load_plugin(&args.flow, flow, credential, flow.concurrency as u32 + 1, &limits, cache_dir)?;
    // A flow's [tenant] may hold it to fewer partitions at once than the flow asks for.
    let permits = flow
        .tenant
        .as_ref()
        .and_then(|t| t.concurrency)
        .map(|n| Arc::new(tokio::sync::Semaphore::new(flow.concurrency.min(n as usize).max(1))));
    let outcome = run::run(flow, plugin, policy, limits, permits).await;
    let summary = match &outcome {
        Ok(summary) => summary,
        Err(failure) => &failure.summary,
    };
    let rendered = credential::redact(&summary.render());
    if !summary.partitions.is_empty() {
        print!("{rendered}");
    }
    if let Some(path) = &args.summary_json {
        let json = credential::redact(&serde_json::to_string_pretty(summary)?);
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if interrupt::requested() {
        if let Err(failure) = &outcome {
            print_error(&format!("{:#}", failure.error));
        }
        return Ok(interrupt::exit_code());
    }
    match outcome {
        Ok(summary) if summary.partitions.iter().any(|p| matches!(p.outcome, summary::Outcome::Failed(_))) => {
            bail!("some partitions failed; see the summary above")
        }
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(failure) => Err(failure.error),
    }
}

/// `host check`: the flow checked whole (sending nothing), then the credential tested with
/// `check-connection` (one request), then each named scope resolved (one request each, several at
/// once, as planning does).
async fn check_command(
    args: &FlowArgs,
    flow: &Flow,
    credential: Option<Arc<CredentialProvider>>,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let limits = limits_of(args, flow.tenant.as_ref());
    // The control sandbox, and the others that look the named scopes up at once.
    let at_once = flow.concurrency.max(1);
    let (plugin, policy) = load_plugin(args, flow, credential, at_once as u32 + 1, &limits, cache_dir)?;
    let stats = Arc::new(GateStats::default());
    let retrier = Retrier::new(policy.clone(), stats.clone());
    let mut control = plugin.instantiate(policy.clone(), stats.clone(), &limits, Label::partition("check")).await?;
    let connection = wit::Connection { base_url: flow.connection.base_url.clone(), options: vec![] };
    let checked = plan::check(&mut control, &connection, flow).await?;
    let name = flow.origins.file_name().map_or_else(|| "the flow".to_owned(), str::to_owned);
    let scopes: usize = flow.objects.iter().map(|o| o.scopes.len()).sum();
    println!(
        "{name}: valid: flow '{}', {} object(s) under {scopes} scope(s), into {}",
        flow.id,
        flow.objects.len(),
        flow.destination
    );
    let source = flow.connection.credential.as_ref().map_or_else(|| "no credential".to_owned(), |c| c.describe());
    match control.check_connection(&connection).await.map_err(|e| anyhow!(e.0))? {
        Ok(who) => println!("connection: {} accepts {source}: authenticated as {who}", flow.connection.base_url),
        Err(error) => {
            if let Some(refusal) = stats.refusals().first() {
                bail!(flow.origins.message("connection.base_url", format!("request refused by the host: {refusal}")));
            }
            match &error {
                wit::ConnectorError::Unauthorized(m) => return Err(plan::unauthorized(flow, &policy, m)),
                other => bail!(flow.origins.message("connection.base_url", run::connector_message(other))),
            }
        }
    }
    let resolvers = plan::Resolvers {
        plugin: plugin.clone(),
        policy: policy.clone(),
        stats: stats.clone(),
        limits: limits.clone(),
        label: Label::partition("check"),
        permits: Arc::new(tokio::sync::Semaphore::new(at_once)),
    };
    let named = plan::resolve_named_scopes(&mut control, &resolvers, &retrier, &connection, flow, &checked).await?;
    for (scope, resolved) in named {
        println!("scope: {scope} is {resolved}");
    }
    Ok(ExitCode::SUCCESS)
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
        "filter_values": f.filter_values,
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

fn operator_name(op: FilterOperator) -> &'static str {
    match op {
        FilterOperator::EqualTo => "EQUAL_TO",
        FilterOperator::GreaterThanOrEqualTo => "GREATER_THAN_OR_EQUAL_TO",
        FilterOperator::LessThanOrEqualTo => "LESS_THAN_OR_EQUAL_TO",
        FilterOperator::Between => "BETWEEN",
    }
}
