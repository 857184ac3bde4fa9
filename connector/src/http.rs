//! Blocking GETs over `wasi:http`, the connector's only way out of its sandbox: one at a time
//! ([`get`]), or several in flight at once ([`get_all`]).
//!
//! The host decides what actually leaves: it refuses origins outside the tenant's allow-list and adds
//! the credential itself, so no credential ever passes through here.

use crate::ConnectorError;
use crate::guest::wasi::http::outgoing_handler::{self, FutureIncomingResponse};
use crate::guest::wasi::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingRequest, Scheme};
use crate::guest::wasi::io::streams::StreamError;
use crate::response::Answer;

/// The largest response body the connector reads (GitLab pages of 100 records are far smaller).
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// GET `url` and read the whole response.
pub fn get(url: &str) -> Result<Answer, ConnectorError> {
    receive(url, send(url)?)
}

/// GET every URL at once (all requests in flight before the first answer is read); the answers in
/// the same order.
pub fn get_all(urls: &[String]) -> Vec<Result<Answer, ConnectorError>> {
    let sent: Vec<_> = urls.iter().map(|url| send(url)).collect();
    urls.iter().zip(sent).map(|(url, future)| future.and_then(|future| receive(url, future))).collect()
}

/// Start a GET of `url`.
pub fn send(url: &str) -> Result<FutureIncomingResponse, ConnectorError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(ConnectorError::InvalidRequest(format!("'{url}' is not an http(s) URL")));
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));

    let headers = Fields::new();
    headers
        .append("accept", b"application/json")
        .map_err(|e| ConnectorError::Transport(format!("cannot set a request header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let set = request
        .set_method(&Method::Get)
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(path)));
    set.map_err(|()| ConnectorError::InvalidRequest(format!("'{url}' is not a valid request URL")))?;

    outgoing_handler::handle(request, None).map_err(|e| transport(url, &e))
}

/// Wait for the answer to a GET of `url` and read it whole.
pub fn receive(url: &str, future: FutureIncomingResponse) -> Result<Answer, ConnectorError> {
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(transport(url, &code)),
        Some(Err(())) | None => {
            return Err(ConnectorError::Transport(format!("GET {url}: no response")));
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let body = response
        .consume()
        .map_err(|()| ConnectorError::Transport(format!("GET {url}: the response body was already taken")))?;
    let bytes = read_body(url, &body)?;
    IncomingBody::finish(body);
    Ok(Answer { status, headers, body: bytes })
}

fn read_body(url: &str, body: &IncomingBody) -> Result<Vec<u8>, ConnectorError> {
    let stream = body
        .stream()
        .map_err(|()| ConnectorError::Transport(format!("GET {url}: the response body stream was already taken")))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(1 << 20) {
            Ok(chunk) => {
                // The host hands a page over in a few large chunks: the first is kept as it came.
                match bytes.is_empty() {
                    true => bytes = chunk,
                    false => bytes.extend_from_slice(&chunk),
                }
                if bytes.len() > MAX_BODY_BYTES {
                    return Err(ConnectorError::Upstream(format!(
                        "GET {url}: the response body exceeds {MAX_BODY_BYTES} bytes"
                    )));
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ConnectorError::Transport(format!(
                    "GET {url}: the response body was cut short: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

fn transport(url: &str, code: &ErrorCode) -> ConnectorError {
    let why = match code {
        ErrorCode::HttpRequestDenied => "the host refused the request (origin not allowed for this tenant)".to_owned(),
        ErrorCode::ConnectionRefused => "connection refused".to_owned(),
        ErrorCode::ConnectionTimeout | ErrorCode::HttpResponseTimeout => "timed out".to_owned(),
        ErrorCode::DnsError(_) => "the host name did not resolve".to_owned(),
        ErrorCode::TlsCertificateError => "the TLS certificate was not accepted".to_owned(),
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    };
    ConnectorError::Transport(format!("GET {url}: {why}"))
}
