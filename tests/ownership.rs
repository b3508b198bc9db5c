//! Route ownership through the layer and the service (issue: the core, items 4 and 5):
//! every route of the fixture is Next's, the rest reaches the inner service; the
//! `useFileSystemPublicRoutes` switch and explicit routes.

mod support;

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
};
use tower_next::{Next, NextLayer, NextOptions};

use support::INNER;

fn inner_router() -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/rust/{*rest}", get(|| async { "rust" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "inner 404") });
    support::mark_inner(router)
}

/// Every kind of route in the fixture, as (path, a marker of its body).
const NEXT_ROUTES: &[(&str, &str)] = &[
    ("/", "Home page"),
    ("/about", "About page"),
    ("/about/", ""), // Next's trailing-slash redirect
    ("/dynamic", "xfh"),
    ("/isr", "generated"),
    ("/streaming", "Streaming shell"),
    ("/blog/hello", "hello"),
    ("/blog/other", "other"),
    ("/pricing", "Pricing"),
    ("/docs/a/b", "a/b"),
    ("/shop", ""),
    ("/shop/x", "x"),
    ("/action", "submit"),
    ("/api/hello", "world"),
    ("/api/ping", "pong"),
    ("/legacy", "Legacy page"),
    ("/ssr", ""),
    ("/ssg", "static-props"),
    ("/old-about", ""),
    ("/rewritten", "About page"),
    ("/mw/rewrite", "About page"),
    ("/mw/other", "Custom not found"),
    ("/robots.txt", "User-agent"),
    ("/hello.txt", "hello from public"),
    ("/images/dot.svg", "svg"),
];

#[tokio::test(flavor = "multi_thread")]
async fn layer_gives_next_its_routes_and_the_inner_service_the_rest() {
    let next = support::prepare().await;
    let addr = support::serve(inner_router().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();

    let home = client.get(format!("http://{addr}/")).send().await.unwrap();
    let asset = support::first_static_asset(&home.text().await.unwrap());
    let data = format!("/_next/data/{}/ssg.json", next.build_id());

    let mut paths: Vec<(&str, &str)> = NEXT_ROUTES.to_vec();
    paths.push((&asset, ""));
    paths.push((&data, "static-props"));
    for (path, marker) in paths {
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().get(INNER).is_none(),
            "{path} reached the inner service"
        );
        let status = response.status();
        assert!(
            status.is_success() || status.is_redirection() || path.starts_with("/mw/other"),
            "{path}: {status}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(marker), "{path}: body lacks {marker:?}");
    }

    for path in [
        "/healthz",
        "/rust/x/y",
        "/nope",
        "/blog",
        "/_nextx",
        "/api/nothing",
    ] {
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get(INNER).map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{path} did not reach the inner service"
        );
    }
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fallback_service_owns_everything_and_answers_unknown_paths_with_next_404() {
    let next = support::prepare().await;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(next.service());
    let addr = support::serve(router).await;
    let client = support::client();

    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let about = client
        .get(format!("http://{addr}/about"))
        .send()
        .await
        .unwrap();
    assert!(about.text().await.unwrap().contains("About page"));
    let unknown = client
        .get(format!("http://{addr}/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.text().await.unwrap().contains("Custom not found"));
    next.shutdown().await;
}

async fn check_file_system_routes_off(next: &Next, addr: std::net::SocketAddr) {
    let client = support::client();
    let get = |path: &str| client.get(format!("http://{addr}{path}"));

    // Filename routes of both routers, and navigations to them, reach the inner service.
    let data = format!("/_next/data/{}/ssg.json", next.build_id());
    for path in ["/about", "/legacy", "/api/hello", "/api/ping", "/b", &data] {
        let response = get(path).send().await.unwrap();
        assert!(
            response.headers().get(INNER).is_some(),
            "{path} reached Next with filename routes off"
        );
    }
    let rsc = get("/about").header("RSC", "1").send().await.unwrap();
    assert!(
        rsc.headers().get(INNER).is_some(),
        "an RSC request for /about reached Next"
    );

    // Explicit routes of both routers, with query and parameters.
    let page_b = get("/a?x=1").send().await.unwrap();
    assert_eq!(page_b.status(), StatusCode::OK);
    let html = page_b.text().await.unwrap();
    assert!(html.contains("Page B"), "{html}");
    assert!(
        html.contains("&quot;x&quot;:&quot;1&quot;"),
        "query lost: {html}"
    );
    let post = get("/posts/7").send().await.unwrap().text().await.unwrap();
    assert!(post.contains("post-id\">7<"), "{post}");
    let pages_b = get("/pa?q=2").send().await.unwrap().text().await.unwrap();
    assert!(
        pages_b.contains("Pages B") && pages_b.contains("&quot;q&quot;:&quot;2&quot;"),
        "{pages_b}"
    );
    let mut rsc = get("/a?x=1").header("RSC", "1").send().await.unwrap();
    if rsc.status() == StatusCode::TEMPORARY_REDIRECT {
        // Next 16 wants the `_rsc` cache-busting parameter; the redirect keeps the path.
        let location = rsc.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("/a?"),
            "redirected away from the explicit route: {location}"
        );
        rsc = get(&location).header("RSC", "1").send().await.unwrap();
    }
    assert_eq!(rsc.headers()["content-type"], "text/x-component");
    let pages_data = get(&format!("/_next/data/{}/pa.json?q=3", next.build_id()))
        .send()
        .await
        .unwrap();
    assert_eq!(pages_data.status(), StatusCode::OK);
    let json: serde_json::Value = pages_data.json().await.unwrap();
    assert_eq!(json["pageProps"]["query"]["q"], "3", "{json}");

    // Assets, public files and next.config rules still work.
    let asset = support::first_static_asset(&html);
    assert_eq!(get(&asset).send().await.unwrap().status(), StatusCode::OK);
    let robots = get("/robots.txt").send().await.unwrap();
    assert!(robots.headers().get(INNER).is_none());
    let redirect = get("/old-about").send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_system_routes_off_on_the_layer_keeps_explicit_routes() {
    let next = support::prepare().await;
    let layer = NextLayer::new(next.clone())
        .use_file_system_public_routes(false)
        .route("/a", "/b")
        .route("/posts/{id}", "/post")
        .route("/pa", "/pb");
    let addr = support::serve(inner_router().layer(layer)).await;
    check_file_system_routes_off(&next, addr).await;
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn file_system_routes_off_in_conf_is_honoured_and_conf_replaces_next_config() {
    support::init_tracing();
    let options = NextOptions::new(support::fixture())
        .conf(serde_json::json!({ "useFileSystemPublicRoutes": false, "poweredByHeader": false }));
    let next = Next::prepare(options).await.expect("prepare with conf");
    let layer = NextLayer::new(next.clone())
        .route("/a", "/b")
        .route("/posts/{id}", "/post")
        .route("/pa", "/pb");
    let addr = support::serve(inner_router().layer(layer)).await;
    check_file_system_routes_off(&next, addr).await;

    // next.config.js has no poweredByHeader setting; conf turns the header off.
    let response = support::client()
        .get(format!("http://{addr}/a"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().get("x-powered-by").is_none(),
        "conf was not applied"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn render_and_render_404_from_axum_handlers() {
    let next = support::prepare().await;
    let router = Router::new()
        .route(
            "/hello/{name}",
            get(
                |State(next): State<Next>,
                 axum::extract::Path(name): axum::extract::Path<String>,
                 request: Request| async move {
                    let mut query = tower_next::request_query(&request);
                    query.push(("name".into(), name));
                    next.render(request, "/b", query).await
                },
            ),
        )
        .route(
            "/legacy-here",
            get(|State(next): State<Next>, request: Request| async move {
                next.render(request, "/pb", [("from", "rust")]).await
            }),
        )
        .route(
            "/missing",
            get(|State(next): State<Next>, request: Request| async move {
                next.render_404(request).await.into_response()
            }),
        )
        .with_state(next.clone());
    let addr = support::serve(router).await;
    let client = support::client();

    let app_page = client
        .get(format!("http://{addr}/hello/tower?x=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(app_page.contains("Page B"));
    assert!(
        app_page.contains("&quot;name&quot;:&quot;tower&quot;")
            && app_page.contains("&quot;x&quot;:&quot;1&quot;"),
        "{app_page}"
    );
    let pages_page = client
        .get(format!("http://{addr}/legacy-here"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        pages_page.contains("Pages B") && pages_page.contains("&quot;from&quot;:&quot;rust&quot;"),
        "{pages_page}"
    );
    let missing = client
        .get(format!("http://{addr}/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("Custom not found"));
    next.shutdown().await;
}
