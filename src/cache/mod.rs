//! Next's cache, kept by the host for every worker: the store of entries and revalidated
//! tags ([`store`]), the socket the workers' cache handlers call ([`host`]), and the
//! store several hosts share ([`shared`]).
//!
//! And whether native answers are current: the cache events each worker reports (every
//! write to Next's response cache and every revalidated tag), applied in order to the
//! native page index, and the fence a worker's response waits at until every event it may
//! show has been applied (see [`fence`]).

mod events;
mod fence;
mod host;
mod shared;
mod store;

pub(crate) use events::{CacheChange, CacheEvent, CachedEntry, WorkerEvent};
pub(crate) use fence::{Fence, Marks};

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::{assets::Assets, runtime::SlotEvents, telemetry};
use fence::Applied;
use shared::SharedStore;
use store::{CacheStore, EntryKey, TagStates};

/// The cache every worker of this host reads and writes through the bridge's handlers
/// (`host-cache.js`), as one `next start` process uses its memory; with a shared store,
/// the cache of every host serving the build.
pub(crate) struct Cache {
    local: CacheStore,
    shared: Option<Arc<SharedStore>>,
    /// Entries to write through to the shared store, in order.
    write_through: Option<mpsc::Sender<Write>>,
    /// Builds seen so far (a resync reads their tags again).
    namespaces: Mutex<BTreeSet<String>>,
    remote: broadcast::Sender<RemoteChange>,
    /// The socket server, and the tasks that follow and feed the shared store.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Changes to `'use cache'` entries so far, and the latest of them: workers copy the
    /// entries changed since they last looked before they render (`host-cache.js`).
    use_cache_changes: AtomicU64,
    use_cache_log: Mutex<UseCacheLog>,
}

/// The latest changes to `'use cache'` entries, numbered.
#[derive(Default)]
struct UseCacheLog {
    changes: std::collections::VecDeque<(u64, EntryKey)>,
    /// Changes up to this one are no longer listed.
    forgotten: u64,
}

/// Changes listed for workers that catch up; one further behind copies every entry
/// again, when there are at most this many.
const USE_CACHE_LOG: usize = 4096;

/// The answer to a worker's `GET /use-cache?since=` (see `Cache::use_cache_changes_since`).
#[derive(serde::Serialize)]
struct UseCacheChanges {
    /// The count of changes the keys bring the worker to.
    seq: u64,
    /// Whether the worker drops its copies first (the keys are all there are, not changes).
    reset: bool,
    complete: bool,
    keys: Vec<String>,
}

/// An entry to write through to the shared store.
struct Write {
    key: EntryKey,
    value: Bytes,
    /// Seconds the store keeps it.
    ttl: Option<u64>,
    /// The page of a response entry.
    pathname: Option<String>,
}

/// A change to the cache that no worker of this host reported: the native answers follow
/// it as they follow the workers' events.
#[derive(Clone, Debug)]
pub(crate) enum RemoteChange {
    /// Tags revalidated on another host, as this host learned at `at` (ms since the epoch).
    Tags {
        namespace: String,
        tags: Vec<String>,
        at: u64,
    },
    /// Another host replaced the entry of the page at `pathname`.
    Page { namespace: String, pathname: String },
    /// The host forgot its entries: it could not prove it saw every change of the shared
    /// store. Answers start over from the build, and the tags the store has.
    Resync,
}

/// Entries waiting to be written through; past it, writes are dropped (the entry stays
/// in this host's cache).
const WRITE_THROUGH_QUEUE: usize = 1024;

/// The kind of Next 16's `'use cache'` entries (the bridge's name).
pub(super) const USE_CACHE: &str = "use-cache";

impl Cache {
    /// A cache of at most `capacity_bytes` of entries, served to the workers on `socket`,
    /// and shared through the store at `shared` (a `redis://` URL) when there is one.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Io`] when the socket cannot be bound,
    /// [`crate::Error::InvalidOptions`] when `shared` is not a Redis URL.
    pub(crate) fn start(
        capacity_bytes: u64,
        socket: &Path,
        shared: Option<&str>,
    ) -> Result<Arc<Cache>, crate::Error> {
        let shared = shared
            .map(SharedStore::new)
            .transpose()
            .map_err(|detail| crate::Error::InvalidOptions { detail })?
            .map(Arc::new);
        let (write_through, writes) = match shared {
            Some(_) => {
                let (sender, receiver) = mpsc::channel(WRITE_THROUGH_QUEUE);
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        let cache = Arc::new(Cache {
            local: CacheStore::new(capacity_bytes),
            shared: shared.clone(),
            write_through,
            namespaces: Mutex::default(),
            remote: broadcast::channel(1024).0,
            tasks: Mutex::default(),
            use_cache_changes: AtomicU64::new(0),
            use_cache_log: Mutex::default(),
        });
        let mut tasks = vec![host::serve(Arc::downgrade(&cache), socket)?];
        if let (Some(shared), Some(mut writes)) = (shared, writes) {
            tasks.push(tokio::spawn(shared::follow(
                Arc::downgrade(&cache),
                shared.clone(),
            )));
            tasks.push(tokio::spawn(async move {
                while let Some(write) = writes.recv().await {
                    shared.put(write).await;
                }
            }));
        }
        *cache.tasks.lock().expect("tasks lock") = tasks;
        Ok(cache)
    }

    /// Makes ready for build `build_id`: with a shared store, reads the tags revalidated
    /// there (waiting at most a second), so that neither workers nor native answers serve
    /// what another host has invalidated.
    pub(crate) async fn open_build(&self, build_id: &str) {
        self.seen(build_id);
        let Some(shared) = &self.shared else { return };
        // Other hosts' 'use cache' entries are in the store and in no change this host
        // logged: workers start by listing every key there is.
        self.use_cache_changed(None);
        match tokio::time::timeout(Duration::from_secs(1), shared.read_tags(build_id)).await {
            Ok(Ok(states)) => {
                self.local.record_tags(build_id, states);
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "shared cache: revalidated tags not read at start; starting on this host's cache")
            }
            Err(_) => tracing::warn!(
                "shared cache: reading the revalidated tags timed out; starting on this host's cache"
            ),
        }
    }

    /// Stops answering the workers and closes the shared store's connections (the cache
    /// itself lives while it is referenced).
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }

    fn seen(&self, namespace: &str) {
        let mut namespaces = self.namespaces.lock().expect("namespaces lock");
        if !namespaces.contains(namespace) {
            namespaces.insert(namespace.to_owned());
        }
    }

    fn namespaces(&self) -> Vec<String> {
        self.namespaces
            .lock()
            .expect("namespaces lock")
            .iter()
            .cloned()
            .collect()
    }

    async fn get(&self, key: &EntryKey) -> Option<Bytes> {
        self.seen(&key.namespace);
        if let Some(entry) = self.local.get(key) {
            telemetry::record_cache_lookup(true, "local");
            return Some(entry);
        }
        telemetry::record_cache_lookup(false, "local");
        let shared = self.shared.as_ref()?;
        let entry = shared.get(key).await;
        telemetry::record_cache_lookup(entry.is_some(), "shared");
        let entry = entry?;
        let _ = self.local.put(key.clone(), entry.clone());
        Some(entry)
    }

    async fn put(
        &self,
        key: EntryKey,
        value: Bytes,
        ttl: Option<u64>,
        pathname: Option<String>,
    ) -> Result<(), String> {
        self.seen(&key.namespace);
        if let Err(err) = self.local.put(key.clone(), value.clone()) {
            tracing::warn!(
                size = err.size,
                limit = err.limit,
                "host cache: an entry larger than the cache allows was not stored"
            );
            return Err(format!(
                "entry of {} bytes, larger than the cache allows ({} bytes)",
                err.size, err.limit
            ));
        }
        if key.kind == USE_CACHE {
            self.use_cache_changed(Some(key.clone()));
        }
        if let Some(writes) = &self.write_through
            && writes
                .try_send(Write {
                    key,
                    value,
                    ttl,
                    pathname,
                })
                .is_err()
        {
            tracing::warn!(
                "shared cache: too many entries waiting to be written through; one stays on this host"
            );
        }
        Ok(())
    }

    fn max_entry_bytes(&self) -> usize {
        self.local.max_entry_bytes()
    }

    /// Records tags a worker revalidated; with a shared store, they are there (or queued
    /// for a reconnect) when this returns.
    async fn record_tags(&self, namespace: &str, states: TagStates) -> u64 {
        self.seen(namespace);
        let (seq, _) = self.local.record_tags(namespace, states.clone());
        if let Some(shared) = &self.shared {
            shared.publish_tags(namespace, states).await;
        }
        seq
    }

    fn tags_since(&self, namespace: &str, since: u64) -> (u64, TagStates) {
        self.local.tags_since(namespace, since)
    }

    /// Counts a change to the `'use cache'` entry `key` (`None`: to every entry).
    fn use_cache_changed(&self, key: Option<EntryKey>) {
        let mut log = self.use_cache_log.lock().expect("log lock");
        let seq = self.use_cache_changes.fetch_add(1, Ordering::AcqRel) + 1;
        match key {
            Some(key) => log.changes.push_back((seq, key)),
            None => {
                log.changes.clear();
                log.forgotten = seq;
            }
        }
        while log.changes.len() > USE_CACHE_LOG {
            if let Some((seq, _)) = log.changes.pop_front() {
                log.forgotten = seq;
            }
        }
    }

    /// What a worker copies to be in step with this host's `'use cache'` entries of
    /// `namespace`, having seen changes up to `since`: the keys changed since then, or,
    /// when those are no longer listed (and at a worker's start with a shared store), every
    /// key there is (`reset`). `complete` says whether the keys are all there are: a key
    /// not listed then has no entry; otherwise (the shared store did not answer, or holds
    /// too many keys to copy) the worker asks the host for keys it has no copy of.
    async fn use_cache_changes_since(&self, namespace: &str, since: u64) -> UseCacheChanges {
        let (seq, mut keys) = {
            let log = self.use_cache_log.lock().expect("log lock");
            let seq = self.use_cache_changes.load(Ordering::Acquire);
            let listed = since.max(log.forgotten);
            let keys: BTreeSet<String> = log
                .changes
                .iter()
                .filter(|(changed, key)| *changed > listed && key.namespace == namespace)
                .map(|(_, key)| key.key.clone())
                .collect();
            if since >= log.forgotten {
                return UseCacheChanges {
                    seq,
                    reset: false,
                    complete: true,
                    keys: keys.into_iter().collect(),
                };
            }
            (seq, keys)
        };
        keys.extend(self.local.keys_of(namespace, USE_CACHE));
        let mut complete = true;
        if let Some(shared) = &self.shared {
            match shared.use_cache_keys(namespace).await {
                Some(stored) => keys.extend(stored),
                None => complete = false,
            }
        }
        if keys.len() > USE_CACHE_LOG {
            keys.clear();
            complete = false;
        }
        UseCacheChanges {
            seq,
            reset: true,
            complete,
            keys: keys.into_iter().collect(),
        }
    }

    /// How many times a `'use cache'` entry changed (see `use_cache_changes`).
    pub(crate) fn use_cache_changes(&self) -> u64 {
        self.use_cache_changes.load(Ordering::Acquire)
    }

    /// How many tag changes the cache has seen (workers catch up when they are behind).
    pub(crate) fn tags_seq(&self) -> u64 {
        self.local.tags_seq()
    }

    /// Tags another host revalidated: the workers catch up at their next cache read.
    fn apply_remote_tags(&self, namespace: &str, states: TagStates) {
        let (_, tags) = self.local.record_tags(namespace, states);
        if !tags.is_empty() {
            let _ = self.remote.send(RemoteChange::Tags {
                namespace: namespace.to_owned(),
                tags,
                at: now_ms(),
            });
        }
    }

    /// An entry another host replaced: read again from the shared store when asked.
    fn forget(&self, key: &EntryKey, pathname: Option<String>) {
        if key.kind == USE_CACHE {
            self.use_cache_changed(Some(key.clone()));
        }
        self.local.remove(key);
        if let Some(pathname) = pathname {
            let _ = self.remote.send(RemoteChange::Page {
                namespace: key.namespace.clone(),
                pathname,
            });
        }
    }

    fn forget_all(&self) {
        self.use_cache_changed(None);
        self.local.clear();
        let _ = self.remote.send(RemoteChange::Resync);
    }
}

/// Whether `url` names a shared store this crate can use.
///
/// # Errors
///
/// A message saying why not.
pub(crate) fn check_store_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|err| format!("shared_cache({url:?}): not a Redis URL: {err}"))
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Applies each worker's cache events to the native responders `assets`, in order, and
/// publishes the last one applied per worker (the worker's responses wait on it at
/// `fence`). Runs until the workers' event channels close.
/// With the host's `cache` (and the build it serves), tags a worker revalidates are
/// recorded there before its responses pass the fence, so that every worker, and every
/// host, has them before the revalidating request is answered.
pub(crate) fn keep_current(
    events: Vec<SlotEvents>,
    assets: Option<Arc<Assets>>,
    fence: Arc<Fence>,
    cache: Option<(Arc<Cache>, String)>,
) {
    for events in events {
        tokio::spawn(apply(events, assets.clone(), fence.clone(), cache.clone()));
    }
}

/// Applies the changes no worker of this host reported (another host's, or a resync) to
/// the native answers of build `build_id`, while they live.
pub(crate) async fn follow_remote_changes(
    cache: &Arc<Cache>,
    build_id: &str,
    assets: &Arc<Assets>,
) {
    let mut changes = cache.remote.subscribe();
    // What is known before the changes to come: tags revalidated before this build's
    // answers started (in the shared store, or before a reload).
    let (_, known) = cache.tags_since(build_id, 0);
    if !known.is_empty() {
        let change = CacheChange::RevalidateTag {
            tags: known.into_iter().map(|(tag, _)| tag).collect(),
            at: now_ms(),
            states: Vec::new(),
        };
        let event = CacheEvent {
            generation: 0,
            change,
        };
        assets.apply(WorkerEvent::Cache(Box::new(event))).await;
    }
    let assets = Arc::downgrade(assets);
    let cache = Arc::downgrade(cache);
    let build_id = build_id.to_owned();
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                // Changes were missed: start over, as after a resync.
                Err(broadcast::error::RecvError::Lagged(_)) => RemoteChange::Resync,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(assets) = assets.upgrade() else {
                return;
            };
            let change = match change {
                RemoteChange::Tags {
                    namespace,
                    tags,
                    at,
                } if namespace == build_id => CacheChange::RevalidateTag {
                    tags,
                    at,
                    states: Vec::new(),
                },
                RemoteChange::Page {
                    namespace,
                    pathname,
                } if namespace == build_id => {
                    CacheChange::Set(Box::new(CachedEntry::replaced(pathname, now_ms())))
                }
                RemoteChange::Resync => {
                    let Some(cache) = cache.upgrade() else { return };
                    let (_, tags) = cache.tags_since(&build_id, 0);
                    assets.apply(WorkerEvent::Restarted).await;
                    CacheChange::RevalidateTag {
                        tags: tags.into_iter().map(|(tag, _)| tag).collect(),
                        at: now_ms(),
                        states: Vec::new(),
                    }
                }
                RemoteChange::Tags { .. } | RemoteChange::Page { .. } => continue,
            };
            let event = CacheEvent {
                generation: 0,
                change,
            };
            assets.apply(WorkerEvent::Cache(Box::new(event))).await;
        }
    });
}

async fn apply(
    events: SlotEvents,
    assets: Option<Arc<Assets>>,
    fence: Arc<Fence>,
    cache: Option<(Arc<Cache>, String)>,
) {
    let SlotEvents {
        slot,
        mut received,
        applied,
    } = events;
    let mut progress = Applied::default();
    while let Some(mut event) = received.recv().await {
        let number = match &event {
            WorkerEvent::Cache(event) => Some(event.generation),
            WorkerEvent::Restarted => None,
        };
        if let (Some((cache, build_id)), WorkerEvent::Cache(event)) = (&cache, &mut event)
            && let CacheChange::RevalidateTag { states, .. } = &mut event.change
            && !states.is_empty()
        {
            cache.record_tags(build_id, std::mem::take(states)).await;
        }
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
