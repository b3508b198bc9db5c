//! The Node.js side: the embedded bridge script, the supervised worker that runs it, and
//! the pool of workers that requests are shared among.
//!
//! The bridge is the custom server of the Next.js docs, listening on a Unix socket in a
//! private folder. It reports status lines on stdout: first ready (with what Rust needs to
//! know about the app, deserialised into [`AppInfo`]) or an error code that
//! [`crate::Error`] turns into advice; then, in production, every change to Next's
//! response cache ([`CacheEvent`]). With more than one worker, the bridge also installs
//! the embedded cache handler, which keeps Next's cache coherent across the workers.

mod pool;
mod worker;

use serde::Deserialize;

use crate::build::AppInfo;

pub(crate) use pool::{Generation, SlotEvents, WorkerPool};
pub use pool::{PoolStatus, WorkerHealth, WorkerStatus};
pub(crate) use worker::WorkerEvent;

/// The bridge script, written into the pool's private folder at start.
pub(crate) const BRIDGE_SCRIPT: &str = include_str!("bridge.js");

/// Next's file-system cache, shared by the workers of a pool; see the script's comments.
pub(crate) const CACHE_HANDLER_SCRIPT: &str = include_str!("cache-handler.js");

/// The prefix of the bridge's status line on stdout.
const STATUS_MARK: &str = "@@tower-next@@ ";

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
    Set(CachedEntry),
    /// `revalidateTag` (and so `revalidatePath`): entries with these tags are stale.
    RevalidateTag {
        tags: Vec<String>,
        /// When it began (ms since the epoch): an entry written before is stale.
        #[serde(default)]
        at: u64,
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
    /// The RSC payload, base64.
    pub rsc: Option<String>,
    /// `/_next/data` JSON of a Pages Router page.
    pub page_data: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Status {
    Ready(AppInfo),
    Error { code: String, message: String },
    Cache(CacheEvent),
}
