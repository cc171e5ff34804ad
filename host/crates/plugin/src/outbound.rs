//! Outbound HTTP for sources granted origins (`[grants] http = ["https://host:port", ...]`).
//!
//! Guests speak `wasi:http/outgoing-handler`; every request reaches [`OutboundHooks::send_request`]
//! before anything leaves the host. There the host checks the request's origin (scheme, host,
//! port) against the signed grants and the per-call request count, then sends it itself: its own
//! connect (with the connect limit), TLS by rustls with the system's roots plus the grant's CA
//! file, HTTP/1.1 by hyper, the total-time limit over headers and body, and a body that is cut and
//! fails past the response limit. A redirect whose `Location` leaves the granted origins fails the
//! request. Nothing is followed by the host: a guest that follows a redirect sends a new request,
//! checked again. Refusals fail in the guest with a message naming the URL, and are logged with
//! the plugin's name.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::manifest::{pick_limit, LimitRequest};

/// Scheme of a granted origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OriginScheme {
    Http,
    Https,
}

impl OriginScheme {
    fn as_str(self) -> &'static str {
        match self {
            OriginScheme::Http => "http",
            OriginScheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            OriginScheme::Http => 80,
            OriginScheme::Https => 443,
        }
    }
}

/// One granted origin: scheme, host (lowercase; IPv6 without brackets) and port (`None` only for
/// a `*` written in the grant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub scheme: OriginScheme,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port|:*]`. No user, path, query or fragment; a missing port is the
    /// scheme's default (80, 443); `*` (any port) only where written.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let bad = |why: &str| format!("`{text}` is not an origin (scheme://host:port): {why}");
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (OriginScheme::Https, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (OriginScheme::Http, rest)
        } else {
            return Err(bad("the scheme must be http or https"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("no path, query, fragment or user may follow the host and port"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside `[]`"));
            }
            (host.to_owned(), after.strip_prefix(':').map(str::to_owned).or_else(|| (!after.is_empty()).then(|| after.to_owned())))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port.to_owned())),
                None => (rest.to_owned(), None),
            }
        };
        let host_ok = !host.is_empty()
            && (host.contains(':') || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        if !host_ok {
            return Err(bad("the host must be a DNS name, an IPv4 address or a bracketed IPv6 address"));
        }
        let port = match port.as_deref() {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("the port must be 1-65535 or `*`")),
                Ok(port) => Some(port),
            },
        };
        Ok(Origin { scheme, host: host.to_ascii_lowercase(), port })
    }

    /// Whether a request to `scheme://host:port` lies in this origin.
    fn admits(&self, scheme: OriginScheme, host: &str, port: u16) -> bool {
        self.scheme == scheme && self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|granted| granted == port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(port) => write!(f, "{}://{host}:{port}", self.scheme.as_str()),
            None => write!(f, "{}://{host}:*", self.scheme.as_str()),
        }
    }
}

/// Per-call limits on outbound HTTP, from the manifest's `[limits]` (`http_requests`,
/// `http_response_kib`, `http_connect_ms`, `http_total_ms`) within the host's ceilings. The call's
/// own time limit (`timeout_ms`) still cuts everything off at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundLimits {
    /// Requests one call may send.
    pub requests: u32,
    /// Largest response body, in KiB: a longer body is cut and the read fails.
    pub response_kib: u32,
    /// Time to connect (TCP and TLS), in milliseconds.
    pub connect_ms: u32,
    /// Time for one request from connect to the last byte of the body, in milliseconds.
    pub total_ms: u32,
}

impl OutboundLimits {
    /// The host's defaults: 8 requests, 1 MiB, 2 s to connect, 5 s in all.
    pub const DEFAULT: OutboundLimits = OutboundLimits { requests: 8, response_kib: 1024, connect_ms: 2_000, total_ms: 5_000 };
    /// The host's ceilings: 64 requests, 16 MiB, 10 s, 10 s (the call limit's maximum).
    pub const MAXIMA: OutboundLimits = OutboundLimits { requests: 64, response_kib: 16 * 1024, connect_ms: 10_000, total_ms: 10_000 };

    /// Applies a manifest's request, refusing 0 and anything above the ceilings.
    pub fn resolve(request: &LimitRequest) -> Result<OutboundLimits, String> {
        let (d, m) = (OutboundLimits::DEFAULT, OutboundLimits::MAXIMA);
        Ok(OutboundLimits {
            requests: pick_limit("http_requests", request.http_requests, d.requests, m.requests)?,
            response_kib: pick_limit("http_response_kib", request.http_response_kib, d.response_kib, m.response_kib)?,
            connect_ms: pick_limit("http_connect_ms", request.http_connect_ms, d.connect_ms, m.connect_ms)?,
            total_ms: pick_limit("http_total_ms", request.http_total_ms, d.total_ms, m.total_ms)?,
        })
    }
}

/// What one plugin may reach: its granted origins, each with the TLS configuration to use, and
/// its limits. Built once per loaded version.
pub(crate) struct OutboundPolicy {
    plugin: Arc<str>,
    grants: Vec<(Origin, Option<Arc<rustls::ClientConfig>>)>,
    pub(crate) limits: OutboundLimits,
}

impl OutboundPolicy {
    /// `origins` with their CA files (`None`: the system's roots only), already resolved to paths.
    pub(crate) fn new(plugin: Arc<str>, origins: Vec<(Origin, Option<&Path>)>, limits: OutboundLimits) -> Result<OutboundPolicy, String> {
        let mut grants = Vec::new();
        for (origin, ca_file) in origins {
            let tls = match origin.scheme {
                OriginScheme::Https => Some(client_config(ca_file).map_err(|e| format!("grants.http `{origin}`: {e}"))?),
                OriginScheme::Http => None,
            };
            grants.push((origin, tls));
        }
        Ok(OutboundPolicy { plugin, grants, limits })
    }

    /// No origin at all: every request is refused (a plugin without `grants.http`).
    pub(crate) fn none(plugin: Arc<str>) -> OutboundPolicy {
        OutboundPolicy { plugin, grants: Vec::new(), limits: OutboundLimits::DEFAULT }
    }

    fn granted(&self) -> String {
        if self.grants.is_empty() {
            return "none".to_owned();
        }
        self.grants.iter().map(|(origin, _)| origin.to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The grant a URL falls in, or why it is refused.
    fn find(&self, uri: &http::Uri) -> Result<usize, String> {
        let scheme = match uri.scheme_str() {
            Some("http") => OriginScheme::Http,
            Some("https") => OriginScheme::Https,
            other => return Err(format!("{uri}: refused: scheme {} is not http or https", other.unwrap_or("(none)"))),
        };
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        self.grants
            .iter()
            .position(|(origin, _)| origin.admits(scheme, host, port))
            .ok_or_else(|| format!("{uri}: refused: origin {}://{}:{port} is not granted to plugin {} (grants.http: {})", scheme.as_str(), uri.host().unwrap_or(""), self.plugin, self.granted()))
    }
}

/// The system's root certificates, read once per process (only when an https origin is granted).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(error = %error, "cannot read some of the system's root certificates");
        }
        loaded.certs
    })
}

/// rustls with the system's roots, plus the certificates of `ca_file` (PEM) when given.
fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("CA file {}: {e}", path.display()))? {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("CA file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("CA file {} holds no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The `wasi:http` hooks of one store: the plugin's policy and this call's count of requests.
pub(crate) struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    sent_this_call: u32,
    /// What the host refused or cut during this call, for the call's error and the log.
    pub(crate) refusals: Arc<Mutex<Vec<String>>>,
}

impl OutboundHooks {
    pub(crate) fn new(policy: Arc<OutboundPolicy>) -> OutboundHooks {
        OutboundHooks { policy, sent_this_call: 0, refusals: Arc::default() }
    }

    pub(crate) fn begin_call(&mut self) {
        self.sent_this_call = 0;
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The first refusal of this call, if any.
    pub(crate) fn first_refusal(&self) -> Option<String> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).first().cloned()
    }

    fn admit(&mut self, uri: &http::Uri) -> Result<usize, String> {
        let grant = self.policy.find(uri)?;
        if self.sent_this_call >= self.policy.limits.requests {
            return Err(format!("{uri}: refused: plugin {} reached its limit of {} request(s) per call (limits.http_requests)", self.policy.plugin, self.policy.limits.requests));
        }
        self.sent_this_call += 1;
        Ok(grant)
    }
}

type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        match self.admit(request.uri()) {
            Err(reason) => {
                record(&self.policy.plugin, &self.refusals, &reason);
                Box::new(async move { Err(wasmtime_wasi_http::Error::InternalError(Some(reason))) })
            }
            Ok(grant) => {
                let policy = self.policy.clone();
                let refusals = self.refusals.clone();
                Box::new(async move { send(policy, grant, request, options, refusals).await })
            }
        }
    }
}

/// Logs a refusal with the plugin's name and keeps it for the call's error.
fn record(plugin: &str, refusals: &Mutex<Vec<String>>, reason: &str) {
    tracing::warn!(plugin = %plugin, "outbound request refused: {reason}");
    let mut refusals = refusals.lock().unwrap_or_else(|p| p.into_inner());
    if refusals.len() < 16 {
        refusals.push(reason.to_owned());
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Sends one admitted request under the plugin's limits.
async fn send(policy: Arc<OutboundPolicy>, grant: usize, mut request: http::Request<WasiBody>, options: Option<RequestOptions>, refusals: Arc<Mutex<Vec<String>>>) -> SendResult {
    use wasmtime_wasi_http::Error;
    let limits = policy.limits;
    let uri = request.uri().clone();
    let fail = |reason: String| {
        record(&policy.plugin, &refusals, &reason);
        Error::InternalError(Some(reason))
    };
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(u64::from(limits.total_ms));
    // A guest may ask for less time than the manifest allows, never more.
    let connect_limit = Duration::from_millis(u64::from(limits.connect_ms));
    let connect_limit = options.and_then(|o| o.connect_timeout).map_or(connect_limit, |asked| asked.min(connect_limit));
    let connect_deadline = (started + connect_limit).min(deadline);

    let (origin, tls) = &policy.grants[grant];
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(origin.scheme.default_port());
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("{uri}: cannot connect: {e}"))?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.clone()).map_err(|e| format!("{uri}: not a TLS server name: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await.map_err(|e| format!("{uri}: TLS: {e}"))?;
                Box::new(tls)
            }
        };
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await.map_err(|e| format!("{uri}: HTTP handshake: {e}"))
    };
    let (mut sender, connection) = match tokio::time::timeout_at(connect_deadline, connect).await {
        Err(_) => return Err(fail(format!("{uri}: connect timed out (limit {} ms)", connect_limit.as_millis()))),
        Ok(Err(reason)) => return Err(Error::InternalError(Some(reason))),
        Ok(Ok(connected)) => connected,
    };
    let connection = wasmtime_wasi::runtime::spawn(connection);

    // On the wire the request names only its path; the host header carries the authority.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|e| Error::InternalError(Some(format!("{uri}: {e}"))))?;
    let response = match tokio::time::timeout_at(deadline, sender.send_request(request)).await {
        Err(_) => return Err(fail(format!("{uri}: no response within the limit of {} ms (limits.http_total_ms)", limits.total_ms))),
        Ok(Err(e)) => return Err(Error::InternalError(Some(format!("{uri}: {e}")))),
        Ok(Ok(response)) => response,
    };
    if response.status().is_redirection() {
        if let Some(location) = response.headers().get(http::header::LOCATION) {
            let target = redirect_target(&uri, location.to_str().unwrap_or(""));
            if let Err(reason) = target.as_ref().map_err(Clone::clone).and_then(|target| policy.find(target).map(|_| ())) {
                return Err(fail(format!("{uri}: redirect refused: {reason}")));
            }
        }
    }
    let limit = u64::from(limits.response_kib) * 1024;
    let declared = response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(fail(format!("{uri}: response of {} bytes exceeds the limit of {limit} bytes (limits.http_response_kib)", declared.unwrap_or_default())));
    }
    let url = uri.to_string();
    let plugin = policy.plugin.clone();
    let response = response.map(move |incoming| {
        LimitedBody { incoming, remaining: limit, limit, deadline: Box::pin(tokio::time::sleep_until(deadline)), total_ms: limits.total_ms, url, plugin, refusals, failed: false }.boxed_unsync()
    });
    let io = async move {
        match connection.await {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    };
    Ok((response, Box::new(io)))
}

/// Where a redirect's `Location` points, resolved against the request's URL.
fn redirect_target(request: &http::Uri, location: &str) -> Result<http::Uri, String> {
    let absolute = if location.starts_with("//") {
        format!("{}:{location}", request.scheme_str().unwrap_or("http"))
    } else if location.contains("://") {
        location.to_owned()
    } else {
        // A relative reference stays on the request's origin.
        return Ok(request.clone());
    };
    absolute.parse::<http::Uri>().map_err(|e| format!("{location}: not a URL: {e}"))
}

/// A response body cut at the response limit and at the request's total-time deadline.
struct LimitedBody {
    incoming: hyper::body::Incoming,
    remaining: u64,
    limit: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    total_ms: u32,
    url: String,
    plugin: Arc<str>,
    refusals: Arc<Mutex<Vec<String>>>,
    failed: bool,
}

impl LimitedBody {
    fn fail(&mut self, reason: String) -> Poll<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        self.failed = true;
        record(&self.plugin, &self.refusals, &reason);
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(reason)))))
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                if size > self.remaining {
                    let (url, limit) = (self.url.clone(), self.limit);
                    return self.fail(format!("{url}: response body exceeds the limit of {limit} bytes (limits.http_response_kib); cut"));
                }
                self.remaining -= size;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let (url, total) = (self.url.clone(), self.total_ms);
                    self.fail(format!("{url}: response body not complete within the limit of {total} ms (limits.http_total_ms)"))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_with_explicit_default_and_wildcard_ports() {
        let origin = Origin::parse("https://Config.Internal:8443").unwrap();
        assert_eq!((origin.scheme, origin.host.as_str(), origin.port), (OriginScheme::Https, "config.internal", Some(8443)));
        assert_eq!(Origin::parse("http://127.0.0.1").unwrap().port, Some(80));
        assert_eq!(Origin::parse("https://example.com/").unwrap().port, Some(443));
        assert_eq!(Origin::parse("http://127.0.0.1:*").unwrap().port, None);
        assert_eq!(Origin::parse("http://[::1]:2379").unwrap().to_string(), "http://[::1]:2379");
        for bad in ["ftp://x", "http://", "http://x:0", "http://x:99999", "http://x/path", "http://u@x", "http://x?q", "x:80", "http://a b"] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_is_admitted_only_by_its_own_scheme_host_and_port() {
        let policy = OutboundPolicy {
            plugin: Arc::from("demo"),
            grants: vec![(Origin::parse("http://127.0.0.1:2379").unwrap(), None), (Origin::parse("http://config.internal:*").unwrap(), None)],
            limits: OutboundLimits::DEFAULT,
        };
        let find = |url: &str| policy.find(&url.parse().unwrap());
        assert_eq!(find("http://127.0.0.1:2379/v3/kv/range"), Ok(0));
        assert_eq!(find("http://CONFIG.internal:9/x"), Ok(1));
        let refused = find("http://127.0.0.1:2380/").unwrap_err();
        assert!(refused.contains("http://127.0.0.1:2380/: refused: origin http://127.0.0.1:2380 is not granted to plugin demo"), "{refused}");
        assert!(find("https://127.0.0.1:2379/").is_err(), "another scheme");
        assert!(find("http://127.0.0.1/").is_err(), "the default port is not the granted one");
        assert!(find("http://localhost:2379/").is_err(), "another name for the same address");
    }

    #[test]
    fn a_call_sends_at_most_its_request_limit_and_the_count_restarts_with_the_next_call() {
        let limits = OutboundLimits { requests: 2, ..OutboundLimits::DEFAULT };
        let policy = Arc::new(OutboundPolicy { plugin: Arc::from("demo"), grants: vec![(Origin::parse("http://127.0.0.1:1").unwrap(), None)], limits });
        let mut hooks = OutboundHooks::new(policy);
        let uri: http::Uri = "http://127.0.0.1:1/x".parse().unwrap();
        assert!(hooks.admit(&uri).is_ok() && hooks.admit(&uri).is_ok());
        let refused = hooks.admit(&uri).unwrap_err();
        assert!(refused.contains("reached its limit of 2 request(s) per call (limits.http_requests)"), "{refused}");
        hooks.begin_call();
        assert!(hooks.admit(&uri).is_ok());
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        let request: http::Uri = "http://127.0.0.1:1/a".parse().unwrap();
        assert_eq!(redirect_target(&request, "/b").unwrap(), request);
        assert_eq!(redirect_target(&request, "//evil.example:81/x").unwrap().to_string(), "http://evil.example:81/x");
        assert_eq!(redirect_target(&request, "https://evil.example/").unwrap().host(), Some("evil.example"));
    }
}
