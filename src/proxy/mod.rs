//! Forwarding a request to a worker over its Unix socket, streaming both ways.

mod connector;
pub(crate) mod headers;

use std::{net::SocketAddr, path::Path, time::Duration};

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::sync::watch;

use crate::body::{Body, plain_response};
use connector::UnixConnector;

/// The client address of a request, for `X-Forwarded-For`.
///
/// axum's `ConnectInfo<SocketAddr>` is read as well (feature `axum`, on by default); a hand
/// written hyper server inserts this into the request's extensions itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What the worker should do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Next's request handler: routing as `next start` does.
    Handle,
    /// `app.render(req, res, page, query)`; the query is `application/x-www-form-urlencoded`.
    Render { page: String, query: String },
    /// `app.render404(req, res)`: Next's own 404 page.
    NotFound,
}

/// How long a worker's response may wait for the cache events sent before it.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// The HTTP client to one worker.
pub(crate) struct Proxy {
    client: Client<UnixConnector, Body>,
    trust_forwarded: bool,
    /// The generation of the last cache event applied to the native responders.
    applied: watch::Receiver<u64>,
}

impl Proxy {
    pub(crate) fn new(socket: &Path, trust_forwarded: bool, applied: watch::Receiver<u64>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the bridge's keep-alive, so a pooled connection is never
            // picked just as Node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(UnixConnector::new(socket));
        Proxy {
            client,
            trust_forwarded,
            applied,
        }
    }

    /// Sends the request to the worker. Failures become `502 Bad Gateway` with a reason.
    pub(crate) async fn forward(
        &self,
        request: Request<Body>,
        dispatch: Dispatch,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let peer = client_addr(&parts.extensions).map(|addr| addr.ip());
        let scheme = parts.uri.scheme_str().unwrap_or("http").to_owned();
        let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
        headers::to_worker(
            &mut parts.headers,
            authority.as_deref(),
            headers::Origin {
                peer,
                scheme: &scheme,
                trust_forwarded: self.trust_forwarded,
            },
        );
        match &dispatch {
            Dispatch::Handle => {}
            Dispatch::Render { page, query } => {
                let Ok(page) = HeaderValue::from_str(page) else {
                    return plain_response(StatusCode::BAD_REQUEST, "invalid page path");
                };
                parts.headers.insert(headers::RENDER, page);
                if let Ok(query) = HeaderValue::from_str(query) {
                    parts.headers.insert(headers::QUERY, query);
                }
            }
            Dispatch::NotFound => {
                parts
                    .headers
                    .insert(headers::NOT_FOUND, HeaderValue::from_static("1"));
            }
        }

        // The connector ignores the authority; the pool needs one to key connections.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match Uri::try_from(format!("http://worker{path}")) {
            Ok(uri) => uri,
            Err(_) => return plain_response(StatusCode::BAD_REQUEST, "invalid request target"),
        };
        parts.version = Version::HTTP_11;

        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                if let Some(generation) = headers::from_worker(&mut parts.headers) {
                    self.catch_up(generation).await;
                }
                Response::from_parts(parts, Body::new(body))
            }
            Err(err) => {
                let reason = if err.is_connect() {
                    "Next.js worker unreachable"
                } else {
                    "Next.js worker closed the connection"
                };
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "{reason}");
                plain_response(StatusCode::BAD_GATEWAY, reason)
            }
        }
    }
}

impl Proxy {
    /// Waits until the cache events the worker sent before this response are applied, so
    /// that no native answer after it is older than what the worker knows (a request that
    /// revalidated a page is followed by the new page).
    async fn catch_up(&self, generation: u64) {
        if *self.applied.borrow() >= generation {
            return;
        }
        let mut applied = self.applied.clone();
        let caught_up =
            tokio::time::timeout(EVENT_WAIT, applied.wait_for(|g| *g >= generation)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            tracing::warn!(generation, "cache events of the worker not applied in time");
        }
    }
}

fn client_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(ClientAddr(addr)) = extensions.get::<ClientAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    None
}
