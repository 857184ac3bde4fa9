//! The sandbox's side of `wasi:http`: at most a few outgoing requests of one sandbox in flight, each
//! sent from the network runtime.
//!
//! A plugin may call `outgoing-handler.handle` thousands of times without waiting for a response;
//! wasmtime-wasi-http starts each request at once. [`InFlight`] wraps the tenant's gate so that only
//! `requests_in_flight` of them hold a connection at a time (each keeps its permit until its
//! connection is done); the rest wait their turn, holding nothing but a resource handle, and the
//! resource limit ends a plugin that piles them up. The gate itself (allow-list, credential,
//! counting) is untouched: every method is passed through to it.
//!
//! The request's work (pacing, connecting, sending, and the response body's drain and gunzip, see
//! `gate::buffered`) runs on [`network`], a runtime of its own, not on the worker running the plugin:
//!
//! ```text
//!  plugin call (tokio worker) ── handle(GET n+1) ──► task on the network runtime: sent at once
//!       │ normalizes page n, 1 ms without yielding        ──► answer in, body drained and gunzipped
//!       └── returns page n ... next call: answer n+1 is already here
//! ```
//!
//! wasmtime-wasi-http spawns the request's task from the plugin's call, and tokio puts a task spawned
//! on a worker in that worker's LIFO slot, which no other worker steals: the connector's read-ahead
//! GET would wait there until the plugin's call yields, after the page it was meant to overlap.

use std::sync::{Arc, LazyLock};

use http::HeaderName;
use http::uri::Scheme;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::{Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks};

use crate::gate::RunningRequests;

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// `hooks` (the tenant's gate), with at most `permits` requests in flight.
pub struct InFlight<H> {
    hooks: H,
    permits: Arc<Semaphore>,
    /// The sandbox's requests whose tasks still run.
    running: Arc<RunningRequests>,
}

impl<H> InFlight<H> {
    /// Wrap `hooks`, allowing `limit` requests in flight at once (at least one), their tasks noted
    /// in `running`.
    pub fn new(hooks: H, limit: usize, running: Arc<RunningRequests>) -> Self {
        InFlight { hooks, permits: Arc::new(Semaphore::new(limit.max(1))), running }
    }
}

impl<H: WasiHttpHooks> WasiHttpHooks for InFlight<H> {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        self.hooks.is_forbidden_header(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        self.hooks.forbidden_header_filter()
    }

    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        self.hooks.is_supported_scheme(scheme)
    }

    fn set_host_header(&mut self) -> bool {
        self.hooks.set_host_header()
    }

    fn default_scheme(&mut self) -> Option<Scheme> {
        self.hooks.default_scheme()
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        // The gate decides now (refusals are recorded at once); the request leaves when a permit is free.
        let send = Box::into_pin(self.hooks.send_request(request, options, fut));
        let permits = self.permits.clone();
        let task = self.running.spawn(network(), async move {
            // The semaphore is never closed; should it be, the request fails like a refused connection.
            let permit = permits.acquire_owned().await.map_err(|_| HttpError::ConnectionLimitReached)?;
            let (response, io) = send.await?;
            let io = Box::into_pin(io);
            let io: IoFuture = Box::new(async move {
                let _permit = permit;
                io.await
            });
            Ok((response, io))
        });
        // A plugin that drops the pending response (a read-ahead it no longer wants) cancels the request.
        let mut task = AbortOnDropJoinHandle::from(task);
        Box::new(async move { (&mut *task).await.unwrap_or(Err(HttpError::ConnectionTerminated)) })
    }
}

/// The runtime the sandboxes' requests are sent from (see the module docs): its workers do the
/// network's work (and gunzip), half the cores, at least one, while the main runtime's workers run
/// plugins. Made on first use, kept for the life of the process.
pub fn network() -> &'static Handle {
    static NETWORK: LazyLock<Runtime> = LazyLock::new(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("network")
            .enable_all()
            .build()
            .expect("starting the network runtime")
    });
    NETWORK.handle()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use http_body_util::{BodyExt, Empty};

    use super::*;

    /// Hooks whose request says when it was first polled, and answers at once.
    struct Recorder(Arc<std::sync::Mutex<Option<Instant>>>);

    impl WasiHttpHooks for Recorder {
        fn send_request(
            &mut self,
            _request: http::Request<WasiBody>,
            _options: Option<RequestOptions>,
            _fut: IoFuture,
        ) -> SendFuture {
            let sent = self.0.clone();
            Box::new(async move {
                sent.lock().unwrap().get_or_insert_with(Instant::now);
                let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
                Ok((http::Response::new(body), Box::new(async { Ok(()) }) as IoFuture))
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_leaves_while_the_plugin_that_sent_it_keeps_computing() {
        let sent = Arc::new(std::sync::Mutex::new(None));
        let running = Arc::new(RunningRequests::default());
        let mut hooks = InFlight::new(Recorder(sent.clone()), 1, running.clone());
        // As wasmtime-wasi-http does within a plugin's call: the send future spawned on this worker,
        // then the plugin computes on (a page normalized) without yielding.
        let (computed, answer) = tokio::spawn(async move {
            let request = http::Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
            let answer = tokio::spawn(Box::into_pin(hooks.send_request(request, None, Box::new(async { Ok(()) }))));
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(300) {
                std::hint::black_box(0u64);
            }
            (Instant::now(), answer)
        })
        .await
        .unwrap();
        let sent = sent.lock().unwrap().expect("the request was sent");
        assert!(sent < computed, "the request left {:?} after the plugin's computing ended", sent - computed);
        assert!(answer.await.unwrap().is_ok());
    }
}
