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

fn gzip(bytes: &[u8]) -> Vec<u8> {
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

#[tokio::test]
async fn a_body_read_later_than_its_headers_came_is_timed_from_when_it_is_read() {
    // Headers at once, the body 900 ms later; the reader starts reading 700 ms after the headers
    // (as a page read ahead is read by the next call). The 500 ms between-bytes timeout runs from
    // 700 ms, not from the headers: the body is read whole.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut chunk).await.unwrap();
            head.extend_from_slice(&chunk[..n]);
        }
        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        socket.write_all(b"[1,2,3]").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let origin = Origin::of_url(&format!("http://{addr}")).unwrap();
    let policy = Arc::new(GatePolicy::new(settings(vec![origin.clone()], Some(origin), None)));
    let mut gate = Gate { policy, stats: Arc::new(GateStats::default()) };
    let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
    let request = http::Request::get(format!("http://{addr}/")).body(body).unwrap();
    let (response, _io) = Pin::from(gate.send_request(request, None, Box::new(async { Ok(()) }))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"[1,2,3]");
}

/// A credential whose token is `v1`, then `v2` after a refresh (if it may refresh).
struct Rotating {
    version: AtomicU32,
    refreshable: bool,
}

impl CredentialHeader for Rotating {
    fn header(&self) -> BoxFuture<'_, Result<(HeaderName, HeaderValue), String>> {
        let value = format!("Bearer v{}", self.version.load(Ordering::Relaxed));
        Box::pin(async move { Ok((header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap())) })
    }

    fn refresh(&self, rejected: &HeaderValue) -> BoxFuture<'_, bool> {
        assert_eq!(rejected, "Bearer v1");
        let refreshed =
            self.refreshable && self.version.compare_exchange(1, 2, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        Box::pin(async move { refreshed })
    }
}

#[tokio::test]
async fn a_401_lets_a_refreshable_credential_refresh_and_the_request_go_once_more() {
    let answer = |head: &str| {
        if head.contains("authorization: Bearer v2") {
            ok(b"{}", "")
        } else {
            b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}".to_vec()
        }
    };
    for (refreshable, status, requests) in [(true, 200, 2), (false, 401, 1)] {
        let server = Server::start(answer).await;
        let credential = Arc::new(Rotating { version: AtomicU32::new(1), refreshable });
        let settings = settings(vec![server.origin()], Some(server.origin()), Some(credential));
        let policy = Arc::new(GatePolicy::new(settings));
        let stats = Arc::new(GateStats::default());
        assert_eq!(get(&policy, &stats, &server.url("/api/v4/user")).await.unwrap().0, status);
        assert_eq!(server.heads.lock().unwrap().len(), requests);
        assert_eq!(stats.requests.load(Ordering::Relaxed), requests as u64);
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
