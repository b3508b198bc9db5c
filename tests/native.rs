//! Native answers (issue 4): what Rust answers without Node, and that it is never stale.
//!
//! Byte-for-byte equality with `next start` is the differential test's subject
//! (`tests/differential.rs`); these tests check the rules around it: Next's headers on
//! assets, refused traversals, what goes to Node, and that a page revalidated or
//! regenerated in Node is what the next native answer serves. Responses carry
//! `x-tower-next-native` (`NextOptions::mark_native_responses`) so a silent fall-back to
//! Node cannot pass for a native answer.

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use axum::Router;
use reqwest::{StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_next::{Next, NextLayer, NextOptions};

const NATIVE: &str = "x-tower-next-native";

/// Tests that make Next write pages take turns: they share the fixture's build folder, and
/// another server's writes would show up in this one's cache unannounced.
static WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fixture as a fallback service with one worker, with native answers marked.
async fn start(options: NextOptions) -> (Next, SocketAddr) {
    start_with(options, 1).await
}

/// The same with `workers` workers.
async fn start_with(options: NextOptions, workers: usize) -> (Next, SocketAddr) {
    let options = options.workers(workers);
    support::init_tracing();
    let next = Next::prepare(options.mark_native_responses(true))
        .await
        .expect("prepare the fixture");
    let addr = support::serve(Router::new().fallback_service(next.service())).await;
    (next, addr)
}

struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Answer {
    fn native(&self) -> Option<&str> {
        self.headers.get(NATIVE).and_then(|v| v.to_str().ok())
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The number in `<span id="stamp">` (or `id="generated"`) of the fixture's pages.
    fn stamp(&self) -> u64 {
        for marker in [r#"id="stamp">"#, r#"id="generated">"#, r#""stamp":"#] {
            if let Some(start) = self.body.find(marker) {
                let digits: String = self.body[start + marker.len()..]
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                return digits.parse().expect("a stamp");
            }
        }
        panic!("no stamp in {}", &self.body[..self.body.len().min(400)]);
    }
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(reqwest::Method::GET, addr, path, headers).await
}

async fn send(
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = support::client().request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// A request written byte for byte (an HTTP client would normalise `..` away).
async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:3000\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Issue 13, item 6: opt-in brotli for hashed assets. Off by default (`next start` never
/// sends it); on, a client that accepts `br` gets the file compressed once in the
/// background, with the identity answer's headers, the encoding and `Vary`.
#[tokio::test(flavor = "multi_thread")]
async fn brotli_for_hashed_assets_only_when_opted_in() {
    let brotli_get = |addr: SocketAddr, path: String| async move {
        support::client()
            .get(format!("http://{addr}{path}"))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .send()
            .await
            .unwrap()
    };
    let (next, addr) = start(support::options()).await;
    let chunk = support::first_static_asset(&get(addr, "/", &[]).await.body);
    for _ in 0..3 {
        let answer = brotli_get(addr, chunk.clone()).await;
        assert_ne!(
            answer
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("br"),
            "brotli without opting in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    next.shutdown().await;

    let (next, addr) = start(support::options().brotli(8 * 1024 * 1024)).await;
    let identity = get(addr, &chunk, &[]).await;
    let mut compressed = None;
    for _ in 0..50 {
        let answer = brotli_get(addr, chunk.clone()).await;
        assert_eq!(answer.status(), StatusCode::OK);
        if answer
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap())
            == Some("br")
        {
            compressed = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let compressed = compressed.expect("a brotli answer within 5 s");
    let headers = compressed.headers().clone();
    assert_eq!(headers["cache-control"], identity.header("cache-control"));
    assert_eq!(headers["content-type"], identity.header("content-type"));
    assert_eq!(headers["etag"], identity.header("etag"));
    assert!(
        headers["vary"]
            .to_str()
            .unwrap()
            .contains("Accept-Encoding"),
        "{headers:?}"
    );
    let body = compressed.bytes().await.unwrap();
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
    assert_eq!(plain, identity.body.as_bytes(), "brotli of another file");
    assert!(body.len() < plain.len());
    eprintln!("{chunk}: {} bytes, {} with brotli", plain.len(), body.len());
    // A client without `br` gets next start's answer.
    let plain_answer = get(addr, &chunk, &[("accept-encoding", "gzip")]).await;
    assert_ne!(plain_answer.header("content-encoding"), "br");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hashed_assets_and_public_files_carry_nexts_headers() {
    let (next, addr) = start(support::options()).await;
    let home = get(addr, "/", &[]).await;
    let chunk = support::first_static_asset(&home.body);

    let asset = get(addr, &chunk, &[]).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.native(), Some("static"));
    assert_eq!(
        asset.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        asset.header("content-type"),
        "application/javascript; charset=UTF-8"
    );
    assert_eq!(asset.header("accept-ranges"), "bytes");
    assert!(
        asset.header("etag").starts_with("W/\""),
        "{}",
        asset.header("etag")
    );
    assert!(!asset.header("last-modified").is_empty());

    let etag = asset.header("etag").to_owned();
    let not_modified = get(addr, &chunk, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.native(), Some("static"));
    let since = asset.header("last-modified").to_owned();
    let not_modified = get(addr, &chunk, &[("if-modified-since", &since)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);

    let head = send(reqwest::Method::HEAD, addr, &chunk, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), asset.body.len().to_string());
    assert!(head.body.is_empty());

    let part = get(addr, &chunk, &[("range", "bytes=0-9")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.native(), Some("static"));
    assert_eq!(
        part.header("content-range"),
        format!("bytes 0-9/{}", asset.body.len())
    );
    assert_eq!(part.body, asset.body[..10]);
    let suffix = get(addr, &chunk, &[("range", "bytes=-5")]).await;
    assert_eq!(suffix.body, asset.body[asset.body.len() - 5..]);

    let robots = get(addr, "/robots.txt", &[]).await;
    assert_eq!(robots.native(), Some("public"));
    assert_eq!(robots.header("cache-control"), "public, max-age=0");
    assert_eq!(robots.header("content-type"), "text/plain; charset=UTF-8");
    let svg = get(addr, "/images/dot.svg", &[]).await;
    assert_eq!(svg.native(), Some("public"));
    assert_eq!(svg.header("content-type"), "image/svg+xml");

    // Missing files are Next's to answer.
    let missing = get(addr, "/_next/static/chunks/nope.js", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.native(), None);
    next.shutdown().await;
}

/// A project that serves the fixture's build, with its own `public/` folder, holding
/// symlinks that lead out of it to a secret file (the second folder).
fn project_with_escaping_symlinks() -> (tempfile::TempDir, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET\n").unwrap();
    (linked_project(&secret), secrets)
}

fn linked_project(secret: &Path) -> tempfile::TempDir {
    let fixture = support::fixture();
    let dir = tempfile::tempdir().unwrap();
    for name in ["package.json", "next.config.js"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).unwrap();
    }
    for name in ["node_modules", ".next"] {
        std::os::unix::fs::symlink(fixture.join(name), dir.path().join(name)).unwrap();
    }
    let public = dir.path().join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("hello.txt"), "hello from public\n").unwrap();
    std::fs::write(public.join("inside-target.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink(public.join("inside-target.txt"), public.join("inside.txt"))
        .unwrap();
    std::os::unix::fs::symlink(secret, public.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(secret.parent().unwrap(), public.join("outside")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn path_traversal_is_refused() {
    let (project, _secrets) = project_with_escaping_symlinks();
    let (next, service) = start(NextOptions::new(project.path())).await;
    let layer = support::serve(
        Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .layer(NextLayer::new(next.clone())),
    )
    .await;

    let fine = get(service, "/hello.txt", &[]).await;
    assert_eq!(fine.body, "hello from public\n");
    assert_eq!(fine.native(), Some("public"));
    // A link that stays inside public/ is served as its target.
    assert_eq!(get(service, "/inside.txt", &[]).await.body, "inside\n");

    let attempts = [
        ("..", "/_next/static/../../package.json"),
        ("..", "/_next/static/chunks/../../BUILD_ID"),
        ("%2e%2e", "/_next/static/%2e%2e/%2e%2e/package.json"),
        ("%2e%2e", "/%2e%2e/%2e%2e/etc/passwd"),
        ("%2f", "/_next/static/..%2f..%2fpackage.json"),
        ("%2f", "/_next/static/chunks%2f..%2f..%2fBUILD_ID"),
        ("backslash", "/_next/static/..%5c..%5cBUILD_ID"),
        ("backslash", "/_next/static/chunks\\..\\..\\BUILD_ID"),
        ("NUL", "/hello.txt%00"),
        ("NUL", "/_next/static/chunks/a%00.js"),
        ("symlink out of public/", "/leak.txt"),
        ("symlink out of public/", "/outside/secret.txt"),
    ];
    for (kind, path) in attempts {
        for addr in [service, layer] {
            let (status, text) = raw_get(addr, path).await;
            // Backslashes get Next's own 308 to the `/` spelling, as from `next start`
            // (issue 10, item d): the client, not the server, then resolves the dots.
            let redirected = kind == "backslash" && status == 308;
            assert!(
                status == 400 || status == 404 || redirected,
                "{kind}: {path} answered {status}, not 400/404"
            );
            assert!(
                !text.contains("TOP-SECRET") && !text.contains("\"dependencies\""),
                "{kind}: {path} leaked a file: {text}"
            );
        }
    }
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_that_need_javascript_go_to_node() {
    let (next, addr) = start(support::options()).await;
    assert_eq!(checked(addr, "/about", &[]).await.native(), Some("page"));
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("/mw/other", &[]),                                // middleware matcher
        ("/old-about", &[]),                               // next.config redirect
        ("/about", &[("cookie", "__prerender_bypass=x")]), // draft mode
        ("/about", &[("next-action", "abc")]),             // Server Action
        ("/about", &[("x-prerender-revalidate", "abc")]),  // on-demand revalidation
        ("/about?__nextDataReq=1", &[]),                   // Next's own query keys
    ];
    for (path, headers) in cases {
        let answer = get(addr, path, headers).await;
        assert_eq!(
            answer.native(),
            None,
            "{path} {headers:?} was answered natively"
        );
    }
    for path in ["/dynamic", "/api/hello", "/ssr"] {
        assert_eq!(get(addr, path, &[]).await.native(), None, "{path}");
    }
    let post = send(reqwest::Method::POST, addr, "/about", &[]).await;
    assert_eq!(post.native(), None);
    next.shutdown().await;
}

/// Rust answers a page only once Node's answer to it matched Rust's (issue 10, item 4).
/// Here the page's file is changed on disk after start: Node reads the new one, the index
/// holds the old one, and the page stays Node's.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_node_answers_otherwise_stays_nodes() {
    let dir = support::fresh_copy(&support::fixture(), "changed-page");
    let (next, addr) = start(NextOptions::new(&dir)).await;
    // The build's file, and the runtime entry an earlier run on the fixture wrote (which
    // Next prefers).
    let mut files = vec![dir.join(".next/server/app/about.html")];
    let runtime = dir.join(".next/server/route-cache/APP_PAGE");
    for owner in std::fs::read_dir(&runtime).into_iter().flatten().flatten() {
        files.push(owner.path().join("$/about.html"));
    }
    for file in files.iter().filter(|file| file.is_file()) {
        let html = std::fs::read_to_string(file).unwrap();
        assert!(html.contains("About page"));
        std::fs::write(file, html.replace("About page", "About page, changed")).unwrap();
    }
    for _ in 0..3 {
        let answer = get(addr, "/about", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer.body.contains("About page, changed"),
            "{}",
            answer.body
        );
        assert_eq!(
            answer.native(),
            None,
            "Rust answered a page Node answers otherwise"
        );
    }
    // Another page is checked and answered natively as usual.
    assert_eq!(checked(addr, "/legacy", &[]).await.native(), Some("page"));
    next.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Next 16, Cache Components: a partially prerendered page is its static shell, sent by
/// Rust, then the rest of the page, rendered by a worker that resumes from the shell's
/// postponed state (issue 11, item 3). The shell is the build's bytes, the `'use cache'`
/// value in the hole is the cached one, and the page is whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_partially_prerendered_page_is_the_shell_then_the_resumed_render() {
    let Some(dir) = support::cache_components_fixture() else {
        eprintln!("skipped: Cache Components need Next 16");
        return;
    };
    let dir = support::fresh_copy(&dir, "ppr-shell");
    let (next, addr) = start(NextOptions::new(&dir)).await;
    let shell = std::fs::read_to_string(dir.join(".next/server/app/after-connection.html"))
        .expect("the build's shell");
    let first = checked(addr, "/after-connection", &[]).await;
    let second = get(addr, "/after-connection", &[]).await;
    for answer in [&first, &second] {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.native(), Some("page"));
        assert_eq!(answer.header("x-nextjs-postponed"), "1");
        assert!(
            answer.body.starts_with(&shell),
            "not the build's shell first"
        );
        assert!(answer.body.ends_with("</body></html>"), "not a whole page");
        assert!(
            answer.body.len() > shell.len() + 100,
            "nothing after the shell"
        );
    }
    // The hole's 'use cache' value is cached: the same in both answers.
    assert_eq!(first.stamp(), second.stamp());
    next.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn native_answers_can_be_switched_off() {
    let (next, addr) = start(support::options().serve_natively(false)).await;
    for path in ["/about", "/robots.txt", "/legacy"] {
        let answer = get(addr, path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.native(), None, "{path}");
    }
    next.shutdown().await;
}

/// `path` asked until it is answered natively: Node answers first, and Rust answers only
/// once that answer showed Rust's is the same (once per content). The native answer must
/// be the same page as Node's before it.
async fn checked(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let first = get(addr, path, headers).await;
    if first.native().is_some() {
        return first;
    }
    let second = get(addr, path, headers).await;
    assert!(
        second.native().is_some(),
        "{path} {headers:?}: Node's answer was not followed by a native one"
    );
    assert_eq!(second.body, first.body, "{path}: Node and Rust differ");
    second
}

/// A native answer of `path`, asked for up to 50 times (a page regenerated in the
/// background becomes native when the worker reports it).
async fn native_answer(addr: SocketAddr, path: &str) -> Answer {
    for _ in 0..50 {
        let answer = get(addr, path, &[]).await;
        if answer.native().is_some() {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered natively");
}

/// POSTs `revalidate`, then asks `path` until a native answer. Next renders the page again
/// and Rust does not answer the old one meanwhile: the first answer is not `before`'s
/// page. The render was reported before its answer left the worker: the next answer is
/// Node's, checked, then native, and all are the same new page; the native one is
/// returned.
async fn revalidated_then_new(
    addr: SocketAddr,
    revalidate: &str,
    path: &str,
    before: &Answer,
) -> Answer {
    let revalidated = send(reqwest::Method::POST, addr, revalidate, &[]).await;
    assert_eq!(revalidated.status, StatusCode::OK);
    let first = get(addr, path, &[]).await;
    assert_ne!(
        first.stamp(),
        before.stamp(),
        "the old page after POST {revalidate} (answered by {:?}, x-nextjs-cache {:?})",
        first.native(),
        first.header("x-nextjs-cache")
    );
    let second = checked(addr, path, &[]).await;
    assert_eq!(second.native(), Some("page"));
    assert_eq!(second.stamp(), first.stamp());
    second
}

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_path_is_followed_by_the_new_page() {
    revalidate_path(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_path_is_followed_by_the_new_page_with_two_workers() {
    revalidate_path(2).await;
}

async fn revalidate_path(workers: usize) {
    let _turn = WRITERS.lock().await;
    let (next, addr) = start_with(support::options(), workers).await;
    let before = native_answer(addr, "/stamp").await;
    let second = revalidated_then_new(addr, "/api/revalidate?path=/stamp", "/stamp", &before).await;
    assert_eq!(second.header("x-nextjs-cache"), "HIT");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_tag_is_followed_by_the_new_page() {
    revalidate_tag(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_tag_is_followed_by_the_new_page_with_two_workers() {
    revalidate_tag(2).await;
}

async fn revalidate_tag(workers: usize) {
    let _turn = WRITERS.lock().await;
    let (next, addr) = start_with(support::options(), workers).await;
    let before = native_answer(addr, "/stamp-tag").await;
    // `_rsc` empty: the hash Next 16 expects of an RSC request without router headers.
    let rsc_before = checked(addr, "/stamp-tag?_rsc=", &[("rsc", "1")]).await;
    assert_eq!(rsc_before.native(), Some("page"));
    revalidated_then_new(addr, "/api/revalidate?tag=stamp-tag", "/stamp-tag", &before).await;
    let rsc_after = checked(addr, "/stamp-tag?_rsc=", &[("rsc", "1")]).await;
    assert_eq!(rsc_after.native(), Some("page"));
    assert_ne!(
        rsc_after.body, rsc_before.body,
        "the old RSC payload after revalidateTag"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_demand_revalidation_of_a_pages_router_page() {
    on_demand_revalidation(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_demand_revalidation_of_a_pages_router_page_with_two_workers() {
    on_demand_revalidation(2).await;
}

async fn on_demand_revalidation(workers: usize) {
    let _turn = WRITERS.lock().await;
    let (next, addr) = start_with(support::options(), workers).await;
    let build_id = next.build_id().to_owned();
    let data_path = format!("/_next/data/{build_id}/ssg-stamp.json");
    let before = native_answer(addr, "/ssg-stamp").await;
    let data_before = checked(addr, &data_path, &[]).await;
    assert_eq!(data_before.native(), Some("data"));
    assert_eq!(data_before.stamp(), before.stamp());

    let revalidated = send(reqwest::Method::POST, addr, "/api/revalidate-ssg", &[]).await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    // `res.revalidate` wrote the new page before answering: the next answers are new
    // (Node's, checked, then native), HTML and data alike.
    let after = checked(addr, "/ssg-stamp", &[]).await;
    assert_eq!(after.native(), Some("page"));
    assert_ne!(
        after.stamp(),
        before.stamp(),
        "the old page after res.revalidate"
    );
    let data_after = checked(addr, &data_path, &[]).await;
    assert_eq!(data_after.native(), Some("data"));
    assert_eq!(data_after.stamp(), after.stamp());
    next.shutdown().await;
}

/// `/isr` has `revalidate = 5`. Past that, Next answers once with the stale page
/// (`x-nextjs-cache: STALE`) and regenerates it in the background; then the new page is
/// served. Rust must never answer a page that Next has already answered as stale.
#[tokio::test(flavor = "multi_thread")]
async fn isr_page_past_its_time_is_stale_once_then_new() {
    isr_past_its_time(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn isr_page_past_its_time_is_stale_once_then_new_with_two_workers() {
    isr_past_its_time(2).await;
}

async fn isr_past_its_time(workers: usize) {
    let _turn = WRITERS.lock().await;
    let (next, addr) = start_with(support::options(), workers).await;
    let started = Instant::now();
    let mut native_first: Option<u64> = None;
    let mut stale: Option<u64> = None;
    let mut native_after: Option<u64> = None;
    while started.elapsed() < Duration::from_secs(40) && native_after.is_none() {
        let answer = get(addr, "/isr", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        let stamp = answer.stamp();
        let cache = answer.header("x-nextjs-cache").to_owned();
        match answer.native() {
            Some(_) => {
                assert_eq!(cache, "HIT", "a native answer must be fresh");
                assert_ne!(Some(stamp), stale, "Rust answered a page Next called stale");
                match (native_first, stale) {
                    (None, _) => native_first = Some(stamp),
                    (Some(_), Some(_)) => native_after = Some(stamp),
                    _ => {}
                }
            }
            None if cache == "STALE" && native_first == Some(stamp) => stale = Some(stamp),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (Some(first), Some(old), Some(new)) = (native_first, stale, native_after) else {
        panic!(
            "expected native, then stale from Node, then native again: {native_first:?} {stale:?} {native_after:?}"
        );
    };
    assert_eq!(first, old);
    assert!(new > old, "the page after regeneration is the new one");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prerendered_pages_are_served_while_the_worker_restarts() {
    let (next, addr) = start(support::options().ready_wait(Duration::from_millis(100))).await;
    checked(addr, "/about", &[]).await;
    let pid = support::worker_pid(&next).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let page = get(addr, "/about", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.native(), Some("page"));
    assert!(page.body.contains("About page"));
    next.shutdown().await;
}

/// With a `cacheHandler` in next.config, the worker reports through a subclass of it: the
/// app's own handler still does the work, and a revalidated page is still never stale.
/// This handler writes from within its own `revalidateTag`, and does so before revalidating:
/// the revalidation is still reported before the response that asked for it (Next runs it
/// alongside the response), and the inner write does not wait on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_cache_handler_keeps_working_and_reporting() {
    let _turn = WRITERS.lock().await;
    let folder = tempfile::tempdir().unwrap();
    let marker = folder.path().join("sets.log");
    let handler = folder.path().join("cache-handler.js");
    let file_system_cache = support::fixture()
        .join("node_modules/next/dist/server/lib/incremental-cache/file-system-cache.js");
    std::fs::write(
        &handler,
        format!(
            "const fs = require('fs');\n\
             const FileSystemCache = require({:?}).default;\n\
             module.exports = class AppCache extends FileSystemCache {{\n\
               async set(key, data, ctx) {{\n\
                 fs.appendFileSync({:?}, key + '\\n');\n\
                 return super.set(key, data, ctx);\n\
               }}\n\
               async revalidateTag(...args) {{\n\
                 await this.set('/bookkeeping', null, {{}});\n\
                 return super.revalidateTag(...args);\n\
               }}\n\
             }};\n",
            file_system_cache, marker
        ),
    )
    .unwrap();
    let conf = serde_json::json!({ "cacheHandler": handler });
    let (next, addr) = start(support::options().conf(conf)).await;

    let before = native_answer(addr, "/stamp").await;
    revalidated_then_new(addr, "/api/revalidate?path=/stamp", "/stamp", &before).await;
    let sets = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(
        sets.contains("/stamp"),
        "the app's cache handler was not used: {sets:?}"
    );
    next.shutdown().await;
}

/// `public/` files can change while the app runs; `next start` serves them as they are
/// now, and so does Rust (the bytes held in memory are used only while size and mtime
/// match).
#[tokio::test(flavor = "multi_thread")]
async fn an_edited_public_file_is_served_as_it_is_now() {
    let (project, _secrets) = project_with_escaping_symlinks();
    let (next, addr) = start(NextOptions::new(project.path())).await;
    let before = get(addr, "/hello.txt", &[]).await;
    assert_eq!(before.body, "hello from public\n");
    assert_eq!(before.native(), Some("public"));

    std::fs::write(
        project.path().join("public/hello.txt"),
        "edited while serving\n",
    )
    .unwrap();
    for _ in 0..3 {
        let after = get(addr, "/hello.txt", &[]).await;
        assert_eq!(after.body, "edited while serving\n");
        assert_eq!(after.native(), Some("public"));
        assert_ne!(after.header("etag"), before.header("etag"));
    }
    next.shutdown().await;
}

/// A page rendered on demand by an earlier run of the same build. Next 16 keeps the entry's
/// lifetime in its `.meta` and serves it from disk without writing it again, so the index
/// reads it at start (and Rust answers it once Node's first answer matched); Next 15 answers it STALE once and writes it again, which reports it.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_rendered_on_demand_by_an_earlier_run() {
    let _turn = WRITERS.lock().await;
    let (next, addr) = start(support::options()).await;
    let earlier = native_answer(addr, "/blog/other").await;
    next.shutdown().await;

    let (next, addr) = start(support::options()).await;
    let first = get(addr, "/blog/other", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    if support::next_major() >= 16 {
        // Node's answer, checked against the page the index read at start; then Rust's.
        assert_eq!(first.body, earlier.body);
        let second = get(addr, "/blog/other", &[]).await;
        assert_eq!(
            second.native(),
            Some("page"),
            "not read from the earlier run"
        );
        assert_eq!(second.body, earlier.body);
    } else {
        assert_eq!(first.native(), None);
        native_answer(addr, "/blog/other").await;
    }
    next.shutdown().await;
}
