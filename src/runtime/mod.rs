//! The Node.js side: the embedded bridge script and its protocol (`protocol`), the
//! supervised worker that runs it (`worker`), the HTTP client to it over its Unix socket
//! (`client`), and the pool of workers that requests are shared among (`pool`).
//!
//! The bridge is the custom server of the Next.js docs, listening on a Unix socket in a
//! private folder. It reports status lines on stdout: first ready (with what Rust needs to
//! know about the app, deserialised into [`AppInfo`]) or an error code that
//! [`crate::Error`] turns into advice; then, in production, every change to Next's
//! response cache ([`crate::cache::CacheEvent`]). With more than one worker, the bridge
//! also installs
//! the embedded cache handler, which keeps Next's cache coherent across the workers.

mod client;
mod pool;
pub(crate) mod protocol;
mod worker;

use serde::Deserialize;

use crate::{build::AppInfo, cache::CacheEvent};

pub(crate) use pool::{Generation, SlotEvents, WorkerPool};
pub use pool::{PoolStatus, WorkerHealth, WorkerStatus};

/// The bridge script, written into the pool's private folder at start.
pub(crate) const BRIDGE_SCRIPT: &str = include_str!("bridge.js");

/// Next's cache handlers backed by the host's cache (`crate::cache`); see the script's
/// comments.
pub(crate) const HOST_CACHE_SCRIPT: &str = include_str!("host-cache.js");

/// The prefix of the bridge's status line on stdout.
const STATUS_MARK: &str = "@@tower-next@@ ";

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Status {
    Ready(Box<AppInfo>),
    Error { code: String, message: String },
    Cache(CacheEvent),
}
