//! Two hosts, one cache (issue: one cache, items 3 and 4): two `Next` instances on the
//! same build share their cache through a real Redis. A revalidation on one host is
//! served by the other, an entry one host rendered is served by the other as it is, and
//! killing the store neither fails a request nor loses an invalidation.

mod support;

#[path = "support/redis.rs"]
mod redis_server;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::Router;
use redis_server::RedisServer;
use reqwest::StatusCode;
use tokio::sync::Mutex;
use tower_next::{Next, NextOptions};

/// The tests write to one build's cache entries: one at a time.
static TURN: Mutex<()> = Mutex::const_new(());

async fn host(options: NextOptions, url: &str) -> (Next, SocketAddr) {
    support::init_tracing();
    let next = Next::prepare(
        options
            .workers(1)
            .shared_cache(url)
            .mark_native_responses(true),
    )
    .await
    .expect("prepare the fixture");
    let addr = support::serve(Router::new().fallback_service(next.service())).await;
    (next, addr)
}

struct Answer {
    status: StatusCode,
    native: Option<String>,
    body: String,
}

impl Answer {
    fn stamp(&self) -> u64 {
        let marker = r#"id="stamp">"#;
        let start =
            self.body.find(marker).unwrap_or_else(|| {
                panic!("no stamp in {}", &self.body[..self.body.len().min(300)])
            }) + marker.len();
        let digits: String = self.body[start..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a stamp")
    }
}

async fn send(method: reqwest::Method, addr: SocketAddr, path: &str) -> Answer {
    let response = support::client()
        .request(method, format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("{path}: {err}"));
    Answer {
        status: response.status(),
        native: response
            .headers()
            .get("x-tower-next-native")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(reqwest::Method::GET, addr, path).await
}

/// Asks `path` on `addr` until its stamp is not `old` (at most 10 s), and says how long
/// that took.
async fn until_new(addr: SocketAddr, path: &str, old: u64) -> (Answer, Duration) {
    let start = Instant::now();
    loop {
        let answer = get(addr, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        if answer.stamp() != old {
            return (answer, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path} on {addr} still shows the old page 10 s after the revalidation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revalidation_on_one_host_is_served_by_every_host() {
    let _turn = TURN.lock().await;
    let redis = RedisServer::start(support::free_port());
    let (a_next, a) = host(support::options(), &redis.url()).await;
    let (b_next, b) = host(support::options(), &redis.url()).await;

    // App Router, revalidateTag: the tagged page's new render, made on A, is what B
    // answers (the entry is shared, not rendered again).
    // Node's answer first (checked), then Rust's.
    get(b, "/stamp-tag").await;
    let before = get(b, "/stamp-tag").await;
    assert_eq!(before.native.as_deref(), Some("page"));
    let revalidated = send(reqwest::Method::POST, a, "/api/revalidate?tag=stamp-tag").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    let (on_a, _) = until_new(a, "/stamp-tag", before.stamp()).await;
    let (on_b, propagation) = until_new(b, "/stamp-tag", before.stamp()).await;
    assert_eq!(
        on_b.stamp(),
        on_a.stamp(),
        "B rendered the page again instead of answering A's entry"
    );
    eprintln!("revalidateTag on A reached B's answers in {propagation:?}");

    // Pages Router, res.revalidate: A writes the page, B's native answer steps aside and
    // B answers A's entry.
    let before = get(b, "/ssg-stamp").await;
    let revalidated = send(reqwest::Method::POST, a, "/api/revalidate-ssg").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    let on_a = get(a, "/ssg-stamp").await;
    assert_ne!(
        on_a.stamp(),
        before.stamp(),
        "A: the old page after res.revalidate"
    );
    let (on_b, propagation) = until_new(b, "/ssg-stamp", before.stamp()).await;
    assert_eq!(on_b.stamp(), on_a.stamp(), "B rendered the page again");
    eprintln!("res.revalidate on A reached B's answers in {propagation:?}");

    a_next.shutdown().await;
    b_next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_store_fails_no_request_and_loses_no_invalidation() {
    let _turn = TURN.lock().await;
    let mut redis = RedisServer::start(support::free_port());
    let (a_next, a) = host(support::options(), &redis.url()).await;
    let (b_next, b) = host(support::options(), &redis.url()).await;
    let before = get(b, "/stamp-tag").await;

    // Store gone: both hosts keep answering, natively and through Node.
    redis.kill();
    for round in 0..40 {
        for (addr, path) in [(a, "/stamp-tag"), (b, "/ssr"), (a, "/ssr"), (b, "/about")] {
            let answer = get(addr, path).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "round {round}, {path} while the store is down: {}",
                answer.body
            );
        }
    }

    // A revalidation while the store is down reaches B once the store is back (empty:
    // both hosts resync).
    let revalidated = send(reqwest::Method::POST, a, "/api/revalidate?tag=stamp-tag").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    let (on_a, _) = until_new(a, "/stamp-tag", before.stamp()).await;
    assert_eq!(
        get(b, "/stamp-tag").await.stamp(),
        before.stamp(),
        "B cannot know yet"
    );
    redis.restart();
    let (on_b, propagation) = until_new(b, "/stamp-tag", before.stamp()).await;
    eprintln!(
        "a revalidation made while the store was down reached B {propagation:?} after it came back"
    );
    assert_ne!(on_b.stamp(), before.stamp());
    let _ = on_a;

    // And the hosts share again: a revalidation on B is served by A.
    let before = get(a, "/stamp-tag").await;
    let revalidated = send(reqwest::Method::POST, b, "/api/revalidate?tag=stamp-tag").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    until_new(a, "/stamp-tag", before.stamp()).await;

    a_next.shutdown().await;
    b_next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_unreachable_at_start_is_not_fatal() {
    let _turn = TURN.lock().await;
    let port = support::free_port();
    // Nothing listens there yet.
    let (a_next, a) = host(support::options(), &format!("redis://127.0.0.1:{port}")).await;
    let answer = get(a, "/ssr").await;
    assert_eq!(answer.status, StatusCode::OK);
    let _redis = RedisServer::start(port);
    let (b_next, b) = host(support::options(), &format!("redis://127.0.0.1:{port}")).await;
    // A connects in the background and then shares: B's revalidation reaches A.
    let before = get(a, "/stamp-tag").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let revalidated = send(reqwest::Method::POST, b, "/api/revalidate?tag=stamp-tag").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    until_new(a, "/stamp-tag", before.stamp()).await;
    a_next.shutdown().await;
    b_next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_entries_in_the_store_are_ignored() {
    let _turn = TURN.lock().await;
    let redis = RedisServer::start(support::free_port());
    let (a_next, a) = host(support::options(), &redis.url()).await;
    // Entries written by A: the page regenerated after a revalidation, and its data.
    let before = get(a, "/stamp-tag").await;
    let revalidated = send(reqwest::Method::POST, a, "/api/revalidate?tag=stamp-tag").await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    until_new(a, "/stamp-tag", before.stamp()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every entry in the store replaced by bytes no worker can decode.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tower-next:*:incremental:*")
        .query(&mut connection)
        .unwrap();
    assert!(!keys.is_empty(), "A wrote no entry through");
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(b"\xffnot an entry".as_slice())
            .query(&mut connection)
            .unwrap();
    }

    // A fresh host reads them, ignores them, and renders the page again.
    let (b_next, b) = host(support::options(), &redis.url()).await;
    for _ in 0..3 {
        let answer = get(b, "/stamp-tag").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.stamp();
    }
    a_next.shutdown().await;
    b_next.shutdown().await;
}

/// With `deploymentId` the cache's space is `<build id>@<deployment>`: another host's
/// changes in that space reach this host's native answers too (the store's stream names
/// the space percent-encoded, as the workers send it).
#[tokio::test(flavor = "multi_thread")]
async fn hosts_of_a_release_with_a_deployment_id_share_revalidations() {
    let _turn = TURN.lock().await;
    let redis = RedisServer::start(support::free_port());
    let dir = support::deployment_fixture("one");
    let (a_next, a) = host(NextOptions::new(&dir), &redis.url()).await;
    let (b_next, b) = host(NextOptions::new(&dir), &redis.url()).await;
    // Pages Router, rendered on demand (`fallback: 'blocking'`); `res.revalidate` writes
    // the new page without revalidating a tag.
    const PAGE: &str = "/product/3";
    let stamp = support::render_stamp;
    // Rendered on demand by A, then answered by A natively, and by B.
    let first = stamp(&get(a, PAGE).await.body);
    let mut native = false;
    for _ in 0..50 {
        let answer = get(a, PAGE).await;
        assert_eq!(stamp(&answer.body), first);
        if answer.native.is_some() {
            native = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(native, "A never answered its page natively");
    assert_eq!(stamp(&get(b, PAGE).await.body), first, "B rendered again");

    // Revalidated on B: A's native answer steps aside, and A answers B's new page.
    let revalidated = send(
        reqwest::Method::POST,
        b,
        &format!("/api/revalidate-page?path={PAGE}"),
    )
    .await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.body);
    let on_b = stamp(&get(b, PAGE).await.body);
    assert_ne!(on_b, first, "B: the old page after res.revalidate");
    let start = Instant::now();
    loop {
        let on_a = stamp(&get(a, PAGE).await.body);
        if on_a != first {
            assert_eq!(on_a, on_b, "A rendered the page again");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "A still answers the old page 10 s after B revalidated it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_next.shutdown().await;
    b_next.shutdown().await;
}

/// Next 16 `'use cache'`: an entry one host filled before another host started is that
/// host's too (one `next start` would answer the cached value), and the starting host's
/// worker copies it before it renders (it lists the store's keys).
#[tokio::test(flavor = "multi_thread")]
async fn a_use_cache_entry_is_shared_with_a_host_that_starts_later() {
    let Some(dir) = support::cache_components_fixture() else {
        eprintln!("skipped: Cache Components need Next 16");
        return;
    };
    let _turn = TURN.lock().await;
    let redis = RedisServer::start(support::free_port());
    const PAGE: &str = "/after-connection";
    let (a_next, a) = host(NextOptions::new(&dir), &redis.url()).await;
    let on_a = get(a, PAGE).await;
    assert_eq!(on_a.status, StatusCode::OK, "{}", on_a.body);
    assert_eq!(get(a, PAGE).await.stamp(), on_a.stamp(), "A: not cached");
    // Written through in the background: B starts once the store has it.
    let start = Instant::now();
    let (b_next, b) = loop {
        let (b_next, b) = host(NextOptions::new(&dir), &redis.url()).await;
        let on_b = get(b, PAGE).await;
        if on_b.stamp() == on_a.stamp() {
            break (b_next, b);
        }
        b_next.shutdown().await;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "B renders its own 'use cache' value, not A's"
        );
    };
    for _ in 0..5 {
        assert_eq!(get(b, PAGE).await.stamp(), on_a.stamp(), "B: not cached");
    }
    a_next.shutdown().await;
    b_next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_url_that_is_not_redis_is_refused() {
    let Err(err) = Next::prepare(support::options().shared_cache("http://example.com")).await
    else {
        panic!("an http:// URL is not a store");
    };
    assert!(
        matches!(err, tower_next::Error::InvalidOptions { .. }),
        "{err}"
    );
}
