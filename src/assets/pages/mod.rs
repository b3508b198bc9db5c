//! Prerendered pages: the responses Next.js serves from its response cache, and how they
//! change while the app runs.
//!
//! At prepare the index is read from the build (and from the runtime cache entries an
//! earlier run of the same build wrote, which Next.js prefers). While the app runs, the
//! worker reports every write to its response cache and every tag invalidation
//! ([`crate::cache::CacheChange`]): a written entry replaces the page, an invalidated
//! page is Node's until Next.js writes it again. An ISR page past its revalidate time is
//! Node's too: Next.js answers it stale and regenerates it in the background, and the new
//! entry makes it native again.
//!
//! The responses reproduce `next start`'s (Next.js 15 and 16): the app-page and pages
//! handlers (with Next 16's Cache Components rules and segment prefetches),
//! `sendRenderResult`, and the `compression` middleware. Each answer is given only once
//! Node answered the same request alike (see `compressed`).
//!
//! - [`load`]: what a page is made from, read from the build, from the runtime cache
//!   entries on disk, or from an entry a worker reports;
//! - [`index`]: the pages Rust answers for, and how cache events change them;
//! - [`answers`]: how a page's answers and their headers are made;
//! - [`response`]: a page's prepared answers, and serving a request from them.

mod answers;
mod index;
mod load;
mod response;

pub(crate) use index::PageIndex;
pub(crate) use load::Kind;
pub(crate) use response::{Context, Want};
