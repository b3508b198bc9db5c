//! The Node.js side: the embedded bridge script, the supervised worker that runs it, and
//! the pool of workers that requests are shared among.
//!
//! The bridge is the custom server of the Next.js docs, listening on a Unix socket in a
//! private folder. It reports one status line on stdout: ready (with what Rust needs to
//! know about the app) or an error code that [`crate::Error`] turns into advice. With more
//! than one worker, the bridge also installs the embedded cache handler, which keeps
//! Next's cache coherent across the workers.

mod pool;
mod worker;

use std::path::PathBuf;

use serde::Deserialize;

pub(crate) use pool::{Generation, WorkerPool};
pub use pool::{PoolStatus, WorkerHealth, WorkerStatus};

/// The bridge script, written into the pool's private folder at start.
pub(crate) const BRIDGE_SCRIPT: &str = include_str!("bridge.js");

/// Next's file-system cache, shared by the workers of a pool; see the script's comments.
pub(crate) const CACHE_HANDLER_SCRIPT: &str = include_str!("cache-handler.js");

/// The prefix of the bridge's status line on stdout.
const STATUS_MARK: &str = "@@tower-next@@ ";

/// What the bridge reports once Next.js is prepared.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppInfo {
    pub next_version: String,
    pub build_id: String,
    pub config: ResolvedConfig,
    /// Dev only: the middleware (proxy) matchers, read from its source.
    #[serde(default)]
    pub middleware_matchers: Vec<String>,
}

/// The parts of the resolved next.config that the Rust side acts on.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResolvedConfig {
    pub base_path: String,
    pub use_file_system_public_routes: bool,
    pub dist_dir: PathBuf,
    pub page_extensions: Vec<String>,
    pub i18n: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Status {
    Ready(AppInfo),
    Error { code: String, message: String },
}
