//! What the pool tells about itself: [`PoolStatus`], for monitoring.

use std::sync::{Arc, atomic::Ordering};

use super::WorkerPool;
use crate::runtime::worker::WorkerState;

impl<A: Send + Sync + 'static> WorkerPool<A> {
    /// A snapshot of the pool, for monitoring.
    pub(crate) fn status(&self) -> PoolStatus {
        let shared = &*self.shared;
        let generations = shared.generations();
        let current = &generations[0];
        let mut workers = Vec::new();
        for generation in &generations {
            for slot in &generation.slots {
                workers.push(WorkerStatus {
                    generation: generation.id,
                    current: Arc::ptr_eq(generation, current),
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
