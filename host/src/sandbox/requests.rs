//! At most a few outgoing requests of one sandbox in flight: the sandbox's side of `wasi:http`.
//!
//! A plugin may call `outgoing-handler.handle` thousands of times without waiting for a response;
//! wasmtime-wasi-http starts each request at once. [`InFlight`] wraps the tenant's gate so that only
//! `requests_in_flight` of them hold a connection at a time (each keeps its permit until its
//! connection is done); the rest wait their turn, holding nothing but a resource handle, and the
//! resource limit ends a plugin that piles them up. The gate itself (allow-list, credential,
//! counting) is untouched: every method is passed through to it.

use std::sync::Arc;

use http::HeaderName;
use http::uri::Scheme;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks};

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// `hooks` (the tenant's gate), with at most `permits` requests in flight.
pub struct InFlight<H> {
    hooks: H,
    permits: Arc<Semaphore>,
}

impl<H> InFlight<H> {
    /// Wrap `hooks`, allowing `limit` requests in flight at once (at least one).
    pub fn new(hooks: H, limit: usize) -> Self {
        InFlight { hooks, permits: Arc::new(Semaphore::new(limit.max(1))) }
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
        Box::new(async move {
            // The semaphore is never closed; should it be, the request fails like a refused connection.
            let permit = permits.acquire_owned().await.map_err(|_| HttpError::ConnectionLimitReached)?;
            let (response, io) = send.await?;
            let io = Box::into_pin(io);
            let io: IoFuture = Box::new(async move {
                let _permit = permit;
                io.await
            });
            Ok((response, io))
        })
    }
}
