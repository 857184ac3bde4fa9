//! What every integration test needs: the real artifacts (built once), the simulator, and a way to run
//! the real `host` binary.
//!
//! The artifacts are built by cargo itself on first use (a no-op when they are fresh), so
//! `cargo test --release` needs no other step: `gitlab.wasm` and the hostile `token_thief.wasm` and
//! `hostile.wasm` for wasm32-wasip2, and the `host` binary, all in the release profile the tests run in.
//! Every `host` run shares one cache of compiled plugins under `target/` (not the user's own cache).

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gitlab_sim::{SimConfig, Simulator, WorldShape};
use serde_json::Value;

/// Paths of the built artifacts.
pub struct Artifacts {
    pub host: PathBuf,
    pub gitlab_wasm: PathBuf,
    pub token_thief_wasm: PathBuf,
    pub hostile_wasm: PathBuf,
    /// The cache of compiled plugins the tests' `host` runs share.
    pub cache_dir: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_owned()
}

fn cargo_build(args: &[&str]) {
    // Without this test's package variables, which would make the build rebuild ring and what uses it.
    let status = xtask::cargo()
        .arg("build")
        .arg("--release")
        .args(args)
        .current_dir(workspace())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(status.success(), "cargo build --release {} failed", args.join(" "));
}

/// Build (once per test process) and locate the artifacts.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        cargo_build(&["--target", "wasm32-wasip2", "-p", "gitlab-connector", "-p", "token-thief", "-p", "hostile"]);
        // The workspace's default members, as `cargo xtask build` builds them: one feature set, one host binary.
        cargo_build(&[]);
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from);
        let artifacts = Artifacts {
            host: target.join("release/host"),
            gitlab_wasm: target.join("wasm32-wasip2/release/gitlab.wasm"),
            token_thief_wasm: target.join("wasm32-wasip2/release/token_thief.wasm"),
            hostile_wasm: target.join("wasm32-wasip2/release/hostile.wasm"),
            cache_dir: target.join("test-plugin-cache"),
        };
        for path in [&artifacts.host, &artifacts.gitlab_wasm, &artifacts.token_thief_wasm, &artifacts.hostile_wasm] {
            assert!(path.exists(), "{} was not built", path.display());
        }
        artifacts
    })
}

/// The token the simulators of these tests require.
pub const TOKEN: &str = "glpat-test-7f3a9c2e1b";

/// A simulator of the standard world that requires [`TOKEN`].
pub fn simulator() -> Simulator {
    simulator_of(WorldShape::standard())
}

/// A simulator of the standard world with `issues` issues in `bigco/monorepo` (12,345 in the standard
/// world), that requires [`TOKEN`].
pub fn simulator_with_big_issues(issues: usize) -> Simulator {
    let mut world = WorldShape::standard();
    world.bigco.as_mut().expect("the standard world has bigco/monorepo").issues = issues;
    simulator_of(world)
}

/// A simulator of the small world (`acme` with 5 projects in two groups, `demo` with 3) that
/// requires [`TOKEN`].
pub fn small_simulator() -> Simulator {
    simulator_of(WorldShape::small())
}

/// A simulator of `world` (seed 42) that requires [`TOKEN`].
fn simulator_of(world: WorldShape) -> Simulator {
    Simulator::start(SimConfig { seed: 42, token: Some(TOKEN.into()), world, ..SimConfig::default() })
        .expect("starting the simulator")
}

/// The output of one `host` invocation.
pub struct HostRun {
    pub success: bool,
    /// The exit status; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for HostRun {
    fn from(output: std::process::Output) -> HostRun {
        HostRun {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl HostRun {
    /// Everything the host printed.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The `error: ...` line the host printed; panics with everything it printed when there is none.
    pub fn error_line(&self) -> &str {
        self.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{}", self.output()))
    }
}

/// Run the real `host` binary with `args`, `GITLAB_TOKEN` set to `token` (unset when none).
pub fn host(args: &[&str], token: Option<&str>) -> HostRun {
    host_with_env(args, token, &[])
}

/// [`host`], with more environment variables (`HOST_LOG`, `HOST_CACHE_DIR`...).
pub fn host_with_env(args: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> HostRun {
    host_command(args, token, env).output().expect("running host").into()
}

/// [`host_with_env`], failing the test if the host has not ended within `limit` (it is killed): for
/// a run that could hang.
pub fn host_within(limit: Duration, args: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> HostRun {
    let mut child =
        host_command(args, token, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running host");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for host") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = HostRun {
        success: status.is_some_and(|s| s.success()),
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().expect("reading stdout"),
        stderr: stderr.join().expect("reading stderr"),
    };
    assert!(status.is_some(), "host still running after {limit:?}, killed: {}", run.output());
    run
}

/// The `host` command with `args`, `GITLAB_TOKEN` set to `token` (unset when none), and `env`.
pub fn host_command(args: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(&artifacts().host);
    command.args(args).env_remove("GITLAB_TOKEN").env_remove("GITLAB_OAUTH_TOKEN").env_remove("HOST_PLUGIN");
    command.env("HOST_CACHE_DIR", &artifacts().cache_dir);
    if let Some(token) = token {
        command.env("GITLAB_TOKEN", token);
    }
    command.envs(env.iter().copied());
    command
}

/// Send SIGINT to `child`, as Ctrl-C at a terminal does.
pub fn send_ctrl_c(child: &std::process::Child) {
    // SAFETY: kill(2) on the child's pid, which stays its own until the child is waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0, "kill -INT {}", child.id());
}

/// `host run --plugin gitlab.wasm --base-url SIM ...rest`.
pub fn host_run(sim: &Simulator, rest: &[&str], token: Option<&str>) -> HostRun {
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let base = sim.base_url();
    let mut args = vec!["run", "--plugin", &plugin, "--base-url", &base];
    args.extend_from_slice(rest);
    host(&args, token)
}

/// A PostgreSQL that accepts connections and never answers, until released.
pub struct SilentServer {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let (release, released) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while released.try_recv().is_err() {
                match listener.accept() {
                    Ok((connection, _)) => {
                        held.push(connection);
                        counted.store(held.len(), Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // Dropped here: every connection closed, and the port with them.
        });
        SilentServer { port, connections, release, thread }
    }

    /// The connections it holds.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Close every connection and stop listening; the number of connections it held.
    pub fn release(self) -> usize {
        let _ = self.release.send(());
        self.thread.join().unwrap();
        self.connections.load(Ordering::SeqCst)
    }
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
/// (`DIR/OBJECT/RUN-SCOPE.jsonl`), in name order; none when no part of it was published.
pub fn read_jsonl_object(dir: &Path, object: &str) -> Vec<serde_json::Value> {
    let folder = dir.join(object);
    if !folder.exists() {
        return Vec::new();
    }
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

/// The record fields `host describe OBJECT --json` declares, with their types (`integer`, ...);
/// asked once per object and test process.
pub fn field_types(object: &str) -> HashMap<String, String> {
    static DESCRIBED: Mutex<Option<HashMap<String, HashMap<String, String>>>> = Mutex::new(None);
    if let Some(types) = DESCRIBED.lock().unwrap().get_or_insert_default().get(object) {
        return types.clone();
    }
    let types = describe_fields(object);
    DESCRIBED.lock().unwrap().get_or_insert_default().insert(object.to_owned(), types.clone());
    types
}

fn describe_fields(object: &str) -> HashMap<String, String> {
    let run = host(&["describe", "--plugin", artifacts().gitlab_wasm.to_str().unwrap(), object, "--json"], None);
    assert!(run.success, "{}", run.output());
    let schema: Value = serde_json::from_str(&run.stdout).unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["filter_only"] == false)
        .map(|f| (f["name"].as_str().unwrap().to_owned(), f["type"].as_str().unwrap().to_owned()))
        .collect()
}

/// Whether `value` has the declared `kind` (a type name of `host describe --json`), or is null.
pub fn has_type(value: &Value, kind: &str) -> bool {
    value.is_null()
        || match kind {
            "integer" => value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "string" => value.is_string(),
            "date" => value
                .as_str()
                .is_some_and(|s| s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            "date-time" => value.as_str().is_some_and(is_utc_millis),
            "struct" => value.is_object(),
            "list" => value.is_array(),
            other => panic!("unknown type {other}"),
        }
}

/// Every record has exactly the schema's record fields, each of its declared type (or null).
pub fn assert_typed(object: &str, records: &[Value]) {
    assert_typed_as(object, &field_types(object), records);
}

/// [`assert_typed`] against already fetched field types.
pub fn assert_typed_as(object: &str, types: &HashMap<String, String>, records: &[Value]) {
    for record in records {
        let map = record.as_object().unwrap();
        assert_eq!(map.len(), types.len(), "{object} record has {} fields, schema {}", map.len(), types.len());
        for (field, value) in map {
            let kind = types.get(field).unwrap_or_else(|| panic!("{object}.{field} is not in the schema"));
            assert!(has_type(value, kind), "{object}.{field} should be {kind}, is {value}");
        }
    }
}

/// GitLab's value of a field as the connector must write it for the declared type: date-times
/// in UTC with milliseconds, dates as `YYYY-MM-DD`, integers as integers (numeric strings too),
/// booleans and numbers as they are, structs and lists as they came; absent is null. Written
/// here from the contract, independently of the connector's code.
pub fn normalized(value: Option<&Value>, kind: &str) -> Value {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Value::Null };
    match (kind, value) {
        ("date-time", Value::String(s)) => Value::String(utc_millis(s)),
        ("date", Value::String(s)) => Value::String(s[..10].to_owned()),
        ("integer", Value::String(s)) => Value::from(s.trim().parse::<i64>().unwrap()),
        ("string", Value::Bool(_) | Value::Number(_)) => Value::String(value.to_string()),
        _ => value.clone(),
    }
}

/// The primary key values of a record, as text.
pub fn key_of(record: &Value, key: &[String]) -> String {
    key.iter().map(|k| record[k].to_string()).collect::<Vec<_>>().join("|")
}

/// The `id`s in a SQLite table.
pub fn sqlite_ids(db: &Path, table: &str) -> BTreeSet<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.prepare(&format!("SELECT id FROM {table}"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
