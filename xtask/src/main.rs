//! The project's recipes, run as `cargo xtask <recipe>`:
//!
//! - `build`: `gitlab.wasm` (wasm32-wasip2), and the `host` and `gitlab-sim` binaries, all in release;
//! - `demo`: build, start the GitLab simulator, sync a group's projects, issues and merge requests into
//!   SQLite with `host run`, and show what arrived.
//!
//! They are Rust so that a fresh machine with only rustup's Rust can run them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let recipe = std::env::args().nth(1).unwrap_or_default();
    match recipe.as_str() {
        "build" => build(),
        "demo" => demo(),
        _ => {
            eprintln!("usage: cargo xtask build | demo");
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = xtask::cargo().args(args).current_dir(root()).status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Build the component and the two binaries.
fn build() -> Result<()> {
    cargo(&["build", "--release", "--target", "wasm32-wasip2", "-p", "gitlab-connector"])?;
    // The default members (host, gitlab-sim, ...), exactly as the test harness builds them, so that the
    // demo and the tests share one host binary and one feature set.
    cargo(&["build", "--release"])
}

/// Kills the simulator when the demo ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo() -> Result<()> {
    build()?;
    let root = root();
    let host = root.join("target/release/host");
    let plugin = root.join("target/wasm32-wasip2/release/gitlab.wasm");
    let out = root.join("demo-out");
    std::fs::create_dir_all(&out)?;
    let db = out.join("gitlab.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let token = "demo-token-not-a-secret";
    let mut sim = Running(
        Command::new(root.join("target/release/gitlab-sim"))
            .args(["--port", "0", "--seed", "42", "--shape", "small", "--token", token])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the GitLab simulator")?,
    );
    let mut first_line = String::new();
    BufReader::new(sim.0.stdout.take().context("simulator stdout")?).read_line(&mut first_line)?;
    let base_url = first_line
        .trim()
        .strip_prefix("listening on ")
        .context("the simulator did not say where it listens")?
        .to_owned();
    println!("== GitLab simulator at {base_url}\n");

    let dest = format!("sqlite:{}", db.display());
    let run = |extra: &[&str]| -> Result<()> {
        let mut args = vec!["run", "--plugin", plugin.to_str().unwrap(), "--base-url", &base_url, "--dest", &dest];
        args.extend_from_slice(extra);
        println!("$ host {}", args.join(" "));
        let status = Command::new(&host).args(&args).env("GITLAB_TOKEN", token).status()?;
        if !status.success() {
            bail!("host run failed");
        }
        println!();
        Ok(())
    };
    run(&["--object", "project", "--group", "demo"])?;

    let conn = rusqlite::Connection::open(&db)?;
    let projects: Vec<String> = conn
        .prepare("SELECT path_with_namespace FROM project ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut args = vec!["--object", "issue", "--object", "project_merge_request"];
    for p in &projects {
        args.extend(["--project", p.as_str()]);
    }
    run(&args)?;

    println!("== What arrived in {}", db.display());
    for table in ["project", "issue", "project_merge_request"] {
        let count: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        println!("{table:<22} {count:>6} rows");
    }
    println!("\nIssues per project and state:");
    let mut stmt = conn.prepare(
        "SELECT p.path_with_namespace, i.state, count(*) FROM issue i JOIN project p ON p.id = i.project_id \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (project, state, count) = row?;
        println!("  {project:<20} {state:<8} {count:>5}");
    }
    println!("\nThe three most recently updated issues:");
    let mut stmt = conn.prepare(
        "SELECT json_extract(\"references\", '$.full'), updated_at, title, json_extract(author, '$.name') \
         FROM issue ORDER BY updated_at DESC LIMIT 3",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })? {
        let (reference, updated, title, author) = row?;
        println!("  {reference:<22} {updated}  {title}  ({author})");
    }
    println!("\nExplore it: sqlite3 {}", db.display());
    drop(sim);
    Ok(())
}
