//! The worker pool: a generation of supervised workers per build, requests to the least
//! busy ready worker, bounded in-flight requests and wait queue, a per-request timeout,
//! one retry when a worker cannot be reached, graceful shutdown and reload onto a new
//! build.
//!
//! Every answer the pool gives itself is a response: `503` with `Retry-After` when no
//! worker can take a request (shutting down, overloaded, starting, crash loop), `504`
//! when a worker is too slow to answer, `502` (from the proxy) when it fails mid-request.

use std::{
    path::{Path, PathBuf},
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{Notify, mpsc, watch};

mod generation;
mod status;

pub use status::{PoolStatus, WorkerHealth, WorkerStatus};

use super::{
    BRIDGE_SCRIPT, HOST_CACHE_SCRIPT,
    client::{Sent, WorkerClient},
    worker::{CrashReport, Worker, WorkerState},
};
use crate::{
    Error, NextOptions,
    body::{Body, plain_response},
    build::{AppInfo, BuildPath},
    cache::{Cache, Fence, WorkerEvent},
};

/// How long a worker that refused a connection gets no requests, unless it is restarted
/// sooner: long enough for its supervisor to see it exit, short enough that a passing
/// refusal (a full listen backlog) does not take it out for long.
const UNREACHABLE_PAUSE: Duration = Duration::from_secs(1);

/// The workers of the app, one generation per build. Cheap to clone.
///
/// `A` is what the rest of the crate derives from a build (the route table): it is
/// swapped together with the workers on reload, so a request never sees the routes of one
/// build with the workers of another.
pub(crate) struct WorkerPool<A> {
    shared: Arc<Shared<A>>,
}

impl<A> Clone for WorkerPool<A> {
    fn clone(&self) -> Self {
        WorkerPool {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<A> {
    options: NextOptions,
    blueprint: Blueprint,
    current: ArcSwap<Generation<A>>,
    /// Previous generations after a reload: they finish their requests and serve their
    /// build's assets for the grace period.
    retiring: Mutex<Vec<Arc<Generation<A>>>>,
    has_retiring: AtomicBool,
    generations: AtomicU64,
    /// Requests waiting for a worker.
    queued: AtomicUsize,
    /// Signalled when a request finishes (one waiter) or a worker changes state (all).
    room: Arc<Notify>,
    closing: AtomicBool,
    /// Held while shutting down; `true` once done.
    stopped: tokio::sync::Mutex<bool>,
    reloading: tokio::sync::Mutex<()>,
    /// Where the search for the least busy worker starts, so ties rotate.
    rotate: AtomicUsize,
    epoch: Instant,
}

impl<A> Shared<A> {
    /// Every generation: the current one first, then those retiring after a reload.
    fn generations(&self) -> Vec<Arc<Generation<A>>> {
        let mut generations = vec![self.current.load_full()];
        generations.extend(self.retiring.lock().expect("retiring lock").iter().cloned());
        generations
    }
}

/// What the workers of every generation are started with.
struct Blueprint {
    options: NextOptions,
    private_dir: PathBuf,
    script: PathBuf,
    /// The host's cache and the handler script that uses it (none in dev mode).
    cache: Option<(Arc<Cache>, serde_json::Value)>,
    room: Arc<Notify>,
    crash_report: Arc<CrashReport>,
}

/// The workers running one build, and what was derived from it.
pub(crate) struct Generation<A> {
    pub(crate) app: A,
    pub(crate) info: AppInfo,
    pub(crate) dir: PathBuf,
    id: u64,
    slots: Vec<Arc<Slot>>,
    /// Where responses wait for the cache events they may show.
    fence: Arc<Fence>,
}

/// One worker's cache events, for whoever keeps the native responders current.
pub(crate) struct SlotEvents {
    pub(crate) slot: usize,
    pub(crate) received: mpsc::UnboundedReceiver<WorkerEvent>,
    /// Where to publish the generation of the last event applied.
    pub(crate) applied: watch::Sender<u64>,
}

/// One worker with its HTTP client and its load.
struct Slot {
    worker: Worker,
    client: WorkerClient,
    /// The worker's cache events, until taken by whoever keeps the native responders
    /// current, with where to publish the last one applied (the proxy waits on it).
    events: Mutex<Option<(mpsc::UnboundedReceiver<WorkerEvent>, watch::Sender<u64>)>>,
    in_flight: AtomicUsize,
    handled: AtomicU64,
    /// Milliseconds since the pool's epoch until which the worker gets no requests: it
    /// refused a connection. 0 when reachable.
    unreachable_until: AtomicU64,
    room: Arc<Notify>,
}

/// A request's place on a worker: released (and a waiter woken) when dropped, which is
/// when the response body has been sent or dropped.
struct Lease {
    slot: Arc<Slot>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.slot.room.notify_one();
    }
}

/// Why a request was not given to a worker.
enum Refusal {
    ShuttingDown,
    QueueFull,
    Busy,
    Starting,
    Down(Arc<str>),
}

impl Refusal {
    fn response(self) -> Response<Body> {
        let (reason, retry_after): (&str, &'static str) = match &self {
            Refusal::ShuttingDown => ("Next.js is shutting down", "1"),
            Refusal::QueueFull => ("overloaded: all Next.js workers are busy", "1"),
            Refusal::Busy => ("all Next.js workers are busy", "1"),
            Refusal::Starting => ("Next.js worker is starting", "1"),
            Refusal::Down(reason) => (reason, "5"),
        };
        let mut response = plain_response(StatusCode::SERVICE_UNAVAILABLE, reason);
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static(retry_after),
        );
        response
    }
}

impl<A: Send + Sync + 'static> WorkerPool<A> {
    /// Starts the workers on the app in `dir` and waits until all are ready; `app` then
    /// derives what the rest of the crate needs from the build.
    pub(crate) async fn start(
        options: NextOptions,
        dir: PathBuf,
        private_dir: PathBuf,
        app: impl FnOnce(&Path, &AppInfo) -> Result<A, Error>,
    ) -> Result<WorkerPool<A>, Error> {
        // Written once: workers starting side by side must not read a half-written file.
        let script = private_dir.join("bridge.cjs");
        tokio::fs::write(&script, BRIDGE_SCRIPT)
            .await
            .map_err(Error::io(&script))?;
        let cache = if options.dev {
            None
        } else {
            let handler = private_dir.join("host-cache.cjs");
            tokio::fs::write(&handler, HOST_CACHE_SCRIPT)
                .await
                .map_err(Error::io(&handler))?;
            let socket = private_dir.join("cache.sock");
            let cache = Cache::start(options.cache_size, &socket, options.shared_cache.as_deref())?;
            Some((
                cache,
                serde_json::json!({ "handler": handler, "socket": socket }),
            ))
        };
        let room = Arc::new(Notify::new());
        let blueprint = Blueprint {
            options: options.clone(),
            private_dir,
            script,
            cache,
            room: room.clone(),
            crash_report: Arc::default(),
        };
        let generation = blueprint.launch(&dir, 0).await?.with_app(app)?;
        Ok(WorkerPool {
            shared: Arc::new(Shared {
                options,
                blueprint,
                current: ArcSwap::from_pointee(generation),
                retiring: Mutex::default(),
                has_retiring: AtomicBool::new(false),
                generations: AtomicU64::new(1),
                queued: AtomicUsize::new(0),
                room,
                closing: AtomicBool::new(false),
                stopped: tokio::sync::Mutex::new(false),
                reloading: tokio::sync::Mutex::new(()),
                rotate: AtomicUsize::new(0),
                epoch: Instant::now(),
            }),
        })
    }

    /// Whether a new request would be taken: not shutting down, and a worker of the
    /// current build is ready.
    pub(crate) fn ready(&self) -> bool {
        !self.shared.closing.load(Ordering::Acquire)
            && self
                .current()
                .slots
                .iter()
                .any(|slot| slot.worker.is_ready())
    }

    /// The generation that takes new requests.
    /// The host's cache (none in dev mode).
    pub(crate) fn cache(&self) -> Option<&Arc<Cache>> {
        self.shared.blueprint.cache.as_ref().map(|(cache, _)| cache)
    }

    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Generation<A>>> {
        self.shared.current.load()
    }

    /// Dev mode: the same workers with what was derived anew from their folder (the route
    /// table, after a page was added or deleted).
    pub(crate) fn replace_app(
        &self,
        app: impl FnOnce(&Path, &AppInfo) -> Result<A, Error>,
    ) -> Result<(), Error> {
        let current = self.current();
        let next = Generation {
            app: app(&current.dir, &current.info)?,
            info: current.info.clone(),
            dir: current.dir.clone(),
            id: current.id,
            slots: current.slots.clone(),
            fence: current.fence.clone(),
        };
        self.shared.current.store(Arc::new(next));
        Ok(())
    }

    /// Asks the bridge of a current worker for something it knows (see `Proxy::control`).
    pub(crate) async fn control(&self, name: &'static str) -> Result<bytes::Bytes, String> {
        let current = self.current();
        let slot = current.slots.first().ok_or("no worker")?.clone();
        drop(current);
        slot.client.control(name).await
    }

    /// Sends a request (made by `proxy::prepare`) to a worker and returns its
    /// response, whose body keeps the worker's slot taken until it has been sent.
    pub(crate) async fn forward(&self, request: Request<Body>) -> Response<Body> {
        let pinned = self.previous_build_for(&request);
        let lease = match self.lease(pinned).await {
            Ok(lease) => lease,
            Err(refusal) => return refusal.response(),
        };
        let timeout = self.shared.options.request_timeout;
        let exchange = async {
            let (lease, request) = match lease.slot.client.send(request).await {
                Sent::Response(response) => return (Some(lease), response),
                Sent::Broken(response) => {
                    // Its other kept-alive connections are as dead: no new request goes
                    // there before the supervisor has seen the exit.
                    self.mark_unreachable(&lease.slot);
                    return (None, response);
                }
                Sent::Unreachable(request) => (lease, request),
            };
            // Nothing was sent: the request may go to another worker, once.
            self.mark_unreachable(&lease.slot);
            tracing::warn!(worker = %lease.slot.worker.name(), "Next.js worker refused the connection; retrying on another worker");
            drop(lease);
            let lease = match self.lease(None).await {
                Ok(lease) => lease,
                Err(refusal) => return (None, refusal.response()),
            };
            match lease.slot.client.send(request).await {
                Sent::Response(response) => (Some(lease), response),
                Sent::Broken(response) => {
                    self.mark_unreachable(&lease.slot);
                    (None, response)
                }
                Sent::Unreachable(_) => {
                    self.mark_unreachable(&lease.slot);
                    tracing::error!(worker = %lease.slot.worker.name(), "Next.js worker unreachable, after a retry");
                    let response =
                        plain_response(StatusCode::BAD_GATEWAY, "Next.js worker unreachable");
                    (None, response)
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            // The worker's place is held until the body has been sent or dropped.
            Ok((Some(lease), response)) => response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &lease;
                    frame
                }))
            }),
            Ok((None, response)) => response,
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "Next.js did not answer in time; answering 504 (see NextOptions::request_timeout)"
                );
                plain_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("Next.js did not answer within {timeout:?}"),
                )
            }
        }
    }

    /// During a reload's grace period: the previous generation, for a request of a client
    /// still on a page of the previous build (skew protection): one that carries the
    /// previous deployment's id (`x-deployment-id`, or `?dpl=`), or asks for an asset or
    /// data route that only the previous build has.
    pub(crate) fn previous_build_for<B>(&self, request: &Request<B>) -> Option<Arc<Generation<A>>> {
        if !self.shared.has_retiring.load(Ordering::Acquire) {
            return None;
        }
        let current = self.shared.current.load();
        if let Some(id) = deployment_id(request)
            && current.info.config.deployment_id.as_deref() != Some(id)
        {
            let retiring = self.shared.retiring.lock().expect("retiring lock");
            let previous = retiring
                .iter()
                .rev()
                .find(|g| g.info.config.deployment_id.as_deref() == Some(id));
            if let Some(previous) = previous {
                return Some(previous.clone());
            }
        }
        let asked = BuildPath::of(request.uri().path(), &current.info.config.base_path)?;
        let retiring = self.shared.retiring.lock().expect("retiring lock");
        match asked {
            BuildPath::Data { build_id } => retiring
                .iter()
                .rev()
                .find(|g| g.info.build_id == build_id && build_id != current.info.build_id)
                .cloned(),
            BuildPath::Static { file } => {
                let has =
                    |g: &Generation<A>| g.info.config.dist_dir.join("static").join(file).is_file();
                if has(&current) {
                    return None;
                }
                retiring.iter().rev().find(|g| has(g)).cloned()
            }
        }
    }

    /// Whether a request may be answered from the current build: not while it belongs
    /// to a previous deployment that is still served.
    pub(crate) fn is_current<B>(&self, request: &Request<B>) -> bool {
        self.previous_build_for(request).is_none()
    }

    fn mark_unreachable(&self, slot: &Slot) {
        let until = self.shared.epoch.elapsed() + UNREACHABLE_PAUSE;
        slot.unreachable_until
            .store(until.as_millis() as u64, Ordering::Release);
    }

    /// A place on a worker: at once when one has room, else after a bounded wait in the
    /// queue, else a refusal. `pinned` (a previous build) is tried first, without waiting.
    async fn lease(&self, pinned: Option<Arc<Generation<A>>>) -> Result<Lease, Refusal> {
        let shared = &*self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        if let Some(lease) = pinned.and_then(|g| self.try_lease(&g)) {
            return Ok(lease);
        }
        // Nobody waits: take a free place directly. Otherwise join the queue, so that
        // newcomers do not overtake waiting requests.
        if shared.queued.load(Ordering::Acquire) == 0
            && let Some(lease) = self.try_lease(&shared.current.load())
        {
            return Ok(lease);
        }
        if let Some(refusal) = hopeless(&shared.current.load()) {
            return Err(refusal);
        }
        if shared.queued.fetch_add(1, Ordering::AcqRel) >= shared.options.queue_size {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::QueueFull);
        }
        let _queued = Queued(&shared.queued);
        let wait = async {
            loop {
                let mut notified = pin!(shared.room.notified());
                notified.as_mut().enable();
                if shared.closing.load(Ordering::Acquire) {
                    return Err(Refusal::ShuttingDown);
                }
                let current = shared.current.load();
                if let Some(lease) = self.try_lease(&current) {
                    return Ok(lease);
                }
                if let Some(refusal) = hopeless(&current) {
                    return Err(refusal);
                }
                drop(current);
                // Also look again when a refused worker's pause ends, which nothing signals.
                let _ = tokio::time::timeout(UNREACHABLE_PAUSE, notified).await;
            }
        };
        match tokio::time::timeout(shared.options.ready_wait, wait).await {
            Ok(result) => result,
            Err(_) => {
                let current = shared.current.load();
                let refusal = if current.slots.iter().any(|s| s.worker.is_ready()) {
                    Refusal::Busy
                } else {
                    match current
                        .slots
                        .iter()
                        .map(|s| s.worker.state())
                        .find_map(|s| match s {
                            WorkerState::Down { reason, .. } | WorkerState::Unhealthy(reason) => {
                                Some(reason)
                            }
                            _ => None,
                        }) {
                        Some(reason) => Refusal::Down(reason),
                        None => Refusal::Starting,
                    }
                };
                tracing::warn!(waited = ?shared.options.ready_wait, reason = %refusal.reason(), "no Next.js worker took the request in time");
                Err(refusal)
            }
        }
    }

    /// The ready, reachable worker with the fewest requests in flight, if one has room.
    fn try_lease(&self, generation: &Generation<A>) -> Option<Lease> {
        let slots = &generation.slots;
        let max = self.shared.options.max_in_flight;
        let now = self.shared.epoch.elapsed().as_millis() as u64;
        let start = self.shared.rotate.fetch_add(1, Ordering::Relaxed);
        loop {
            let mut best: Option<(&Arc<Slot>, usize)> = None;
            for i in 0..slots.len() {
                let slot = &slots[(start + i) % slots.len()];
                let in_flight = slot.in_flight.load(Ordering::Acquire);
                if in_flight >= max
                    || best.is_some_and(|(_, least)| in_flight >= least)
                    || slot.unreachable_until.load(Ordering::Acquire) > now
                    || !slot.worker.is_ready()
                {
                    continue;
                }
                best = Some((slot, in_flight));
            }
            let (slot, in_flight) = best?;
            if slot
                .in_flight
                .compare_exchange(
                    in_flight,
                    in_flight + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                slot.handled.fetch_add(1, Ordering::Relaxed);
                return Some(Lease { slot: slot.clone() });
            }
            // Another request took that place meanwhile: look again.
        }
    }
}

impl Refusal {
    fn reason(&self) -> &str {
        match self {
            Refusal::ShuttingDown => "shutting down",
            Refusal::QueueFull => "queue full",
            Refusal::Busy => "all workers busy",
            Refusal::Starting => "starting",
            Refusal::Down(reason) => reason,
        }
    }
}

/// No worker will take a request soon: every one is stopped or failing to start.
fn hopeless<A>(generation: &Generation<A>) -> Option<Refusal> {
    let mut down = None;
    for slot in &generation.slots {
        match slot.worker.state() {
            WorkerState::Stopped => down = down.or_else(|| Some("Next.js worker stopped".into())),
            WorkerState::Down {
                reason,
                failing: true,
            } => down = Some(reason),
            _ => return None,
        }
    }
    down.map(Refusal::Down)
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The deployment a request says it belongs to: Next's client sends `x-deployment-id` with
/// RSC requests and Server Actions, and adds `?dpl=` to asset URLs, when next.config sets
/// `deploymentId`.
fn deployment_id<B>(request: &Request<B>) -> Option<&str> {
    if let Some(id) = request.headers().get("x-deployment-id") {
        return id.to_str().ok().filter(|id| !id.is_empty());
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("dpl="))
        .filter(|id| !id.is_empty())
}
