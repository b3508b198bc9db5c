//! [`Probe`]: health probes for orchestrators, as tower services (Kubernetes
//! `readinessProbe` and `livenessProbe`).
//!
//! ```no_run
//! use axum::Router;
//! use tower_next::{Next, NextOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let next = Next::prepare(NextOptions::new("./web")).await?;
//! let app: Router = Router::new()
//!     .route_service("/readyz", next.readiness())
//!     .route_service("/livez", next.liveness())
//!     .fallback_service(next.service());
//! # Ok(()) }
//! ```

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};

use crate::{
    Next,
    body::{Body, plain_response},
};

/// A probe service made by [`Next::readiness`] or [`Next::liveness`]: answers every
/// request with `200` and a one-word body, or `503` with the reason. Never fails, always
/// ready, cheap to clone.
#[derive(Clone, Debug)]
pub struct Probe {
    next: Next,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Readiness,
    Liveness,
}

impl Probe {
    pub(crate) fn readiness(next: Next) -> Probe {
        Probe {
            next,
            kind: Kind::Readiness,
        }
    }

    pub(crate) fn liveness(next: Next) -> Probe {
        Probe {
            next,
            kind: Kind::Liveness,
        }
    }

    fn answer(&self) -> Response<Body> {
        match self.kind {
            Kind::Liveness => plain_response(StatusCode::OK, "alive"),
            Kind::Readiness if self.next.is_ready() => plain_response(StatusCode::OK, "ready"),
            Kind::Readiness => plain_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no Next.js worker can take a request, or the app is stopping",
            ),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for Probe {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        ready(Ok(self.answer()))
    }
}
