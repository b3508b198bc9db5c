//! The host's cache against `next start`'s (issue 9: one cache for every worker and every
//! host): the same build, the same run, side by side.
//!
//! ```sh
//! cargo bench --bench cache                # about 3.5 minutes once built
//! BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_PROPAGATION_ROUNDS=20 cargo bench --bench cache
//! ```
//!
//! `tests/fixtures/caching` (ISR) and `tests/fixtures/cache-components` (Next 16,
//! `cacheComponents: true`) are built once with `tests/fixtures/app16`'s Next.js in
//! `target/bench-<name>` (built again when their sources change), and every server runs
//! on a fresh copy of that build in `target/bench-runs/`, so none starts from what an
//! earlier run cached. For a page rendered on demand (the first of `lib/params.json`'s
//! `onDemand` ids, warmed once), a `'use cache'` value read after `connection()`, and a
//! partially prerendered page rendered on demand, `wrk -t2 -c32 --latency` runs against
//! `next start`, tower-next with the pool and its own cache, and tower-next with the pool
//! and `shared_cache` on a `redis-server` started on a free loopback port, taking turns,
//! `BENCH_ROUNDS` times (default 3) of `BENCH_SECONDS` (default 4) after a warm-up. Then
//! two hosts of one worker each share that Redis, and `BENCH_PROPAGATION_ROUNDS` times
//! (default 50) a revalidation is posted to host A while host B is asked every 2 ms (at
//! most 5 s) until its page's render stamp changes: the time from A's answer to B's new
//! page. The SSR rows (Node's CPU time per request against `next start`'s, the pool's
//! ratio) are `cargo bench --bench pool`'s.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/redis.rs"]
mod redis_server;

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use redis_server::RedisServer;
use tower_next::{Next, NextOptions};

/// Where the Next.js the fixtures are built with is installed (Next 16.4).
const NEXT_16: &str = "tests/fixtures/app16";

fn progress(message: &str) {
    eprintln!("[bench cache] {message}");
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A hash of the files under `dir` but `.next` and `node_modules`, names and contents.
fn hash_tree(dir: &Path, hasher: &mut DefaultHasher) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name == ".next" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        name.hash(hasher);
        if path.is_dir() {
            hash_tree(&path, hasher);
        } else {
            std::fs::read(&path).unwrap().hash(hasher);
        }
    }
}

fn run(command: &mut Command) {
    let output = command
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env("NEXT_IGNORE_INCORRECT_LOCKFILE", "1")
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `tests/fixtures/<name>` built with Next 16 in `target/bench-<name>`: its sources copied,
/// app16's `package.json`, its `node_modules` hard-linked (Turbopack refuses a symlink that
/// leads out of the project). Built again when the sources or that Next.js change.
fn built(name: &str) -> PathBuf {
    let repo = support::repo();
    let sources = repo.join("tests/fixtures").join(name);
    let next16 = repo.join(NEXT_16);
    let dir = repo.join(format!("target/bench-{name}"));
    std::fs::create_dir_all(repo.join("target")).unwrap();
    let lock = std::fs::File::create(repo.join(format!("target/bench-{name}.lock"))).unwrap();
    lock.lock().expect("bench fixture lock");
    let package = std::fs::read_to_string(next16.join("package.json")).unwrap();
    let installed = std::fs::read_to_string(next16.join("node_modules/next/package.json"))
        .expect("tests/fixtures/app16/node_modules: run `npm ci` there");
    let mut hasher = DefaultHasher::new();
    hash_tree(&sources, &mut hasher);
    (&package, &installed).hash(&mut hasher);
    let stamp_text = format!("{:016x}", hasher.finish());
    let stamp = dir.join(".next/tower-next-bench.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str())
        && dir.join(".next/BUILD_ID").exists()
    {
        progress(&format!("{} is built", dir.display()));
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&sources).unwrap().flatten() {
        let file = entry.file_name();
        if file == ".next" || file == "node_modules" {
            continue;
        }
        run(Command::new("cp").arg("-a").arg(entry.path()).arg(&dir));
    }
    std::fs::write(dir.join("package.json"), &package).unwrap();
    run(Command::new("cp")
        .arg("-al")
        .arg(next16.join("node_modules"))
        .arg(&dir));
    progress(&format!("next build in {} (~1 min)", dir.display()));
    let start = Instant::now();
    run(Command::new("node")
        .args(["node_modules/next/dist/bin/next", "build"])
        .current_dir(&dir));
    std::fs::write(&stamp, &stamp_text).unwrap();
    progress(&format!("built in {:.0?}", start.elapsed()));
    dir
}

/// A fresh copy of the build in `built` for `server`, in `target/bench-runs/`: `next start`
/// writes the pages it renders into its build folder, which tower-next would read at start.
fn fresh_copy(built: &Path, server: &str) -> PathBuf {
    let name = built.file_name().unwrap().to_string_lossy();
    let name = name.strip_prefix("bench-").unwrap_or(&name);
    let copy = support::repo().join(format!("target/bench-runs/{name}-{server}"));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(built).unwrap().flatten() {
        let link = entry.file_name() == "node_modules";
        run(Command::new("cp")
            .arg(if link { "-al" } else { "-a" })
            .arg(entry.path())
            .arg(&copy));
    }
    copy
}

/// `next start -H 127.0.0.1` on the build in `dir` (the fixtures have no middleware, so
/// an IP host changes nothing), on a free port, killed with its process group when dropped.
fn next_start(dir: &Path) -> support::Process {
    let port = support::free_port();
    let child = Command::new("node")
        .args([
            "node_modules/next/dist/bin/next",
            "start",
            "-H",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .current_dir(dir)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("spawn next start");
    let process = support::Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(process.addr).is_err() {
        assert!(Instant::now() < deadline, "next start is not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    process
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

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 2..]
            .split(' ')
            .map(str::to_owned)
            .collect(),
    )
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    stat(pid).map_or(0, |fields| {
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
    })
}

/// The processes whose field `index` of `/proc/<pid>/stat` is `value` (1: parent, 2:
/// process group), and whose command is `command` if given.
fn processes(index: usize, value: u32, command: Option<&str>) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some(fields) = stat(pid) else { continue };
        if fields[index].parse::<u32>() != Ok(value) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if command.is_none_or(|command| comm.trim() == command) {
            pids.push(pid);
        }
    }
    pids
}

/// A server under load and where its CPU time goes: the Rust process (none for `next
/// start`), its Node processes, and the store (for a shared cache).
struct Server {
    name: String,
    addr: SocketAddr,
    rust: bool,
    node: Vec<u32>,
    redis: Option<u32>,
}

impl Server {
    /// Rust, Node and Redis ticks so far.
    fn ticks(&self) -> [u64; 3] {
        let rust = if self.rust {
            cpu_ticks(std::process::id())
        } else {
            0
        };
        [
            rust,
            self.node.iter().map(|pid| cpu_ticks(*pid)).sum(),
            self.redis.map_or(0, cpu_ticks),
        ]
    }
}

struct Run {
    requests_per_second: f64,
    requests: u64,
    p50: String,
    p99: String,
    errors: u64,
    /// CPU µs per request: Rust, Node, Redis.
    cpu: [f64; 3],
}

fn wrk(addr: SocketAddr, path: &str, seconds: u64) -> Run {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "--latency", "-d"])
        .arg(format!("{seconds}s"))
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run wrk (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        progress(&format!(
            "wrk failed on {path}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
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
        cpu: [0.0; 3],
    }
}

/// One request, its status, `x-tower-next-native` header and body.
async fn get(
    client: &reqwest::Client,
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
) -> Result<(u16, Option<String>, String), String> {
    let response = client
        .request(method, format!("http://{addr}{path}"))
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
async fn measure(
    servers: &[Server],
    path: &str,
    what: &str,
    seconds: u64,
    rounds: u64,
) -> Vec<Row> {
    progress(&format!("{path}: {what}"));
    let client = support::client();
    let mut answered_by = Vec::new();
    for server in servers {
        // Twice: the first renders the page, the second shows who answers it from then on.
        let mut answer = Err(String::new());
        for _ in 0..2 {
            answer = get(&client, reqwest::Method::GET, server.addr, path).await;
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
        wrk(server.addr, path, seconds.min(2));
    }
    let mut runs: Vec<Vec<Run>> = servers.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (server, runs) in servers.iter().zip(&mut runs) {
            let before = server.ticks();
            let mut run = wrk(server.addr, path, seconds);
            let after = server.ticks();
            // Ticks are 10 ms; per request in µs.
            for (cpu, (after, before)) in run.cpu.iter_mut().zip(after.iter().zip(before)) {
                *cpu = (after - before) as f64 * 10_000.0 / run.requests.max(1) as f64;
            }
            runs.push(run);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let mut rows = Vec::new();
    let mut baseline = None;
    for ((server, mut runs), answered_by) in servers.iter().zip(runs).zip(answered_by) {
        runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
        let all: Vec<String> = runs
            .iter()
            .map(|run| format!("{:.0}", run.requests_per_second))
            .collect();
        let run = &runs[runs.len() / 2];
        let base = *baseline.get_or_insert(run.requests_per_second);
        let [rust, node, redis] = run.cpu;
        rows.push(Row {
            what: format!("`{path}` {what}"),
            server: server.name.clone(),
            answered_by,
            throughput: format!("{:.0} ({})", run.requests_per_second, all.join(", ")),
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
    let next_start = next_start(&fresh_copy(built, "next-start"));
    let dir = fresh_copy(built, "tower-next");
    let (local, local_addr) = tower_next(&dir, None, None).await;
    let (shared, shared_addr) = tower_next(&dir, None, Some(&redis.url())).await;
    let pids = |next: &Next| -> Vec<u32> {
        next.pool_status()
            .workers
            .iter()
            .filter_map(|w| w.pid)
            .collect()
    };
    let servers = vec![
        Server {
            name: "next start".into(),
            addr: next_start.addr,
            rust: false,
            node: processes(2, next_start.child.id(), None),
            redis: None,
        },
        Server {
            name: format!("tower-next, pool of {}, local cache", pids(&local).len()),
            addr: local_addr,
            rust: true,
            node: pids(&local),
            redis: None,
        },
        Server {
            name: format!("tower-next, pool of {}, shared_cache", pids(&shared).len()),
            addr: shared_addr,
            rust: true,
            node: pids(&shared),
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
        let old = match get(&client, reqwest::Method::GET, b, page).await {
            Ok((200, _, body)) => stamp(&body),
            _ => None,
        };
        let Some(old) = old.or(previous.take()) else {
            failed += 1;
            continue;
        };
        match get(&client, reqwest::Method::POST, a, post).await {
            Ok((200, _, _)) => {}
            other => {
                progress(&format!("POST {post} on A: {other:?}"));
                failed += 1;
                continue;
            }
        }
        let answered = Instant::now();
        loop {
            if let Ok((200, marked, body)) = get(&client, reqwest::Method::GET, b, page).await
                && let Some(new) = stamp(&body).filter(|new| *new != old)
            {
                times.push(answered.elapsed());
                native += usize::from(marked.is_some());
                // Did B serve A's render (or A B's), or did each render its own?
                if let Ok((_, _, on_a)) = get(&client, reqwest::Method::GET, a, page).await
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

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing to run.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let began = Instant::now();
    let seconds = knob("BENCH_SECONDS", 4).max(1);
    let rounds = knob("BENCH_ROUNDS", 3).max(1);
    let propagation_rounds = knob("BENCH_PROPAGATION_ROUNDS", 50).max(1);

    let caching = built("caching");
    let cache_components = built("cache-components");
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
    let redis_pid = processes(1, std::process::id(), Some("redis-server"))
        .first()
        .copied();
    progress(&format!("redis-server on {}", redis.url()));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let mut rows = Vec::new();
    let servers = start(&caching, &redis, redis_pid).await;
    rows.extend(
        measure(
            &servers.servers,
            &format!("/article/{slug}"),
            "ISR page rendered on demand (App Router, revalidate 3600)",
            seconds,
            rounds,
        )
        .await,
    );
    rows.extend(
        measure(
            &servers.servers,
            &format!("/product/{product}"),
            "ISR page rendered on demand (Pages Router, fallback: 'blocking', revalidate 60)",
            seconds,
            rounds,
        )
        .await,
    );
    servers.stop().await;

    let servers = start(&cache_components, &redis, redis_pid).await;
    rows.extend(
        measure(
            &servers.servers,
            "/after-connection",
            "'use cache' value after connection()",
            seconds,
            rounds,
        )
        .await,
    );
    rows.extend(
        measure(
            &servers.servers,
            &format!("/item/{item}"),
            "PPR page rendered on demand (cached shell, dynamic hole)",
            seconds,
            rounds,
        )
        .await,
    );
    servers.stop().await;

    // Two hosts on one store, as two machines would be.
    let dir = fresh_copy(&caching, "hosts");
    let (a_next, a) = tower_next(&dir, Some(1), Some(&redis.url())).await;
    let (b_next, b) = tower_next(&dir, Some(1), Some(&redis.url())).await;
    let page = format!("/article/{slug}");
    rows.push(
        propagation(
            a,
            b,
            &format!("/api/revalidate?path={page}"),
            &page,
            &format!("`revalidatePath('{page}')` on A → `{page}` on B"),
            propagation_rounds,
        )
        .await,
    );
    let page = format!("/product/{product}");
    rows.push(
        propagation(
            a,
            b,
            &format!("/api/revalidate-page?path={page}"),
            &page,
            &format!("`res.revalidate('{page}')` on A → `{page}` on B"),
            propagation_rounds,
        )
        .await,
    );
    a_next.shutdown().await;
    b_next.shutdown().await;
    drop(redis);

    println!(
        "\n`wrk -t2 -c32 -d{seconds}s --latency`, {rounds} rounds taking turns after a {}s warm-up per server and route, the median run; propagation: {propagation_rounds} rounds, B asked every 2 ms; {} cores; load average before: {}; {:.0?} in all ({:.0?} of it checking or making the builds)\n",
        seconds.min(2),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
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
}
