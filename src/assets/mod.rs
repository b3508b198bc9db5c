//! Native responders: what needs no JavaScript is answered by Rust, byte for byte as
//! `next start` answers it.
//!
//! - [`files`]: `{basePath}/_next/static/*` and `public/` files, with the `send` package's
//!   headers (ETag, Last-Modified, 304, HEAD, single ranges, content types);
//! - [`pages`]: prerendered pages, as Next's response cache serves them: App Router HTML
//!   and RSC payloads, Pages Router HTML and `/_next/data` JSON, the not-found page;
//! - [`images`]: `/_next/image` from Next's image cache, and the line that image requests
//!   which make Node optimize wait in;
//! - [`compressed`]: gzip answers, learned from Node (its zlib's bytes cannot be made in
//!   Rust) and kept once verified, and the checks of native answers against Node's;
//! - [`settings`] and [`native`]: what the responders know of the app, and what they
//!   decide.
//!
//! The decision is made per request from an index built at prepare, without touching the
//! disk (a `public/` file is stat'ed, as `send` does). Whatever the index does not cover
//! with certainty is left to Node.js: other methods, draft-mode and preview cookies,
//! on-demand revalidation and Server Action headers, middleware-matched paths, next.config
//! redirects and rewrites, conditional header rules, i18n, partial prerendering, Next.js
//! versions whose behaviour was not verified, odd spellings of a path.
//!
//! The worker reports each change of Next's response cache
//! ([`crate::cache::CacheChange`]); [`Assets::apply`] keeps the pages current, so a
//! native answer is never older than Next's.

mod brotli;
mod compressed;
mod files;
mod images;
mod native;
mod pages;
mod rules;
mod semantics;
mod settings;

use std::{
    ops::ControlFlow,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use percent_encoding::percent_decode_str;

use brotli::BrotliAssets;
use compressed::Compressed;
pub(crate) use compressed::Learn;
use files::{FileIndex, FileMatch};
pub(crate) use images::{Flight, ImageMiss, Optimizations};
use images::{ImageAnswer, Images};
use native::Answered;
pub(crate) use native::{Decision, Native, Resume};
use pages::{Kind, PageIndex, Want};
use rules::{HeaderRules, RuleHeaders};
pub(crate) use settings::Settings;
use settings::{cache_components, pages_modelled};

use crate::{
    body::Body,
    build::{self, AppInfo, Manifests},
    cache::{CacheChange, WorkerEvent},
    routes::{Reach, RouteTable},
};

/// A response header that names the responder of a native answer, when
/// [`crate::NextOptions::mark_native_responses`] is on.
pub(crate) const NATIVE_HEADER: HeaderName = HeaderName::from_static("x-tower-next-native");

/// The native responders of one app.
pub(crate) struct Assets {
    settings: Settings,
    files: FileIndex,
    /// `/_next/image` answers from Next's image cache, when Next serves that route.
    images: Option<Images>,
    pages: ArcSwap<PageIndex>,
    /// Held while an event is applied: the workers of a pool report side by side, and each
    /// change is made to a copy of the index that replaces it.
    applying: tokio::sync::Mutex<()>,
    rules: HeaderRules,
    routes: Arc<RouteTable>,
    dist_dir: std::path::PathBuf,
    /// The build's manifests, to read the pages again when a worker restarts.
    build: Arc<Manifests>,
    compressed: Arc<Compressed>,
    /// Opt-in brotli bodies of hashed assets (`NextOptions::brotli`).
    brotli: Option<Arc<BrotliAssets>>,
    mark: bool,
    stopped: AtomicBool,
}

impl Assets {
    /// Builds the index from the app's production build. `None` when the Next.js version
    /// was not verified.
    pub(crate) fn load(
        dir: &Path,
        info: &AppInfo,
        build: Arc<Manifests>,
        routes: Arc<RouteTable>,
        options: &crate::NextOptions,
    ) -> Option<Assets> {
        if !build::native_answers_verified(&info.next_version) {
            tracing::info!(
                next = %info.next_version,
                "tower-next answers natively only for Next.js 15 and 16 so far; Next.js answers everything"
            );
            return None;
        }
        if let Some(format) = build.unknown_format() {
            tracing::info!(next = %info.next_version, format, "a build format tower-next was not checked with; Next.js answers everything");
            return None;
        }
        let config = &info.config;
        let dist_dir = config.dist_dir.clone();
        let rules = HeaderRules::new(&build.routes.headers, config.rule_flags());
        let pages = pages_modelled(info, build.interception_routes);
        let (cache_components, static_rsc, bypass) = cache_components(info, &build);
        let settings = Settings {
            base_path: config.base_path.trim_end_matches('/').to_owned(),
            build_id: info.build_id.clone(),
            trailing_slash: config.trailing_slash,
            powered_by: config.powered_by_header,
            generate_etags: config.generate_etags,
            compress: config.compress,
            expire_time: config.expire_time,
            pages,
            validate_rsc: config.validate_rsc_request_headers,
            decode: rules.is_empty() && !routes.has_middleware(),
            cache_components,
            static_rsc,
            bypass,
        };
        let claimed = |path: &str| routes.claimed_by_rules(path);
        let files = if config.i18n.is_some() {
            FileIndex::default()
        } else {
            FileIndex::load(dir, &dist_dir, &settings, &rules, &claimed)
        };
        let page_index = if pages {
            PageIndex::load(
                &dist_dir,
                &build,
                &pages::Context {
                    settings: &settings,
                    rules: &rules,
                    routes: &routes,
                },
            )
        } else {
            PageIndex::default()
        };
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| dist_dir.join("cache"));
        let images = Images::new(
            build.images.as_ref(),
            &cache_dir,
            &settings.base_path,
            settings.trailing_slash,
            &rules,
            &claimed,
            Arc::new(Optimizations::new(
                options
                    .image_optimizations
                    .unwrap_or_else(|| options.worker_count()),
                options.queue_size,
                options.request_timeout,
            )),
        );
        Some(Assets {
            images,
            settings,
            files,
            pages: ArcSwap::from_pointee(page_index),
            applying: tokio::sync::Mutex::new(()),
            rules,
            routes,
            dist_dir,
            build,
            compressed: Arc::default(),
            brotli: (options.brotli_budget > 0).then(|| {
                BrotliAssets::new(usize::try_from(options.brotli_budget).unwrap_or(usize::MAX))
            }),
            mark: options.mark_native,
            stopped: AtomicBool::new(false),
        })
    }

    /// What the pages need of the app beyond their own content.
    fn page_context(&self) -> pages::Context<'_> {
        pages::Context {
            settings: &self.settings,
            rules: &self.rules,
            routes: &self.routes,
        }
    }

    /// No more native answers (the app is shutting down).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Applies an event of the worker to the page index.
    pub(crate) async fn apply(self: &Arc<Self>, event: WorkerEvent) {
        if !self.settings.pages {
            return;
        }
        let _applying = self.applying.lock().await;
        let updated = match event {
            WorkerEvent::Cache(event) => {
                let mut index = PageIndex::clone(&self.pages.load());
                let cx = self.page_context();
                match event.change {
                    CacheChange::Set(entry) => index.apply_set(*entry, &cx),
                    CacheChange::RevalidateTag { tags, at, .. } => {
                        index.apply_revalidate_tags(&tags, at)
                    }
                }
                index
            }
            // A new worker knows only what is on disk: so does the index, read again.
            WorkerEvent::Restarted => {
                let assets = self.clone();
                let reload = tokio::task::spawn_blocking(move || {
                    PageIndex::load(&assets.dist_dir, &assets.build, &assets.page_context())
                });
                match reload.await {
                    Ok(index) => index,
                    Err(err) => {
                        tracing::error!(error = %err, "re-reading the prerendered pages failed; pages are Next's");
                        PageIndex::default()
                    }
                }
            }
        };
        self.pages.store(Arc::new(updated));
    }

    /// Answers a request natively, or says that Node answers.
    pub(crate) fn respond<B>(&self, request: &Request<B>, reach: Reach) -> Decision {
        if self.stopped.load(Ordering::Relaxed) {
            return Decision::Node(None);
        }
        if let Some(images) = &self.images
            && images.is_image_path(request.uri().path())
        {
            return match images.answer(request, &self.compressed) {
                ImageAnswer::Native(native) => {
                    Decision::Native(native.mark(self.mark.then_some("image")))
                }
                ImageAnswer::Node(learn) => Decision::Node(learn),
                ImageAnswer::Miss(miss) => Decision::ImageMiss(miss),
            };
        }
        if !(request.method() == Method::GET || request.method() == Method::HEAD) {
            return Decision::Node(None);
        }
        let mut learn = None;
        let answer = self.answer(request, reach, &mut learn);
        match answer {
            Some((native, marker)) => Decision::Native(native.mark(self.mark.then_some(marker))),
            None => Decision::Node(learn),
        }
    }

    fn answer<B>(
        &self,
        request: &Request<B>,
        reach: Reach,
        learn: &mut Option<Learn>,
    ) -> Option<Answered> {
        let headers = request.headers();
        if INTERNAL_HEADERS
            .iter()
            .any(|name| headers.contains_key(*name))
        {
            return None;
        }
        let raw = request.uri().path();
        let rest = strip_base_path(raw, &self.settings.base_path)?;
        // With header rules or middleware, an encoded spelling may be matched differently
        // from the one the index was checked with: Node answers it.
        if rest.contains('%') && !self.settings.decode {
            return None;
        }

        // Files are looked up as Next looks them up (see `FileIndex::find`).
        if (!rest.starts_with("/_next/") || rest.starts_with("/_next/static/"))
            && let ControlFlow::Break(answer) = self.answer_file(request, rest, learn)
        {
            return answer;
        }

        let decoded = self.decode(rest)?;
        let path = decoded.as_ref();
        // A page is answered here only from its canonical spelling: `next start` answers
        // some other spellings of a static route 404 (`/%70ricing`), some with the page.
        if rest.contains('%') && semantics::encode_uri_path(path) != rest {
            return None;
        }
        if path.starts_with("/_next/") {
            return self.answer_data(request, path, learn);
        }
        self.answer_page(request, reach, raw, path, learn)
    }

    /// The answer of a file at `rest` (the path after basePath, as sent); `Continue` when
    /// no file has that path and it may be a page.
    fn answer_file<B>(
        &self,
        request: &Request<B>,
        rest: &str,
        learn: &mut Option<Learn>,
    ) -> ControlFlow<Option<Answered>> {
        let answer = match self.files.find(rest) {
            FileMatch::Static(file) => {
                let brotli = self.brotli.as_ref();
                files::serve_static(
                    request,
                    file,
                    &self.settings,
                    &self.compressed,
                    brotli,
                    learn,
                )
                .map(|native| (native, "static"))
            }
            FileMatch::Public(file) => {
                files::serve_public(request, file, &self.settings, &self.compressed, learn)
                    .map(|native| (native, "public"))
            }
            FileMatch::Refused => {
                tracing::warn!(
                    path = rest,
                    "refused: a public/ symlink that leads out of the folder"
                );
                Some((self.refused(request), "refused"))
            }
            FileMatch::None if rest.starts_with("/_next/static/") => None,
            FileMatch::None => return ControlFlow::Continue(()),
        };
        ControlFlow::Break(answer)
    }

    /// The answer of a `/_next/` path (decoded): a page's `/_next/data` JSON, or Node's.
    fn answer_data<B>(
        &self,
        request: &Request<B>,
        path: &str,
        learn: &mut Option<Learn>,
    ) -> Option<Answered> {
        // With `RSC: 1`, Next adds the App Router's `Vary` even to a data route.
        if path.starts_with("/_next/data/")
            && !request.headers().contains_key("rsc")
            && self.page_request_allowed(request, false)
        {
            let pages = self.pages.load();
            let page = pages.get_data(path)?;
            let native =
                page.serve(request, Want::Data, &self.settings, &self.compressed, learn)?;
            return Some((native, "data"));
        }
        None
    }

    /// The answer of a page path (decoded): the page's HTML or RSC payload, or Next's 404
    /// page for a path no route claims.
    fn answer_page<B>(
        &self,
        request: &Request<B>,
        reach: Reach,
        raw: &str,
        path: &str,
        learn: &mut Option<Learn>,
    ) -> Option<Answered> {
        let headers = request.headers();
        let want = match headers.get("rsc") {
            None => Want::Html,
            Some(value) if value == "1" => {
                let prefetch = headers
                    .get("next-router-prefetch")
                    .is_some_and(|v| v == "1");
                match headers.get("next-router-segment-prefetch") {
                    None => Want::Rsc { prefetch },
                    // Next reads the segment header only on a prefetch; without one the
                    // request is an RSC request like any other.
                    Some(_) if !self.settings.cache_components => return None,
                    Some(_) if !prefetch => Want::Rsc { prefetch },
                    Some(segment) => Want::Segment(segment.to_str().ok()?.to_owned()),
                }
            }
            Some(_) => return None,
        };
        let rsc = want != Want::Html;
        // Next 16 takes a `.rsc` path for an RSC request of the page without it (15 answers
        // it 404): Node answers, whatever the index holds under that name.
        if !self.page_request_allowed(request, rsc)
            || path.ends_with(".rsc")
            || self.settings.bypassed(request)
        {
            return None;
        }
        let pages = self.pages.load();
        if let Some(key) = self.page_key(path)
            && let Some(page) = pages.get(key)
        {
            if rsc
                && (page.kind() != Kind::App
                    || (self.settings.validate_rsc
                        && !semantics::rsc_hash_matches(headers, request.uri().query())))
            {
                // Next redirects an RSC request without the right `_rsc` to one with it.
                return None;
            }
            let native = page.serve(request, want, &self.settings, &self.compressed, learn)?;
            return Some((native, "page"));
        }
        if reach == Reach::Unclaimed && self.unknown_path_is_plain(raw) {
            let page = pages.get("/_not-found")?;
            let want = match want {
                Want::Html => Want::Unknown { rsc: false },
                Want::Rsc { .. } => Want::Unknown { rsc: true },
                // Next answers the 404 page's segment, under 404: left to Node.
                _ => return None,
            };
            let native = page.serve(request, want, &self.settings, &self.compressed, learn)?;
            return Some((native, "not-found"));
        }
        None
    }

    /// The path, percent-decoded when that is safe; `None` for spellings that Next might
    /// read differently (encoded separators or dots, `..` segments, backslashes, NUL).
    fn decode<'a>(&self, path: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        if path.contains('\\') || path.contains("//") {
            return None;
        }
        let decoded = if path.contains('%') {
            let lower = path.to_ascii_lowercase();
            if ["%2f", "%5c", "%00", "%2e"]
                .iter()
                .any(|e| lower.contains(e))
            {
                return None;
            }
            std::borrow::Cow::Owned(percent_decode_str(path).decode_utf8().ok()?.into_owned())
        } else {
            std::borrow::Cow::Borrowed(path)
        };
        let bad_segment = decoded
            .split('/')
            .any(|segment| segment == ".." || segment == "." || segment.contains('\0'));
        (!bad_segment).then_some(decoded)
    }

    /// Pages need a request without draft-mode/preview cookies and without the query
    /// keys Next.js acts on.
    /// No cookie or query parameter that Next would act on (`_rsc`, its cache buster, is
    /// allowed on RSC requests).
    fn page_request_allowed<B>(&self, request: &Request<B>, rsc: bool) -> bool {
        if !self.settings.pages {
            return false;
        }
        let cookies = request.headers().get_all(header::COOKIE);
        if cookies.iter().any(|cookie| {
            let cookie = cookie.as_bytes();
            contains(cookie, b"__prerender_bypass") || contains(cookie, b"__next_preview_data")
        }) {
            return false;
        }
        request.uri().query().is_none_or(|query| {
            query.split('&').all(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                (rsc && key == "_rsc")
                    || !(key.starts_with('_') || key.contains('%') || key == "amp")
            })
        })
    }

    /// The page path a request path (after basePath) stands for, by next.config's
    /// `trailingSlash`: other spellings get Next's redirect.
    fn page_key<'a>(&self, rest: &'a str) -> Option<&'a str> {
        if self.settings.trailing_slash {
            match rest {
                "" => None,
                "/" => Some("/"),
                _ => rest.strip_suffix('/').filter(|key| !key.ends_with('/')),
            }
        } else {
            match rest {
                "" => Some("/"),
                "/" if self.settings.base_path.is_empty() => Some("/"),
                _ if rest.ends_with('/') => None,
                _ => Some(rest),
            }
        }
    }

    /// A path no route claims, spelled so that Next would answer it with its 404 page
    /// (not a redirect, nor one of its own status pages), and that no header rule touches.
    fn unknown_path_is_plain(&self, raw: &str) -> bool {
        let canonical = raw == "/" || !raw.ends_with('/');
        let rest = strip_base_path(raw, &self.settings.base_path).unwrap_or(raw);
        canonical
            && !raw.contains('%')
            && !raw.contains("//")
            && !raw.contains('\\')
            && !STATUS_PAGES.contains(&rest)
            && matches!(self.rules.for_path(raw), RuleHeaders::Known(ref h) if h.is_empty())
    }

    /// The answer to a refused path: Next's 404 page when Rust has it, else a plain 404.
    /// Never Node's: it would serve the file.
    fn refused<B>(&self, request: &Request<B>) -> Native {
        let pages = self.pages.load();
        if let Some(page) = pages.get("/_not-found") {
            let want = Want::Unknown { rsc: false };
            if let Some(native) =
                page.serve(request, want, &self.settings, &self.compressed, &mut None)
            {
                return native;
            }
        }
        Native::ready(crate::body::plain_response(
            StatusCode::NOT_FOUND,
            "Not Found",
        ))
    }
}

/// Paths that try to leave a folder: a `..` segment (also spelled `%2e%2e`). Refused with
/// 400 before anything looks them up, natively or in Node. `next start` answers these 404,
/// a redirect or the page of the normalised path; refusing them is stricter on purpose.
/// Encoded separators (`%2f`, `%5c`) and NUL are not refused: in a dynamic segment they
/// are part of the parameter (`/wiki/AC%2FDC`), Next's file lookups match names exactly
/// (see `FileIndex::find`), and native lookups leave such spellings to Node. Backslashes
/// are Node's too: Next redirects them to the `/` spelling before anything else.
pub(crate) fn is_traversal(path: &str) -> bool {
    path.to_ascii_lowercase()
        .replace("%2e", ".")
        .split('/')
        .any(|segment| segment == "..")
}

/// The answer to a traversal attempt.
pub(crate) fn refuse_traversal() -> Response<Body> {
    crate::body::plain_response(StatusCode::BAD_REQUEST, "Bad Request")
}

/// Request headers with which Next.js does something other than serve its cache.
const INTERNAL_HEADERS: [&str; 7] = [
    "x-prerender-revalidate",
    "x-prerender-revalidate-if-generated",
    "next-action",
    "x-middleware-prefetch",
    "x-matched-path",
    "x-now-route-matches",
    "x-invoke-path",
];

/// Paths Next answers with one of its own pages, not as unknown.
const STATUS_PAGES: [&str; 7] = [
    "/404",
    "/500",
    "/_error",
    "/_app",
    "/_document",
    "/_not-found",
    "/index",
];

/// A native response with its status and prepared headers.
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `path` without `base_path` (which must be a whole segment), `""` for the base itself.
fn strip_base_path<'a>(path: &'a str, base_path: &str) -> Option<&'a str> {
    if base_path.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(base_path)? {
        rest if rest.is_empty() || rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether the `compression` middleware would compress an answer with these headers
/// (its content type is compressible, and no `Cache-Control: no-transform`).
fn compressible(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let cache_control = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok());
    semantics::compressible(content_type, cache_control)
}

/// The `Vary: Accept-Encoding` the `compression` middleware adds (when it is on) to the
/// answers it could compress.
fn compression_vary(headers: &mut HeaderMap, settings: &Settings) {
    if settings.compress && compressible(headers) {
        vary_accept_encoding(headers);
    }
}

/// The `vary` package's append of `Accept-Encoding`, as `compression` does it.
fn vary_accept_encoding(headers: &mut HeaderMap) {
    match headers.get(header::VARY).and_then(|v| v.to_str().ok()) {
        None => {
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        Some(existing) => {
            let present = existing.split(',').any(|field| {
                field.trim() == "*" || field.trim().eq_ignore_ascii_case("accept-encoding")
            });
            if !present {
                let value = format!("{existing}, Accept-Encoding");
                headers.insert(header::VARY, semantics::value(&value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_appended_once() {
        let mut headers = HeaderMap::new();
        vary_accept_encoding(&mut headers);
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        vary_accept_encoding(&mut headers);
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("rsc"));
        vary_accept_encoding(&mut headers);
        assert_eq!(headers[header::VARY], "rsc, Accept-Encoding");
    }

    #[test]
    fn traversal_spellings_are_recognised() {
        for path in [
            "/_next/static/../../package.json",
            "/_next/static/%2e%2e/%2e%2e/package.json",
            "/_next/static/%2E%2E/package.json",
            "/..",
        ] {
            assert!(is_traversal(path), "{path}");
        }
        // Parameters and spellings Next answers itself (a page, a 404 or a redirect).
        for path in [
            "/",
            "/about",
            "/a..b",
            "/.well-known/x",
            "/docs/a%20b",
            "/%61bout",
            "/wiki/AC%2FDC",
            "/wiki/back%5Cslash",
            "/blog/..%2f..%2fpackage.json",
            "/images%2fdot.svg",
            "/about\\..\\x",
            "/hello.txt%00",
        ] {
            assert!(!is_traversal(path), "{path}");
        }
    }

    #[test]
    fn base_path_is_a_whole_segment() {
        assert_eq!(strip_base_path("/docs/a", "/docs"), Some("/a"));
        assert_eq!(strip_base_path("/docs", "/docs"), Some(""));
        assert_eq!(strip_base_path("/docsx", "/docs"), None);
        assert_eq!(strip_base_path("/a", ""), Some("/a"));
    }
}
