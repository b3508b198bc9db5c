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

use std::{net::SocketAddr, process::Command, time::Duration};

use axum::Router;
use tower_next::{Next, NextLayer};

/// The routes measured: an App Router SSR page, a Pages Router SSR page, a route handler,
/// and (for reference) a prerendered page, which Node serves here too.
const ROUTES: &[(&str, &str)] = &[
    ("/dynamic", "SSR page (App Router, force-dynamic)"),
    ("/ssr", "SSR page (Pages Router, getServerSideProps)"),
    ("/api/hello", "route handler (JSON)"),
    ("/about", "prerendered page (through Node)"),
];

struct Run {
    requests_per_second: f64,
    requests: u64,
    p50: String,
    p99: String,
    errors: u64,
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

/// The processes of a process group (`next start` and anything it forked).
fn group(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if fields[2].parse::<u32>() == Ok(pgid) {
            pids.push(pid);
        }
    }
    pids
}

/// Where the CPU time of a server goes: the Rust process (none for `next start`) and Node.
struct Server {
    name: String,
    addr: SocketAddr,
    rust: bool,
    node: Vec<u32>,
}

impl Server {
    fn ticks(&self) -> (u64, u64) {
        let rust = if self.rust {
            cpu_ticks(std::process::id())
        } else {
            0
        };
        (rust, self.node.iter().map(|pid| cpu_ticks(*pid)).sum())
    }
}

fn wrk(addr: SocketAddr, path: &str, seconds: u64) -> Run {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "--latency", "-d"])
        .arg(format!("{seconds}s"))
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run wrk (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}");
    let field = |prefix: &str| {
        text.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_owned())
        })
    };
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        + field("Socket errors:").map_or(0, |v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    // "  12345 requests in 10.00s, 1.23MB read"
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ")?.0.parse().ok())
        .unwrap_or(0);
    Run {
        requests,
        requests_per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        errors,
    }
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
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let pool_workers: usize = std::env::var("POOL_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    support::fixture();
    let reference = support::next_start();
    let (single, single_addr) = tower_next(1).await;
    let (pool, pool_addr) = tower_next(pool_workers).await;
    let pids = |next: &Next| -> Vec<u32> {
        next.pool_status()
            .workers
            .iter()
            .filter_map(|w| w.pid)
            .collect()
    };
    let servers = [
        Server {
            name: "next start".into(),
            addr: reference.addr,
            rust: false,
            node: group(reference.child.id()),
        },
        Server {
            name: "tower-next, 1 worker".into(),
            addr: single_addr,
            rust: true,
            node: pids(&single),
        },
        Server {
            name: format!("tower-next, pool of {pool_workers}"),
            addr: pool_addr,
            rust: true,
            node: pids(&pool),
        },
    ];

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n`wrk -t2 -c32 -d{seconds}s --latency`, {rounds} rounds taking turns, after a {}s warm-up per server and route; the median run; {} cores; load average before: {}\n",
        seconds.min(3),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| route | server | req/s, median (all runs) | p50 | p99 | errors | vs next start | CPU µs/request: Rust + Node |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (path, what) in ROUTES {
        // Warm up every server on this route, then measure them in turns, `rounds` times:
        // a burst of other load on the machine then hits every server alike.
        for server in &servers {
            wrk(server.addr, path, seconds.min(3));
        }
        let mut runs: Vec<Vec<(Run, f64, f64)>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (server, runs) in servers.iter().zip(&mut runs) {
                let (rust_before, node_before) = server.ticks();
                let run = wrk(server.addr, path, seconds);
                let (rust_after, node_after) = server.ticks();
                // Ticks are 10 ms; per request in µs.
                let per_request = |ticks: u64| ticks as f64 * 10_000.0 / run.requests.max(1) as f64;
                let cpu = (
                    per_request(rust_after - rust_before),
                    per_request(node_after - node_before),
                );
                runs.push((run, cpu.0, cpu.1));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let mut baseline = None;
        for (server, mut runs) in servers.iter().zip(runs) {
            // The median run by throughput.
            runs.sort_by(|a, b| a.0.requests_per_second.total_cmp(&b.0.requests_per_second));
            let all: Vec<String> = runs
                .iter()
                .map(|(run, _, _)| format!("{:.0}", run.requests_per_second))
                .collect();
            let (run, rust, node) = &runs[runs.len() / 2];
            let base = *baseline.get_or_insert(run.requests_per_second);
            println!(
                "| `{path}` {what} | {} | {:.0} ({}) | {} | {} | {} | {:.2}x | {:.0} + {:.0} |",
                server.name,
                run.requests_per_second,
                all.join(", "),
                run.p50,
                run.p99,
                run.errors,
                run.requests_per_second / base,
                rust,
                node,
            );
        }
    }
    single.shutdown().await;
    pool.shutdown().await;
    drop(reference);
}
