//! A page and its prepared answers (App Router HTML and RSC payload, segments, a PPR
//! shell, Pages Router HTML and `/_next/data` JSON, Next's 404 for unknown paths), and
//! serving a request from them: the answer it asks for, a `304`, or Node's. How the
//! answers are made is `answers`'s.

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};

use super::{
    answers::{
        app_answers, cache_control, entry_headers, full_path, pages_answers, segment_answers,
        shell_answer,
    },
    load::{Kind, Source},
};
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
pub(super) const APP_VARY: &str =
    "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch";
pub(super) const HTML_TYPE: &str = "text/html; charset=utf-8";
pub(super) const RSC_TYPE: &str = "text/x-component";
pub(super) const JSON_TYPE: &str = "application/json; charset=utf-8";
/// `Cache-Control` of Next's 404 for an unknown path.
pub(super) const NO_STORE: &str = "private, no-cache, no-store, max-age=0, must-revalidate";
pub(super) const ONE_YEAR: u64 = 31_536_000;

/// One answer of a page: its body and prepared headers.
pub(super) struct Variant {
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
pub(super) struct Data {
    pub(super) unmarked: Variant,
    pub(super) matched: Variant,
    pub(super) always_matched: bool,
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
pub(super) struct Segments {
    pub(super) found: std::collections::HashMap<String, Variant>,
    pub(super) missing: Variant,
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
            // Next leaves the entry's status off an RSC answer on routes with partial
            // prerendering (every App Router page with Cache Components): the payload says
            // not-found itself (`app-page` template, `isRoutePPREnabled`).
            Want::Rsc { .. } if settings.cache_components => StatusCode::OK,
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
                let conditional = semantics::is_conditional(request_headers);
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
    pub(super) fn new(
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
