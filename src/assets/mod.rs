//! Native responders: what needs no JavaScript is answered by Rust, byte for byte as
//! `next start` answers it.
//!
//! - [`files`]: `{basePath}/_next/static/*` and `public/` files, with the `send` package's
//!   headers (ETag, Last-Modified, 304, HEAD, single ranges, content types);
//! - [`pages`]: prerendered pages, as Next's response cache serves them: App Router HTML
//!   and RSC payloads, Pages Router HTML and `/_next/data` JSON, the not-found page;
//! - [`compressed`]: gzip answers, learned from Node (its zlib's bytes cannot be made in
//!   Rust) and kept once verified.
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
mod pages;
mod rules;
mod semantics;

use std::{
    ops::ControlFlow,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use percent_encoding::percent_decode_str;

use brotli::BrotliAssets;
use compressed::Compressed;
pub(crate) use compressed::Learn;
use files::{FileIndex, FileMatch};
pub(crate) use images::{Flight, ImageMiss, Optimizations};
use images::{ImageAnswer, Images};
use pages::{Kind, PageIndex, Want};
use rules::{HeaderRules, RuleHeaders};

use crate::{
    body::Body,
    build::{self, AppInfo, Manifests},
    cache::{CacheChange, WorkerEvent},
    routes::{Reach, RouteTable},
};

/// A response header that names the responder of a native answer, when
/// [`crate::NextOptions::mark_native_responses`] is on.
pub(crate) const NATIVE_HEADER: HeaderName = HeaderName::from_static("x-tower-next-native");

/// What the responders need of the app's configuration.
pub(crate) struct Settings {
    base_path: String,
    build_id: String,
    trailing_slash: bool,
    powered_by: bool,
    generate_etags: bool,
    compress: bool,
    expire_time: Option<u64>,
    /// Pages may be answered: the worker reports cache changes, and the app has no i18n,
    /// interception routes or Next 15 partial prerendering.
    pages: bool,
    /// RSC requests must carry Next's `_rsc` hash of their router headers
    /// (`experimental.validateRSCRequestHeaders`, on from Next 16).
    validate_rsc: bool,
    /// Percent-encoded paths may be decoded: no header rule or middleware would see the
    /// encoded form differently.
    decode: bool,
    /// Next 16 with Cache Components (partial prerendering on every App Router page): a
    /// page with a postponed shell answers only its segment prefetches natively, and an
    /// RSC request that is not a prefetch is answered from the cache only on the paths in
    /// `static_rsc` (`prefetchDataRoute` in the prerender manifest).
    cache_components: bool,
    static_rsc: std::collections::HashSet<String>,
    /// Requests Next renders on such pages whatever the cache holds (the manifest's
    /// `experimentalBypassFor`): a header, and the pattern its whole value must match.
    bypass: Vec<(HeaderName, Option<build::JsRegex>)>,
}

impl Settings {
    /// Whether Next renders `request` on a Cache Components page rather than answer it
    /// from the cache (a bot that gets blocking metadata, a Server Action).
    fn bypassed<B>(&self, request: &Request<B>) -> bool {
        self.cache_components
            && self.bypass.iter().any(|(name, pattern)| {
                request
                    .headers()
                    .get_all(name)
                    .iter()
                    .any(|value| match pattern {
                        None => true,
                        Some(pattern) => value.to_str().is_ok_and(|v| pattern.is_match(v)),
                    })
            })
    }
}

/// The Cache Components facts of a build: whether they apply (Next 16 with partial
/// prerendering), the paths whose full RSC payload is prerendered, and the bypass rules.
#[allow(clippy::type_complexity)]
fn cache_components(
    info: &AppInfo,
    build: &Manifests,
) -> (
    bool,
    std::collections::HashSet<String>,
    Vec<(HeaderName, Option<build::JsRegex>)>,
) {
    let on = info.config.partial_prerendering && !info.next_version.starts_with("15.");
    if !on {
        return (false, Default::default(), Vec::new());
    }
    let routes = &build.prerender.routes;
    let static_rsc = routes
        .iter()
        .filter(|(_, route)| route.prefetch_data_route.is_some())
        .map(|(path, _)| path.clone())
        .collect();
    let mut bypass = Vec::new();
    let rules = routes
        .values()
        .find(|route| !route.experimental_bypass_for.is_empty())
        .map(|route| route.experimental_bypass_for.clone())
        .unwrap_or_default();
    for rule in rules {
        let Ok(name) = HeaderName::from_bytes(rule.key.as_bytes()) else {
            continue;
        };
        if rule.kind != "header" {
            tracing::info!(kind = %rule.kind, "a bypass rule of a kind tower-next does not model: Cache Components pages are Node's");
            return (false, Default::default(), Vec::new());
        }
        // Next compares user agents ignoring case (`isHtmlLimitedBotUA`).
        let pattern = match rule.value {
            None => None,
            Some(value) => match build::JsRegex::with_flags(&format!("^(?:{value})$"), "i") {
                Ok(pattern) => Some(pattern),
                Err(err) => {
                    tracing::info!(%err, "a bypass rule tower-next cannot read: Cache Components pages are Node's");
                    return (false, Default::default(), Vec::new());
                }
            },
        };
        bypass.push((name, pattern));
    }
    (true, static_rsc, bypass)
}

/// A native answer: ready, or read from disk.
pub(crate) enum Native {
    Ready(Response<Body>),
    Pending(BoxFuture<'static, Response<Body>>),
    /// A partially prerendered page: its head and static shell at once, then the rest of
    /// the page from a worker that resumes the render (see `Next`'s handling).
    Resume(Resume),
}

/// What Rust sends of a partially prerendered page, and what a worker resumes from.
pub(crate) struct Resume {
    /// The response without its body: status and headers.
    pub head: Response<()>,
    /// The static shell, sent first.
    pub shell: Bytes,
    /// The shell's postponed state (Next's `postponed`), sent to the worker.
    pub state: Bytes,
}

impl Native {
    fn ready(response: Response<Body>) -> Native {
        Native::Ready(response)
    }

    fn pending(future: impl Future<Output = Response<Body>> + Send + 'static) -> Native {
        Native::Pending(Box::pin(future))
    }

    /// The response. A [`Native::Resume`] needs a worker: it is answered by `Next`, and
    /// here only with a 500 that says so.
    pub(crate) async fn into_response(self) -> Response<Body> {
        match self {
            Native::Ready(response) => response,
            Native::Pending(future) => future.await,
            Native::Resume(_) => {
                tracing::error!("a partially prerendered page reached a path without workers");
                crate::body::plain_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page needs a worker",
                )
            }
        }
    }

    fn mark(self, marker: Option<&'static str>) -> Native {
        let Some(marker) = marker else {
            return self;
        };
        let mark = move |mut response: Response<Body>| {
            response
                .headers_mut()
                .insert(NATIVE_HEADER, HeaderValue::from_static(marker));
            response
        };
        match self {
            Native::Ready(response) => Native::Ready(mark(response)),
            Native::Pending(future) => Native::pending(async move { mark(future.await) }),
            Native::Resume(mut resume) => {
                resume
                    .head
                    .headers_mut()
                    .insert(NATIVE_HEADER, HeaderValue::from_static(marker));
                Native::Resume(resume)
            }
        }
    }
}

/// A native answer and the name of its responder (for [`NATIVE_HEADER`]).
type Answered = (Native, &'static str);

/// Who answers a request, as the native responders see it.
pub(crate) enum Decision {
    Native(Native),
    /// Node answers; with `Some`, its gzip answer is kept when it is the expected one.
    Node(Option<Learn>),
    /// Node answers an image request that may make it optimize, in turn (see
    /// [`Optimizations`]).
    ImageMiss(ImageMiss),
}

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
        let images = Images::new(
            build.images.as_ref(),
            &dist_dir,
            &settings.base_path,
            settings.trailing_slash,
            &rules,
            &claimed,
            Arc::new(Optimizations::new(
                options
                    .image_optimizations
                    .unwrap_or_else(|| options.worker_count()),
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

/// Whether prerendered pages are answered natively for this app: the worker reports
/// cache changes, and the app has no i18n, interception routes, or Next 15 partial
/// prerendering.
/// Logs why not, when not.
fn pages_modelled(info: &AppInfo, interception: bool) -> bool {
    let config = &info.config;
    // Next 15's partial prerendering (`experimental.ppr`) is not modelled; Next 16's Cache
    // Components are (see `cache_components`).
    let ppr_15 = config.partial_prerendering && info.next_version.starts_with("15.");
    let pages = info.cache_events && config.i18n.is_none() && !ppr_15 && !interception;
    if !pages {
        tracing::info!(
            next = %info.next_version,
            cache_events = info.cache_events,
            i18n = config.i18n.is_some(),
            partial_prerendering = config.partial_prerendering,
            interception,
            "prerendered pages are answered by Next.js (not modelled natively for this app)"
        );
    }
    pages
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
