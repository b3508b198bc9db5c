//! Responses as the differential tests compare them: one request to a server, its answer
//! captured whole, and how two bodies differ.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use reqwest::{Method, header};

/// The Host header of every request, on both servers.
pub const HOST: &str = "localhost:3000";

/// Headers that differ on purpose: hop-by-hop (RFC 9110 §7.6.1; Next sends `Connection:
/// keep-alive` and `Keep-Alive: timeout=5` for its own sockets, hyper chooses the framing
/// towards the client) and the clock.
pub const IGNORED_HEADERS: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "date"];

/// Headers derived from the body: compared only where the body is.
pub const BODY_HEADERS: [&str; 2] = ["etag", "content-length"];

/// A response as received: status, headers by lowercase name, the whole body.
#[derive(Debug)]
pub struct Captured {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// The names of the headers either response has, but [`IGNORED_HEADERS`].
pub fn compared_headers<'a>(reference: &'a Captured, ours: &'a Captured) -> BTreeSet<&'a String> {
    reference
        .headers
        .keys()
        .chain(ours.headers.keys())
        .filter(|name| !IGNORED_HEADERS.contains(&name.as_str()))
        .collect()
}

/// `method path` with `headers` (and `Host: HOST`) to the server at `addr`.
pub async fn send(
    client: &reqwest::Client,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Captured, String> {
    let mut request = client
        .request(method, format!("http://{addr}{path}"))
        .header(header::HOST, HOST);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    capture(request).await
}

/// Sends `request` (built by the caller, with a body for instance) and captures the answer.
pub async fn capture(request: reqwest::RequestBuilder) -> Result<Captured, String> {
    let response = request.send().await.map_err(|err| format!("{err:?}"))?;
    let status = response.status().as_u16();
    let mut captured = BTreeMap::<String, Vec<String>>::new();
    for (name, value) in response.headers() {
        captured
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("body: {err:?}"))?;
    Ok(Captured {
        status,
        headers: captured,
        body: body.to_vec(),
    })
}

/// Where two bodies first differ, with an excerpt of each.
pub fn describe_body_difference(reference: &[u8], ours: &[u8]) -> String {
    let at = reference
        .iter()
        .zip(ours)
        .position(|(r, o)| r != o)
        .unwrap_or(reference.len().min(ours.len()));
    let excerpt = |body: &[u8]| {
        let start = at.saturating_sub(20);
        let end = (at + 40).min(body.len());
        String::from_utf8_lossy(&body[start.min(end)..end]).into_owned()
    };
    format!(
        "body: {} vs {} bytes, first difference at byte {at}: {:?} vs {:?}",
        reference.len(),
        ours.len(),
        excerpt(reference),
        excerpt(ours)
    )
}
