//! Files: `{basePath}/_next/static/*` (the build's hashed, immutable assets) and `public/`,
//! answered with the headers of the `send` package that `next start` uses.
//!
//! The index is made at prepare. `/_next/static` files are immutable, so their validators
//! are read once and, within a memory budget, their bytes too. `public/` files can change
//! while the app runs (`next start` serves the current content but only the names present
//! at start), so each request stats the file, as `send` does, and the bytes in memory are
//! used only while size and mtime are those they were read with. Files not held in memory
//! are streamed from disk by tower-http's `ServeFile`.
//!
//! - [`index`]: the files, indexed at prepare, and how a request path finds one;
//! - [`serve`]: the answer to a request for one of them.

mod index;
mod serve;

pub(super) use index::{FileIndex, FileMatch};
pub(super) use serve::{serve_public, serve_static};
