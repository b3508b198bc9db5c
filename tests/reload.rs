//! Zero-downtime reload (issue: the pool, items 5 and 6): a new build is swapped in under
//! load without a failed request; pages of the old build can load its assets during the
//! grace period; a broken build leaves the running app alone.

mod support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, http::StatusCode as AxumStatus};
use reqwest::StatusCode;
use tower_next::{Next, NextLayer, NextOptions};

/// Points the symbolic link `link` at `target`, atomically (a new link renamed over it),
/// as a deployment flips its `current` release.
fn point(link: &Path, target: &Path) {
    let temporary = link.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).unwrap();
    std::fs::rename(&temporary, link).unwrap();
}

async fn serve(next: &Next) -> SocketAddr {
    let router = Router::new()
        .fallback(|| async { (AxumStatus::NOT_FOUND, "inner service") })
        .layer(NextLayer::new(next.clone()));
    support::serve(router).await
}

/// Every `/_next/static/…` URL in a page.
fn static_assets(html: &str) -> Vec<String> {
    let mut assets = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("/_next/static/") {
        let end = rest[start..].find(['"', '\'', '\\']).unwrap() + start;
        assets.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    assets.sort();
    assets.dedup();
    assets
}

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_under_load_fails_no_request_and_old_pages_keep_their_assets() {
    const CLIENTS: usize = 4;
    const MAX_PER_CLIENT: usize = 5000;
    support::init_tracing();
    let (v1, v2) = (support::fixture(), support::fixture_v2());
    let releases = tempfile::tempdir().unwrap();
    let current = releases.path().join("current");
    point(&current, &v1);
    let grace = Duration::from_secs(4);
    let next = Next::prepare(NextOptions::new(&current).workers(2).reload_grace(grace))
        .await
        .unwrap();
    let addr = serve(&next).await;
    let client = support::client();
    let v1_build = next.build_id();

    let (status, about) = get(&client, addr, "/about").await;
    assert_eq!(status, StatusCode::OK);
    assert!(about.contains("About page") && !about.contains("v2"));
    // An asset of a v1 page that the v2 build does not have (v2 changed the home page's
    // client component).
    let (_, home) = get(&client, addr, "/").await;
    let old_asset = static_assets(&home)
        .into_iter()
        .find(|url| !v2.join(".next").join(&url["/_next/".len()..]).exists())
        .expect("a v1 asset missing from v2");
    let (status, body) = get(&client, addr, "/only-in-v2").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "inner service")
    );

    // Load: each client cycles through a prerendered page, an SSR page, a route handler
    // and the old asset, one request at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stop = stop.clone();
            let old_asset = old_asset.clone();
            tokio::spawn(async move {
                let client = support::client();
                let paths = ["/about", "/dynamic", "/api/hello", old_asset.as_str()];
                let mut outcomes: Vec<(&'static str, Result<u16, String>, bool)> = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && outcomes.len() < MAX_PER_CLIENT {
                    let path = paths[i % paths.len()];
                    let kind = ["about", "dynamic", "route", "old asset"][i % paths.len()];
                    i += 1;
                    let outcome = match client.get(format!("http://{addr}{path}")).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.text().await {
                                Ok(body) => (kind, Ok(status), body.contains("About page v2")),
                                Err(err) => {
                                    (kind, Err(format!("{status}, body cut: {err}")), false)
                                }
                            }
                        }
                        Err(err) => (kind, Err(format!("no response: {err}")), false),
                    };
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    point(&current, &v2);
    let started = Instant::now();
    next.reload().await.expect("reload onto v2");
    let reload_took = started.elapsed();

    assert_ne!(next.build_id(), v1_build);
    assert_eq!(next.dir(), v2.canonicalize().unwrap());
    let (status, about) = get(&client, addr, "/about").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        about.contains("About page v2"),
        "the new build serves /about"
    );
    let (status, body) = get(&client, addr, "/only-in-v2").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new route table owns /only-in-v2"
    );
    assert!(body.contains("Only in v2"));
    let (status, _) = get(&client, addr, &old_asset).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an old page's asset during the grace period"
    );
    let status = next.pool_status();
    assert_eq!(
        status.workers.iter().filter(|w| w.current).count(),
        2,
        "{status:?}"
    );
    assert_eq!(
        status.workers.iter().filter(|w| !w.current).count(),
        2,
        "{status:?}"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut saw_v1_after_v2 = false;
    for client in clients {
        let mine = client.await.unwrap();
        let mut seen_v2 = false;
        for (kind, _, v2) in &mine {
            if *kind == "about" {
                saw_v1_after_v2 |= seen_v2 && !v2;
                seen_v2 |= *v2;
            }
        }
        outcomes.extend(mine);
    }
    let mut per_kind: HashMap<&str, usize> = HashMap::new();
    for (kind, _, _) in &outcomes {
        *per_kind.entry(kind).or_default() += 1;
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, o, _)| !matches!(o, Ok(200)))
        .collect();
    support::progress(&format!(
        "reload under load: {} requests ({per_kind:?}), {} failed {failed:?}; reload() took {reload_took:.1?}",
        outcomes.len(),
        failed.len()
    ));
    assert!(
        failed.is_empty(),
        "requests failed during the reload: {failed:?}"
    );
    assert!(
        !saw_v1_after_v2,
        "a client got the old /about after the new one"
    );
    assert!(
        outcomes.iter().any(|(k, _, v2)| *k == "about" && *v2),
        "the load never saw v2"
    );

    // After the grace period the old workers stop, and with them the old build's assets.
    let old_pids: Vec<u32> = next
        .pool_status()
        .workers
        .iter()
        .filter(|w| !w.current)
        .filter_map(|w| w.pid)
        .collect();
    let deadline = Instant::now() + grace + Duration::from_secs(30);
    while next.pool_status().workers.iter().any(|w| !w.current) {
        assert!(Instant::now() < deadline, "the old workers did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in old_pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "old worker {pid} still runs"
        );
    }
    let (status, _) = get(&client, addr, &old_asset).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the old build's asset after the grace period"
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_onto_a_missing_build_keeps_the_running_app() {
    support::init_tracing();
    let releases = tempfile::tempdir().unwrap();
    let current = releases.path().join("current");
    point(&current, &support::fixture());
    let next = Next::prepare(NextOptions::new(&current).workers(2))
        .await
        .unwrap();
    let addr = serve(&next).await;
    let build = next.build_id();

    // A release folder without a build.
    let broken = releases.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("package.json"), "{}").unwrap();
    std::os::unix::fs::symlink(
        support::fixture().join("node_modules"),
        broken.join("node_modules"),
    )
    .unwrap();
    point(&current, &broken);
    let err = next
        .reload()
        .await
        .expect_err("reload onto a folder without a build");
    assert!(err.to_string().contains("run `next build`"), "{err}");

    assert_eq!(next.build_id(), build);
    let status = next.pool_status();
    assert_eq!(status.workers.len(), 2, "{status:?}");
    assert!(
        status
            .workers
            .iter()
            .all(|w| w.current && w.generation == 0)
    );
    let (status, about) = get(&support::client(), addr, "/about").await;
    assert_eq!(status, StatusCode::OK);
    assert!(about.contains("About page"));
    next.shutdown().await;
}
