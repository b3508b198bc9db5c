//! Metrics through the [`metrics`] facade (no exporter forced on users), named after
//! OpenTelemetry's HTTP semantic conventions, and the `http.route` of each request on its
//! `tracing` span.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http.server.request.duration` (seconds, to the response head) | histogram | `http.request.method`, `http.response.status_code`, `http.route` (when known), `tower_next.responder` (`native`, `node`, `inner`) |
//! | `tower_next.workers` | gauge | `state` (`starting`, `ready`, `unhealthy`, `down` (restarting), `stopped`) |
//! | `tower_next.requests.in_flight`, `tower_next.queue.length` | gauge | |
//! | `tower_next.worker.restarts` | counter | |
//! | `tower_next.cache.lookups` | counter | `result` (`hit`, `miss`), `store` (`local`, `shared`) |
//!
//! The native hit ratio is `tower_next.responder="native"` over all responses of the
//! histogram.

use std::{sync::Once, time::Duration};

use http::{Method, StatusCode};

/// The request duration histogram (seconds).
pub const REQUEST_DURATION: &str = "http.server.request.duration";
/// Workers by state (gauge).
pub const WORKERS: &str = "tower_next.workers";
/// Requests the workers are handling (gauge).
pub const IN_FLIGHT: &str = "tower_next.requests.in_flight";
/// Requests waiting for a worker (gauge).
pub const QUEUE_LENGTH: &str = "tower_next.queue.length";
/// Worker restarts since start (counter).
pub const RESTARTS: &str = "tower_next.worker.restarts";
/// Lookups in the host's cache (counter).
pub const CACHE_LOOKUPS: &str = "tower_next.cache.lookups";

/// Marks a response whose request is already measured (a `NextService` under a
/// `NextLayer`, as the Router's fallback): the layer does not count it again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measured;

/// Who answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Responder {
    /// Rust, from the build (a prerendered page, a static file).
    Native,
    /// A Node.js worker.
    Node,
    /// The service `NextLayer` wraps.
    Inner,
}

impl Responder {
    fn as_str(self) -> &'static str {
        match self {
            Responder::Native => "native",
            Responder::Node => "node",
            Responder::Inner => "inner",
        }
    }
}

fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "Duration of HTTP server requests, to the response head."
        );
        metrics::describe_gauge!(WORKERS, "Node.js workers of the current build, by state.");
        metrics::describe_gauge!(IN_FLIGHT, "Requests the workers are handling.");
        metrics::describe_gauge!(QUEUE_LENGTH, "Requests waiting for a worker.");
        metrics::describe_counter!(RESTARTS, "Worker restarts since start.");
        metrics::describe_counter!(
            CACHE_LOOKUPS,
            "Lookups in the host's cache of Next's entries."
        );
    });
}

/// Records one answered request.
pub(crate) fn record_request(
    method: &Method,
    status: StatusCode,
    route: Option<&str>,
    responder: Responder,
    elapsed: Duration,
) {
    describe();
    let labels = [
        ("http.request.method", method_label(method)),
        ("http.response.status_code", status.as_str().to_owned()),
        ("tower_next.responder", responder.as_str().to_owned()),
    ];
    match route {
        Some(route) => {
            let labels = [
                labels[0].clone(),
                labels[1].clone(),
                labels[2].clone(),
                ("http.route", route.to_owned()),
            ];
            metrics::histogram!(REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
        }
        None => metrics::histogram!(REQUEST_DURATION, &labels).record(elapsed.as_secs_f64()),
    }
}

/// OpenTelemetry's rule: a known method as it is, anything else as `_OTHER`, so that a
/// client cannot create label values at will.
fn method_label(method: &Method) -> String {
    match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::CONNECT
        | Method::OPTIONS
        | Method::TRACE
        | Method::PATCH => method.as_str().to_owned(),
        _ => "_OTHER".to_owned(),
    }
}

/// Records a lookup in the host's cache.
pub(crate) fn record_cache_lookup(hit: bool, store: &'static str) {
    describe();
    metrics::counter!(CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" }, "store" => store).increment(1);
}

/// The pool's state, as gauges.
pub(crate) fn record_pool(status: &crate::PoolStatus) {
    describe();
    use crate::WorkerHealth;
    let current = status.workers.iter().filter(|w| w.current);
    let mut counts = [0u32; 5];
    let mut in_flight = 0;
    let mut restarts = 0;
    for worker in current {
        let index = match worker.health {
            WorkerHealth::Starting => 0,
            WorkerHealth::Ready => 1,
            WorkerHealth::Unhealthy => 2,
            WorkerHealth::Down => 3,
            WorkerHealth::Stopped => 4,
        };
        counts[index] += 1;
        in_flight += worker.in_flight;
        restarts += u64::from(worker.restarts);
    }
    for (state, count) in ["starting", "ready", "unhealthy", "down", "stopped"]
        .into_iter()
        .zip(counts)
    {
        metrics::gauge!(WORKERS, "state" => state).set(f64::from(count));
    }
    metrics::gauge!(IN_FLIGHT).set(in_flight as f64);
    metrics::gauge!(QUEUE_LENGTH).set(status.queued as f64);
    metrics::counter!(RESTARTS).absolute(restarts);
}
