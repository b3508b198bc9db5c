//! Next.js behind authentication: `/login` is Rust, every other request needs a session
//! cookie, and a request without one is answered `401` by Rust: it never reaches Node.
//!
//! ```sh
//! NODE_ENV=production cargo run --example auth
//! curl -i http://127.0.0.1:3000/about                                    # 401
//! curl -i -b session=demo-session-token http://127.0.0.1:3000/about      # the page
//! AUTH_SHAPE=layer NODE_ENV=production cargo run --example auth          # same, via Router::layer
//! ```
mod common;

use axum::{
    Router,
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use tower::ServiceBuilder;
use tower_next::NextService;

/// A fixed demo token, so the example stays small. A real app issues a random token per
/// login and checks it against its session store.
const SESSION_COOKIE: &str = "session=demo-session-token";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let next = common::prepare().await;

    // The same app written two ways; both keep Next.js behind `require_session`.
    let app = match std::env::var("AUTH_SHAPE").as_deref() {
        Ok("layer") => with_router_layer(next.service()),
        _ => with_service_builder(next.service()),
    };

    common::serve(app, next).await
}

/// tower's way: wrap the Next.js service in the middleware, use that as the fallback.
fn with_service_builder(next: NextService) -> Router {
    Router::new().route("/login", get(login)).fallback_service(
        ServiceBuilder::new()
            .layer(middleware::from_fn(require_session))
            .service(next),
    )
}

/// axum's way: a router for the protected part, `.layer(..)` on it, merged with the public
/// routes (a router's layer wraps its fallback too).
fn with_router_layer(next: NextService) -> Router {
    let protected = Router::new()
        .fallback_service(next)
        .layer(middleware::from_fn(require_session));
    Router::new().route("/login", get(login)).merge(protected)
}

/// Sets the session cookie and sends the browser to the app.
async fn login() -> impl IntoResponse {
    let cookie = format!("{SESSION_COOKIE}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/"))
}

/// Lets a request through only with the session cookie; answers `401` otherwise.
async fn require_session(request: Request, next: middleware::Next) -> Response {
    if has_session(request.headers()) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "log in first: GET /login\n").into_response()
    }
}

fn has_session(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .any(|cookie| cookie.trim() == SESSION_COOKIE)
}
