//! Generations: the workers running one build. Launching them, swapping a new one in on
//! `reload()`, retiring the previous one after its grace period, draining and stopping.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, mpsc, watch};

use super::{Blueprint, Generation, Shared, Slot, SlotEvents, WorkerPool};
use crate::{
    Error,
    build::AppInfo,
    cache::{Fence, WorkerEvent},
    runtime::{
        client::WorkerClient,
        worker::{Events, Launch, Worker, WorkerState},
    },
};

impl<A: Send + Sync + 'static> WorkerPool<A> {
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
            // Memory stays bounded under quick successive reloads: past the limit, the
            // oldest previous builds stop now (their clients fall back to the new build).
            let limit = shared.options.previous_builds.max(1);
            while retiring.len() > limit {
                let oldest = retiring.remove(0);
                tracing::info!(build = %oldest.info.build_id, "more previous builds than NextOptions::previous_builds allows; stopping the oldest now");
                tokio::spawn(async move { stop(&oldest).await });
            }
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
        let generations = shared.generations();
        let in_flight = total_in_flight(&generations);
        if in_flight > 0 {
            tracing::info!(in_flight, limit = ?shared.options.drain_timeout, "draining requests in flight");
        }
        drain(&generations, shared.options.drain_timeout).await;
        futures::future::join_all(generations.iter().map(|g| stop(g))).await;
        *stopped = true;
    }
}

impl<A> Generation<A> {
    pub(super) fn with_app<B>(
        self,
        app: impl FnOnce(&Path, &AppInfo) -> Result<B, Error>,
    ) -> Result<Generation<B>, Error> {
        Ok(Generation {
            app: app(&self.dir, &self.info)?,
            info: self.info,
            dir: self.dir,
            id: self.id,
            slots: self.slots,
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

impl Blueprint {
    /// Starts the workers of a generation side by side; all must become ready.
    pub(super) async fn launch(&self, dir: &Path, id: u64) -> Result<Generation<()>, Error> {
        let count = self.options.worker_count();
        // A worker may answer from what another wrote: responses wait for the events noted
        // in the journal (see `cache::Fence`).
        let journal = (count > 1 && self.options.native_pages())
            .then(|| self.private_dir.join(format!("journal-{id}.log")));
        let (applied, applied_rx): (Vec<_>, Vec<_>) = (0..count).map(|_| watch::channel(0)).unzip();
        let journal_path = journal.clone().unwrap_or_default();
        let fence = Arc::new(Fence::create(applied_rx, journal).map_err(Error::io(journal_path))?);
        let mut bridge_extra = serde_json::json!({});
        // Every worker answers from the host's cache (README: the cache).
        if let Some((_, handler)) = &self.cache {
            bridge_extra["hostCache"] = handler.clone();
        }
        if let Some(journal) = fence.journal() {
            bridge_extra["journal"] = serde_json::json!(journal.path());
        }
        // Each worker reports its cache events on its own channel (see `Slot::events`).
        let channels: Vec<_> = (0..count).map(|_| Events::new()).collect();
        let started = self
            .start_workers(dir, id, &bridge_extra, &channels)
            .await?;
        let info = started[0].1.clone();
        let slots = started
            .into_iter()
            .zip(channels)
            .zip(applied)
            .enumerate()
            .map(|(index, (((worker, _), (_, received)), applied))| {
                self.slot(worker, index, &fence, received, applied)
            })
            .collect();
        Ok(Generation {
            app: (),
            info,
            dir: dir.to_owned(),
            id,
            slots,
            fence,
        })
    }

    /// Starts one worker per channel, side by side; if one fails, stops the others.
    async fn start_workers(
        &self,
        dir: &Path,
        id: u64,
        bridge_extra: &serde_json::Value,
        channels: &[(Events, mpsc::UnboundedReceiver<WorkerEvent>)],
    ) -> Result<Vec<(Worker, AppInfo)>, Error> {
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
        let mut started = Vec::with_capacity(channels.len());
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
        Ok(started)
    }

    /// A started worker's slot, watched for state changes.
    fn slot(
        &self,
        worker: Worker,
        index: usize,
        fence: &Arc<Fence>,
        received: mpsc::UnboundedReceiver<WorkerEvent>,
        applied: watch::Sender<u64>,
    ) -> Arc<Slot> {
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
    generation.fence.remove_files();
}
