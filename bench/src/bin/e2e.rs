//! The end-to-end figures of BENCHMARKS.md: the real `host` binary and `gitlab.wasm` against the
//! simulator, each figure next to its goal.
//!
//! ```text
//!  cargo run --release -p bench --bin e2e [-- --records N --runs R --tenants T --only SECTION --host PATH --plugin PATH]
//!    1. throughput, 0 ms latency: host run (JSONL, SQLite) vs a raw fetch of the same pages with the
//!       same client stack (hyper, keep-alive, gzip), no wasm, no destination; and into JSONL on
//!       tmpfs (/dev/shm, where there is one): the same run without the disk's write path; and SQLite
//!       alone: each round's database replayed by SQLite with nothing else running, its ceiling
//!    2. requests made vs the minimum (ceil(records/100) + scope resolution)
//!    3. 50 ms latency: wall time of 150 one-page partitions at 1, 4, 16, 64 at once; of a group
//!       of 2,000 projects, 64 at once, whose listing takes 20 pages one after the other; and of a
//!       flow naming 20 projects, 8 at once (20 lookups while planning)
//!    4. a simulator rate limit: requests per minute achieved, and 429s
//!    5. peak RSS of the host over the largest sync; sandbox instantiation (from the host's debug log);
//!       start from the on-disk component cache
//!    6. T tenants (default 1,000), one partition each, all at once: wall time, records/s, peak RSS
//!    7. file formats: N issues into JSONL, CSV and Parquet (the last two rendered from the part's
//!       spool when it is published): records/s, the destination's CPU, peak RSS
//! ```
//!
//! SECTION is one of `throughput`, `latency`, `rate`, `cold`, `tenants`, `formats`. In section 1 the simulator
//! is warmed by one untimed read first, so that every timed read (raw or through the host) gets the
//! same pre-rendered pages from its answer cache, and the host by one untimed run (its component
//! cache filled). Then each of `--runs` rounds is a raw fetch followed by a host run into each
//! destination, and each host run's ratio is taken against its own round's raw fetch: the machine's
//! speed drifts from minute to minute, and a raw phase then a host phase measured that drift too.
//!
//! Every figure is the median of `--runs` runs (default 3). The host is the one `cargo xtask build`
//! builds (target/release/host), so build first; `--host PATH` and `--plugin PATH` measure other
//! builds of the host and of gitlab.wasm (an earlier commit's, to compare).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use gitlab_sim::{BigShape, Faults, GroupShape, RateLimit, SimConfig, Simulator, WorldShape};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

const TOKEN: &str = "glpat-bench";

struct Options {
    records: usize,
    runs: usize,
    /// How many tenants section 6 runs at once.
    tenants: usize,
    /// Only this section; all of them when `None`.
    only: Option<String>,
    /// The host binary, when not target/release/host.
    host: Option<PathBuf>,
    /// The plugin, when not target/wasm32-wasip2/release/gitlab.wasm.
    plugin: Option<PathBuf>,
}

const SECTIONS: [&str; 6] = ["throughput", "latency", "rate", "cold", "tenants", "formats"];

fn main() -> Result<()> {
    let mut options = Options { records: 100_000, runs: 3, tenants: 1000, only: None, host: None, plugin: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag").and_then(|v| Ok(v.parse::<usize>()?));
        match arg.as_str() {
            "--records" => options.records = value()?,
            "--runs" => options.runs = value()?.max(1),
            "--tenants" => options.tenants = value()?.max(1),
            "--only" => match args.next() {
                Some(section) if SECTIONS.contains(&section.as_str()) => options.only = Some(section),
                other => bail!("--only takes one of {SECTIONS:?}, not {other:?}"),
            },
            "--host" => options.host = Some(args.next().context("a path after --host")?.into()),
            "--plugin" => options.plugin = Some(args.next().context("a path after --plugin")?.into()),
            "--bench" => {} // what `cargo bench` passes
            other => {
                bail!(
                    "unknown argument {other}: use --records N, --runs R, --tenants T, --only SECTION, --host PATH, \
                     --plugin PATH"
                )
            }
        }
    }
    // The normalize bench's component builds the connector's library without its exports, over the
    // same gitlab.wasm: build the real one again (a no-op when it is fresh).
    bench::build_wasm(&["gitlab-connector"])?;
    let target = bench::target_dir();
    let host = options.host.clone().unwrap_or_else(|| target.join("release/host"));
    let plugin = options.plugin.clone().unwrap_or_else(|| target.join("wasm32-wasip2/release/gitlab.wasm"));
    for path in [&host, &plugin] {
        if !path.exists() {
            bail!("{} is missing: run `cargo xtask build` first", path.display());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let memory = Path::new(SHARED_MEMORY).is_dir().then(|| tempfile::tempdir_in(SHARED_MEMORY)).transpose()?;
    let bench = Bench { host, plugin, runs: options.runs, work: tempfile::tempdir()?, memory };
    println!("# end-to-end figures ({} runs each, medians)", options.runs);
    let wanted = |section: &str| options.only.as_deref().is_none_or(|only| only == section);
    if wanted("throughput") {
        bench.throughput(&runtime, options.records)?;
    }
    if wanted("latency") {
        bench.latency_scaling()?;
    }
    if wanted("rate") {
        bench.rate_limited()?;
    }
    if wanted("cold") {
        bench.cold_start()?;
    }
    if wanted("tenants") {
        bench.tenants(options.tenants)?;
    }
    if wanted("formats") {
        bench.formats(options.records)?;
    }
    Ok(())
}

/// Where a tmpfs is on Linux: section 1 writes JSONL there too, to tell the host's own cost from the
/// disk's (ext4 here: each page's write into the page cache and its writeback).
const SHARED_MEMORY: &str = "/dev/shm";

struct Bench {
    host: PathBuf,
    plugin: PathBuf,
    runs: usize,
    work: tempfile::TempDir,
    /// A folder on tmpfs, if there is one.
    memory: Option<tempfile::TempDir>,
}

/// What one `host run` reported.
struct HostFigures {
    wall: Duration,
    summary: Value,
    stderr: String,
}

impl Bench {
    fn host_run(&self, sim: &Simulator, args: &[&str], env: &[(&str, &str)]) -> Result<HostFigures> {
        let summary_path = self.work.path().join("summary.json");
        let mut command = Command::new(&self.host);
        command.args(["run", "--plugin", self.plugin.to_str().unwrap(), "--base-url", &sim.base_url()]);
        command.args(args).args(["--summary-json", summary_path.to_str().unwrap()]);
        command.env("GITLAB_TOKEN", TOKEN).env("HOST_CACHE_DIR", self.work.path().join("cache"));
        command.envs(env.iter().copied());
        let started = Instant::now();
        let output = command.output().context("running host")?;
        let wall = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            bail!("host run {args:?} failed: {stderr}");
        }
        let summary = serde_json::from_slice(&std::fs::read(&summary_path)?)?;
        Ok(HostFigures { wall, summary, stderr })
    }

    /// A fresh destination argument of `kind` (`jsonl`, `sqlite`, or `jsonl-tmpfs`: JSONL into the
    /// folder on tmpfs).
    fn dest(&self, kind: &str, run: usize) -> String {
        let path = self.work.path().join(format!("out-{kind}-{run}"));
        match (kind, &self.memory) {
            ("sqlite", _) => format!("sqlite:{}.db", path.display()),
            ("jsonl-tmpfs", Some(memory)) => format!("jsonl:{}", memory.path().join(format!("out-{run}")).display()),
            _ => format!("{kind}:{}", path.display()),
        }
    }

    fn throughput(&self, runtime: &tokio::runtime::Runtime, records: usize) -> Result<()> {
        let sim = big_project(records)?;
        let project = sim.world().project_by_ref(gitlab_sim::BIG_PROJECT).unwrap().id;
        let url = format!("{}/api/v4/projects/{project}/issues?per_page=100", sim.base_url());

        // Warm: the simulator renders and gzips each page once, then serves it from its cache; the
        // host compiles the plugin into its component cache once (cold starts are section 4's).
        runtime.block_on(raw_fetch(&url))?;
        let kinds: Vec<&str> = ["jsonl", "sqlite", "jsonl-tmpfs"]
            .into_iter()
            .filter(|kind| *kind != "jsonl-tmpfs" || self.memory.is_some())
            .collect();
        let (_, compiling, _) = self.issues_into(&sim, "jsonl", self.runs, records)?;

        // Rounds: a raw fetch, then a host run into each destination. This machine's speed drifts
        // from minute to minute; each ratio is taken against the raw fetch of its own round.
        let mut raw_rates = Vec::new();
        let mut rates = vec![Vec::new(); kinds.len()];
        let mut ratios = vec![Vec::new(); kinds.len()];
        // The destination's CPU (writer and committer threads) over the run's wall time, and the
        // whole host process's and the simulator's.
        let mut busy = vec![Vec::new(); kinds.len()];
        let mut machine = vec![Vec::new(); kinds.len()];
        let mut first = None;
        let mut alone = Vec::new();
        let mut raw_busy = Vec::new();
        for run in 0..self.runs {
            let before = own_cpu_seconds();
            let (fetched, wall) = runtime.block_on(raw_fetch(&url))?;
            raw_busy.push((own_cpu_seconds() - before) / wall.as_secs_f64());
            let raw_rate = fetched as f64 / wall.as_secs_f64();
            raw_rates.push(raw_rate);
            for (k, kind) in kinds.iter().enumerate() {
                let (rate, summary, simulator_cpu) = self.issues_into(&sim, kind, run, records)?;
                rates[k].push(rate);
                ratios[k].push(rate / raw_rate);
                let seconds = |key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
                busy[k].push(seconds("destination_cpu_seconds") / seconds("seconds"));
                machine[k]
                    .push((seconds("process_cpu_seconds") / seconds("seconds"), simulator_cpu / seconds("seconds")));
                first.get_or_insert(summary);
                if *kind == "sqlite" {
                    alone.push((rate, raw_rate, self.sqlite_alone(run)?));
                }
            }
        }
        println!("\n## 1. throughput at 0 ms latency: {records} issues of one project");
        println!(
            "raw fetch (hyper, keep-alive, gzip, JSON parsed, nothing written; pages from the simulator's cache): {:.0} records/s, using {:.2} s of CPU per second (client and simulator)",
            median(raw_rates),
            median(raw_busy)
        );
        for (k, kind) in kinds.iter().enumerate() {
            let into = match *kind {
                "jsonl-tmpfs" => format!("jsonl on tmpfs ({SHARED_MEMORY}: the disk's write path left out)"),
                _ => (*kind).to_owned(),
            };
            let (low, high) = ratios[k].iter().fold((f64::MAX, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
            println!(
                "host run into {into} (whole process): {:.0} records/s, {:.2} of the raw fetch (goal ≥ 0.8; each round's against its own raw fetch: {low:.2}–{high:.2}); per second of the run, the destination (its writer and committer threads) used {:.2} s of CPU, the whole host process {:.2} s and the simulator {:.2} s (of the machine's {})",
                median(rates[k].clone()),
                median(ratios[k].clone()),
                median(busy[k].clone()),
                median(machine[k].iter().map(|m| m.0).collect()),
                median(machine[k].iter().map(|m| m.1).collect()),
                std::thread::available_parallelism().map_or(1, usize::from)
            );
        }
        if !alone.is_empty() {
            let rows = alone[0].2.rows as f64;
            let inserting: Vec<f64> = alone.iter().map(|(_, _, r)| rows / r.inserting.as_secs_f64()).collect();
            let cpu: Vec<f64> = alone.iter().map(|(_, _, r)| r.cpu.as_secs_f64()).collect();
            let copying: Vec<f64> = alone.iter().map(|(_, _, r)| r.backfilling.as_secs_f64()).collect();
            let reached: Vec<f64> = alone.iter().map(|(rate, _, r)| rate * r.inserting.as_secs_f64() / rows).collect();
            let bound: Vec<f64> = alone.iter().map(|(_, raw, r)| rows / r.inserting.as_secs_f64() / raw).collect();
            println!(
                "SQLite alone (the run's rows inserted again as the destination does, its log copied by a second thread; nothing else running): {:.0} records/s, {:.2} s of CPU ({:.2} s copying the log); {:.2} of the raw fetch. The host into SQLite reaches {:.2} of it",
                median(inserting),
                median(cpu),
                median(copying),
                median(bound),
                median(reached)
            );
        }
        let summary = first.unwrap();
        let requests = summary["requests"].as_u64().unwrap_or(0);
        let minimum = (records as u64).div_ceil(100) + 1;
        println!(
            "\n## 2. requests: {requests} made, minimum {minimum} (ceil({records}/100) pages + 1 scope lookup): {:.3}× (goal ≤ 1.02×)",
            requests as f64 / minimum as f64
        );
        let mib = |summary: &Value| summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64;
        println!(
            "\n## 5a. peak RSS of the host over {records} records into JSONL: {:.1} MiB, {:.1} MiB on the first run, which compiles the plugin (goal ≤ 64 MiB at 1,000,000)",
            mib(&summary),
            mib(&compiling)
        );
        Ok(())
    }

    /// Section 7: `records` issues into each file format, one part each, in rounds. JSONL is published
    /// as it was spooled; CSV and Parquet are rendered from the spool when the part is published.
    fn formats(&self, records: usize) -> Result<()> {
        let sim = big_project(records)?;
        let kinds = ["jsonl", "csv", "parquet"];
        // Warm: the simulator's page cache and the host's component cache. Run numbers from 100 on,
        // so as not to write into section 1's folders.
        self.issues_into(&sim, "jsonl", 100, records)?;
        let mut figures = vec![Vec::new(); kinds.len()];
        for run in 0..self.runs {
            for (k, kind) in kinds.iter().enumerate() {
                let (rate, summary, _) = self.issues_into(&sim, kind, 101 + run, records)?;
                let figure = |key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
                figures[k].push((rate, figure("destination_cpu_seconds"), figure("peak_rss_bytes")));
            }
        }
        println!("\n## 7. file formats: {records} issues of one project, one part each");
        for (kind, runs) in kinds.iter().zip(figures) {
            println!(
                "{kind}: {:.0} records/s, the destination's CPU {:.2} s, peak RSS {:.1} MiB",
                median(runs.iter().map(|r| r.0).collect()),
                median(runs.iter().map(|r| r.1).collect()),
                median(runs.iter().map(|r| r.2).collect()) / (1 << 20) as f64,
            );
        }
        Ok(())
    }

    /// One `host run` of the big project's issues into a fresh destination of `kind`: its records/s,
    /// its summary, and the CPU the simulator (this process) used meanwhile.
    fn issues_into(&self, sim: &Simulator, kind: &str, run: usize, records: usize) -> Result<(f64, Value, f64)> {
        let dest = self.dest(kind, run);
        let before = own_cpu_seconds();
        let figures =
            self.host_run(sim, &["--object", "issue", "--project", gitlab_sim::BIG_PROJECT, "--dest", &dest], &[])?;
        let simulator_cpu = own_cpu_seconds() - before;
        let got = figures.summary["records"].as_u64().unwrap_or(0);
        if got != records as u64 {
            bail!("host run wrote {got} records, not {records}");
        }
        // What landed, not what the host says it read: a build that loses or repeats pages must not
        // pass for a fast one.
        let stored = stored_issues(&dest)?;
        if stored != (records, records) {
            bail!("host run into {dest} stored {} issues, {} distinct, not {records}", stored.0, stored.1);
        }
        if kind == "jsonl-tmpfs"
            && let Some(memory) = &self.memory
        {
            // Memory, not disk: give it back before the next run.
            std::fs::remove_dir_all(memory.path().join(format!("out-{run}"))).ok();
        }
        Ok((got as f64 / figures.wall.as_secs_f64(), figures.summary, simulator_cpu))
    }

    /// Round `run`'s database into SQLite, replayed by SQLite alone ([`bench::sqlite_alone`]).
    fn sqlite_alone(&self, run: usize) -> Result<bench::sqlite_alone::Replay> {
        let written = self.dest("sqlite", run);
        let written = Path::new(written.strip_prefix("sqlite:").expect("a SQLite destination"));
        let into = self.work.path().join(format!("alone-{run}.db"));
        bench::sqlite_alone::replay(written, "issue", &into)
    }

    fn latency_scaling(&self) -> Result<()> {
        let faults = Faults { latency: Duration::from_millis(50), ..Faults::default() };
        let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), faults, ..SimConfig::default() })?;
        let partitions = sim.world().projects_in_group(sim.world().group_by_ref("acme").unwrap().id, true).len();
        println!(
            "\n## 3. 50 ms latency: issues of the {partitions} projects of group acme (one page each), by partitions at once"
        );
        let (mut base, mut reading_base) = (None, None);
        for concurrency in [1, 4, 16, 64] {
            let mut walls = Vec::new();
            // The run less its planning (listing the group's projects, which more partitions at
            // once do not shorten), from the host's summary.
            let (mut readings, mut plannings) = (Vec::new(), Vec::new());
            let mut instantiation = Vec::new();
            for run in 0..self.runs {
                let dest = self.dest("jsonl", 1000 + concurrency * 10 + run);
                let n = concurrency.to_string();
                let figures = self.host_run(
                    &sim,
                    &["--object", "issue", "--group", "acme", "--concurrency", &n, "--dest", &dest],
                    &[("HOST_LOG", "warn,host::sandbox=debug")],
                )?;
                walls.push(figures.wall.as_secs_f64());
                let seconds = |key: &str| figures.summary[key].as_f64().unwrap_or(f64::NAN);
                plannings.push(seconds("planning_seconds"));
                readings.push(seconds("seconds") - seconds("planning_seconds"));
                instantiation.extend(instantiation_micros(&figures.stderr));
            }
            let (wall, reading) = (median(walls), median(readings));
            let speedup = base.get_or_insert(wall).to_owned() / wall;
            let reading_speedup = reading_base.get_or_insert(reading).to_owned() / reading;
            println!(
                "{concurrency:>3} at once: {wall:.2} s, {speedup:.1}× the speed of 1 (ideal {:.0}×: {partitions} partitions in {} rounds); after planning ({:.2} s): {reading:.2} s, {reading_speedup:.1}×; sandbox instantiation median {:.0} µs over {} sandboxes",
                partitions as f64 / partitions.div_ceil(concurrency) as f64,
                partitions.div_ceil(concurrency),
                median(plannings),
                median(instantiation.clone()),
                instantiation.len()
            );
        }
        self.named_projects(&sim)?;
        self.large_group()
    }

    /// A flow naming 20 projects of `sim`'s group acme, 8 at once: planning looks each up.
    fn named_projects(&self, sim: &Simulator) -> Result<()> {
        const NAMED: usize = 20;
        let world = sim.world();
        let paths: Vec<String> = world
            .projects_in_group(world.group_by_ref("acme").unwrap().id, true)
            .iter()
            .take(NAMED)
            .map(|p| p.path_with_namespace.clone())
            .collect();
        let (mut walls, mut plannings) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            let dest = self.dest("jsonl", 3000 + run);
            let mut args = vec!["--object", "issue", "--concurrency", "8", "--dest", &dest];
            for path in &paths {
                args.extend(["--project", path.as_str()]);
            }
            let figures = self.host_run(sim, &args, &[])?;
            walls.push(figures.wall.as_secs_f64());
            plannings.push(figures.summary["planning_seconds"].as_f64().unwrap_or(f64::NAN));
        }
        println!(
            "a flow naming {NAMED} projects, 8 at once: {:.2} s; planning {:.2} s ({NAMED} lookups of 50 ms: {:.2} s one after the other)",
            median(walls),
            median(plannings),
            NAMED as f64 * 0.05
        );
        Ok(())
    }

    /// A group of 2,000 projects (20 pages of listing, one after the other) at 50 ms latency, 64 at
    /// once: the projects of the first pages are read while the later ones are listed.
    fn large_group(&self) -> Result<()> {
        const PROJECTS: usize = 2000;
        let world = WorldShape {
            acme_groups: vec![GroupShape { path: String::new(), projects: PROJECTS }],
            bigco: None,
            ..WorldShape::small()
        };
        let faults = Faults { latency: Duration::from_millis(50), ..Faults::default() };
        let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), world, faults, ..SimConfig::default() })?;
        let (mut walls, mut plannings, mut listings) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..self.runs {
            let dest = self.dest("jsonl", 2000 + run);
            let args = ["--object", "issue", "--group", "acme", "--concurrency", "64", "--dest", &dest];
            let figures = self.host_run(&sim, &args, &[])?;
            walls.push(figures.wall.as_secs_f64());
            plannings.push(figures.summary["planning_seconds"].as_f64().unwrap_or(f64::NAN));
            listings.push(figures.summary["planning_requests"].as_f64().unwrap_or(f64::NAN));
        }
        let (wall, planning, listing) = (median(walls), median(plannings), median(listings));
        let reads = PROJECTS.div_ceil(64);
        println!(
            "a group of {PROJECTS} projects, 64 at once: {wall:.2} s; planning {planning:.2} s, {listing:.0} listing requests ({:.2} s at 50 ms each, one after the other); reading alone: {reads} rounds of 50 ms = {:.2} s",
            listing * 0.05,
            reads as f64 * 0.05
        );
        Ok(())
    }

    fn rate_limited(&self) -> Result<()> {
        let limit = RateLimit { requests: 100, window_secs: 10 };
        let faults = Faults { rate_limit: Some(limit), ..Faults::default() };
        let world =
            WorldShape { bigco: Some(BigShape { issues: 30_000, merge_requests: 10 }), ..WorldShape::standard() };
        let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), world, faults, ..SimConfig::default() })?;
        let dest = self.dest("jsonl", 9000);
        let figures =
            self.host_run(&sim, &["--object", "issue", "--project", gitlab_sim::BIG_PROJECT, "--dest", &dest], &[])?;
        let requests = figures.summary["requests"].as_f64().unwrap_or(0.0);
        let per_minute = requests / figures.wall.as_secs_f64() * 60.0;
        let allowed = f64::from(limit.requests) * 60.0 / f64::from(limit.window_secs);
        println!(
            "\n## 4. simulator limit of {} requests per {} s ({allowed:.0}/min): {requests} requests in {:.1} s = {per_minute:.0}/min, {:.2} of the limit (goal ≥ 0.9); {} answered 429",
            limit.requests,
            limit.window_secs,
            figures.wall.as_secs_f64(),
            per_minute / allowed,
            figures.summary["rate_limited"]
        );
        Ok(())
    }

    fn cold_start(&self) -> Result<()> {
        let cache = self.work.path().join("start-cache");
        let time = |cache: &Path| -> Result<f64> {
            let started = Instant::now();
            let status = Command::new(&self.host)
                .args(["objects", "--plugin", self.plugin.to_str().unwrap()])
                .env("HOST_CACHE_DIR", cache)
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                bail!("host objects failed");
            }
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        };
        time(&cache)?; // fills the cache
        let warm = median((0..self.runs.max(5)).map(|_| time(&cache)).collect::<Result<_>>()?);
        let cold = median((0..self.runs).map(|_| time(Path::new(""))).collect::<Result<_>>()?);
        println!(
            "\n## 5b. `host objects` as a whole process: {warm:.0} ms from the on-disk component cache, {cold:.0} ms compiling gitlab.wasm without it (goal ≤ 20 ms from the cache)"
        );
        Ok(())
    }

    /// `count` tenants, each with one flow of one partition (the issues of one project of group
    /// acme, in turn), all at once in one `host run --tenants`.
    fn tenants(&self, count: usize) -> Result<()> {
        let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), ..SimConfig::default() })?;
        let world = sim.world();
        let projects: Vec<u64> = world
            .projects_in_group(world.group_by_ref("acme").unwrap().id, true)
            .into_iter()
            .filter(|p| p.issues_enabled)
            .map(|p| p.id)
            .collect();
        let dir = self.work.path().join(format!("tenants-{count}"));
        let flows = dir.join("flows");
        std::fs::create_dir_all(&flows)?;
        let mut tenants = String::new();
        let mut expected = 0;
        for n in 0..count {
            let project = projects[n % projects.len()];
            expected += world.issues(project).len();
            tenants.push_str(&format!(
                "[[tenants]]\nid = \"t{n}\"\nconcurrency = 1\ncredential = {{ source = \"env\", var = \"GITLAB_TOKEN\" }}\n"
            ));
            let flow = format!(
                "plugin = {:?}\n[tenant]\nid = \"t{n}\"\n[connection]\nbase_url = \"{}\"\n[destination]\nurl = \"jsonl:{}\"\n\
                 [[objects]]\nobject = \"issue\"\nprojects = [\"{project}\"]\n",
                self.plugin,
                sim.base_url(),
                dir.join("out").join(format!("t{n}")).display()
            );
            std::fs::write(flows.join(format!("t{n}.toml")), flow)?;
        }
        let tenants_file = dir.join("tenants.toml");
        std::fs::write(&tenants_file, tenants)?;
        let summary_path = dir.join("summary.json");
        let started = Instant::now();
        let output = Command::new(&self.host)
            .args(["run", "--tenants", tenants_file.to_str().unwrap(), "--flows", flows.to_str().unwrap()])
            .args(["--summary-json", summary_path.to_str().unwrap()])
            .env("GITLAB_TOKEN", TOKEN)
            .env("HOST_CACHE_DIR", self.work.path().join("cache"))
            .output()
            .context("running host")?;
        let wall = started.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!(
                "host run --tenants failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path)?)?;
        let records: u64 =
            summary["tenants"].as_array().into_iter().flatten().map(|t| t["records"].as_u64().unwrap_or(0)).sum();
        if records != expected as u64 {
            bail!("{count} tenants wrote {records} records, not {expected}");
        }
        println!("\n## 6. {count} tenants, one partition each, all at once (one process, one engine)");
        println!(
            "{records} records in {wall:.2} s: {:.0} records/s, {:.0} partitions/s; peak RSS {:.1} MiB",
            records as f64 / wall,
            count as f64 / wall,
            summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64
        );
        Ok(())
    }
}

/// A simulator whose big project (`gitlab_sim::BIG_PROJECT`) has `records` issues.
fn big_project(records: usize) -> Result<Simulator> {
    let world = WorldShape { bigco: Some(BigShape { issues: records, merge_requests: 10 }), ..WorldShape::standard() };
    Simulator::start(SimConfig { token: Some(TOKEN.into()), world, ..SimConfig::default() })
}

/// Fetch every page from `url` on, following `Link: rel="next"`: (records, wall time).
async fn raw_fetch(url: &str) -> Result<(usize, Duration)> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let (mut records, mut next) = (0, Some(url.to_owned()));
    while let Some(url) = next.take() {
        let request = http::Request::get(&url)
            .header("private-token", TOKEN)
            .header("accept-encoding", "gzip")
            .body(Empty::new())?;
        let response = client.request(request).await?;
        next = link_next(response.headers());
        let gzip = response.headers().get("content-encoding").is_some_and(|v| v == "gzip");
        let body = response.into_body().collect().await?.to_bytes();
        let json = if gzip {
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded)?;
            Bytes::from(decoded)
        } else {
            body
        };
        records += serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&json)?.len();
    }
    Ok((records, started.elapsed()))
}

/// The `rel="next"` target of a `Link` header.
fn link_next(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_owned())
    })
}

/// The `micros=` of the host's "sandbox instantiated" debug lines.
fn instantiation_micros(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("sandbox instantiated"))
        .filter_map(|l| l.split("micros=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The CPU time (user and system) this process has used so far: during a host run, the simulator's.
fn own_cpu_seconds() -> f64 {
    let mut used = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes the `timespec` it is given, which outlives the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut used) };
    if status == 0 { used.tv_sec as f64 + used.tv_nsec as f64 / 1e9 } else { f64::NAN }
}

/// The issues stored at `dest` (a `sqlite:`, `jsonl:`, `csv:` or `parquet:` destination): how many, and
/// how many distinct ids.
fn stored_issues(dest: &str) -> Result<(usize, usize)> {
    if let Some(path) = dest.strip_prefix("sqlite:") {
        let db = rusqlite::Connection::open(path)?;
        let (rows, ids): (i64, i64) =
            db.query_row("SELECT count(*), count(DISTINCT id) FROM issue", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        return Ok((usize::try_from(rows)?, usize::try_from(ids)?));
    }
    let (format, folder) = dest.split_once(':').context("a destination URL")?;
    let folder = Path::new(folder).join("issue");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))? {
        let path = entry?.path();
        let published = !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if published && path.extension().is_some_and(|x| x == format) {
            part_ids(format, &path, &mut ids).with_context(|| format!("reading {}", path.display()))?;
        }
    }
    let rows = ids.len();
    ids.sort_unstable();
    ids.dedup();
    Ok((rows, ids.len()))
}

/// Add the `id` of every record of the part at `path`, a file of `format`, to `ids`.
fn part_ids(format: &str, path: &Path, ids: &mut Vec<i64>) -> Result<()> {
    match format {
        "jsonl" => {
            #[derive(serde::Deserialize)]
            struct Id {
                id: i64,
            }
            for line in std::fs::read(path)?.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                ids.push(serde_json::from_slice::<Id>(line)?.id);
            }
        }
        "csv" => {
            let mut reader = csv::Reader::from_path(path)?;
            let column = reader.headers()?.iter().position(|name| name == "id").context("no id column")?;
            for row in reader.records() {
                ids.push(row?.get(column).context("a short row")?.parse()?);
            }
        }
        "parquet" => {
            use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
            let column = reader.schema().index_of("id")?;
            for batch in reader.build()? {
                let batch = batch?;
                let column = batch.column(column).as_any().downcast_ref::<arrow_array::Int64Array>();
                ids.extend(column.context("id is not an Int64 column")?.values().iter());
            }
        }
        other => bail!("no reader for {other} parts"),
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
