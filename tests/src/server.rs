//! Running the simulator: [`Simulator`] (a server on a free loopback port, stopped when dropped)
//! and [`serve`] (the same server on a listener the caller owns, used by the binary).
//!
//! [`Simulator::start`] generates the world, binds `127.0.0.1:0`, and runs axum on a tokio
//! runtime of its own on a background thread; [`Simulator::start_async`] runs it as a task on the
//! caller's runtime. Either way the listening socket is bound before the call returns, so the
//! first request cannot be refused. Dropping the [`Simulator`] signals a graceful shutdown: the
//! listener closes, idle keep-alive connections are closed and in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::SimConfig;
use crate::faults::{FaultCounts, FaultState};
use crate::oauth::OAuthServer;
use crate::recorder::{RecordedRequest, Recorder};
use crate::routes::{App, handle};
use crate::world::World;

/// A running GitLab simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    world: Arc<World>,
    recorder: Arc<Recorder>,
    faults: Arc<FaultState>,
    connections: Arc<AtomicU64>,
    oauth: Arc<OAuthServer>,
    shutdown: Option<oneshot::Sender<()>>,
    /// For [`Simulator::start`]: the server thread and the channel it reports its end on.
    thread: Option<(JoinHandle<()>, mpsc::Receiver<()>)>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("addr", &self.addr).field("world", &self.world).finish_non_exhaustive()
    }
}

/// The shared state of a server; `recorder` is [`Recorder::default`] (a log) or
/// [`Recorder::counting`] (none).
fn app(world: Arc<World>, config: SimConfig, local_addr: SocketAddr, recorder: Recorder) -> Arc<App> {
    Arc::new(App {
        world,
        token: config.token,
        recorder: Arc::new(recorder),
        oauth: Arc::default(),
        local_addr,
        gzip: config.gzip,
        faults: Arc::new(FaultState::new(config.faults, config.seed)),
        connections: Arc::default(),
        lists: Default::default(),
        replies: Default::default(),
    })
}

/// Serves `app` on `listener` until `shutdown` completes.
async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::clone(&app.connections);
    let router = Router::new().fallback(handle).with_state(app);
    // Small answers must not wait for the peer's delayed ACK (Nagle).
    let listener = listener.tap_io(move |tcp| {
        connections.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Serves the simulator for `config` on `listener` until `shutdown` completes. It keeps no request
/// log (there is no [`Simulator`] to read it from).
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let world = Arc::new(World::generate(config.seed, &config.world));
    let addr = listener.local_addr()?;
    // Nobody can read this server's request log: keep none.
    run(listener, app(world, config, addr, Recorder::counting()), shutdown)
        .await
        .context("serving the GitLab simulator")
}

impl Simulator {
    /// Starts a simulator on a free port of 127.0.0.1, on a tokio runtime of its own (a
    /// background thread). Usable from sync code and from inside another runtime.
    pub fn start(config: SimConfig) -> anyhow::Result<Simulator> {
        let world = Arc::new(World::generate(config.seed, &config.world));
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0 for the GitLab simulator")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let app = app(Arc::clone(&world), config, addr, Recorder::default());
        let recorder = Arc::clone(&app.recorder);
        let faults = Arc::clone(&app.faults);
        let connections = Arc::clone(&app.connections);
        let oauth = Arc::clone(&app.oauth);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("gitlab-sim-{}", addr.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("gitlab-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("building the runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("registering the listener: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let _ = run(listener, app, async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(());
            })
            .context("spawning the GitLab simulator thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("starting the GitLab simulator: {e}"),
            Err(_) => anyhow::bail!("the GitLab simulator thread died while starting"),
        }
        Ok(Simulator {
            addr,
            world,
            recorder,
            faults,
            connections,
            oauth,
            shutdown: Some(shutdown_tx),
            thread: Some((thread, done_rx)),
        })
    }

    /// Starts a simulator on a free port of 127.0.0.1, as a task on the caller's tokio runtime.
    pub async fn start_async(config: SimConfig) -> anyhow::Result<Simulator> {
        let seed = config.seed;
        let shape = config.world.clone();
        let world = Arc::new(
            tokio::task::spawn_blocking(move || World::generate(seed, &shape)).await.context("generating the world")?,
        );
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).await.context("binding 127.0.0.1:0 for the GitLab simulator")?;
        let addr = listener.local_addr()?;
        let app = app(Arc::clone(&world), config, addr, Recorder::default());
        let recorder = Arc::clone(&app.recorder);
        let faults = Arc::clone(&app.faults);
        let connections = Arc::clone(&app.connections);
        let oauth = Arc::clone(&app.oauth);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        tokio::spawn(run(listener, app, async {
            let _ = shutdown_rx.await;
        }));
        Ok(Simulator { addr, world, recorder, faults, connections, oauth, shutdown: Some(shutdown_tx), thread: None })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/api/v4`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v4`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v4", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The world the simulator serves.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// A shared handle on the world.
    pub fn world_arc(&self) -> Arc<World> {
        Arc::clone(&self.world)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.snapshot()
    }

    /// The OAuth2 provider: register applications, set token lifetimes.
    pub fn oauth(&self) -> &OAuthServer {
        &self.oauth
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.recorder.len()
    }

    /// TCP connections accepted so far (a client with keep-alive makes few).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The faults injected so far (see [`crate::Faults`]).
    pub fn faults_injected(&self) -> FaultCounts {
        self.faults.counts()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((thread, done)) = self.thread.take() {
            // Wait (boundedly) for the port to be released; a client still holding a connection
            // open mid-request must not hang the caller.
            if done.recv_timeout(Duration::from_secs(5)).is_ok() {
                let _ = thread.join();
            }
        }
    }
}
