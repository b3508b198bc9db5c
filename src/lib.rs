//! Serve a Next.js application as a tower [`Service`](tower_service::Service) or
//! [`Layer`](tower_layer::Layer): the Next.js *custom server*, written in Rust.
//!
//! [`Next::prepare`] starts a pool of supervised Node.js workers running the app (the
//! seed's `next({...})` + `app.prepare()`; one worker per core in production), then:
//!
//! - [`NextLayer`] wraps your service: requests Next.js owns go to Next.js, the rest reach
//!   your routes;
//! - [`Next::service`] is the request handler, for `fallback_service` or behind your
//!   middleware;
//! - [`Next::render`] renders a given page for a request (the seed's `app.render`).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_next::{Next, NextLayer, NextOptions};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dev = std::env::var("NODE_ENV").as_deref() != Ok("production");
//!     let next = Next::prepare(NextOptions::new("./web").dev(dev)).await?;
//!     let app = Router::new()
//!         .route("/healthz", get(|| async { "ok" }))
//!         .layer(NextLayer::new(next.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! Errors while serving are HTTP responses, never `Err`: `503` with `Retry-After` when no
//! worker can take a request (starting, overloaded, shutting down), `504` when a worker
//! does not answer within [`NextOptions::request_timeout`], `502` with a one-line reason
//! when a worker failed mid-request. [`Next::shutdown`] stops gracefully and
//! [`Next::reload`] switches to a new build without dropping a request.

#![warn(missing_docs)]

mod assets;
mod body;
mod build;
mod cache;
mod error;
pub mod layer;
mod next;
mod options;
pub mod probe;
mod proxy;
mod routes;
mod runtime;
pub mod service;
pub mod telemetry;

pub use body::{Body, BoxError};
pub use error::Error;
/// The network type of [`NextOptions::trusted_proxies`] (from the `ipnet` crate).
pub use ipnet::IpNet;
pub use layer::NextLayer;
pub use next::{MAX_HEADER_BYTES, Next, request_query};
pub use options::NextOptions;
pub use probe::Probe;
pub use proxy::ClientAddr;
pub use runtime::{PoolStatus, WorkerHealth, WorkerStatus};
pub use service::NextService;
