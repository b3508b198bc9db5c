//! [`NextService`]: the request handler, a tower `Service` that gives every request to
//! Next.js (the seed's `app.getRequestHandler()`).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Request, Response};

use crate::{
    Next,
    assets::Reach,
    body::{Body, BoxError},
    proxy::Dispatch,
    routes::{Owner, Routing},
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
    pub(crate) fn new(next: Next, routing: Routing) -> Self {
        NextService {
            next,
            routing: Arc::new(routing),
        }
    }

    /// Renders Next page `page` for requests whose path matches `pattern`, with the
    /// request's query plus the pattern's parameters: `.route("/a", "/b")`,
    /// `.route("/posts/{id}", "/post")`, `.route("/files/{*path}", "/file")`.
    ///
    /// # Panics
    /// When `pattern` or `page` does not start with `/`.
    pub fn route(mut self, pattern: &str, page: &str) -> Self {
        Arc::make_mut(&mut self.routing).add_route(pattern, page);
        self
    }

    /// Serve filename routes (`app/` and `pages/` files) or not: next.config's
    /// `useFileSystemPublicRoutes`, set here. Default: next.config's value. When off, only
    /// explicit routes, `/_next/*`, `public/` files and next.config rules reach Next.js;
    /// everything else gets Next's 404 page.
    pub fn use_file_system_public_routes(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.routing).set_file_system_routes(on);
        self
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
        let routes = self.next.routes();
        let (dispatch, rewrite, reach) = match routes.owner(&self.routing, request.uri()) {
            Owner::Next { dispatch, rewrite } => (dispatch, rewrite, Reach::Owned),
            Owner::Inner { .. } if routes.file_system_routes(&self.routing) => {
                (Dispatch::Handle, None, Reach::Unclaimed)
            }
            Owner::Inner { .. } => (Dispatch::NotFound, None, Reach::Owned),
        };
        let next = self.next.clone();
        let future: BoxFuture<'static, Response<Body>> =
            if dispatch == Dispatch::Handle && rewrite.is_none() {
                let request = request.map(Body::new);
                Box::pin(async move { next.handle(request, reach).await })
            } else {
                let request = rewrite_target(request.map(Body::new), rewrite);
                Box::pin(async move { next.dispatch(request, dispatch).await })
            };
        ResponseFuture { future }
    }
}

/// Replaces the path and query of a request, keeping scheme and authority.
pub(crate) fn rewrite_target(mut request: Request<Body>, rewrite: Option<String>) -> Request<Body> {
    if let Some(path_and_query) = rewrite {
        let mut parts = request.uri().clone().into_parts();
        match path_and_query.parse() {
            Ok(target) => {
                parts.path_and_query = Some(target);
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
            Err(err) => tracing::error!(%path_and_query, error = %err, "invalid rewrite target"),
        }
    }
    request
}

/// The future of [`NextService`]: a response from Next.js, or a 502/503 explaining why not.
pub struct ResponseFuture {
    future: BoxFuture<'static, Response<Body>>,
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
