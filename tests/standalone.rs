//! `output: 'standalone'` through the layer (issue: development mode…, item 6): Next runs
//! from `.next/standalone` with the config the build recorded, and Rust serves
//! `.next/static` and `public/`, which standalone output does not copy (and links them into
//! the standalone folder for Next's image optimizer, which reads them in the worker). The seed says a
//! custom server and standalone output cannot be combined; here they can.

mod support;

use axum::Router;
use reqwest::StatusCode;
use tower_next::{Next, NextLayer, NextOptions};

async fn check(dir: &std::path::Path) {
    support::init_tracing();
    // The image below must be fetched, not found in an earlier run's image cache.
    let _ = std::fs::remove_dir_all(dir.join(".next/standalone/.next/cache/images"));
    let next = Next::prepare(NextOptions::new(dir).mark_native_responses(true))
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
    // Next's optimizer fetches the image in its worker, from the folder it runs in.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".next/images-manifest.json")).unwrap())
            .unwrap();
    let width = &manifest["images"]["deviceSizes"][0];
    let image = get(format!(
        "/_next/image?url=%2Fimages%2Fphoto.jpg&w={width}&q=75"
    ))
    .await
    .unwrap();
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    let bytes = image.bytes().await.unwrap();
    // Then from the cache the standalone worker wrote: Node's, then Rust's.
    for native in [false, true] {
        let again = get(format!(
            "/_next/image?url=%2Fimages%2Fphoto.jpg&w={width}&q=75"
        ))
        .await
        .unwrap();
        assert_eq!(again.headers()["x-nextjs-cache"], "HIT");
        assert_eq!(again.headers().contains_key("x-tower-next-native"), native);
        assert_eq!(again.bytes().await.unwrap(), bytes);
    }
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_build_runs_through_the_layer_from_the_project_folder() {
    check(&support::standalone_fixture()).await;
}
