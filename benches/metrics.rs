//! What the metrics cost on the native path (issue 13: goal ≤ 5% of req/s): one tower-next
//! on the fixture, natively answered routes loaded by wrk with the metrics recorder off and
//! on, taking turns in one process.
//!
//! ```sh
//! cargo bench --bench metrics               # 5 s per run, 3 rounds
//! BENCH_SECONDS=3 BENCH_ROUNDS=5 cargo bench --bench metrics
//! ```
//!
//! The recorder is a Prometheus recorder (as the `axum_layer` example installs) behind a
//! switch: off, every metric goes to the no-op recorder, as in an app that installs none.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::Router;
use common::Run;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tower_next::Next;

/// Natively answered routes: a prerendered page and a hashed asset (found at start).
const PAGE: &str = "/about";

/// A recorder that is the Prometheus recorder while `on`, and records nothing otherwise.
struct Switch {
    on: Arc<AtomicBool>,
    inner: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

fn wrk(addr: std::net::SocketAddr, path: &str, seconds: u64) -> Run {
    common::wrk(addr, path, seconds).unwrap_or_else(|output| panic!("wrk failed: {output}"))
}

#[tokio::main]
async fn main() {
    let seconds = common::knob("BENCH_SECONDS", 5);
    let rounds = common::knob("BENCH_ROUNDS", 3);
    let on = Arc::new(AtomicBool::new(false));
    metrics::set_global_recorder(Switch {
        on: on.clone(),
        inner: PrometheusBuilder::new().build_recorder(),
    })
    .expect("the only recorder");

    let dir = support::fixture();
    let next = Next::prepare(tower_next::NextOptions::new(&dir).workers(1))
        .await
        .expect("prepare the fixture");
    let addr = support::serve(Router::new().fallback_service(next.service())).await;
    let home = support::page_text(addr, "/").await;
    let chunk = support::first_static_asset(&home);

    println!("\n{}", common::machine());
    println!("| route | metrics off, req/s | metrics on, req/s | on / off |");
    println!("|---|---:|---:|---:|");
    for path in [PAGE, chunk.as_str()] {
        let _ = wrk(addr, path, 1);
        let (mut off, mut with) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            on.store(false, Ordering::Relaxed);
            off.push(wrk(addr, path, seconds));
            on.store(true, Ordering::Relaxed);
            with.push(wrk(addr, path, seconds));
        }
        for runs in [&mut off, &mut with] {
            runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
        }
        let ratio = common::median(&with).requests_per_second
            / common::median(&off).requests_per_second.max(1.0);
        println!(
            "| {path} | {} | {} | {ratio:.3} |",
            common::throughput(&off),
            common::throughput(&with)
        );
    }
    next.shutdown().await;
}
