//! `/_next/image` answered from Next's own image cache (`<distDir>/cache/images`).
//!
//! Next's image optimizer keeps each optimized image in a folder named by a hash of the
//! request (`ImageOptimizerCache.getCacheKey`: SHA-256 of the cache version, the `url`,
//! width, quality and the format picked from `Accept`, base64url), in one file named
//! `<maxAge>.<expireAt ms>.<etag>.<upstreamEtag>.<extension>`. While such an entry is
//! fresh, `next start` answers it with headers made from the name and next.config
//! (`sendResponse`): Rust does the same, once Node answered that version of the entry
//! the same way (see `compressed`'s check).
//!
//! What Rust cannot be sure of stays Node's: remote images, `Accept` headers beyond the
//! plain ones, SVG/ICO/BMP entries (compressed by Next), entries that are not Next's
//! optimized output (the ETag is then not the hash of the bytes, so a half-written file
//! could not be told apart), an entry near its expiry.
//!
//! Requests that may make Node optimize (no fresh entry) go through [`Optimizations`]:
//! one per cache key at a time across the pool, and a bound on how many run at once.

mod accept;
mod flights;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};

pub(crate) use flights::{Flight, ImageMiss, Optimizations};

use super::{
    Native,
    compressed::{Compressed, Learn, VariantKey, Verdict},
    rules::{HeaderRules, RuleHeaders},
    semantics,
};
use crate::{body::Body, build::ImagesConfig};

/// Next's `CACHE_VERSION` of image cache keys (15.5 and 16).
const CACHE_VERSION: &str = "4";
/// Next's limit on the `url` parameter (longer ones are answered 400).
const MAX_URL: usize = 3072;
/// Larger entries are Node's (they are read into memory to be checked).
const MAX_ENTRY: u64 = 4 * 1024 * 1024;
/// An entry this close to its expiry is Node's: Node may find it stale by the time the
/// answer would be made.
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// The most bytes of entries kept in memory.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;
/// How often a kept entry's file is looked at again (ms).
const RECHECK_MS: u64 = 1000;

/// The image optimizer's cache, as far as Rust answers from it.
pub(crate) struct Images {
    /// `{basePath}/_next/image`, and with `trailingSlash` a `/` after it.
    path: String,
    /// `{basePath}/_next/static/media`: urls whose answer is cached as immutable.
    static_media: [String; 2],
    cache_dir: PathBuf,
    formats: Vec<String>,
    content_security_policy: HeaderValue,
    disposition: String,
    /// next.config `headers()` of the image path, set before Next's own.
    rule_headers: HeaderMap,
    entries: moka::sync::Cache<String, Arc<Entry>>,
    pub(crate) optimizations: Arc<Optimizations>,
}

/// One entry of the cache, read and checked.
struct Entry {
    file: PathBuf,
    modified: SystemTime,
    max_age: u64,
    expire_at: SystemTime,
    etag: String,
    content_type: &'static str,
    extension: String,
    body: Bytes,
    /// The answer's headers, made once (the key fixes the url they depend on); `None`
    /// when Rust cannot make them (Node answers).
    headers: Option<HeaderMap>,
    /// The entry's version, as its check against Node is kept.
    variant: VariantKey,
    /// When its file was last seen unchanged (ms since the epoch).
    seen: AtomicU64,
}

/// What a key's folder holds, as far as Rust answers from it.
enum Lookup {
    /// A fresh entry Rust answers (once checked against Node).
    Entry(Arc<Entry>),
    /// Nothing yet: Next will optimize.
    Missing,
    /// An entry Node answers without optimizing: stale (Node answers it at once and
    /// writes it again), not converted, being written, or otherwise not Rust's.
    Node,
}

/// A request for an image, as Rust reads it.
struct Wanted<'a> {
    href: String,
    width: String,
    quality: String,
    format: &'a str,
}

/// What becomes of an image request.
pub(crate) enum ImageAnswer {
    Native(Native),
    /// Node answers from its cache, without optimizing; with `Some`, its answer is
    /// checked.
    Node(Option<Learn>),
    /// Node may optimize: no entry yet, or a request Rust cannot tell the key of.
    Miss(ImageMiss),
}

impl Images {
    /// The image route of an app, or `None` when Next does not optimize at
    /// `/_next/image` from its disk cache (another loader, `unoptimized`, a cache handler
    /// for images), or when middleware or a redirect/rewrite rule claims the route.
    pub(super) fn new(
        config: Option<&ImagesConfig>,
        cache_dir: &Path,
        base_path: &str,
        trailing_slash: bool,
        rules: &HeaderRules,
        claimed: &dyn Fn(&str) -> bool,
        optimizations: Arc<Optimizations>,
    ) -> Option<Images> {
        let config = config?;
        if config.loader != "default" || config.unoptimized || config.custom_cache_handler {
            return None;
        }
        let path = format!(
            "{base_path}/_next/image{}",
            if trailing_slash { "/" } else { "" }
        );
        if claimed(&path) {
            return None;
        }
        let RuleHeaders::Known(rule_headers) = rules.for_path(&path) else {
            return None;
        };
        let disposition = config.content_disposition_type.clone();
        if !matches!(disposition.as_str(), "attachment" | "inline") {
            return None;
        }
        Some(Images {
            path,
            static_media: [
                format!("{base_path}/_next/static/media"),
                format!("{base_path}/_next/static/immutable/media"),
            ],
            cache_dir: cache_dir.join("images"),
            formats: config.formats.clone(),
            content_security_policy: HeaderValue::from_str(&config.content_security_policy).ok()?,
            disposition,
            rule_headers,
            entries: moka::sync::Cache::builder()
                .max_capacity(MEMORY_BUDGET)
                .weigher(|_, entry: &Arc<Entry>| {
                    u32::try_from(entry.body.len()).unwrap_or(u32::MAX)
                })
                .build(),
            optimizations,
        })
    }

    /// Whether `path` (as sent, with basePath) is the image route.
    pub(super) fn is_image_path(&self, path: &str) -> bool {
        path == self.path
    }

    /// The answer to a request of the image route (Next answers any method).
    pub(super) fn answer<B>(
        &self,
        request: &Request<B>,
        compressed: &Arc<Compressed>,
    ) -> ImageAnswer {
        // Next answers other methods as it answers a GET: they may optimize too.
        let plain = request.method() == Method::GET || request.method() == Method::HEAD;
        let Some(wanted) = self.wanted(request).filter(|_| plain) else {
            return ImageAnswer::Miss(self.optimizations.miss(None));
        };
        let key = cache_key(&wanted);
        let entry = match self.entry(&key, &wanted) {
            Lookup::Entry(entry) => entry,
            Lookup::Missing => return ImageAnswer::Miss(self.optimizations.miss(Some(key))),
            Lookup::Node => return ImageAnswer::Node(None),
        };
        let Some(headers) = &entry.headers else {
            return ImageAnswer::Node(None);
        };
        match compressed.verdict(&entry.variant) {
            Verdict::Matched => {
                ImageAnswer::Native(Native::Ready(respond(request, headers.clone(), &entry)))
            }
            Verdict::Refused => ImageAnswer::Node(None),
            // Node's whole answer to a plain GET is what Rust's is checked against (a
            // revalidating browser's 304 shows nothing).
            Verdict::Unknown
                if request.method() == Method::GET
                    && !semantics::is_conditional(request.headers()) =>
            {
                ImageAnswer::Node(Some(compressed.verify(
                    entry.variant.clone(),
                    StatusCode::OK,
                    headers,
                    &entry.body,
                    false,
                )))
            }
            Verdict::Unknown => ImageAnswer::Node(None),
        }
    }

    /// The request's `url`, `w`, `q` and format, when Rust can be sure of Next's key:
    /// each given once, a local `url`, plain numbers and a plain `Accept`.
    fn wanted<'a, B>(&'a self, request: &'a Request<B>) -> Option<Wanted<'a>> {
        let query = request.uri().query()?;
        let (mut href, mut width, mut quality) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "url" => &mut href,
                "w" => &mut width,
                "q" => &mut quality,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        let href = href?.into_owned();
        if !href.starts_with('/') || href.starts_with("//") || href.len() > MAX_URL {
            return None;
        }
        // The numbers as sent, when they are also Next's `parseInt` of them.
        let number = |value: Option<std::borrow::Cow<'_, str>>| {
            value
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= 4
                        && !v.starts_with('0')
                        && v.bytes().all(|b| b.is_ascii_digit())
                })
                .map(|v| v.into_owned())
        };
        let width = number(width)?;
        let quality = number(quality)?;
        let accept = match request.headers().get_all(header::ACCEPT).iter().count() {
            0 => None,
            1 => Some(request.headers().get(header::ACCEPT)?.to_str().ok()?),
            _ => return None,
        };
        let format = accept::supported_format(&self.formats, accept)?;
        Some(Wanted {
            href,
            width,
            quality,
            format,
        })
    }

    /// What `key`'s folder holds: a fresh entry (from memory when its file is unchanged,
    /// else read), nothing yet, or an entry Node answers.
    fn entry(&self, key: &str, wanted: &Wanted<'_>) -> Lookup {
        let now = SystemTime::now();
        if let Some(entry) = self.entries.get(key) {
            // Next writes a fresh entry again only when it lost it (deleted, or evicted
            // from its disk cache): the file is looked at once a second, not per request.
            let now_ms = millis(now);
            let recent = now_ms.saturating_sub(entry.seen.load(Ordering::Relaxed)) < RECHECK_MS;
            let unchanged = recent
                || std::fs::metadata(&entry.file).is_ok_and(|meta| {
                    meta.modified().ok() == Some(entry.modified)
                        && meta.len() == entry.body.len() as u64
                });
            if unchanged && entry.expire_at > now + EXPIRY_MARGIN {
                if !recent {
                    entry.seen.store(now_ms, Ordering::Relaxed);
                }
                return Lookup::Entry(entry);
            }
            self.entries.invalidate(key);
        }
        let mut files = match std::fs::read_dir(self.cache_dir.join(key)) {
            Ok(files) => files,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
            Err(_) => return Lookup::Node,
        };
        let Some(file) = files.next() else {
            return Lookup::Missing;
        };
        let entry = file
            .ok()
            .filter(|_| files.next().is_none())
            .and_then(|file| read_entry(&file, key));
        match entry {
            Some(mut entry) if entry.expire_at > now + EXPIRY_MARGIN => {
                entry.headers = self.headers(wanted, &entry);
                let entry = Arc::new(entry);
                self.entries.insert(key.to_owned(), entry.clone());
                Lookup::Entry(entry)
            }
            // Stale (Node answers it at once and writes it again), or not Rust's.
            _ => Lookup::Node,
        }
    }

    /// Next's headers of a cache hit (`setResponseHeaders`), in its order, after the
    /// next.config header rules.
    fn headers(&self, wanted: &Wanted<'_>, entry: &Entry) -> Option<HeaderMap> {
        let mut headers = self.rule_headers.clone();
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        let immutable = self
            .static_media
            .iter()
            .any(|prefix| wanted.href.starts_with(prefix.as_str()));
        let cache_control = if immutable {
            "public, max-age=315360000, immutable".to_owned()
        } else {
            format!("public, max-age={}, must-revalidate", entry.max_age)
        };
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cache_control).ok()?,
        );
        headers.insert(header::ETAG, HeaderValue::from_str(&entry.etag).ok()?);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(entry.content_type),
        );
        let disposition = format!(
            "{}; filename=\"{}.{}\"",
            self.disposition,
            file_stem(&wanted.href)?,
            entry.extension
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).ok()?,
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            self.content_security_policy.clone(),
        );
        headers.insert("x-nextjs-cache", HeaderValue::from_static("HIT"));
        headers.insert(header::CONTENT_LENGTH, entry.body.len().into());
        Some(headers)
    }
}

/// Next's cache key of a request: base64url(SHA-256(version, url, width, quality,
/// format)), the pieces fed one after the other.
fn cache_key(wanted: &Wanted<'_>) -> String {
    let mut hash = Sha256::new();
    for piece in [
        CACHE_VERSION,
        wanted.href.as_str(),
        wanted.width.as_str(),
        wanted.quality.as_str(),
        wanted.format,
    ] {
        hash.update(piece.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// The name Next gives the download: the url's last segment up to its first dot, when it
/// is plain enough to need no encoding in `Content-Disposition`.
fn file_stem(href: &str) -> Option<&str> {
    let path = href.split(['?', '#']).next()?;
    let last = path.rsplit('/').next()?;
    let stem = last.split('.').next()?;
    let plain = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+()!*'@$&=,;: ".contains(&b));
    plain.then_some(stem)
}

/// The file of a key's folder, when it is Next's optimized output and whole.
fn read_entry(file: &std::fs::DirEntry, key: &str) -> Option<Entry> {
    let name = file.file_name().into_string().ok()?;
    let mut parts = name.splitn(5, '.');
    let max_age: u64 = parts.next()?.parse().ok()?;
    let expire_at: u64 = parts.next()?.parse().ok()?;
    let etag = parts.next()?.to_owned();
    let upstream_etag = parts.next()?;
    let extension = parts.next()?.to_owned();
    // An entry Next did not convert keeps the upstream's ETag: a file still being
    // written could not be told from a whole one.
    if etag == upstream_etag {
        return None;
    }
    let content_type = match extension.as_str() {
        "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "gif" => "image/gif",
        "tiff" => "image/tiff",
        _ => return None,
    };
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 || meta.len() > MAX_ENTRY {
        return None;
    }
    let path = file.path();
    let body = Bytes::from(std::fs::read(&path).ok()?);
    // Next's ETag of an optimized image is the hash of its bytes.
    if URL_SAFE_NO_PAD.encode(Sha256::digest(&body)) != etag {
        tracing::debug!(file = %path.display(), "an image cache entry does not match its ETag (still being written?)");
        return None;
    }
    Some(Entry {
        file: path,
        modified: meta.modified().ok()?,
        max_age,
        expire_at: UNIX_EPOCH + Duration::from_millis(expire_at),
        etag,
        content_type,
        extension,
        body,
        headers: None,
        variant: VariantKey::image(key, &name),
        seen: AtomicU64::new(millis(SystemTime::now())),
    })
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The answer of a hit: `304` when the request's `If-None-Match` names the ETag (Next's
/// `fresh`: no `If-Modified-Since`, no `Cache-Control: no-cache`), else the image (no
/// body for `HEAD`).
fn respond<B>(request: &Request<B>, mut headers: HeaderMap, entry: &Entry) -> Response<Body> {
    if not_modified(request.headers(), &entry.etag) {
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_DISPOSITION,
            header::CONTENT_SECURITY_POLICY,
            header::CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        headers.remove("x-nextjs-cache");
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }
    let body = if request.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.headers_mut() = headers;
    response
}

/// Next's `fresh` for an answer with an ETag and no `Last-Modified`.
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    semantics::fresh(request, Some(etag), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_is_nexts() {
        // Directories `next start` made (15.5 and 16.4) for these requests.
        let key = |href: &str, format| {
            cache_key(&Wanted {
                href: href.to_owned(),
                width: "640".to_owned(),
                quality: "75".to_owned(),
                format,
            })
        };
        assert_eq!(
            key("/images/photo.jpg", ""),
            "0lUwlFSn2qk57YbMKGz-v_1cyK-OHuWv4SZhlwIHvFk"
        );
        assert_eq!(
            key("/images/photo.jpg", "image/webp"),
            "0q0in4vGddJjYa6aENMANcUTLv_sXZHQi76PoIw2Y3k"
        );
        assert_eq!(
            key("/images/photo.jpg?v=1", "image/webp"),
            "LimQfwcsr1S7E3Msjlshg9CuTSIQnasYdwSdoPsY6ls"
        );
    }

    #[test]
    fn conditional_requests_follow_nexts_fresh() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(not_modified(&headers(&[("if-none-match", "abc")]), "abc"));
        assert!(not_modified(&headers(&[("if-none-match", "W/abc")]), "abc"));
        assert!(not_modified(
            &headers(&[("if-none-match", "x, abc")]),
            "abc"
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), "abc"));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"abc\"")]),
            "abc"
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "abc"), ("cache-control", "no-cache")]),
            "abc"
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "abc"), ("if-modified-since", "x")]),
            "abc"
        ));
    }

    #[test]
    fn the_download_name_is_the_urls_first_part() {
        assert_eq!(file_stem("/images/photo.jpg"), Some("photo"));
        assert_eq!(file_stem("/_next/static/media/pic.2b-7.png"), Some("pic"));
        assert_eq!(file_stem("/images/a%20b.jpg"), None);
        assert_eq!(file_stem("/images/.jpg"), None);
    }
}
