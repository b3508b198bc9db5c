//! Image requests that may make Node optimize: one per cache key at a time across the
//! pool (the others wait for its answer, then find the entry it wrote), and at most a
//! set number at once, so that a burst of distinct sizes queues here instead of
//! decoding images side by side in every worker.
//!
//! Next merges the misses of one key only within a process (`ResponseCache`'s batcher),
//! and writes the entry before it answers: so once the first request of a key has its
//! answer's head, the entry is on disk for every worker.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// How long a request may wait for its turn. A turn is held only while Node optimizes
/// one image, so a crowd on a cold cache is served in order rather than turned away:
/// browsers wait for images far longer than for pages.
const TURN_WAIT: Duration = Duration::from_secs(300);

/// The optimizations of one app, across its workers.
pub(crate) struct Optimizations {
    permits: Arc<Semaphore>,
    /// Keys with a request at Node; the sender is dropped when it has its answer.
    flights: Mutex<HashMap<String, watch::Sender<()>>>,
    /// Requests waiting for a turn, and how many may.
    waiting: AtomicUsize,
    max_waiting: usize,
    /// How long a request waits behind another of its key: its turn, then its answer.
    flight_wait: Duration,
}

/// An image request without a fresh cache entry: `key` when Rust knows Next's cache key.
pub(crate) struct ImageMiss {
    optimizations: Arc<Optimizations>,
    key: Option<String>,
}

/// The place of a request in line for its key.
pub(crate) enum Flight {
    /// This request goes to Node; the others wait until the guard is dropped.
    Lead(FlightGuard),
    /// Another request of the key is at Node: wait for it, then look again.
    Wait(Waiting),
}

/// Held by the request of a key at Node; dropping it wakes the waiters.
pub(crate) struct FlightGuard {
    optimizations: Arc<Optimizations>,
    key: Option<String>,
}

/// A request behind another of its key.
pub(crate) struct Waiting {
    answered: watch::Receiver<()>,
    wait: Duration,
}

/// Counts a request among those waiting for a turn while it lives.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why an image request is not sent to Node.
#[derive(Debug)]
pub(crate) struct Busy;

impl Optimizations {
    /// At most `at_once` optimizations at once, and `max_waiting` requests waiting for a
    /// turn (each at most [`TURN_WAIT`]); a request behind another of its key waits for
    /// that one's turn and its answer (at most `request_timeout`).
    pub(crate) fn new(
        at_once: usize,
        max_waiting: usize,
        request_timeout: Duration,
    ) -> Optimizations {
        Optimizations {
            permits: Arc::new(Semaphore::new(at_once.max(1))),
            flights: Mutex::default(),
            waiting: AtomicUsize::new(0),
            max_waiting,
            flight_wait: TURN_WAIT + request_timeout,
        }
    }

    pub(super) fn miss(self: &Arc<Self>, key: Option<String>) -> ImageMiss {
        ImageMiss {
            optimizations: self.clone(),
            key,
        }
    }
}

impl ImageMiss {
    /// Goes to Node without a place in its key's line (within the bound all the same).
    pub(crate) fn alone(self) -> FlightGuard {
        FlightGuard {
            optimizations: self.optimizations,
            key: None,
        }
    }

    /// Leads its key's flight, or waits behind the request that does.
    pub(crate) fn join(self) -> Flight {
        let ImageMiss { optimizations, key } = self;
        let Some(key) = key else {
            return Flight::Lead(FlightGuard {
                optimizations,
                key: None,
            });
        };
        let mut flights = optimizations.flights.lock().expect("flights lock");
        if let Some(sender) = flights.get(&key) {
            return Flight::Wait(Waiting {
                answered: sender.subscribe(),
                wait: optimizations.flight_wait,
            });
        }
        flights.insert(key.clone(), watch::Sender::new(()));
        drop(flights);
        Flight::Lead(FlightGuard {
            optimizations,
            key: Some(key),
        })
    }
}

impl Waiting {
    /// Until the leading request has its answer's head (or gave up), at most the wait
    /// bound.
    pub(crate) async fn wait(mut self) {
        let _ = tokio::time::timeout(self.wait, self.answered.changed()).await;
    }
}

impl FlightGuard {
    /// A turn among the optimizations at once: at once when one is free, else in line.
    ///
    /// # Errors
    /// [`Busy`] when the line is full, or no turn came within [`TURN_WAIT`].
    pub(crate) async fn permit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        let optimizations = &self.optimizations;
        if let Ok(permit) = optimizations.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if optimizations.waiting.fetch_add(1, Ordering::AcqRel) >= optimizations.max_waiting {
            optimizations.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _queued = Queued(&optimizations.waiting);
        let permits = optimizations.permits.clone();
        match tokio::time::timeout(TURN_WAIT, permits.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        // Dropping the sender wakes the waiters.
        let sender = self
            .optimizations
            .flights
            .lock()
            .expect("flights lock")
            .remove(&key);
        drop(sender);
    }
}
