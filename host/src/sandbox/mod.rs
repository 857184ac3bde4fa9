//! The sandbox: one wasmtime engine for the process, one compiled component per plugin, one store
//! per partition, and limits that end only the sandbox that hits them.
//!
//! ```text
//!  SandboxEngine (engine)  ── load ──► Plugin (compiled once, cached on disk: cache)
//!  Plugin::instantiate(gate, Limits, Label) ──► Sandbox: its own Store from the pooling allocator
//!      WASI: no folders, no environment, no arguments, no sockets; stdout/stderr into the log (output)
//!      wasi:http: the tenant's gate, at most a few requests in flight (requests)
//!      limits: memory, deadline per call, data per call, resources, log output (limits)
//!  Sandbox::read_page(...) ──► the plugin ──► a value, or a CallFailure naming the limit hit
//! ```
//!
//! A failed call (a trap, a limit) leaves the store unusable, so the sandbox refuses further calls;
//! its partition ends and every other sandbox goes on. The [`Label`] of a sandbox (tenant, partition)
//! goes into its log lines.

mod cache;
mod cpu;
mod engine;
mod limits;
mod output;
mod requests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::{ResourceTable, ResourceTableError};
use wasmtime::{Store, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use cache::default_dir as default_cache_dir;
pub use engine::{EngineOptions, Plugin, SandboxEngine};
pub use limits::{Limit, Limits};

use crate::gate::{Gate, GatePolicy, GateStats};
use limits::{Limiter, Tripwire};
use output::{GuestOutput, Stream};
use requests::InFlight;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "dataflow:connector/connector",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use bindings::dataflow::connector::types as wit;

/// The name failures give the first call of a sandbox, the one that instantiates the plugin.
const INSTANTIATION: &str = "instantiation";

/// Whom a sandbox works for, as its log lines say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The tenant, once runs have tenants.
    pub tenant: Option<String>,
    /// The partition (`issue 42`), or the sandbox's job (`planning`, `catalogue`).
    pub partition: String,
}

impl Label {
    /// A sandbox for `partition`, without a tenant.
    pub fn partition(partition: impl Into<String>) -> Label {
        Label { tenant: None, partition: partition.into() }
    }
}

/// The state of one store: WASI (locked down), `wasi:http` with its gate, and the limits.
pub struct SandboxState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: InFlight<Gate>,
    limiter: Limiter,
    tripwire: Tripwire,
    /// When the current call must be over.
    deadline: Instant,
    call_timeout: Duration,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// At every epoch tick while guest code runs: past the call's deadline, trap; else yield to tokio, so
/// that a busy guest shares its thread with the other partitions.
fn on_epoch(mut store: StoreContextMut<'_, SandboxState>) -> wasmtime::Result<UpdateDeadline> {
    let state = store.data_mut();
    if Instant::now() >= state.deadline {
        let limit = Limit::Deadline(state.call_timeout);
        state.tripwire.trip(limit);
        return Err(wasmtime::Error::new(limit));
    }
    Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
}

impl Plugin {
    /// A fresh sandbox for `label`, within `limits`, whose outgoing requests pass through `policy`.
    /// Waits for a free slot of the engine's pool when every slot is taken.
    pub async fn instantiate(
        &self,
        policy: Arc<GatePolicy>,
        stats: Arc<GateStats>,
        limits: &Limits,
        label: Label,
    ) -> Result<Sandbox, CallFailure> {
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| {
            CallFailure(format!("cannot instantiate the plugin {}: the engine is shutting down", self.name), None)
        })?;
        self.instantiate_in(slot, policy, stats, limits, label).await
    }

    /// As [`Plugin::instantiate`] when a slot of the engine's pool is free now; `None` when every
    /// slot is taken. For a sandbox that only speeds work up (planning's extra lookups): waiting for
    /// one while holding another could wait for ever, when every slot is held so.
    pub async fn try_instantiate(
        &self,
        policy: Arc<GatePolicy>,
        stats: Arc<GateStats>,
        limits: &Limits,
        label: Label,
    ) -> Option<Result<Sandbox, CallFailure>> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(self.instantiate_in(slot, policy, stats, limits, label).await)
    }

    /// A fresh sandbox in the pool's `slot`.
    async fn instantiate_in(
        &self,
        slot: OwnedSemaphorePermit,
        policy: Arc<GatePolicy>,
        stats: Arc<GateStats>,
        limits: &Limits,
        label: Label,
    ) -> Result<Sandbox, CallFailure> {
        let started = Instant::now();
        let tripwire = Tripwire::default();
        let output = GuestOutput::new(label.clone(), limits.log_bytes_per_call, tripwire.clone());
        // No preopened folder, no environment variable, no argument, no socket, no name lookup: only
        // what wasi needs to run, stdout and stderr into the log, and outgoing HTTP through the gate.
        let wasi = WasiCtx::builder()
            .stdout(output.stdio(Stream::Stdout))
            .stderr(output.stdio(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        let state = SandboxState {
            wasi,
            http: WasiHttpCtx::new(),
            table,
            hooks: InFlight::new(
                Gate { policy, stats: stats.clone() },
                limits.requests_in_flight,
                stats.running.clone(),
            ),
            limiter: Limiter::new(limits.memory_bytes, tripwire.clone()),
            tripwire: tripwire.clone(),
            deadline: Instant::now() + limits.call_timeout,
            call_timeout: limits.call_timeout,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(limits.call_data_bytes);
        store.set_max_component_handles(limits.resources);
        store.epoch_deadline_callback(on_epoch);
        store.set_epoch_deadline(1);
        let mut sandbox = Sandbox {
            store,
            connector: None,
            limits: limits.clone(),
            output,
            tripwire,
            broken: None,
            label,
            stats,
            _slot: slot,
        };
        let pre = self.pre.clone();
        let connector = sandbox.call(INSTANTIATION, async |_, store| pre.instantiate_async(store).await).await?;
        sandbox.connector = Some(connector);
        tracing::debug!(
            tenant = sandbox.label.tenant.as_deref(),
            partition = %sandbox.label.partition,
            micros = started.elapsed().as_micros() as u64,
            "sandbox instantiated"
        );
        Ok(sandbox)
    }
}

/// One instantiated plugin in its own store.
pub struct Sandbox {
    store: Store<SandboxState>,
    /// Set once instantiated.
    connector: Option<bindings::Connector>,
    limits: Limits,
    output: GuestOutput,
    tripwire: Tripwire,
    /// Why the sandbox may no longer be called, after a failed call.
    broken: Option<String>,
    label: Label,
    /// The partition's figures: the CPU time of its calls goes there.
    stats: Arc<GateStats>,
    /// The pool slot this sandbox holds (released after the store is dropped: fields drop in order).
    _slot: OwnedSemaphorePermit,
}

/// A call into the plugin that did not return a value: it trapped, hit a limit, or ran out of time.
/// The message is one line; the limit, when one was hit, is the second field.
#[derive(Clone, Debug)]
pub struct CallFailure(pub String, pub Option<Limit>);

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallFailure {}

impl Sandbox {
    /// Run one call into the plugin, within the deadline, and name what ended it if it failed.
    async fn call<T, F>(&mut self, what: &str, call: F) -> Result<T, CallFailure>
    where
        F: AsyncFnOnce(Option<&bindings::Connector>, &mut Store<SandboxState>) -> wasmtime::Result<T>,
    {
        if let Some(reason) = &self.broken {
            return Err(CallFailure(format!("the sandbox cannot be called after an earlier failure: {reason}"), None));
        }
        let timeout = self.limits.call_timeout;
        self.store.data_mut().deadline = Instant::now() + timeout;
        self.store.set_epoch_deadline(1);
        self.output.start_call();
        // The epoch callback ends guest code past the deadline; this timeout ends waits in host calls
        // (a stalled response, a long sleep), which no epoch or fuel can interrupt.
        let result = {
            let call = std::pin::pin!(call(self.connector.as_ref(), &mut self.store));
            tokio::time::timeout(timeout, cpu::CpuTimed::new(call, &self.stats.plugin_cpu_nanos)).await
        };
        self.output.end_call();
        let failure = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => self.describe(what, &error),
            Err(_) => {
                let limit = Limit::Deadline(timeout);
                self.tripwire.trip(limit);
                CallFailure(limit.exceeded_in(what), Some(limit))
            }
        };
        tracing::debug!(
            tenant = self.label.tenant.as_deref(),
            partition = %self.label.partition,
            "sandbox ended: {}",
            failure.0
        );
        self.broken = Some(failure.0.clone());
        Err(failure)
    }

    /// What ended a call that returned `error`: the limit hit if any, else the trap, else the error.
    fn describe(&self, what: &str, error: &wasmtime::Error) -> CallFailure {
        if let Some(limit) = self.tripwire.hit().or_else(|| limit_of(error, &self.limits)) {
            let asked = self.store.data().limiter.memory_asked();
            return match (limit, asked) {
                (Limit::Memory(_), Some(asked)) if what == INSTANTIATION => {
                    CallFailure(limit.too_small_to_start(asked), Some(limit))
                }
                _ => CallFailure(limit.exceeded_in(what), Some(limit)),
            };
        }
        let message = match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => format!("the plugin overflowed its call stack in {what}"),
            Some(trap) => {
                let trap = trap.to_string();
                format!("the plugin trapped in {what}: {}", trap.strip_prefix("wasm trap: ").unwrap_or(&trap))
            }
            None => format!("{what} failed: {}", one_line(&format!("{error:#}"))),
        };
        match self.output.last_words() {
            Some(last) => CallFailure(format!("{message} (its last words on stderr: {last})"), None),
            None => CallFailure(message, None),
        }
    }

    /// `list-objects`.
    pub async fn list_objects(&mut self) -> Result<Vec<wit::ObjectInfo>, CallFailure> {
        self.call("list-objects", async |c, s| source(c)?.call_list_objects(s).await).await
    }

    /// `check-connection`.
    pub async fn check_connection(
        &mut self,
        connection: &wit::Connection,
    ) -> Result<Result<String, wit::ConnectorError>, CallFailure> {
        self.call("check-connection", async |c, s| source(c)?.call_check_connection(s, connection).await).await
    }

    /// `describe-schema`.
    pub async fn describe_schema(
        &mut self,
        object: &str,
    ) -> Result<Result<wit::ObjectSchema, wit::ConnectorError>, CallFailure> {
        self.call("describe-schema", async |c, s| source(c)?.call_describe_schema(s, object).await).await
    }

    /// `list-scopes`.
    pub async fn list_scopes(
        &mut self,
        connection: &wit::Connection,
        within: &wit::Scope,
        kind: wit::ScopeKind,
        page_token: Option<&str>,
    ) -> Result<Result<wit::ScopePage, wit::ConnectorError>, CallFailure> {
        self.call("list-scopes", async |c, s| {
            source(c)?.call_list_scopes(s, connection, within, kind, page_token).await
        })
        .await
    }

    /// `validate-request`.
    pub async fn validate_request(
        &mut self,
        connection: &wit::Connection,
        request: &wit::ReadRequest,
    ) -> Result<Result<(), wit::ConnectorError>, CallFailure> {
        self.call("validate-request", async |c, s| source(c)?.call_validate_request(s, connection, request).await).await
    }

    /// `read-page`.
    pub async fn read_page(
        &mut self,
        connection: &wit::Connection,
        request: &wit::ReadRequest,
    ) -> Result<Result<wit::Page, wit::ConnectorError>, CallFailure> {
        self.call("read-page", async |c, s| source(c)?.call_read_page(s, connection, request).await).await
    }
}

/// The plugin's `source` interface, once instantiated.
fn source(
    connector: Option<&bindings::Connector>,
) -> wasmtime::Result<&bindings::exports::dataflow::connector::source::Guest> {
    connector
        .map(|c| c.dataflow_connector_source())
        .ok_or_else(|| wasmtime::format_err!("the plugin is not instantiated"))
}

/// The limit behind an error that wasmtime raised itself (rather than our own limiter or streams).
fn limit_of(error: &wasmtime::Error, limits: &Limits) -> Option<Limit> {
    if let Some(limit) = error.downcast_ref::<Limit>() {
        return Some(*limit);
    }
    if matches!(error.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)) {
        return Some(Limit::Resources(limits.resources));
    }
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Some(Limit::Deadline(limits.call_timeout));
    }
    // wasmtime's own errors for these two limits are private types: known by their messages.
    let text = error.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ");
    if text.contains("fuel allocated for hostcalls has been exhausted") {
        return Some(Limit::CallData(limits.call_data_bytes));
    }
    if text.contains("handle limit exceeded") || text.contains("resource table has no free keys") {
        return Some(Limit::Resources(limits.resources));
    }
    None
}

/// `text` on one line (wasmtime's errors carry a multi-line backtrace).
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
