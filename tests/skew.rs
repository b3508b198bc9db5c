//! Skew protection (issue 13, item 4): after `reload()`, requests that carry the previous
//! deployment's id (`x-deployment-id`, which Next's client sends with RSC requests and
//! Server Actions when next.config sets `deploymentId`, or `?dpl=`, which it adds to asset
//! URLs) go to the previous build's workers during the grace period, so a client on an
//! old page keeps working; other requests go to the new build. Two real builds of one app
//! with different `deploymentId`s.

mod support;

use std::{net::SocketAddr, path::Path, time::Duration};

use axum::Router;
use reqwest::StatusCode;
use tower_next::{Next, NextOptions};

/// Points the symbolic link `link` at `target`, atomically, as a deployment flips its
/// `current` release.
fn point(link: &Path, target: &Path) {
    let temporary = link.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).unwrap();
    std::fs::rename(&temporary, link).unwrap();
}

/// Requests handled so far by the workers of generation `generation`.
fn handled(next: &Next, generation: u64) -> u64 {
    next.pool_status()
        .workers
        .iter()
        .filter(|w| w.generation == generation)
        .map(|w| w.handled)
        .sum()
}

/// Sends a GET with `headers` and says which generation answered it (none when Rust
/// answered natively).
async fn answered_by(
    next: &Next,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<u64> {
    let mut request = support::client().get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    sent_to(next, request).await
}

/// Sends `request` (expecting 200) and says which generation answered it.
async fn sent_to(next: &Next, request: reqwest::RequestBuilder) -> Option<u64> {
    let before = [handled(next, 0), handled(next, 1)];
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{}", &body[..body.len().min(300)]);
    let after = [handled(next, 0), handled(next, 1)];
    (0..2).find(|&g| after[g] > before[g]).map(|g| g as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_of_the_previous_deployment_reach_its_workers_during_the_grace_period() {
    support::init_tracing();
    let one = support::deployment_fixture("one");
    let two = support::deployment_fixture("two");
    let releases = tempfile::tempdir().unwrap();
    let current = releases.path().join("current");
    point(&current, &one);
    let next = Next::prepare(
        NextOptions::new(&current)
            .workers(1)
            .reload_grace(Duration::from_secs(60))
            .mark_native_responses(true),
    )
    .await
    .expect("prepare release one");
    let addr = support::serve(Router::new().fallback_service(next.service())).await;

    // A page of release one: its assets carry `?dpl=one`.
    let page = support::page_text(addr, "/tagged").await;
    assert!(page.contains("dpl=one"), "no ?dpl=one in the page");

    // The Server Action of a form on a page of release one, as its client calls it.
    let form = support::page_text(addr, "/action").await;
    let action = support::hidden_inputs(&form)
        .into_iter()
        .find_map(|(name, _)| name.strip_prefix("$ACTION_ID_").map(str::to_owned))
        .expect("the form's action id");

    // A page rendered on demand by release one, now in the cache.
    let stamp = support::render_stamp;
    let gamma = |addr: SocketAddr| async move { support::page_text(addr, "/article/gamma").await };
    let rendered_by_one = stamp(&gamma(addr).await);
    assert_eq!(stamp(&gamma(addr).await), rendered_by_one, "cached");

    point(&current, &two);
    next.reload().await.expect("reload onto release two");
    // Release two never answers release one's cache entry (Next 16 gives both builds the
    // same build id when `deploymentId` is set: the cache is scoped by both).
    assert_ne!(
        stamp(&gamma(addr).await),
        rendered_by_one,
        "release two answered release one's cached page"
    );

    // The action, called after the reload by the client still on release one's page.
    let call = support::client()
        .post(format!("http://{addr}/action"))
        .header("next-action", &action)
        .header("x-deployment-id", "one")
        .header("accept", "text/x-component")
        .header("content-type", "text/plain;charset=UTF-8")
        .body("[]");
    assert_eq!(sent_to(&next, call).await, Some(0), "the Server Action");

    let rsc = [("rsc", "1")];
    // An RSC navigation from an old page: the old workers, even for a page Rust would
    // answer natively from the new build.
    assert_eq!(
        answered_by(
            &next,
            addr,
            "/tagged?_rsc=",
            &[rsc[0], ("x-deployment-id", "one")]
        )
        .await,
        Some(0),
        "x-deployment-id: one"
    );
    assert_eq!(
        answered_by(&next, addr, "/article/gamma?dpl=one", &[]).await,
        Some(0),
        "?dpl=one"
    );
    // The new deployment's requests, those without an id, and an id no generation has:
    // the new build.
    for headers in [
        vec![("x-deployment-id", "two")],
        vec![],
        vec![("x-deployment-id", "zero")],
    ] {
        let by = answered_by(&next, addr, "/article/gamma", &headers).await;
        assert_ne!(by, Some(0), "{headers:?} reached the old workers");
    }
    next.shutdown().await;
}
