//! The connector's parse-and-normalize path (GitLab JSON page in, typed NDJSON out), natively and
//! compiled to wasm, on the same pages: the cost of the sandbox on the connector's own work.
//!
//! `cargo bench -p bench --bench normalize`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmtime::component::{Component, Linker, ResourceTable, TypedFunc};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

fn native(object: &str, page: &[u8]) -> usize {
    let schema = gitlab::catalogue::schema(object).unwrap();
    let fields = gitlab::normalize::projection(schema, &[]).unwrap();
    let mut out = Vec::with_capacity(page.len());
    gitlab::normalize::write_page(&mut out, schema, &fields, page, Some(1)).unwrap();
    out.len()
}

type NormalizePage = TypedFunc<(String, Vec<u8>, u32), (Result<u64, String>,)>;

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

fn wasm_normalizer() -> (Store<Wasi>, NormalizePage) {
    let path = bench::build_wasm_apart("normalizer").unwrap();
    let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
    let component = Component::from_file(&engine, &path).unwrap();
    let mut store = Store::new(&engine, Wasi { ctx: WasiCtx::builder().build(), table: ResourceTable::new() });
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let func = instance.get_typed_func(&mut store, "normalize-page").unwrap();
    (store, func)
}

fn normalize(c: &mut Criterion) {
    let (mut store, func) = wasm_normalizer();
    for object in ["issue", "project_merge_request"] {
        let page = bench::sample_pages(object, 1).remove(0);
        let mut group = c.benchmark_group(format!("normalize/{object}"));
        group.throughput(Throughput::Elements(100));
        group.bench_function("native", |b| b.iter(|| native(black_box(object), black_box(&page))));
        // Ten rounds per call, so that the call boundary (copying the page in) weighs as little as
        // it does in a real read-page call, where the body arrives through wasi:http instead.
        group.throughput(Throughput::Elements(1000));
        group.bench_function("wasm x10", |b| {
            b.iter(|| {
                let (result,) = func.call(&mut store, (object.to_owned(), page.clone(), 10)).unwrap();
                black_box(result.unwrap())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, normalize);
criterion_main!(benches);
