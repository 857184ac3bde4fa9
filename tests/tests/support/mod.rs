//! What every integration test needs: the real artifacts (built once), the simulator, and a way to run
//! the real `host` binary.
//!
//! The artifacts are built by cargo itself on first use (a no-op when they are fresh), so
//! `cargo test --release` needs no other step: `gitlab.wasm` and the hostile `token_thief.wasm` for
//! wasm32-wasip2, and the `host` binary, all in the release profile the tests run in.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gitlab_sim::{SimConfig, Simulator, WorldShape};

/// Paths of the built artifacts.
pub struct Artifacts {
    pub host: PathBuf,
    pub gitlab_wasm: PathBuf,
    pub token_thief_wasm: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_owned()
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .arg("build")
        .arg("--release")
        .args(args)
        .current_dir(workspace())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(status.success(), "cargo build --release {} failed", args.join(" "));
}

/// Build (once per test process) and locate the artifacts.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        cargo_build(&["--target", "wasm32-wasip2", "-p", "gitlab-connector", "-p", "token-thief"]);
        // The workspace's default members, as `cargo xtask build` builds them: one feature set, one host binary.
        cargo_build(&[]);
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from);
        let artifacts = Artifacts {
            host: target.join("release/host"),
            gitlab_wasm: target.join("wasm32-wasip2/release/gitlab.wasm"),
            token_thief_wasm: target.join("wasm32-wasip2/release/token_thief.wasm"),
        };
        for path in [&artifacts.host, &artifacts.gitlab_wasm, &artifacts.token_thief_wasm] {
            assert!(path.exists(), "{} was not built", path.display());
        }
        artifacts
    })
}

/// The token the simulators of these tests require.
pub const TOKEN: &str = "glpat-test-7f3a9c2e1b";

/// A simulator of the standard world that requires [`TOKEN`].
pub fn simulator() -> Simulator {
    Simulator::start(SimConfig { seed: 42, token: Some(TOKEN.into()), world: WorldShape::standard() })
        .expect("starting the simulator")
}

/// The output of one `host` invocation.
pub struct HostRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl HostRun {
    /// Everything the host printed.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run the real `host` binary with `args`, `GITLAB_TOKEN` set to `token` (unset when none).
pub fn host(args: &[&str], token: Option<&str>) -> HostRun {
    let mut command = Command::new(&artifacts().host);
    command.args(args).env_remove("GITLAB_TOKEN").env_remove("GITLAB_OAUTH_TOKEN").env_remove("HOST_PLUGIN");
    if let Some(token) = token {
        command.env("GITLAB_TOKEN", token);
    }
    let output = command.output().expect("running host");
    HostRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `host run --plugin gitlab.wasm --base-url SIM ...rest`.
pub fn host_run(sim: &Simulator, rest: &[&str], token: Option<&str>) -> HostRun {
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let base = sim.base_url();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base];
    args.extend_from_slice(rest);
    host(&args, token)
}

/// A fresh temporary folder, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("gitlab-host-test").tempdir().expect("a temporary folder")
}

/// Read a JSONL file into JSON values.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"))).collect()
}

/// Every record of `object` in the JSONL destination folder `dir`: its published parts
/// (`DIR/OBJECT/RUN-SCOPE.jsonl`), in name order.
pub fn read_jsonl_object(dir: &Path, object: &str) -> Vec<serde_json::Value> {
    let folder = dir.join(object);
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    parts.sort();
    parts.iter().flat_map(|p| read_jsonl(p)).collect()
}

/// An RFC 3339 UTC date-time with milliseconds, as the connector writes them.
pub fn is_utc_millis(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && text.chars().filter(char::is_ascii_digit).count() == 17
}

/// A GitLab date-time normalized as the connector does: UTC, milliseconds.
pub fn utc_millis(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
