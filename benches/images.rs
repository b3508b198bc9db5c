//! `/_next/image` against `next start`, on copies of the same build, in one run.
//!
//! ```sh
//! apt-get install -y wrk
//! cargo bench --bench images                  # about 2 minutes
//! BENCH_SECONDS=5 BENCH_ROUNDS=3 IMAGE_WORKERS=2 cargo bench --bench images
//! ```
//!
//! Two measurements:
//! - **cache hits**: `wrk -t2 -c32` on one image both servers have optimized and cached
//!   (tower-next answers it from Next's image cache, once checked against its worker), at
//!   the smallest allowed width and at the first device size;
//! - **a burst of misses**: every allowed width of a large JPEG (made here with the
//!   fixture's sharp, 4000×3000), in two formats, asked at once of a server whose image
//!   cache is empty. It prints the time until the last answer and the peak memory (RSS,
//!   sampled every 20 ms) of each server's processes: `next start`'s, and tower-next's
//!   Rust process plus its workers.
//!
//! Each server runs on its own copy of the build, so neither reads the other's cache.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Run, Server};
use tower_next::{Next, NextOptions};

/// The large image of the burst, made in each copy's `public/images`.
const LARGE: &str = "/images/bench-large.jpg";

fn wrk(addr: SocketAddr, path: &str, seconds: u64) -> Run {
    common::wrk(addr, path, seconds).unwrap_or_else(|output| panic!("wrk failed: {output}"))
}

/// A 4000×3000 JPEG of noise-like pixels, written with the fixture's sharp.
fn make_large_image(dir: &Path) {
    let script = r#"
const sharp = require('sharp');
const [w, h] = [4000, 3000];
const pixels = Buffer.alloc(w * h * 3);
for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 })
  .toFile(process.argv[1]).catch((err) => { console.error(err); process.exit(1); });
"#;
    let status = Command::new("node")
        .args(["-e", script])
        .arg(dir.join(format!("public{LARGE}")))
        .current_dir(dir)
        .status()
        .expect("run node");
    assert!(status.success(), "making the large image failed");
}

/// The RSS of `pid`, in KiB, with its descendants' when `tree`.
fn rss(pid: u32, tree: bool) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0);
    if !tree {
        return own;
    }
    let children = common::processes(1, pid, None);
    own + children.into_iter().map(|c| rss(c, true)).sum::<u64>()
}

/// The RSS of processes (each with its descendants when `true`), in KiB.
fn total_rss(pids: &[(u32, bool)]) -> u64 {
    pids.iter().map(|(pid, tree)| rss(*pid, *tree)).sum()
}

/// Every allowed width of the large image, in two formats, at once: the time until the
/// last answer, the RSS (KiB) of `pids` before and at its peak, and the statuses.
async fn burst(
    addr: SocketAddr,
    pids: &[(u32, bool)],
    widths: &[u64],
    quality: u64,
) -> (Duration, u64, u64, Vec<u16>) {
    let before = total_rss(pids);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pids) = (peak.clone(), done.clone(), pids.to_vec());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(total_rss(&pids), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let client = support::client();
    let url = LARGE.replace('/', "%2F");
    let started = Instant::now();
    let requests = widths.iter().flat_map(|width| {
        [None, Some("image/webp")].map(|accept| {
            let mut request = client
                .get(format!(
                    "http://{addr}/_next/image?url={url}&w={width}&q={quality}"
                ))
                .timeout(Duration::from_secs(120));
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            async move {
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                }
            }
        })
    });
    let statuses = futures::future::join_all(requests).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (took, before, peak.load(Ordering::Relaxed), statuses)
}

/// The allowed widths (sorted), the first device size and the first allowed quality.
fn allowed(dir: &Path) -> (Vec<u64>, u64, u64) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".next/images-manifest.json")).unwrap())
            .unwrap();
    let images = &manifest["images"];
    let mut widths: Vec<u64> = images["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_u64())
        .collect();
    widths.sort();
    let quality = images["qualities"]
        .as_array()
        .and_then(|q| q.first()?.as_u64())
        .unwrap_or(75);
    let device_width = images["deviceSizes"][0].as_u64().unwrap_or(widths[0]);
    (widths, device_width, quality)
}

async fn tower_next(dir: &Path, workers: usize) -> (Next, SocketAddr) {
    let next = Next::prepare(NextOptions::new(dir).workers(workers))
        .await
        .expect("prepare the fixture");
    let addr = support::serve_axum_layer(&next).await;
    (next, addr)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds = common::knob("BENCH_SECONDS", 5);
    let rounds = common::knob("BENCH_ROUNDS", 3).max(1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = common::knob("IMAGE_WORKERS", cores as u64) as usize;
    let fixture = support::fixture();
    let (widths, device_width, quality) = allowed(&fixture);
    let copies = ["bench-images-next-start", "bench-images-tower-next"]
        .map(|name| support::fresh_copy(&fixture, name));
    for copy in &copies {
        let _ = std::fs::remove_dir_all(copy.join(".next/cache/images"));
        make_large_image(copy);
    }
    let reference = support::next_start_in(&copies[0]);
    let (next, addr) = tower_next(&copies[1], workers).await;
    // The bench process is tower-next's Rust process (next start is its child too).
    let reference_pids = vec![(reference.child.id(), true)];
    let mut ours_pids = vec![(std::process::id(), false)];
    ours_pids.extend(
        common::worker_pids(&next)
            .into_iter()
            .map(|pid| (pid, true)),
    );

    println!(
        "\n`/_next/image`, tower-next with {workers} workers; {}\n",
        common::machine()
    );
    println!(
        "### A burst of misses: {} requests at once\n",
        widths.len() * 2
    );
    println!("| server | all answered after | RSS before | peak RSS | statuses |");
    println!("|---|---:|---:|---:|---|");
    for (name, addr, pids) in [
        ("next start", reference.addr, &reference_pids),
        ("tower-next (Rust + workers)", addr, &ours_pids),
    ] {
        let (took, before, peak, statuses) = burst(addr, pids, &widths, quality).await;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        println!(
            "| {name} | {:.1} s | {} MiB | {} MiB | {ok} of {} 200 |",
            took.as_secs_f64(),
            before / 1024,
            peak / 1024,
            statuses.len()
        );
    }

    // Cache hits: the photo at the smallest width and at the first device size (the
    // usual `next/image` width), optimized and cached by both (and checked by tower-next)
    // before the load.
    let servers = [
        Server {
            name: "next start".into(),
            addr: reference.addr,
            rust: false,
            node: common::processes(2, reference.child.id(), None),
            redis: None,
        },
        Server {
            name: format!("tower-next, {workers} workers"),
            addr,
            rust: true,
            node: common::worker_pids(&next),
            redis: None,
        },
    ];
    println!("\n### Cache hits: `wrk -t2 -c32 -d{seconds}s`, {rounds} rounds taking turns\n");
    println!(
        "| image | server | req/s, median (all runs) | p50 | p99 | errors | vs next start | CPU µs/request: Rust + Node |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for width in [widths[0], device_width] {
        let path = format!("/_next/image?url=%2Fimages%2Fphoto.jpg&w={width}&q={quality}");
        let mut size = 0;
        for server in [reference.addr, addr] {
            for _ in 0..3 {
                let response = support::client()
                    .get(format!("http://{server}{path}"))
                    .send()
                    .await
                    .expect("warm the image");
                size = response.bytes().await.map_or(0, |b| b.len());
            }
        }
        for server in &servers {
            wrk(server.addr, &path, seconds.min(2));
        }
        let runs = common::take_turns(&servers, &path, seconds, rounds, wrk).await;
        for cells in common::cells(&servers, &runs) {
            println!("| `photo.jpg` at w={width} ({size} bytes) | {cells}");
        }
    }
    next.shutdown().await;
    drop(reference);
}
