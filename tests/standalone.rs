//! `output: 'standalone'` through the layer (issue: development mode…, item 6): Next runs
//! from `.next/standalone` with the config the build recorded, and Rust serves
//! `.next/static` and `public/`, which standalone output does not copy. The seed says a
//! custom server and standalone output cannot be combined; here they can.

mod support;

use axum::Router;
use reqwest::StatusCode;
use tower_next::{Next, NextLayer, NextOptions};

async fn check(dir: &std::path::Path) {
    support::init_tracing();
    let next = Next::prepare(NextOptions::new(dir))
        .await
        .expect("prepare a standalone build");
    let layer = NextLayer::new(next.clone()).route("/a", "/b");
    let addr = support::serve(Router::new().layer(layer)).await;
    let client = support::client();
    let get = |path: String| client.get(format!("http://{addr}{path}")).send();

    let home = get("/".into()).await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let html = home.text().await.unwrap();
    assert!(html.contains("Home page"));
    for (path, marker) in [
        ("/about", "About page"),
        ("/a?x=1", "Page B"),
        ("/legacy", "Legacy page"),
        ("/api/hello", "world"),
        ("/mw/rewrite", "About page"),
    ] {
        let response = get(path.into()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.text().await.unwrap().contains(marker), "{path}");
    }

    // Not in the standalone folder, served all the same.
    let asset = support::first_static_asset(&html);
    let response = get(asset.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{asset}");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let robots = get("/robots.txt".into()).await.unwrap();
    assert_eq!(robots.status(), StatusCode::OK);
    assert!(robots.text().await.unwrap().contains("User-agent"));
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_build_runs_through_the_layer_from_the_project_folder() {
    check(&support::standalone_fixture()).await;
}
