//! Answering a request for an indexed file as the `send` package answers it: 304 when
//! fresh, 206 for one satisfiable range, else 200, with its headers; from memory, from a
//! learned gzip answer, or streamed from disk by tower-http's `ServeFile`.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tower::ServiceExt;

use super::index::{MAX_MEMORY_FILE, PublicFile, Shape, Snapshot, StaticFile, Validators};
use crate::{
    assets::{
        Native, Settings,
        brotli::{self, BrotliAssets},
        compressed::{Compressed, Learn, VariantKey},
        response,
        semantics::{self, Encoding, RangeAnswer},
    },
    body::Body,
};

/// The headers of a `200` with the whole file.
pub(super) fn whole_headers(
    shape: &Shape,
    validators: &Validators,
    settings: &Settings,
) -> HeaderMap {
    let mut headers = base_headers(shape, validators, settings);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(validators.len));
    crate::assets::compression_vary(&mut headers, settings);
    headers
}

/// `send`'s headers (each only if a rule has not set it), and the content type.
fn base_headers(shape: &Shape, validators: &Validators, settings: &Settings) -> HeaderMap {
    let mut headers = shape.rules.clone();
    let mut defaults = [
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(shape.cache_control),
        ),
        (
            header::LAST_MODIFIED,
            semantics::value(&validators.last_modified),
        ),
    ];
    // Next sets the immutable `Cache-Control` of `/_next/static` before `send` runs;
    // `send` sets `public/`'s after `Accept-Ranges` (the order `next start` sends).
    if shape.cache_control.contains("immutable") {
        defaults.swap(0, 1);
    }
    for (name, value) in defaults {
        headers.entry(name).or_insert(value);
    }
    if settings.generate_etags {
        headers
            .entry(header::ETAG)
            .or_insert_with(|| semantics::value(&validators.etag));
    }
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(shape.content_type));
    headers
}

/// The body of an answer: in memory, or on disk.
enum Source {
    Memory(Bytes),
    Disk(PathBuf),
}

/// Answers a request for a `/_next/static` file, or `None` to let Node answer.
pub(in crate::assets) fn serve_static<B>(
    request: &Request<B>,
    file: &StaticFile,
    settings: &Settings,
    compressed: &Arc<Compressed>,
    brotli: Option<&Arc<BrotliAssets>>,
    learn: &mut Option<Learn>,
) -> Option<Native> {
    let headers = request.headers();
    let plain = !headers.contains_key(header::RANGE)
        && !semantics::is_conditional(headers)
        && !semantics::has_preconditions(headers);
    let source = match &file.bytes {
        Some(bytes) => Source::Memory(bytes.clone()),
        None => Source::Disk(file.path.clone()),
    };
    let key = VariantKey::file(&file.path, &file.validators.etag);
    if plain
        && let Source::Memory(bytes) = &source
        && let Some(store) = brotli
        && (request.method() == Method::GET || request.method() == Method::HEAD)
        && bytes.len() >= semantics::COMPRESSION_THRESHOLD
        && crate::assets::compressible(&file.whole)
        && brotli::accepts_brotli(headers)
        && let Some(body) = store.body(&file.path, &file.validators.etag, bytes)
    {
        let headers = brotli::headers(&file.whole, body.len());
        // HEAD: the headers GET would have.
        let body = if request.method() == Method::HEAD {
            Body::empty()
        } else {
            Body::full(body)
        };
        return Some(Native::ready(response(StatusCode::OK, headers, body)));
    }
    if plain && let Source::Memory(bytes) = &source {
        // The common case, with headers prepared at start.
        match encoding_for(request, &file.whole, file.validators.len, settings) {
            Encoding::Identity => {
                let body = if request.method() == Method::HEAD {
                    Body::empty()
                } else {
                    Body::full(bytes.clone())
                };
                return Some(Native::ready(response(
                    StatusCode::OK,
                    file.whole.clone(),
                    body,
                )));
            }
            Encoding::Gzip => {
                return compressed.answer_or_learn(
                    key,
                    StatusCode::OK,
                    &file.whole,
                    bytes,
                    request.method(),
                    learn,
                );
            }
            Encoding::Deflate => return None,
        }
    }
    let answer = Answer {
        shape: &file.shape,
        validators: &file.validators,
        source,
        key,
    };
    serve(request, answer, settings, compressed, learn)
}

/// Answers a request for a `public/` file, or `None` to let Node answer.
pub(in crate::assets) fn serve_public<B>(
    request: &Request<B>,
    file: &Arc<PublicFile>,
    settings: &Settings,
    compressed: &Arc<Compressed>,
    learn: &mut Option<Learn>,
) -> Option<Native> {
    // One stat per request, as `send` does: the validators of the current content.
    let metadata = std::fs::metadata(&file.path).ok().filter(|m| m.is_file())?;
    let validators = Validators::of(&metadata)?;
    let memory = file.memory.load();
    let source = match memory.as_deref() {
        Some(snapshot) if snapshot.validators == validators => {
            Source::Memory(snapshot.bytes.clone())
        }
        _ => {
            // Changed (or never held): read it again, once, in the background.
            if validators.len <= MAX_MEMORY_FILE && !file.refreshing.swap(true, Ordering::AcqRel) {
                refresh(file.clone(), validators.clone());
            }
            Source::Disk(file.path.clone())
        }
    };
    let key = VariantKey::file(&file.path, &validators.etag);
    let answer = Answer {
        shape: &file.shape,
        validators: &validators,
        source,
        key,
    };
    serve(request, answer, settings, compressed, learn)
}

/// Reads a changed public file into memory in the background.
fn refresh(file: Arc<PublicFile>, validators: Validators) {
    if tokio::runtime::Handle::try_current().is_err() {
        file.refreshing.store(false, Ordering::Release);
        return;
    }
    tokio::spawn(async move {
        let read = tokio::fs::read(&file.path).await.ok();
        // Keep it only if the file still has the size and mtime it was read with.
        let now = tokio::fs::metadata(&file.path)
            .await
            .ok()
            .and_then(|m| Validators::of(&m));
        let snapshot = read
            .filter(|bytes| {
                now.as_ref() == Some(&validators) && bytes.len() as u64 == validators.len
            })
            .map(|bytes| {
                Arc::new(Snapshot {
                    validators,
                    bytes: Bytes::from(bytes),
                })
            });
        file.memory.store(snapshot);
        file.refreshing.store(false, Ordering::Release);
    });
}

/// A file as it is to be served.
struct Answer<'a> {
    shape: &'a Shape,
    validators: &'a Validators,
    source: Source,
    /// Keys its learned gzip answer.
    key: VariantKey,
}

/// `send`'s answer: 304 when fresh, 206 for one satisfiable range, else 200.
fn serve<B>(
    request: &Request<B>,
    answer: Answer<'_>,
    settings: &Settings,
    compressed: &Arc<Compressed>,
    learn: &mut Option<Learn>,
) -> Option<Native> {
    let Answer {
        shape,
        validators,
        source,
        key,
    } = answer;
    let request_headers = request.headers();
    if semantics::has_preconditions(request_headers) {
        return None;
    }
    let mut headers = base_headers(shape, validators, settings);
    if is_fresh(request_headers, &headers) {
        return Some(not_modified(headers));
    }
    let (status, start, len) = match semantics::range(request_headers, validators.len) {
        RangeAnswer::Whole => (StatusCode::OK, 0, validators.len),
        RangeAnswer::Part { start, end } => {
            headers.insert(
                header::CONTENT_RANGE,
                semantics::value(&format!("bytes {start}-{end}/{}", validators.len)),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Node => return None,
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    crate::assets::compression_vary(&mut headers, settings);
    match (encoding_for(request, &headers, len, settings), &source) {
        (Encoding::Identity, _) => {}
        (Encoding::Gzip, Source::Memory(bytes)) if status == StatusCode::OK => {
            return compressed.answer_or_learn(
                key,
                status,
                &headers,
                bytes,
                request.method(),
                learn,
            );
        }
        _ => return None,
    }
    Some(send(request.method(), source, status, start, len, headers))
}

/// Whether a conditional request's copy is still good, by the answer's validators.
fn is_fresh(request_headers: &HeaderMap, headers: &HeaderMap) -> bool {
    if !semantics::is_conditional(request_headers) {
        return false;
    }
    let etag = headers.get(header::ETAG).and_then(|v| v.to_str().ok());
    let last_modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok());
    semantics::fresh(request_headers, etag, last_modified)
}

/// `send`'s 304: the answer's headers without those of its content.
fn not_modified(mut headers: HeaderMap) -> Native {
    for name in [
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::CONTENT_TYPE,
    ] {
        headers.remove(name);
    }
    Native::ready(response(StatusCode::NOT_MODIFIED, headers, Body::empty()))
}

/// The identity answer of `len` bytes from `start`: from memory, or read from disk.
fn send(
    method: &Method,
    source: Source,
    status: StatusCode,
    start: u64,
    len: u64,
    headers: HeaderMap,
) -> Native {
    let head = method == Method::HEAD;
    match source {
        Source::Memory(bytes) => {
            let body = if head {
                Body::empty()
            } else {
                Body::full(bytes.slice(start as usize..(start + len) as usize))
            };
            Native::ready(response(status, headers, body))
        }
        Source::Disk(path) => {
            let method = method.clone();
            let range = (status == StatusCode::PARTIAL_CONTENT)
                .then(|| format!("bytes={start}-{}", start + len - 1));
            Native::pending(async move { from_disk(path, method, range, status, headers).await })
        }
    }
}

/// Streams (part of) a file from disk with tower-http's `ServeFile`, under the headers
/// decided above.
async fn from_disk(
    path: PathBuf,
    method: Method,
    range: Option<String>,
    status: StatusCode,
    headers: HeaderMap,
) -> Response<Body> {
    let mut request = Request::builder().method(method).uri("/");
    if let Some(range) = &range {
        request = request.header(header::RANGE, range);
    }
    let request = request.body(Body::empty()).expect("a valid request");
    match tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
    {
        Ok(served) if served.status() == status => {
            let served_len = served.headers().get(header::CONTENT_LENGTH).cloned();
            if served_len.as_ref() != headers.get(header::CONTENT_LENGTH) {
                // Changed between the stat and the read: what was decided no longer holds.
                return crate::body::plain_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "file changed while being read",
                );
            }
            response(status, headers, Body::new(served.into_body()))
        }
        Ok(served) => {
            tracing::debug!(path = %path.display(), status = %served.status(), "file vanished");
            crate::body::plain_response(StatusCode::NOT_FOUND, "Not Found")
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "reading a file failed");
            crate::body::plain_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// The encoding `compression` would apply to this answer.
fn encoding_for<B>(
    request: &Request<B>,
    headers: &HeaderMap,
    len: u64,
    settings: &Settings,
) -> Encoding {
    if !settings.compress
        || request.method() == Method::HEAD
        || len < semantics::COMPRESSION_THRESHOLD as u64
    {
        return Encoding::Identity;
    }
    if !crate::assets::compressible(headers) {
        return Encoding::Identity;
    }
    semantics::negotiate(request.headers())
}
