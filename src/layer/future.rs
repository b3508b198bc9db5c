//! The future of [`super::NextMiddleware`]: the inner service's response, or Next's.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use futures::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

use crate::{
    body::{Body, BoxError},
    telemetry::{self, Responder},
};

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
        Inner { #[pin] future: F, measure: Option<Measure> },
        Next { future: BoxFuture<'static, Response<Body>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F, measure: Measure) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                future,
                measure: Some(measure),
            },
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
            KindProj::Inner { future, measure } => {
                let result = ready!(future.poll(cx));
                if let (Some(measure), Ok(response)) = (measure.take(), &result)
                    && response.extensions().get::<telemetry::Measured>().is_none()
                {
                    measure.record(response.status());
                }
                Poll::Ready(result.map(|response| response.map(Body::new)))
            }
            KindProj::Next { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What the metrics need of a request the inner service answers.
pub(crate) struct Measure {
    pub started: Instant,
    pub method: http::Method,
    /// axum's matched route, when the layer sits inside a Router.
    pub route: Option<String>,
}

impl Measure {
    fn record(self, status: http::StatusCode) {
        telemetry::record_request(
            &self.method,
            status,
            self.route.as_deref(),
            Responder::Inner,
            self.started.elapsed(),
        );
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
