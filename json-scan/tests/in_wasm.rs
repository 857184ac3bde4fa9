//! The scanner's own unit tests, run again as the plugin runs the scanner: compiled to
//! wasm32-wasip2 (with simd128, as `.cargo/config.toml` builds plugins) and run in wasmtime.
//!
//! The 16-byte masks have one version per instruction set (`runs.rs`): natively the unit tests
//! check the SSE2 one against the byte-by-byte reference; this checks the wasm one, which the
//! connector runs on every page, the same way.
//!
//! ```text
//!  cargo test --no-run --target wasm32-wasip2 -p json-scan (a target folder of its own: the outer
//!  cargo holds the workspace's) ──► the test harness, a wasi:cli command ──► wasmtime, one thread
//! ```

use std::path::{Path, PathBuf};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command as WasiCommand;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Wasi {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

#[test]
fn the_unit_tests_pass_in_wasm_too() {
    let harness = build_test_harness();
    let engine = Engine::new(Config::new().wasm_component_model(true)).expect("a wasmtime engine");
    let component = Component::from_file(&engine, &harness).expect("the test harness is a component");
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI in the linker");
    // wasm has no threads: the harness runs its tests one after another on the only one.
    let ctx = WasiCtx::builder().inherit_stdout().inherit_stderr().args(&["json-scan", "--test-threads=1"]).build();
    let mut store = Store::new(&engine, Wasi { ctx, table: ResourceTable::new() });
    let command = WasiCommand::instantiate(&mut store, &component, &linker).expect("instantiating the harness");
    let outcome = command.wasi_cli_run().call_run(&mut store);
    let code = match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            // A failed assertion aborts the harness (wasm has no unwinding): its message is above.
            None => panic!("the unit tests trapped in wasm: {error:?}"),
        },
    };
    assert_eq!(code, 0, "the unit tests failed in wasm (their output is above)");
}

/// Build json-scan's unit-test harness for wasm32-wasip2 and return the path of its `.wasm`.
fn build_test_harness() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("json-scan/ lives in the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from)
        .join("json-scan-wasm-tests");
    let output = xtask::cargo()
        .args(["test", "--release", "--no-run", "--lib", "--target", "wasm32-wasip2", "-p", "json-scan"])
        .args(["--message-format", "json"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace)
        .output()
        .expect("running cargo");
    assert!(
        output.status.success(),
        "building json-scan's tests for wasm32-wasip2 failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The compiler-artifact message of the test harness names its executable.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["profile"]["test"] == true)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the test harness it built")
}
