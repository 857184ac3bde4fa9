//! The gate's way out: one pooled HTTP/1.1 client per tenant, whose connector checks every address
//! it connects to.
//!
//! ```text
//!  request ──► pooled client (keep-alive: an idle connection to the origin is reused)
//!                └─ new connection: resolve the host ──► check every address (`address`) ──► connect
//!                   to a checked address (TLS with the webpki roots for https) ──► pool
//!          ──► response headers (first-byte timeout) ──► body: bytes counted, between-bytes timeout,
//!              gzip decoded when the gate asked for it
//! ```
//!
//! Resolving once and connecting only to the addresses just checked leaves no DNS-rebinding window: the
//! name is never resolved again for that connection. Non-global addresses (private, loopback,
//! link-local...) are refused unless the origin is the tenant's own configured GitLab origin, so a
//! self-managed GitLab on a private network, or the simulator on 127.0.0.1, keeps working.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::address::non_global;
use super::gunzip::Gunzip;
use super::{GatePolicy, GateStats, Origin};

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Timeouts of one request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To resolve and connect (TLS handshake included).
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// Between two chunks of the body.
    pub between_bytes: Duration,
}

/// A tenant's pooled client.
pub struct Upstream {
    client: Client<Connector, WasiBody>,
}

impl Upstream {
    /// A client whose connections may reach non-global addresses only for `exempt` (the tenant's own
    /// GitLab origin).
    pub fn new(exempt: Option<Origin>, connect_timeout: Duration) -> Upstream {
        let connector = Connector { exempt: exempt.map(Arc::new), connect_timeout };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Upstream { client }
    }

    /// Send `request` (an absolute URI) and wait for the response headers.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        timeouts: Timeouts,
    ) -> Result<http::Response<Incoming>, SendError> {
        match tokio::time::timeout(timeouts.first_byte, self.client.request(request)).await {
            Err(_) => Err(SendError::Failed(HttpError::HttpResponseTimeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(SendError::from_client(&error)),
        }
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// The gate's own policy refused the connection (a non-global address): the reason, for people.
    Refused(String),
    /// The network or the upstream failed, as a `wasi:http` error for the plugin.
    Failed(HttpError),
}

impl SendError {
    fn from_client(error: &hyper_util::client::legacy::Error) -> SendError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(connect) = cause.downcast_ref::<ConnectError>() {
                return match connect {
                    ConnectError::Refused(reason) => SendError::Refused(reason.clone()),
                    other => SendError::Failed(other.to_wasi()),
                };
            }
            if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
                return SendError::Failed(hyper_error(hyper));
            }
            source = cause.source();
        }
        SendError::Failed(HttpError::InternalError(Some(format!("the request failed: {error}"))))
    }
}

fn hyper_error(error: &hyper::Error) -> HttpError {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        HttpError::ConnectionTerminated
    } else if error.is_timeout() {
        HttpError::ConnectionReadTimeout
    } else if error.is_parse() || error.is_parse_status() {
        HttpError::HttpProtocolError
    } else {
        HttpError::InternalError(Some(format!("the HTTP exchange failed: {error}")))
    }
}

/// A failure while the body arrives: most often the connection closed before the body was complete.
fn body_error(error: &hyper::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::ConnectionReadTimeout;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    HttpError::InternalError(Some(format!("the connection failed before the body was complete ({text})")))
}

/// Why a connection could not be made.
#[derive(Debug)]
enum ConnectError {
    /// Refused by policy: the origin resolves to a non-global address.
    Refused(String),
    Dns(String),
    Timeout,
    Io(std::io::Error),
    Tls(std::io::Error),
}

impl ConnectError {
    fn to_wasi(&self) -> HttpError {
        match self {
            ConnectError::Refused(_) => HttpError::HttpRequestDenied,
            ConnectError::Dns(message) => HttpError::DnsError { rcode: Some(message.clone()), info_code: None },
            ConnectError::Timeout => HttpError::ConnectionTimeout,
            ConnectError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
            ConnectError::Io(e) => HttpError::InternalError(Some(format!("cannot connect: {e}"))),
            ConnectError::Tls(e) => {
                let certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                if certificate { HttpError::TlsCertificateError } else { HttpError::TlsProtocolError }
            }
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused(reason) => f.write_str(reason),
            ConnectError::Dns(message) => write!(f, "DNS: {message}"),
            ConnectError::Timeout => f.write_str("connecting timed out"),
            ConnectError::Io(e) => write!(f, "cannot connect: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The TLS configuration: the webpki (Mozilla) roots, HTTP/1.1.
static TLS: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
});

/// Makes the pool's connections: resolve, check, connect, TLS.
#[derive(Clone)]
struct Connector {
    exempt: Option<Arc<Origin>>,
    connect_timeout: Duration,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(this.connect_timeout, this.connect(&uri)).await {
                Ok(result) => result.map(TokioIo::new),
                Err(_) => Err(ConnectError::Timeout),
            }
        })
    }
}

impl Connector {
    async fn connect(&self, uri: &http::Uri) -> Result<Stream, ConnectError> {
        let origin = Origin::of_uri(uri).ok_or_else(|| ConnectError::Dns(format!("'{uri}' has no host")))?;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = origin.port();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ConnectError::Dns(format!("{host} did not resolve: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(ConnectError::Dns(format!("{host} resolved to no address")));
        }
        if self.exempt.as_deref() != Some(&origin) {
            for addr in &addrs {
                if let Some(why) = non_global(addr.ip()) {
                    let exempt = self.exempt.as_deref().map_or_else(|| "none".to_owned(), Origin::to_string);
                    return Err(ConnectError::Refused(format!(
                        "the plugin tried to reach {origin}, whose address {} is {why}: only the tenant's own \
                         GitLab origin ({exempt}) may be at a non-public address",
                        addr.ip()
                    )));
                }
            }
        }
        let tcp = connect_any(&addrs).await?;
        let _ = tcp.set_nodelay(true);
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| ConnectError::Dns(format!("'{host}' is not a valid TLS server name: {e}")))?;
            let tls =
                tokio_rustls::TlsConnector::from(TLS.clone()).connect(name, tcp).await.map_err(ConnectError::Tls)?;
            Ok(Stream::Tls(Box::new(tls)))
        } else {
            Ok(Stream::Plain(tcp))
        }
    }
}

/// Connect to the first of `addrs` that accepts.
async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Io(last.unwrap_or_else(|| std::io::Error::other("no address to connect to"))))
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A response body as the plugin reads it: counted, under a between-bytes timeout, gzip decoded when
/// `gzip` is set.
pub struct GateBody {
    inner: Incoming,
    policy: Arc<GatePolicy>,
    stats: Arc<GateStats>,
    /// Body bytes received so far (before decompression).
    received: u64,
    idle: Duration,
    /// When waiting for the next bytes ends in a timeout. Armed when the reader starts waiting, not
    /// when the bytes before arrived: its reader (the drain task of `buffered`, or the plugin once
    /// that hands it over) is not timed for the time it was not reading.
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
    gzip: Option<Gunzip>,
    done: bool,
}

impl GateBody {
    pub fn new(
        inner: Incoming,
        policy: Arc<GatePolicy>,
        stats: Arc<GateStats>,
        idle: Duration,
        gzip: bool,
    ) -> GateBody {
        GateBody {
            inner,
            policy,
            stats,
            received: 0,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            armed: false,
            gzip: gzip.then(Gunzip::default),
            done: false,
        }
    }
}

impl Body for GateBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        loop {
            if let Some(gzip) = &mut this.gzip {
                match gzip.output() {
                    Ok(Some(decoded)) => return Poll::Ready(Some(Ok(Frame::data(decoded)))),
                    Ok(None) => {}
                    Err(error) => {
                        this.done = true;
                        this.gzip = None;
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                // Everything received is decoded: at the body's end, the gzip stream must end too.
                if this.done {
                    let end = gzip.finish();
                    this.gzip = None;
                    if let Err(error) = end {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            if !this.armed {
                this.timer.as_mut().reset(tokio::time::Instant::now() + this.idle);
                this.armed = true;
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    this.gzip = None;
                    return Poll::Ready(Some(Err(body_error(&error))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.armed = false;
                    if let Some(data) = frame.data_ref() {
                        this.received += data.len() as u64;
                        if let Some(reason) = this.policy.receive(data.len() as u64, this.received) {
                            this.done = true;
                            this.gzip = None;
                            return Poll::Ready(Some(Err(this.stats.exceed(reason))));
                        }
                    }
                    let Some(gzip) = &mut this.gzip else {
                        if let Some(data) = frame.data_ref() {
                            this.stats.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match frame.into_data() {
                        Ok(data) => {
                            this.stats.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                            gzip.input(data);
                        }
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    }
                }
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.gzip = None;
                        return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // With gzip, decoded bytes may still be waiting: never claim the end early.
        self.gzip.is_none() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.gzip.is_some() { SizeHint::default() } else { self.inner.size_hint() }
    }
}
