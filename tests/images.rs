//! `/_next/image` (issue 11, item 4): tower-next answers as `next start` does on the same
//! build, Node's first answers then Rust's from Next's image cache; a burst for one image
//! is optimized once across the pool.
//!
//! Each server runs on its own copy of the build, so each fills its own image cache. The
//! images are the fixture's `public/images` files, the widths and qualities those the
//! build's `images-manifest.json` allows, plus requests Next refuses.

mod support;

use std::{net::SocketAddr, path::Path};

use reqwest::Method;
use support::responses::{self, Captured};
use tower_next::{Next, NextOptions};

const NATIVE: &str = "x-tower-next-native";

/// The `Accept` headers asked with: none, a browser's, WebP only, wildcards.
const ACCEPTS: &[Option<&str>] = &[
    None,
    Some("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    Some("image/webp"),
    Some("*/*"),
];

/// The raster images of the fixture's `public/images`, as `url` values.
fn images(dir: &Path) -> Vec<String> {
    let mut images: Vec<String> = std::fs::read_dir(dir.join("public/images"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jpg") || name.ends_with(".png"))
        .map(|name| format!("/images/{name}"))
        .collect();
    images.sort();
    assert!(!images.is_empty(), "the fixture has no raster images");
    images
}

/// The build's allowed widths (the smallest and a device size) and qualities.
fn sizes_and_quality(dir: &Path) -> (Vec<u64>, u64) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".next/images-manifest.json")).unwrap())
            .unwrap();
    let images = &manifest["images"];
    let device = images["deviceSizes"][0].as_u64().unwrap();
    let smallest = images["imageSizes"][0].as_u64().unwrap();
    let quality = images["qualities"]
        .as_array()
        .and_then(|q| q.first())
        .and_then(|q| q.as_u64())
        .unwrap_or(75);
    (vec![smallest, device], quality)
}

async fn ask(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Captured {
    let client = support::client();
    responses::send(&client, addr, method, path, headers)
        .await
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Differences between two answers: status, headers (but the marker and the hop's), body.
fn differences(reference: &Captured, ours: &Captured) -> Vec<String> {
    let mut found = Vec::new();
    if reference.status != ours.status {
        found.push(format!("status {} vs {}", reference.status, ours.status));
    }
    for name in responses::compared_headers(reference, ours) {
        if name == NATIVE {
            continue;
        }
        if reference.headers.get(name) != ours.headers.get(name) {
            found.push(format!(
                "{name}: {:?} vs {:?}",
                reference.headers.get(name),
                ours.headers.get(name)
            ));
        }
    }
    if reference.body != ours.body {
        found.push(format!(
            "body ({} vs {} bytes)",
            reference.body.len(),
            ours.body.len()
        ));
    }
    found
}

async fn start(dir: &Path, options: impl FnOnce(NextOptions) -> NextOptions) -> (Next, SocketAddr) {
    support::init_tracing();
    let next = Next::prepare(options(NextOptions::new(dir)).mark_native_responses(true))
        .await
        .expect("prepare the fixture");
    let addr = support::serve_axum_layer(&next).await;
    (next, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_answered_as_next_start_answers_them_then_natively() {
    let fixture = support::fixture();
    let reference = support::next_start_in(&support::fresh_copy(&fixture, "images-reference"));
    let (next, addr) = start(&support::fresh_copy(&fixture, "images-tower-next"), |o| {
        o.workers(2)
    })
    .await;
    let (widths, quality) = sizes_and_quality(&fixture);

    let mut mismatches = Vec::new();
    let mut native = 0;
    for image in images(&fixture) {
        let url = image.replace('/', "%2F");
        for width in &widths {
            for accept in ACCEPTS {
                let path = format!("/_next/image?url={url}&w={width}&q={quality}");
                let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
                // Next's first answer optimizes (MISS), its second comes from its cache.
                let miss = ask(reference.addr, Method::GET, &path, &headers).await;
                let hit = ask(reference.addr, Method::GET, &path, &headers).await;
                assert_eq!(hit.header("x-nextjs-cache"), Some("HIT"), "{path}");
                // Ours: Node's miss, Node's hit (checked against Rust's), Rust's.
                let answers = [
                    ask(addr, Method::GET, &path, &headers).await,
                    ask(addr, Method::GET, &path, &headers).await,
                    ask(addr, Method::GET, &path, &headers).await,
                ];
                for (ours, reference) in answers.iter().zip([&miss, &hit, &hit]) {
                    for difference in differences(reference, ours) {
                        mismatches.push(format!("{path} {accept:?}: {difference}"));
                    }
                }
                if answers[2].header(NATIVE) == Some("image") {
                    native += 1;
                } else {
                    mismatches.push(format!("{path} {accept:?}: the third answer is not native"));
                }

                // Conditional and HEAD requests of the cached image.
                let etag = hit.header("etag").unwrap().to_owned();
                let conditional: Vec<(&str, &str)> = headers
                    .iter()
                    .copied()
                    .chain([("if-none-match", etag.as_str())])
                    .collect();
                for (method, headers) in [
                    (Method::GET, &conditional),
                    (Method::HEAD, &headers),
                    (Method::HEAD, &conditional),
                ] {
                    let reference = ask(reference.addr, method.clone(), &path, headers).await;
                    let ours = ask(addr, method.clone(), &path, headers).await;
                    for difference in differences(&reference, &ours) {
                        mismatches.push(format!("{method} {path} {headers:?}: {difference}"));
                    }
                }
            }
        }
    }

    // Requests Next refuses or answers otherwise, asked twice of each server.
    let image = images(&fixture)[0].replace('/', "%2F");
    let refused = [
        format!("/_next/image?url={image}&w=1&q={quality}"),
        format!("/_next/image?url={image}&w={}&q=101", widths[0]),
        format!("/_next/image?url={image}&w={}", widths[0]),
        format!("/_next/image?w={}&q={quality}", widths[0]),
        format!(
            "/_next/image?url={image}&url={image}&w={}&q={quality}",
            widths[0]
        ),
        format!(
            "/_next/image?url=%2F%2Fevil.example%2Fx.jpg&w={}&q={quality}",
            widths[0]
        ),
        format!(
            "/_next/image?url=%2Fimages%2Fmissing.jpg&w={}&q={quality}",
            widths[0]
        ),
        format!(
            "/_next/image?url=%2F_next%2Fimage&w={}&q={quality}",
            widths[0]
        ),
        format!("/_next/image?url={image}&w=0{}&q={quality}", widths[0]),
    ];
    for path in &refused {
        for _ in 0..2 {
            let reference = ask(reference.addr, Method::GET, path, &[]).await;
            let ours = ask(addr, Method::GET, path, &[]).await;
            for difference in differences(&reference, &ours) {
                mismatches.push(format!("{path}: {difference}"));
            }
        }
    }
    next.shutdown().await;
    assert!(native > 0);
    assert!(
        mismatches.is_empty(),
        "tower-next differs from next start:\n{}",
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_image_is_optimized_once_across_the_pool() {
    let fixture = support::fixture();
    let (next, addr) = start(&support::fresh_copy(&fixture, "images-burst"), |o| {
        o.workers(2)
    })
    .await;
    let (widths, quality) = sizes_and_quality(&fixture);
    let image = images(&fixture)[0].replace('/', "%2F");
    let path = format!("/_next/image?url={image}&w={}&q={quality}", widths[1]);
    let answers = futures::future::join_all(
        (0..16).map(|_| ask(addr, Method::GET, &path, &[("accept", "image/webp")])),
    )
    .await;
    next.shutdown().await;
    let misses = answers
        .iter()
        .filter(|a| a.header("x-nextjs-cache") == Some("MISS"))
        .count();
    assert!(answers.iter().all(|a| a.status == 200));
    assert!(answers.windows(2).all(|w| w[0].body == w[1].body));
    // Without the line per key, each worker that got a request would optimize it.
    assert_eq!(
        misses, 1,
        "one optimization, the others answered from its entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidating_browser_does_not_keep_an_image_on_node() {
    let fixture = support::fixture();
    let (next, addr) = start(&support::fresh_copy(&fixture, "images-revalidate"), |o| {
        o.workers(1)
    })
    .await;
    let (widths, quality) = sizes_and_quality(&fixture);
    let image = images(&fixture)[0].replace('/', "%2F");
    let path = format!("/_next/image?url={image}&w={}&q={quality}", widths[0]);
    let miss = ask(addr, Method::GET, &path, &[]).await;
    let etag = miss.header("etag").unwrap().to_owned();
    // The first answer from the entry goes to a browser revalidating its copy: Node's 304.
    let revalidated = ask(addr, Method::GET, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, 304);
    let checked = ask(addr, Method::GET, &path, &[]).await;
    let native = ask(addr, Method::GET, &path, &[]).await;
    next.shutdown().await;
    assert_eq!(
        checked.header(NATIVE),
        None,
        "Node's answer is the one checked"
    );
    assert_eq!(native.header(NATIVE), Some("image"));
    assert_eq!(native.body, miss.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimizations_past_the_bound_wait_in_line_and_past_the_line_get_503() {
    let fixture = support::fixture();
    let (next, addr) = start(&support::fresh_copy(&fixture, "images-bound"), |o| {
        o.workers(1).image_optimizations(1).queue_size(1)
    })
    .await;
    let (widths, quality) = sizes_and_quality(&fixture);
    let image = images(&fixture)[0].replace('/', "%2F");
    // Three different images at once: one optimizes, one waits its turn, one is refused.
    let path = |width: u64| format!("/_next/image?url={image}&w={width}&q={quality}");
    let asks = [
        (path(widths[0]), None),
        (path(widths[1]), None),
        (path(widths[0]), Some("image/webp")),
    ];
    let answers = futures::future::join_all(asks.iter().map(|(path, accept)| {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        async move { ask(addr, Method::GET, path, &headers).await }
    }))
    .await;
    next.shutdown().await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503], "{answers:?}");
    let refused = answers.iter().find(|a| a.status == 503).unwrap();
    assert_eq!(refused.header("retry-after"), Some("1"));
}
