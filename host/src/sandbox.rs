//! The sandbox: one wasmtime engine for the process, one compiled plugin, one store per partition.
//!
//! [`Plugin::load`] compiles the component once and pre-links it (`InstancePre`); every
//! [`Plugin::instantiate`] then makes a fresh store from the pooling allocator, with a memory cap, an
//! epoch deadline per call, no filesystem, no environment, no sockets, and `wasi:http` behind the
//! tenant's [`Gate`]. What the plugin exports is reached through [`Sandbox`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::gate::{Gate, GatePolicy, GateStats};

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

/// How often the epoch ticks; deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits of one sandbox.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// The longest one call into the plugin may run, in guest code or waiting on the host.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 64 << 20, call_timeout: Duration::from_secs(30) }
    }
}

/// A loaded plugin, ready to instantiate many times.
pub struct Plugin {
    engine: Engine,
    pre: bindings::ConnectorPre<SandboxState>,
}

/// The state of one store: WASI (locked down), `wasi:http` with its gate, and the limits.
pub struct SandboxState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    gate: Gate,
    limits: StoreLimits,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.gate }
    }
}

impl Plugin {
    /// Compile the component at `path` and pre-link it against the sandbox's imports.
    pub fn load(path: &Path, instances: u32) -> Result<Plugin> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the plugin {}: build it with `cargo xtask build`", path.display()))?;
        let engine = engine(instances)?;
        let component = Component::new(&engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))?;
        let mut linker = Linker::<SandboxState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
            format!("{} does not fit the host: it imports something the sandbox does not offer", path.display())
        })?;
        let pre = bindings::ConnectorPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} does not export the dataflow:connector/source interface", path.display()))?;
        start_epoch_ticker(&engine);
        Ok(Plugin { engine, pre })
    }

    /// A fresh sandbox whose outgoing requests pass through `policy`.
    pub async fn instantiate(
        &self,
        policy: Arc<GatePolicy>,
        stats: Arc<GateStats>,
        limits: &Limits,
    ) -> Result<Sandbox> {
        // No preopened directory, no environment variable, no argument, no socket: only what wasi
        // needs to run, plus outgoing HTTP through the gate.
        let wasi = WasiCtx::builder().build();
        let state = SandboxState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            gate: Gate { policy, stats },
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(16)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks = (limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let connector = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("cannot instantiate the plugin")?;
        Ok(Sandbox { store, connector, call_timeout: limits.call_timeout, ticks })
    }
}

/// The engine: component model, async calls, epoch deadlines, and the pooling allocator.
fn engine(instances: u32) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 4)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memory_size(256 << 20);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| anyhow!("cannot start the WebAssembly engine: {e}"))
}

/// Advance the engine's epoch forever, so that epoch deadlines measure wall time.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// One instantiated plugin in its own store.
pub struct Sandbox {
    store: Store<SandboxState>,
    connector: bindings::Connector,
    call_timeout: Duration,
    ticks: u64,
}

/// A call into the plugin that did not return a value: it trapped, hit a limit, or ran out of time.
#[derive(Debug)]
pub struct CallFailure(pub String);

impl Sandbox {
    async fn call<T, F>(&mut self, what: &str, call: F) -> Result<T, CallFailure>
    where
        F: AsyncFnOnce(&bindings::Connector, &mut Store<SandboxState>) -> wasmtime::Result<T>,
    {
        self.store.set_epoch_deadline(self.ticks);
        let timeout = self.call_timeout;
        match tokio::time::timeout(timeout, call(&self.connector, &mut self.store)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(trap)) => Err(CallFailure(describe_trap(what, &trap, timeout))),
            Err(_) => Err(CallFailure(format!("{what} did not finish within the {timeout:?} deadline"))),
        }
    }

    /// `list-objects`.
    pub async fn list_objects(&mut self) -> Result<Vec<wit::ObjectInfo>, CallFailure> {
        self.call("list-objects", async |c, s| c.dataflow_connector_source().call_list_objects(s).await).await
    }

    /// `check-connection`.
    pub async fn check_connection(
        &mut self,
        connection: &wit::Connection,
    ) -> Result<Result<String, wit::ConnectorError>, CallFailure> {
        self.call("check-connection", async |c, s| {
            c.dataflow_connector_source().call_check_connection(s, connection).await
        })
        .await
    }

    /// `describe-schema`.
    pub async fn describe_schema(
        &mut self,
        object: &str,
    ) -> Result<Result<wit::ObjectSchema, wit::ConnectorError>, CallFailure> {
        self.call("describe-schema", async |c, s| c.dataflow_connector_source().call_describe_schema(s, object).await)
            .await
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
            c.dataflow_connector_source().call_list_scopes(s, connection, within, kind, page_token).await
        })
        .await
    }

    /// `validate-request`.
    pub async fn validate_request(
        &mut self,
        connection: &wit::Connection,
        request: &wit::ReadRequest,
    ) -> Result<Result<(), wit::ConnectorError>, CallFailure> {
        self.call("validate-request", async |c, s| {
            c.dataflow_connector_source().call_validate_request(s, connection, request).await
        })
        .await
    }

    /// `read-page`.
    pub async fn read_page(
        &mut self,
        connection: &wit::Connection,
        request: &wit::ReadRequest,
    ) -> Result<Result<wit::Page, wit::ConnectorError>, CallFailure> {
        self.call("read-page", async |c, s| c.dataflow_connector_source().call_read_page(s, connection, request).await)
            .await
    }
}

fn describe_trap(what: &str, error: &wasmtime::Error, timeout: Duration) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("{what} ran past its {timeout:?} deadline"),
        Some(wasmtime::Trap::OutOfFuel) => format!("{what} ran out of fuel"),
        Some(trap) => format!("the plugin trapped in {what}: {trap}"),
        None => format!("{what} failed: {error:#}"),
    }
}
