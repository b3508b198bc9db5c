//! Who owns a request: Next.js or the inner service (the rules are in the README, "Who
//! gets a request").
//!
//! The [`RouteTable`] is what the app's build (or, in dev, its folders) says Next serves;
//! [`Routing`] is what the layer's configuration adds: explicit routes and the
//! `useFileSystemPublicRoutes` switch. [`RouteTable::owner`] decides per request, without
//! touching the disk.

mod dev;
mod locale;
mod manifest;
mod pattern;
mod target;
mod watch;

use std::{borrow::Cow, collections::HashSet, path::Path};

use http::Uri;
use percent_encoding::percent_decode_str;

use crate::{
    Error,
    build::{AppInfo, JsRegex, Manifests},
};
use locale::Locales;
use pattern::PathPattern;
pub(crate) use target::{Dispatch, Owner, Reach, Target};
pub(crate) use watch::DevWatch;

/// A route with dynamic segments: the regex of its paths and its page (`/posts/[id]`).
pub(crate) struct DynamicRoute {
    regex: JsRegex,
    page: String,
}

/// Routes configured on a layer or service: explicit routes and the filename-routes switch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routing {
    explicit: Vec<ExplicitRoute>,
    file_system_routes: Option<bool>,
}

#[derive(Clone, Debug)]
struct ExplicitRoute {
    pattern: PathPattern,
    page: String,
}

impl Routing {
    /// Renders Next page `page` for requests matching `pattern` (a page that does not
    /// start with `/` is answered `500`, as by `Next::render`).
    pub(crate) fn add_route(&mut self, pattern: &str, page: &str) {
        self.explicit.push(ExplicitRoute {
            pattern: PathPattern::parse(pattern),
            page: page.to_owned(),
        });
    }

    pub(crate) fn set_file_system_routes(&mut self, on: bool) {
        self.file_system_routes = Some(on);
    }

    fn find(&self, path: &str) -> Option<(&str, Vec<(String, String)>)> {
        self.explicit
            .iter()
            .find_map(|route| Some((route.page.as_str(), route.pattern.matches(path)?)))
    }
}

/// What the app's build says Next.js serves.
#[derive(Default)]
pub(crate) struct RouteTable {
    base_path: String,
    build_id: String,
    /// next.config's `useFileSystemPublicRoutes`, used when the layer does not set it.
    file_system_routes: bool,
    /// Pages Router routes without dynamic segments, decoded, without trailing slash.
    pages: HashSet<String>,
    /// Pages Router routes with dynamic segments.
    page_patterns: Vec<DynamicRoute>,
    /// App Router routes without dynamic segments, as `pages`.
    app_pages: HashSet<String>,
    /// App Router routes with dynamic segments.
    app_patterns: Vec<DynamicRoute>,
    /// Pages Router i18n: the configured locales.
    locales: Option<Locales>,
    /// Files in `public/`, as decoded URL paths.
    public_files: HashSet<String>,
    /// Sources of next.config redirects and rewrites (with basePath).
    rules: Vec<JsRegex>,
    /// Middleware (proxy) matchers (with basePath).
    middleware: Vec<JsRegex>,
}

impl RouteTable {
    /// Builds the table for the app in `dir`: from its build's manifests, or in dev (no
    /// `build`) from its folders.
    pub(crate) fn load(
        dir: &Path,
        info: &AppInfo,
        build: Option<&Manifests>,
    ) -> Result<RouteTable, Error> {
        let config = &info.config;
        let mut table = RouteTable {
            base_path: config.base_path.trim_end_matches('/').to_owned(),
            build_id: info.build_id.clone(),
            file_system_routes: config.use_file_system_public_routes,
            locales: config.i18n.as_ref().and_then(Locales::new),
            ..RouteTable::default()
        };
        match build {
            Some(build) => manifest::load(&mut table, build, config)?,
            None => {
                dev::scan(&mut table, dir, &config.page_extensions);
                for matcher in &info.middleware_matchers {
                    match JsRegex::new(matcher) {
                        Ok(regex) => table.middleware.push(regex),
                        Err(err) => tracing::warn!(%err, "skipping a middleware matcher"),
                    }
                }
            }
        }
        collect_public_files(&dir.join("public"), String::new(), &mut table.public_files);
        if let Some(i18n) = &config.i18n {
            if !i18n.domain_default_locales.is_empty() {
                tracing::warn!(
                    "i18n.domains: tower-next's route ownership uses i18n.defaultLocale for every host, not each domain's default locale"
                );
            }
            if i18n.locale_detection && !table.is_page("/", "/") {
                tracing::warn!(
                    "i18n.localeDetection: the app has no `/` page, so `/` reaches the inner service, also when Next.js would redirect it by Accept-Language"
                );
            }
        }
        Ok(table)
    }

    /// Who answers a request for `uri` under the layer's `routing`.
    pub(crate) fn owner(&self, routing: &Routing, uri: &Uri) -> Owner {
        let file_system_routes = routing
            .file_system_routes
            .unwrap_or(self.file_system_routes);
        let raw = uri.path();
        let Some(path) = strip_prefix_segment(raw, &self.base_path) else {
            // Outside basePath only rules with `basePath: false` and middleware can apply.
            return if self.matches_rules(&self.router_path("", raw)) {
                Owner::Next(Target::Handle(Reach::Owned))
            } else {
                Owner::Inner
            };
        };
        // Next answers a non-canonical address of its routes (`//about`, `/hello.txt/`)
        // with a redirect to the canonical one, so ownership looks at the canonical form.
        let path = canonical(path);
        let path = path.as_ref();
        let decoded = percent_decode_str(path).decode_utf8_lossy();
        let normalized = normalize(&decoded);

        if path == "/_next" || path.starts_with("/_next/") {
            return self.internal_owner(routing, uri, path, file_system_routes);
        }

        if let Some((page, params)) = routing.find(normalized) {
            return Owner::Next(Target::Render {
                page: page.to_owned(),
                query: merge_query(uri.query(), &params),
            });
        }

        let localized = self.locales.as_ref().and_then(|l| l.localize(path));
        let filename_route = match &localized {
            None => self.is_page(normalized, path),
            Some(found) => self.is_localized_page(found, normalized),
        };
        if filename_route {
            return if file_system_routes {
                Owner::Next(Target::Handle(Reach::Owned))
            } else {
                Owner::Inner
            };
        }
        if self.is_public_file(localized.as_ref(), normalized) || self.claimed(raw, path) {
            return Owner::Next(Target::Handle(Reach::Owned));
        }
        Owner::Inner
    }

    /// Who owns a `{basePath}/_next/*` path: Next, but with filename routes off a
    /// client-side navigation's data request only for an explicit route, whose page's
    /// data route it is sent to.
    fn internal_owner(
        &self,
        routing: &Routing,
        uri: &Uri,
        path: &str,
        file_system_routes: bool,
    ) -> Owner {
        let data_page = (!file_system_routes)
            .then(|| self.data_route_page(path))
            .flatten();
        let Some((locale, page)) = data_page else {
            return Owner::Next(Target::Handle(Reach::Owned));
        };
        match routing.find(&page) {
            Some((target, params)) => Owner::Next(Target::Rewrite(format!(
                "{}/_next/data/{}{}/{}.json{}",
                self.base_path,
                self.build_id,
                locale,
                if target == "/" { "/index" } else { target }.trim_start_matches('/'),
                with_question_mark(&merge_query(uri.query(), &params))
            ))),
            None => Owner::Inner,
        }
    }

    /// Whether `normalized` (decoded, after basePath) is a `public/` file Next serves:
    /// with i18n, also under the default locale(s) (`/en/robots.txt`).
    fn is_public_file(&self, localized: Option<&locale::Localized<'_>>, normalized: &str) -> bool {
        match localized {
            None => self.public_files.contains(normalized),
            Some(found) if found.files => {
                let rest = without_locale(normalized);
                self.public_files.contains(rest) || found.rest.starts_with("/_next/static/")
            }
            Some(_) => false,
        }
    }

    /// Whether a redirect, rewrite or middleware matcher claims the path (`raw` with
    /// basePath, `path` after it); with i18n, as Next's router sees it with the locale.
    fn claimed(&self, raw: &str, path: &str) -> bool {
        match &self.locales {
            None => self.matches_rules(raw) || self.matches_rules(path),
            Some(_) => {
                self.matches_rules(&self.router_path(&self.base_path, path))
                    || self.matches_rules(&self.router_path("", path))
            }
        }
    }

    /// What Next.js does with a request given to it as a plain service, which owns
    /// everything: what nothing claims gets Next's 404 page (rendered by `app.render404`
    /// when filename routes are off, since Next's handler would still serve them).
    pub(crate) fn target(&self, routing: &Routing, uri: &Uri) -> Target {
        match self.owner(routing, uri) {
            Owner::Next(target) => target,
            Owner::Inner if self.file_system_routes(routing) => Target::Handle(Reach::Unclaimed),
            Owner::Inner => Target::NotFound,
        }
    }

    /// Whether next.config's `useFileSystemPublicRoutes` is on, unless the layer overrides.
    fn file_system_routes(&self, routing: &Routing) -> bool {
        routing
            .file_system_routes
            .unwrap_or(self.file_system_routes)
    }

    /// The route that serves `uri`, as Next names it (`/posts/[id]`, `/about`,
    /// `/_next/static`, `/_next/data/[buildId]/posts/[id].json`, a `public/` file's path),
    /// with basePath: OpenTelemetry's `http.route`, which keeps one label value per page
    /// however many URLs it serves. `None` when no route or file matches (Next's 404).
    pub(crate) fn route(&self, uri: &Uri) -> Option<String> {
        let path = strip_prefix_segment(uri.path(), &self.base_path)?;
        let path = canonical(path);
        let path = path.as_ref();
        let decoded = percent_decode_str(path).decode_utf8_lossy();
        let normalized = normalize(&decoded);
        let route = if let Some(rest) = normalized.strip_prefix("/_next/") {
            match rest.split('/').next() {
                Some("data") => {
                    let (_, page) = self.data_route_page(path)?;
                    let pattern = self.page_pattern(&page, &page)?;
                    let file = if pattern == "/" { "/index" } else { pattern };
                    format!("/_next/data/[buildId]{file}.json")
                }
                Some(section @ ("static" | "image")) => format!("/_next/{section}"),
                _ => "/_next".to_owned(),
            }
        } else if let Some(pattern) = self.page_pattern(normalized, path) {
            pattern.to_owned()
        } else if self.public_files.contains(normalized) {
            normalized.to_owned()
        } else {
            let localized = self.locales.as_ref()?.localize(path)?;
            let rest = percent_decode_str(localized.rest).decode_utf8_lossy();
            self.page_pattern(normalize(&rest), localized.rest)?
                .to_owned()
        };
        Some(format!("{}{route}", self.base_path))
    }

    /// The page or pattern that serves `normalized` (decoded) / `raw` (as sent).
    fn page_pattern<'a>(&'a self, normalized: &'a str, raw: &str) -> Option<&'a str> {
        if self.pages.contains(normalized) || self.app_pages.contains(normalized) {
            return Some(normalized);
        }
        self.app_patterns
            .iter()
            .chain(&self.page_patterns)
            .find(|p| p.regex.is_match(raw))
            .map(|p| p.page.as_str())
    }

    /// Whether a next.config redirect or rewrite rule, or a middleware matcher, claims the
    /// path: then Next.js does more than serve a file or page for it.
    pub(crate) fn claimed_by_rules(&self, path: &str) -> bool {
        self.matches_rules(path)
    }

    /// Whether the app has middleware (Next 16: `proxy`).
    pub(crate) fn has_middleware(&self) -> bool {
        !self.middleware.is_empty()
    }

    fn is_page(&self, normalized: &str, raw: &str) -> bool {
        self.pages.contains(normalized)
            || self.app_pages.contains(normalized)
            || self.page_patterns.iter().any(|p| p.regex.is_match(raw))
            || self.app_patterns.iter().any(|p| p.regex.is_match(raw))
    }

    /// The Pages Router page that serves `path` (decoded, without trailing slash):
    /// `/posts/[id]` for `/posts/first`, the path itself for a page without dynamic
    /// segments. Next names it in `x-nextjs-matched-path`.
    pub(crate) fn pages_route<'a>(&'a self, path: &'a str) -> Option<&'a str> {
        if self.pages.contains(path) {
            return Some(path);
        }
        self.page_patterns
            .iter()
            .find(|p| p.regex.is_match(path))
            .map(|p| p.page.as_str())
    }

    /// Whether Next serves a filename route for a path that starts with a locale
    /// (`normalized` is the whole decoded path; see `locale.rs` for the rules).
    fn is_localized_page(&self, found: &locale::Localized<'_>, normalized: &str) -> bool {
        let raw = found.rest;
        // An API route is not served under a locale, in either router.
        if raw == "/api" || raw.starts_with("/api/") {
            return false;
        }
        let decoded = without_locale(normalized);
        self.pages.contains(decoded)
            || self.page_patterns.iter().any(|p| p.regex.is_match(raw))
            || (found.default && self.app_pages.contains(decoded))
    }

    /// The path Next's router matches redirects, rewrites and middleware against: with
    /// i18n, a path without a locale (and not under `/_next/`) gets the default one.
    /// `base` is the basePath the path had, `rest` the path after it.
    fn router_path<'a>(&self, base: &str, rest: &'a str) -> Cow<'a, str> {
        match &self.locales {
            Some(locales)
                if locales.strip(rest).is_none()
                    && rest != "/_next"
                    && !rest.starts_with("/_next/") =>
            {
                Cow::Owned(locales.with_default(base, rest))
            }
            _ if base.is_empty() => Cow::Borrowed(rest),
            _ => Cow::Owned(format!("{base}{rest}")),
        }
    }

    fn matches_rules(&self, raw: &str) -> bool {
        self.rules
            .iter()
            .chain(&self.middleware)
            .any(|r| r.is_match(raw))
    }

    /// The page a `/_next/data/<build>/[<locale>/]<page>.json` path asks for, and its
    /// `/<locale>` part (empty without one).
    fn data_route_page<'a>(&self, path: &'a str) -> Option<(&'a str, String)> {
        let rest = path.strip_prefix("/_next/data/")?;
        let rest = rest.strip_prefix(self.build_id.as_str())?;
        let page = rest.strip_suffix(".json")?;
        let (locale, page) = match self.locales.as_ref().and_then(|l| l.strip(page)) {
            Some((_, without)) => (&page[..page.len() - without.len()], without),
            None => ("", page),
        };
        let page = percent_decode_str(page).decode_utf8_lossy();
        Some((
            locale,
            if page == "/index" {
                "/".to_owned()
            } else {
                page.into_owned()
            },
        ))
    }
}

/// `path` without the `prefix` segment(s), or `None` when it is not under them.
fn strip_prefix_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// The decoded path without its first segment, which the raw path has as a locale (a
/// locale has no `%`, so decoding leaves it as it is).
fn without_locale(decoded: &str) -> &str {
    let after = decoded.strip_prefix('/').unwrap_or(decoded);
    match after.find('/') {
        Some(slash) => &after[slash..],
        None => "/",
    }
}

/// The path with runs of `/` and `\\` collapsed to one `/`, and no trailing slash.
fn canonical(path: &str) -> Cow<'_, str> {
    let clean =
        !path.contains("//") && !path.contains('\\') && (path == "/" || !path.ends_with('/'));
    if clean {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        let c = if c == '\\' { '/' } else { c };
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    Cow::Owned(out)
}

/// A decoded path without its trailing slash (`/` stays `/`).
fn normalize(decoded: &str) -> &str {
    match decoded.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// The request's query with route parameters added; a parameter replaces a query key of
/// the same name. Encoded as `application/x-www-form-urlencoded`.
pub(crate) fn merge_query(query: Option<&str>, params: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !params.iter().any(|(name, _)| *name == key) {
            out.append_pair(&key, &value);
        }
    }
    for (key, value) in params {
        out.append_pair(key, value);
    }
    out.finish()
}

fn with_question_mark(query: &str) -> Cow<'_, str> {
    if query.is_empty() {
        Cow::Borrowed("")
    } else {
        Cow::Owned(format!("?{query}"))
    }
}

fn collect_public_files(folder: &Path, prefix: String, files: &mut HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let url = format!("{prefix}/{name}");
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => collect_public_files(&entry.path(), url, files),
            Ok(kind) if kind.is_file() => {
                files.insert(url);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut table = RouteTable {
            build_id: "BUILD".into(),
            file_system_routes: true,
            ..RouteTable::default()
        };
        table
            .pages
            .extend(["/".to_owned(), "/about".to_owned(), "/legacy".to_owned()]);
        table.page_patterns.push(DynamicRoute {
            regex: JsRegex::new("^/blog/([^/]+?)(?:/)?$").unwrap(),
            page: "/blog/[slug]".into(),
        });
        table.public_files.insert("/hello world.txt".into());
        table
            .rules
            .push(JsRegex::new("^(?!/_next)/old-about(?:/)?$").unwrap());
        table.middleware.push(
            JsRegex::new(r"^(?:\/(_next\/data\/[^/]{1,}))?\/mw(?:\/((?:[^\/#\?]+?)(?:\/(?:[^\/#\?]+?))*))?(\.json)?[\/#\?]?$").unwrap(),
        );
        table
    }

    fn owner(table: &RouteTable, routing: &Routing, uri: &str) -> Owner {
        table.owner(routing, &uri.parse().unwrap())
    }

    fn is_next(owner: &Owner) -> bool {
        matches!(owner, Owner::Next(_))
    }

    #[test]
    fn filename_routes_public_files_rules_and_middleware_are_next() {
        let table = table();
        let routing = Routing::default();
        for uri in [
            "/",
            "/about",
            "/about/",
            "/blog/x",
            "/_next/static/a.js",
            "/hello%20world.txt",
            "/old-about",
            "/mw/x",
            "/legacy?q=1",
        ] {
            assert!(is_next(&owner(&table, &routing, uri)), "{uri}");
        }
        for uri in ["//about", "/hello%20world.txt/", "/blog//x"] {
            assert!(
                is_next(&owner(&table, &routing, uri)),
                "{uri}: Next redirects it"
            );
        }
        for uri in [
            "/healthz",
            "//healthz",
            "/rust/x",
            "/blog",
            "/blog/x/y",
            "/aboutx",
            "/_nextx",
        ] {
            assert_eq!(owner(&table, &routing, uri), Owner::Inner, "{uri}");
        }
    }

    #[test]
    fn file_system_routes_off_keeps_explicit_routes_and_assets() {
        let table = table();
        let mut routing = Routing::default();
        routing.set_file_system_routes(false);
        routing.add_route("/a", "/b");
        routing.add_route("/posts/{id}", "/post");
        routing.add_route("/pa", "/pb");

        assert_eq!(owner(&table, &routing, "/about"), Owner::Inner);
        assert!(is_next(&owner(&table, &routing, "/_next/static/a.js")));
        assert!(is_next(&owner(&table, &routing, "/hello%20world.txt")));
        assert_eq!(
            owner(&table, &routing, "/a?x=1"),
            Owner::Next(Target::Render {
                page: "/b".into(),
                query: "x=1".into()
            })
        );
        assert_eq!(
            owner(&table, &routing, "/posts/7?id=9&y=2"),
            Owner::Next(Target::Render {
                page: "/post".into(),
                query: "y=2&id=7".into()
            })
        );
        // Data routes: the back door to filename routes stays shut, explicit ones open.
        assert_eq!(
            owner(&table, &routing, "/_next/data/BUILD/legacy.json"),
            Owner::Inner
        );
        assert_eq!(
            owner(&table, &routing, "/_next/data/BUILD/pa.json?q=1"),
            Owner::Next(Target::Rewrite("/_next/data/BUILD/pb.json?q=1".into()))
        );
    }

    fn i18n_table() -> RouteTable {
        let mut table = table();
        table.pages.remove("/");
        table.pages.remove("/about");
        table
            .app_pages
            .extend(["/".to_owned(), "/about".to_owned()]);
        table.pages.insert("/api/ping".to_owned());
        let blog = table.page_patterns.pop().unwrap();
        table.app_patterns.push(blog);
        table.page_patterns.push(DynamicRoute {
            regex: JsRegex::new("^/post/([^/]+?)(?:/)?$").unwrap(),
            page: "/post/[id]".into(),
        });
        table.public_files.insert("/robots.txt".into());
        table.rules =
            vec![JsRegex::with_flags("^(?!/_next)(?:/(en|fr))/old-about(?:/)?$", "i").unwrap()];
        table.middleware = vec![
            JsRegex::new(r"^(?:\/(_next\/data\/[^/]{1,}))?(?:\/((?!_next\/)[^/.]{1,}))\/mw(?:\/((?:[^\/#\?]+?)(?:\/(?:[^\/#\?]+?))*))?(\.json)?[\/#\?]?$").unwrap(),
        ];
        table.locales = Locales::new(&crate::build::I18nConfig {
            locales: vec!["en".into(), "fr".into()],
            default_locale: "en".into(),
            locale_detection: true,
            domain_default_locales: Vec::new(),
        });
        table
    }

    #[test]
    fn i18n_locale_prefixes_follow_next() {
        let table = i18n_table();
        let routing = Routing::default();
        for uri in [
            "/legacy",
            "/en/legacy",
            "/fr/legacy",
            "/FR/legacy",
            "/fr/post/1",
            "/",
            "/en",
            "/about",
            "/en/about",
            "/blog/x",
            "/api/ping",
            "/robots.txt",
            "/en/robots.txt",
            "/en/_next/static/a.js",
            "/old-about",
            "/fr/old-about",
            "/FR/old-about",
            "/mw/x",
            "/fr/mw/x",
            "/_next/data/BUILD/fr/ssg.json",
        ] {
            assert!(is_next(&owner(&table, &routing, uri)), "{uri}");
        }
        for uri in [
            "/de/legacy",
            "/fr/fr/legacy",
            "/fr",
            "/fr/about",
            "/en/blog/x",
            "/fr/blog/x",
            "/en/api/ping",
            "/fr/api/ping",
            "/fr/robots.txt",
            "/fr/_next/static/a.js",
            "/de/old-about",
            "/de/mw/x",
            "/fr/healthz",
        ] {
            assert!(!is_next(&owner(&table, &routing, uri)), "{uri}");
        }
    }

    #[test]
    fn i18n_data_routes_keep_their_locale_for_explicit_routes() {
        let table = i18n_table();
        let mut routing = Routing::default();
        routing.set_file_system_routes(false);
        routing.add_route("/pa", "/pb");
        assert_eq!(
            owner(&table, &routing, "/_next/data/BUILD/fr/pa.json"),
            Owner::Next(Target::Rewrite("/_next/data/BUILD/fr/pb.json".into()))
        );
        assert_eq!(
            owner(&table, &routing, "/_next/data/BUILD/fr/legacy.json"),
            Owner::Inner
        );
        assert_eq!(owner(&table, &routing, "/fr/legacy"), Owner::Inner);
    }

    #[test]
    fn base_path_is_respected() {
        let mut table = table();
        table.base_path = "/docs".into();
        let routing = Routing::default();
        assert!(is_next(&owner(&table, &routing, "/docs/about")));
        assert!(is_next(&owner(&table, &routing, "/docs")));
        assert!(is_next(&owner(&table, &routing, "/docs/_next/static/x.js")));
        assert_eq!(owner(&table, &routing, "/about"), Owner::Inner);
        assert_eq!(owner(&table, &routing, "/docsx/about"), Owner::Inner);
    }
}
