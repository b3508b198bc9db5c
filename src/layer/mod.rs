//! [`NextLayer`]: a tower `Layer` that sends each request to Next.js or to the service it
//! wraps, by route ownership (see the README's "Who gets a request"), its middleware
//! [`NextMiddleware`] and their [`ResponseFuture`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_next::{Next, NextLayer, NextOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let next = Next::prepare(NextOptions::new("./web")).await?;
//! let app: Router = Router::new()
//!     .route("/healthz", get(|| async { "ok" }))
//!     .layer(NextLayer::new(next).route("/a", "/b"));
//! # Ok(()) }
//! ```

mod future;
mod middleware;
mod next_layer;

pub use future::ResponseFuture;
pub use middleware::NextMiddleware;
pub use next_layer::NextLayer;
