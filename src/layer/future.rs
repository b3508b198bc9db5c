//! The future of [`super::NextMiddleware`]: the inner service's response, or Next's.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

use crate::body::{Body, BoxError};

pin_project! {
    /// The future of [`super::NextMiddleware`]: the inner service's response, or Next's.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Next { future: BoxFuture<'static, Response<Body>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn next(future: BoxFuture<'static, Response<Body>>) -> Self {
        ResponseFuture {
            kind: Kind::Next { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                Poll::Ready(ready!(future.poll(cx)).map(|response| response.map(Body::new)))
            }
            KindProj::Next { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
