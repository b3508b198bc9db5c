//! Crawler-based differential test (issue 10, item 2): what to ask comes from the build,
//! not from a hand list, and every answer of tower-next is compared with `next start`'s on
//! the same build.
//!
//! The app is `tests/fixtures/shapes` (a shop on the App Router, a blog on the Pages
//! Router: every route shape, see its files), built with the Next.js of the fixture in use
//! (`TOWER_NEXT_FIXTURE`), and built again with `basePath: '/shop'` and
//! `trailingSlash: true`.
//!
//! # What is asked
//!
//! Paths, at most [`MAX_PATHS`], in this order:
//! - every route of `prerender-manifest.json`, its data route (`.json` or `.rsc`), and for
//!   each dynamic route a path it did not prerender (each dynamic segment [`MADE_UP`]);
//! - every route of `app-path-routes-manifest.json` and every page of
//!   `server/pages-manifest.json`, dynamic ones filled the same way;
//! - every `public/` file, each name segment encoded as `encodeURIComponent` does;
//! - the `/_next/static` files the home page links;
//! - the same-origin `href`s of every HTML page `next start` answers, as they are found,
//!   and its `next/image` URLs (`/_next/image`, from `src` and `srcset`).
//!
//! Each path is asked in these variants ([`Variant`]): `GET`, `HEAD`, the trailing slash
//! toggled, the last segment upper-cased, `RSC: 1` (App Router pages, known by the `RSC`
//! in their `Vary`), the page's data route with and without `x-nextjs-data: 1` (Pages
//! Router pages, known by their `__NEXT_DATA__`), `If-None-Match` with the ETag that
//! server sent for the `GET`; and, once per folder, a `GET` of an unknown sibling
//! ([`SIBLING`]).
//!
//! # How answers are compared
//!
//! Each request goes to `next start`, then to tower-next, then to `next start` again: a
//! body or header that `next start` itself changes between its two answers (the time,
//! React's per-render ids, a cache state moving on) is not compared; the rest is. Compared:
//! the status, every header but [`responses::IGNORED_HEADERS`] (hop-by-hop and the clock; `ETag` and
//! `Content-Length` only where the body is stable) as a multiset, and the bytes where the
//! body is stable. Pages that revalidate (ISR: `initialRevalidateSeconds` in the prerender
//! manifest) regenerate on each server's own clock: their status only.
//!
//! Before comparing, every path is asked twice of both servers (`GET`, and `RSC: 1` or the
//! data route), so that pages rendered on first request (`fallback: true` and
//! `'blocking'`, `dynamicParams`) are in each server's cache, as in the differential test.
//!
//! tower-next runs in the `axum_layer` example's shape
//! (`Router::new().fallback_service(next.service()).layer(NextLayer::new(next))`) with one
//! worker, as `next start` is one process, and marks its native answers, which are
//! counted. `next start -H localhost`, as tower-next tells Next `localhost`.
//!
//! Differences that are known are listed in [`EXCEPTIONS`], each with its reason; any
//! other fails the test, with a table of the requests and both answers.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reqwest::Method;
use support::responses::{self, BODY_HEADERS, Captured, describe_body_difference};
use tokio::sync::Mutex;
use tower_next::NextOptions;

/// The most paths the crawl asks (siblings not counted: one per folder).
const MAX_PATHS: usize = 300;

/// How long the crawl, the warm-up and the comparison may take, each.
const CRAWL_TIME: Duration = Duration::from_secs(40);
const WARM_TIME: Duration = Duration::from_secs(60);
const COMPARE_TIME: Duration = Duration::from_secs(150);

/// The value given to every dynamic segment of a route the build did not prerender.
const MADE_UP: &str = "made-up";

/// The last segment of the unknown sibling asked in each folder.
const SIBLING: &str = "zz-no-such-page";

/// The header in which tower-next names the responder of a native answer.
const NATIVE_HEADER: &str = "x-tower-next-native";

/// A known difference: a request of `variant` whose path matches `path` (`*` matches any
/// run of characters) and whose differences include one that starts with `difference`.
/// All of that pair's differences are then known.
struct Exception {
    /// The Next.js major versions it is seen on.
    next: &'static [u32],
    variant: Variant,
    path: &'static str,
    difference: &'static str,
    reason: &'static str,
}

/// The known differences, each with its reason.
const EXCEPTIONS: &[Exception] = &[
    // `GET /shop/products/1.rsc/` (and `/shop/products/2.rsc/`): next start answers `308`
    // with `Location: /shop/products/1.rsc` and `Refresh: 0;url=/shop/products/1.rsc`, by
    // the build's own trailing-slash redirect for file-like paths
    // (`/:file((?!\.well-known(?:/.*)?)(?:[^/]+/)*[^/]+\.\w+)/` in routes-manifest.json,
    // any last segment with an extension, whether or not a file exists); tower-next's
    // layer does not claim the path, and the fallback answers Next's not-found page (`404`,
    // `s-maxage=31536000`, `x-nextjs-cache: HIT`). Left so on purpose for now: the layer
    // claims a spelling Next would redirect only when its target is Next's, and claiming
    // every `*.ext/` under basePath would take such paths from the inner service.
    Exception {
        next: &[15, 16],
        variant: Variant::SlashToggled,
        path: "/shop/*.rsc/",
        difference: "status 308 vs 404",
        reason: "trailingSlash: true: Next's 308 for a file-like path with a trailing slash \
             is not claimed by the layer (its target is not Next's)",
    },
];

/// One way of asking a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    Get,
    Head,
    SlashToggled,
    UpperCased,
    Rsc,
    Data,
    ClientData,
    Conditional,
    Sibling,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Get => "GET",
            Variant::Head => "HEAD",
            Variant::SlashToggled => "GET, trailing slash toggled",
            Variant::UpperCased => "GET, last segment upper-cased",
            Variant::Rsc => "GET RSC: 1",
            Variant::Data => "GET data route",
            Variant::ClientData => "GET data route, x-nextjs-data: 1",
            Variant::Conditional => "GET If-None-Match",
            Variant::Sibling => "GET unknown sibling",
        }
    }
}

/// Which router answered a page, as `next start`'s `GET` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `RSC` in `Vary`: asked with `RSC: 1` too.
    App,
    /// `__NEXT_DATA__` in the HTML: its data route is asked too.
    Pages,
    Other,
}

/// A path to ask, where it came from, and what its first answer showed.
struct Target {
    path: String,
    from: &'static str,
    /// An ISR page or its data route: the status only is compared.
    revalidates: bool,
    kind: Kind,
    /// An unknown sibling: asked with `GET` only.
    sibling: bool,
}

/// What the paths of a build depend on.
struct Build<'a> {
    dir: &'a Path,
    base_path: &'static str,
    trailing_slash: bool,
    build_id: String,
}

impl Build<'_> {
    /// The public path of a page route: basePath, and the trailing slash if configured.
    fn page(&self, route: &str) -> String {
        let mut path = format!(
            "{}{}",
            self.base_path,
            if route == "/" { "" } else { route }
        );
        if self.trailing_slash || path.is_empty() {
            path.push('/');
        }
        path
    }

    /// The public path of a file (no trailing slash).
    fn file(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }

    /// The data route of a Pages Router page's public path.
    fn data_route(&self, path: &str) -> String {
        let (path, query) = split_query(path);
        let route = path.strip_prefix(self.base_path).unwrap_or(path);
        let route = route.trim_end_matches('/');
        let route = if route.is_empty() { "/index" } else { route };
        format!(
            "{}/_next/data/{}{route}.json{query}",
            self.base_path, self.build_id
        )
    }

    fn manifest(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(".next").join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// The paths the build names, before the crawl adds the links it finds: (path, where
/// from, revalidates).
fn build_paths(build: &Build) -> Vec<(String, &'static str, bool)> {
    let mut paths = vec![(build.page("/"), "home", false)];
    let prerender = build.manifest("prerender-manifest.json");
    for (route, entry) in prerender["routes"].as_object().unwrap() {
        let revalidates = entry["initialRevalidateSeconds"].is_number();
        paths.push((build.page(route), "prerender-manifest route", revalidates));
        if let Some(data) = entry["dataRoute"].as_str() {
            paths.push((
                build.file(data),
                "prerender-manifest data route",
                revalidates,
            ));
        }
    }
    for route in prerender["dynamicRoutes"].as_object().unwrap().keys() {
        let path = build.page(&made_up(route));
        paths.push((
            path,
            "prerender-manifest dynamic route, not prerendered",
            false,
        ));
    }
    let app = build.manifest("app-path-routes-manifest.json");
    for route in app.as_object().unwrap().values() {
        let route = made_up(route.as_str().unwrap());
        paths.push((build.page(&route), "app-path-routes-manifest", false));
    }
    let pages = build.manifest("server/pages-manifest.json");
    for route in pages.as_object().unwrap().keys() {
        paths.push((build.page(&made_up(route)), "pages-manifest", false));
    }
    let mut files = Vec::new();
    public_files(&build.dir.join("public"), "", &mut files);
    files.sort();
    for file in files {
        paths.push((build.file(&file), "public/", false));
    }
    paths
}

/// `route` with each dynamic segment (`[id]`, `[...all]`, `[[...opt]]`) [`MADE_UP`].
fn made_up(route: &str) -> String {
    route
        .split('/')
        .map(|segment| {
            if segment.starts_with('[') {
                MADE_UP
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The URL paths of the files under `dir`, each segment as `encodeURIComponent` writes it.
fn public_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}/{}", encode_uri_component(&name));
        if entry.path().is_dir() {
            public_files(&entry.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}

fn encode_uri_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The same-origin `href`s of an HTML page, without their fragment.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| {
            let value = rest[..rest.find('"')?].replace("&amp;", "&");
            let value = value
                .strip_prefix("http://localhost:3000")
                .unwrap_or(&value);
            let value = value.split('#').next().unwrap_or_default();
            (value.starts_with('/') && !value.starts_with("//")).then(|| value.to_owned())
        })
        .collect()
}

/// The `/_next/image` URLs of an HTML page (`next/image`'s `src` and `srcset`).
fn images(html: &str, base_path: &str) -> Vec<String> {
    let prefix = format!("{base_path}/_next/image?");
    let images: BTreeSet<String> = html
        .split(['"', ',', ' '])
        .filter(|s| s.starts_with(&prefix))
        .map(|s| s.replace("&amp;", "&"))
        .collect();
    images.into_iter().collect()
}

/// The `/_next/static` files an HTML page links (`src` and `href`).
fn static_files(html: &str, base_path: &str) -> Vec<String> {
    let prefix = format!("{base_path}/_next/static/");
    let files: BTreeSet<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with(&prefix))
        .collect();
    files.into_iter().map(str::to_owned).collect()
}

fn split_query(path: &str) -> (&str, &str) {
    path.find('?').map_or((path, ""), |at| path.split_at(at))
}

/// `path` with its trailing slash added or removed (`None` for the root).
fn slash_toggled(path: &str) -> Option<String> {
    let (path, query) = split_query(path);
    if path == "/" {
        return None;
    }
    Some(match path.strip_suffix('/') {
        Some(without) => format!("{without}{query}"),
        None => format!("{path}/{query}"),
    })
}

/// `path` with its last segment upper-cased (`None` when that changes nothing).
fn upper_cased(path: &str) -> Option<String> {
    let (path, query) = split_query(path);
    let trimmed = path.trim_end_matches('/');
    let at = trimmed.rfind('/')? + 1;
    let last = &trimmed[at..];
    let upper = last.to_uppercase();
    (upper != last).then(|| format!("{}{upper}{}{query}", &trimmed[..at], &path[trimmed.len()..]))
}

/// The unknown sibling of `path`, in its folder (`None` for the root).
fn sibling(path: &str, trailing_slash: bool) -> Option<String> {
    let (path, _) = split_query(path);
    let trimmed = path.trim_end_matches('/');
    let at = trimmed.rfind('/')? + 1;
    let slash = if trailing_slash { "/" } else { "" };
    Some(format!("{}{SIBLING}{slash}", &trimmed[..at]))
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&at| rest.is_char_boundary(at))
                .any(|at| glob(tail, &rest[at..]))
        }
    }
}

/// `next start` and tower-next.
struct Servers {
    client: reqwest::Client,
    reference: SocketAddr,
    ours: SocketAddr,
}

/// One request's answers: `next start`'s, tower-next's, and `next start`'s again.
struct Exchange {
    reference: Result<Captured, String>,
    ours: Result<Captured, String>,
    again: Result<Captured, String>,
}

impl Servers {
    /// Both servers at once (the warm-up).
    async fn both(&self, path: &str, headers: &[(&str, &str)]) {
        let _ = tokio::join!(
            responses::send(&self.client, self.reference, Method::GET, path, headers),
            responses::send(&self.client, self.ours, Method::GET, path, headers),
        );
    }

    /// `next start`, tower-next, `next start` again, one after the other; each server with
    /// its own headers (its own ETag).
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        reference_headers: &[(&str, &str)],
        our_headers: &[(&str, &str)],
    ) -> Exchange {
        let send =
            |addr, method, headers| responses::send(&self.client, addr, method, path, headers);
        let reference = send(self.reference, method.clone(), reference_headers).await;
        let ours = send(self.ours, method.clone(), our_headers).await;
        let again = send(self.reference, method, reference_headers).await;
        Exchange {
            reference,
            ours,
            again,
        }
    }
}

/// A compared pair that differed.
struct Mismatch {
    variant: Variant,
    /// The request's path (for a variant, the path asked).
    request: String,
    target: String,
    differences: Vec<String>,
    /// Why it is known, when every difference is listed in [`EXCEPTIONS`].
    reasons: Vec<&'static str>,
    /// Both answers, in a line each.
    answers: (String, String),
}

#[derive(Default)]
struct Report {
    paths: usize,
    left_out: usize,
    compared: usize,
    matched: usize,
    native: usize,
    by_variant: BTreeMap<Variant, (usize, usize)>,
    mismatches: Vec<Mismatch>,
}

impl Report {
    fn unexpected(&self) -> impl Iterator<Item = &Mismatch> {
        self.mismatches.iter().filter(|m| m.reasons.is_empty())
    }

    fn table(&self, known: bool) -> String {
        let mut out = String::new();
        for m in &self.mismatches {
            if m.reasons.is_empty() == known {
                continue;
            }
            let _ = writeln!(
                out,
                "  {} {} (of {}):\n    next start: {}\n    tower-next: {}",
                m.variant.name(),
                m.request,
                m.target,
                m.answers.0,
                m.answers.1
            );
            for difference in &m.differences {
                let _ = writeln!(out, "    - {difference}");
            }
            for reason in &m.reasons {
                let _ = writeln!(out, "    known: {reason}");
            }
        }
        out
    }
}

/// One at a time: both builds share the machine's two cores with their servers.
static ONE_BUILD_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn every_path_the_build_names_answers_as_with_next_start() {
    crawl(support::shapes_fixture, "", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_base_path_and_trailing_slash_every_path_answers_as_with_next_start() {
    crawl(support::shapes_base_path_fixture, "/shop", true).await;
}

/// Builds the app with `fixture` (one build at a time) and compares.
async fn crawl(fixture: fn() -> PathBuf, base_path: &'static str, trailing_slash: bool) {
    let _one = ONE_BUILD_AT_A_TIME.lock().await;
    let dir = &fixture();
    let started = Instant::now();
    let build = Build {
        dir,
        base_path,
        trailing_slash,
        build_id: std::fs::read_to_string(dir.join(".next/BUILD_ID")).unwrap(),
    };
    let reference = support::next_start_in(&support::fresh_copy(dir, "next-start"));
    support::init_tracing();
    let next = tower_next::Next::prepare(
        NextOptions::new(support::fresh_copy(dir, "tower-next"))
            .workers(1)
            .mark_native_responses(true),
    )
    .await
    .expect("prepare the shapes fixture");
    let ours = support::serve_axum_layer(&next).await;
    let servers = Servers {
        client: support::client(),
        reference: reference.addr,
        ours,
    };

    let mut report = Report::default();
    let targets = discover(&servers, &build, &mut report).await;
    report.paths = targets.len();
    support::progress(&format!(
        "{}: {} paths ({} left out past {MAX_PATHS}), crawled in {:.1?}",
        dir.display(),
        targets.len(),
        report.left_out,
        started.elapsed()
    ));
    warm(&servers, &build, &targets).await;
    let deadline = Instant::now() + COMPARE_TIME;
    let mut done = 0;
    for target in &targets {
        if Instant::now() > deadline {
            break;
        }
        compare_target(&servers, &build, target, &mut report).await;
        done += 1;
    }
    next.shutdown().await;
    drop(reference);

    let mut summary = String::new();
    for (variant, (compared, matched)) in &report.by_variant {
        let _ = writeln!(
            summary,
            "  {:34} {matched:4} of {compared:4} matched",
            variant.name()
        );
    }
    support::progress(&format!(
        "{}: compared {} (path, variant) pairs of {} paths in {:.1?}: {} matched, {} known \
         differences, {} unexpected; {} answered natively by tower-next\n{summary}known \
         differences:\n{}",
        dir.display(),
        report.compared,
        report.paths,
        started.elapsed(),
        report.matched,
        report.mismatches.len() - report.unexpected().count(),
        report.unexpected().count(),
        report.native,
        report.table(true),
    ));
    assert_eq!(
        done,
        targets.len(),
        "the comparison did not finish within {COMPARE_TIME:?}"
    );
    assert!(
        report.unexpected().next().is_none(),
        "{} difference(s) between next start and tower-next:\n{}",
        report.unexpected().count(),
        report.table(false)
    );
}

/// The paths to ask: those the build names, then the links `next start`'s pages hold,
/// breadth first, at most [`MAX_PATHS`]; then one unknown sibling per folder.
async fn discover(servers: &Servers, build: &Build<'_>, report: &mut Report) -> Vec<Target> {
    let deadline = Instant::now() + CRAWL_TIME;
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    let mut enqueue =
        |path: String, from: &'static str, revalidates: bool, queue: &mut VecDeque<Target>| {
            if seen.contains(&path) {
                return;
            }
            if seen.len() == MAX_PATHS {
                report.left_out += 1;
                return;
            }
            seen.insert(path.clone());
            queue.push_back(Target {
                path,
                from,
                revalidates,
                kind: Kind::Other,
                sibling: false,
            });
        };
    for (path, from, revalidates) in build_paths(build) {
        enqueue(path, from, revalidates, &mut queue);
    }
    let mut targets = Vec::new();
    while let Some(mut target) = queue.pop_front() {
        assert!(
            Instant::now() < deadline,
            "the crawl did not finish within {CRAWL_TIME:?}"
        );
        let answer = responses::send(
            &servers.client,
            servers.reference,
            Method::GET,
            &target.path,
            &[],
        )
        .await
        .unwrap_or_else(|err| panic!("next start answers {}: {err}", target.path));
        let html = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if html {
            let body = String::from_utf8_lossy(&answer.body);
            let vary = answer
                .header("vary")
                .unwrap_or_default()
                .to_ascii_lowercase();
            target.kind = if vary.split(',').any(|v| v.trim() == "rsc") {
                Kind::App
            } else if body.contains("__NEXT_DATA__") {
                Kind::Pages
            } else {
                Kind::Other
            };
            if target.from == "home" {
                for file in static_files(&body, build.base_path) {
                    enqueue(file, "linked by the home page", false, &mut queue);
                }
            }
            for link in links(&body) {
                enqueue(link, "a link in a page", false, &mut queue);
            }
            for image in images(&body, build.base_path) {
                enqueue(image, "an image in a page", false, &mut queue);
            }
        }
        targets.push(target);
    }
    let siblings: BTreeSet<String> = targets
        .iter()
        .filter_map(|t| sibling(&t.path, build.trailing_slash))
        .filter(|path| !seen.contains(path))
        .collect();
    targets.extend(siblings.into_iter().map(|path| Target {
        path,
        from: "sibling",
        revalidates: false,
        kind: Kind::Other,
        sibling: true,
    }));
    targets
}

/// Every path twice on both servers: `GET`, and `RSC: 1` or the data route.
async fn warm(servers: &Servers, build: &Build<'_>, targets: &[Target]) {
    let deadline = Instant::now() + WARM_TIME;
    for _ in 0..2 {
        for target in targets {
            assert!(
                Instant::now() < deadline,
                "the warm-up did not finish within {WARM_TIME:?}"
            );
            servers.both(&target.path, &[]).await;
            match target.kind {
                Kind::App => servers.both(&target.path, &[("rsc", "1")]).await,
                Kind::Pages => servers.both(&build.data_route(&target.path), &[]).await,
                Kind::Other => {}
            }
        }
    }
}

/// One request of a comparison: its variant, method, path and headers.
type Ask = (Variant, Method, String, Vec<(&'static str, &'static str)>);

async fn compare_target(
    servers: &Servers,
    build: &Build<'_>,
    target: &Target,
    report: &mut Report,
) {
    let mut asks: Vec<Ask> = Vec::new();
    if target.sibling {
        asks.push((Variant::Sibling, Method::GET, target.path.clone(), vec![]));
    } else {
        asks.push((Variant::Get, Method::GET, target.path.clone(), vec![]));
        asks.push((Variant::Head, Method::HEAD, target.path.clone(), vec![]));
        if let Some(path) = slash_toggled(&target.path) {
            asks.push((Variant::SlashToggled, Method::GET, path, vec![]));
        }
        if let Some(path) = upper_cased(&target.path) {
            asks.push((Variant::UpperCased, Method::GET, path, vec![]));
        }
        match target.kind {
            Kind::App => asks.push((
                Variant::Rsc,
                Method::GET,
                target.path.clone(),
                vec![("rsc", "1")],
            )),
            Kind::Pages => {
                let data = build.data_route(&target.path);
                asks.push((Variant::Data, Method::GET, data.clone(), vec![]));
                asks.push((
                    Variant::ClientData,
                    Method::GET,
                    data,
                    vec![("x-nextjs-data", "1")],
                ));
            }
            Kind::Other => {}
        }
    }
    let mut etags = None;
    for (variant, method, path, headers) in asks {
        let exchange = servers.exchange(method, &path, &headers, &headers).await;
        if variant == Variant::Get {
            etags = match (&exchange.reference, &exchange.ours) {
                (Ok(r), Ok(o)) => r
                    .header("etag")
                    .zip(o.header("etag"))
                    .map(|(r, o)| (r.to_owned(), o.to_owned())),
                _ => None,
            };
        }
        record(report, target, variant, &path, exchange);
    }
    // Each server is asked with its own ETag: whether revalidation works, not whether
    // the ETags are equal (the `GET` compares those where the body is stable).
    if let Some((reference_etag, our_etag)) = etags {
        let exchange = servers
            .exchange(
                Method::GET,
                &target.path,
                &[("if-none-match", &reference_etag)],
                &[("if-none-match", &our_etag)],
            )
            .await;
        record(report, target, Variant::Conditional, &target.path, exchange);
    }
}

fn record(report: &mut Report, target: &Target, variant: Variant, path: &str, exchange: Exchange) {
    report.compared += 1;
    let counts = report.by_variant.entry(variant).or_default();
    counts.0 += 1;
    let describe = |side: &Result<Captured, String>| match side {
        Ok(c) => {
            let header = |name| c.header(name).unwrap_or("-");
            format!(
                "{} location {} cache-control {} content-type {} etag {} ({} bytes)",
                c.status,
                header("location"),
                header("cache-control"),
                header("content-type"),
                header("etag"),
                c.body.len()
            )
        }
        Err(e) => format!("request failed: {e}"),
    };
    let answers = (describe(&exchange.reference), describe(&exchange.ours));
    let differences = match exchange {
        Exchange {
            reference: Ok(reference),
            ours: Ok(mut ours),
            again: Ok(again),
        } => {
            if ours.headers.remove(NATIVE_HEADER).is_some() {
                report.native += 1;
            }
            differences(&reference, &ours, &again, target.revalidates)
        }
        _ => vec!["a request failed".to_owned()],
    };
    if differences.is_empty() {
        report.matched += 1;
        counts.1 += 1;
        return;
    }
    let major = support::next_major();
    let known = EXCEPTIONS.iter().find(|e| {
        e.next.contains(&major)
            && e.variant == variant
            && glob(e.path, path)
            && differences.iter().any(|d| d.starts_with(e.difference))
    });
    let reasons: Vec<_> = known.map(|e| e.reason).into_iter().collect();
    report.mismatches.push(Mismatch {
        variant,
        request: path.to_owned(),
        target: format!("{} from {}", target.path, target.from),
        differences,
        reasons,
        answers,
    });
}

/// What differs between `next start`'s answer and tower-next's, leaving out what
/// `next start`'s second answer (`again`) shows to change from one request to the next.
fn differences(
    reference: &Captured,
    ours: &Captured,
    again: &Captured,
    revalidates: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if reference.status != ours.status {
        out.push(format!("status {} vs {}", reference.status, ours.status));
    }
    if revalidates {
        return out;
    }
    let stable_body = reference.body == again.body;
    for name in responses::compared_headers(reference, ours) {
        if !stable_body && BODY_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let sorted = |c: &Captured| {
            let mut values = c.headers.get(name).cloned().unwrap_or_default();
            values.sort();
            values
        };
        let (r, o, a) = (sorted(reference), sorted(ours), sorted(again));
        if r != a {
            continue;
        }
        if r != o {
            out.push(format!("{name}: {r:?} vs {o:?}"));
        }
    }
    if stable_body && reference.body != ours.body {
        out.push(describe_body_difference(&reference.body, &ours.body));
    }
    out
}
