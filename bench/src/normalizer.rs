//! The connector's parse-and-normalize path, natively and as the benchmark-only `normalizer.wasm`
//! component, for the benchmarks that compare the two (`benches/normalize.rs`, `bin/instructions.rs`).

use anyhow::{Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable, TypedFunc};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Normalize `page` of `object` natively, as the plugin does (every field, scope id 1); the bytes written.
pub fn native(object: &str, page: &[u8]) -> usize {
    let schema = gitlab::catalogue::schema(object).expect("a catalogued object");
    let fields = gitlab::normalize::projection(schema, &[]).expect("every field");
    let mut out = Vec::with_capacity(page.len());
    gitlab::normalize::write_page(&mut out, schema, &fields, page, Some(1)).expect("a page of records");
    out.len()
}

/// The engine for the normalizer; with `epochs`, it compiles with epoch checks as the host compiles
/// plugins (a check at every function entry and loop back-edge, for deadlines).
pub fn engine(epochs: bool) -> Engine {
    Engine::new(Config::new().wasm_component_model(true).epoch_interruption(epochs)).expect("a wasmtime engine")
}

/// The component's export: `normalize-page(object, body, rounds) -> result<u64, string>`.
type NormalizePage = TypedFunc<(String, Vec<u8>, u32), (Result<u64, String>,)>;

/// The normalizer component, instantiated in a store of its own (the epoch deadline, if any, far off).
pub struct WasmNormalizer {
    store: Store<Wasi>,
    normalize_page: NormalizePage,
}

impl WasmNormalizer {
    pub fn new(engine: &Engine, component: &Component) -> Result<WasmNormalizer> {
        let mut store = Store::new(engine, Wasi { ctx: WasiCtx::builder().build(), table: ResourceTable::new() });
        store.set_epoch_deadline(u64::MAX);
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let instance = linker.instantiate(&mut store, component)?;
        let normalize_page = instance.get_typed_func(&mut store, "normalize-page")?;
        Ok(WasmNormalizer { store, normalize_page })
    }

    /// Normalize `page` of `object` `rounds` times in one call; the bytes the last round wrote.
    pub fn normalize(&mut self, object: &str, page: Vec<u8>, rounds: u32) -> Result<u64> {
        let (result,) = self.normalize_page.call(&mut self.store, (object.to_owned(), page, rounds))?;
        result.map_err(|e| anyhow!("{e}"))
    }
}

/// What Rust's std for wasm32-wasip2 imports (clocks, random, stdio), granted nothing more.
struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Wasi {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}
