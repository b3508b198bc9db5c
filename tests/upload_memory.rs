//! A 50 MB upload passes through the layer while the Rust process's memory stays flat
//! (issue: the core, item 6). Alone in its test binary, so the process's peak RSS is ours.

mod support;

use axum::Router;
use tower_next::NextLayer;

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

#[tokio::test(flavor = "multi_thread")]
async fn fifty_megabyte_upload_keeps_memory_flat() {
    const SIZE: usize = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let next = support::prepare().await;
    let addr = support::serve(Router::new().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();
    let upload = |size: usize| {
        let chunks = futures::stream::iter(
            (0..size / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK])),
        );
        client
            .post(format!("http://{addr}/api/hello"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
    };
    // Warm up connections and buffers first.
    upload(4 * CHUNK).await.unwrap().bytes().await.unwrap();

    reset_peak_rss();
    let before = peak_rss_kib();
    let response = upload(SIZE).await.unwrap();
    let json: serde_json::Value = response.json().await.unwrap();
    let growth_mib = (peak_rss_kib() - before) / 1024;
    assert_eq!(json["bytes"], SIZE);
    eprintln!("peak RSS grew by {growth_mib} MiB during a 50 MiB upload");
    assert!(
        growth_mib < 16,
        "peak RSS grew by {growth_mib} MiB: the upload was buffered"
    );
    next.shutdown().await;
}
