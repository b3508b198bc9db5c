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
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{Notify, mpsc, watch};

use super::{
    BRIDGE_SCRIPT, CACHE_HANDLER_SCRIPT,
    client::{Sent, WorkerClient},
    worker::{CrashReport, Events, Launch, Worker, WorkerState},
};
use crate::{
    Error, NextOptions,
    body::{Body, plain_response},
    build::AppInfo,
    cache::{Fence, Journal, WorkerEvent},
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

/// What the workers of every generation are started with.
struct Blueprint {
    options: NextOptions,
    private_dir: PathBuf,
    script: PathBuf,
    cache_handler: PathBuf,
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
    tags_log: Option<PathBuf>,
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
        let cache_handler = private_dir.join("cache-handler.cjs");
        tokio::fs::write(&script, BRIDGE_SCRIPT).await?;
        tokio::fs::write(&cache_handler, CACHE_HANDLER_SCRIPT).await?;
        let room = Arc::new(Notify::new());
        let blueprint = Blueprint {
            options: options.clone(),
            private_dir,
            script,
            cache_handler,
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

    /// The generation that takes new requests.
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
            tags_log: current.tags_log.clone(),
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
        let pinned = self.previous_build_for(request.uri().path());
        let lease = match self.lease(pinned).await {
            Ok(lease) => lease,
            Err(refusal) => return refusal.response(),
        };
        let timeout = self.shared.options.request_timeout;
        let exchange = async {
            let (lease, request) = match lease.slot.client.send(request).await {
                Sent::Response(response) => return (Some(lease), response),
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

    /// During a reload's grace period: the previous generation, for a request of an asset
    /// or data route that only the previous build has.
    fn previous_build_for(&self, path: &str) -> Option<Arc<Generation<A>>> {
        if !self.shared.has_retiring.load(Ordering::Acquire) {
            return None;
        }
        let current = self.shared.current.load();
        let rest = path.strip_prefix(current.info.config.base_path.trim_end_matches('/'))?;
        let retiring = self.shared.retiring.lock().expect("retiring lock");
        if let Some(data) = rest.strip_prefix("/_next/data/") {
            let build = data.split('/').next()?;
            return retiring
                .iter()
                .rev()
                .find(|g| g.info.build_id == build && build != current.info.build_id)
                .cloned();
        }
        let file = rest.strip_prefix("/_next/static/")?;
        if file.is_empty() || file.split('/').any(|s| s == ".." || s == ".") {
            return None;
        }
        let has = |g: &Generation<A>| g.info.config.dist_dir.join("static").join(file).is_file();
        if has(&current) {
            return None;
        }
        retiring.iter().rev().find(|g| has(g)).cloned()
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

    /// Starts a generation on the build in `dir`, makes it current once all its workers
    /// are ready, and retires the previous one: it finishes its requests and serves its
    /// build's assets for the grace period, then stops. On error nothing changes.
    pub(crate) async fn reload(
        &self,
        dir: PathBuf,
        app: impl FnOnce(&Path, &AppInfo) -> Result<A, Error>,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let _one_at_a_time = shared.reloading.lock().await;
        if shared.closing.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        let id = shared.generations.fetch_add(1, Ordering::AcqRel);
        let generation = shared.blueprint.launch(&dir, id).await?.with_app(app)?;
        let generation = Arc::new(generation);
        if shared.closing.load(Ordering::Acquire) {
            stop(&generation).await;
            return Err(Error::ShutDown);
        }
        {
            let mut retiring = shared.retiring.lock().expect("retiring lock");
            let previous = shared.current.swap(generation.clone());
            tracing::info!(
                from = %previous.info.build_id,
                to = %generation.info.build_id,
                grace = ?shared.options.reload_grace,
                "reloaded Next.js; the previous workers finish their requests and serve their build's assets during the grace period"
            );
            retiring.push(previous.clone());
            shared.has_retiring.store(true, Ordering::Release);
            tokio::spawn(retire(Arc::downgrade(&self.shared), previous));
        }
        shared.room.notify_waiters();
        if shared.closing.load(Ordering::Acquire) {
            // Shut down just now: the shutdown may not have seen this generation.
            stop(&generation).await;
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Stops taking requests, waits (up to the drain timeout) for those in flight, stops
    /// every worker (SIGTERM, then SIGKILL after a grace period) and removes their
    /// sockets. Calls after the first wait for it to finish.
    pub(crate) async fn shutdown(&self) {
        let shared = &*self.shared;
        shared.closing.store(true, Ordering::Release);
        shared.room.notify_waiters();
        let mut stopped = shared.stopped.lock().await;
        if *stopped {
            return;
        }
        let mut generations = vec![shared.current.load_full()];
        generations.extend(
            shared
                .retiring
                .lock()
                .expect("retiring lock")
                .iter()
                .cloned(),
        );
        let in_flight = total_in_flight(&generations);
        if in_flight > 0 {
            tracing::info!(in_flight, limit = ?shared.options.drain_timeout, "draining requests in flight");
        }
        drain(&generations, shared.options.drain_timeout).await;
        futures::future::join_all(generations.iter().map(|g| stop(g))).await;
        *stopped = true;
    }

    /// A snapshot of the pool, for monitoring.
    pub(crate) fn status(&self) -> PoolStatus {
        let shared = &*self.shared;
        let current = shared.current.load_full();
        let mut generations = vec![current.clone()];
        generations.extend(
            shared
                .retiring
                .lock()
                .expect("retiring lock")
                .iter()
                .cloned(),
        );
        let mut workers = Vec::new();
        for generation in &generations {
            for slot in &generation.slots {
                workers.push(WorkerStatus {
                    generation: generation.id,
                    current: Arc::ptr_eq(generation, &current),
                    build_id: generation.info.build_id.clone(),
                    pid: slot.worker.pid(),
                    health: WorkerHealth::from(&slot.worker.state()),
                    in_flight: slot.in_flight.load(Ordering::Acquire),
                    handled: slot.handled.load(Ordering::Relaxed),
                    restarts: slot.worker.restarts(),
                    failed_starts: slot.worker.failed_starts(),
                });
            }
        }
        PoolStatus {
            queued: shared.queued.load(Ordering::Acquire),
            workers,
        }
    }
}

impl<A> Generation<A> {
    fn with_app<B>(
        self,
        app: impl FnOnce(&Path, &AppInfo) -> Result<B, Error>,
    ) -> Result<Generation<B>, Error> {
        Ok(Generation {
            app: app(&self.dir, &self.info)?,
            info: self.info,
            dir: self.dir,
            id: self.id,
            slots: self.slots,
            tags_log: self.tags_log,
            fence: self.fence,
        })
    }

    /// Takes the cache-event streams of this generation's workers (once).
    pub(crate) fn take_events(&self) -> Vec<SlotEvents> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| {
                let (received, applied) = s.events.lock().expect("events lock").take()?;
                Some(SlotEvents {
                    slot,
                    received,
                    applied,
                })
            })
            .collect()
    }

    /// The fence of this generation's responses (its journal, with a pool).
    pub(crate) fn fence(&self) -> &Arc<Fence> {
        &self.fence
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

impl Blueprint {
    /// Starts the workers of a generation side by side; all must become ready.
    async fn launch(&self, dir: &Path, id: u64) -> Result<Generation<()>, Error> {
        let count = self.options.worker_count();
        // Several workers share Next's cache through the build folder (README: the pool).
        let tags_log = (count > 1).then(|| self.private_dir.join(format!("tags-{id}.log")));
        let mut bridge_extra = match &tags_log {
            Some(log) => {
                std::fs::write(log, "")?;
                serde_json::json!({
                    "sharedCache": { "handler": self.cache_handler, "tagsLog": log }
                })
            }
            None => serde_json::json!({}),
        };
        // A worker may answer from what another wrote: responses wait for the events noted
        // in the journal (see `cache::Fence`).
        let journal = if count > 1 && self.options.native_pages() {
            let journal =
                Journal::create(&self.private_dir.join(format!("journal-{id}.log")), count)?;
            bridge_extra["journal"] = serde_json::json!(journal.path());
            Some(journal)
        } else {
            None
        };
        // Each worker reports its cache events on its own channel (see `Slot::events`).
        let channels: Vec<_> = (0..count).map(|_| Events::new()).collect();
        let launches = channels.iter().enumerate().map(|(index, (events, _))| {
            let mut bridge_extra = bridge_extra.clone();
            bridge_extra["slot"] = serde_json::json!(index);
            Worker::start(Launch {
                options: self.options.clone(),
                dir: dir.to_owned(),
                private_dir: self.private_dir.clone(),
                script: self.script.clone(),
                socket: self.private_dir.join(format!("worker-{id}.{index}.sock")),
                name: format!("worker-{id}.{index}").into(),
                bridge_extra,
                crash_report: self.crash_report.clone(),
                events: events.clone(),
            })
        });
        let mut started = Vec::with_capacity(count);
        let mut failure = None;
        for result in futures::future::join_all(launches).await {
            match result {
                Ok(worker) => started.push(worker),
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        if let Some(err) = failure {
            for (worker, _) in &started {
                worker.stop().await;
            }
            return Err(err);
        }
        let info = started[0].1.clone();
        let (applied, applied_rx): (Vec<_>, Vec<_>) = (0..count).map(|_| watch::channel(0)).unzip();
        let fence = Arc::new(Fence::new(applied_rx, journal));
        let slots = started
            .into_iter()
            .zip(channels)
            .zip(applied)
            .enumerate()
            .map(|(index, (((worker, _), (_, received)), applied))| {
                let slot = Arc::new(Slot {
                    client: WorkerClient::new(worker.socket(), index, fence.clone()),
                    events: Mutex::new(Some((received, applied))),
                    worker,
                    in_flight: AtomicUsize::new(0),
                    handled: AtomicU64::new(0),
                    unreachable_until: AtomicU64::new(0),
                    room: self.room.clone(),
                });
                tokio::spawn(watch_state(Arc::downgrade(&slot), self.room.clone()));
                slot
            })
            .collect();
        Ok(Generation {
            app: (),
            info,
            dir: dir.to_owned(),
            id,
            slots,
            tags_log,
            fence,
        })
    }
}

/// Wakes waiting requests whenever the worker changes state; a restarted worker is
/// reachable again.
async fn watch_state(slot: Weak<Slot>, room: Arc<Notify>) {
    let Some(mut state) = slot.upgrade().map(|slot| slot.worker.watch()) else {
        return;
    };
    while state.changed().await.is_ok() {
        let ready = matches!(*state.borrow_and_update(), WorkerState::Ready);
        if ready {
            match slot.upgrade() {
                Some(slot) => slot.unreachable_until.store(0, Ordering::Release),
                None => return,
            }
        }
        room.notify_waiters();
    }
}

/// The previous generation after a reload: serves its build's assets for the grace
/// period, finishes its requests (bounded), then stops.
async fn retire<A: Send + Sync + 'static>(shared: Weak<Shared<A>>, generation: Arc<Generation<A>>) {
    let (grace, drain_timeout) = match shared.upgrade() {
        Some(shared) => (shared.options.reload_grace, shared.options.drain_timeout),
        None => return,
    };
    tokio::time::sleep(grace).await;
    drain(std::slice::from_ref(&generation), drain_timeout).await;
    stop(&generation).await;
    tracing::info!(build = %generation.info.build_id, "previous Next.js workers stopped");
    if let Some(shared) = shared.upgrade() {
        let mut retiring = shared.retiring.lock().expect("retiring lock");
        retiring.retain(|g| !Arc::ptr_eq(g, &generation));
        shared
            .has_retiring
            .store(!retiring.is_empty(), Ordering::Release);
    }
}

fn total_in_flight<A>(generations: &[Arc<Generation<A>>]) -> usize {
    generations
        .iter()
        .flat_map(|g| &g.slots)
        .map(|slot| slot.in_flight.load(Ordering::Acquire))
        .sum()
}

/// Waits until no request is in flight on these generations, up to `limit`.
async fn drain<A>(generations: &[Arc<Generation<A>>], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let in_flight = total_in_flight(generations);
        if in_flight == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                in_flight,
                ?limit,
                "requests still in flight after the drain timeout; stopping the workers anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops every worker of a generation and removes its files.
async fn stop<A>(generation: &Generation<A>) {
    futures::future::join_all(generation.slots.iter().map(|slot| slot.worker.stop())).await;
    if let Some(log) = &generation.tags_log {
        let _ = std::fs::remove_file(log);
    }
    if let Some(journal) = generation.fence.journal() {
        let _ = std::fs::remove_file(journal.path());
    }
}

/// A snapshot of the worker pool: [`crate::Next::pool_status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Requests waiting for a worker.
    pub queued: usize,
    /// Every worker: the current generation's, then those of previous builds still
    /// draining after a reload.
    pub workers: Vec<WorkerStatus>,
}

/// One worker in a [`PoolStatus`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Which start or reload made it: 0 for [`crate::Next::prepare`], then one more per
    /// [`crate::Next::reload`].
    pub generation: u64,
    /// Whether it takes new requests (false while a previous build drains).
    pub current: bool,
    /// The build it serves.
    pub build_id: String,
    /// Its Node.js process, while one runs.
    pub pid: Option<u32>,
    /// Where it is in its life.
    pub health: WorkerHealth,
    /// Requests it is answering now.
    pub in_flight: usize,
    /// Requests given to it so far.
    pub handled: u64,
    /// How often it was replaced after exiting or failing its health checks.
    pub restarts: u32,
    /// Failed restarts since it last started: more than 0 is a crash loop.
    pub failed_starts: u32,
}

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerHealth {
    /// Its Node.js process starts.
    Starting,
    /// It takes requests.
    Ready,
    /// It missed its last health check: no new requests until it answers.
    Unhealthy,
    /// It is not running and will be restarted after a backoff.
    Down,
    /// It was stopped: shutdown, or the end of a reload's grace period.
    Stopped,
}

impl From<&WorkerState> for WorkerHealth {
    fn from(state: &WorkerState) -> Self {
        match state {
            WorkerState::Starting => WorkerHealth::Starting,
            WorkerState::Ready => WorkerHealth::Ready,
            WorkerState::Unhealthy(_) => WorkerHealth::Unhealthy,
            WorkerState::Down { .. } => WorkerHealth::Down,
            WorkerState::Stopped => WorkerHealth::Stopped,
        }
    }
}
