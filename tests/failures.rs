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
use tower_next::{Error, Next, NextLayer, NextOptions};

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

async fn prepare_error(options: NextOptions) -> Error {
    support::init_tracing();
    match Next::prepare(options).await {
        Ok(_) => panic!("prepare succeeded"),
        Err(err) => err,
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

#[tokio::test(flavor = "multi_thread")]
async fn dead_worker_gives_clear_responses_and_is_restarted() {
    support::init_tracing();
    let next = Next::prepare(support::options().ready_wait(Duration::from_millis(200)))
        .await
        .unwrap();
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let pid = next.worker_pid().expect("a running worker");

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
    let new_pid = next.worker_pid().expect("a restarted worker");
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_the_worker_and_later_requests_get_503() {
    let next = support::prepare().await;
    let pid = next.worker_pid().unwrap();
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
    let host = support::example("axum_layer", &[]);
    let host_pid = host.child.id();
    let workers = node_children(host_pid);
    assert_eq!(
        workers.len(),
        1,
        "expected one worker of {host_pid}: {workers:?}"
    );
    let (worker, private_dir) = workers[0].clone();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&private_dir).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o700,
        "the worker's socket folder must be private"
    );

    kill(host_pid);
    let start = Instant::now();
    while alive(worker) || private_dir.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "2 s after SIGKILL of the host: worker alive {}, folder left {}",
            alive(worker),
            private_dir.exists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(host);
}
