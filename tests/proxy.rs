//! A faithful proxy (issue: the core, item 6): streaming both ways, headers, conditional
//! requests, compression, forwarded headers, spoofing, server actions, middleware, HTTP/2.

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use futures::StreamExt;
use reqwest::StatusCode;
use tower_next::{Next, NextLayer};

async fn start() -> (Next, SocketAddr) {
    let next = support::prepare().await;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .layer(NextLayer::new(next.clone()));
    (next.clone(), support::serve(router).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_page_shell_arrives_before_its_slow_part() {
    let (next, addr) = start().await;
    let response = support::client()
        .get(format!("http://{addr}/streaming"))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut received = String::new();
    // Read until the shell shows; the slow part (800 ms later) must not be there yet.
    while !received.contains("Streaming shell") {
        let chunk = stream
            .next()
            .await
            .expect("body ended before the shell")
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !received.contains("slow part done"),
        "the proxy buffered the page: the slow part came with the shell"
    );
    while let Some(chunk) = stream.next().await {
        received.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(received.contains("slow part done"));
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn several_set_cookie_redirects_head_and_conditional_get_pass_through() {
    let (next, addr) = start().await;
    let client = support::client();
    let url = |path: &str| format!("http://{addr}{path}");

    let cookies = client.get(url("/api/cookies")).send().await.unwrap();
    let set_cookie: Vec<_> = cookies
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set_cookie.len(), 2, "{set_cookie:?}");
    assert!(
        set_cookie[0].starts_with("a=1") && set_cookie[1].starts_with("b=2"),
        "{set_cookie:?}"
    );

    let redirect = client.get(url("/old-about")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/about");

    let page = client.get(url("/about")).send().await.unwrap();
    let etag = page.headers()["etag"].clone();
    let length = page.bytes().await.unwrap().len();
    let head = client.head(url("/about")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"], etag);
    assert_eq!(
        head.headers()["content-length"],
        length.to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let not_modified = client
        .get(url("/about"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(not_modified.bytes().await.unwrap().is_empty());

    let gzip = client
        .get(url("/about"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let compressed = gzip.bytes().await.unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "not a gzip stream");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_headers_are_set_and_bridge_headers_cannot_be_spoofed() {
    let (next, addr) = start().await;
    let response = support::client()
        .get(format!("http://{addr}/api/echo-headers"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-tower-next-render", "/b")
        .header("x-tower-next-not-found", "1")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a spoofed instruction changed what Next did"
    );
    let headers: serde_json::Value = response.json().await.unwrap();
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert_eq!(headers["x-forwarded-proto"], "http", "{headers}");
    assert_eq!(headers["x-forwarded-host"], format!("{addr}"), "{headers}");
    assert_eq!(headers["host"], format!("{addr}"), "{headers}");
    let names: Vec<&str> = headers
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-tower-next-")),
        "{names:?}"
    );
    assert!(
        !names.contains(&"x-hop"),
        "a hop-by-hop header reached Next: {names:?}"
    );
    next.shutdown().await;
}

/// The fixture's greeting form (`/action`) filled with "Bob", as the browser posts it
/// without JavaScript (with the action's hidden inputs).
async fn greet_form(addr: SocketAddr) -> reqwest::multipart::Form {
    let html = support::client()
        .get(format!("http://{addr}/action"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = reqwest::multipart::Form::new().text("name", "Bob");
    for (name, value) in support::hidden_inputs(&html) {
        form = form.text(name, value);
    }
    form
}

/// Issue 10, item e: a Server Action posted through a reverse proxy with nginx's
/// default headers (`Host` is the upstream, `X-Forwarded-Host` the public host).
async fn post_action_through_a_proxy(addr: SocketAddr) -> reqwest::Response {
    let form = greet_form(addr).await;
    support::client()
        .post(format!("http://{addr}/action"))
        .header("host", "backend:3000")
        .header("x-forwarded-host", "public.example")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.7")
        .header("origin", "https://public.example")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_actions_behind_a_trusted_proxy_see_its_forwarded_host() {
    support::init_tracing();
    let next = Next::prepare(support::options().trusted_proxies(["127.0.0.1/32".parse().unwrap()]))
        .await
        .expect("prepare the fixture");
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let response = post_action_through_a_proxy(addr).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Hello, Bob!"));

    // The proxy's headers reach Next, with the proxy's own address appended.
    let echoed: serde_json::Value = support::client()
        .get(format!("http://{addr}/api/echo-headers"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "public.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echoed["x-forwarded-for"], "203.0.113.7, 127.0.0.1",
        "{echoed}"
    );
    assert_eq!(echoed["x-forwarded-host"], "public.example", "{echoed}");
    assert_eq!(echoed["x-forwarded-proto"], "https", "{echoed}");
    next.shutdown().await;

    // A peer outside the trusted networks: its forwarded headers are replaced, and Next
    // refuses the action whose Origin does not match the host it sees.
    let next = Next::prepare(support::options().trusted_proxies(["10.0.0.0/8".parse().unwrap()]))
        .await
        .expect("prepare the fixture");
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let response = post_action_through_a_proxy(addr).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_upload_streams_to_a_route_handler() {
    const SIZE: usize = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let (next, addr) = start().await;
    let chunks = futures::stream::iter(
        (0..SIZE / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK])),
    );
    let response = support::client()
        .post(format!("http://{addr}/api/hello"))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["bytes"], SIZE, "{json}");
    // That memory stays flat while it passes is checked in tests/upload_memory.rs, alone in
    // its process.
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_action_and_middleware_work_through_the_layer() {
    let (next, addr) = start().await;
    let client = support::client();

    // A server action posted as the HTML form does without JavaScript.
    let form = greet_form(addr).await;
    let response = client
        .post(format!("http://{addr}/action"))
        .header("origin", format!("http://{addr}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Hello, Bob!"));

    let rewrite = client
        .get(format!("http://{addr}/mw/rewrite"))
        .send()
        .await
        .unwrap();
    assert_eq!(rewrite.status(), StatusCode::OK);
    assert!(rewrite.text().await.unwrap().contains("About page"));
    let other = client
        .get(format!("http://{addr}/mw/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.headers()["x-middleware-hit"], "1");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_of_the_rust_server_work() {
    let (next, addr) = start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{addr}/api/echo-headers"))
        .header("cookie", "a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let headers: serde_json::Value = response.json().await.unwrap();
    assert_eq!(headers["host"], format!("{addr}"), "{headers}");
    assert_eq!(headers["cookie"], "a=1", "{headers}");
    let about = client
        .get(format!("http://{addr}/about"))
        .send()
        .await
        .unwrap();
    assert_eq!(about.status(), StatusCode::OK);
    assert!(about.text().await.unwrap().contains("About page"));
    next.shutdown().await;
}
