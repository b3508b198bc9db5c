//! A page's answers, prepared when the page is made: App Router HTML and RSC payload,
//! Pages Router HTML and `/_next/data` JSON, and Next's 404 for unknown paths, each with
//! the headers of Next's handler, `sendRenderResult` and the `compression` middleware.
//! Serving picks the answer a request asks for, or leaves it to Node.

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};

use super::load::{CacheLife, Kind, Source};
use crate::{
    assets::{
        Native, Settings,
        compressed::{Compressed, Learn, VariantKey, Verdict, chunked},
        response,
        rules::{HeaderRules, RuleHeaders},
        semantics::{self, Encoding},
    },
    body::Body,
    routes::RouteTable,
};

/// The `Vary` Next.js sets on App Router pages (without interception routes).
const APP_VARY: &str =
    "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch";
const HTML_TYPE: &str = "text/html; charset=utf-8";
const RSC_TYPE: &str = "text/x-component";
const JSON_TYPE: &str = "application/json; charset=utf-8";
/// `Cache-Control` of Next's 404 for an unknown path.
const NO_STORE: &str = "private, no-cache, no-store, max-age=0, must-revalidate";
const ONE_YEAR: u64 = 31_536_000;

/// One answer of a page: its body and prepared headers.
struct Variant {
    body: Bytes,
    /// Headers of the full answer (200, or the entry's status).
    headers: HeaderMap,
    /// Headers of a 304, when the answer has an ETag.
    not_modified: Option<HeaderMap>,
    /// Sent without `Content-Length`, as Next streams it.
    chunked: bool,
    /// A hash of the answer (headers and body): the version of it that Node's answer was
    /// checked against, kept when the page is made again with the same content.
    fingerprint: u64,
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
    /// Cache Components: the entry is a static shell with postponed parts. Next resumes
    /// its render for the HTML and the RSC payload; only its segments are answered here.
    postponed: bool,
    /// An RSC request that is not a prefetch is answered from the cache (not with Cache
    /// Components, unless the build prerendered the page's whole payload).
    static_rsc: bool,
    /// Next 16 segment prefetches, when the entry has its segments.
    segments: Option<Segments>,
    /// A postponed entry's static shell (the answer's head and first bytes) and the state
    /// a worker resumes the render from.
    shell: Option<(Variant, Bytes)>,
}

/// The answers to `Next-Router-Segment-Prefetch`: each segment the entry holds (by the
/// header's value, e.g. `/_tree`, `/blog/$d$slug/__PAGE__`), and Next's empty 404 for one
/// it does not hold (`app-page` template: "respond from the cache (HIT) or with 404").
struct Segments {
    found: std::collections::HashMap<String, Variant>,
    missing: Variant,
}

/// What part of a page a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Html,
    /// The RSC payload; `prefetch`: the request says `Next-Router-Prefetch: 1`.
    Rsc {
        prefetch: bool,
    },
    /// One segment of the payload (`Next-Router-Segment-Prefetch`, on a prefetch).
    Segment(String),
    Data,
    /// Next's 404 page for a path no route claims.
    Unknown {
        rsc: bool,
    },
}

/// What a page needs of the app beyond its own content.
pub(crate) struct Context<'a> {
    pub settings: &'a Settings,
    pub rules: &'a HeaderRules,
    pub routes: &'a RouteTable,
}

impl Page {
    /// A page from its content, or `None` when Next.js would not answer it as modelled
    /// here (a status other than 200/404, content that is not UTF-8, a path taken by
    /// middleware or a rule, or conditional header rules).
    pub(super) fn new(path: &str, source: Source, cx: &Context<'_>) -> Option<Page> {
        let settings = cx.settings;
        let full = full_path(path, settings);
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
        let shell = match (&source.postponed_state, status) {
            (Some(state), StatusCode::OK) if source.postponed && settings.cache_components => {
                Some((
                    shell_answer(&source.html, &rules, &entry_headers, settings),
                    Bytes::from(state.clone().into_bytes()),
                ))
            }
            _ => None,
        };
        let segments = match (&source.segments, status) {
            (Some(segments), StatusCode::OK) => Some(segment_answers(
                segments,
                &rules,
                cache_control.as_deref(),
                settings,
            )),
            _ => None,
        };
        let answers = match source.kind {
            Kind::App => app_answers(
                path,
                &source,
                &rules,
                &entry_headers,
                cache_control.as_deref(),
                settings,
            ),
            Kind::PagesStatic | Kind::PagesProps => {
                pages_answers(path, &source, &rules, cache_control.as_deref(), cx)?
            }
        };
        Some(Page {
            path: path.to_owned(),
            kind: source.kind,
            status,
            tags,
            fresh_until,
            html: answers.html,
            rsc: answers.rsc,
            data: answers.data,
            unknown: answers.unknown,
            postponed: source.postponed,
            static_rsc: !settings.cache_components || settings.static_rsc.contains(path),
            segments,
            shell,
        })
    }

    /// The page's kind.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The page's path (after basePath, without trailing slash).
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The cache tags of the entry it was made from.
    pub(super) fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Whether it has a `/_next/data` answer.
    pub(super) fn has_data(&self) -> bool {
        self.data.is_some()
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
        if want == Want::Html && self.postponed {
            return self.serve_shell(request, settings, compressed, learn);
        }
        let (variant, name) = self.variant(&want, request.headers())?;
        let status = match &want {
            Want::Data => StatusCode::OK,
            Want::Segment(segment) if !self.segments.as_ref()?.found.contains_key(segment) => {
                StatusCode::NOT_FOUND
            }
            Want::Segment(_) => StatusCode::OK,
            _ => self.status,
        };
        let head = request.method() == Method::HEAD;
        if head && variant.chunked {
            return None;
        }
        let request_headers = request.headers();
        let key = VariantKey::page(&self.path, &name, variant.fingerprint);
        match compressed.verdict(&key) {
            Verdict::Matched => {}
            Verdict::Refused => return None,
            // Node answers until one of its answers to a GET it sends whole showed that
            // Rust's is the same.
            Verdict::Unknown => {
                let conditional = request_headers.contains_key(header::IF_NONE_MATCH)
                    || request_headers.contains_key(header::IF_MODIFIED_SINCE);
                let deflate = semantics::negotiate(request_headers) == Encoding::Deflate;
                if request.method() == Method::GET && !conditional && !deflate {
                    *learn = Some(compressed.verify(
                        key,
                        status,
                        &variant.headers,
                        &variant.body,
                        false,
                    ));
                }
                return None;
            }
        }
        if let Some(not_modified) = variant.not_modified(request_headers) {
            return Some(not_modified);
        }
        // `compression` compresses a streamed body, or one of at least its threshold.
        let compresses = settings.compress
            && !head
            && (variant.chunked || variant.body.len() >= semantics::COMPRESSION_THRESHOLD)
            && crate::assets::compressible(&variant.headers);
        if compresses {
            match semantics::negotiate(request_headers) {
                Encoding::Identity => {}
                Encoding::Gzip => {
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
        Some(Native::ready(response(
            status,
            variant.headers.clone(),
            variant.body(head),
        )))
    }

    /// A postponed page's HTML: the shell at once, then the worker's resumed render (as
    /// `next start` appends it to the cached shell). Only to a `GET` that is not answered
    /// compressed: Node compresses the whole stream, in bytes Rust cannot reproduce.
    fn serve_shell<B>(
        &self,
        request: &Request<B>,
        settings: &Settings,
        compressed: &Arc<Compressed>,
        learn: &mut Option<Learn>,
    ) -> Option<Native> {
        let (variant, state) = self.shell.as_ref()?;
        if request.method() != Method::GET {
            return None;
        }
        let headers = request.headers();
        if settings.compress
            && crate::assets::compressible(&variant.headers)
            && semantics::negotiate(headers) != Encoding::Identity
        {
            return None;
        }
        let key = VariantKey::page(&self.path, "shell", variant.fingerprint);
        match compressed.verdict(&key) {
            Verdict::Matched => {}
            Verdict::Refused => return None,
            Verdict::Unknown => {
                *learn = Some(compressed.verify(
                    key,
                    self.status,
                    &variant.headers,
                    &variant.body,
                    true,
                ));
                return None;
            }
        }
        let mut head = Response::new(());
        *head.status_mut() = self.status;
        *head.headers_mut() = variant.headers.clone();
        Some(Native::Resume(crate::assets::Resume {
            head,
            shell: variant.body.clone(),
            state: state.clone(),
        }))
    }

    /// The answer a request wants, and its name among the page's answers.
    fn variant(
        &self,
        want: &Want,
        request_headers: &HeaderMap,
    ) -> Option<(&Variant, std::borrow::Cow<'static, str>)> {
        let (variant, name) = match want {
            Want::Html | Want::Rsc { .. } if self.postponed => return None,
            Want::Rsc { prefetch: false } if !self.static_rsc => return None,
            Want::Html => (&self.html, "html"),
            Want::Rsc { .. } => (self.rsc.as_ref()?, "rsc"),
            Want::Segment(segment) => {
                let segments = self.segments.as_ref()?;
                return Some(match segments.found.get(segment) {
                    Some(found) => (found, format!("segment:{segment}").into()),
                    None => (&segments.missing, "segment-missing".into()),
                });
            }
            Want::Data => self.data.as_ref()?.for_request(request_headers),
            Want::Unknown { rsc: false } => (&self.unknown.as_ref()?.0, "unknown-html"),
            Want::Unknown { rsc: true } => (self.unknown.as_ref()?.1.as_ref()?, "unknown-rsc"),
        };
        Some((variant, name.into()))
    }
}

impl Variant {
    fn new(
        body: Bytes,
        headers: HeaderMap,
        not_modified: Option<HeaderMap>,
        chunked: bool,
    ) -> Variant {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        let mut pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        pairs.sort_unstable();
        pairs.hash(&mut hasher);
        body.hash(&mut hasher);
        chunked.hash(&mut hasher);
        Variant {
            fingerprint: hasher.finish(),
            body,
            headers,
            not_modified,
            chunked,
        }
    }

    /// A 304, when the answer has an ETag the request's validators match.
    fn not_modified(&self, request_headers: &HeaderMap) -> Option<Native> {
        let not_modified = self.not_modified.as_ref()?;
        let etag = not_modified.get(header::ETAG).and_then(|v| v.to_str().ok());
        semantics::fresh(request_headers, etag, None).then(|| {
            Native::ready(response(
                StatusCode::NOT_MODIFIED,
                not_modified.clone(),
                Body::empty(),
            ))
        })
    }

    /// The body of a full answer (none to a HEAD request).
    fn body(&self, head: bool) -> Body {
        if head {
            Body::empty()
        } else if self.chunked {
            chunked(self.body.clone())
        } else {
            Body::full(self.body.clone())
        }
    }
}

/// The path with basePath, as header rules and middleware matchers see it.
fn full_path(path: &str, settings: &Settings) -> String {
    format!(
        "{}{}",
        settings.base_path,
        if path == "/" && !settings.base_path.is_empty() {
            ""
        } else {
            path
        }
    )
}

/// The answers a page has, by what a request asks for.
struct Answers {
    html: Variant,
    rsc: Option<Variant>,
    data: Option<Data>,
    unknown: Option<(Variant, Option<Variant>)>,
}

/// An App Router page's answers: HTML and RSC payload, and for `/_not-found` Next's 404
/// for unknown paths.
fn app_answers(
    path: &str,
    source: &Source,
    rules: &HeaderMap,
    entry_headers: &[(HeaderName, HeaderValue)],
    cache_control: Option<&str>,
    settings: &Settings,
) -> Answers {
    let (html, rsc) = app_pair(rules, entry_headers, cache_control, source, settings);
    // Next's answer to a path nothing claims renders `/_not-found` under
    // `Cache-Control: private, no-cache, ...`, set before the page's other headers.
    let unknown = (path == "/_not-found").then(|| {
        let mut first = HeaderMap::new();
        first.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        app_pair(&first, entry_headers, Some(NO_STORE), source, settings)
    });
    Answers {
        html,
        rsc,
        data: None,
        unknown,
    }
}

/// The HTML and (when the entry has one) RSC answers of an App Router page.
fn app_pair(
    rules: &HeaderMap,
    entry_headers: &[(HeaderName, HeaderValue)],
    cache_control: Option<&str>,
    source: &Source,
    settings: &Settings,
) -> (Variant, Option<Variant>) {
    let html = app_variant(
        rules,
        entry_headers,
        cache_control,
        Bytes::from(source.html.clone().into_bytes()),
        Some(semantics::page_etag(&source.html)),
        true,
        settings,
    );
    let rsc = source.rsc.clone().map(|body| {
        app_variant(
            rules,
            entry_headers,
            cache_control,
            body,
            None,
            false,
            settings,
        )
    });
    (html, rsc)
}

/// A postponed page's head and shell (`app-page` template, an HTML request of an entry
/// with postponed state): the entry's headers, `x-nextjs-postponed: 1`, never stored,
/// streamed, no ETag, no `x-nextjs-cache`.
fn shell_answer(
    html: &str,
    rules: &HeaderMap,
    entry_headers: &[(HeaderName, HeaderValue)],
    settings: &Settings,
) -> Variant {
    let mut headers = rules.clone();
    headers.insert(header::VARY, HeaderValue::from_static(APP_VARY));
    for (name, value) in entry_headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        HeaderName::from_static("x-nextjs-postponed"),
        HeaderValue::from_static("1"),
    );
    let render = Render {
        content_type: HTML_TYPE,
        cache_control: Some(NO_STORE),
        etag: None,
        chunked: true,
    };
    send_render_result(headers, Bytes::from(html.to_owned()), render, settings)
}

/// The headers Next's app-page handler sets on an answer from its cache, after the header
/// rules: `Vary`, `x-nextjs-cache: HIT`, `x-nextjs-prerender: 1`.
fn app_hit_headers(rules: &HeaderMap) -> HeaderMap {
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
    headers
}

/// The segment prefetch answers of a page (`app-page` template, the `segmentData` branch):
/// Next sets `x-nextjs-postponed: 2` and answers before it applies the entry's headers,
/// streamed, without ETag, under the page's `Cache-Control`.
fn segment_answers(
    segments: &[(String, Bytes)],
    rules: &HeaderMap,
    cache_control: Option<&str>,
    settings: &Settings,
) -> Segments {
    let mut headers = app_hit_headers(rules);
    headers.insert(
        HeaderName::from_static("x-nextjs-postponed"),
        HeaderValue::from_static("2"),
    );
    let found = segments
        .iter()
        .map(|(segment, body)| {
            let render = Render {
                content_type: RSC_TYPE,
                cache_control,
                etag: None,
                chunked: true,
            };
            let variant = send_render_result(headers.clone(), body.clone(), render, settings);
            (segment.clone(), variant)
        })
        .collect();
    // `RenderResult.EMPTY`: no content type, so no `Accept-Encoding` in `Vary` either.
    if let Some(cache_control) = cache_control
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        headers.insert(header::CACHE_CONTROL, semantics::value(cache_control));
    }
    let missing = Variant::new(Bytes::new(), headers, None, true);
    Segments { found, missing }
}

/// A Pages Router page's answers: HTML, and with `getStaticProps` its `/_next/data`
/// JSON. `None` when a data route Rust would answer has no page route.
fn pages_answers(
    path: &str,
    source: &Source,
    rules: &HeaderMap,
    cache_control: Option<&str>,
    cx: &Context<'_>,
) -> Option<Answers> {
    let settings = cx.settings;
    let props = source.kind == Kind::PagesProps;
    let html = pages_variant(
        rules,
        props,
        None,
        Bytes::from(source.html.clone().into_bytes()),
        Render {
            content_type: HTML_TYPE,
            cache_control: props.then_some(cache_control).flatten(),
            etag: Some(semantics::page_etag(&source.html)),
            chunked: false,
        },
        settings,
    );
    let data = match (&source.data, props) {
        (Some(json), true) => match data_rules(path, rules, cx) {
            Some(data_rules) => {
                let route = cx.routes.pages_route(path)?;
                Some(data_answers(
                    path,
                    route,
                    json,
                    &data_rules,
                    cache_control,
                    cx,
                ))
            }
            None => None,
        },
        _ => None,
    };
    Some(Answers {
        html,
        rsc: None,
        data,
        unknown: None,
    })
}

/// The header rules of a page's data route, when Rust may answer it.
fn data_rules(path: &str, rules: &HeaderMap, cx: &Context<'_>) -> Option<HeaderMap> {
    let settings = cx.settings;
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
                && !cx
                    .routes
                    .claimed_by_rules(&format!("{}{data_path}", settings.base_path)) =>
        {
            Some(data_rules)
        }
        _ => None,
    }
}

/// The `/_next/data` answers of a page whose route (e.g. `/posts/[id]`) is `route`.
fn data_answers(
    path: &str,
    route: &str,
    json: &str,
    data_rules: &HeaderMap,
    cache_control: Option<&str>,
    cx: &Context<'_>,
) -> Data {
    let variant = |matched: Option<&str>| {
        pages_variant(
            data_rules,
            true,
            matched,
            Bytes::from(json.to_owned().into_bytes()),
            Render {
                content_type: JSON_TYPE,
                cache_control,
                etag: Some(semantics::page_etag(json)),
                chunked: false,
            },
            cx.settings,
        )
    };
    Data {
        unmarked: variant(None),
        matched: variant(Some(route)),
        always_matched: cx.routes.has_middleware() || route != path,
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
    let mut headers = app_hit_headers(rules);
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
    crate::assets::compression_vary(&mut headers, settings);
    Variant::new(body, headers, not_modified, render.chunked)
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
pub(super) fn data_path(build_id: &str, page: &str) -> String {
    let page = if page == "/" { "/index" } else { page };
    format!("/_next/data/{build_id}{page}.json")
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
}
