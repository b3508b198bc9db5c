//! The HTTP client to one worker, over its Unix socket: a request is streamed to the
//! worker, and handed back whole when the worker could not be reached, so that it can go
//! to another one.

mod connector;
mod replay;

use std::{path::Path, sync::Arc, time::Duration};

use http::{Request, Response, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::protocol;
use crate::{
    body::{Body, plain_response},
    cache::{Fence, Marks},
};
use connector::UnixConnector;

/// The HTTP client to one worker.
pub(crate) struct WorkerClient {
    client: Client<UnixConnector, Body>,
    /// The worker's slot in its generation, and the generation's cache fence.
    slot: usize,
    fence: Arc<Fence>,
}

/// What became of a request sent to a worker.
pub(crate) enum Sent {
    /// The worker's response, or a `502` when the worker failed after the request reached
    /// it.
    Response(Response<Body>),
    /// The worker could not be reached (nothing listens on its socket) and not a byte of
    /// the request was sent: here it is back, whole, to be sent elsewhere.
    Unreachable(Request<Body>),
    /// The worker closed the connection without answering (it died): a `502`, and the
    /// worker should get no more requests until it is known to be back.
    Broken(Response<Body>),
}

impl WorkerClient {
    pub(crate) fn new(socket: &Path, slot: usize, fence: Arc<Fence>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the bridge's keep-alive, so a pooled connection is never
            // picked just as Node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(UnixConnector::new(socket));
        WorkerClient {
            client,
            slot,
            fence,
        }
    }

    /// Sends a request (made by `proxy::prepare`) to the worker, streaming both ways.
    ///
    /// The body is handed to hyper through a [`replay::Replayable`]: hyper polls a body
    /// only once it has a connection, so when connecting fails the body is still unread
    /// and the request can be returned as [`Sent::Unreachable`] without buffering it.
    pub(crate) async fn send(&self, request: Request<Body>) -> Sent {
        let (parts, body) = request.into_parts();
        let (replayable, unread) = replay::Replayable::new(body);
        let method = parts.method.clone();
        let uri = parts.uri.clone();
        let headers = parts.headers.clone();
        let request = Request::from_parts(parts, Body::new(replayable));
        match self.client.request(request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                let marks = Marks::take(&mut parts.headers);
                if marks != Marks::default() {
                    // No native answer after this one may be older than what it shows.
                    self.fence.wait(self.slot, marks).await;
                }
                Sent::Response(Response::from_parts(parts, Body::new(body)))
            }
            Err(err) if err.is_connect() => match unread.take() {
                Some(body) => {
                    tracing::debug!(error = %err, source = ?std::error::Error::source(&err), "Next.js worker unreachable");
                    let mut request = Request::new(body);
                    *request.method_mut() = method;
                    *request.uri_mut() = uri;
                    *request.headers_mut() = headers;
                    Sent::Unreachable(request)
                }
                None => Sent::Response(failed(&err, "Next.js worker unreachable")),
            },
            Err(err) => Sent::Broken(failed(&err, "Next.js worker closed the connection")),
        }
    }
}

impl WorkerClient {
    /// Asks the bridge itself (not Next) for something it knows, e.g. `middleware-matchers`.
    pub(crate) async fn control(&self, name: &'static str) -> Result<bytes::Bytes, String> {
        use http_body_util::BodyExt;
        let request = Request::builder()
            .uri("http://worker/")
            .header(protocol::CONTROL, name)
            .body(Body::empty())
            .map_err(|err| err.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| err.to_string())?;
        if !response.status().is_success() {
            return Err(format!("bridge answered {}", response.status()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?;
        Ok(body.to_bytes())
    }
}

fn failed(err: &hyper_util::client::legacy::Error, reason: &str) -> Response<Body> {
    tracing::error!(error = %err, source = ?std::error::Error::source(err), "{reason}");
    plain_response(StatusCode::BAD_GATEWAY, reason)
}
