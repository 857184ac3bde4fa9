//! `gitlab-sim`: runs the GitLab simulator until killed.
//!
//! `gitlab-sim [--port 0] [--seed 42] [--token TOKEN] [--shape standard|small]` binds
//! 127.0.0.1:PORT, prints exactly one line, `listening on http://127.0.0.1:PORT`, and serves
//! until SIGTERM or ctrl-c, then exits 0.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use gitlab_sim::{SimConfig, WorldShape, serve};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shape {
    Standard,
    Small,
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
    let config = SimConfig {
        seed: args.seed,
        token: args.token,
        world: match args.shape {
            Shape::Standard => WorldShape::standard(),
            Shape::Small => WorldShape::small(),
        },
    };
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
