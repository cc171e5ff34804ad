//! `EnvironmentLayer` driven through a tower stack: an allowed header, a disallowed one, none;
//! host names; the allow-list checked when the layer is built.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use potter_config::{ConfigHost, Options};
use potter_config_tower::{ChosenBy, Environment, EnvironmentLayer};
use tower::{service_fn, Layer, ServiceExt};

/// A tree with three environments; the host serves all three, the layer allows two.
fn host() -> (tempfile::TempDir, ConfigHost) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir_all(root.join("environments")).unwrap();
    std::fs::write(root.join("global.json"), r#"{ "api": { "greeting": "hello" } }"#).unwrap();
    for name in ["production", "staging", "development"] {
        std::fs::write(root.join(format!("environments/{name}.json")), format!(r#"{{ "api": {{ "greeting": "hello from {name}" }} }}"#)).unwrap();
    }
    let host = ConfigHost::open(Options::new(&root)).unwrap();
    (dir, host)
}

fn layer(host: &ConfigHost) -> EnvironmentLayer {
    EnvironmentLayer::builder(host)
        .allow(["production", "staging"])
        .header("x-environment")
        .host_name("staging.example.com", "staging")
        .default_environment("production")
        .build()
        .unwrap()
}

/// Sends one request through the layer to a handler that answers with what it was given.
async fn call(layer: &EnvironmentLayer, request: Request<()>) -> (StatusCode, String) {
    let handler = service_fn(|request: Request<()>| async move {
        let environment = request.extensions().get::<Environment>().expect("the layer always sets it").clone();
        let greeting: String = environment.view().get("api.greeting").unwrap();
        let chosen = match environment.chosen_by() {
            ChosenBy::Header => "header",
            ChosenBy::HostName => "host",
            ChosenBy::Default => "default",
        };
        Ok::<_, Infallible>(Response::new(format!("{} by {chosen}: {greeting}", environment.name())))
    });
    let response = layer.layer(handler).oneshot(request).await.unwrap();
    (response.status(), response.into_body())
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::get("/settings");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn an_allowed_header_selects_its_environment() {
    let (_dir, host) = host();
    let (status, body) = call(&layer(&host), request(&[("X-Environment", "staging")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "staging by header: hello from staging");
}

#[tokio::test]
async fn a_header_naming_an_environment_outside_the_allow_list_is_refused_and_never_reaches_the_handler() {
    let (_dir, host) = host();
    // `development` exists in the tree and the host serves it, but this service was not started for it.
    let long = "p".repeat(500);
    for name in ["development", "nowhere", " production-eu ", long.as_str()] {
        let (status, body) = call(&layer(&host), request(&[("x-environment", name)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(body.contains("is not served here (served: production, staging)"), "{body}");
        assert!(body.len() < 200, "a client's value is echoed shortened: {body}");
    }
    // The header wins over the host name, so a disallowed header is refused even on a mapped host.
    let (status, _) = call(&layer(&host), request(&[("host", "staging.example.com"), ("x-environment", "development")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_header_uses_the_host_name_then_the_default() {
    let (_dir, host) = host();
    let layer = layer(&host);
    assert_eq!(call(&layer, request(&[])).await.1, "production by default: hello from production");
    assert_eq!(call(&layer, request(&[("host", "Staging.Example.com:8443")])).await.1, "staging by host: hello from staging");
    assert_eq!(call(&layer, request(&[("host", "other.example.com")])).await.1, "production by default: hello from production");
}

#[tokio::test]
async fn without_a_default_a_request_that_chooses_nothing_is_refused() {
    let (_dir, host) = host();
    let layer = EnvironmentLayer::builder(&host).allow(["staging"]).header("x-environment").build().unwrap();
    let (status, body) = call(&layer, request(&[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("send the x-environment header"), "{body}");
}

#[test]
fn the_layer_refuses_at_start_up_an_allow_list_it_could_not_keep() {
    let (_dir, host) = host();
    let error = |builder: potter_config_tower::EnvironmentLayerBuilder<'_>| builder.build().err().expect("refused").to_string();
    assert!(error(EnvironmentLayer::builder(&host)).contains("no environment allowed"));
    assert!(error(EnvironmentLayer::builder(&host).allow(["qa"])).contains("`qa`"));
    assert!(error(EnvironmentLayer::builder(&host).allow(["staging"]).default_environment("production")).contains("default environment `production` is not among the allowed environments (staging)"));
    assert!(error(EnvironmentLayer::builder(&host).allow(["staging"]).host_name("www.example.com", "production")).contains("host name www.example.com"));
}

#[test]
fn a_host_that_does_not_serve_an_environment_cannot_be_asked_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir_all(root.join("environments")).unwrap();
    std::fs::write(root.join("global.json"), "{}").unwrap();
    std::fs::write(root.join("environments/production.json"), "{}").unwrap();
    std::fs::write(root.join("environments/staging.json"), "{}").unwrap();
    let mut options = Options::new(&root);
    options.environments = Some(vec!["staging".to_owned()]);
    let host = ConfigHost::open(options).unwrap();
    let error = EnvironmentLayer::builder(&host).allow(["staging", "production"]).build().err().unwrap().to_string();
    assert!(error.contains("`production`") && error.contains("not served by this process"), "{error}");
}
