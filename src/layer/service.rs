use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
use crate::{
    Next,
    assets::Reach,
    body::{Body, BoxError},
    proxy::Dispatch,
    routes::{Owner, Routing},
    service::rewrite_target,
};

/// The service made by [`super::NextLayer`]: Next.js for the requests it owns, `S` for the
/// rest. Readiness is the inner service's; Next.js is always ready.
#[derive(Clone, Debug)]
pub struct NextOrInner<S> {
    next: Next,
    routing: Arc<Routing>,
    inner: S,
}

impl<S> NextOrInner<S> {
    pub(crate) fn new(next: Next, routing: Arc<Routing>, inner: S) -> Self {
        NextOrInner {
            next,
            routing,
            inner,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NextOrInner<S>
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
        let owner = self.next.routes().owner(&self.routing, request.uri());
        match owner {
            Owner::Inner { .. } => ResponseFuture::inner(self.inner.call(request)),
            Owner::Next {
                dispatch: Dispatch::Handle,
                rewrite: None,
            } => {
                let next = self.next.clone();
                let request = request.map(Body::new);
                ResponseFuture::next(Box::pin(
                    async move { next.handle(request, Reach::Owned).await },
                ))
            }
            Owner::Next { dispatch, rewrite } => {
                let request = rewrite_target(request.map(Body::new), rewrite);
                let next = self.next.clone();
                ResponseFuture::next(Box::pin(
                    async move { next.dispatch(request, dispatch).await },
                ))
            }
        }
    }
}
