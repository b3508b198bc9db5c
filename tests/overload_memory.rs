//! Overload costs neither unbounded memory nor unbounded latency (issue: the pool, items 3
//! and 6): far more requests than the pool takes are answered `503` at once while the
//! process's memory stays bounded. Alone in its test binary, so the peak RSS is ours.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use futures::StreamExt;
use tower_next::{Next, NextLayer};

/// The process's peak resident set size since the last reset, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_shed_with_bounded_memory() {
    const REQUESTS: usize = 4000;
    const CONCURRENCY: usize = 200;
    support::init_tracing();
    let next = Next::prepare(
        support::options()
            .workers(2)
            .max_in_flight(4)
            .queue_size(16),
    )
    .await
    .unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let pids: Vec<u32> = next
        .pool_status()
        .workers
        .iter()
        .map(|w| w.pid.unwrap())
        .collect();
    let node_rss = || pids.iter().map(|pid| rss_kib(*pid)).sum::<u64>();
    // Warm up the route and the client's connections, then measure from here.
    for _ in 0..20 {
        let response = client
            .get(format!("http://{addr}/api/worker"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let node_before = node_rss();
    reset_peak_rss();
    let before = peak_rss_kib();

    let started = Instant::now();
    let statuses: Vec<(u16, Duration)> = futures::stream::iter(0..REQUESTS)
        .map(|_| {
            let client = client.clone();
            async move {
                let sent = Instant::now();
                let response = client
                    .get(format!("http://{addr}/api/worker?delay=100"))
                    .send()
                    .await
                    .expect("every request gets a response");
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                (status, sent.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let peak = peak_rss_kib();
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<Duration> = statuses
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, d)| *d)
        .collect();
    let mut shed_sorted = shed.clone();
    shed_sorted.sort();
    let p50 = shed_sorted
        .get(shed_sorted.len() / 2)
        .copied()
        .unwrap_or_default();
    let p99 = shed_sorted
        .get(shed_sorted.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    support::progress(&format!(
        "overload: {REQUESTS} requests ({CONCURRENCY} at a time) in {elapsed:.1?}: {ok} x 200, {} x 503 \
         (503 latency p50 {p50:.1?}, p99 {p99:.1?}); host peak RSS {} -> {} MiB; Node RSS {} -> {} MiB",
        shed.len(),
        before / 1024,
        peak / 1024,
        node_before / 1024,
        node_rss() / 1024,
    ));
    assert_eq!(ok + shed.len(), REQUESTS, "only 200s and 503s");
    assert!(shed.len() > REQUESTS / 2, "the overload was not shed");
    // Bounded: the queue holds at most 16 requests; what grows with the load is the
    // client side of this test (200 connections) and hyper's buffers.
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "peak RSS grew by {} MiB under overload",
        (peak - before) / 1024
    );
    next.shutdown().await;
}
