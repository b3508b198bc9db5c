//! [`NextMiddleware`]: the service a [`super::NextLayer`] makes, which sends each request
//! to Next.js or to the service it wraps.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
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
            Owner::Inner => ResponseFuture::inner(self.inner.call(request)),
            Owner::Next(target) => {
                ResponseFuture::next(self.next.serve(request, target).into_inner())
            }
        }
    }
}
