//! The Node.js side: the embedded bridge script and the supervised worker that runs it.
//!
//! The bridge is the custom server of the Next.js docs, listening on a Unix socket in a
//! private folder. It reports one status line on stdout: ready (with what Rust needs to
//! know about the app) or an error code that [`crate::Error`] turns into advice.

mod worker;

use std::path::PathBuf;

use serde::Deserialize;

pub(crate) use worker::{Worker, WorkerState};

/// The bridge script, written into the worker's private folder at start.
pub(crate) const BRIDGE_SCRIPT: &str = include_str!("bridge.js");

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
