//! Header rules at the boundary between the client and a worker.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::runtime::protocol::BRIDGE_PREFIX;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Connection-level headers (RFC 9110 §7.6.1): they describe one hop and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Who sent the request, as far as the host knows.
pub(crate) struct Origin<'a> {
    pub peer: Option<IpAddr>,
    pub scheme: &'a str,
    pub trust_forwarded: bool,
}

/// Rewrites a client request's headers for the worker: drops hop-by-hop and bridge
/// headers, restores `Host` for HTTP/2, and states where the request came from.
pub(crate) fn to_worker(headers: &mut HeaderMap, authority: Option<&str>, origin: Origin<'_>) {
    remove_hop_by_hop(headers);
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(BRIDGE_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }

    // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
    if headers.get_all(header::COOKIE).iter().nth(1).is_some() {
        let joined = headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }

    if !headers.contains_key(header::HOST)
        && let Some(value) = authority.and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(header::HOST, value);
    }

    if origin.trust_forwarded {
        if let Some(peer) = origin.peer {
            let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {peer}"),
                None => peer.to_string(),
            };
            set(headers, X_FORWARDED_FOR, &value);
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            set(headers, X_FORWARDED_PROTO, origin.scheme);
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(host) = headers.get(header::HOST).cloned()
        {
            headers.insert(X_FORWARDED_HOST, host);
        }
    } else {
        headers.remove(&X_FORWARDED_PORT);
        headers.remove(header::FORWARDED);
        match origin.peer {
            Some(peer) => set(headers, X_FORWARDED_FOR, &peer.to_string()),
            None => {
                headers.remove(&X_FORWARDED_FOR);
            }
        }
        set(headers, X_FORWARDED_PROTO, origin.scheme);
        match headers.get(header::HOST).cloned() {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// A rendered page is served at the request's path, not its own: a redirect to the page
/// itself (Next 16's `_rsc` check, a trailing-slash fix) goes to the public path instead.
pub(crate) fn redirect_to_public_path(headers: &mut HeaderMap, page: &str, public_path: &str) {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let (path, rest) = location.split_at(location.find(['?', '#']).unwrap_or(location.len()));
    if path.trim_end_matches('/') == page.trim_end_matches('/') && !path.is_empty() {
        let trailing = if path.ends_with('/') && !public_path.ends_with('/') {
            "/"
        } else {
            ""
        };
        let mapped = format!("{public_path}{trailing}{rest}");
        if let Ok(value) = HeaderValue::from_str(&mapped) {
            headers.insert(header::LOCATION, value);
        }
    }
}

pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(trust: bool) -> Origin<'static> {
        Origin {
            peer: Some("10.1.2.3".parse().unwrap()),
            scheme: "http",
            trust_forwarded: trust,
        }
    }

    #[test]
    fn spoofed_bridge_and_forwarded_headers_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tower-next-render", "/secret".parse().unwrap());
        headers.insert("X-Tower-Next-Query", "a=1".parse().unwrap());
        headers.insert("x-forwarded-for", "1.1.1.1".parse().unwrap());
        headers.insert("x-forwarded-host", "evil.example".parse().unwrap());
        headers.insert("host", "app.example".parse().unwrap());
        headers.insert("forwarded", "host=evil.example".parse().unwrap());
        to_worker(&mut headers, None, origin(false));
        assert!(
            headers
                .keys()
                .all(|k| !k.as_str().starts_with(BRIDGE_PREFIX))
        );
        assert_eq!(headers["x-forwarded-for"], "10.1.2.3");
        assert_eq!(headers["x-forwarded-host"], "app.example");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(headers.get("forwarded").is_none());
    }

    #[test]
    fn trusted_forwarded_headers_are_extended() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.1.1.1".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("host", "app.example".parse().unwrap());
        to_worker(&mut headers, None, origin(true));
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1, 10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "https");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "close, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("accept", "*/*".parse().unwrap());
        to_worker(&mut headers, Some("h2.example"), origin(false));
        assert!(headers.get("x-private").is_none());
        assert!(headers.get("keep-alive").is_none());
        assert!(headers.get("te").is_none());
        assert_eq!(headers["host"], "h2.example");
        assert_eq!(headers["accept"], "*/*");
    }

    #[test]
    fn redirects_to_a_rendered_page_point_at_the_public_path() {
        let mut headers = HeaderMap::new();
        headers.insert("location", "/b?x=1&_rsc=abc".parse().unwrap());
        redirect_to_public_path(&mut headers, "/b", "/a");
        assert_eq!(headers["location"], "/a?x=1&_rsc=abc");
        headers.insert("location", "/elsewhere".parse().unwrap());
        redirect_to_public_path(&mut headers, "/b", "/a");
        assert_eq!(headers["location"], "/elsewhere");
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1".parse().unwrap());
        headers.append("cookie", "b=2".parse().unwrap());
        to_worker(&mut headers, None, origin(false));
        assert_eq!(headers.get_all("cookie").iter().count(), 1);
        assert_eq!(headers["cookie"], "a=1; b=2");
    }
}
