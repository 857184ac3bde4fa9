//! `gitlab-sim`: runs the GitLab simulator until killed.
//!
//! `gitlab-sim [--port 0] [--seed 42] [--token TOKEN] [--shape standard|small] [--big-issues N]
//! [--big-merge-requests N] [--no-gzip] [FAULTS]` binds 127.0.0.1:PORT, prints exactly one line, `listening on http://127.0.0.1:PORT`, and serves
//! until SIGTERM or ctrl-c, then exits 0. The fault flags (`--latency-ms`, `--fault-429`,
//! `--fault-5xx`, `--fault-401`, `--fault-truncate`, `--fault-stall`, `--rate-limit`...) make it a hostile upstream;
//! see `gitlab-sim --help` and `gitlab_sim::Faults`. `--big-issues N` gives the standard world's
//! `bigco/monorepo` (`gitlab_sim::BIG_PROJECT`) N issues instead of 12,345, for load tests that walk
//! many pages of one list (`--big-merge-requests N` likewise; default 300).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use gitlab_sim::{Faults, GroupShape, RateLimit, SimConfig, ThrottleHeaders, WorldShape, serve};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shape {
    Standard,
    Small,
}

/// The headers of injected 429s.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Throttle {
    None,
    RetryAfter,
    RateLimit,
    Both,
}

/// A GitLab v4 REST API simulator with deterministic, seeded data.
#[derive(Debug, Parser)]
#[command(name = "gitlab-sim", version)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Require this token (PRIVATE-TOKEN or Authorization: Bearer); anonymous access otherwise.
    #[arg(long)]
    token: Option<String>,
    /// Size of the world.
    #[arg(long, value_enum, default_value = "standard")]
    shape: Shape,
    /// Issues of `bigco/monorepo` (standard shape only; default 12345): a big list for load tests.
    #[arg(long, value_name = "N")]
    big_issues: Option<usize>,
    /// Merge requests of `bigco/monorepo` (standard shape only; default 300).
    #[arg(long, value_name = "N")]
    big_merge_requests: Option<usize>,
    /// Projects directly in the group `acme` (its subgroups keep theirs): a large group for load tests.
    #[arg(long, value_name = "N")]
    acme_projects: Option<usize>,
    /// Never gzip answers (by default JSON is compressed for clients that accept gzip).
    #[arg(long)]
    no_gzip: bool,
    /// Added latency before every answer, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    latency_ms: u64,
    /// Percent of requests answered 429 (a storm).
    #[arg(long = "fault-429", default_value_t = 0, value_name = "PERCENT")]
    fault_429: u8,
    /// Headers of those 429s.
    #[arg(long = "fault-429-headers", value_enum, default_value = "none")]
    fault_429_headers: Throttle,
    /// Seconds those headers ask to wait.
    #[arg(long = "fault-429-wait-secs", default_value_t = 1, value_name = "SECS")]
    fault_429_wait_secs: u32,
    /// Percent of requests answered 500, 502, 503 or 504.
    #[arg(long = "fault-5xx", default_value_t = 0, value_name = "PERCENT")]
    fault_5xx: u8,
    /// Percent of requests answered 401 (a token revoked or expired mid-run).
    #[arg(long = "fault-401", default_value_t = 0, value_name = "PERCENT")]
    fault_401: u8,
    /// Percent of requests whose body is cut short (Content-Length larger than what is sent).
    #[arg(long = "fault-truncate", default_value_t = 0, value_name = "PERCENT")]
    fault_truncate: u8,
    /// Percent of requests whose body never comes (headers, then silence).
    #[arg(long = "fault-stall", default_value_t = 0, value_name = "PERCENT")]
    fault_stall: u8,
    /// How long a stalled body hangs before the connection closes, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    stall_secs: u64,
    /// After this many faults in a row for one request, answer it normally (default: no limit).
    #[arg(long, value_name = "N")]
    fault_max_in_a_row: Option<u32>,
    /// A rate limit of N requests per window, with GitLab's RateLimit-* headers on every answer.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// The rate limit's window, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    rate_limit_window_secs: u32,
    /// Close the connection after every answer (no keep-alive).
    #[arg(long)]
    close_connections: bool,
    /// Only requests whose path (with its query) contains this meet the random faults.
    #[arg(long, value_name = "TEXT")]
    fault_path_contains: Option<String>,
}

impl Args {
    fn world(&self) -> anyhow::Result<WorldShape> {
        let big = self.big_issues.is_some() || self.big_merge_requests.is_some();
        let mut shape = match self.shape {
            Shape::Small if big => anyhow::bail!("--big-issues and --big-merge-requests need --shape standard"),
            Shape::Small => WorldShape::small(),
            Shape::Standard => {
                let mut shape = WorldShape::standard();
                if let Some(bigco) = &mut shape.bigco {
                    bigco.issues = self.big_issues.unwrap_or(bigco.issues);
                    bigco.merge_requests = self.big_merge_requests.unwrap_or(bigco.merge_requests);
                }
                shape
            }
        };
        if let Some(projects) = self.acme_projects {
            match shape.acme_groups.iter_mut().find(|group| group.path.is_empty()) {
                Some(acme) => acme.projects = projects,
                None => shape.acme_groups.insert(0, GroupShape { path: String::new(), projects }),
            }
        }
        Ok(shape)
    }

    fn faults(&self) -> anyhow::Result<Faults> {
        let faults = Faults {
            latency: Duration::from_millis(self.latency_ms),
            throttle_percent: self.fault_429,
            throttle_headers: match self.fault_429_headers {
                Throttle::None => ThrottleHeaders::None,
                Throttle::RetryAfter => ThrottleHeaders::RetryAfter,
                Throttle::RateLimit => ThrottleHeaders::RateLimit,
                Throttle::Both => ThrottleHeaders::Both,
            },
            throttle_wait_secs: self.fault_429_wait_secs,
            server_error_percent: self.fault_5xx,
            unauthorized_percent: self.fault_401,
            truncate_percent: self.fault_truncate,
            stall_percent: self.fault_stall,
            stall: Duration::from_secs(self.stall_secs),
            max_in_a_row: self.fault_max_in_a_row,
            rate_limit: self
                .rate_limit
                .map(|requests| RateLimit { requests, window_secs: self.rate_limit_window_secs }),
            close_connections: self.close_connections,
            path_contains: self.fault_path_contains.clone(),
        };
        faults.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(faults)
    }
}

/// Resolves on SIGTERM or ctrl-c. The handlers are installed when this is called, before the
/// `listening on` line is printed, so a signal sent right after it is never missed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let faults = args.faults()?;
    let world = args.world()?;
    let config = SimConfig { seed: args.seed, token: args.token, world, gzip: !args.no_gzip, faults };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    let signal = shutdown_signal()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, config, async {
        let _ = stop_rx.await;
    }));
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    tokio::select! {
        () = signal => {}
        result = &mut server => return result.context("the server task failed")?,
    }
    // Let in-flight requests finish, but never hang on a client that keeps a connection busy.
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}
