//! The bridge's protocol with the host, besides its ready line: the `x-tower-next-*`
//! headers. The host instructs the bridge with request headers (stripped from client
//! requests, so they cannot be spoofed), and the bridge reports cache marks in response
//! headers (taken out before the client sees the response).

use http::HeaderName;

/// The prefix of every bridge header. Never accepted from a client.
pub(crate) const BRIDGE_PREFIX: &str = "x-tower-next-";
/// `app.render` of this page.
pub(crate) const RENDER: HeaderName = HeaderName::from_static("x-tower-next-render");
/// The query of an `app.render`.
pub(crate) const QUERY: HeaderName = HeaderName::from_static("x-tower-next-query");
/// `app.render404`.
pub(crate) const NOT_FOUND: HeaderName = HeaderName::from_static("x-tower-next-not-found");
/// Resume a partially prerendered page: the request's body is the postponed state of
/// the shell the host has sent, and the worker answers only the rest of the page.
pub(crate) const RESUME: HeaderName = HeaderName::from_static("x-tower-next-resume");
/// A question to the bridge itself (e.g. `middleware-matchers`).
pub(crate) const CONTROL: HeaderName = HeaderName::from_static("x-tower-next-control");
/// On worker responses: the last cache event the worker had sent when it sent the headers.
pub(crate) const GENERATION: HeaderName = HeaderName::from_static("x-tower-next-generation");
/// On worker responses of a pool: the length of the pool's cache journal then.
pub(crate) const JOURNAL: HeaderName = HeaderName::from_static("x-tower-next-journal");

/// Host to worker, on every request: how many tag changes the host's cache has seen, so
/// that the worker's cache handlers catch up before a render reads the cache, and only
/// when something changed (`host-cache.js`).
pub(crate) const TAGS_SEQ: HeaderName = HeaderName::from_static("x-tower-next-tags-seq");

/// Host to worker, on every request: how many times a `'use cache'` entry changed in the
/// host's cache; a worker's copy of an entry is answered only while it has not moved.
pub(crate) const USE_CACHE_CHANGES: HeaderName =
    HeaderName::from_static("x-tower-next-use-cache-changes");
