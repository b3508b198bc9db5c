//! A real browser through the layer: Debian's Chromium, driven by `tests/browser/check.mjs`
//! (playwright-core, never a downloaded browser), against the `axum_layer` shape (the
//! layer over a Router whose fallback is Next) with the seed's custom route `/a` → `/b`.
//! It checks hydration, client-side navigation (also to the explicit route), a server
//! action, and that the console stays clean.

mod support;

use std::time::Duration;

use axum::Router;
use tower_next::NextLayer;

#[tokio::test(flavor = "multi_thread")]
async fn browser_check_through_axum_layer() {
    let next = support::prepare().await;
    let app = Router::new()
        .fallback_service(next.service())
        .layer(NextLayer::new(next.clone()).route("/a", "/b"));
    let base_url = format!("http://{}", support::serve(app).await);
    // check.mjs bounds itself at 60 s.
    tokio::task::spawn_blocking(move || {
        support::browser::run_script("check.mjs", &[&base_url], Duration::from_secs(120))
    })
    .await
    .expect("the browser check ran");
    next.shutdown().await;
}
