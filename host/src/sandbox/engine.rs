//! One wasmtime engine for the process, and the plugins it has loaded.
//!
//! ```text
//!  SandboxEngine::new(options) ── Config (component model, epochs, pooling allocator sized for
//!      │                          `options.instances` sandboxes)
//!      │                          + the epoch ticker thread + the Linker (WASI locked down, wasi:http)
//!      └─ load(plugin.wasm) ──► SHA-256 ──► already loaded? the same Arc<Plugin>
//!                                       └─► disk cache (see `cache`) or compile ──► InstancePre
//!  Plugin::instantiate ──► a slot of the pool (waits for one) ──► Store + instance: a Sandbox
//! ```
//!
//! Several plugins may be loaded into one engine (a multi-tenant run loads each tenant's plugin); they
//! share the pool, whose slots are handed out by a semaphore so that a run never fails for want of
//! one: a sandbox waits for a free slot instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

use super::SandboxState;
use super::bindings::ConnectorPre;
use super::cache::{CacheKey, ComponentCache};
use super::limits::TABLE_ELEMENTS;

/// How often the epoch ticks: the granularity of deadlines, and how often a busy guest yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables one component may have (a Rust component has a handful of
/// each; the pool reserves this many per sandbox, so one plugin cannot starve another of slots).
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
pub const MEMORIES_PER_COMPONENT: u32 = 2;
pub const TABLES_PER_COMPONENT: u32 = 8;

/// The most sandboxes the engine's pool holds at once, all plugins and tenants together; past it, a
/// sandbox waits for a free slot. The pool reserves its address space up front, about 4 GiB for each
/// of a sandbox's [`MEMORIES_PER_COMPONENT`] memories (so that wasm32 code needs no bounds checks):
/// 4,096 sandboxes take 32 TiB of the 128 TiB a process has on x86-64 Linux. Sizing the pool for
/// every partition of 2,000 tenants (18,000 sandboxes at 8 partitions each) asked for more than the
/// process has, and the engine would not start.
pub const MOST_SANDBOXES: u32 = 4096;

/// How much of a freed slot's tables stays resident for the next sandbox.
const TABLE_KEEP_RESIDENT: usize = 128 << 10;

/// The most linear memory the pool's free slots keep resident, all slots together (see
/// [`memory_keep_resident`]).
const MEMORY_KEEP_RESIDENT_TOTAL: usize = 32 << 20;

/// The most linear memory one free slot keeps resident.
const MEMORY_KEEP_RESIDENT_MOST: usize = 1 << 20;

/// Set (to anything) to write /tmp/perf-PID.map, so that `perf` can name the plugin's compiled functions.
pub const PERF_MAP_VARIABLE: &str = "HOST_PERF_MAP";

/// What the engine is sized for.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The most sandboxes alive at once, all plugins together.
    pub instances: u32,
    /// Where compiled plugins are cached; `None`: compile at every start.
    pub cache_dir: Option<PathBuf>,
}

/// The process's wasmtime engine, its pool of instance slots, and the plugins loaded into it.
#[derive(Clone)]
pub struct SandboxEngine {
    engine: Engine,
    linker: Arc<Linker<SandboxState>>,
    slots: Arc<Semaphore>,
    cache: Option<Arc<ComponentCache>>,
    plugins: Arc<Mutex<HashMap<String, Arc<Plugin>>>>,
}

impl SandboxEngine {
    /// Start the engine (and its epoch ticker) and open the cache, if any.
    pub fn new(options: &EngineOptions) -> Result<SandboxEngine> {
        let instances = options.instances.clamp(1, MOST_SANDBOXES);
        let engine = Engine::new(&config(instances)).map_err(|e| {
            let reserved = u64::from(instances * MEMORIES_PER_COMPONENT) << 32;
            anyhow!(
                "cannot start the WebAssembly engine: {e}: its pool reserves about {} GiB of address space for \
                 {instances} sandboxes at once; is the process's virtual memory limited (`ulimit -v`)?",
                reserved >> 30
            )
        })?;
        let mut linker = Linker::<SandboxState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        start_epoch_ticker(&engine)?;
        let cache = options.cache_dir.as_deref().and_then(|dir| match ComponentCache::open(dir) {
            Ok(cache) => Some(Arc::new(cache)),
            Err(why) => {
                tracing::warn!("not caching compiled plugins: {why}");
                None
            }
        });
        Ok(SandboxEngine {
            engine,
            linker: Arc::new(linker),
            slots: Arc::new(Semaphore::new(instances as usize)),
            cache,
            plugins: Arc::default(),
        })
    }

    /// The plugin at `path`: compiled (or read from the cache) and pre-linked once per content.
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read the plugin {}: build it with `cargo xtask build`", path.display()))?;
        check_header(path, &wasm)?;
        let key = CacheKey::new(&self.engine, &wasm);
        if let Some(plugin) = self.plugins.lock().unwrap_or_else(|e| e.into_inner()).get(&key.wasm_sha256) {
            return Ok(plugin.clone());
        }
        let component = self.component(path, &wasm, &key)?;
        let pre = self.linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
            format!("{} does not fit the host: it imports something the sandbox does not offer", path.display())
        })?;
        let pre = ConnectorPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} does not export the dataflow:connector/source interface", path.display()))?;
        let plugin = Arc::new(Plugin {
            engine: self.engine.clone(),
            pre,
            slots: self.slots.clone(),
            name: path.display().to_string(),
        });
        self.plugins.lock().unwrap_or_else(|e| e.into_inner()).insert(key.wasm_sha256, plugin.clone());
        Ok(plugin)
    }

    /// The compiled component: from the cache when a good copy is there, else compiled (and cached).
    fn component(&self, path: &Path, wasm: &[u8], key: &CacheKey) -> Result<Component> {
        let started = Instant::now();
        if let Some(cache) = &self.cache {
            match cache.load(&self.engine, key) {
                Ok(Some(component)) => {
                    tracing::debug!(
                        cache_file = %cache.path(key).display(),
                        ms = started.elapsed().as_millis() as u64,
                        "loaded the compiled plugin {} from the cache",
                        path.display()
                    );
                    return Ok(component);
                }
                Ok(None) => {}
                Err(why) => tracing::warn!(
                    "ignored the cached compiled plugin {}: {why}; compiling it again",
                    cache.path(key).display()
                ),
            }
        }
        let component = Component::new(&self.engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))?;
        let compiled = started.elapsed();
        match self.cache.as_ref().map(|cache| cache.save(key, &component)) {
            Some(Ok(file)) => tracing::debug!(
                cache_file = %file.display(),
                ms = compiled.as_millis() as u64,
                "compiled the plugin {} and saved it to the cache",
                path.display()
            ),
            Some(Err(why)) => tracing::warn!("compiled the plugin {} but could not cache it: {why}", path.display()),
            None => tracing::debug!(ms = compiled.as_millis() as u64, "compiled the plugin {}", path.display()),
        }
        Ok(component)
    }
}

/// Refuse a file that is not a WebAssembly component by its first 8 bytes, saying what it is instead
/// (the parser's own error is a byte dump).
fn check_header(path: &Path, wasm: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    // After the magic: a component's version and layer (0x0d 0x00, 0x01 0x00); a core module's is 1.
    const COMPONENT: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    const MODULE: &[u8] = &[0x01, 0x00, 0x00, 0x00];
    let path = path.display();
    match (wasm.get(..4), wasm.get(4..8)) {
        (Some(MAGIC), Some(COMPONENT)) => Ok(()),
        (Some(MAGIC), Some(MODULE)) => bail!(
            "{path} is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
             (`cargo xtask build` does), or wrap the module with `wasm-tools component new`"
        ),
        (Some(MAGIC), _) => bail!("{path} is WebAssembly of a version or layer this host does not read"),
        _ => bail!(
            "{path} is not WebAssembly (it does not start with `\\0asm`): --plugin takes a component such as \
             target/wasm32-wasip2/release/gitlab.wasm, built by `cargo xtask build`"
        ),
    }
}

/// The engine's configuration: component model, async calls, epoch deadlines, the pooling allocator.
fn config(instances: u32) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_memories(instances * MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_tables(instances * TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .total_stacks(instances)
        // Each memory slot reserves 4 GiB of address space anyway (so that wasm32 code needs no bounds
        // checks); the pool lets a memory grow that far, and each sandbox's `Limiter` says how far it
        // may, so that hitting the limit is named as such, and a plugin whose memory starts above
        // the limit is refused at instantiation, not compiled again. Nothing of this is resident
        // until used.
        .max_memory_size(1 << 32)
        // A freed slot is reset for its next sandbox. By default every dirty page is given back to
        // the kernel (madvise) and faulted in again by the next instance; for the tables (the
        // plugin's function tables, a few pages written at every instantiation) the first
        // `TABLE_KEEP_RESIDENT` bytes stay resident and are reset in place instead, `PAGEMAP_SCAN`
        // (Linux 6.7+, ignored elsewhere) finding the pages written. Instantiation 17.1 -> 12.1 µs
        // in the `instantiate` bench. Linear memory is kept likewise, within a budget (see
        // `memory_keep_resident`); keeping stacks resident gained nothing.
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .linear_memory_keep_resident(memory_keep_resident(instances))
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os(PERF_MAP_VARIABLE).is_some() {
        // `perf report` then names the plugin's functions instead of bare [JIT] addresses.
        config.profiler(ProfilingStrategy::PerfMap);
    }
    config
}

/// How much of a freed memory slot stays resident for the next sandbox: [`MEMORY_KEEP_RESIDENT_TOTAL`]
/// shared by every memory slot of a pool of `instances` sandboxes, at most
/// [`MEMORY_KEEP_RESIDENT_MOST`] each, in whole wasm pages.
///
/// By default a freed slot gives every page its sandbox wrote back to the kernel (`madvise`: a TLB
/// shootdown across the process's threads), and the next sandbox faults them in again, zeroed. A slot
/// that keeps them resets the pages written (found with `PAGEMAP_SCAN`) with `memset` instead. A run
/// of 2,000 one-page partitions, 64 at once, spent a third less CPU in its plugin calls (0.92 ->
/// 0.59 s) with 256 KiB a slot, and most of that with 64 KiB. Kept pages stay resident, so the
/// budget is shared: a run of 64 partitions at once keeps up to 32 MiB, while 1,000 tenants (whose
/// slots are each used once, gaining nothing) keep nothing, where 256 KiB a slot cost 130 MiB.
fn memory_keep_resident(instances: u32) -> usize {
    const WASM_PAGE: usize = 64 << 10;
    let slots = (instances as usize * MEMORIES_PER_COMPONENT as usize).max(1);
    let share = (MEMORY_KEEP_RESIDENT_TOTAL / slots).min(MEMORY_KEEP_RESIDENT_MOST);
    share / WASM_PAGE * WASM_PAGE
}

/// Advance the engine's epoch while the engine lives, so that epochs measure wall time.
fn start_epoch_ticker(engine: &Engine) -> Result<()> {
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
        .map(drop)
        .map_err(|e| anyhow!("cannot start the thread that enforces deadlines: {e}"))
}

/// A loaded plugin, ready to instantiate many times.
pub struct Plugin {
    pub(super) engine: Engine,
    pub(super) pre: ConnectorPre<SandboxState>,
    pub(super) slots: Arc<Semaphore>,
    /// The path it was loaded from, for messages.
    pub(super) name: String,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_asked_for_more_sandboxes_than_the_address_space_holds_is_capped_and_starts() {
        // 2,500 tenants at 8 partitions each, plus a planning sandbox per flow: 45,000 memories of
        // 4 GiB would be 176 TiB, more than the process has.
        let engine = SandboxEngine::new(&EngineOptions { instances: 22_500, cache_dir: None }).unwrap();
        assert_eq!(engine.slots.available_permits(), MOST_SANDBOXES as usize);
    }
}
