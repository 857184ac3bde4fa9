//! Hostile connectors for the tests: each object tries to hurt the host or its neighbours in one way,
//! and the host must end only that partition, naming the limit it hit. One object is well-behaved, so
//! that a run can mix hostile and healthy partitions of the same plugin.
//!
//! Objects (all at project scope):
//! - `healthy`: reads the project's issues from GitLab, a page at a time, and passes them on as records
//!   `{id, iid, project_id, title}`; prints one line per page to stdout;
//! - `infinite_loop`: spins forever in guest code (the epoch deadline);
//! - `sleeper`: sleeps an hour in a host call, where no epoch reaches it (the tokio timeout);
//! - `memory_bomb`: allocates 1 MiB after 1 MiB, and keeps them (the memory limit);
//! - `page_1gib`: builds a page of 1 GiB of records (the memory limit);
//! - `page_24mib`: returns a page of 24 MiB, which fits in memory (the limit on data per call);
//! - `trap`: panics (a trap, with the panic message on stderr);
//! - `flood`: starts 5,000 requests at once (the resource limit);
//! - `flood_wait`: starts 300 requests at once and waits for each, never reading a body (the cap on
//!   requests in flight holds all but the first few back, until the deadline);
//! - `stdout_flood`: writes 1 GiB to stdout (the limit on log output).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "dataflow:connector/connector",
    generate_all,
});

use std::hint::black_box;
use std::io::Write;

use dataflow::connector::types::{
    Connection, ConnectorError, FieldInfo, FieldType, ObjectInfo, ObjectSchema, Page, ReadRequest, Scope, ScopeEntry,
    ScopeKind, ScopePage,
};
use exports::dataflow::connector::source::Guest;
use wasi::http::outgoing_handler::{self, FutureIncomingResponse};
use wasi::http::types::{Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

const OBJECTS: [&str; 10] = [
    "healthy",
    "infinite_loop",
    "sleeper",
    "memory_bomb",
    "page_1gib",
    "page_24mib",
    "trap",
    "flood",
    "flood_wait",
    "stdout_flood",
];

struct Hostile;

export!(Hostile);

fn info(name: &str) -> ObjectInfo {
    ObjectInfo {
        name: name.into(),
        label: name.into(),
        scopes: vec![ScopeKind::Project],
        primary_key: vec![if name == "healthy" { "id" } else { "check" }.into()],
        cursor_field: None,
        readable: true,
    }
}

fn field(name: &str, field_type: FieldType) -> FieldInfo {
    FieldInfo {
        name: name.into(),
        field_type,
        nullable: false,
        filter_operators: vec![],
        filter_values: vec![],
        filter_only: false,
    }
}

impl Guest for Hostile {
    fn list_objects() -> Vec<ObjectInfo> {
        OBJECTS.iter().map(|o| info(o)).collect()
    }

    fn check_connection(_: Connection) -> Result<String, ConnectorError> {
        Ok("anonymous".into())
    }

    fn describe_schema(object: String) -> Result<ObjectSchema, ConnectorError> {
        let fields = match object.as_str() {
            "healthy" => vec![
                field("id", FieldType::Integer),
                field("iid", FieldType::Integer),
                field("project_id", FieldType::Integer),
                field("title", FieldType::String),
            ],
            known if OBJECTS.contains(&known) => {
                vec![field("check", FieldType::String), field("outcome", FieldType::String)]
            }
            unknown => return Err(ConnectorError::InvalidRequest(format!("unknown object '{unknown}'"))),
        };
        Ok(ObjectSchema { object: info(&object), fields })
    }

    fn list_scopes(_: Connection, within: Scope, _: ScopeKind, _: Option<String>) -> Result<ScopePage, ConnectorError> {
        // Every scope is itself, by the id it was given.
        let label = match &within {
            Scope::Project(id) | Scope::Group(id) => id.clone(),
            Scope::Instance => "instance".into(),
        };
        Ok(ScopePage { scopes: vec![ScopeEntry { label, scope: within }], next_page_token: None })
    }

    fn validate_request(_: Connection, request: ReadRequest) -> Result<(), ConnectorError> {
        Self::describe_schema(request.object).map(drop)
    }

    fn read_page(connection: Connection, request: ReadRequest) -> Result<Page, ConnectorError> {
        let base = connection.base_url.trim_end_matches('/');
        let project = match &request.scope {
            Scope::Project(id) => id.clone(),
            _ => return Err(ConnectorError::InvalidRequest("every object is read per project".into())),
        };
        match request.object.as_str() {
            "healthy" => healthy(base, &project, &request),
            "infinite_loop" => {
                let mut spins = 0u64;
                loop {
                    spins = black_box(spins.wrapping_add(1));
                }
            }
            "sleeper" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(one_record("sleeper", "woke up"))
            }
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0x5a; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "page_1gib" => {
                let record = format!("{{\"check\":\"page_1gib\",\"outcome\":\"{}\"}}\n", "x".repeat(1000));
                let mut records = Vec::new();
                let mut count = 0u32;
                while records.len() < 1 << 30 {
                    records.extend_from_slice(record.as_bytes());
                    count += 1;
                }
                Ok(Page { records, record_count: count, next_page_token: None, high_watermark: None })
            }
            "page_24mib" => {
                let (head, tail) = ("{\"check\":\"page_24mib\",\"outcome\":\"", "\"}\n");
                let mut records = Vec::with_capacity(head.len() + (24 << 20) + tail.len());
                records.extend_from_slice(head.as_bytes());
                records.resize(head.len() + (24 << 20), b'x');
                records.extend_from_slice(tail.as_bytes());
                Ok(Page { records, record_count: 1, next_page_token: None, high_watermark: None })
            }
            "trap" => panic!("the hostile plugin panics on purpose"),
            "flood" => {
                let url = format!("{base}/api/v4/projects/{project}");
                let mut pending: Vec<FutureIncomingResponse> = Vec::new();
                for _ in 0..5_000 {
                    pending.push(start_get(&url)?);
                }
                Ok(one_record("flood", &format!("{} requests started", pending.len())))
            }
            "flood_wait" => {
                let url = format!("{base}/api/v4/projects/{project}/members");
                let pending = (0..300).map(|_| start_get(&url)).collect::<Result<Vec<_>, _>>()?;
                let mut responses = Vec::new();
                for future in pending {
                    responses.push(wait(future, &url)?);
                }
                Ok(one_record("flood_wait", &format!("{} responses", responses.len())))
            }
            "stdout_flood" => {
                let line = [b'y'; 64 << 10];
                let mut stdout = std::io::stdout();
                for _ in 0..(1 << 14) {
                    // Errors ignored on purpose: a hostile plugin keeps writing.
                    let _ = stdout.write_all(&line);
                }
                Ok(one_record("stdout_flood", "wrote 1 GiB"))
            }
            other => Err(ConnectorError::InvalidRequest(format!("unknown object '{other}'"))),
        }
    }
}

fn one_record(check: &str, outcome: &str) -> Page {
    let record = format!("{{\"check\":{check:?},\"outcome\":{outcome:?}}}\n");
    Page { records: record.into_bytes(), record_count: 1, next_page_token: None, high_watermark: None }
}

/// One page of the project's issues, as small records; the page token is GitLab's page number.
fn healthy(base: &str, project: &str, request: &ReadRequest) -> Result<Page, ConnectorError> {
    let page = request.page_token.as_deref().unwrap_or("1");
    let url = format!("{base}/api/v4/projects/{project}/issues?per_page={}&page={page}", request.page_size);
    let response = wait(start_get(&url)?, &url)?;
    if response.status() != 200 {
        return Err(ConnectorError::Upstream(format!("GET {url}: status {}", response.status())));
    }
    let next = response
        .headers()
        .get("x-next-page")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| !v.is_empty());
    let body = read_body(response, &url)?;
    let issues: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| ConnectorError::Upstream(format!("GET {url}: {e}")))?;
    let mut records = Vec::new();
    for issue in &issues {
        let record = serde_json::json!({
            "id": issue["id"], "iid": issue["iid"], "project_id": issue["project_id"], "title": issue["title"],
        });
        records.extend_from_slice(record.to_string().as_bytes());
        records.push(b'\n');
    }
    println!("healthy: project {project} page {page}: {} issues", issues.len());
    Ok(Page { records, record_count: issues.len() as u32, next_page_token: next, high_watermark: None })
}

/// Start a GET of `url` (http or https), without waiting for the response.
fn start_get(url: &str) -> Result<FutureIncomingResponse, ConnectorError> {
    let (scheme, rest) = match url.strip_prefix("https://") {
        Some(rest) => (Scheme::Https, rest),
        None => (Scheme::Http, url.strip_prefix("http://").unwrap_or(url)),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    outgoing_handler::handle(request, None).map_err(|e| ConnectorError::Transport(format!("GET {url}: {e:?}")))
}

fn wait(future: FutureIncomingResponse, url: &str) -> Result<IncomingResponse, ConnectorError> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(ConnectorError::Transport(format!("GET {url}: {code:?}"))),
        _ => Err(ConnectorError::Transport(format!("GET {url}: no response"))),
    }
}

fn read_body(response: IncomingResponse, url: &str) -> Result<Vec<u8>, ConnectorError> {
    let failed = |what: &str| ConnectorError::Transport(format!("GET {url}: {what}"));
    let body = response.consume().map_err(|()| failed("no body"))?;
    let stream = body.stream().map_err(|()| failed("no body stream"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(failed(&e.to_debug_string())),
        }
    }
    drop(stream);
    Ok(bytes)
}
