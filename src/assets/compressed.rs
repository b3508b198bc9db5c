//! gzip answers, learned from Node.js.
//!
//! `next start` gzips with Node's zlib (a fork with its own match finder), whose bytes no
//! Rust encoder reproduces. So the first gzip request for a file or page goes to Node;
//! its answer is kept once it is verified to be exactly the natively known response,
//! compressed: the same status, the same headers as the identity answer without
//! `Content-Length` and with `Content-Encoding: gzip`, and a body that decompresses to the
//! identity bytes. Later gzip requests for the same content are answered from memory.
//! Each slot (a file, or a page's variant) holds the answer for one version of its content,
//! within a memory budget.

use std::{
    collections::HashMap,
    io::Read,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::{Frame, SizeHint};

use super::Native;
use crate::body::{Body, BoxError};

/// The most bytes of learned gzip bodies kept.
const BUDGET: usize = 32 * 1024 * 1024;
/// Larger answers are not captured.
const MAX_CAPTURE: usize = 4 * 1024 * 1024;

/// Which content a learned answer belongs to: a slot and the version of its content.
#[derive(Clone, Debug)]
pub(crate) struct VariantKey {
    slot: String,
    version: String,
}

impl VariantKey {
    pub(super) fn file(path: &Path, etag: &str) -> VariantKey {
        VariantKey {
            slot: format!("file:{}", path.display()),
            version: etag.to_owned(),
        }
    }

    pub(super) fn page(path: &str, variant: &str, id: u64) -> VariantKey {
        VariantKey {
            slot: format!("page:{variant}:{path}"),
            version: id.to_string(),
        }
    }
}

struct Learned {
    version: String,
    body: Bytes,
}

/// The learned gzip answers.
#[derive(Default)]
pub(crate) struct Compressed {
    slots: Mutex<HashMap<String, Learned>>,
}

/// A gzip request Node answers, and what its answer must be to be kept.
pub(crate) struct Learn {
    store: Arc<Compressed>,
    key: VariantKey,
    status: StatusCode,
    headers: HeaderMap,
    identity: Bytes,
}

impl Compressed {
    /// The learned gzip answer for `key`, or `None` (Node answers).
    pub(super) fn answer(
        &self,
        key: &VariantKey,
        status: StatusCode,
        identity_headers: &HeaderMap,
        method: &Method,
    ) -> Option<Native> {
        if *method != Method::GET {
            return None;
        }
        let body = {
            let slots = self.slots.lock().expect("compressed lock");
            let learned = slots.get(&key.slot)?;
            (learned.version == key.version).then(|| learned.body.clone())?
        };
        let mut response = Response::new(chunked(body));
        *response.status_mut() = status;
        *response.headers_mut() = gzip_headers(identity_headers);
        Some(Native::ready(response))
    }

    /// The learned answer for `key`, or else what Node's answer must be to be learned.
    pub(super) fn answer_or_learn(
        self: &Arc<Self>,
        key: VariantKey,
        status: StatusCode,
        identity_headers: &HeaderMap,
        identity: &Bytes,
        method: &Method,
        learn: &mut Option<Learn>,
    ) -> Option<Native> {
        let answer = self.answer(&key, status, identity_headers, method);
        if answer.is_none() && *method == Method::GET {
            *learn = Some(Learn {
                store: self.clone(),
                key,
                status,
                headers: gzip_headers(identity_headers),
                identity: identity.clone(),
            });
        }
        answer
    }

    fn keep(&self, key: VariantKey, body: Bytes) {
        let mut slots = self.slots.lock().expect("compressed lock");
        let used: usize = slots
            .iter()
            .filter(|(slot, _)| **slot != key.slot)
            .map(|(_, l)| l.body.len())
            .sum();
        if used + body.len() > BUDGET {
            tracing::debug!(slot = %key.slot, "gzip memory budget reached");
            return;
        }
        slots.insert(
            key.slot,
            Learned {
                version: key.version,
                body,
            },
        );
    }
}

/// The identity answer's headers, as `compression` turns them into a gzip answer's.
fn gzip_headers(identity: &HeaderMap) -> HeaderMap {
    let mut headers = identity.clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers
}

impl Learn {
    /// Watches Node's answer; if it is the expected gzip answer, keeps its body once it
    /// has been read to the end.
    pub(crate) fn watch(self, response: Response<Body>) -> Response<Body> {
        if response.status() != self.status || !same_headers(response.headers(), &self.headers) {
            tracing::debug!(slot = %self.key.slot, "Node's gzip answer is not the expected one; not kept");
            return response;
        }
        response.map(|body| {
            Body::new(Capture {
                inner: body,
                captured: Some(BytesMut::new()),
                learn: Some(self),
            })
        })
    }
}

/// Equal as multisets of (name, value), leaving out what differs per connection.
fn same_headers(actual: &HeaderMap, expected: &HeaderMap) -> bool {
    let significant = |headers: &HeaderMap| {
        let mut pairs: Vec<(String, Vec<u8>)> = headers
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "date" | "connection" | "keep-alive" | "transfer-encoding"
                ) && !name
                    .as_str()
                    .starts_with(crate::runtime::protocol::BRIDGE_PREFIX)
            })
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        pairs.sort();
        pairs
    };
    significant(actual) == significant(expected)
}

/// Passes Node's gzip body through and keeps a copy.
struct Capture {
    inner: Body,
    captured: Option<BytesMut>,
    learn: Option<Learn>,
}

impl Capture {
    /// The body has ended: keep it if it is the known content, compressed.
    fn finish(&mut self) {
        if let (Some(captured), Some(learn)) = (self.captured.take(), self.learn.take()) {
            let body = captured.freeze();
            if decompresses_to(&body, &learn.identity) {
                learn.store.keep(learn.key, body);
            } else {
                tracing::debug!(slot = %learn.key.slot, "Node's gzip body is not the known content; not kept");
            }
        }
    }
}

impl http_body::Body for Capture {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(captured)) = (frame.data_ref(), this.captured.as_mut()) {
                    if captured.len() + data.len() > MAX_CAPTURE {
                        this.captured = None;
                    } else {
                        captured.extend_from_slice(data);
                    }
                }
                // hyper stops polling once a body says it has ended.
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Some(Err(_)) => this.captured = None,
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn decompresses_to(gzip: &[u8], identity: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(identity.len());
    flate2::read::GzDecoder::new(gzip)
        .take(identity.len() as u64 + 1)
        .read_to_end(&mut decoded)
        .is_ok()
        && decoded == identity
}

/// A body of known bytes sent without `Content-Length` (chunked), as Node sends
/// compressed and streamed answers: a stream's unknown length makes hyper chunk it.
pub(super) fn chunked(bytes: Bytes) -> Body {
    Body::new(http_body_util::StreamBody::new(futures::stream::iter([
        Ok::<_, std::convert::Infallible>(Frame::data(bytes)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_a_body_that_decompresses_to_the_content_is_kept() {
        let identity = b"hello hello hello".to_vec();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&identity).unwrap();
        let gzip = encoder.finish().unwrap();
        assert!(decompresses_to(&gzip, &identity));
        assert!(!decompresses_to(&gzip, b"hello"));
        assert!(!decompresses_to(b"not gzip", &identity));
    }
}
