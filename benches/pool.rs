//! The worker pool against a single `next start`: the same build, the same run, side by
//! side (DESIGN.md §4: benchmarks are ratios, never absolute times in a test).
//!
//! ```sh
//! apt-get install -y wrk
//! cargo bench --bench pool                 # 10 s per run, 3 rounds
//! BENCH_SECONDS=5 BENCH_ROUNDS=5 POOL_WORKERS=2 cargo bench --bench pool
//! ```
//!
//! For each route, `wrk -t2 -c32 --latency` runs against `next start`, tower-next with one
//! worker, and tower-next with the pool (default: one worker per core), taking turns,
//! `BENCH_ROUNDS` times (default 3), after a warm-up run each. The table gives the median
//! run's requests per second (and every run's), p50 and p99 latency, the ratio to
//! `next start`, and the CPU time per request in the Rust process and in Node. On a
//! shared machine, other load shows as spread between the runs.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::SocketAddr;

use axum::Router;
use common::{Run, Server};
use tower_next::{Next, NextLayer};

/// The routes measured: an App Router SSR page, a Pages Router SSR page, a route handler,
/// and (for reference) a prerendered page, which Rust answers once Node answered it once.
const ROUTES: &[(&str, &str)] = &[
    ("/dynamic", "SSR page (App Router, force-dynamic)"),
    ("/ssr", "SSR page (Pages Router, getServerSideProps)"),
    ("/api/hello", "route handler (JSON)"),
    ("/about", "prerendered page (native)"),
];

/// wrk on `path`; a failed run ends the bench.
fn wrk(addr: SocketAddr, path: &str, seconds: u64) -> Run {
    common::wrk(addr, path, seconds).unwrap_or_else(|output| panic!("wrk failed: {output}"))
}

async fn tower_next(workers: usize) -> (Next, SocketAddr) {
    let next = Next::prepare(support::options().workers(workers))
        .await
        .expect("prepare the fixture");
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    (next, addr)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing to run.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds = common::knob("BENCH_SECONDS", 10);
    let rounds = common::knob("BENCH_ROUNDS", 3).max(1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool_workers = common::knob("POOL_WORKERS", cores as u64) as usize;
    support::fixture();
    let reference = support::next_start();
    let (single, single_addr) = tower_next(1).await;
    let (pool, pool_addr) = tower_next(pool_workers).await;
    let servers = [
        Server {
            name: "next start".into(),
            addr: reference.addr,
            rust: false,
            node: common::processes(2, reference.child.id(), None),
            redis: None,
        },
        Server {
            name: "tower-next, 1 worker".into(),
            addr: single_addr,
            rust: true,
            node: common::worker_pids(&single),
            redis: None,
        },
        Server {
            name: format!("tower-next, pool of {pool_workers}"),
            addr: pool_addr,
            rust: true,
            node: common::worker_pids(&pool),
            redis: None,
        },
    ];

    println!(
        "\n`wrk -t2 -c32 -d{seconds}s --latency`, {rounds} rounds taking turns, after a {}s warm-up per server and route; the median run; {}\n",
        seconds.min(3),
        common::machine(),
    );
    println!(
        "| route | server | req/s, median (all runs) | p50 | p99 | errors | vs next start | CPU µs/request: Rust + Node |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (path, what) in ROUTES {
        // Warm up every server on this route, then measure them in turns.
        for server in &servers {
            wrk(server.addr, path, seconds.min(3));
        }
        let runs = common::take_turns(&servers, path, seconds, rounds, wrk).await;
        for cells in common::cells(&servers, &runs) {
            println!("| `{path}` {what} | {cells}");
        }
    }
    single.shutdown().await;
    pool.shutdown().await;
    drop(reference);
}
