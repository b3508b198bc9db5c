//! The boundary between a client's request and a worker: what Node would refuse
//! ([`refused_by_node`]), header rules on the way in
//! ([`prepare`]), and on the way out ([`finish`]: hop-by-hop headers, a rendered page's
//! redirect to itself, the upgrade tunnel). The sending itself, streaming both ways over
//! the worker's Unix socket, is `runtime`'s client (through the pool).

pub(crate) mod headers;
mod upgrade;

pub(crate) use upgrade::ClientUpgrade;

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};

use crate::{body::Body, options::ProxyTrust, routes::Dispatch, runtime::protocol};

/// The client address of a request, for `X-Forwarded-For`.
///
/// axum's `ConnectInfo<SocketAddr>` is read as well (feature `axum`, on by default); a hand
/// written hyper server inserts this into the request's extensions itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

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
    // The worker's connection-level headers describe its hop, except what a `101` needs.
    let switching = upgrade::switching_headers(response.headers());
    headers::remove_hop_by_hop(response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().extend(switching);
    }
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
            parts.headers.insert(protocol::RENDER, page);
            if let Ok(query) = HeaderValue::from_str(query) {
                parts.headers.insert(protocol::QUERY, query);
            }
        }
        Dispatch::NotFound => {
            parts
                .headers
                .insert(protocol::NOT_FOUND, HeaderValue::from_static("1"));
        }
        Dispatch::Resume => {
            parts
                .headers
                .insert(protocol::RESUME, HeaderValue::from_static("1"));
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

/// What Node's HTTP server refuses before Next.js sees it, with the status and reason
/// Rust answers: raw (unencoded) non-ASCII bytes in the request target, which its parser
/// rejects; `CONNECT`, for which it has no handler (it closes the connection); and a
/// request head over [`crate::MAX_HEADER_BYTES`] (`431`).
pub(crate) fn refused_by_node<B>(request: &Request<B>) -> Option<(StatusCode, &'static str)> {
    if request.method() == http::Method::CONNECT {
        return Some((StatusCode::BAD_REQUEST, "CONNECT is not supported"));
    }
    let uri = request.uri();
    if !uri.path().is_ascii() || uri.query().is_some_and(|query| !query.is_ascii()) {
        return Some((
            StatusCode::BAD_REQUEST,
            "Bad Request: the request target must be ASCII (percent-encode it)",
        ));
    }
    // "GET <target> HTTP/1.1\r\n", then "<name>: <value>\r\n" per field.
    let target = uri
        .path_and_query()
        .map_or(1, |target| target.as_str().len());
    let head = request.method().as_str().len()
        + target
        + 11
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head > crate::MAX_HEADER_BYTES {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: Node.js accepts at most 16 KiB of request line and headers",
        ));
    }
    None
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
