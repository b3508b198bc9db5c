//! Failures are clear errors or responses (issue: the core, items 2 and 7): actionable
//! start errors, a dead worker restarted, no hung request, no orphan Node process.

mod support;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use axum::Router;
use futures::StreamExt;
use reqwest::StatusCode;
use tower_next::{Error, Next, NextLayer, NextOptions, WorkerHealth};

/// A throwaway project folder that uses the fixture's installed `next`.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"t","private":true}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(
        support::fixture().join("node_modules"),
        dir.path().join("node_modules"),
    )
    .unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The tests that measure time (the 2 s after a SIGKILL, health checks within 300 ms) or
/// load the machine (kill -9 under load, a crash loop) run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn prepare_error(options: NextOptions) -> Error {
    support::init_tracing();
    match Next::prepare(options).await {
        Ok(_) => panic!("prepare succeeded"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_with_a_reason() {
    for options in [
        support::options().workers(0),
        support::options().max_in_flight(0),
    ] {
        match Next::prepare(options).await {
            Err(Error::InvalidOptions { detail }) => assert!(detail.contains("(0)"), "{detail}"),
            Err(other) => panic!("expected InvalidOptions, got {other}"),
            Ok(_) => panic!("prepare accepted a setting that cannot work"),
        }
    }
}

#[tokio::test]
async fn missing_node_is_reported() {
    let err = prepare_error(support::options().node_binary("/nonexistent/node")).await;
    assert!(matches!(err, Error::NodeNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("install Node.js"), "{err}");
}

#[tokio::test]
async fn missing_next_package_names_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{}").unwrap();
    std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
    let err = prepare_error(NextOptions::new(dir.path())).await;
    assert!(matches!(err, Error::NextNotInstalled { .. }), "{err:?}");
    assert!(err.to_string().contains("run `npm ci`"), "{err}");
}

#[tokio::test]
async fn missing_or_foreign_build_says_run_next_build() {
    let empty = project(&[]);
    let err = prepare_error(NextOptions::new(empty.path())).await;
    assert!(matches!(err, Error::BuildMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("run `next build`"), "{err}");

    let foreign = project(&[
        (".next/BUILD_ID", "old-build"),
        (
            ".next/diagnostics/framework.json",
            r#"{"name":"Next.js","version":"14.2.3"}"#,
        ),
    ]);
    let err = prepare_error(NextOptions::new(foreign.path())).await;
    assert!(matches!(err, Error::BuildMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("14.2.3") && message.contains("run `next build`"),
        "{message}"
    );
}

#[tokio::test]
async fn worker_failing_at_start_shows_why() {
    let broken = project(&[(
        "next.config.js",
        "throw new Error('broken config for the test')",
    )]);
    let err = prepare_error(NextOptions::new(broken.path())).await;
    assert!(matches!(err, Error::WorkerFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("broken config for the test"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_project_folder_is_reported() {
    let err = prepare_error(NextOptions::new("/nonexistent/app")).await;
    assert!(matches!(err, Error::ProjectDir { .. }), "{err:?}");
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes: its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Polls `path` until it answers `status`, for at most `limit`.
async fn wait_for_status(addr: std::net::SocketAddr, path: &str, status: u16, limit: Duration) {
    let client = support::client();
    let start = Instant::now();
    loop {
        let now = client.get(format!("http://{addr}{path}")).send().await;
        if now.as_ref().is_ok_and(|r| r.status().as_u16() == status) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{path} did not answer {status} within {limit:?}: last {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 13, items 2 and 3: readiness is false while no worker can take a request and
/// from `begin_shutdown` on, while requests are still served during the delay.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_workers_and_the_shutdown() {
    let _alone = ONE_AT_A_TIME.lock().await;
    support::init_tracing();
    let next = Next::prepare(
        support::options()
            .workers(2)
            .unready_delay(Duration::from_millis(1500)),
    )
    .await
    .expect("prepare the fixture");
    let app = Router::new()
        .route_service("/readyz", next.readiness())
        .route_service("/livez", next.liveness())
        .layer(NextLayer::new(next.clone()));
    let addr = support::serve(app).await;
    wait_for_status(addr, "/readyz", 200, Duration::from_secs(5)).await;

    // Every worker killed: not ready until one is back; alive throughout.
    for worker in next.pool_status().workers {
        kill(worker.pid.expect("a running worker"));
    }
    wait_for_status(addr, "/readyz", 503, Duration::from_secs(10)).await;
    let live = support::client()
        .get(format!("http://{addr}/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    wait_for_status(addr, "/readyz", 200, Duration::from_secs(30)).await;

    // SIGTERM's first step: not ready at once, pages still served during the delay.
    let stopping = tokio::spawn({
        let next = next.clone();
        async move { next.begin_shutdown().await }
    });
    wait_for_status(addr, "/readyz", 503, Duration::from_secs(1)).await;
    let page = support::client()
        .get(format!("http://{addr}/dynamic"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "a page during the unready delay"
    );
    assert!(
        !stopping.is_finished(),
        "begin_shutdown returned before its delay"
    );
    stopping.await.unwrap();
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_worker_gives_clear_responses_and_is_restarted() {
    support::init_tracing();
    // One worker: with no other to take over, requests see it die and come back.
    let next = Next::prepare(
        support::options()
            .workers(1)
            .ready_wait(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let pid = support::worker_pid(&next).expect("a running worker");

    // A request in flight when the worker dies ends, with an error, instead of hanging.
    let response = client
        .get(format!("http://{addr}/streaming"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let _shell = body.next().await.unwrap().unwrap();
    kill(pid);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut failed = false;
        while let Some(chunk) = body.next().await {
            failed |= chunk.is_err();
        }
        failed
    })
    .await
    .expect("the in-flight response hung after its worker died");
    assert!(ended, "the response of a dead worker ended as if complete");

    // Until the worker is back: 502 with a reason, or 503 with Retry-After; then 200.
    // (A route handler: prerendered pages are answered by Rust meanwhile, see
    // tests/native.rs.)
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let response = client
            .get(format!("http://{addr}/api/hello"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        match status {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"))
            }
            StatusCode::BAD_GATEWAY => {}
            other => panic!("unexpected {other} while the worker restarts"),
        }
        let reason = response.text().await.unwrap();
        assert!(reason.contains("Next.js worker"), "{status}: {reason:?}");
        seen.push(status);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not back after 30 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_pid = support::worker_pid(&next).expect("a restarted worker");
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_the_worker_and_later_requests_get_503() {
    let next = support::prepare().await;
    let pid = support::worker_pid(&next).unwrap();
    let addr = support::serve(Router::new().fallback_service(next.service())).await;
    next.shutdown().await;
    assert!(!alive(pid), "worker {pid} still running after shutdown");
    let response = support::client()
        .get(format!("http://{addr}/about"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
}

/// The Node processes whose parent is `pid`, with their private folders.
fn node_children(pid: u32) -> Vec<(u32, PathBuf)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let parent: u32 = after_name.split(' ').nth(1).unwrap().parse().unwrap();
        if parent != pid {
            continue;
        }
        let cmdline = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if let Some(script) = cmdline.split('\0').find(|arg| arg.ends_with("bridge.cjs")) {
            children.push((child, Path::new(script).parent().unwrap().to_owned()));
        }
    }
    children
}

#[test]
fn sigkill_of_the_host_leaves_no_node_process_or_folder_behind() {
    let _one_at_a_time = ONE_AT_A_TIME.blocking_lock();
    let host = support::example("axum_layer", &[("WORKERS", "3")]);
    let host_pid = host.child.id();
    let workers = node_children(host_pid);
    assert_eq!(
        workers.len(),
        3,
        "expected three workers of {host_pid}: {workers:?}"
    );
    let private_dir = workers[0].1.clone();
    assert!(workers.iter().all(|(_, dir)| *dir == private_dir));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&private_dir).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o700,
        "the workers' socket folder must be private"
    );

    kill(host_pid);
    let start = Instant::now();
    let left = || workers.iter().filter(|(pid, _)| alive(*pid)).count();
    while left() > 0 || private_dir.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "2 s after SIGKILL of the host: {} worker(s) alive, folder left {}",
            left(),
            private_dir.exists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    support::progress(&format!(
        "SIGKILL of the host: its 3 workers were gone after {:?}",
        start.elapsed()
    ));
    drop(host);
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `done` every 20 ms, up to `limit`; returns how long it took.
async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn ready(next: &Next) -> usize {
    next.pool_status()
        .workers
        .iter()
        .filter(|w| w.health == WorkerHealth::Ready)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_worker_under_load_fails_only_its_requests_in_flight() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const CLIENTS: usize = 4;
    const MAX_PER_CLIENT: usize = 3000;
    support::init_tracing();
    let next = Next::prepare(support::options().workers(2)).await.unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each client: one request at a time, an SSR page, until told to stop (bounded count).
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = support::client();
                let mut outcomes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && outcomes.len() < MAX_PER_CLIENT
                {
                    let outcome = match client.get(format!("http://{addr}/dynamic")).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.bytes().await {
                                Ok(_) => Ok(status),
                                Err(err) => Err(format!("{status}, body cut: {err}")),
                            }
                        }
                        Err(err) => Err(format!("no response: {err}")),
                    };
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = next.pool_status().workers[0].pid.unwrap();
    kill(victim);
    let recovery = wait_until("back to two ready workers", Duration::from_secs(30), || {
        let status = next.pool_status();
        ready(&next) == 2 && status.workers[0].restarts == 1
    })
    .await;
    let handled_after_recovery = next.pool_status().workers[0].handled;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }

    let sent = outcomes.len();
    let failed: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok(200))).collect();
    support::progress(&format!(
        "kill -9 under load: {sent} requests from {CLIENTS} clients, {} failed {failed:?}, \
         two ready workers again {recovery:?} after the kill",
        failed.len()
    ));
    assert!(
        failed
            .iter()
            .all(|o| matches!(o, Ok(502)) || matches!(o, Err(e) if e.contains("body cut"))),
        "a request got no response, or a failure other than the dead worker's 502: {failed:?}"
    );
    assert!(
        failed.len() <= CLIENTS,
        "more failures than requests that can have been in flight on the dead worker: {failed:?}"
    );
    assert!(!alive(victim));
    assert!(
        next.pool_status().workers[0].handled > handled_after_recovery,
        "the restarted worker took no requests"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unresponsive_worker_gets_no_requests_and_is_replaced() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    support::init_tracing();
    let next = Next::prepare(
        support::options()
            .workers(2)
            .health_check(Duration::from_millis(200), Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let victim = next.pool_status().workers[0].pid.unwrap();
    // Frozen: it accepts connections but answers nothing.
    signal(victim, "-STOP");
    let unhealthy = wait_until("marked unhealthy", Duration::from_secs(10), || {
        next.pool_status().workers[0].health != WorkerHealth::Ready
    })
    .await;
    for _ in 0..10 {
        let response = client
            .get(format!("http://{addr}/api/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let replaced = wait_until("replaced", Duration::from_secs(30), || {
        let worker = &next.pool_status().workers[0];
        worker.restarts == 1 && worker.health == WorkerHealth::Ready
    })
    .await;
    support::progress(&format!(
        "frozen worker: out of rotation after {unhealthy:?}, replaced {replaced:?} later"
    ));
    assert!(!alive(victim), "the frozen worker was not killed");
    assert_ne!(next.pool_status().workers[0].pid, Some(victim));
    let response = client
        .get(format!("http://{addr}/api/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_is_retried_on_another_worker_with_the_body() {
    const SIZE: usize = 2 * 1024 * 1024;
    support::init_tracing();
    let next = Next::prepare(support::options().workers(2)).await.unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let pid = next.pool_status().workers[0].pid.unwrap();
    // Worker 0 still runs, but nothing can connect to it any more.
    let socket = private_dir(pid).join("worker-0.0.sock");
    std::fs::remove_file(&socket).unwrap();

    // The first request goes to worker 0 (both idle, ties start there), is refused, and
    // goes to worker 1 with its streamed body, which was never read.
    let chunks = futures::stream::iter(
        (0..SIZE / 65536).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 65536])),
    );
    let response = client
        .post(format!("http://{addr}/api/hello"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["bytes"], SIZE, "{json}");
    for _ in 0..5 {
        let response = client
            .get(format!("http://{addr}/api/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let status = next.pool_status();
    let handled: Vec<u64> = status.workers.iter().map(|w| w.handled).collect();
    assert!(handled[0] >= 1, "worker 0 was never tried: {status:?}");
    assert!(
        handled.iter().sum::<u64>() > 6,
        "no request was retried: {status:?}"
    );
    next.shutdown().await;
}

/// The Node processes' private folder, from a worker's command line.
fn private_dir(pid: u32) -> PathBuf {
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let script = cmdline
        .split('\0')
        .find(|arg| arg.ends_with("bridge.cjs"))
        .unwrap();
    Path::new(script).parent().unwrap().to_owned()
}

/// A project serving the fixture's build whose next.config throws while `crash` exists:
/// an app that fails at start.
fn crashing_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = support::fixture();
    for name in ["node_modules", ".next", "public", "package.json"] {
        std::os::unix::fs::symlink(fixture.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("next.config.js"),
        format!(
            "if (require('fs').existsSync(__dirname + '/crash')) throw new Error('the app fails at start');\n\
             module.exports = require({:?});\n",
            fixture.join("next.config.js")
        ),
    )
    .unwrap();
    dir
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of this process and its waited-for children (the Node workers), in ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the name.
    fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>().unwrap())
        .sum()
}

// One thread, so that the scoped log capture sees every task.
#[tokio::test]
async fn crash_loop_is_reported_once_answered_503_at_once_and_recovers() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tower_next=info")
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let project = crashing_project();
    let next = Next::prepare(
        NextOptions::new(project.path())
            .workers(2)
            .ready_wait(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let addr = support::serve(Router::new().fallback_service(next.service())).await;
    let client = support::client(); // 30 s timeout, shorter than ready_wait
    std::fs::write(project.path().join("crash"), "").unwrap();
    for worker in next.pool_status().workers {
        kill(worker.pid.unwrap());
    }
    wait_until("in a crash loop", Duration::from_secs(30), || {
        next.pool_status()
            .workers
            .iter()
            .all(|w| w.failed_starts >= 1)
    })
    .await;

    // Nothing will be ready soon: 503 at once, not after ready_wait (for a page that needs
    // Node; prerendered ones are still answered by Rust).
    let response = client
        .get(format!("http://{addr}/dynamic"))
        .send()
        .await
        .expect("a request during a crash loop waited instead of getting 503");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        response.text().await.unwrap().contains("fails to start"),
        "the 503 says why"
    );

    let (ticks, attempts) = (cpu_ticks(), failed_starts(&next));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ticks, attempts) = (cpu_ticks() - ticks, failed_starts(&next) - attempts);
    let ticks_per_second = 100; // USER_HZ on Linux
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let reports = text.matches("This error is reported once").count();
    support::progress(&format!(
        "crash loop: {attempts} failed restarts of 2 workers in 8 s, {:.2} s of CPU (host and \
         Node), reported {reports} time(s)",
        ticks as f64 / ticks_per_second as f64
    ));
    assert_eq!(
        reports, 1,
        "the crash loop was not reported exactly once:\n{text}"
    );
    assert!(
        text.contains("the app fails at start"),
        "the report shows the app's error:\n{text}"
    );
    assert!(attempts <= 12, "{attempts} restarts in 8 s: no backoff");

    std::fs::remove_file(project.path().join("crash")).unwrap();
    wait_until("recovered", Duration::from_secs(40), || ready(&next) == 2).await;
    let response = client
        .get(format!("http://{addr}/about"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    next.shutdown().await;
}

fn failed_starts(next: &Next) -> u32 {
    next.pool_status()
        .workers
        .iter()
        .map(|w| w.failed_starts)
        .sum()
}

#[test]
fn sigterm_of_an_example_drains_and_stops_its_workers() {
    let _one_at_a_time = ONE_AT_A_TIME.blocking_lock();
    let mut host = support::example("axum_layer", &[("WORKERS", "2")]);
    let host_pid = host.child.id();
    let workers = node_children(host_pid);
    assert_eq!(workers.len(), 2, "{workers:?}");
    let private_dir = workers[0].1.clone();
    let addr = host.addr;
    // A request in flight when the signal comes.
    let in_flight = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(
            &mut stream,
            b"GET /api/worker?delay=1500 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let mut response = String::new();
        std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
        response
    });
    std::thread::sleep(Duration::from_millis(500));
    signal(host_pid, "-TERM");
    let response = in_flight.join().unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the request in flight did not finish: {response}"
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = host.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the example did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the example exited with {status}");
    for (pid, _) in &workers {
        assert!(!alive(*pid), "worker {pid} outlived the example");
    }
    assert!(
        !private_dir.exists(),
        "{} left behind",
        private_dir.display()
    );
}
