//! No framework: a hand-written hyper 1.x server (HTTP/1 and HTTP/2) that answers
//! `/api/rust` itself and gives every other request to Next.js, as the seed's
//! `createServer((req, res) => handle(req, res))` does.
//!
//! ```sh
//! NODE_ENV=production cargo run --example hyper_fallback
//! curl --http2-prior-knowledge http://127.0.0.1:3000/api/rust
//! ```
mod common;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response, header};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tower::ServiceExt;
use tower_next::{Body, ClientAddr, NextService};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let next = common::prepare().await;
    let handler = next.service();

    let listener = tokio::net::TcpListener::bind(common::address()).await?;
    common::announce(&next);

    // Each connection holds a receiver; `closed()` on the sender resolves when all are gone.
    let (shutdown, connections) = tokio::sync::watch::channel(());
    let signal = common::shutdown_signal(next.clone());
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = common::accept(&listener) => accepted,
            _ = &mut signal => break,
        };
        let service = service_fn({
            let handler = handler.clone();
            move |request| route(handler.clone(), peer, request)
        });
        let mut stop = connections.clone();
        tokio::spawn(async move {
            // Limits as in the other examples: Node's header count, a header-read timeout.
            if !common::request_started(&stream).await {
                return;
            }
            let builder = common::http_builder();
            // With upgrades: Next's dev-mode HMR WebSocket goes through here too.
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return log_error(result),
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
            log_error(connection.await);
        });
    }

    // Stop accepting, give open connections a while to finish their requests, stop Node.
    drop(listener);
    drop(connections);
    let _ = shutdown.send(());
    if tokio::time::timeout(Duration::from_secs(10), shutdown.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s, closing them");
    }
    next.shutdown().await;
    Ok(())
}

/// The hand-written router: one Rust route, Next.js for everything else.
async fn route(
    next: NextService,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if request.uri().path() == "/api/rust" {
        let json =
            serde_json::json!({ "from": "rust", "version": format!("{:?}", request.version()) });
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::full(json.to_string()))
            .expect("valid response"));
    }
    // axum passes the client address itself; here we tell Next.js (X-Forwarded-For).
    request.extensions_mut().insert(ClientAddr(peer));
    next.oneshot(request).await
}

fn log_error(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}
