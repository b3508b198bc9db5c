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
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_next::{NextLayer, telemetry};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let metrics = prometheus();
    let next = common::prepare().await;

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Probes for orchestrators: readiness follows the workers and the shutdown.
        .route_service("/readyz", next.readiness())
        .route_service("/livez", next.liveness())
        // Request durations by route and responder, the workers, the cache (Prometheus).
        .route("/metrics", get(move || async move { metrics.render() }))
        .route(
            "/rust/hello",
            get(|| async { Json(serde_json::json!({ "from": "rust" })) }),
        )
        // Unknown paths: Next's 404 page, with its headers, RSC and conditional answers.
        .fallback_service(next.service())
        .layer(NextLayer::new(next.clone()));

    common::serve(app, next).await
}

/// A Prometheus recorder for the `metrics` facade, where tower-next's metrics go
/// (`tower_next::telemetry`): `http.server.request.duration` is rendered as the histogram
/// `http_server_request_duration_seconds`.
fn prometheus() -> PrometheusHandle {
    let seconds = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets_for_metric(Matcher::Full(telemetry::REQUEST_DURATION.into()), &seconds)
        .and_then(|builder| builder.install_recorder())
        .expect("the Prometheus recorder installs once")
}
