//! What every example shares: options from the environment, as the seed does
//! (`dev = NODE_ENV !== 'production'`), first-run setup of the bundled app, and a graceful
//! stop on Ctrl-C or SIGTERM.
#![allow(dead_code)] // each example uses a different part

use std::{net::SocketAddr, path::PathBuf, process::Command};

use tower_next::{Next, NextOptions};

/// Logs to stderr; `RUST_LOG` filters (default: info).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// `$HOST:$PORT`, default `127.0.0.1:3000` (in a container, `HOST=0.0.0.0` so that the
/// orchestrator's probes reach it).
pub fn address() -> SocketAddr {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let host = match std::env::var("HOST") {
        Ok(host) => host.parse::<std::net::IpAddr>().unwrap_or_else(|_| {
            eprintln!("HOST={host:?}: not an IP address (e.g. 0.0.0.0 or 127.0.0.1)");
            std::process::exit(2);
        }),
        Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
    };
    SocketAddr::new(host, port)
}

/// The most request headers a connection may send, as Node's HTTP server counts them
/// (`maxHeadersCount`, 2000); hyper's default is 100. More get `431`. Their total size is
/// bounded by Next's side: [`tower_next::MAX_HEADER_BYTES`].
pub const MAX_HEADERS: usize = 2000;

/// How long a client may take to send a request's headers (`TOWER_NEXT_HEADER_TIMEOUT`
/// seconds, default 10, as slow as a mobile client on a bad network may be): a slow client
/// (slowloris) is disconnected and cannot hold connections open indefinitely.
pub fn header_read_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("TOWER_NEXT_HEADER_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

/// How the examples' connections are served: HTTP/1.1 and HTTP/2 (prior knowledge) with
/// upgrades, [`MAX_HEADERS`] and [`header_read_timeout`].
pub fn http_builder() -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .max_headers(MAX_HEADERS)
        .header_read_timeout(header_read_timeout())
        .timer(hyper_util::rt::TokioTimer::new());
    // HTTP/2 has no header-read timeout: a connection whose client stops answering pings
    // is closed instead.
    builder
        .http2()
        .keep_alive_interval(Some(header_read_timeout()))
        .keep_alive_timeout(header_read_timeout())
        .timer(hyper_util::rt::TokioTimer::new());
    builder
}

/// Waits, at most the header-read timeout, until the client has sent enough to tell
/// HTTP/1 from HTTP/2 (a line, or HTTP/2's 24-byte preface): the protocol detection
/// itself waits without a limit, so a client that sends nothing, or a few bytes, would
/// hold the connection forever. `false`: close it.
pub async fn request_started(stream: &tokio::net::TcpStream) -> bool {
    let wait = async {
        let mut start = [0u8; 24];
        loop {
            match stream.peek(&mut start).await {
                Ok(0) | Err(_) => return false,
                // HTTP/2's preface starts with a line too: it is complete at 24 bytes.
                Ok(n) if n == start.len() => return true,
                Ok(n) if !start.starts_with(b"PRI ") && start[..n].contains(&b'\n') => {
                    return true;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(header_read_timeout(), wait)
        .await
        .unwrap_or(false)
}

/// The next connection, with `TCP_NODELAY` as Node's HTTP server sets it (otherwise
/// Nagle's algorithm can hold a small answer back for tens of ms). A failed accept (e.g.
/// out of file descriptors) is logged and retried after a pause instead of spinning.
pub async fn accept(
    listener: &tokio::net::TcpListener,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves `app` on [`address`] until Ctrl-C or SIGTERM ([`shutdown_signal`]), then waits
/// (up to 10 s) for open connections and stops Next.js. Each connection ([`accept`]) gets
/// the client address as axum's `ConnectInfo`.
pub async fn serve(app: axum::Router, next: Next) -> std::io::Result<()> {
    use tower::ServiceExt;
    let listener = tokio::net::TcpListener::bind(address()).await?;
    announce(&next);
    let builder = http_builder();
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let signal = shutdown_signal(next.clone());
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = &mut signal => break,
        };
        let app =
            app.clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                });
        let service = hyper_util::service::TowerToHyperService::new(app);
        let builder = builder.clone();
        let watcher = connections.watcher();
        tokio::spawn(async move {
            if !request_started(&stream).await {
                tracing::debug!(%peer, "no request within the header-read timeout; closed");
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s, closing them");
    }
    next.shutdown().await;
    Ok(())
}

/// The app in `$NEXT_DIR` (default: the app bundled with this repo), production when
/// `NODE_ENV=production`, with `$WORKERS` Node.js workers (default: one per core).
/// `TOWER_NEXT_NATIVE=off` sends every request to Node.js (for comparisons).
/// `TOWER_NEXT_SHARED_CACHE=redis://host:port` shares the cache with every host serving
/// the same build. `TOWER_NEXT_BROTLI=<MiB>` answers hashed assets with brotli to clients
/// that accept it, keeping at most that much (off by default: not `next start`'s bytes).
pub fn options() -> NextOptions {
    let dev = std::env::var("NODE_ENV").as_deref() != Ok("production");
    let dir = match std::env::var_os("NEXT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => bundled_app(dev),
    };
    // TOWER_NEXT_NATIVE=off sends every request to Node.js (for comparisons).
    let native = std::env::var("TOWER_NEXT_NATIVE").as_deref() != Ok("off");
    let options = NextOptions::new(dir)
        .dev(dev)
        .port(address().port())
        .serve_natively(native)
        .trusted_proxies(trusted_proxies())
        .unready_delay(std::time::Duration::from_secs(
            std::env::var("TOWER_NEXT_UNREADY_DELAY")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        ));
    let brotli_mib: u64 = std::env::var("TOWER_NEXT_BROTLI")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let options = options.brotli(brotli_mib * 1024 * 1024);
    let options = match std::env::var("TOWER_NEXT_SHARED_CACHE") {
        Ok(url) if !url.is_empty() => options.shared_cache(url),
        _ => options,
    };
    match std::env::var("WORKERS").ok().and_then(|n| n.parse().ok()) {
        Some(workers) if workers > 0 => options.workers(workers),
        _ => options,
    }
}

/// `TOWER_NEXT_TRUSTED_PROXIES`: the reverse proxies whose `X-Forwarded-*` headers reach
/// Next.js, as a comma-separated list of networks or addresses (`10.0.0.0/8,127.0.0.1`).
/// Unset: none (the example is the edge).
fn trusted_proxies() -> Vec<tower_next::IpNet> {
    let list = std::env::var("TOWER_NEXT_TRUSTED_PROXIES").unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<tower_next::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(Into::into))
                .unwrap_or_else(|_| {
                    tracing::error!(
                        item,
                        "TOWER_NEXT_TRUSTED_PROXIES: not a network or an address"
                    );
                    std::process::exit(2);
                })
        })
        .collect()
}

/// Prepares the app, or exits with the error's advice.
pub async fn prepare() -> Next {
    match Next::prepare(options()).await {
        Ok(next) => next,
        Err(err) => {
            tracing::error!("{err}");
            std::process::exit(1);
        }
    }
}

/// The bundled app, installed and (for production) built on first use.
fn bundled_app(dev: bool) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/app15");
    if !dir.join("node_modules/next").exists() {
        tracing::info!(dir = %dir.display(), "installing the example app's packages (npm ci, ~15 s)");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir));
    }
    if !dev && !dir.join(".next/BUILD_ID").exists() {
        tracing::info!(dir = %dir.display(), "building the example app (next build, ~30 s)");
        run(Command::new("npx")
            .args(["next", "build"])
            .current_dir(&dir));
    }
    dir
}

fn run(command: &mut Command) {
    let status = command.env("NEXT_TELEMETRY_DISABLED", "1").status();
    if !matches!(status, Ok(s) if s.success()) {
        tracing::error!(?command, ?status, "example app setup failed");
        std::process::exit(1);
    }
}

/// Says where to browse. In dev, `localhost`: Next's dev server serves its HMR socket only
/// to `localhost`, its `hostname` and next.config's `allowedDevOrigins`.
pub fn announce(next: &Next) {
    let addr = address();
    if next.is_dev() {
        tracing::info!("listening on {addr}: open http://localhost:{}", addr.port());
    } else {
        tracing::info!("listening on http://{addr}");
    }
}

/// Resolves on Ctrl-C or SIGTERM, after readiness has been false for
/// `TOWER_NEXT_UNREADY_DELAY` seconds (default 0) while requests were still served, and
/// starts Next's graceful shutdown: new requests get `503`, those in flight finish (up to the drain timeout), then the workers
/// stop. So the server's own graceful shutdown, which waits for open connections, never
/// waits on Next.js for long. Await `next.shutdown()` after the server has returned: it
/// waits for the stop to finish.
pub async fn shutdown_signal(next: Next) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Behind a load balancer: not ready at once, still serving for the delay.
    next.begin_shutdown().await;
    tracing::info!("shutting down");
    tokio::spawn(async move { next.shutdown().await });
}
