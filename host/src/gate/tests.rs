//! The gate's send path against a tiny HTTP/1.1 server on loopback: keep-alive, address checks, gzip,
//! timeouts and the credential refresh on a 401.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A loopback server that answers each request with the raw bytes `answer` makes from its head.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(answer: fn(&str) -> Vec<u8>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                            buffer.drain(..end + 4);
                            let reply = answer(&head);
                            log.lock().unwrap().push(head);
                            if socket.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Server { addr, connections, heads }
    }

    fn origin(&self) -> Origin {
        Origin::of_url(&format!("http://{}", self.addr)).unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn ok(body: &[u8], extra: &str) -> Vec<u8> {
    let mut reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}\r\n", body.len()).into_bytes();
    reply.extend_from_slice(body);
    reply
}

/// `bytes` gzipped, as a GitLab answer's body.
pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn settings(
    allowed: Vec<Origin>,
    gitlab: Option<Origin>,
    credential: Option<Arc<dyn CredentialHeader>>,
) -> GateSettings {
    let timeout = Duration::from_millis(500);
    GateSettings {
        allowed,
        gitlab,
        credential,
        timeouts: Timeouts { connect: timeout, first_byte: timeout, between_bytes: timeout },
        max_requests_per_minute: None,
        retry: RetryPolicy::default(),
        max_response_bytes: None,
        max_run_bytes: None,
    }
}

/// GET `url` through a fresh sandbox's gate: the status and the body, or the error.
async fn get(policy: &Arc<GatePolicy>, stats: &Arc<GateStats>, url: &str) -> Result<(u16, Vec<u8>), HttpError> {
    let mut gate = Gate { policy: policy.clone(), stats: stats.clone() };
    let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
    let request = http::Request::get(url).body(body).unwrap();
    let (response, _io) = Pin::from(gate.send_request(request, None, Box::new(async { Ok(()) }))).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

#[tokio::test]
async fn requests_of_a_tenant_share_one_kept_alive_connection() {
    let server = Server::start(|_| ok(b"[1,2,3]", "")).await;
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    let stats = Arc::new(GateStats::default());
    for _ in 0..5 {
        assert_eq!(get(&policy, &stats, &server.url("/api/v4/x")).await.unwrap(), (200, b"[1,2,3]".to_vec()));
    }
    assert_eq!(server.connections.load(Ordering::Relaxed), 1);
    assert_eq!(stats.requests.load(Ordering::Relaxed), 5);
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), 5 * 7);
    assert!(server.heads.lock().unwrap().iter().all(|h| h.contains("accept-encoding: gzip")));
}

#[tokio::test]
async fn a_loopback_address_is_refused_unless_it_is_the_tenants_gitlab() {
    let server = Server::start(|_| ok(b"{}", "")).await;
    let gitlab = Origin::of_url("https://gitlab.example.com").unwrap();
    let policy = Arc::new(GatePolicy::new(settings(vec![gitlab.clone(), server.origin()], Some(gitlab), None)));
    let stats = Arc::new(GateStats::default());
    let error = get(&policy, &stats, &server.url("/")).await.unwrap_err();
    assert!(matches!(error, HttpError::HttpRequestDenied), "{error:?}");
    let refusal = &stats.refusals()[0];
    assert!(refusal.contains(&format!("the plugin tried to reach {}", server.origin())), "{refusal}");
    assert!(refusal.contains("whose address 127.0.0.1 is loopback (127.0.0.0/8)"), "{refusal}");
    assert!(refusal.contains("(https://gitlab.example.com:443)"), "{refusal}");
    assert_eq!(server.connections.load(Ordering::Relaxed), 0, "refused before connecting");

    // The same address as the tenant's own GitLab origin is fine.
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    assert_eq!(get(&policy, &stats, &server.url("/")).await.unwrap().0, 200);
}

#[tokio::test]
async fn gzip_answers_are_decoded_and_a_cut_gzip_stream_is_an_error() {
    let json = br#"[{"id":1,"title":"a title that repeats, a title that repeats, a title that repeats"}]"#;
    let server = Server::start(|head| {
        let json = br#"[{"id":1,"title":"a title that repeats, a title that repeats, a title that repeats"}]"#;
        let mut zipped = gzip(json);
        if head.contains("/cut") {
            zipped.truncate(zipped.len() - 6);
        }
        ok(&zipped, "content-encoding: gzip\r\n")
    })
    .await;
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    let stats = Arc::new(GateStats::default());
    assert_eq!(get(&policy, &stats, &server.url("/whole")).await.unwrap(), (200, json.to_vec()));
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), gzip(json).len() as u64);
    let error = get(&policy, &stats, &server.url("/cut")).await.unwrap_err();
    assert!(matches!(error, HttpError::HttpResponseContentCoding(_)), "{error:?}");
}

#[tokio::test]
async fn a_body_that_stops_coming_times_out() {
    let server = Server::start(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[1,".to_vec()).await;
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    let stats = Arc::new(GateStats::default());
    let started = tokio::time::Instant::now();
    let error = get(&policy, &stats, &server.url("/")).await.unwrap_err();
    assert!(matches!(error, HttpError::ConnectionReadTimeout), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Send a GET of `url` through `gate`: the response, its body not read yet.
async fn send(gate: &mut Gate, url: &str) -> http::Response<WasiBody> {
    let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
    let request = http::Request::get(url).body(body).unwrap();
    Pin::from(gate.send_request(request, None, Box::new(async { Ok(()) }))).await.unwrap().0
}

#[tokio::test]
async fn a_body_is_drained_as_it_arrives_and_read_whenever_the_plugin_reads_it() {
    // The body comes with its headers; the reader reads it 700 ms later (as a page read ahead is read
    // by the next call), longer than the 500 ms between-bytes timeout: it was drained meanwhile, and
    // the timeout measures the upstream's gaps, not the reader's.
    let json = br#"[{"id":1,"title":"a title that repeats, a title that repeats"}]"#;
    let server = Server::start(|_| {
        let json = br#"[{"id":1,"title":"a title that repeats, a title that repeats"}]"#;
        ok(&gzip(json), "content-encoding: gzip\r\n")
    })
    .await;
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    let stats = Arc::new(GateStats::default());
    let mut gate = Gate { policy, stats: stats.clone() };
    let response = send(&mut gate, &server.url("/")).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), gzip(json).len() as u64, "drained before it is read");
    assert_eq!(stats.body_budget.queued(), json.len(), "decoded and queued");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], json);
    assert_eq!(stats.body_budget.queued(), 0, "reading gives the budget back");
}

#[tokio::test]
async fn bodies_beyond_the_budget_are_read_from_the_connection_whole_in_any_order() {
    // Two bodies of 3 MiB each, and a 4 MiB budget: the second read first, while the first holds
    // the budget, then the first.
    let server = Server::start(|_| ok(&big_body(), "")).await;
    let policy = Arc::new(GatePolicy::new(settings(vec![server.origin()], Some(server.origin()), None)));
    let stats = Arc::new(GateStats::default());
    let mut gate = Gate { policy, stats: stats.clone() };
    let first = send(&mut gate, &server.url("/1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = send(&mut gate, &server.url("/2")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = stats.body_budget.queued();
    assert!((2 << 20..=buffered::BODY_BUDGET_BYTES).contains(&queued), "{queued} bytes queued");
    let second = second.into_body().collect().await.unwrap().to_bytes();
    let first = first.into_body().collect().await.unwrap().to_bytes();
    assert!(first == big_body() && second == big_body());
    assert_eq!(stats.body_budget.queued(), 0);
}

/// 3 MiB of distinct lines.
fn big_body() -> Vec<u8> {
    (0..).flat_map(|n: u32| format!("{n:031}\n").into_bytes()).take(3 << 20).collect()
}

/// A credential whose token is `v1`, then `v2`, `v3`... after each refresh, up to `v{last}`.
struct Rotating {
    version: AtomicU32,
    last: u32,
}

impl Rotating {
    fn new(last: u32) -> Arc<Rotating> {
        Arc::new(Rotating { version: AtomicU32::new(1), last })
    }
}

impl CredentialHeader for Rotating {
    fn header(&self) -> BoxFuture<'_, Result<(HeaderName, HeaderValue), String>> {
        let value = format!("Bearer v{}", self.version.load(Ordering::Relaxed));
        Box::pin(async move { Ok((header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap())) })
    }

    fn refresh(&self, rejected: &HeaderValue) -> BoxFuture<'_, bool> {
        let current = self.version.load(Ordering::Relaxed);
        assert_eq!(rejected, format!("Bearer v{current}").as_str());
        let refreshed = current < self.last
            && self.version.compare_exchange(current, current + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        Box::pin(async move { refreshed })
    }
}

#[tokio::test]
async fn a_401_lets_a_refreshable_credential_refresh_and_the_request_go_again_a_few_times_at_most() {
    const MOST: usize = 1 + CREDENTIAL_RESENDS as usize;
    fn refuse(_: &str) -> Vec<u8> {
        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}".to_vec()
    }
    // GitLab takes only the token of the last resend the gate makes.
    fn take_the_last(head: &str) -> Vec<u8> {
        match head.contains(&format!("Bearer v{MOST}")) {
            true => ok(b"{}", ""),
            false => refuse(head),
        }
    }
    /// How the server answers a request's head.
    type Answer = fn(&str) -> Vec<u8>;
    // (GitLab, the credential's last version, status, requests)
    let cases: [(Answer, u32, u16, usize); 4] = [
        // Each token refused in turn (one adopted from another process, spent meanwhile): refreshed
        // again each time, and the request goes through.
        (take_the_last, MOST as u32, 200, MOST),
        // The credential cannot refresh any further: the 401 goes to the plugin.
        (take_the_last, 2, 401, 2),
        (take_the_last, 1, 401, 1),
        // Every token refused: the gate stops after its resends.
        (refuse, 99, 401, MOST),
    ];
    for (answer, last, status, requests) in cases {
        let server = Server::start(answer).await;
        let settings = settings(vec![server.origin()], Some(server.origin()), Some(Rotating::new(last)));
        let policy = Arc::new(GatePolicy::new(settings));
        let stats = Arc::new(GateStats::default());
        assert_eq!(get(&policy, &stats, &server.url("/api/v4/user")).await.unwrap().0, status, "last v{last}");
        assert_eq!(server.heads.lock().unwrap().len(), requests, "last v{last}");
        assert_eq!(stats.requests.load(Ordering::Relaxed), requests as u64, "last v{last}");
    }
}

#[test]
fn origins_normalize_default_ports_and_case() {
    let origin = Origin::of_url("https://GitLab.com/api/v4").unwrap();
    assert_eq!(origin.to_string(), "https://gitlab.com:443");
    assert_eq!(Origin::of_uri(&"https://gitlab.com/x".parse().unwrap()), Some(origin));
    assert_eq!(Origin::of_url("http://127.0.0.1:8080/x").unwrap().to_string(), "http://127.0.0.1:8080");
    assert_eq!(Origin::of_url("http://[::1]/x").unwrap().to_string(), "http://[::1]:80");
    assert!(Origin::of_url("ftp://x").is_err());
}
