//! Prerendered pages: the responses Next.js serves from its response cache, and how they
//! change while the app runs.
//!
//! At prepare the index is read from the build (and from the runtime cache entries an
//! earlier run of the same build wrote, which Next.js prefers). While the app runs, the
//! worker reports every write to its response cache and every tag invalidation
//! ([`crate::cache::CacheChange`]): a written entry replaces the page, an invalidated
//! page is Node's until Next.js writes it again. An ISR page past its revalidate time is
//! Node's too: Next.js answers it stale and regenerates it in the background, and the new
//! entry makes it native again.
//!
//! The responses reproduce `next start`'s (Next.js 15): the app-page and pages handlers,
//! `sendRenderResult`, and the `compression` middleware.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;

use super::{
    Native, Settings,
    compressed::{Compressed, Learn, VariantKey, chunked},
    response,
    rules::{HeaderRules, RuleHeaders},
    semantics::{self, Encoding},
};
use crate::{body::Body, build::Manifests, cache::CachedEntry, routes::RouteTable};

/// The `Vary` Next.js sets on App Router pages (without interception routes).
const APP_VARY: &str =
    "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch";
const HTML_TYPE: &str = "text/html; charset=utf-8";
const RSC_TYPE: &str = "text/x-component";
const JSON_TYPE: &str = "application/json; charset=utf-8";
/// `Cache-Control` of Next's 404 for an unknown path.
const NO_STORE: &str = "private, no-cache, no-store, max-age=0, must-revalidate";
const ONE_YEAR: u64 = 31_536_000;

/// Which handler serves a page in Next.js.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// App Router page (`.html` + `.rsc` + `.meta`).
    App,
    /// Pages Router page without data (Automatic Static Optimization, `.html` only).
    PagesStatic,
    /// Pages Router page with `getStaticProps` (`.html` + `.json`).
    PagesProps,
}

/// `revalidate` of a cache entry: seconds, or never (`false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheLife {
    revalidate: Option<u64>,
    expire: Option<u64>,
}

/// One answer of a page: its body and prepared headers.
struct Variant {
    body: Bytes,
    /// Headers of the full answer (200, or the entry's status).
    headers: HeaderMap,
    /// Headers of a 304, when the answer has an ETag.
    not_modified: Option<HeaderMap>,
    /// Sent without `Content-Length`, as Next streams it.
    chunked: bool,
}

/// The `/_next/data` answer of a Pages Router page, without and with
/// `x-nextjs-matched-path` (the page, e.g. `/posts/[id]`). Next's router marks a data
/// request, and so names the page, when the client sends `x-nextjs-data`, when the app
/// has middleware, and when the path matched a dynamic route.
struct Data {
    unmarked: Variant,
    matched: Variant,
    always_matched: bool,
}

impl Data {
    fn for_request(&self, request_headers: &HeaderMap) -> (&Variant, &'static str) {
        if self.always_matched || request_headers.contains_key("x-nextjs-data") {
            (&self.matched, "data-matched")
        } else {
            (&self.unmarked, "data")
        }
    }
}

/// A page Rust answers for.
pub(crate) struct Page {
    /// Changes whenever the content does (keys the learned gzip answers).
    id: u64,
    path: String,
    kind: Kind,
    status: StatusCode,
    tags: Vec<String>,
    /// Until when (ms since the epoch) Next.js considers the entry fresh; `None`: until it
    /// is invalidated.
    fresh_until: Option<u64>,
    html: Variant,
    rsc: Option<Variant>,
    data: Option<Data>,
    /// For `/_not-found`: Next's 404 for unknown paths (HTML, RSC).
    unknown: Option<(Variant, Option<Variant>)>,
}

/// A page path's state.
#[derive(Clone)]
pub(crate) enum Slot {
    Native(Arc<Page>),
    /// Next.js answers (invalidated and not yet written again, or not servable).
    Node,
}

impl Slot {
    /// The page made from `source`, or Node's when there is none or Rust cannot answer
    /// it as Next would.
    fn of(path: &str, source: Option<Source>, cx: &Context<'_>) -> Slot {
        source
            .and_then(|source| Page::new(path, source, cx))
            .map_or(Slot::Node, |page| Slot::Native(Arc::new(page)))
    }
}

impl CacheLife {
    /// A lifetime as Next stores it: `revalidate` in seconds or `false` (never), and
    /// `expire` in seconds.
    fn stored(revalidate: &serde_json::Value, expire: Option<u64>) -> Option<CacheLife> {
        let revalidate = match revalidate {
            serde_json::Value::Number(n) => Some(n.as_u64()?),
            serde_json::Value::Bool(false) => None,
            _ => return None,
        };
        Some(CacheLife { revalidate, expire })
    }
}

/// The pages Rust knows, by path (after basePath, without trailing slash).
#[derive(Clone, Default)]
pub(crate) struct PageIndex {
    slots: HashMap<String, Slot>,
    /// The page path of each `/_next/data/<build>/<page>.json` path.
    data: HashMap<String, String>,
    /// When the write applied last to each path began (ms since the epoch). Workers of a
    /// pool report on separate channels: a write that began earlier and is reported later
    /// is older than what the index holds.
    written: HashMap<String, u64>,
    /// When each tag was last revalidated (ms since the epoch): an entry with the tag
    /// written before is stale, however late its report arrives.
    revalidated: HashMap<String, u64>,
}

/// What part of a page a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Html,
    Rsc,
    Data,
    /// Next's 404 page for a path no route claims.
    Unknown {
        rsc: bool,
    },
}

static IDS: AtomicU64 = AtomicU64::new(1);

/// Everything a page is made from.
pub(crate) struct Source {
    pub kind: Kind,
    pub html: String,
    pub rsc: Option<Bytes>,
    pub data: Option<String>,
    pub entry_headers: serde_json::Map<String, serde_json::Value>,
    pub status: Option<u16>,
    pub life: Option<CacheLife>,
    pub last_modified: u64,
}

/// What a page needs of the app beyond its own content.
pub(crate) struct Context<'a> {
    pub settings: &'a Settings,
    pub rules: &'a HeaderRules,
    pub routes: &'a RouteTable,
}

impl PageIndex {
    /// Reads the prerendered pages of the build in `dist_dir`, as its manifests list them.
    pub(crate) fn load(dist_dir: &Path, build: &Manifests, cx: &Context<'_>) -> PageIndex {
        let mut index = PageIndex::default();
        let server = dist_dir.join("server");
        for (path, route) in &build.prerender.routes {
            let kind = match route.data_route.as_deref() {
                Some(data) if data.ends_with(".rsc") => Kind::App,
                Some(data) if data.ends_with(".json") => Kind::PagesProps,
                _ => continue, // route handlers, or unknown
            };
            let life = CacheLife {
                revalidate: match route.initial_revalidate_seconds {
                    serde_json::Value::Number(ref n) => n.as_u64(),
                    _ => None,
                },
                expire: route.initial_expire_seconds,
            };
            if life.revalidate == Some(0) {
                continue;
            }
            let folder = server.join(if kind == Kind::App { "app" } else { "pages" });
            let slot = Slot::of(path, read_entry(&server, &folder, path, kind, life), cx);
            index.insert(path.clone(), slot, cx);
        }
        // App Router pages rendered on demand by an earlier process of this build. Next 16
        // stores such an entry's lifetime in its `.meta` and answers it from disk as a HIT
        // without writing it again, so no worker would report it. (Next 15 keeps the
        // lifetime in memory and answers the entry STALE once, which reports it.)
        for (path, stem) in runtime_entries(&server.join("route-cache/APP_PAGE")) {
            if index.slots.contains_key(&path) {
                continue;
            }
            let Some(meta) = read_json::<Meta>(&with_suffix(&stem, "meta")) else {
                continue;
            };
            let Some(life) = meta
                .cache_control
                .as_ref()
                .and_then(|stored| CacheLife::stored(&stored.revalidate, stored.expire))
            else {
                continue;
            };
            if life.revalidate == Some(0) {
                continue;
            }
            let slot = Slot::of(&path, read_stem(&stem, meta, Kind::App, life), cx);
            index.insert(path, slot, cx);
        }
        for (path, file) in &build.pages {
            if !file.ends_with(".html") || ["/404", "/500", "/_error"].contains(&path.as_str()) {
                continue;
            }
            if index.slots.contains_key(path) {
                continue;
            }
            let Some(html) = read_html(&server.join(file)) else {
                continue;
            };
            let source = Source {
                kind: Kind::PagesStatic,
                html,
                rsc: None,
                data: None,
                entry_headers: Default::default(),
                status: None,
                life: None,
                last_modified: 0,
            };
            let slot = Slot::of(path, Some(source), cx);
            index.insert(path.clone(), slot, cx);
        }
        index
    }

    fn insert(&mut self, path: String, slot: Slot, cx: &Context<'_>) {
        if let Slot::Native(page) = &slot
            && page.data.is_some()
        {
            self.data
                .insert(data_path(&cx.settings.build_id, &path), path.clone());
        }
        self.slots.insert(path, slot);
    }

    /// The page at `path`, if Rust may answer for it.
    pub(crate) fn get(&self, path: &str) -> Option<&Arc<Page>> {
        match self.slots.get(path)? {
            Slot::Native(page) => Some(page),
            Slot::Node => None,
        }
    }

    /// The page whose data route is `path` (`/_next/data/<build>/<page>.json`).
    pub(crate) fn get_data(&self, path: &str) -> Option<&Arc<Page>> {
        self.get(self.data.get(path)?)
    }

    /// Applies a write to Next's response cache.
    pub(crate) fn apply_set(&mut self, entry: CachedEntry, cx: &Context<'_>) {
        let path = entry.pathname.clone();
        let at = entry.at;
        if self.written.get(&path).is_some_and(|&newer| newer > at) {
            tracing::debug!(%path, "an older write of the page reported late; ignored");
            return;
        }
        self.written.insert(path.clone(), at);
        let mut slot = self.slot_for(entry, cx);
        if let Slot::Native(page) = &slot
            && page
                .tags
                .iter()
                .any(|tag| self.revalidated.get(tag).is_some_and(|&time| time >= at))
        {
            slot = Slot::Node;
        }
        if let Slot::Native(page) = &slot {
            tracing::debug!(path = %page.path, "page replaced by Next.js");
        } else {
            tracing::debug!(%path, "page left to Next.js");
        }
        self.insert(path, slot, cx);
    }

    fn slot_for(&self, entry: CachedEntry, cx: &Context<'_>) -> Slot {
        let kind = match entry.kind.as_deref() {
            Some("APP_PAGE") => Kind::App,
            Some("PAGES") => Kind::PagesProps,
            _ => return Slot::Node,
        };
        let known = match self.slots.get(&entry.pathname) {
            Some(Slot::Native(page)) => Some(page.kind),
            _ => None,
        };
        if known.is_some_and(|k| k != kind) || entry.fallback || entry.postponed {
            return Slot::Node;
        }
        let life = entry.life();
        let (Some(html), Some(life)) = (entry.html, life) else {
            return Slot::Node;
        };
        if life.revalidate == Some(0) {
            return Slot::Node;
        }
        let rsc = match (&entry.rsc, kind) {
            (Some(encoded), Kind::App) => match BASE64.decode(encoded) {
                Ok(bytes) => Some(Bytes::from(bytes)),
                Err(_) => return Slot::Node,
            },
            _ => None,
        };
        let source = Source {
            kind,
            html,
            rsc,
            data: entry.page_data,
            entry_headers: entry.headers.unwrap_or_default(),
            status: entry.status,
            life: Some(life),
            last_modified: entry.at,
        };
        Slot::of(&entry.pathname, Some(source), cx)
    }

    /// Applies `revalidateTag(tags)`: the pages carrying one of them are Node's until
    /// Next.js writes them again.
    pub(crate) fn apply_revalidate_tags(&mut self, tags: &[String], at: u64) {
        for tag in tags {
            let time = self.revalidated.entry(tag.clone()).or_default();
            *time = (*time).max(at);
        }
        for slot in self.slots.values_mut() {
            if let Slot::Native(page) = slot
                && page.tags.iter().any(|tag| tags.contains(tag))
            {
                tracing::debug!(path = %page.path, ?tags, "page invalidated by tag");
                *slot = Slot::Node;
            }
        }
    }
}

impl Page {
    /// A page from its content, or `None` when Next.js would not answer it as modelled
    /// here (a status other than 200/404, content that is not UTF-8, a path taken by
    /// middleware or a rule, or conditional header rules).
    fn new(path: &str, source: Source, cx: &Context<'_>) -> Option<Page> {
        let settings = cx.settings;
        let full = format!(
            "{}{}",
            settings.base_path,
            if path == "/" && !settings.base_path.is_empty() {
                ""
            } else {
                path
            }
        );
        if cx.routes.claimed_by_rules(&full) {
            return None;
        }
        let RuleHeaders::Known(rules) = cx.rules.for_path(&full) else {
            return None;
        };
        let status = match (source.status, source.kind) {
            (None, _) | (Some(200), _) => StatusCode::OK,
            (Some(404), Kind::App) => StatusCode::NOT_FOUND,
            _ => return None,
        };
        let life = source.life;
        let fresh_until = life
            .and_then(|l| l.revalidate)
            .map(|seconds| source.last_modified.saturating_add(seconds * 1000));
        let tags: Vec<String> = match source.entry_headers.get("x-next-cache-tags") {
            Some(serde_json::Value::String(tags)) => tags.split(',').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let entry_headers = entry_headers(&source.entry_headers)?;
        let cache_control = life.map(|l| cache_control(l, settings.expire_time));

        let (html, rsc, data, unknown) = match source.kind {
            Kind::App => {
                let html = app_variant(
                    &rules,
                    &entry_headers,
                    cache_control.as_deref(),
                    Bytes::from(source.html.clone().into_bytes()),
                    Some(semantics::page_etag(&source.html)),
                    true,
                    settings,
                );
                let rsc = source.rsc.clone().map(|body| {
                    app_variant(
                        &rules,
                        &entry_headers,
                        cache_control.as_deref(),
                        body,
                        None,
                        false,
                        settings,
                    )
                });
                // Next's answer to a path nothing claims renders `/_not-found` under
                // `Cache-Control: private, no-cache, ...`.
                let unknown = (path == "/_not-found").then(|| {
                    let html = app_variant(
                        &HeaderMap::new(),
                        &entry_headers,
                        Some(NO_STORE),
                        Bytes::from(source.html.clone().into_bytes()),
                        Some(semantics::page_etag(&source.html)),
                        true,
                        settings,
                    );
                    let rsc = source.rsc.clone().map(|body| {
                        app_variant(
                            &HeaderMap::new(),
                            &entry_headers,
                            Some(NO_STORE),
                            body,
                            None,
                            false,
                            settings,
                        )
                    });
                    (html, rsc)
                });
                (html, rsc, None, unknown)
            }
            Kind::PagesStatic | Kind::PagesProps => {
                let props = source.kind == Kind::PagesProps;
                let html = pages_variant(
                    &rules,
                    props,
                    None,
                    Bytes::from(source.html.clone().into_bytes()),
                    Render {
                        content_type: HTML_TYPE,
                        cache_control: props.then_some(cache_control.as_deref()).flatten(),
                        etag: Some(semantics::page_etag(&source.html)),
                        chunked: false,
                    },
                    settings,
                );
                let data = match (&source.data, props) {
                    (Some(json), true) => {
                        let data_path = data_path(&settings.build_id, path);
                        // Rules are matched against the data path in Next; only rule-free
                        // data routes are answered here.
                        let data_rules = cx
                            .rules
                            .for_path(&format!("{}{data_path}", settings.base_path));
                        match data_rules {
                            RuleHeaders::Known(data_rules)
                                if data_rules.is_empty()
                                    && rules.is_empty()
                                    && !cx.routes.claimed_by_rules(&format!(
                                        "{}{data_path}",
                                        settings.base_path
                                    )) =>
                            {
                                let route = cx.routes.pages_route(path)?;
                                let variant = |matched: Option<&str>| {
                                    pages_variant(
                                        &data_rules,
                                        true,
                                        matched,
                                        Bytes::from(json.clone().into_bytes()),
                                        Render {
                                            content_type: JSON_TYPE,
                                            cache_control: cache_control.as_deref(),
                                            etag: Some(semantics::page_etag(json)),
                                            chunked: false,
                                        },
                                        settings,
                                    )
                                };
                                Some(Data {
                                    unmarked: variant(None),
                                    matched: variant(Some(route)),
                                    always_matched: cx.routes.has_middleware() || route != path,
                                })
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                (html, None, data, None)
            }
        };
        Some(Page {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            kind: source.kind,
            status,
            tags,
            fresh_until,
            html,
            rsc,
            data,
            unknown,
        })
    }

    /// The page's kind.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Answers a request for this page, or `None` to let Node answer. `learn` receives
    /// what Node's gzip answer must be to be kept, when that is why Node answers.
    pub(crate) fn serve<B>(
        &self,
        request: &Request<B>,
        want: Want,
        settings: &Settings,
        compressed: &Arc<Compressed>,
        learn: &mut Option<Learn>,
    ) -> Option<Native> {
        if let Some(until) = self.fresh_until
            && semantics::millis(SystemTime::now()) >= until
        {
            return None; // stale: Next answers it and regenerates it
        }
        let (variant, name) = match want {
            Want::Html => (&self.html, "html"),
            Want::Rsc => (self.rsc.as_ref()?, "rsc"),
            Want::Data => self.data.as_ref()?.for_request(request.headers()),
            Want::Unknown { rsc: false } => (&self.unknown.as_ref()?.0, "unknown-html"),
            Want::Unknown { rsc: true } => (self.unknown.as_ref()?.1.as_ref()?, "unknown-rsc"),
        };
        let status = match want {
            Want::Data => StatusCode::OK,
            _ => self.status,
        };
        let head = request.method() == Method::HEAD;
        if head && variant.chunked {
            return None;
        }
        let request_headers = request.headers();
        if let Some(not_modified) = &variant.not_modified {
            let etag = not_modified.get(header::ETAG).and_then(|v| v.to_str().ok());
            if semantics::fresh(request_headers, etag, None) {
                return Some(Native::ready(response(
                    StatusCode::NOT_MODIFIED,
                    not_modified.clone(),
                    Body::empty(),
                )));
            }
        }
        // `compression` compresses a streamed body, or one of at least its threshold.
        let compresses = settings.compress
            && !head
            && (variant.chunked || variant.body.len() >= semantics::COMPRESSION_THRESHOLD)
            && super::compressible(&variant.headers);
        if compresses {
            match semantics::negotiate(request_headers) {
                Encoding::Identity => {}
                Encoding::Gzip => {
                    let key = VariantKey::page(&self.path, name, self.id);
                    return compressed.answer_or_learn(
                        key,
                        status,
                        &variant.headers,
                        &variant.body,
                        request.method(),
                        learn,
                    );
                }
                Encoding::Deflate => return None,
            }
        }
        let body = if head {
            Body::empty()
        } else if variant.chunked {
            chunked(variant.body.clone())
        } else {
            Body::full(variant.body.clone())
        };
        Some(Native::ready(response(
            status,
            variant.headers.clone(),
            body,
        )))
    }
}

/// An App Router answer: the app-page handler's headers, then `sendRenderResult`'s.
fn app_variant(
    rules: &HeaderMap,
    entry_headers: &[(HeaderName, HeaderValue)],
    cache_control: Option<&str>,
    body: Bytes,
    etag: Option<String>,
    html: bool,
    settings: &Settings,
) -> Variant {
    let mut headers = rules.clone();
    headers.insert(header::VARY, HeaderValue::from_static(APP_VARY));
    headers.insert(
        HeaderName::from_static("x-nextjs-cache"),
        HeaderValue::from_static("HIT"),
    );
    headers.insert(
        HeaderName::from_static("x-nextjs-prerender"),
        HeaderValue::from_static("1"),
    );
    for (name, value) in entry_headers {
        headers.append(name.clone(), value.clone());
    }
    // The HTML is a string payload; the RSC payload a buffer, which Next streams.
    let render = Render {
        content_type: if html { HTML_TYPE } else { RSC_TYPE },
        cache_control,
        etag,
        chunked: !html,
    };
    send_render_result(headers, body, render, settings)
}

/// A Pages Router answer (HTML or `/_next/data` JSON): the pages handler's headers, then
/// `sendRenderResult`'s.
fn pages_variant(
    rules: &HeaderMap,
    props: bool,
    data_of: Option<&str>,
    body: Bytes,
    render: Render<'_>,
    settings: &Settings,
) -> Variant {
    let mut headers = rules.clone();
    if let Some(page) = data_of {
        headers.insert(
            HeaderName::from_static("x-nextjs-matched-path"),
            semantics::value(page),
        );
    }
    if props {
        headers.insert(
            HeaderName::from_static("x-nextjs-cache"),
            HeaderValue::from_static("HIT"),
        );
    }
    send_render_result(headers, body, render, settings)
}

/// What `sendRenderResult` is given besides the response so far.
struct Render<'a> {
    content_type: &'static str,
    cache_control: Option<&'a str>,
    etag: Option<String>,
    chunked: bool,
}

/// Next's `sendRenderResult` (`next/dist/server/send-payload.js`), then the `compression`
/// middleware's `Vary`: the headers of the full answer and, when it has an ETag, of a 304.
fn send_render_result(
    mut headers: HeaderMap,
    body: Bytes,
    render: Render<'_>,
    settings: &Settings,
) -> Variant {
    if render.content_type == HTML_TYPE && settings.powered_by {
        headers.insert(
            HeaderName::from_static("x-powered-by"),
            HeaderValue::from_static("Next.js"),
        );
    }
    if let Some(cache_control) = render.cache_control
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        headers.insert(header::CACHE_CONTROL, semantics::value(cache_control));
    }
    let etag = render.etag.filter(|_| settings.generate_etags);
    if let Some(etag) = &etag {
        headers.insert(header::ETAG, semantics::value(etag));
    }
    let not_modified = etag.is_some().then(|| headers.clone());
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(render.content_type));
    if !render.chunked {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    super::compression_vary(&mut headers, settings);
    Variant {
        body,
        headers,
        not_modified,
        chunked: render.chunked,
    }
}

/// `getCacheControlHeader` of `next/dist/server/lib/cache-control.js`.
fn cache_control(life: CacheLife, expire_time: Option<u64>) -> String {
    match life.revalidate {
        Some(revalidate) => {
            let expire = life.expire.or(expire_time);
            match expire {
                Some(expire) if revalidate < expire => {
                    format!(
                        "s-maxage={revalidate}, stale-while-revalidate={}",
                        expire - revalidate
                    )
                }
                _ => format!("s-maxage={revalidate}"),
            }
        }
        None => format!("s-maxage={ONE_YEAR}"),
    }
}

/// The headers a cache entry carries (`.meta` or the worker's entry), as Next appends
/// them; `x-next-cache-tags` is dropped (only minimal mode sends it). `None` when a value
/// is not a valid header.
fn entry_headers(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let mut headers = Vec::new();
    for (name, value) in map {
        if name.eq_ignore_ascii_case("x-next-cache-tags") {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let values: Vec<String> = match value {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Number(n) => vec![n.to_string()],
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
            serde_json::Value::Null => continue,
            _ => return None,
        };
        for value in values {
            headers.push((name.clone(), HeaderValue::from_str(&value).ok()?));
        }
    }
    Some(headers)
}

/// `/_next/data/<build>/<page>.json` for a page path.
fn data_path(build_id: &str, page: &str) -> String {
    let page = if page == "/" { "/index" } else { page };
    format!("/_next/data/{build_id}{page}.json")
}

/// Next's `normalizePagePath`: the file name of a page path.
fn file_stem(path: &str) -> String {
    if path == "/" {
        "/index".into()
    } else if path == "/index" || path.starts_with("/index/") {
        format!("/index{path}")
    } else {
        path.to_owned()
    }
}

/// The page path a cache file stem stands for: the inverse of [`file_stem`].
fn page_path(stem: &str) -> String {
    match stem.strip_prefix("/index") {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.into(),
        _ => stem.into(),
    }
}

/// The runtime entries under `route-cache/APP_PAGE` (`<owner>/$<stem>.html`), as
/// (page path, file stem).
fn runtime_entries(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    fn visit(dir: &Path, rel: &str, found: &mut Vec<(String, std::path::PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                // `.segments` folders hold the prefetch segments of the entry beside them.
                if !name.ends_with(".segments") {
                    visit(&path, &format!("{rel}/{name}"), found);
                }
            } else if let Some(stem) = name.strip_suffix(".html") {
                found.push((page_path(&format!("{rel}/{stem}")), path.with_extension("")));
            }
        }
    }
    let mut found = Vec::new();
    for owner in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        visit(&owner.path().join("$"), "", &mut found);
    }
    found
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    postponed: Option<serde_json::Value>,
    #[serde(default)]
    route_cache: Option<RouteCache>,
    #[serde(default)]
    route_cache_last_modified: Option<u64>,
    /// The entry's lifetime, which Next 16 writes into a runtime entry's `.meta`.
    #[serde(default)]
    cache_control: Option<StoredCacheControl>,
}

#[derive(Deserialize)]
struct RouteCache {
    key: String,
}

#[derive(Deserialize)]
struct StoredCacheControl {
    /// Seconds, or `false` for never.
    revalidate: serde_json::Value,
    #[serde(default)]
    expire: Option<u64>,
}

/// Reads a prerendered entry as Next's file-system cache would: the runtime entry
/// (`server/route-cache/...`, Next 15.5) when an earlier run wrote one, else the build's.
fn read_entry(
    server: &Path,
    folder: &Path,
    path: &str,
    kind: Kind,
    life: CacheLife,
) -> Option<Source> {
    let stem = folder.join(file_stem(path).trim_start_matches('/'));
    let seed_meta: Meta = match kind {
        Kind::App => read_json(&stem.with_extension("meta"))?,
        _ => read_json(&stem.with_extension("meta")).unwrap_or_default(),
    };
    // A runtime entry is complete once its `.html` exists (Next writes it last).
    let runtime = seed_meta
        .route_cache
        .as_ref()
        .map(|cache| server.join(cache.key.trim_start_matches('/')))
        .filter(|stem| with_suffix(stem, "html").is_file());
    let (stem, meta) = match runtime {
        Some(runtime) => {
            let meta: Meta = read_json(&with_suffix(&runtime, "meta"))?;
            (runtime, meta)
        }
        None => (stem, seed_meta),
    };
    read_stem(&stem, meta, kind, life)
}

/// The entry at `stem` (`.html`, and `.rsc` or `.json`) with its `.meta`.
fn read_stem(stem: &Path, meta: Meta, kind: Kind, life: CacheLife) -> Option<Source> {
    if meta.postponed.as_ref().is_some_and(|p| !p.is_null()) {
        return None;
    }
    let html_path = with_suffix(stem, "html");
    let html = read_html(&html_path)?;
    let modified = std::fs::metadata(&html_path).ok()?.modified().ok()?;
    let last_modified = meta
        .route_cache_last_modified
        .unwrap_or_else(|| semantics::millis(modified));
    let (rsc, data) = match kind {
        Kind::App => (
            std::fs::read(with_suffix(stem, "rsc"))
                .ok()
                .map(Bytes::from),
            None,
        ),
        _ => (
            None,
            Some(std::fs::read_to_string(with_suffix(stem, "json")).ok()?),
        ),
    };
    Some(Source {
        kind,
        html,
        rsc,
        data,
        entry_headers: meta.headers,
        status: meta.status,
        life: Some(life),
        last_modified,
    })
}

/// `stem` + `.suffix` (the stem may contain dots, e.g. `/blog/v1.2`).
fn with_suffix(stem: &Path, suffix: &str) -> std::path::PathBuf {
    let mut path = stem.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    path.into()
}

/// An HTML file Next reads as UTF-8; other bytes would be altered by Node, so such a page
/// stays Node's.
fn read_html(path: &Path) -> Option<String> {
    String::from_utf8(std::fs::read(path).ok()?).ok()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

impl CachedEntry {
    /// The entry's lifetime, when the worker said.
    fn life(&self) -> Option<CacheLife> {
        CacheLife::stored(self.revalidate.as_ref()?, self.expire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_nexts() {
        let life = |revalidate, expire| CacheLife { revalidate, expire };
        assert_eq!(
            cache_control(life(None, None), Some(ONE_YEAR)),
            "s-maxage=31536000"
        );
        assert_eq!(
            cache_control(life(Some(5), Some(ONE_YEAR)), Some(ONE_YEAR)),
            "s-maxage=5, stale-while-revalidate=31535995"
        );
        assert_eq!(
            cache_control(life(Some(5), None), Some(ONE_YEAR)),
            "s-maxage=5, stale-while-revalidate=31535995"
        );
        assert_eq!(cache_control(life(Some(5), None), None), "s-maxage=5");
    }

    #[test]
    fn page_file_names_follow_normalize_page_path() {
        assert_eq!(file_stem("/"), "/index");
        assert_eq!(file_stem("/about"), "/about");
        assert_eq!(file_stem("/index"), "/index/index");
        for path in [
            "/",
            "/about",
            "/index",
            "/index/x",
            "/blog/v1.2",
            "/indexes",
        ] {
            assert_eq!(page_path(&file_stem(path)), path);
        }
        assert_eq!(data_path("B", "/"), "/_next/data/B/index.json");
    }
}
