//! The host's cache against `next start`'s (issue 9: one cache for every worker and every
//! host): the same build, the same run, side by side.
//!
//! ```sh
//! cargo bench --bench cache                # about 3.5 minutes once built
//! BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_PROPAGATION_ROUNDS=20 cargo bench --bench cache
//! ```
//!
//! `tests/fixtures/caching` (ISR) and `tests/fixtures/cache-components` (Next 16,
//! `cacheComponents: true`) are built once with `tests/fixtures/app16`'s Next.js, as the
//! tests build them (`target/fixture-<name>-16`, built again when their sources change),
//! and every server runs on a fresh copy of that build in `target/runs/`, so none starts
//! from what an earlier run cached. For a page rendered on demand (the first of
//! `lib/params.json`'s `onDemand` ids, warmed once), a fully prerendered Cache Components
//! page, a `'use cache'` value read after `connection()`, and a partially prerendered page
//! rendered on demand,
//! `wrk -t2 -c32 --latency` runs against `next start`, tower-next with the pool and its
//! own cache, and tower-next with the pool and `shared_cache` on a `redis-server` started
//! on a free loopback port, taking turns, `BENCH_ROUNDS` times (default 3) of
//! `BENCH_SECONDS` (default 4) after a warm-up. Then two hosts of one worker each share
//! that Redis, and `BENCH_PROPAGATION_ROUNDS` times (default 50) a revalidation is posted
//! to host A while host B is asked every 2 ms (at most 5 s) until its page's render stamp
//! changes: the time from A's answer to B's new page. The SSR rows (Node's CPU time per
//! request against `next start`'s, the pool's ratio) are `cargo bench --bench pool`'s.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/redis.rs"]
mod redis_server;

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{Run, Server};
use redis_server::RedisServer;
use tower_next::{Next, NextOptions};

fn progress(message: &str) {
    eprintln!("[bench cache] {message}");
}

/// A fresh copy of the build in `built` for `server`: `next start` writes the pages it
/// renders into its build folder, which tower-next would read at start.
fn fresh_copy(built: &Path, server: &str) -> PathBuf {
    support::fresh_copy(built, &format!("bench-{server}"))
}

/// tower-next on the build in `dir`, in the `axum_layer` example's shape, on 127.0.0.1.
async fn tower_next(
    dir: &Path,
    workers: Option<usize>,
    shared_cache: Option<&str>,
) -> (Next, SocketAddr) {
    let mut options = NextOptions::new(dir).mark_native_responses(true);
    if let Some(workers) = workers {
        options = options.workers(workers);
    }
    if let Some(url) = shared_cache {
        options = options.shared_cache(url);
    }
    let next = Next::prepare(options).await.expect("prepare the build");
    let addr = support::serve_axum_layer(&next).await;
    (next, addr)
}

/// wrk on `path` with `headers`; a failed run is reported and counts as nothing served.
fn wrk(addr: SocketAddr, path: &str, seconds: u64, headers: &[(String, String)]) -> Run {
    common::wrk_with(addr, path, seconds, headers).unwrap_or_else(|output| {
        progress(&format!("wrk failed on {path}: {output}"));
        Run::default()
    })
}

/// One request, its status, `x-tower-next-native` header and body.
async fn get(
    client: &reqwest::Client,
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>, String), String> {
    let mut request = client.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|err| format!("{path}: {err}"))?;
    let status = response.status().as_u16();
    let native = response
        .headers()
        .get("x-tower-next-native")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .text()
        .await
        .map_err(|err| format!("{path}: {err}"))?;
    Ok((status, native, body))
}

/// The page's render stamp (`<span id="stamp">stamp:…`), as digits.
fn stamp(body: &str) -> Option<String> {
    let marker = r#"id="stamp">"#;
    let start = body.find(marker)? + marker.len();
    let digits: String = body[start..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// A page measured: its path, what it is, and the request headers (a router request's).
struct Page {
    path: String,
    what: String,
    headers: Vec<(String, String)>,
}

impl Page {
    fn new(path: impl Into<String>, what: &str) -> Page {
        Page {
            path: path.into(),
            what: what.to_owned(),
            headers: Vec::new(),
        }
    }
}

/// The segment prefetch of `/`'s tree, as Next 16's client sends it: the router headers
/// and the `_rsc` Next computes from them (its own code, run in the build's folder).
fn tree_prefetch(dir: &Path) -> Page {
    let script = "const m = require(require.resolve('next/dist/shared/lib/router/utils/cache-busting-search-param.js', { paths: [process.cwd()] }));
        Promise.resolve(m.computeCacheBustingSearchParam('1', '/_tree', undefined, undefined)).then((hash) => console.log(hash));";
    let output = std::process::Command::new("node")
        .args(["-e", script])
        .current_dir(dir)
        .output()
        .expect("node runs");
    assert!(output.status.success(), "Next's cache-busting hash");
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    Page {
        path: format!("/?_rsc={hash}"),
        what: "segment prefetch of `/_tree` (Cache Components)".to_owned(),
        headers: [
            ("rsc", "1"),
            ("next-router-prefetch", "1"),
            ("next-router-segment-prefetch", "/_tree"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec(),
    }
}

/// A line of the final table.
struct Row {
    what: String,
    server: String,
    answered_by: String,
    throughput: String,
    p50: String,
    p99: String,
    errors: String,
    ratio: String,
    cpu: String,
}

/// Measures `path` on every server: one request each (the page rendered and cached), a
/// warm-up run, then `rounds` runs taking turns; a row per server with the median run.
async fn measure(servers: &[Server], page: &Page, seconds: u64, rounds: u64) -> Vec<Row> {
    let Page {
        path,
        what,
        headers,
    } = page;
    progress(&format!("{path}: {what}"));
    let client = support::client();
    let mut answered_by = Vec::new();
    for server in servers {
        // Three times: the first renders the page, the second lets Node's answer be checked
        // against Rust's, the third shows who answers it from then on.
        let mut answer = Err(String::new());
        for _ in 0..3 {
            answer = get(&client, reqwest::Method::GET, server.addr, path, headers).await;
        }
        answered_by.push(match answer {
            Ok((200, Some(native), _)) => format!("Rust ({native})"),
            Ok((200, None, _)) => "Node".to_owned(),
            Ok((status, _, body)) => {
                progress(&format!(
                    "{} {path}: {status} {}",
                    server.name,
                    &body[..body.len().min(200)]
                ));
                format!("status {status}")
            }
            Err(err) => {
                progress(&format!("{}: {err}", server.name));
                "error".to_owned()
            }
        });
        wrk(server.addr, path, seconds.min(2), headers);
    }
    let load = |addr, path: &str, seconds| wrk(addr, path, seconds, headers);
    let runs = common::take_turns(servers, path, seconds, rounds, load).await;
    let mut rows = Vec::new();
    let mut baseline = None;
    for ((server, runs), answered_by) in servers.iter().zip(runs).zip(answered_by) {
        let run = common::median(&runs);
        let base = *baseline.get_or_insert(run.requests_per_second);
        let [rust, node, redis] = run.cpu;
        rows.push(Row {
            what: format!("`{path}` {what}"),
            server: server.name.clone(),
            answered_by,
            throughput: common::throughput(&runs),
            p50: run.p50.clone(),
            p99: run.p99.clone(),
            errors: runs.iter().map(|run| run.errors).sum::<u64>().to_string(),
            ratio: format!(
                "{:.2}x",
                run.requests_per_second / base.max(f64::MIN_POSITIVE)
            ),
            cpu: match server.redis {
                Some(_) => format!("{rust:.0} + {node:.0} + {redis:.0} Redis"),
                None => format!("{rust:.0} + {node:.0}"),
            },
        });
    }
    rows
}

/// The servers of one fixture: `next start`, tower-next with its own cache, tower-next on
/// the shared store. Kept alive with their handles until dropped or shut down.
struct Fixture {
    next_start: support::Process,
    local: Next,
    shared: Next,
    servers: Vec<Server>,
}

async fn start(built: &Path, redis: &RedisServer, redis_pid: Option<u32>) -> Fixture {
    let next_start = support::next_start_in(&fresh_copy(built, "next-start"));
    let dir = fresh_copy(built, "tower-next");
    let (local, local_addr) = tower_next(&dir, None, None).await;
    let (shared, shared_addr) = tower_next(&dir, None, Some(&redis.url())).await;
    let (local_pids, shared_pids) = (common::worker_pids(&local), common::worker_pids(&shared));
    let servers = vec![
        Server {
            name: "next start".into(),
            addr: next_start.addr,
            rust: false,
            node: common::processes(2, next_start.child.id(), None),
            redis: None,
        },
        Server {
            name: format!("tower-next, pool of {}, local cache", local_pids.len()),
            addr: local_addr,
            rust: true,
            node: local_pids,
            redis: None,
        },
        Server {
            name: format!("tower-next, pool of {}, shared_cache", shared_pids.len()),
            addr: shared_addr,
            rust: true,
            node: shared_pids,
            redis: redis_pid,
        },
    ];
    Fixture {
        next_start,
        local,
        shared,
        servers,
    }
}

impl Fixture {
    async fn stop(self) {
        self.local.shutdown().await;
        self.shared.shutdown().await;
        drop(self.next_start);
    }
}

/// `rounds` times: `post` on A, then `page` on B every 2 ms (at most 5 s) until its stamp
/// changes. A row with the p50 and p99 of the times from A's answer to B's new page.
/// Requests per server for the time to first byte, and how many at once.
const FIRST_BYTE_REQUESTS: usize = 400;
const FIRST_BYTE_AT_ONCE: usize = 8;

/// A partially prerendered page, asked [`FIRST_BYTE_REQUESTS`] times of each server,
/// [`FIRST_BYTE_AT_ONCE`] at once, without `Accept-Encoding`: the time to the first byte
/// of the body (the shell) and to the last, p50 and p99. A table row per server.
async fn first_byte(servers: &[Server], path: &str) -> Vec<String> {
    use futures::StreamExt;

    progress(&format!("{path}: time to first byte"));
    let client = support::client();
    let mut lines = Vec::new();
    for server in servers {
        let url = format!("http://{}{path}", server.addr);
        let times: Vec<Option<(Duration, Duration)>> =
            futures::stream::iter(0..FIRST_BYTE_REQUESTS)
                .map(|_| {
                    let request = client.get(&url).timeout(Duration::from_secs(30));
                    async move {
                        let started = Instant::now();
                        let mut response = request.send().await.ok()?;
                        response.chunk().await.ok()??;
                        let first = started.elapsed();
                        while response.chunk().await.ok()?.is_some() {}
                        Some((first, started.elapsed()))
                    }
                })
                .buffer_unordered(FIRST_BYTE_AT_ONCE)
                .collect()
                .await;
        let failed = times.iter().filter(|t| t.is_none()).count();
        let (mut first, mut whole): (Vec<Duration>, Vec<Duration>) =
            times.into_iter().flatten().unzip();
        first.sort();
        whole.sort();
        let at = |times: &[Duration], q: f64| {
            times
                .get(((times.len().max(1) - 1) as f64 * q).round() as usize)
                .map_or("-".to_owned(), |t| {
                    format!("{:.2}ms", t.as_secs_f64() * 1000.0)
                })
        };
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {failed} |",
            server.name,
            at(&first, 0.5),
            at(&first, 0.99),
            at(&whole, 0.5),
            at(&whole, 0.99),
        ));
    }
    lines
}

async fn propagation(
    a: SocketAddr,
    b: SocketAddr,
    post: &str,
    page: &str,
    what: &str,
    rounds: u64,
) -> Row {
    progress(&format!("{what}: {rounds} rounds"));
    let client = support::client();
    let mut times = Vec::new();
    let (mut unchanged, mut failed, mut same_as_a, mut native) = (0, 0, 0, 0);
    let mut previous = None;
    for _ in 0..rounds {
        let old = match get(&client, reqwest::Method::GET, b, page, &[]).await {
            Ok((200, _, body)) => stamp(&body),
            _ => None,
        };
        let Some(old) = old.or(previous.take()) else {
            failed += 1;
            continue;
        };
        match get(&client, reqwest::Method::POST, a, post, &[]).await {
            Ok((200, _, _)) => {}
            other => {
                progress(&format!("POST {post} on A: {other:?}"));
                failed += 1;
                continue;
            }
        }
        let answered = Instant::now();
        loop {
            if let Ok((200, marked, body)) = get(&client, reqwest::Method::GET, b, page, &[]).await
                && let Some(new) = stamp(&body).filter(|new| *new != old)
            {
                times.push(answered.elapsed());
                native += usize::from(marked.is_some());
                // Did B serve A's render (or A B's), or did each render its own?
                if let Ok((_, _, on_a)) = get(&client, reqwest::Method::GET, a, page, &[]).await
                    && stamp(&on_a).as_ref() == Some(&new)
                {
                    same_as_a += 1;
                }
                previous = Some(new);
                break;
            }
            if answered.elapsed() > Duration::from_secs(5) {
                unchanged += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    times.sort();
    let quantile = |q: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * q).round() as usize)
            .map_or("-".to_owned(), |t| {
                format!("{:.1}ms", t.as_secs_f64() * 1000.0)
            })
    };
    Row {
        what: what.to_owned(),
        server: "2 hosts × 1 worker, shared_cache".to_owned(),
        answered_by: format!(
            "B's new page: {native}/{} native, {same_as_a}/{} the same as A's",
            times.len(),
            times.len()
        ),
        throughput: format!("{} of {rounds} rounds changed on B", times.len()),
        p50: quantile(0.5),
        p99: quantile(0.99),
        errors: format!("{unchanged} unchanged after 5 s, {failed} failed"),
        ratio: "-".to_owned(),
        cpu: "-".to_owned(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing to run.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    // The test support builds the fixtures with the Next.js of TOWER_NEXT_FIXTURE's app;
    // Cache Components needs Next 16.
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("TOWER_NEXT_FIXTURE", "app16") };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let began = Instant::now();
    let seconds = common::knob("BENCH_SECONDS", 4).max(1);
    let rounds = common::knob("BENCH_ROUNDS", 3).max(1);
    let propagation_rounds = common::knob("BENCH_PROPAGATION_ROUNDS", 50).max(1);

    let caching = support::caching_fixture();
    let cache_components =
        support::cache_components_fixture().expect("Next 16 in tests/fixtures/app16");
    let built_in = began.elapsed();
    let params = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("lib/params.json")).unwrap())
            .unwrap()
    };
    // The first of each route's ids beyond generateStaticParams.
    let on_demand = |dir: &Path, route: &str| -> String {
        params(dir)[route]["onDemand"][0]
            .as_str()
            .expect("an onDemand id in lib/params.json")
            .to_owned()
    };
    let slug = on_demand(&caching, "/article/[slug]");
    let product = on_demand(&caching, "/product/[id]");
    let item = on_demand(&cache_components, "/item/[id]");

    let redis = RedisServer::start(support::free_port());
    let redis_pid = common::processes(1, std::process::id(), Some("redis-server"))
        .first()
        .copied();
    progress(&format!("redis-server on {}", redis.url()));
    let machine = common::machine();

    // Each fixture's servers, then its pages one after the other.
    let ppr = format!("/item/{item}");
    let pages = [
        (
            &caching,
            vec![
                Page::new(
                    format!("/article/{slug}"),
                    "ISR page rendered on demand (App Router, revalidate 3600)",
                ),
                Page::new(
                    format!("/product/{product}"),
                    "ISR page rendered on demand (Pages Router, fallback: 'blocking', revalidate 60)",
                ),
            ],
        ),
        (
            &cache_components,
            vec![
                Page::new("/", "fully prerendered page (Cache Components)"),
                tree_prefetch(&cache_components),
                Page::new("/after-connection", "'use cache' value after connection()"),
                Page::new(
                    ppr.clone(),
                    "PPR page rendered on demand (cached shell, dynamic hole)",
                ),
            ],
        ),
    ];
    let mut rows = Vec::new();
    let mut first_bytes = Vec::new();
    for (built, pages) in pages {
        let servers = start(built, &redis, redis_pid).await;
        for page in &pages {
            rows.extend(measure(&servers.servers, page, seconds, rounds).await);
        }
        if built == &cache_components {
            first_bytes = first_byte(&servers.servers, &ppr).await;
        }
        servers.stop().await;
    }

    // Two hosts on one store, as two machines would be.
    let dir = fresh_copy(&caching, "hosts");
    let (a_next, a) = tower_next(&dir, Some(1), Some(&redis.url())).await;
    let (b_next, b) = tower_next(&dir, Some(1), Some(&redis.url())).await;
    let article = format!("/article/{slug}");
    let product = format!("/product/{product}");
    let revalidations = [
        (
            format!("/api/revalidate?path={article}"),
            article.as_str(),
            format!("`revalidatePath('{article}')` on A → `{article}` on B"),
        ),
        (
            format!("/api/revalidate-page?path={product}"),
            product.as_str(),
            format!("`res.revalidate('{product}')` on A → `{product}` on B"),
        ),
    ];
    for (post, page, what) in &revalidations {
        rows.push(propagation(a, b, post, page, what, propagation_rounds).await);
    }
    a_next.shutdown().await;
    b_next.shutdown().await;
    drop(redis);

    println!(
        "\n`wrk -t2 -c32 -d{seconds}s --latency`, {rounds} rounds taking turns after a {}s warm-up per server and route, the median run; propagation: {propagation_rounds} rounds, B asked every 2 ms; {machine}; {:.0?} in all ({:.0?} of it checking or making the builds)\n",
        seconds.min(2),
        began.elapsed(),
        built_in,
    );
    println!(
        "| what | server | answered by | req/s, median (all runs) | p50 | p99 | errors (all runs) | vs next start | CPU µs/request: Rust + Node (+ Redis) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.what,
            row.server,
            row.answered_by,
            row.throughput,
            row.p50,
            row.p99,
            row.errors,
            row.ratio,
            row.cpu
        );
    }
    println!(
        "\n`{ppr}` (PPR), {FIRST_BYTE_REQUESTS} requests per server, {FIRST_BYTE_AT_ONCE} at once, no `Accept-Encoding`: time to the first byte of the body (the static shell) and to the last\n"
    );
    println!("| server | first byte p50 | p99 | whole answer p50 | p99 | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for line in first_bytes {
        println!("{line}");
    }
}
