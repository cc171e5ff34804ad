//! Tower middleware for services that embed `potter-config`: which environment a request is for.
//!
//! [`EnvironmentLayer`] picks the environment of each request from, in order, a header (say
//! `X-Environment`), the request's host name (`staging.example.com` → `staging`) and a default, and
//! puts the chosen [`Environment`] (its name and a [`ViewHandle`] on its view) into the request's
//! extensions, where a handler reads it (`axum::Extension<Environment>`).
//!
//! The layer is built with an allow-list, checked against the host at start-up (each allowed
//! environment must be served and exist, the default and every host mapping must be allowed).
//! A request can never select an environment outside it: a header naming another one is answered
//! `400 Bad Request` naming the environments served here, never passed on, never mapped to the
//! default (a client that asked for `production` on a staging service must not get staging data
//! it takes for production). An unmapped host name falls through to the default; with no default
//! and nothing chosen, the request is refused the same way.
//!
//! ```
//! use potter_config::{ConfigHost, Options};
//! use potter_config_tower::EnvironmentLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path().join("config");
//! # std::fs::create_dir_all(root.join("environments"))?;
//! # std::fs::write(root.join("global.json"), "{}")?;
//! # std::fs::write(root.join("environments/production.json"), "{}")?;
//! # std::fs::write(root.join("environments/staging.json"), "{}")?;
//! let host = ConfigHost::open(Options::new(&root))?;
//! let layer = EnvironmentLayer::builder(&host)
//!     .allow(["production", "staging"])
//!     .header("x-environment")
//!     .host_name("staging.example.com", "staging")
//!     .default_environment("production")
//!     .build()?;
//! // axum: Router::new().route(...).layer(layer)
//! # let _ = layer;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::header::{HeaderName, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use potter_config::{ConfigHost, ViewHandle};

/// The environment chosen for a request, in its extensions.
#[derive(Clone)]
pub struct Environment {
    name: Arc<str>,
    view: ViewHandle,
    chosen_by: ChosenBy,
}

impl Environment {
    /// The environment's name (always one of the allow-list).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads of its view (of the layer's service, when it was given one) in the live configuration.
    pub fn view(&self) -> &ViewHandle {
        &self.view
    }

    /// What chose it.
    pub fn chosen_by(&self) -> ChosenBy {
        self.chosen_by
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment").field("name", &self.name).field("chosen_by", &self.chosen_by).finish()
    }
}

/// What chose a request's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy {
    /// The configured header.
    Header,
    /// The request's host name.
    HostName,
    /// Nothing in the request: the default.
    Default,
}

/// A layer that would let a request reach an environment the service was not started for, or
/// names one the host cannot serve: refused when the layer is built.
#[derive(Debug)]
pub struct LayerError(String);

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayerError {}

/// Builds an [`EnvironmentLayer`] (see [`EnvironmentLayer::builder`]).
pub struct EnvironmentLayerBuilder<'h> {
    host: &'h ConfigHost,
    allowed: Vec<String>,
    header: Option<String>,
    host_names: Vec<(String, String)>,
    default: Option<String>,
    service: Option<String>,
}

impl EnvironmentLayerBuilder<'_> {
    /// The environments requests may select (required; nothing else is ever selected).
    pub fn allow<I, S>(mut self, environments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed.extend(environments.into_iter().map(Into::into));
        self
    }

    /// The header that names the environment (checked first; case-insensitive name).
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = Some(name.into());
        self
    }

    /// Requests for this host name (the `Host` header or the URI's authority, without the port,
    /// case-insensitive) are for `environment`, unless the header says otherwise.
    pub fn host_name(mut self, host_name: impl Into<String>, environment: impl Into<String>) -> Self {
        self.host_names.push((host_name.into(), environment.into()));
        self
    }

    /// The environment of a request that neither the header nor the host name chooses.
    pub fn default_environment(mut self, environment: impl Into<String>) -> Self {
        self.default = Some(environment.into());
        self
    }

    /// Read the view of this service in the chosen environment (`production/<service>`) instead
    /// of the environment's own.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Checks the choices against the host and builds the layer.
    pub fn build(self) -> Result<EnvironmentLayer, LayerError> {
        if self.allowed.is_empty() {
            return Err(LayerError("EnvironmentLayer: no environment allowed (call .allow([...]) with the environments this service serves)".to_owned()));
        }
        let mut views = HashMap::new();
        for name in &self.allowed {
            let view = self.host.view(name, self.service.as_deref(), None).map_err(|error| LayerError(format!("EnvironmentLayer: allowed environment `{name}`: {error}")))?;
            views.insert(name.clone(), (Arc::<str>::from(name.as_str()), view));
        }
        let allowed_list = self.allowed.join(", ");
        let check = |what: &str, environment: &str| {
            if views.contains_key(environment) {
                Ok(())
            } else {
                Err(LayerError(format!("EnvironmentLayer: {what} `{environment}` is not among the allowed environments ({allowed_list})")))
            }
        };
        if let Some(default) = &self.default {
            check("default environment", default)?;
        }
        let mut host_names = HashMap::new();
        for (host_name, environment) in &self.host_names {
            check(&format!("environment of host name {host_name}"), environment)?;
            host_names.insert(host_name.to_ascii_lowercase(), environment.clone());
        }
        let header = match &self.header {
            Some(name) => Some(HeaderName::try_from(name.as_str()).map_err(|error| LayerError(format!("EnvironmentLayer: header `{name}`: {error}")))?),
            None => None,
        };
        Ok(EnvironmentLayer { selector: Arc::new(Selector { header, host_names, default: self.default, views, allowed_list }) })
    }
}

/// Chooses each request's environment (see the [crate docs](crate)).
#[derive(Clone)]
pub struct EnvironmentLayer {
    selector: Arc<Selector>,
}

impl EnvironmentLayer {
    /// A builder of the layer over `host`'s live configuration.
    pub fn builder(host: &ConfigHost) -> EnvironmentLayerBuilder<'_> {
        EnvironmentLayerBuilder { host, allowed: Vec::new(), header: None, host_names: Vec::new(), default: None, service: None }
    }

    /// The environment a request with these parts would get, or why it is refused (the layer's
    /// own decision, for callers outside a tower stack).
    pub fn select<B>(&self, request: &Request<B>) -> Result<Environment, String> {
        self.selector.select(request)
    }
}

struct Selector {
    header: Option<HeaderName>,
    /// Lower-cased host name → environment.
    host_names: HashMap<String, String>,
    default: Option<String>,
    /// Every allowed environment, with its view, made once at start-up.
    views: HashMap<String, (Arc<str>, ViewHandle)>,
    allowed_list: String,
}

impl Selector {
    fn environment(&self, name: &str, chosen_by: ChosenBy) -> Option<Environment> {
        self.views.get(name).map(|(name, view)| Environment { name: name.clone(), view: view.clone(), chosen_by })
    }

    fn select<B>(&self, request: &Request<B>) -> Result<Environment, String> {
        if let Some(header) = &self.header {
            if let Some(value) = request.headers().get(header) {
                let name = value.to_str().map_err(|_| format!("the {header} header is not text"))?.trim();
                return self.environment(name, ChosenBy::Header).ok_or_else(|| format!("environment `{}` is not served here (served: {})", printable(name), self.allowed_list));
            }
        }
        if let Some(host_name) = host_name(request) {
            if let Some(environment) = self.host_names.get(&host_name) {
                return Ok(self.environment(environment, ChosenBy::HostName).expect("host mappings are checked at build"));
            }
        }
        match &self.default {
            Some(default) => Ok(self.environment(default, ChosenBy::Default).expect("the default is checked at build")),
            None => Err(match &self.header {
                Some(header) => format!("no environment chosen: send the {header} header (served: {})", self.allowed_list),
                None => format!("no environment chosen for this host name (served: {})", self.allowed_list),
            }),
        }
    }
}

/// The request's host name, lower-cased and without the port: the `Host` header, else the URI's
/// authority (HTTP/2).
fn host_name<B>(request: &Request<B>) -> Option<String> {
    let authority = request.headers().get(HOST).and_then(|value| value.to_str().ok()).or_else(|| request.uri().host())?;
    let without_port = match authority.rsplit_once(':') {
        // `[::1]:8080` and `example.com:8080`; a bare IPv6 literal keeps its colons.
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && (!name.contains(':') || name.ends_with(']')) => name,
        _ => authority,
    };
    Some(without_port.to_ascii_lowercase())
}

/// A client's text, shortened and stripped of control characters before it is echoed back.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

impl<S> tower_layer::Layer<S> for EnvironmentLayer {
    type Service = EnvironmentService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnvironmentService { inner, selector: self.selector.clone() }
    }
}

/// The service [`EnvironmentLayer`] wraps around another.
#[derive(Clone)]
pub struct EnvironmentService<S> {
    inner: S,
    selector: Arc<Selector>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for EnvironmentService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.selector.select(&request) {
            Ok(environment) => {
                request.extensions_mut().insert(environment);
                Either::Right(self.inner.call(request))
            }
            Err(message) => {
                let mut response = Response::new(ResBody::from(format!("{message}\n")));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
                Either::Left(ready(Ok(response)))
            }
        }
    }
}
