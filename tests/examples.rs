//! Every example, run as its own binary against the fixture's production build, checked
//! over real HTTP: each shows one usage shape, and this is the proof that it works.

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, Version, header};

/// A response, read whole.
struct Page {
    status: StatusCode,
    version: Version,
    headers: header::HeaderMap,
    body: String,
}

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> Page {
    get_with(client, addr, path, None).await
}

async fn get_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> Page {
    let mut request = client.get(format!("http://{addr}{path}"));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {path}: {err}"));
    Page {
        status: response.status(),
        version: response.version(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// The JSON that the fixture's pages `/b` and `/pb` print in `<pre id="query">`.
fn query_json(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"id="query">"#)
        .unwrap_or_else(|| panic!("no #query in the page: {}", excerpt(html)))
        + r#"id="query">"#.len();
    let end = html[start..].find('<').unwrap() + start;
    let text = html[start..end]
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("#query {text:?}: {err}"))
}

/// The text of `<span id="post-id">` on the fixture's page `/post`.
fn post_id(html: &str) -> &str {
    let start = html
        .find(r#"id="post-id">"#)
        .unwrap_or_else(|| panic!("no #post-id in the page: {}", excerpt(html)))
        + r#"id="post-id">"#.len();
    let end = html[start..].find('<').unwrap() + start;
    &html[start..end]
}

fn excerpt(body: &str) -> &str {
    body.char_indices()
        .nth(600)
        .map_or(body, |(end, _)| &body[..end])
}

#[tokio::test]
async fn axum_layer() {
    let server = support::example("axum_layer", &[]);
    let client = support::client();

    let health = get(&client, server.addr, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, "ok", "/healthz is answered by Rust");
    // The orchestrator's probes (issue 13, item 2).
    let ready = get(&client, server.addr, "/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready\n")
    );
    let live = get(&client, server.addr, "/livez").await;
    assert_eq!(
        (live.status, live.body.as_str()),
        (StatusCode::OK, "alive\n")
    );

    let about = get(&client, server.addr, "/about").await;
    assert_eq!(about.status, StatusCode::OK, "{}", excerpt(&about.body));
    assert!(
        about.body.contains("About page"),
        "{}",
        excerpt(&about.body)
    );
    // next.config `headers()` for /about: the answer came through Next.js.
    assert_eq!(about.headers["x-custom-header"], "yes");

    // A Pages Router `[id]` page prerendered by `getStaticPaths`, and its trailing-slash
    // spelling (Next's 308): the example adds no custom routes that could shadow them.
    let post = get(&client, server.addr, "/posts/first").await;
    assert_eq!(post.status, StatusCode::OK, "{}", excerpt(&post.body));
    assert!(
        post.body.contains("The first post"),
        "{}",
        excerpt(&post.body)
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let slash = get(&no_redirects, server.addr, "/posts/first/").await;
    assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(slash.headers[header::LOCATION], "/posts/first");

    // Neither Rust nor Next routes it: the router's fallback is Next, whose 404 page
    // answers as `next start` does (its ETag, and a 304 to a conditional request).
    let nope = get(&client, server.addr, "/nope").await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert!(
        nope.body.contains("Custom not found"),
        "/nope should be Next's 404 page, got: {}",
        excerpt(&nope.body)
    );
    let etag = nope.headers[header::ETAG].to_str().unwrap();
    let conditional = client
        .get(format!("http://{}/nope", server.addr))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(conditional.status(), StatusCode::NOT_MODIFIED);

    // Issue 13, item 1: request durations by route and responder, at /metrics. One page
    // is one route however many URLs it serves; Rust's own routes carry axum's route;
    // a request is counted once (the 404 above went through the layer and the fallback).
    let _ = get(&client, server.addr, "/blog/hello").await;
    let chunk = support::first_static_asset(&about.body);
    assert_eq!(
        get(&client, server.addr, &chunk).await.status,
        StatusCode::OK
    );
    let metrics = get(&client, server.addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let count = |labels: &[&str]| -> Option<u64> {
        metrics
            .body
            .lines()
            .find(|line| {
                line.starts_with("http_server_request_duration_seconds_count{")
                    && labels.iter().all(|label| line.contains(label))
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
    };
    let posts = r#"http_route="/posts/[id]""#;
    assert!(
        count(&[posts, r#"status_code="200""#]).is_some(),
        "{}",
        metrics.body
    );
    assert_eq!(
        count(&[r#"http_route="/healthz""#, r#"responder="inner""#]),
        Some(1),
        "{}",
        metrics.body
    );
    let not_found: u64 = metrics
        .body
        .lines()
        .filter(|line| {
            line.starts_with("http_server_request_duration_seconds_count{")
                && line.contains(r#"status_code="404""#)
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(not_found, 1, "the 404 was counted once: {}", metrics.body);
    assert!(
        metrics
            .body
            .contains(r#"tower_next_workers{state="ready"}"#),
        "{}",
        metrics.body
    );
}

/// Issue 13, item 5: the examples' limits. As many headers as Node accepts pass; a head
/// over Node's 16 KiB gets `431` with a reason; a client that sends its headers slowly
/// (slowloris) is disconnected after the header-read timeout, and others are served
/// meanwhile.
#[tokio::test]
async fn axum_layer_limits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = support::example("axum_layer", &[("TOWER_NEXT_HEADER_TIMEOUT", "2")]);
    let client = support::client();

    let mut many = client.get(format!("http://{}/about", server.addr));
    for i in 0..300 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), StatusCode::OK);

    let big = client
        .get(format!("http://{}/about", server.addr))
        .header("x-big", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let reason = big.text().await.unwrap();
    assert!(reason.contains("16 KiB"), "{reason}");

    // Twenty slow clients: a header byte every 300 ms, never finishing.
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(b"GET /about HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if stream.write_all(b"x").await.is_err() {
                        return true;
                    }
                }
                // Closed by the server: a read ends.
                let mut rest = Vec::new();
                tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest))
                    .await
                    .is_ok()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = get(&client, server.addr, "/about").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "a normal client while slow ones trickle"
    );
    for handle in slow {
        assert!(handle.await.unwrap(), "a slow client was not disconnected");
    }

    // A connection that sends nothing, or only part of a first line (the protocol is not
    // known yet), is closed after the timeout too.
    for start in [&b""[..], &b"P"[..], &b"PRI * HTTP/2.0\r\n"[..]] {
        let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        silent.write_all(start).await.unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(6), silent.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a connection that sent {start:?} was still open after 6 s"
        );
    }

    // An idle keep-alive connection is closed once the header-read timeout passes
    // without a new request (hyper starts it while waiting for the next head).
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /about HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 64 * 1024];
    let read = idle.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), idle.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection was still open 6 s after its answer"
    );
}

#[tokio::test]
async fn hyper_fallback() {
    let server = support::example("hyper_fallback", &[]);
    let client = support::client();

    let rust = get(&client, server.addr, "/api/rust").await;
    assert_eq!(rust.status, StatusCode::OK);
    assert_eq!(rust.headers[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_str(&rust.body).unwrap();
    assert_eq!(json["from"], "rust");

    let about = get(&client, server.addr, "/about").await;
    assert_eq!(about.status, StatusCode::OK, "{}", excerpt(&about.body));
    assert!(
        about.body.contains("About page"),
        "{}",
        excerpt(&about.body)
    );

    // As a plain service, Next owns everything it gets: unknown paths get its 404 page.
    let nope = get(&client, server.addr, "/nope").await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert!(
        nope.body.contains("Custom not found"),
        "{}",
        excerpt(&nope.body)
    );

    // The server inserts `ClientAddr`: Next sees the client in X-Forwarded-For.
    let echo = get(&client, server.addr, "/api/echo-headers").await;
    let headers: serde_json::Value = serde_json::from_str(&echo.body).unwrap();
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");

    // HTTP/2 without TLS (prior knowledge), both to Rust and through to Next.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let rust = get(&h2, server.addr, "/api/rust").await;
    assert_eq!(rust.version, Version::HTTP_2);
    assert_eq!(rust.status, StatusCode::OK);
    let about = get(&h2, server.addr, "/about").await;
    assert_eq!(about.version, Version::HTTP_2);
    assert_eq!(about.status, StatusCode::OK, "{}", excerpt(&about.body));
    assert!(
        about.body.contains("About page"),
        "{}",
        excerpt(&about.body)
    );

    // Graceful shutdown: SIGTERM while a streamed page is half sent; the response
    // completes, then the server exits cleanly.
    let mut server = server;
    let streaming = client
        .get(format!("http://{}/streaming", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);
    let pid = rustix::process::Pid::from_raw(server.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let body = streaming.text().await.unwrap();
    assert!(body.contains("slow part done"), "{}", excerpt(&body));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "hyper_fallback still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "hyper_fallback exited with {status}");
}

/// `AUTH_SHAPE` unset: `ServiceBuilder` + `from_fn` around `next.service()`, as
/// `fallback_service`.
#[tokio::test]
async fn auth_service_builder() {
    check_auth(&[]).await;
}

/// `AUTH_SHAPE=layer`: the same middleware through `Router::layer`.
#[tokio::test]
async fn auth_router_layer() {
    check_auth(&[("AUTH_SHAPE", "layer")]).await;
}

async fn check_auth(env: &[(&str, &str)]) {
    let server = support::example("auth", env);
    let client = support::client();

    for round in 0..3 {
        for (path, cookie) in [
            ("/about", None),
            ("/api/hits", None),
            ("/api/hits", Some("session=forged")),
        ] {
            let page = get_with(&client, server.addr, path, cookie).await;
            assert_eq!(
                page.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: {path} with cookie {cookie:?}: {}",
                excerpt(&page.body)
            );
            assert!(page.body.starts_with("log in first"), "{}", page.body);
        }
    }

    let login = get(&client, server.addr, "/login").await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let set_cookie = login.headers[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap();
    assert!(cookie.starts_with("session="), "{set_cookie}");

    // The first request Next.js ever counted: none of the nine above reached Node.
    let hits = get_with(&client, server.addr, "/api/hits", Some(cookie)).await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.body);
    let hits: serde_json::Value = serde_json::from_str(&hits.body).unwrap();
    assert_eq!(hits, serde_json::json!({ "hits": 1 }));

    let about = get_with(&client, server.addr, "/about", Some(cookie)).await;
    assert_eq!(about.status, StatusCode::OK, "{}", excerpt(&about.body));
    assert!(
        about.body.contains("About page"),
        "{}",
        excerpt(&about.body)
    );
}

#[tokio::test]
async fn custom_routes() {
    let server = support::example("custom_routes", &[]);
    let client = support::client();

    let a = get(&client, server.addr, "/a?x=1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", excerpt(&a.body));
    assert!(a.body.contains("Page B"), "{}", excerpt(&a.body));
    assert_eq!(query_json(&a.body), serde_json::json!({ "x": "1" }));

    let post = get(&client, server.addr, "/posts/7").await;
    assert_eq!(post.status, StatusCode::OK, "{}", excerpt(&post.body));
    assert_eq!(post_id(&post.body), "7");
    // The path parameter wins over a query parameter of the same name.
    let post = get(&client, server.addr, "/posts/7?id=9&y=2").await;
    assert_eq!(post_id(&post.body), "7");

    // The handler that calls `next.render(req, "/b", query)`: request query + path param.
    let custom = get(&client, server.addr, "/custom/ada?x=1").await;
    assert_eq!(custom.status, StatusCode::OK, "{}", excerpt(&custom.body));
    assert!(custom.body.contains("Page B"), "{}", excerpt(&custom.body));
    assert_eq!(
        query_json(&custom.body),
        serde_json::json!({ "x": "1", "name": "ada" })
    );

    // Filename routes are off: /about is a file in app/ but not routed, so the router's
    // fallback answers it with `next.render_404`.
    for path in ["/about", "/"] {
        let page = get(&client, server.addr, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("About page"), "{}", excerpt(&page.body));
        assert!(!page.body.contains("Home page"), "{}", excerpt(&page.body));
        assert!(
            page.body.contains("Custom not found"),
            "{path}: {}",
            excerpt(&page.body)
        );
    }

    // `/_next/*` stays Next's with filename routes off: the routed page's assets load.
    let asset = support::first_static_asset(&a.body);
    let asset_response = get(&client, server.addr, &asset).await;
    assert_eq!(asset_response.status, StatusCode::OK, "{asset}");
}
