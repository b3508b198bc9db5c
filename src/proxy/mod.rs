//! Forwarding a request to a worker over its Unix socket, streaming both ways.

mod connector;
pub(crate) mod headers;
mod upgrade;

use std::{net::SocketAddr, path::Path, time::Duration};

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

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

/// The HTTP client to one worker.
pub(crate) struct Proxy {
    client: Client<UnixConnector, Body>,
    trust_forwarded: bool,
}

impl Proxy {
    pub(crate) fn new(socket: &Path, trust_forwarded: bool) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the bridge's keep-alive, so a pooled connection is never
            // picked just as Node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(UnixConnector::new(socket));
        Proxy {
            client,
            trust_forwarded,
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
        let client_upgrade = upgrade::take(&mut parts);
        headers::to_worker(
            &mut parts.headers,
            authority.as_deref(),
            headers::Origin {
                peer,
                scheme: &scheme,
                trust_forwarded: self.trust_forwarded,
            },
        );
        if let Some(upgrade) = &client_upgrade {
            upgrade.restore_request_headers(&mut parts.headers);
        }
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

        let public_path = parts.uri.path().to_owned();
        // The connector ignores the authority; the pool needs one to key connections.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match Uri::try_from(format!("http://worker{path}")) {
            Ok(uri) => uri,
            Err(_) => return plain_response(StatusCode::BAD_REQUEST, "invalid request target"),
        };
        parts.version = Version::HTTP_11;

        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(mut response) => {
                let worker_upgrade = (response.status() == StatusCode::SWITCHING_PROTOCOLS)
                    .then(|| {
                        response
                            .extensions_mut()
                            .remove::<hyper::upgrade::OnUpgrade>()
                    })
                    .flatten();
                let (mut parts, body) = response.into_parts();
                let switching = upgrade::switching_headers(&parts);
                headers::from_worker(&mut parts.headers);
                if let Dispatch::Render { page, .. } = &dispatch {
                    headers::redirect_to_public_path(&mut parts.headers, page, &public_path);
                }
                if let (Some(client), Some(worker)) = (client_upgrade, worker_upgrade) {
                    parts.headers.extend(switching);
                    client.tunnel(worker);
                    return Response::from_parts(parts, Body::empty());
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
