//! What the benchmarks share: realistic GitLab pages from the simulator's world, and the artifacts
//! (the benchmark-only `normalizer.wasm` component) built on first use.
//!
//! - `benches/normalize.rs` (criterion): the connector's parse-and-normalize path, natively and in
//!   wasm, on the same pages ([`normalizer`]); `bin/instructions.rs`: the same, counted in
//!   instructions by callgrind.
//! - `benches/instantiate.rs` (criterion): a fresh store and instance of `gitlab.wasm` from the
//!   pooling allocator, as the host makes one per partition.
//! - `bin/e2e.rs`: the real host against the simulator; [`sqlite_alone`] is its ceiling for a run
//!   into SQLite (the same rows inserted by SQLite with nothing else running).

pub mod normalizer;
pub mod sqlite_alone;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gitlab_sim::{World, WorldShape};

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ lives in the workspace").to_owned()
}

/// The release `target/` folder of the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

/// Build the wasm32-wasip2 packages `packages` in release (a no-op when fresh).
pub fn build_wasm(packages: &[&str]) -> Result<()> {
    build_wasm_in(packages, &target_dir())
}

/// Build the benchmark-only component `package` in a target folder of its own, and return its path.
///
/// The normalizer links the connector without its component exports, and cargo writes a library's
/// cdylib even when it builds it as a dependency: in the shared target folder that would overwrite
/// `gitlab.wasm` with one the host refuses.
pub fn build_wasm_apart(package: &str) -> Result<PathBuf> {
    let target = target_dir().join("bench-wasm");
    build_wasm_in(&[package], &target)?;
    Ok(target.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_"))))
}

fn build_wasm_in(packages: &[&str], target: &Path) -> Result<()> {
    let mut command = xtask::cargo();
    command.args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"]).current_dir(workspace());
    command.arg("--target-dir").arg(target);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --target wasm32-wasip2 {packages:?} failed");
    }
    Ok(())
}

/// Pages of 100 GitLab records of `object` (`issue` or `project_merge_request`), as GitLab sends them,
/// from the standard world's big project.
pub fn sample_pages(object: &str, pages: usize) -> Vec<Vec<u8>> {
    let world = World::generate(42, &WorldShape::standard());
    let project = world.project_by_ref(gitlab_sim::BIG_PROJECT).expect("the standard world has its big project");
    let records = match object {
        "issue" => world.issues(project.id),
        "project_merge_request" => world.merge_requests(project.id),
        other => panic!("no sample pages of '{other}'"),
    };
    records.chunks(100).take(pages).map(|chunk| serde_json::to_vec(chunk).expect("JSON values serialize")).collect()
}
