//! What Rust learns from Node.js's answers: gzip answers, and which page answers match.
//!
//! A page's answer is given natively only after Node answered the same request once with
//! the same status, significant headers and bytes (`Learn::verify`): what Rust prepared
//! from the build and the cache entries is checked against what `next start` sends, once
//! per version of the content. A mismatch is logged once and leaves that answer to Node.
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
/// The most answers whose check is remembered (beyond, new ones stay Node's).
const VERDICTS: usize = 100_000;
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

    /// An entry of Next's image cache: its key, and its file's name (expiry and ETag).
    pub(super) fn image(key: &str, file_name: &str) -> VariantKey {
        VariantKey {
            slot: format!("image:{key}"),
            version: file_name.to_owned(),
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

/// The learned gzip answers, and the checks of page answers.
#[derive(Default)]
pub(crate) struct Compressed {
    slots: Mutex<HashMap<String, Learned>>,
    verdicts: Mutex<HashMap<String, (String, Verdict)>>,
}

/// Whether Node's answer matched Rust's, for one version of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not checked yet: Node answers, and its answer is checked.
    Unknown,
    Matched,
    /// Node answered otherwise: Node answers this version.
    Refused,
}

/// A request Node answers, and what its answer must be to be kept (a gzip body) or to
/// let Rust answer (a page's answer, checked).
pub(crate) struct Learn {
    store: Arc<Compressed>,
    key: VariantKey,
    status: StatusCode,
    /// Headers of the identity answer.
    identity_headers: HeaderMap,
    identity: Bytes,
    /// The answer is checked: its verdict is recorded.
    verify: bool,
    /// Only the start of Node's body is known (a page's static shell, which the rest of
    /// the render follows): the body must begin with `identity`.
    prefix: bool,
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
                identity_headers: identity_headers.clone(),
                identity: identity.clone(),
                verify: false,
                prefix: false,
            });
        }
        answer
    }

    /// Whether Node's answer for this version of `key` matched Rust's.
    pub(super) fn verdict(&self, key: &VariantKey) -> Verdict {
        let verdicts = self.verdicts.lock().expect("verdicts lock");
        match verdicts.get(&key.slot) {
            Some((version, verdict)) if *version == key.version => *verdict,
            _ => Verdict::Unknown,
        }
    }

    /// Node answers; its answer (identity or gzip) is checked against Rust's, whole or
    /// (`prefix`) its start.
    pub(super) fn verify(
        self: &Arc<Self>,
        key: VariantKey,
        status: StatusCode,
        identity_headers: &HeaderMap,
        identity: &Bytes,
        prefix: bool,
    ) -> Learn {
        Learn {
            store: self.clone(),
            key,
            status,
            identity_headers: identity_headers.clone(),
            identity: identity.clone(),
            verify: true,
            prefix,
        }
    }

    fn record(&self, key: &VariantKey, verdict: Verdict, why: &str) {
        let mut verdicts = self.verdicts.lock().expect("verdicts lock");
        let known = verdicts.get(&key.slot);
        if known.is_some_and(|(version, known)| *version == key.version && *known == verdict) {
            return;
        }
        if known.is_none() && verdicts.len() >= VERDICTS {
            return;
        }
        if verdict == Verdict::Refused {
            tracing::warn!(slot = %key.slot, why, "Node answered otherwise than tower-next would: Node keeps answering it");
        } else {
            tracing::debug!(slot = %key.slot, "Node's answer matched: answered natively from now on");
        }
        verdicts.insert(key.slot.clone(), (key.version.clone(), verdict));
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
    /// Watches Node's answer; once it has been read to the end, keeps its body if it is
    /// the expected gzip answer, and records whether it matched when it is checked.
    pub(crate) fn watch(self, response: Response<Body>) -> Response<Body> {
        let gzip = response.headers().get(header::CONTENT_ENCODING)
            == Some(&HeaderValue::from_static("gzip"));
        // A compressed stream's start cannot be checked: no verdict.
        if gzip && self.prefix {
            return response;
        }
        let expected = if gzip {
            gzip_headers(&self.identity_headers)
        } else {
            self.identity_headers.clone()
        };
        // Node rendered (MISS) or answered a stale entry: not the answer Rust has, and no
        // sign that Rust's would be wrong; the next request is checked again.
        let cache = response.headers().get("x-nextjs-cache");
        if self.verify && cache.is_some_and(|v| v != "HIT") {
            return response;
        }
        let mismatch = if response.status() != self.status {
            Some(format!(
                "status {} (expected {})",
                response.status(),
                self.status
            ))
        } else {
            header_difference(response.headers(), &expected)
        };
        if let Some(why) = mismatch {
            self.refuse(&why);
            return response;
        }
        if !gzip && !self.verify {
            return response;
        }
        response.map(|body| {
            Body::new(Capture {
                inner: body,
                captured: Some(BytesMut::new()),
                learn: Some(self),
                gzip,
            })
        })
    }

    fn refuse(&self, why: &str) {
        if self.verify {
            self.store.record(&self.key, Verdict::Refused, why);
        } else {
            tracing::debug!(slot = %self.key.slot, why, "Node's gzip answer is not the expected one; not kept");
        }
    }

    /// Node's whole body arrived (`gzip`: compressed).
    fn finish(self, body: Bytes, gzip: bool) {
        let same = if gzip {
            decompresses_to(&body, &self.identity)
        } else if self.prefix {
            body.starts_with(&self.identity)
        } else {
            body == self.identity
        };
        if !same {
            self.refuse("the body differs");
            return;
        }
        if self.verify {
            self.store.record(&self.key, Verdict::Matched, "");
        }
        if gzip {
            self.store.keep(self.key, body);
        }
    }
}

/// The first header that differs as multisets of (name, value), leaving out what differs
/// per connection; `None` when they are equal.
fn header_difference(actual: &HeaderMap, expected: &HeaderMap) -> Option<String> {
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
    let (actual, expected) = (significant(actual), significant(expected));
    if actual == expected {
        return None;
    }
    let missing = expected.iter().find(|pair| !actual.contains(pair));
    let extra = actual.iter().find(|pair| !expected.contains(pair));
    let show = |pair: Option<&(String, Vec<u8>)>| {
        pair.map_or_else(
            || "-".to_owned(),
            |(name, value)| format!("{name}: {}", String::from_utf8_lossy(value)),
        )
    };
    Some(format!(
        "headers differ: Node sent {}, tower-next would send {}",
        show(extra),
        show(missing)
    ))
}

/// Passes Node's body through and keeps a copy.
struct Capture {
    inner: Body,
    captured: Option<BytesMut>,
    learn: Option<Learn>,
    gzip: bool,
}

impl Capture {
    /// The body has ended: check it.
    fn finish(&mut self) {
        if let (Some(captured), Some(learn)) = (self.captured.take(), self.learn.take()) {
            learn.finish(captured.freeze(), self.gzip);
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
                // A start that is checked is checked once it has arrived.
                let started = match (&this.learn, &this.captured) {
                    (Some(learn), Some(captured)) => {
                        learn.prefix && captured.len() >= learn.identity.len()
                    }
                    _ => false,
                };
                if started {
                    this.finish();
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
