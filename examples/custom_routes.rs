//! The seed's custom routes: filename routes off (`useFileSystemPublicRoutes: false`), so
//! Next.js serves only the pages routed here, each with the query (`app.render`).
//!
//! ```sh
//! NODE_ENV=production cargo run --example custom_routes
//! curl 'http://127.0.0.1:3000/a?x=1'           # page /b, query {"x":"1"}
//! curl http://127.0.0.1:3000/posts/7           # page /post, query {"id":"7"}
//! curl 'http://127.0.0.1:3000/custom/ada?x=1'  # page /b, rendered by a handler
//! curl -i http://127.0.0.1:3000/about          # Next's 404 page: not routed
//! ```
mod common;

use axum::{
    Router,
    extract::{Path, Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_next::{Next, NextLayer, request_query};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let next = common::prepare().await;

    let app = Router::new()
        .route("/custom/{name}", get(custom))
        // Whatever nobody routes: Next's own 404 page, as `app.render404`.
        .fallback(not_found)
        .with_state(next.clone())
        .layer(
            NextLayer::new(next.clone())
                .use_file_system_public_routes(false)
                // `app.render(req, res, '/b', query)` for `/a`; path parameters join the query.
                .route("/a", "/b")
                .route("/posts/{id}", "/post"),
        );

    common::serve(app, next).await
}

/// A route with Rust logic before rendering: page `/b` with the request's query plus the
/// `name` from the path.
async fn custom(State(next): State<Next>, Path(name): Path<String>, request: Request) -> Response {
    let mut query = request_query(&request);
    query.push(("name".to_owned(), name));
    next.render(request, "/b", query).await.into_response()
}

async fn not_found(State(next): State<Next>, request: Request) -> Response {
    next.render_404(request).await.into_response()
}
