//! The main usage shape: an axum app with its own routes, and Next.js as a layer that
//! takes the requests it owns (its pages, `/_next/*`, `public/`, …). Paths that neither
//! Rust nor Next routes get Next's own 404 page, as `next start` answers them.
//!
//! Add the fallback before `.layer(..)`: axum's `Router::fallback` and `Router::merge`
//! called after `.layer(NextLayer..)` replace the layered endpoint, and Next's pages would
//! then reach that fallback instead of Next.
//!
//! ```sh
//! cargo run --example axum_layer                      # dev mode
//! NODE_ENV=production cargo run --example axum_layer  # the production build
//! ```
mod common;

use axum::{Json, Router, routing::get};
use tower_next::NextLayer;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let next = common::prepare().await;

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Probes for orchestrators: readiness follows the workers and the shutdown.
        .route_service("/readyz", next.readiness())
        .route_service("/livez", next.liveness())
        .route(
            "/rust/hello",
            get(|| async { Json(serde_json::json!({ "from": "rust" })) }),
        )
        // Unknown paths: Next's 404 page, with its headers, RSC and conditional answers.
        .fallback_service(next.service())
        .layer(NextLayer::new(next.clone()));

    common::serve(app, next).await
}
