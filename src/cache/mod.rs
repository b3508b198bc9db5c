//! Next's cache, kept by the host for every worker: the store of entries and revalidated
//! tags ([`store`]) and the socket the workers' cache handlers call ([`host`]).
//!
//! And whether native answers are current: the cache events each worker reports (every
//! write to Next's response cache and every revalidated tag), applied in order to the
//! native page index, and the fence a worker's response waits at until every event it may
//! show has been applied (see [`fence`]).

mod events;
mod fence;
mod host;
mod store;

pub(crate) use events::{CacheChange, CacheEvent, CachedEntry, WorkerEvent};
pub(crate) use fence::{Fence, Marks};

use std::{path::Path, sync::Arc};

use bytes::Bytes;

use crate::{assets::Assets, runtime::SlotEvents};
use fence::Applied;
use store::{CacheStore, EntryKey};

/// The cache every worker of this host reads and writes through the bridge's handlers
/// (`host-cache.js`), as one `next start` process uses its memory.
pub(crate) struct Cache {
    local: CacheStore,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cache {
    /// A cache of at most `capacity_bytes` of entries, served to the workers on `socket`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Io`] when the socket cannot be bound.
    pub(crate) fn start(capacity_bytes: u64, socket: &Path) -> Result<Arc<Cache>, crate::Error> {
        let cache = Arc::new(Cache {
            local: CacheStore::new(capacity_bytes),
            server: std::sync::Mutex::default(),
        });
        let server = host::serve(Arc::downgrade(&cache), socket)?;
        *cache.server.lock().expect("server lock") = Some(server);
        Ok(cache)
    }

    /// Stops answering the workers (the cache itself lives while it is referenced).
    pub(crate) fn stop(&self) {
        if let Some(server) = self.server.lock().expect("server lock").take() {
            server.abort();
        }
    }

    async fn get(&self, key: &EntryKey) -> Option<Bytes> {
        self.local.get(key)
    }

    async fn put(&self, key: EntryKey, value: Bytes, _ttl: Option<u64>) -> Result<(), String> {
        self.local.put(key, value).map_err(|err| {
            tracing::warn!(
                size = err.size,
                limit = err.limit,
                "host cache: an entry larger than the cache allows was not stored"
            );
            format!(
                "entry of {} bytes, larger than the cache allows ({} bytes)",
                err.size, err.limit
            )
        })
    }

    fn max_entry_bytes(&self) -> usize {
        self.local.max_entry_bytes()
    }

    async fn record_tags(&self, namespace: &str, states: Vec<(String, serde_json::Value)>) -> u64 {
        self.local.record_tags(namespace, states).0
    }

    fn tags_since(&self, namespace: &str, since: u64) -> (u64, Vec<(String, serde_json::Value)>) {
        self.local.tags_since(namespace, since)
    }

    fn tags_seq(&self) -> u64 {
        self.local.tags_seq()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Applies each worker's cache events to the native responders `assets`, in order, and
/// publishes the last one applied per worker (the worker's responses wait on it at
/// `fence`). Runs until the workers' event channels close.
pub(crate) fn keep_current(
    events: Vec<SlotEvents>,
    assets: Option<Arc<Assets>>,
    fence: Arc<Fence>,
) {
    for events in events {
        tokio::spawn(apply(events, assets.clone(), fence.clone()));
    }
}

async fn apply(events: SlotEvents, assets: Option<Arc<Assets>>, fence: Arc<Fence>) {
    let SlotEvents {
        slot,
        mut received,
        applied,
    } = events;
    let mut progress = Applied::default();
    while let Some(event) = received.recv().await {
        let number = match &event {
            WorkerEvent::Cache(event) => Some(event.generation),
            WorkerEvent::Restarted => None,
        };
        if let Some(assets) = &assets {
            assets.apply(event).await;
        }
        let up_to = match number {
            Some(number) => progress.record(number),
            // The index was read again from disk, which holds whatever the last process
            // wrote, and the new process numbers its events above the last one's.
            None => {
                let noted = match fence.journal() {
                    Some(journal) => journal.noted(None).await.get(slot).copied().unwrap_or(0),
                    None => 0,
                };
                progress.restart(noted)
            }
        };
        applied.send_modify(|applied| *applied = (*applied).max(up_to));
    }
}
