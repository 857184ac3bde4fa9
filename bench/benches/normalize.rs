//! The connector's parse-and-normalize path (GitLab JSON page in, typed NDJSON out), natively and
//! compiled to wasm, on the same pages: the cost of the sandbox on the connector's own work. In wasm
//! twice: as compiled by default, and with the epoch checks the host compiles plugins with.
//!
//! `cargo bench -p bench --bench normalize`

use std::hint::black_box;

use bench::normalizer::{WasmNormalizer, engine, native};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmtime::component::Component;

fn wasm_normalizer(epochs: bool) -> WasmNormalizer {
    let path = bench::build_wasm_apart("normalizer").unwrap();
    let engine = engine(epochs);
    let component = Component::from_file(&engine, &path).unwrap();
    WasmNormalizer::new(&engine, &component).unwrap()
}

fn normalize(c: &mut Criterion) {
    let mut plain = wasm_normalizer(false);
    let mut with_epochs = wasm_normalizer(true);
    for object in ["issue", "project_merge_request"] {
        let page = bench::sample_pages(object, 1).remove(0);
        let mut group = c.benchmark_group(format!("normalize/{object}"));
        group.throughput(Throughput::Elements(100));
        group.bench_function("native", |b| b.iter(|| native(black_box(object), black_box(&page))));
        // Ten rounds per call, so that the call boundary (copying the page in) weighs as little as
        // it does in a real read-page call, where the body arrives through wasi:http instead.
        group.throughput(Throughput::Elements(1000));
        for (name, normalizer) in [("wasm x10", &mut plain), ("wasm x10, epoch checks", &mut with_epochs)] {
            group.bench_function(name, |b| {
                b.iter(|| black_box(normalizer.normalize(object, page.clone(), 10).unwrap()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, normalize);
criterion_main!(benches);
