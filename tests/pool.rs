//! The worker pool (issue: the pool, items 1, 3 and 4): requests spread over the workers
//! by least outstanding requests, one cache for all workers, server actions across
//! workers, overload and timeout answers, graceful shutdown.

mod support;

use std::{net::SocketAddr, time::Duration};

use futures::FutureExt;

use axum::Router;
use reqwest::StatusCode;
use tower_next::{Next, NextLayer, NextOptions, WorkerHealth};

async fn start(options: NextOptions) -> (Next, SocketAddr) {
    support::init_tracing();
    // These tests follow requests to the workers and Next's own cache: no native answers
    // (tests/native.rs has those with a pool).
    let options = options.serve_natively(false);
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

/// Reads `/isr` until each worker has answered it; returns the generation time each
/// worker showed. With `settled`, until each answered from a fresh cache entry (`HIT`):
/// then no regeneration is under way in either worker, whose result a later request would
/// be given (Next coalesces requests for a page being regenerated, as `next start` does).
async fn isr_on_each_worker(
    next: &Next,
    client: &reqwest::Client,
    addr: SocketAddr,
    settled: bool,
) -> Vec<String> {
    let mut seen: Vec<Option<String>> = vec![None; 2];
    for _ in 0..50 {
        let (worker, response) = on_worker(
            next,
            client
                .get(format!("http://{addr}/isr"))
                .send()
                .map(Result::unwrap),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let hit = response
            .headers()
            .get("x-nextjs-cache")
            .is_some_and(|v| v == "HIT");
        let html = response.text().await.unwrap();
        if hit || !settled {
            seen[worker] = Some(span(&html, "generated").to_owned());
        } else {
            seen[worker] = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if seen.iter().all(Option::is_some) {
            return seen.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("/isr did not reach both workers: {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn revalidate_path_on_one_worker_is_seen_by_every_worker() {
    let (next, addr) = start(support::options().workers(2)).await;
    let client = support::client();
    for round in 1..=2 {
        let before = isr_on_each_worker(&next, &client, addr, true).await;
        let (worker, response) = on_worker(
            &next,
            client
                .post(format!("http://{addr}/api/revalidate?path=/isr"))
                .send()
                .map(Result::unwrap),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let after = isr_on_each_worker(&next, &client, addr, false).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn server_action_of_a_page_rendered_by_one_worker_runs_on_another() {
    let (next, addr) = start(support::options().workers(2)).await;
    let client = support::client();
    let (rendered_by, page) = on_worker(
        &next,
        client
            .get(format!("http://{addr}/action"))
            .send()
            .map(Result::unwrap),
    )
    .await;
    let html = page.text().await.unwrap();
    let post = || {
        let mut form = reqwest::multipart::Form::new().text("name", "Ada");
        for (name, value) in support::hidden_inputs(&html) {
            form = form.text(name, value);
        }
        client
            .post(format!("http://{addr}/action"))
            .header("origin", format!("http://{addr}"))
            .multipart(form)
            .send()
            .map(Result::unwrap)
    };
    // Ties rotate, so this goes to the other worker; if not, once more.
    let mut ran_on = rendered_by;
    for _ in 0..3 {
        let (worker, response) = on_worker(&next, post()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.text().await.unwrap().contains("Hello, Ada!"));
        ran_on = worker;
        if worker != rendered_by {
            break;
        }
    }
    assert_ne!(
        ran_on, rendered_by,
        "the action never reached the other worker"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_queue_requests_get_503_at_once() {
    const REQUESTS: usize = 40;
    let (next, addr) = start(support::options().workers(2).max_in_flight(2).queue_size(4)).await;
    let client = support::client();
    // 4 requests in flight (2 workers x 2), 4 queued, the rest answered at once.
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let next = next.clone();
        tokio::spawn(async move {
            let mut max_queued = 0;
            let mut max_in_flight = 0;
            for _ in 0..200 {
                let status = next.pool_status();
                max_queued = max_queued.max(status.queued);
                max_in_flight =
                    max_in_flight.max(status.workers.iter().map(|w| w.in_flight).max().unwrap());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (max_queued, max_in_flight)
        })
    };
    let requests = (0..REQUESTS).map(|_| {
        let client = client.clone();
        let finished = finished.clone();
        async move {
            let response = client
                .get(format!("http://{addr}/api/worker?delay=2500"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.text().await.unwrap();
            finished.lock().unwrap().push(status);
            (status, retry_after, body)
        }
    });
    let results = futures::future::join_all(requests).await;
    let (max_queued, max_in_flight) = sampler.await.unwrap();
    let ok = results.iter().filter(|r| r.0 == StatusCode::OK).count();
    let shed: Vec<_> = results
        .iter()
        .filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    support::progress(&format!(
        "overload: {REQUESTS} requests, {ok} answered 200, {} answered 503; at most {max_queued} queued, {max_in_flight} in flight on a worker",
        shed.len()
    ));
    assert_eq!(ok + shed.len(), REQUESTS, "only 200s and 503s: {results:?}");
    assert!(
        ok <= 8,
        "more requests were taken than in-flight + queue places: {ok}"
    );
    assert!(shed.len() >= REQUESTS - 8);
    assert!(
        shed.iter()
            .all(|(_, retry_after, body)| *retry_after && body.contains("busy")),
        "{shed:?}"
    );
    assert!(max_queued <= 4 && max_in_flight <= 2);
    // Shedding is immediate: every 503 came before the first slow request finished.
    let order = finished.lock().unwrap().clone();
    let first_ok = order.iter().position(|s| *s == StatusCode::OK).unwrap();
    assert!(
        order[first_ok..].iter().all(|s| *s == StatusCode::OK),
        "a 503 came after a slow request had finished: it waited: {order:?}"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_does_not_answer_in_time_gives_504() {
    let (next, addr) = start(
        support::options()
            .workers(1)
            .request_timeout(Duration::from_millis(500)),
    )
    .await;
    let client = support::client();
    let response = client
        .get(format!("http://{addr}/api/worker?delay=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("did not answer within")
    );
    assert_eq!(
        next.pool_status().workers[0].in_flight,
        0,
        "the timed-out request still holds its place"
    );
    let response = client
        .get(format!("http://{addr}/api/worker"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the worker is still usable"
    );
    next.shutdown().await;
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// The private folder of a worker: where its bridge script is.
fn private_dir(pid: u32) -> std::path::PathBuf {
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let script = cmdline
        .split('\0')
        .find(|arg| arg.ends_with("bridge.cjs"))
        .unwrap();
    std::path::Path::new(script).parent().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_requests_in_flight_then_stops_every_worker() {
    let (next, addr) = start(support::options().workers(2)).await;
    let client = support::client();
    let pids: Vec<u32> = next
        .pool_status()
        .workers
        .iter()
        .map(|w| w.pid.unwrap())
        .collect();
    let folder = private_dir(pids[0]);
    assert!(
        std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".sock"))
    );

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}/api/worker?delay=1500"))
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    while next.pool_status().workers.iter().all(|w| w.in_flight == 0) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutdown = tokio::spawn({
        let next = next.clone();
        async move { next.shutdown().await }
    });
    // Once shutting down, new requests are turned away...
    let refused = loop {
        let response = client
            .get(format!("http://{addr}/about"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("shutting down"));
    // ...while the one in flight finishes.
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    shutdown.await.unwrap();
    for pid in pids {
        assert!(!alive(pid), "worker {pid} still runs after shutdown");
    }
    assert!(
        !folder.exists(),
        "{} (sockets, scripts) left after shutdown",
        folder.display()
    );
    next.shutdown().await; // again: returns at once
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_for_requests_in_flight_only_up_to_the_drain_timeout() {
    let (next, addr) = start(
        support::options()
            .workers(1)
            .drain_timeout(Duration::from_millis(300)),
    )
    .await;
    let client = support::client();
    let pid = support::worker_pid(&next).unwrap();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            match client
                .get(format!("http://{addr}/api/worker?delay=60000"))
                .send()
                .await
            {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            }
        }
    });
    while next.pool_status().workers[0].in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_secs(30), next.shutdown())
        .await
        .expect("shutdown hung on a request that never ends");
    assert!(!alive(pid));
    let status = in_flight.await.unwrap();
    assert_eq!(status, 502, "the cut request gets a 502");
}
