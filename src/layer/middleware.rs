//! [`NextMiddleware`]: the service a [`super::NextLayer`] makes, which sends each request
//! to Next.js or to the service it wraps.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::{ResponseFuture, future::Measure};
use crate::{
    NextService,
    body::{Body, BoxError},
    routes::Owner,
};

/// The middleware made by [`super::NextLayer`]: Next.js for the requests it owns, `S` for
/// the rest. Readiness is the inner service's; Next.js is always ready.
#[derive(Clone, Debug)]
pub struct NextMiddleware<S> {
    next: NextService,
    inner: S,
}

impl<S> NextMiddleware<S> {
    pub(crate) fn new(next: NextService, inner: S) -> Self {
        NextMiddleware { next, inner }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NextMiddleware<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.next.owner(request.uri()) {
            Owner::Inner => {
                let measure = Measure {
                    started: std::time::Instant::now(),
                    method: request.method().clone(),
                    route: matched_route(&request),
                };
                ResponseFuture::inner(self.inner.call(request), measure)
            }
            Owner::Next(target) => {
                ResponseFuture::next(self.next.serve(request, target).into_inner())
            }
        }
    }
}

/// The route axum matched (`MatchedPath`): present when the layer wraps a Router's routes
/// (`Router::layer` wraps each route after matching).
fn matched_route<B>(request: &Request<B>) -> Option<String> {
    #[cfg(feature = "axum")]
    if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
        return Some(path.as_str().to_owned());
    }
    let _ = request;
    None
}
