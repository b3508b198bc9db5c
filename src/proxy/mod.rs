//! Forwarding a request to a worker over its Unix socket, streaming both ways.

mod connector;
pub(crate) mod headers;
mod replay;
mod upgrade;

pub(crate) use upgrade::ClientUpgrade;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::{
    body::{Body, plain_response},
    cache::{Fence, Marks},
    options::ProxyTrust,
    routes::Dispatch,
};
use connector::UnixConnector;

/// The client address of a request, for `X-Forwarded-For`.
///
/// axum's `ConnectInfo<SocketAddr>` is read as well (feature `axum`, on by default); a hand
/// written hyper server inserts this into the request's extensions itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The HTTP client to one worker.
pub(crate) struct Proxy {
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
}

impl Proxy {
    pub(crate) fn new(socket: &Path, slot: usize, fence: Arc<Fence>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the bridge's keep-alive, so a pooled connection is never
            // picked just as Node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(UnixConnector::new(socket));
        Proxy {
            client,
            slot,
            fence,
        }
    }

    /// Sends a request made by [`prepare`] to the worker, streaming both ways.
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
                let switching = upgrade::switching_headers(&parts);
                let marks = headers::from_worker(&mut parts.headers);
                if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    parts.headers.extend(switching);
                }
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
            Err(err) => Sent::Response(failed(&err, "Next.js worker closed the connection")),
        }
    }
}

impl Proxy {
    /// Asks the bridge itself (not Next) for something it knows, e.g. `middleware-matchers`.
    pub(crate) async fn control(&self, name: &'static str) -> Result<bytes::Bytes, String> {
        use http_body_util::BodyExt;
        let request = Request::builder()
            .uri("http://worker/")
            .header(headers::CONTROL, name)
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

/// Takes a client's request to switch protocols (WebSocket, HMR) before [`prepare`]:
/// the server's handle to the connection lives in the request's extensions.
pub(crate) fn take_upgrade<B>(request: &mut Request<B>) -> Option<ClientUpgrade> {
    upgrade::take(request)
}

/// What the host does with a worker's response before the client gets it: a rendered
/// page's redirect to itself points at the public path, and a `101` joins the upgraded
/// connections into a tunnel.
pub(crate) fn finish(
    mut response: Response<Body>,
    dispatch: &Dispatch,
    public_path: &str,
    upgrade: Option<ClientUpgrade>,
) -> Response<Body> {
    if let Dispatch::Render { page, .. } = dispatch {
        headers::redirect_to_public_path(response.headers_mut(), page, public_path);
    }
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = upgrade
        && let Some(worker) = response
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
    {
        client.tunnel(worker);
    }
    response
}

fn failed(err: &hyper_util::client::legacy::Error, reason: &str) -> Response<Body> {
    tracing::error!(error = %err, source = ?std::error::Error::source(err), "{reason}");
    plain_response(StatusCode::BAD_GATEWAY, reason)
}

/// Turns a client request into the request for a worker: header rules, the bridge's
/// instructions, an origin-form target. Done once, whichever worker gets it. The error is
/// the reason for a `400 Bad Request`.
pub(crate) fn prepare(
    request: Request<Body>,
    dispatch: &Dispatch,
    trust: &ProxyTrust,
) -> Result<Request<Body>, &'static str> {
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
            trust_forwarded: trust.trusts(peer),
        },
    );
    match dispatch {
        Dispatch::Handle => {}
        Dispatch::Render { page, query } => {
            let Ok(page) = HeaderValue::from_str(page) else {
                return Err("invalid page path");
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
    let uri = match Uri::try_from(format!("http://worker{path}")) {
        Ok(uri) => uri,
        Err(_) => return Err("invalid request target"),
    };
    // Only what the worker needs: the server's extensions stay behind.
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = parts.headers;
    Ok(request)
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
