//! Instructions per page of the connector's parse-and-normalize path, natively and in wasm (with and
//! without the epoch checks the host compiles plugins with), counted by valgrind's callgrind.
//!
//! Wall-clock benchmarks on a shared 2-core machine drift by up to 2x from minute to minute;
//! instruction counts do not, so a change to the hot path can be judged in one run. Each figure is
//! the difference between 21 rounds and 1 round over the same page, divided by 20: start-up, page
//! generation and compilation (done beforehand: the component is loaded precompiled) cancel out.
//!
//! `cargo run --release -p bench --bin instructions` (needs `valgrind` on the PATH)

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use bench::normalizer::{WasmNormalizer, engine, native};
use wasmtime::component::Component;

/// How each figure runs the path: natively, or in wasm without or with epoch checks.
const MODES: [&str; 3] = ["native", "wasm", "wasm-epochs"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [once, mode, object, page, rounds] if once == "--once" => {
            run_once(mode, object, Path::new(page), rounds.parse()?)
        }
        [flag, mode, component] if flag == "--precompile" => precompile(mode, Path::new(component)),
        [] => report(),
        _ => bail!("usage: instructions (it runs itself under valgrind)"),
    }
}

/// Count every figure, each from two runs of this program under callgrind.
fn report() -> Result<()> {
    let work = bench::target_dir().join("bench-instructions");
    std::fs::create_dir_all(&work)?;
    let normalizer = bench::build_wasm_apart("normalizer")?;
    let normalizer = normalizer.to_str().context("the component's path is not UTF-8")?;
    for mode in &MODES[1..] {
        // Compiled under valgrind too: Cranelift uses the CPU features it finds, and valgrind's
        // virtual CPU has fewer than most machines (no AVX-512), so code compiled outside it would
        // be refused inside it.
        valgrind("none", &["--precompile", mode, normalizer])?;
    }
    println!("instructions per page of 100 records (callgrind: 21 rounds less 1, over 20)");
    for object in ["issue", "project_merge_request"] {
        let page = work.join(format!("{object}.json"));
        std::fs::write(&page, bench::sample_pages(object, 1).remove(0))?;
        let mut native = f64::NAN;
        for mode in MODES {
            let per_page = (count(mode, object, &page, 21)? - count(mode, object, &page, 1)?) as f64 / 20.0;
            if mode == "native" {
                native = per_page;
            }
            println!("{object:>22}  {mode:<12} {:>6.2} M  {:.2}x native", per_page / 1e6, per_page / native);
        }
    }
    Ok(())
}

/// The instructions callgrind counted over one run of [`run_once`].
fn count(mode: &str, object: &str, page: &Path, rounds: u32) -> Result<u64> {
    let page = page.to_str().context("the page's path is not UTF-8")?;
    let stderr = valgrind("callgrind", &["--once", mode, object, page, &rounds.to_string()])?;
    // "==123== Collected : 135524173"
    stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no instruction count in valgrind's output: {stderr}"))
}

/// Run this program with `args` under valgrind's `tool`; what valgrind printed.
fn valgrind(tool: &str, args: &[&str]) -> Result<String> {
    let output = Command::new("valgrind")
        .arg(format!("--tool={tool}"))
        .args((tool == "callgrind").then_some("--callgrind-out-file=/dev/null"))
        .arg(std::env::current_exe()?)
        .args(args)
        .output()
        .context("cannot run valgrind (is it installed?)")?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!("valgrind failed: {stderr}");
    }
    Ok(stderr)
}

/// Compile the normalizer `component` for `mode` into the work folder, for the CPU this runs on.
fn precompile(mode: &str, component: &Path) -> Result<()> {
    let normalizer = std::fs::read(component)?;
    let compiled = engine(mode == "wasm-epochs").precompile_component(&normalizer)?;
    std::fs::write(bench::target_dir().join("bench-instructions").join(format!("{mode}.cwasm")), compiled)?;
    Ok(())
}

/// Normalize the page in `page` (a file) `rounds` times, as `mode` says.
fn run_once(mode: &str, object: &str, page: &Path, rounds: u32) -> Result<()> {
    let page = std::fs::read(page)?;
    if mode == "native" {
        for _ in 0..rounds {
            std::hint::black_box(native(object, &page));
        }
        return Ok(());
    }
    let engine = engine(mode == "wasm-epochs");
    let compiled = bench::target_dir().join("bench-instructions").join(format!("{mode}.cwasm"));
    // SAFETY: the file was written by `precompile_component` of an engine configured as this one,
    // in this run of `report`.
    let component = unsafe { Component::deserialize_file(&engine, &compiled)? };
    WasmNormalizer::new(&engine, &component)?.normalize(object, page, rounds)?;
    Ok(())
}
