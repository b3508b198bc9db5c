//! Development mode through the layer (issue: development mode, items 1–4): Next compiles
//! on demand, the HMR WebSocket connects before any page request, WebSockets of the inner
//! service keep working, routes follow the folders live, and a browser sees HMR.
//!
//! Each test runs on its own copy of the fixture: dev mode writes into `.next`.

mod support;

use std::{path::Path, time::Duration};

use axum::{
    Router,
    extract::ws::{Message as AxumMessage, WebSocketUpgrade},
    response::IntoResponse,
    routing::get,
};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tower_next::{Next, NextLayer, NextOptions};

use support::INNER;

async fn prepare_dev(dir: &Path, turbo: bool) -> Next {
    support::init_tracing();
    let options = NextOptions::new(dir)
        .dev(true)
        .turbo(turbo)
        .start_timeout(Duration::from_secs(120));
    Next::prepare(options).await.expect("prepare in dev mode")
}

/// The user's own WebSocket route: echoes what it gets.
async fn echo(ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let AxumMessage::Text(_) = message
                && socket.send(message).await.is_err()
            {
                break;
            }
        }
    })
}

fn router(next: &Next) -> Router {
    Router::new()
        .route("/ws/echo", get(echo))
        .route("/healthz", get(|| async { ([(INNER, "1")], "ok") }))
        .fallback(|| async { ([(INNER, "1")], "inner") })
        .layer(NextLayer::new(next.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn hmr_socket_first_then_inner_websocket_and_live_routes() {
    let project = support::dev_project();
    let next = prepare_dev(project.path(), false).await;
    let addr = support::serve(router(&next)).await;

    // The very first request is the HMR socket: Next's upgrade handler must be attached.
    let hmr_path = if support::next_major() >= 16 {
        "/_next/hmr?id=tower-next-test"
    } else {
        "/_next/webpack-hmr"
    };
    let (mut hmr, response) = tokio::time::timeout(
        Duration::from_secs(90),
        tokio_tungstenite::connect_async(format!("ws://{addr}{hmr_path}")),
    )
    .await
    .expect("HMR socket connect timed out")
    .expect("HMR socket through the layer");
    assert_eq!(response.status(), 101);
    let first = tokio::time::timeout(Duration::from_secs(90), hmr.next())
        .await
        .expect("no HMR message");
    let text = first.unwrap().unwrap().into_text().unwrap();
    // Next 15 says {"action":"sync",…}, Next 16 {"type":"sync",…}.
    assert!(text.contains("\"sync\""), "not Next's HMR greeting: {text}");

    // A WebSocket route of the user's own still reaches the inner service.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/echo"))
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "ping");

    // The middleware matcher is known in dev.
    let client = support::client();
    let middleware = client
        .get(format!("http://{addr}/mw/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        middleware
            .headers()
            .get("x-middleware-hit")
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );

    // A page added while the server runs is Next's; deleted, it is not.
    let fresh = |addr| client.get(format!("http://{addr}/fresh")).send();
    assert!(fresh(addr).await.unwrap().headers().contains_key(INNER));
    let folder = project.path().join("app/fresh");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("page.js"),
        "export default function Fresh() { return <h1>Fresh page</h1>; }\n",
    )
    .unwrap();
    let owned = wait_until(Duration::from_secs(120), || async {
        match fresh(addr).await {
            Ok(response) if !response.headers().contains_key(INNER) => response
                .text()
                .await
                .is_ok_and(|html| html.contains("Fresh page")),
            _ => false,
        }
    })
    .await;
    assert!(owned, "the new page was not served by Next");
    std::fs::remove_dir_all(&folder).unwrap();
    let released = wait_until(Duration::from_secs(30), || async {
        fresh(addr)
            .await
            .is_ok_and(|response| response.headers().contains_key(INNER))
    })
    .await;
    assert!(released, "the deleted page is still owned by Next");

    // When the worker goes away, the tunnelled HMR socket is closed, not left hanging.
    next.shutdown().await;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = hmr.next().await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the HMR socket stayed open after the worker stopped"
    );
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

async fn hmr_in_browser(turbo: bool) {
    let project = support::dev_project();
    let next = prepare_dev(project.path(), turbo).await;
    let addr = support::serve(router(&next)).await;
    // Next's dev server only serves its dev resources (the HMR socket) to `localhost`, its
    // hostname and `allowedDevOrigins`, as `next dev` does: browse as `localhost`.
    let base_url = format!("http://localhost:{}", addr.port());
    let project_dir = project.path().to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        support::browser::run_script(
            "hmr.mjs",
            &[&base_url, &project_dir],
            Duration::from_secs(180),
        );
    })
    .await
    .unwrap();
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hmr_in_the_browser_with_webpack() {
    hmr_in_browser(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hmr_in_the_browser_with_turbopack() {
    hmr_in_browser(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compile_error_shows_next_error_page_and_the_server_keeps_running() {
    let project = support::dev_project();
    let next = prepare_dev(project.path(), false).await;
    let addr = support::serve(router(&next)).await;
    let client = support::client();
    let about = || client.get(format!("http://{addr}/about")).send();
    assert_eq!(about().await.unwrap().status(), 200);

    let page = project.path().join("app/about/page.js");
    let source = std::fs::read_to_string(&page).unwrap();
    std::fs::write(&page, "export default function Broken( {\n").unwrap();
    // A loaded machine may take longer than one request's timeout to compile: a failed
    // request is "not yet", not a failure.
    let broken = wait_until(Duration::from_secs(120), || async {
        about().await.is_ok_and(|response| response.status() == 500)
    })
    .await;
    assert!(
        broken,
        "a syntax error in a page did not give Next's 500 error page"
    );

    std::fs::write(&page, source).unwrap();
    let fixed = wait_until(Duration::from_secs(120), || async {
        match about().await {
            Ok(response) if response.status() == 200 => response
                .text()
                .await
                .is_ok_and(|html| html.contains("About page")),
            _ => false,
        }
    })
    .await;
    assert!(fixed, "the page did not recover after the fix");
    next.shutdown().await;
}

#[tokio::test]
async fn a_syntax_error_in_next_config_fails_prepare_with_the_file_named() {
    let project = support::dev_project();
    std::fs::write(
        project.path().join("next.config.js"),
        "module.exports = {\n",
    )
    .unwrap();
    support::init_tracing();
    let options = NextOptions::new(project.path()).dev(true);
    let err = Next::prepare(options)
        .await
        .expect_err("prepare with a broken next.config");
    let message = err.to_string();
    assert!(message.contains("next.config"), "{message}");
    assert!(message.contains("SyntaxError"), "{message}");
}
