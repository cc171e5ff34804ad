//! A blocking `GET` over `wasi:http/outgoing-handler`, shared by the HTTP-reaching example
//! sources (http-source, vault-source). The host checks every request against the plugin's signed
//! `grants.http` and limits; a refusal comes back as the host's message, which names the URL.

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Largest body read, whatever the host allows (the host's own limit cuts earlier when lower).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A response: status, headers (lower-case names) and the whole body.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(have, _)| have == name).map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.body).map_err(|_| "the body is not UTF-8".to_owned())
    }
}

/// `GET url` with `headers`. Errors start with `GET <url>: ` (header values are never quoted:
/// they may carry tokens).
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let fail = |what: String| format!("GET {url}: {what}");
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|e| fail(format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    request.set_method(&Method::Get).map_err(|()| fail("cannot set the method".into()))?;
    request.set_scheme(Some(&scheme)).map_err(|()| fail("cannot set the scheme".into()))?;
    request.set_authority(Some(authority)).map_err(|()| fail(format!("bad authority `{authority}`")))?;
    request.set_path_with_query(Some(path)).map_err(|()| fail(format!("bad path `{path}`")))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| fail(describe(&e)))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(fail(describe(&e))),
        Some(Err(())) | None => return Err(fail("no response".into())),
    };
    let headers = response.headers().entries().into_iter().map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned())).collect();
    let status = response.status();
    let body = if status == 304 { Vec::new() } else { read_body(&response).map_err(fail)? };
    Ok(Response { status, headers, body })
}

fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, String> {
    let body = response.consume().map_err(|()| "the body was already read".to_owned())?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| "cannot read the body".to_owned())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_BODY {
                        return Err(format!("body larger than {MAX_BODY} bytes"));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    let reason = wasi::http::types::http_error_code(&error).map(|code| describe(&code)).unwrap_or_else(|| error.to_debug_string());
                    return Err(format!("reading the body: {reason}"));
                }
            }
        }
    }
    Ok(bytes)
}

/// The host's message when it refused or cut a request; the error code otherwise.
fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    }
}
