//! Files: `{basePath}/_next/static/*` (the build's hashed, immutable assets) and `public/`,
//! answered with the headers of the `send` package that `next start` uses.
//!
//! The index is made at prepare. `/_next/static` files are immutable, so their validators
//! are read once and, within a memory budget, their bytes too. `public/` files can change
//! while the app runs (`next start` serves the current content but only the names present
//! at start), so each request stats the file, as `send` does, and the bytes in memory are
//! used only while size and mtime are those they were read with. Files not held in memory
//! are streamed from disk by tower-http's `ServeFile`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tower::ServiceExt;

use super::{
    Native, Settings,
    compressed::{Compressed, Learn, VariantKey},
    response,
    rules::{HeaderRules, RuleHeaders},
    semantics::{self, Encoding, RangeAnswer, encode_uri_path},
};
use crate::body::Body;

/// Files above this size are streamed from disk, not held in memory.
const MAX_MEMORY_FILE: u64 = 2 * 1024 * 1024;
/// The most bytes of files held in memory.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

/// Size and modification time, and the validators `send` derives from them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Validators {
    len: u64,
    modified: SystemTime,
    etag: String,
    last_modified: String,
}

impl Validators {
    fn of(metadata: &std::fs::Metadata) -> Option<Validators> {
        let modified = metadata.modified().ok()?;
        Some(Validators {
            len: metadata.len(),
            modified,
            etag: semantics::file_etag(metadata.len(), modified),
            last_modified: semantics::http_date(modified),
        })
    }
}

/// What a file's answers share, whatever its content.
struct Shape {
    /// Headers of next.config `headers()` rules for the file's path.
    rules: HeaderMap,
    content_type: &'static str,
    /// `Cache-Control` when no rule sets one.
    cache_control: &'static str,
}

/// One file of `/_next/static`.
pub(super) struct StaticFile {
    path: PathBuf,
    shape: Shape,
    validators: Validators,
    bytes: Option<Bytes>,
    /// The complete headers of a `200` to a plain GET (the common case, prepared once).
    whole: HeaderMap,
}

/// One file of `public/`.
pub(super) struct PublicFile {
    path: PathBuf,
    shape: Shape,
    memory: ArcSwapOption<Snapshot>,
    /// A re-read of a changed file is under way.
    refreshing: AtomicBool,
}

/// A public file's bytes as read at a given size and mtime.
struct Snapshot {
    validators: Validators,
    bytes: Bytes,
}

/// The files Rust answers for.
#[derive(Default)]
pub(super) struct FileIndex {
    statics: HashMap<String, Arc<StaticFile>>,
    public: HashMap<String, Arc<PublicFile>>,
    /// URL paths (and folder prefixes ending in `/`) of `public/` symlinks that lead out of
    /// the folder: refused, whoever would answer.
    refused: Vec<String>,
}

/// Where a path leads among the files.
pub(super) enum FileMatch<'a> {
    Static(&'a Arc<StaticFile>),
    Public(&'a Arc<PublicFile>),
    Refused,
    None,
}

impl FileIndex {
    /// Indexes `{dist_dir}/static` and `{dir}/public`. `claimed` says whether a URL path
    /// (with basePath) is taken by a middleware matcher or a redirect/rewrite rule: such
    /// files stay Node's.
    pub(super) fn load(
        dir: &Path,
        dist_dir: &Path,
        settings: &Settings,
        rules: &HeaderRules,
        claimed: &dyn Fn(&str) -> bool,
    ) -> FileIndex {
        let mut index = FileIndex::default();
        let mut budget = MEMORY_BUDGET;

        let mut statics = Vec::new();
        walk(
            &dist_dir.join("static"),
            "/_next/static",
            &mut statics,
            &mut Vec::new(),
        );
        for (url, path, metadata) in statics {
            let Some(shape) = shape(&url, settings, rules, claimed, true) else {
                continue;
            };
            let Some(validators) = Validators::of(&metadata) else {
                continue;
            };
            let bytes = (validators.len <= MAX_MEMORY_FILE && validators.len <= budget)
                .then(|| std::fs::read(&path).ok())
                .flatten()
                .filter(|bytes| bytes.len() as u64 == validators.len)
                .map(|bytes| {
                    budget -= validators.len;
                    Bytes::from(bytes)
                });
            let whole = whole_headers(&shape, &validators, settings);
            index.statics.insert(
                encode_uri_path(&url),
                Arc::new(StaticFile {
                    path,
                    shape,
                    validators,
                    bytes,
                    whole,
                }),
            );
        }

        let public_dir = dir.join("public");
        let mut public = Vec::new();
        walk(&public_dir, "", &mut public, &mut index.refused);
        for (url, path, metadata) in public {
            if index.statics.contains_key(&encode_uri_path(&url)) || url.starts_with("/_next/") {
                continue; // Next checks its own folders first.
            }
            let Some(shape) = shape(&url, settings, rules, claimed, false) else {
                continue;
            };
            let memory = Validators::of(&metadata)
                .filter(|v| v.len <= MAX_MEMORY_FILE && v.len <= budget)
                .and_then(|validators| {
                    let bytes = std::fs::read(&path).ok()?;
                    (bytes.len() as u64 == validators.len).then(|| {
                        budget -= validators.len;
                        Arc::new(Snapshot {
                            validators,
                            bytes: Bytes::from(bytes),
                        })
                    })
                });
            index.public.insert(
                encode_uri_path(&url),
                Arc::new(PublicFile {
                    path,
                    shape,
                    memory: ArcSwapOption::new(memory),
                    refreshing: AtomicBool::new(false),
                }),
            );
        }
        tracing::debug!(
            statics = index.statics.len(),
            public = index.public.len(),
            refused = index.refused.len(),
            memory_bytes = MEMORY_BUDGET - budget,
            "native file index"
        );
        index
    }

    /// The file for a request path (after basePath, as sent), matched as Next's
    /// file-system router matches it: the path as sent, decoded, or encoded once more,
    /// against each file's name in Next's encoded form (`encodeURIComponent` per
    /// segment). So `/files/c%2B%2B.txt` and `/files/c++.txt` find `public/files/c++.txt`,
    /// where `/files/c%2b%2b.txt` and `/files/%63++.txt` do not, as with `next start`.
    /// Membership in the index is the whole test: no spelling reaches another file.
    pub(super) fn find(&self, raw: &str) -> FileMatch<'_> {
        if raw.starts_with("/_next/static/") {
            return match next_lookup(&self.statics, raw) {
                Some(file) => FileMatch::Static(file),
                None => FileMatch::None,
            };
        }
        if let Some(file) = next_lookup(&self.public, raw) {
            return FileMatch::Public(file);
        }
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        if self.refused.iter().any(|prefix| {
            decoded == prefix.trim_end_matches('/')
                || (prefix.ends_with('/') && decoded.starts_with(prefix.as_str()))
        }) {
            return FileMatch::Refused;
        }
        FileMatch::None
    }
}

/// Next's lookup of a request path among file names kept in its encoded form
/// (`filesystem.js`): as sent, then `decodeURIComponent` of it, then `encodeURIPath` of it.
fn next_lookup<'a, T>(files: &'a HashMap<String, T>, raw: &str) -> Option<&'a T> {
    if let Some(file) = files.get(raw) {
        return Some(file);
    }
    if let Some(decoded) = decode_uri_component(raw)
        && let Some(file) = files.get(decoded.as_str())
    {
        return Some(file);
    }
    files.get(encode_uri_path(raw).as_str())
}

/// JavaScript's `decodeURIComponent`: `None` where it throws (a `%` not followed by two
/// hex digits, or bytes that are not UTF-8).
fn decode_uri_component(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// The rules, type and default `Cache-Control` of a file, or `None` when it stays Node's.
fn shape(
    url: &str,
    settings: &Settings,
    rules: &HeaderRules,
    claimed: &dyn Fn(&str) -> bool,
    immutable: bool,
) -> Option<Shape> {
    let full = format!("{}{url}", settings.base_path);
    if claimed(&full) {
        return None;
    }
    let RuleHeaders::Known(rules) = rules.for_path(&full) else {
        return None;
    };
    Some(Shape {
        rules,
        content_type: semantics::content_type(url)?,
        cache_control: if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=0"
        },
    })
}

/// Collects the regular files under `folder` as (URL path, file path, metadata). Symlinks
/// are followed only when they stay inside `folder`; those leading out are recorded in
/// `refused` (as decoded URL paths).
fn walk(
    folder: &Path,
    prefix: &str,
    files: &mut Vec<(String, PathBuf, std::fs::Metadata)>,
    refused: &mut Vec<String>,
) {
    let Ok(root) = std::fs::canonicalize(folder) else {
        return;
    };
    let mut stack = vec![(root.clone(), prefix.to_owned())];
    while let Some((folder, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let url = format!("{prefix}/{name}");
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                let inside =
                    std::fs::canonicalize(&path).is_ok_and(|target| target.starts_with(&root));
                if !inside {
                    let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
                    refused.push(if is_dir { format!("{url}/") } else { url });
                    continue;
                }
                // A link inside the folder to a file is served as that file; linked
                // folders are left to Node.
                match std::fs::metadata(&path) {
                    Ok(metadata) if metadata.is_file() && url_safe(name) => {
                        files.push((url, path, metadata))
                    }
                    _ => {}
                }
            } else if kind.is_dir() {
                stack.push((path, url));
            } else if kind.is_file()
                && url_safe(name)
                && let Ok(metadata) = entry.metadata()
            {
                files.push((url, path, metadata));
            }
        }
    }
}

/// Whether a file name can be served (any name but the dot segments; the index keeps it
/// in Next's encoded form).
fn url_safe(name: &str) -> bool {
    name != "." && name != ".."
}

/// The headers of a `200` with the whole file.
fn whole_headers(shape: &Shape, validators: &Validators, settings: &Settings) -> HeaderMap {
    let mut headers = base_headers(shape, validators, settings);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(validators.len));
    super::compression_vary(&mut headers, settings);
    headers
}

/// `send`'s headers (each only if a rule has not set it), and the content type.
fn base_headers(shape: &Shape, validators: &Validators, settings: &Settings) -> HeaderMap {
    let mut headers = shape.rules.clone();
    let defaults = [
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
pub(super) fn serve_static<B>(
    request: &Request<B>,
    file: &StaticFile,
    settings: &Settings,
    compressed: &Arc<Compressed>,
    learn: &mut Option<Learn>,
) -> Option<Native> {
    let headers = request.headers();
    let plain = !headers.contains_key(header::RANGE)
        && !headers.contains_key(header::IF_NONE_MATCH)
        && !headers.contains_key(header::IF_MODIFIED_SINCE)
        && !semantics::has_preconditions(headers);
    let source = match &file.bytes {
        Some(bytes) => Source::Memory(bytes.clone()),
        None => Source::Disk(file.path.clone()),
    };
    let key = VariantKey::file(&file.path, &file.validators.etag);
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
pub(super) fn serve_public<B>(
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
    let conditional = request_headers.contains_key(header::IF_NONE_MATCH)
        || request_headers.contains_key(header::IF_MODIFIED_SINCE);
    if conditional {
        let etag = headers.get(header::ETAG).and_then(|v| v.to_str().ok());
        let last_modified = headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok());
        if semantics::fresh(request_headers, etag, last_modified) {
            for name in [
                header::CONTENT_ENCODING,
                header::CONTENT_LANGUAGE,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::CONTENT_TYPE,
            ] {
                headers.remove(name);
            }
            return Some(Native::ready(response(
                StatusCode::NOT_MODIFIED,
                headers,
                Body::empty(),
            )));
        }
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
    super::compression_vary(&mut headers, settings);
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
    let head = request.method() == Method::HEAD;
    match source {
        Source::Memory(bytes) => {
            let body = if head {
                Body::empty()
            } else {
                Body::full(bytes.slice(start as usize..(start + len) as usize))
            };
            Some(Native::ready(response(status, headers, body)))
        }
        Source::Disk(path) => {
            let method = request.method().clone();
            let range = (status == StatusCode::PARTIAL_CONTENT)
                .then(|| format!("bytes={start}-{}", start + len - 1));
            Some(Native::pending(async move {
                from_disk(path, method, range, status, headers).await
            }))
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
    if !super::compressible(headers) {
        return Encoding::Identity;
    }
    semantics::negotiate(request.headers())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_as_nexts_file_system_router_matches_them() {
        let files: HashMap<String, u8> = [
            "/files/c++.txt",
            "/hello.txt",
            "/_next/static/chunks/app/blog/[slug]/page-1.js",
            "/images/dot.svg",
        ]
        .iter()
        .map(|url| (encode_uri_path(url), 0))
        .collect();
        let found = |raw: &str| next_lookup(&files, raw).is_some();
        for raw in [
            "/files/c++.txt",
            "/files/c%2B%2B.txt",
            "/hello.txt",
            "/hello%2Etxt",
            "/%68ello.txt",
            "/images%2Fdot.svg",
            "/_next/static/chunks/app/blog/%5Bslug%5D/page-1.js",
            "/_next/static/chunks/app/blog/[slug]/page-1.js",
        ] {
            assert!(found(raw), "{raw}");
        }
        for raw in [
            "/files/c%2b%2b.txt",
            "/files/%63++.txt",
            "/_next/static/chunks/app/blog/%5bslug%5d/page-1.js",
            "/_next/static/chunks/app/blog/%5Bslug]/page-1.js",
            "/hello.txt%",
            "/files/../hello.txt",
        ] {
            assert!(!found(raw), "{raw}");
        }
    }
}
