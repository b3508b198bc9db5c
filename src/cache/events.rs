//! The cache events a worker reports on its status channel (see the bridge): every write
//! to Next's response cache and every revalidated tag, numbered so that responses can wait
//! for the events before them (see [`super::Fence`]).

use serde::Deserialize;

use super::store::TagStates;

/// A change to Next's response cache, reported by the worker. `generation` numbers the
/// events; every response of the worker says the generation it was sent at, and the host
/// applies the events up to it before passing the response on.
#[derive(Debug, Deserialize)]
pub(crate) struct CacheEvent {
    pub generation: u64,
    #[serde(flatten)]
    pub change: CacheChange,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum CacheChange {
    /// `IncrementalCache#set`: a page was (re)generated, or its entry removed.
    Set(Box<CachedEntry>),
    /// `revalidateTag` (and so `revalidatePath`): entries with these tags are stale.
    RevalidateTag {
        tags: Vec<String>,
        /// When it began (ms since the epoch): an entry written before is stale.
        #[serde(default)]
        at: u64,
        /// The tags' states as Next records them, for the host's cache (none from other
        /// hosts, whose changes reach the cache through the shared store).
        #[serde(default)]
        states: TagStates,
    },
}

/// A response-cache entry as the worker reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CachedEntry {
    pub pathname: String,
    /// When the write began (ms since the epoch): Next's entry is at least this old.
    pub at: u64,
    /// `APP_PAGE`, `PAGES`, `APP_ROUTE`, ...; `None` when the entry was removed.
    pub kind: Option<String>,
    /// Seconds, or `false` for never.
    pub revalidate: Option<serde_json::Value>,
    pub expire: Option<u64>,
    #[serde(default)]
    pub fallback: bool,
    pub html: Option<String>,
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub status: Option<u16>,
    #[serde(default)]
    pub postponed: bool,
    /// The postponed state itself (Next's `postponed`), to resume the render from.
    #[serde(default)]
    pub postponed_state: Option<String>,
    /// The RSC payload, base64.
    pub rsc: Option<String>,
    /// `/_next/data` JSON of a Pages Router page.
    pub page_data: Option<String>,
    /// Next 16: the segment prefetch payloads (base64), by segment path.
    #[serde(default)]
    pub segments: Option<std::collections::BTreeMap<String, String>>,
}

impl CachedEntry {
    /// The page at `pathname` was replaced at `at` (ms since the epoch) by a write this
    /// host did not see: Next answers it from then on.
    pub(crate) fn replaced(pathname: String, at: u64) -> CachedEntry {
        CachedEntry {
            pathname,
            at,
            kind: None,
            revalidate: None,
            expire: None,
            fallback: false,
            html: None,
            headers: None,
            status: None,
            postponed: false,
            postponed_state: None,
            rsc: None,
            page_data: None,
            segments: None,
        }
    }
}

/// What the worker reports while it runs, for whoever keeps the native responses current.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// A change to Next's response cache.
    Cache(Box<CacheEvent>),
    /// A new worker process took over (its in-memory cache starts empty).
    Restarted,
}
