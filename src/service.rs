//! [`NextService`]: the request handler, a tower `Service` that gives every request to
//! Next.js (the seed's `app.getRequestHandler()`), and its [`ResponseFuture`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_next::{Next, NextOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let next = Next::prepare(NextOptions::new("./web")).await?;
//! // Whatever the Router does not route goes to Next.js; unknown paths get its 404 page.
//! let app: Router = Router::new()
//!     .route("/api/health", get(|| async { "ok" }))
//!     .fallback_service(next.service());
//! # Ok(()) }
//! ```

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Request, Response, Uri};

use crate::{
    Next,
    body::{Body, BoxError},
    routes::{Owner, Routing, Target},
};

/// Next.js's request handler as a tower `Service`. Made by [`Next::service`].
///
/// Next owns every request it gets: unknown paths get Next's own 404 page. It never fails
/// (`Error = Infallible`) and is always ready: a worker problem is a `502`/`503` response.
/// Cloning is cheap.
#[derive(Clone, Debug)]
pub struct NextService {
    next: Next,
    routing: Arc<Routing>,
}

impl NextService {
    pub(crate) fn new(next: Next) -> Self {
        NextService {
            next,
            routing: Arc::default(),
        }
    }

    /// Renders Next page `page` for requests whose path matches `pattern`, with the
    /// request's query plus the pattern's parameters: the seed's custom route
    /// `app.render(req, res, '/b', query)` for `/a`. Patterns use axum's syntax:
    /// `.route("/a", "/b")`, `.route("/posts/{id}", "/post")`,
    /// `.route("/files/{*path}", "/file")`. A page that does not start with `/` is
    /// answered `500`, as by [`Next::render`].
    ///
    /// # Panics
    /// When `pattern` does not start with `/`.
    pub fn route(mut self, pattern: &str, page: &str) -> Self {
        Arc::make_mut(&mut self.routing).add_route(pattern, page);
        self
    }

    /// Serve filename routes (`app/` and `pages/` files) or not: next.config's
    /// `useFileSystemPublicRoutes`, set here. Default: next.config's value. When off, only
    /// explicit routes, `/_next/*`, `public/` files and next.config rules reach Next.js
    /// (as a layer's inner service gets the rest: client-side navigations to filename
    /// routes too, `/_next/data/…` and `RSC: 1`); as a plain service, everything else
    /// gets Next's 404 page.
    pub fn use_file_system_public_routes(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.routing).set_file_system_routes(on);
        self
    }

    /// Who answers a request for `uri` when this service wraps another (as a layer).
    pub(crate) fn owner(&self, uri: &Uri) -> Owner {
        self.next.routes().owner(&self.routing, uri)
    }

    /// Answers a request Next.js owns.
    pub(crate) fn serve<B>(&self, request: Request<B>, target: Target) -> ResponseFuture
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let next = self.next.clone();
        let request = request.map(Body::new);
        ResponseFuture {
            future: Box::pin(async move { next.serve(request, target).await }),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for NextService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let target = self.next.routes().target(&self.routing, request.uri());
        self.serve(request, target)
    }
}

/// The future of [`NextService`]: a response from Next.js, or a 502/503 explaining why not.
pub struct ResponseFuture {
    future: BoxFuture<'static, Response<Body>>,
}

impl ResponseFuture {
    /// The response, without the `Result` a tower `Service` must return.
    pub(crate) fn into_inner(self) -> BoxFuture<'static, Response<Body>> {
        self.future
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx).map(Ok)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
