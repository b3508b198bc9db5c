//! The Unix socket the workers' cache handlers call (`host-cache.js`, in the bridge):
//!
//! - `GET /v1/<build>/entry/<kind>/<key>`: the entry's bytes, or 404;
//! - `PUT /v1/<build>/entry/<kind>/<key>`: stores the body (`x-tower-next-ttl`: seconds a
//!   shared store keeps it; `x-tower-next-pathname`: the page, for a response entry),
//!   413 when it is larger than the store allows;
//! - `POST /v1/<build>/tags`: records `[[tag, state], …]` as Next recorded them;
//! - `GET /v1/<build>/use-cache?since=<n>`: `{ "seq", "reset", "complete", "keys" }`,
//!   the `'use cache'` keys changed after change `n`, or every key when those changes are
//!   no longer listed (`reset`); `complete`: no key that is not listed has an entry;
//! - `GET /v1/<build>/tags?since=<n>`: `{ "seq": n, "tags": [[tag, state], …] }`, the tags
//!   changed after change `n`.
//!
//! Every answer carries `x-tower-next-tags-seq`, the number of tag changes the host has
//! seen, so a worker knows when to ask for them, and `x-tower-next-use-cache-changes`,
//! the number of changes to `'use cache'` entries, so a worker knows when its copies are
//! still the host's entries.

use std::{convert::Infallible, path::Path, sync::Weak, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use super::{Cache, store::EntryKey};
use crate::error::Error;

/// Tag lists are small: a request's revalidated tags.
const MAX_TAGS_BYTES: usize = 1 << 20;

/// Serves the workers' cache calls on `socket` until the returned task is aborted or the
/// cache is dropped.
///
/// # Errors
///
/// [`Error::Io`] when the socket cannot be bound.
pub(crate) fn serve(
    cache: Weak<Cache>,
    socket: &Path,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener = UnixListener::bind(socket).map_err(Error::io(socket))?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "host cache: accepting a worker's connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let cache = cache.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let cache = cache.upgrade();
                    async move {
                        Ok::<_, Infallible>(match cache {
                            Some(cache) => answer(&cache, request).await,
                            None => plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                        })
                    }
                });
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %err, "host cache: a worker's connection ended");
                }
            });
        }
    }))
}

async fn answer(cache: &Cache, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(5, '/');
    let (Some("v1"), Some(namespace)) = (parts.next(), parts.next()) else {
        return plain(StatusCode::NOT_FOUND, "unknown cache format");
    };
    // The worker percent-encodes it (`build@deployment`); the rest of the host uses the
    // decoded name (`AppInfo::cache_namespace`).
    let namespace = percent_encoding::percent_decode_str(namespace)
        .decode_utf8_lossy()
        .into_owned();
    let mut response = match (request.method(), parts.next(), parts.next(), parts.next()) {
        (&Method::GET, Some("entry"), Some(kind), Some(key)) => {
            let key = entry_key(namespace, kind, key);
            match cache.get(&key).await {
                Some(bytes) => Response::new(Full::new(bytes)),
                None => plain(StatusCode::NOT_FOUND, "no entry"),
            }
        }
        (&Method::PUT, Some("entry"), Some(kind), Some(key)) => {
            let key = entry_key(namespace, kind, key);
            let ttl = request
                .headers()
                .get("x-tower-next-ttl")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let pathname = request
                .headers()
                .get("x-tower-next-pathname")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| percent_encoding::percent_decode_str(v).decode_utf8().ok())
                .map(|v| v.into_owned());
            let limit = cache.max_entry_bytes();
            match Limited::new(request.into_body(), limit).collect().await {
                Ok(body) => match cache.put(key, body.to_bytes(), ttl, pathname).await {
                    Ok(()) => plain(StatusCode::NO_CONTENT, ""),
                    Err(err) => plain(StatusCode::PAYLOAD_TOO_LARGE, &err),
                },
                Err(err) => {
                    tracing::warn!(%path, error = %err, "host cache: an entry was not stored");
                    plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "entry larger than the cache allows",
                    )
                }
            }
        }
        (&Method::POST, Some("tags"), None, None) => {
            let body = match Limited::new(request.into_body(), MAX_TAGS_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "tag list too large"),
            };
            match serde_json::from_slice::<Vec<(String, serde_json::Value)>>(&body) {
                Ok(states) => {
                    let seq = cache.record_tags(&namespace, states).await;
                    plain(StatusCode::OK, &seq.to_string())
                }
                Err(err) => {
                    tracing::warn!(error = %err, "host cache: a worker sent unreadable tags");
                    plain(StatusCode::BAD_REQUEST, "tags must be [[tag, state], …]")
                }
            }
        }
        (&Method::GET, Some("use-cache"), None, None) => {
            let since = since(&request);
            let changes = cache.use_cache_changes_since(&namespace, since).await;
            json(&serde_json::to_value(changes).unwrap_or_default())
        }
        (&Method::GET, Some("tags"), None, None) => {
            let (seq, tags) = cache.tags_since(&namespace, since(&request));
            json(&serde_json::json!({ "seq": seq, "tags": tags }))
        }
        _ => plain(StatusCode::NOT_FOUND, "unknown cache call"),
    };
    response.headers_mut().insert(
        "x-tower-next-tags-seq",
        http::HeaderValue::from(cache.tags_seq()),
    );
    response.headers_mut().insert(
        "x-tower-next-use-cache-changes",
        http::HeaderValue::from(cache.use_cache_changes()),
    );
    response
}

/// `?since=<n>`, 0 when absent.
fn since<B>(request: &Request<B>) -> u64 {
    request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("since="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn entry_key(namespace: String, kind: &str, key: &str) -> EntryKey {
    EntryKey {
        namespace,
        kind: kind.to_owned(),
        key: key.to_owned(),
    }
}

fn plain(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(reason.as_bytes())));
    *response.status_mut() = status;
    response
}
