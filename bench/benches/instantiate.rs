//! What creating a sandbox costs: a fresh store and an instance of `gitlab.wasm` from an `InstancePre`,
//! with the host's engine settings (component model, async, epochs, the pooling allocator) and its
//! imports (wasi p2 and wasi:http), then dropped, as the host does for every partition.
//!
//! `cargo bench -p bench --bench instantiate`
//!
//! The host's own figure (`sandbox instantiated micros=` in its debug log, section 2 of the e2e bench)
//! adds its context (the gate, the log capture, the limits) and runs beside the other partitions.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView, default_hooks};

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: default_hooks() }
    }
}

/// The host's engine (`host/src/sandbox/engine.rs`) for 64 sandboxes; `table_keep_resident` and
/// `PAGEMAP_SCAN` as the host sets them, or wasmtime's defaults (every dirty page given back to the
/// kernel when a slot is freed).
fn engine(host_reset: bool) -> Engine {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(64)
        .max_core_instances_per_component(16)
        .total_core_instances(64 * 16)
        .max_memories_per_component(2)
        .total_memories(64 * 2)
        .max_tables_per_component(8)
        .total_tables(64 * 8)
        .table_elements(20_000)
        .total_stacks(64)
        .max_memory_size(1 << 32);
    if host_reset {
        pool.table_keep_resident(128 << 10).pagemap_scan(wasmtime::Enabled::Auto);
    }
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).unwrap()
}

fn pre(engine: &Engine) -> InstancePre<State> {
    bench::build_wasm(&["gitlab-connector"]).unwrap();
    let path = bench::target_dir().join("wasm32-wasip2/release/gitlab.wasm");
    let component = Component::from_file(engine, &path).unwrap();
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
    linker.instantiate_pre(&component).unwrap()
}

fn state() -> State {
    State { wasi: WasiCtx::builder().build(), http: WasiHttpCtx::new(), table: ResourceTable::new() }
}

/// A store and an instance in it, as the host makes one per partition.
async fn sandbox(engine: &Engine, pre: &InstancePre<State>) -> (Instance, Store<State>) {
    let mut store = Store::new(engine, state());
    store.set_epoch_deadline(1);
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    (instance, store)
}

fn instantiate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("sandbox");
    for (name, host_reset) in [("wasmtime's slot reset", false), ("host's slot reset", true)] {
        let engine = engine(host_reset);
        let pre = pre(&engine);
        if host_reset {
            group.bench_function("store", |b| b.iter(|| black_box(Store::new(&engine, state()))));
        }
        // Created and dropped: the drop resets the slot for the next one.
        group.bench_function(format!("store + instance, {name}"), |b| {
            b.iter(|| black_box(runtime.block_on(sandbox(&engine, &pre))))
        });
        if host_reset {
            // The caches flushed before each (8 MiB written), as between partitions in the host; the
            // drop is not timed.
            let mut junk = vec![0u8; 8 << 20];
            group.bench_function(format!("store + instance, {name}, cold caches"), |b| {
                b.iter_batched(
                    || junk.iter_mut().step_by(64).for_each(|byte| *byte = byte.wrapping_add(1)),
                    |()| runtime.block_on(sandbox(&engine, &pre)),
                    criterion::BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, instantiate);
criterion_main!(benches);
