//! The decision about a request: who answers it and, when Next.js does, how.

/// Who answers a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Next.js, as the target says.
    Next(Target),
    /// The wrapped (inner) service.
    Inner,
}

/// What happens to a request Next.js answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Next's request handler on the request as it is, as `next start` runs it: Rust
    /// answers natively when it can give the same response.
    Handle(Reach),
    /// Next's request handler on another path and query (an explicit route's
    /// `/_next/data` request, sent to its page's data route).
    Rewrite(String),
    /// The seed's `app.render(req, res, page, query)`; `query` is
    /// `application/x-www-form-urlencoded`.
    Render { page: String, query: String },
    /// The seed's `app.render404(req, res)`: Next's own 404 page.
    NotFound,
}

/// How a request reached Next's request handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A route of Next's claims it (route table, rule, `/_next/*`).
    Owned,
    /// A plain service got it and nothing claims it: Next answers its 404 page.
    Unclaimed,
}

/// What a worker does with a request: the entry points of the seed's custom server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Next's request handler: routing as `next start` does.
    Handle,
    /// `app.render(req, res, page, query)`.
    Render { page: String, query: String },
    /// `app.render404(req, res)`.
    NotFound,
    /// Next's request handler, resuming a partially prerendered page whose shell the host
    /// sent: only the rest of the page is answered.
    Resume,
}
