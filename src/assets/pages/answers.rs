//! How a page's answers are made, once, when the page is made: the headers of Next's
//! handlers (app-page, pages, `sendRenderResult`) for each kind of entry and request, with
//! next.config's header rules, and the `compression` middleware's `Vary`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::{
    load::{CacheLife, Kind, Source},
    response::{
        APP_VARY, Context, Data, HTML_TYPE, JSON_TYPE, NO_STORE, ONE_YEAR, RSC_TYPE, Segments,
        Variant,
    },
};
use crate::assets::{Settings, rules::RuleHeaders, semantics};

/// The path with basePath, as header rules and middleware matchers see it.
pub(super) fn full_path(path: &str, settings: &Settings) -> String {
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
pub(super) struct Answers {
    pub(super) html: Variant,
    pub(super) rsc: Option<Variant>,
    pub(super) data: Option<Data>,
    pub(super) unknown: Option<(Variant, Option<Variant>)>,
}

/// An App Router page's answers: HTML and RSC payload, and for `/_not-found` Next's 404
/// for unknown paths.
pub(super) fn app_answers(
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
pub(super) fn shell_answer(
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
pub(super) fn segment_answers(
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
pub(super) fn pages_answers(
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
pub(super) fn cache_control(life: CacheLife, expire_time: Option<u64>) -> String {
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
pub(super) fn entry_headers(
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
