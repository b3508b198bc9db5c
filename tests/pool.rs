//! The worker pool (issue: the pool, items 1, 3 and 4): requests spread over the workers
//! by least outstanding requests, one cache for all workers, server actions across
//! workers, overload and timeout answers, graceful shutdown.

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use reqwest::StatusCode;
use tower_next::{Next, NextLayer, NextOptions, WorkerHealth};

async fn start(options: NextOptions) -> (Next, SocketAddr) {
    support::init_tracing();
    let next = Next::prepare(options).await.expect("prepare the fixture");
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    (next, addr)
}

/// Requests given to each worker of the current generation so far.
fn handled(next: &Next) -> Vec<u64> {
    next.pool_status()
        .workers
        .iter()
        .filter(|w| w.current)
        .map(|w| w.handled)
        .collect()
}

/// Sends one request and says which worker (index) it went to. Requests must not overlap.
async fn on_worker(
    next: &Next,
    send: impl Future<Output = reqwest::Response>,
) -> (usize, reqwest::Response) {
    let before = handled(next);
    let response = send.await;
    let after = handled(next);
    let changed: Vec<usize> = (0..after.len())
        .filter(|&i| after[i] != before[i])
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "one request, one worker: {before:?} -> {after:?}"
    );
    (changed[0], response)
}

/// The text of `<span id="{id}">` in a page.
fn span<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!(r#"id="{id}">"#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_go_to_the_worker_with_the_fewest_outstanding() {
    let (next, addr) = start(support::options().workers(2)).await;
    let client = support::client();
    let status = next.pool_status();
    assert_eq!(status.workers.len(), 2, "{status:?}");
    assert!(
        status
            .workers
            .iter()
            .all(|w| w.health == WorkerHealth::Ready && w.current)
    );

    // Two slow requests at once: the second goes to the idle worker.
    let slow = |delay: u64| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}/api/worker?delay={delay}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<serde_json::Value>().await.unwrap()["pid"]
                .as_u64()
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(slow(1500), async {
        // Sent once the first is in flight.
        while next.pool_status().workers.iter().all(|w| w.in_flight == 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slow(0).await
    });
    assert_ne!(
        a, b,
        "the second request waited behind the first on one worker"
    );

    // One after the other, ties rotate: both workers get work.
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..6 {
        pids.insert(slow(0).await);
    }
    assert_eq!(pids.len(), 2, "sequential requests all went to one worker");
    let status = next.pool_status();
    assert!(
        status
            .workers
            .iter()
            .all(|w| w.in_flight == 0 && w.handled >= 3),
        "{status:?}"
    );
    next.shutdown().await;
}

/// Reads `/isr` until each worker has answered it at least once; returns the generation
/// time each worker showed last.
async fn isr_on_each_worker(
    next: &Next,
    client: &reqwest::Client,
    addr: SocketAddr,
) -> Vec<String> {
    let mut seen: Vec<Option<String>> = vec![None; 2];
    for _ in 0..10 {
        let (worker, response) = on_worker(
            next,
            client
                .get(format!("http://{addr}/isr"))
                .send()
                .map(Result::unwrap),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        seen[worker] = Some(span(&html, "generated").to_owned());
        if seen.iter().all(Option::is_some) {
            return seen.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("/isr did not reach both workers: {seen:?}");
}

use futures::FutureExt;

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_path_on_one_worker_is_seen_by_every_worker() {
    let (next, addr) = start(support::options().workers(2)).await;
    let client = support::client();
    for round in 1..=2 {
        let before = isr_on_each_worker(&next, &client, addr).await;
        let (worker, response) = on_worker(
            &next,
            client
                .post(format!("http://{addr}/api/revalidate?path=/isr"))
                .send()
                .map(Result::unwrap),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let after = isr_on_each_worker(&next, &client, addr).await;
        support::progress(&format!(
            "round {round}: /isr before {before:?}, revalidated on worker {worker}, after {after:?}"
        ));
        for (i, shown) in after.iter().enumerate() {
            assert!(
                !before.contains(shown),
                "round {round}: worker {i} still shows the page from before revalidatePath ran on worker {worker}: {before:?} -> {after:?}"
            );
        }
        assert_eq!(
            after[0], after[1],
            "round {round}: the workers disagree on /isr: {after:?}"
        );
    }
    next.shutdown().await;
}
