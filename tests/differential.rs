//! Differential test (issue 2, item 9; issue 4, item 4): for every route of the fixture
//! app, the response through the axum layer equals `next start`'s on the same build, and
//! so does every answer tower-next gives natively, without Node.
//!
//! Both servers run the fixture's one build at the same time. Every route is asked the same
//! requests, each with `Host: localhost:3000`, in these variants:
//!
//! - `GET`;
//! - `GET` with `RSC: 1` (App Router pages and the rules that lead to them), and the
//!   client router's navigation and prefetch requests (`Next-Router-State-Tree`,
//!   `Next-Router-Prefetch`, and the `_rsc` hash Next 16 checks, computed by the fixture's
//!   own Next.js);
//! - `HEAD`;
//! - `GET` with `If-None-Match: <ETag of that server's GET>` where the GETs had an ETag;
//! - `GET` with `If-Modified-Since: <Last-Modified of that server's GET>` where they had one;
//! - `GET` with `Range: bytes=0-9`;
//! - `GET` with `Accept-Encoding: gzip`;
//! - `GET` with `x-nextjs-data: 1` for `/_next/data` routes, as the client router asks.
//!
//! Besides the hand-listed routes, every page in the build's `prerender-manifest.json` is
//! asked, with its trailing-slash spelling and its data route, and each dynamic Pages
//! Router route without fallback is asked a path it did not prerender
//! ([`prerendered_routes`]).
//!
//! Compared: the status; every response header, present on one side only or with other
//! values (a multiset, so repeated `Set-Cookie` and `x-nextjs-prerender` fields count),
//! except those listed below; and the body, byte for byte, where the route's [`Stability`]
//! says it is the same on every request (empty bodies, of `HEAD` and `304`, always; for the
//! gzip variant, the compressed bytes: both sides are Node's zlib with Next's settings, as
//! tower-next's native gzip answers are Node's, learned once and verified).
//! Every difference is collected and the test fails once, with a table.
//!
//! # Native answers
//!
//! tower-next runs with `NextOptions::mark_native_responses(true)`: each answer Rust gives
//! itself carries `x-tower-next-native: <responder>`. The header is taken out before the
//! comparison and recorded; the test prints which (route, variant) pairs were native. Routes
//! made with [`Route::native`] must be answered natively in every variant, so a silent
//! fall-back to Node fails the test instead of passing for a native answer.
//!
//! Before comparing, each route is requested twice on each server (`GET`, gzip, and
//! `RSC: 1` for App Router pages): Next writes its runtime cache entries
//! (`.next/server/route-cache`) on first requests, a page rendered on demand (`/blog/other`)
//! answers `x-nextjs-cache: STALE` without `Cache-Control` the first time and `HIT` with it
//! afterwards (tower-next answers it natively once the worker has reported the write), and
//! tower-next learns a gzip answer from the worker's first one. The two servers share the
//! build folder but not their in-memory caches, so each one is warmed.
//!
//! A third test does the same on the fixture built with basePath, assetPrefix,
//! trailingSlash, distDir and more header rules ([`configured_routes`]).
//!
//! # Differences on purpose
//!
//! - `connection`, `keep-alive`, `transfer-encoding`: hop-by-hop (RFC 9110 §7.6.1). Next
//!   sends `Connection: keep-alive` and `Keep-Alive: timeout=5` for its own sockets; the
//!   proxy drops a worker's hop-by-hop headers and hyper chooses the framing towards the
//!   client.
//! - `date`: the clock.
//! - Bodies and body-derived headers (`ETag`, `Content-Length`) of responses rendered per
//!   request ([`Stability::PerRequest`]): they hold the time, the request's forwarded
//!   headers, or React's per-render ids (the RSC payload of every dynamically rendered
//!   page). Status and every other header are still compared.
//! - The ISR page `/isr` ([`Stability::Revalidating`]): each server regenerates it on its
//!   own clock (`revalidate = 5`), so besides the body, `ETag` and `Content-Length`,
//!   `x-nextjs-cache` may be `HIT` on one and `STALE` on the other, and a conditional GET
//!   may be `304` on one and `200` on the other, but only when that `200` carries a new ETag
//!   (the page was regenerated between the GET and the conditional GET).
//! - The `X-Forwarded-*` request headers a page sees (checked on `/api/echo-headers`).
//!   `X-Forwarded-Port` is the port Next is told: `next start`'s own listening port, and for
//!   tower-next `NextOptions::port` (3000 by default, the public port), since its worker
//!   listens on a Unix socket. And `next start` passes on whatever `X-Forwarded-For/Host/
//!   Proto/Port` a client sends, while tower-next replaces them with what it saw itself
//!   (`NextOptions::trust_forwarded_headers` is off by default: the Rust server is the edge).
//! - A path no one owns (`/nope`) through the layer reaches the inner service (DESIGN.md
//!   §2, rule 4), whose 404 is axum's empty one, not Next's page. That is checked as such;
//!   Next's own 404 page for it is compared through [`tower_next::Next::service`] as the
//!   router's fallback ([`Via::Service`]).
//!
//! # Non-canonical paths
//!
//! `non_canonical_paths_of_next_routes_redirect_as_with_next_start`: `next start` answers
//! `//about`, `/images//dot.svg`, `/hello.txt/` and `/images/dot.svg/` with a `308` to the
//! canonical path; the layer must give them to Next, not to the inner service.
//!
//! # The reference
//!
//! `next start -H localhost`, not `tests/support`'s `next_start()` (which passes
//! `-H 127.0.0.1`): given an IP, Next treats a middleware rewrite as external and proxies it
//! to itself over HTTP (DESIGN.md §3), so `/mw/rewrite` would answer with
//! `x-middleware-rewrite: http://localhost:<port>/about`, the rewritten page's next.config
//! headers and `connection: close` — an artifact of that flag that a default `next start`
//! does not have. tower-next tells Next `localhost` as well (its default `hostname`).

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use reqwest::Method;
use support::responses::{self, BODY_HEADERS, Captured, HOST, describe_body_difference};
use tower_next::{NextLayer, NextOptions};

/// The header in which tower-next names the responder of a native answer
/// (`NextOptions::mark_native_responses`); taken out before comparing.
const NATIVE_HEADER: &str = "x-tower-next-native";

/// How much of a route's response is the same from one request to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stability {
    /// The same bytes every time (prerendered pages, files, static JSON, redirects, the 404
    /// page, and dynamic HTML that holds nothing per request): everything is compared.
    Stable,
    /// Rendered per request (time, forwarded headers, React's per-render ids): status and
    /// headers, not the body nor `ETag`/`Content-Length`.
    PerRequest,
    /// Regenerated in the background on each server's own clock (ISR): as `PerRequest`,
    /// and `x-nextjs-cache` may be `HIT` or `STALE`.
    Revalidating,
}

/// Which of our servers a route is asked through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// The axum app with [`NextLayer`]: the subject of this test.
    Layer,
    /// An axum app with [`tower_next::Next::service`] as its fallback: for what the layer
    /// rightly leaves to the inner service.
    Service,
}

struct Route {
    path: String,
    /// The HTML (or file, JSON, redirect) response.
    stability: Stability,
    /// `Some` for App Router pages: the `RSC: 1` variant and its payload's stability.
    rsc: Option<Stability>,
    via: Via,
    /// Rust must answer every variant of this route natively (see [`NATIVE_HEADER`]).
    native: bool,
}

impl Route {
    fn new(path: impl Into<String>, stability: Stability) -> Route {
        Route {
            path: path.into(),
            stability,
            rsc: None,
            via: Via::Layer,
            native: false,
        }
    }

    /// Rust answers every variant of this route natively, after the warm-up.
    fn native(self) -> Route {
        Route {
            native: true,
            ..self
        }
    }

    /// An App Router page (or a rule leading to one): also asked with `RSC: 1`.
    fn app(path: impl Into<String>, html: Stability, rsc: Stability) -> Route {
        Route {
            rsc: Some(rsc),
            ..Route::new(path, html)
        }
    }

    fn via(self, via: Via) -> Route {
        Route { via, ..self }
    }

    /// How stable the route's answer to `variant` is.
    fn stability(&self, variant: Variant) -> Stability {
        match (variant, self.rsc) {
            (Variant::Rsc | Variant::RscNavigation | Variant::RscPrefetch, Some(rsc)) => rsc,
            _ => self.stability,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Get,
    Rsc,
    RscNavigation,
    RscPrefetch,
    Head,
    Conditional,
    Modified,
    Range,
    Gzip,
    /// A data route as the client router asks it, with `x-nextjs-data: 1`.
    ClientData,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Get => "GET",
            Variant::Rsc => "GET RSC: 1",
            Variant::RscNavigation => "GET RSC navigation",
            Variant::RscPrefetch => "GET RSC prefetch",
            Variant::Head => "HEAD",
            Variant::Conditional => "GET If-None-Match",
            Variant::Modified => "GET If-Modified-Since",
            Variant::Range => "GET Range: bytes=0-9",
            Variant::Gzip => "GET gzip",
            Variant::ClientData => "GET x-nextjs-data: 1",
        }
    }
}

/// Every route of the fixture app.
fn routes(build_id: &str, assets: &[String]) -> Vec<Route> {
    use Stability::{PerRequest, Revalidating, Stable};
    let mut routes = vec![
        // App Router pages.
        Route::app("/", Stable, Stable).native(),
        Route::app("/about", Stable, Stable).native(),
        Route::new("/about/", Stable), // trailing slash: 308 to /about
        Route::app("/dynamic", PerRequest, PerRequest),
        Route::app("/isr", Revalidating, Revalidating),
        Route::app("/streaming", PerRequest, PerRequest),
        Route::app("/blog/hello", Stable, Stable).native(),
        Route::app("/blog/world", Stable, Stable).native(),
        // Rendered on first request, then cached: native once the worker reported it (or,
        // on Next 16, read at start when an earlier process of this build wrote it).
        Route::app("/blog/other", Stable, Stable).native(),
        Route::app("/pricing", Stable, Stable).native(),
        Route::app("/action", Stable, Stable).native(),
        // Rendered per request, but their HTML holds nothing that changes.
        Route::app("/docs/a/b", Stable, PerRequest),
        Route::app("/shop", Stable, PerRequest),
        Route::app("/shop/x", Stable, PerRequest),
        Route::app("/b", Stable, PerRequest),
        Route::app("/b?x=1&y=two", Stable, PerRequest),
        Route::app("/post?id=7", Stable, PerRequest),
        // App Router route handlers.
        Route::new("/api/hello", Stable),
        Route::new("/api/cookies", Stable),
        Route::new("/api/echo-headers", PerRequest),
        // Pages Router.
        Route::new("/legacy", Stable).native(),
        Route::new("/ssr", PerRequest),
        Route::new("/ssg", Stable).native(),
        Route::new("/pb?x=1", Stable),
        Route::new("/api/ping", Stable),
        Route::new(format!("/_next/data/{build_id}/ssg.json"), Stable).native(),
        Route::new(format!("/_next/data/{build_id}/ssr.json"), PerRequest),
        Route::new(format!("/_next/data/{build_id}/pb.json?x=1"), Stable),
        Route::new("/_next/data/not-the-build/ssg.json", Stable),
        // Middleware and next.config rules.
        Route::app("/mw/rewrite", Stable, Stable),
        Route::app("/mw/other", Stable, Stable),
        Route::app("/old-about", Stable, Stable),
        Route::app("/rewritten", Stable, Stable),
        // public/ files.
        Route::new("/robots.txt", Stable).native(),
        Route::new("/hello.txt", Stable).native(),
        Route::new("/images/dot.svg", Stable).native(),
        // Build assets.
        Route::new("/_next/static/chunks/does-not-exist.js", Stable),
        // Other spellings of Next's routes that Next serves as such.
        Route::app("/%61bout", Stable, Stable),
        Route::app("/about?x=1", Stable, Stable).native(),
        Route::app("/docs/a%20b/c", Stable, PerRequest),
        Route::app("/blog/hello/", Stable, Stable), // 308 to /blog/hello
        Route::new("/legacy/", Stable),
        Route::new("/api/hello/", Stable),
        // The image optimizer (SVG is refused without `dangerouslyAllowSVG`).
        Route::new("/_next/image?url=%2Fimages%2Fdot.svg&w=64&q=75", Stable),
        // Next's 404 page (see `Via::Service`), and the not-found page asked for by name.
        Route::app("/nope", Stable, Stable)
            .via(Via::Service)
            .native(),
        Route::app("/_not-found", Stable, Stable)
            .via(Via::Service)
            .native(),
    ];
    routes.extend(
        assets
            .iter()
            .map(|url| Route::new(url.clone(), Stable).native()),
    );
    routes
}

/// What the build says was prerendered (`prerender-manifest.json`), so that no route
/// shape is left out because nobody listed it: every prerendered page (native unless it
/// revalidates), its trailing-slash spelling (Next's 308), a Pages Router page's data
/// route, and for each dynamic Pages Router route without fallback a path it did not
/// prerender (Next's 404).
fn prerendered_routes(dir: &std::path::Path) -> Vec<Route> {
    use Stability::{Revalidating, Stable};
    let text = std::fs::read_to_string(dir.join(".next/prerender-manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut routes = Vec::new();
    for (path, entry) in manifest["routes"].as_object().unwrap() {
        if ["/_not-found", "/404", "/500", "/_error"].contains(&path.as_str()) {
            continue;
        }
        let revalidates = entry["initialRevalidateSeconds"].is_number();
        let stability = if revalidates { Revalidating } else { Stable };
        let data = entry["dataRoute"].as_str();
        let page = match data {
            Some(rsc) if rsc.ends_with(".rsc") => Route::app(path.clone(), stability, stability),
            _ => Route::new(path.clone(), stability),
        };
        // Route handlers (no data route) are Node's; prerendered pages are Rust's.
        let native = !revalidates && data.is_some();
        routes.push(if native { page.native() } else { page });
        if path != "/" {
            routes.push(Route::new(format!("{path}/"), Stable));
        }
        if let Some(json) = data.filter(|d| d.ends_with(".json")) {
            let route = Route::new(json.to_owned(), stability);
            routes.push(if native { route.native() } else { route });
        }
    }
    for (page, entry) in manifest["dynamicRoutes"].as_object().unwrap() {
        let pages_router = entry["dataRoute"]
            .as_str()
            .is_some_and(|d| d.ends_with(".json"));
        if pages_router && entry["fallback"] == serde_json::Value::Bool(false) {
            let unknown = page
                .split('/')
                .map(|segment| {
                    if segment.starts_with('[') {
                        "not-prerendered"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            routes.push(Route::new(unknown, Stable));
        }
    }
    routes
}

/// Non-canonical spellings of Next's routes: `next start` answers each with a `308` to the
/// canonical path (repeated slashes collapsed; the trailing slash dropped, by the build's
/// internal `/:path+/` redirect), the layer hands them to the inner service (404).
fn non_canonical_routes() -> Vec<Route> {
    use Stability::Stable;
    vec![
        Route::app("//about", Stable, Stable),
        Route::new("/images//dot.svg", Stable),
        Route::new("/legacy//", Stable),
        Route::new("/hello.txt/", Stable),
        Route::new("/images/dot.svg/", Stable),
    ]
}

/// The routes of the fixture built with `basePath: '/base'`, `assetPrefix: '/cdn'`,
/// `trailingSlash: true` and `distDir: 'build'`, and header rules on a public file, on
/// `/_next/static` and (conditional) on a page. `chunk` is a `/_next/static` path.
fn configured_routes(build_id: &str, chunk: &str) -> Vec<Route> {
    use Stability::{PerRequest, Stable};
    vec![
        Route::app("/base/", Stable, Stable).native(),
        Route::app("/base", Stable, Stable), // 308 to /base/
        Route::app("/base/about/", Stable, Stable).native(),
        Route::app("/base/about", Stable, Stable), // 308 to /base/about/
        Route::app("/about/", Stable, Stable).via(Via::Service), // outside basePath: 404
        Route::app("/base/blog/hello/", Stable, Stable).native(),
        Route::app("/base/dynamic/", PerRequest, PerRequest),
        // A conditional header rule (`has`) matches it: Node answers, with or without `v`.
        Route::new("/base/legacy/", Stable),
        Route::new("/base/legacy/?v=1", Stable),
        Route::new("/base/ssg/", Stable).native(),
        Route::new(format!("/base/_next/data/{build_id}/ssg.json"), Stable).native(),
        Route::new("/base/robots.txt", Stable).native(), // header rules set Cache-Control
        Route::new("/base/robots.txt/", Stable),
        Route::new("/base/images/dot.svg", Stable).native(),
        Route::new("/robots.txt", Stable).via(Via::Service), // outside basePath
        Route::new(format!("/base{chunk}"), Stable).native(),
        Route::new(format!("/cdn{chunk}"), Stable).via(Via::Service),
        Route::new(chunk.to_owned(), Stable).via(Via::Service),
        Route::app("/base/old-about/", Stable, Stable),
        Route::app("/base/mw/other/", Stable, Stable),
        Route::app("/base/nope/", Stable, Stable).via(Via::Service),
    ]
}

/// The two sides of a comparison.
struct Servers {
    client: reqwest::Client,
    reference: SocketAddr,
    layer: SocketAddr,
    service: SocketAddr,
    /// The RSC requests of the client router, asked of App Router pages.
    router: Vec<RouterRequest>,
}

/// An RSC request as Next's client router sends it: its router headers, and the `_rsc`
/// query value of those headers, computed by the fixture's own Next.js.
struct RouterRequest {
    variant: Variant,
    headers: Vec<(&'static str, &'static str)>,
    rsc: String,
}

impl RouterRequest {
    /// The navigation and the prefetch of a page (a `Next-Router-State-Tree` of the home
    /// page, as the browser sends it from there).
    fn all(dir: &std::path::Path) -> Vec<RouterRequest> {
        const TREE: &str = "%5B%22%22%2C%7B%22children%22%3A%5B%22__PAGE__%22%2C%7B%7D%2Cnull%2Cnull%5D%7D%2Cnull%2Cnull%2Ctrue%5D";
        let script = format!(
            "const m = require(require.resolve('next/dist/shared/lib/router/utils/cache-busting-search-param.js', {{ paths: [process.cwd()] }}));
             Promise.all([m.computeCacheBustingSearchParam(undefined, undefined, '{TREE}', undefined),
                          m.computeCacheBustingSearchParam('1', undefined, '{TREE}', undefined)])
               .then((hashes) => console.log(hashes.join(' ')));"
        );
        let output = std::process::Command::new("node")
            .args(["-e", &script])
            .current_dir(dir)
            .output()
            .expect("node runs");
        assert!(
            output.status.success(),
            "Next's cache-busting hash: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let mut hashes = text.split_whitespace().map(str::to_owned);
        vec![
            RouterRequest {
                variant: Variant::RscNavigation,
                headers: vec![("rsc", "1"), ("next-router-state-tree", TREE)],
                rsc: hashes.next().expect("the navigation hash"),
            },
            RouterRequest {
                variant: Variant::RscPrefetch,
                headers: vec![
                    ("rsc", "1"),
                    ("next-router-prefetch", "1"),
                    ("next-router-state-tree", TREE),
                ],
                rsc: hashes.next().expect("the prefetch hash"),
            },
        ]
    }

    /// `path` with this request's `_rsc`.
    fn path(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{path}{separator}_rsc={}", self.rsc)
    }
}

impl Servers {
    fn ours(&self, via: Via) -> SocketAddr {
        match via {
            Via::Layer => self.layer,
            Via::Service => self.service,
        }
    }

    async fn send(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Captured, String> {
        responses::send(&self.client, addr, method, path, headers).await
    }

    /// The same request to `next start` and to our server, at the same time.
    async fn both(
        &self,
        via: Via,
        method: Method,
        path: &str,
        reference_headers: &[(&str, &str)],
        our_headers: &[(&str, &str)],
    ) -> (Result<Captured, String>, Result<Captured, String>) {
        tokio::join!(
            self.send(self.reference, method.clone(), path, reference_headers),
            self.send(self.ours(via), method, path, our_headers),
        )
    }
}

/// What differed, for the final table.
struct Mismatch {
    route: String,
    variant: &'static str,
    what: String,
}

/// A response that tower-next gave natively (it said so in [`NATIVE_HEADER`]).
struct Native {
    route: String,
    variant: &'static str,
    responder: String,
}

#[derive(Default)]
struct Report {
    routes: usize,
    compared: usize,
    mismatches: Vec<Mismatch>,
    native: Vec<Native>,
}

impl Report {
    fn differs(&mut self, route: &Route, variant: Variant, what: String) {
        self.differs_in(&route.path, variant.name(), what);
    }

    fn differs_in(&mut self, route: &str, variant: &'static str, what: String) {
        self.mismatches.push(Mismatch {
            route: route.to_owned(),
            variant,
            what,
        });
    }

    /// The answers tower-next gave natively, one line per route: its variants and
    /// responders.
    fn native_table(&self) -> String {
        let mut by_route: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for native in &self.native {
            by_route
                .entry(&native.route)
                .or_default()
                .push(format!("{} ({})", native.variant, native.responder));
        }
        let width = by_route.keys().map(|r| r.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (route, variants) in by_route {
            let _ = writeln!(out, "  {route:width$}  {}", variants.join(", "));
        }
        out
    }

    fn table(&self) -> String {
        let route_width = self.mismatches.iter().map(|m| m.route.len()).max();
        let route_width = route_width.unwrap_or(0).max("route".len());
        let variant_width = self.mismatches.iter().map(|m| m.variant.len()).max();
        let variant_width = variant_width.unwrap_or(0).max("variant".len());
        let mut out = format!(
            "{:route_width$}  {:variant_width$}  what differed (next start vs tower-next)\n",
            "route", "variant"
        );
        for m in &self.mismatches {
            let _ = writeln!(
                out,
                "{:route_width$}  {:variant_width$}  {}",
                m.route, m.variant, m.what
            );
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_through_the_layer_equal_next_start() {
    differential(Scope::Fixture).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_canonical_paths_of_next_routes_redirect_as_with_next_start() {
    differential(Scope::NonCanonical).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn base_path_asset_prefix_trailing_slash_and_dist_dir_as_with_next_start() {
    if support::next_major() != 15 {
        // The configured build is made from the Next 15 fixture's config only.
        support::progress("configured-build differential: Next 15 fixture only, not run here");
        return;
    }
    differential(Scope::Configured).await;
}

/// Which routes a test compares.
#[derive(Clone, Copy)]
enum Scope {
    /// Every route of the fixture, and the request headers Next sees.
    Fixture,
    /// [`non_canonical_routes`].
    NonCanonical,
    /// [`configured_routes`] of the fixture built with basePath, assetPrefix,
    /// trailingSlash and distDir (`tests/fixtures/app15-config.next.config.js`).
    Configured,
}

async fn differential(scope: Scope) {
    let started = Instant::now();
    let dir = match scope {
        Scope::Configured => support::configured_fixture(),
        Scope::Fixture | Scope::NonCanonical => support::fixture(),
    };
    let reference = support::next_start_in(&dir);
    // One worker, as `next start` is one process: this compares the proxy and the native
    // answers, not the pool. (With several workers, a page one worker renders on demand
    // can answer STALE once on another that did not see it written yet.)
    support::init_tracing();
    let next = tower_next::Next::prepare(
        NextOptions::new(&dir)
            .workers(1)
            .mark_native_responses(true),
    )
    .await
    .expect("prepare the fixture");
    let layer = support::serve(
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .layer(NextLayer::new(next.clone())),
    )
    .await;
    let service = support::serve(Router::new().fallback_service(next.service())).await;
    let servers = Servers {
        client: support::client(),
        reference: reference.addr,
        layer,
        service,
        router: RouterRequest::all(&dir),
    };
    support::progress(&format!(
        "next start on {}, tower-next layer on {layer}, service on {service} ({:.1?})",
        reference.addr,
        started.elapsed()
    ));

    let report = tokio::time::timeout(
        Duration::from_secs(120),
        compare_all(&servers, &next.build_id(), scope),
    )
    .await
    .expect("the comparison finishes within 2 minutes");

    next.shutdown().await;
    drop(reference);
    support::progress(&format!(
        "compared {} (route, variant) pairs of {} routes in {:.1?}; {} answered natively:\n{}",
        report.compared,
        report.routes,
        started.elapsed(),
        report.native.len(),
        report.native_table()
    ));
    assert!(
        report.mismatches.is_empty(),
        "{} difference(s) between next start and tower-next:\n{}",
        report.mismatches.len(),
        report.table()
    );
}

async fn compare_all(servers: &Servers, build_id: &str, scope: Scope) -> Report {
    let mut report = Report::default();
    let routes = match scope {
        Scope::Fixture => {
            let home = servers
                .send(servers.reference, Method::GET, "/", &[])
                .await
                .expect("next start answers /");
            let mut routes = routes(
                build_id,
                &static_assets(&String::from_utf8_lossy(&home.body)),
            );
            let listed: BTreeSet<String> = routes.iter().map(|r| r.path.clone()).collect();
            routes.extend(
                prerendered_routes(&support::fixture())
                    .into_iter()
                    .filter(|route| !listed.contains(&route.path)),
            );
            routes
        }
        Scope::NonCanonical => non_canonical_routes(),
        Scope::Configured => {
            let chunks = support::configured_fixture().join("build/static/chunks");
            let webpack = std::fs::read_dir(chunks)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| name.starts_with("webpack-") && name.ends_with(".js"))
                .expect("a webpack runtime chunk");
            configured_routes(build_id, &format!("/_next/static/chunks/{webpack}"))
        }
    };
    report.routes = routes.len();
    // Twice: a page rendered on demand is written to the cache in the background after
    // the first request, and a gzip answer is learned from the first one after that.
    for _ in 0..2 {
        for route in &routes {
            warm(servers, route).await;
        }
    }
    for route in &routes {
        compare_route(servers, route, &mut report).await;
    }
    if let Scope::Fixture = scope {
        layer_leaves_unknown_paths_to_the_inner_service(servers, &mut report).await;
        next_sees_the_same_request_headers(servers, &mut report).await;
    }
    report
}

/// Two `/_next/static` scripts of the home page (the first, and the page's own chunk), and
/// its stylesheets if it has any.
fn static_assets(html: &str) -> Vec<String> {
    let urls: BTreeSet<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/_next/static/"))
        .collect();
    let mut chosen: Vec<String> = urls
        .iter()
        .filter(|u| u.ends_with(".css"))
        .map(|u| u.to_string())
        .collect();
    chosen.push(support::first_static_asset(html));
    if let Some(page) = urls.iter().find(|u| u.contains("/chunks/app/page-")) {
        chosen.push(page.to_string());
    }
    chosen.dedup();
    chosen
}

/// Lets each server write its runtime cache entries for the route (see the module docs).
async fn warm(servers: &Servers, route: &Route) {
    let _ = servers
        .both(route.via, Method::GET, &route.path, &[], &[])
        .await;
    // tower-next learns gzip answers from the worker's first one (see the module docs).
    let gzip = [("accept-encoding", "gzip")];
    let _ = servers
        .both(route.via, Method::GET, &route.path, &gzip, &gzip)
        .await;
    if route.rsc.is_some() {
        let rsc = [("rsc", "1")];
        let _ = servers
            .both(route.via, Method::GET, &route.path, &rsc, &rsc)
            .await;
        let rsc_gzip = [("rsc", "1"), ("accept-encoding", "gzip")];
        let _ = servers
            .both(route.via, Method::GET, &route.path, &rsc_gzip, &rsc_gzip)
            .await;
        for router in &servers.router {
            let path = router.path(&route.path);
            let _ = servers
                .both(
                    route.via,
                    Method::GET,
                    &path,
                    &router.headers,
                    &router.headers,
                )
                .await;
        }
    }
}

async fn compare_route(servers: &Servers, route: &Route, report: &mut Report) {
    let (reference, ours) = servers
        .both(route.via, Method::GET, &route.path, &[], &[])
        .await;
    let validators = |name: &str| match (&reference, &ours) {
        (Ok(r), Ok(o)) => r
            .header(name)
            .zip(o.header(name))
            .map(|(r, o)| (r.to_owned(), o.to_owned())),
        _ => None,
    };
    let etags = validators("etag");
    let last_modified = validators("last-modified");
    compare(route, Variant::Get, (reference, ours), None, report);

    if route.path.contains("/_next/data/") {
        let data = [("x-nextjs-data", "1")];
        let (reference, ours) = servers
            .both(route.via, Method::GET, &route.path, &data, &data)
            .await;
        compare(route, Variant::ClientData, (reference, ours), None, report);
    }

    if route.rsc.is_some() {
        let rsc = [("rsc", "1")];
        let (reference, ours) = servers
            .both(route.via, Method::GET, &route.path, &rsc, &rsc)
            .await;
        compare(route, Variant::Rsc, (reference, ours), None, report);
        for router in &servers.router {
            let path = router.path(&route.path);
            let (reference, ours) = servers
                .both(
                    route.via,
                    Method::GET,
                    &path,
                    &router.headers,
                    &router.headers,
                )
                .await;
            compare(route, router.variant, (reference, ours), None, report);
        }
    }

    let (reference, ours) = servers
        .both(route.via, Method::HEAD, &route.path, &[], &[])
        .await;
    compare(route, Variant::Head, (reference, ours), None, report);

    // Each server is asked with its own ETag: equal where the body is stable (the GET
    // comparison checks that), and the question is whether revalidation works.
    if let Some((reference_etag, our_etag)) = &etags {
        let (reference, ours) = servers
            .both(
                route.via,
                Method::GET,
                &route.path,
                &[("if-none-match", reference_etag)],
                &[("if-none-match", our_etag)],
            )
            .await;
        compare(
            route,
            Variant::Conditional,
            (reference, ours),
            Some((reference_etag, our_etag)),
            report,
        );
    }

    if let Some((reference_date, our_date)) = &last_modified {
        let (reference, ours) = servers
            .both(
                route.via,
                Method::GET,
                &route.path,
                &[("if-modified-since", reference_date)],
                &[("if-modified-since", our_date)],
            )
            .await;
        compare(route, Variant::Modified, (reference, ours), None, report);
    }

    let range = [("range", "bytes=0-9")];
    let (reference, ours) = servers
        .both(route.via, Method::GET, &route.path, &range, &range)
        .await;
    compare(route, Variant::Range, (reference, ours), None, report);

    let gzip = [("accept-encoding", "gzip")];
    let (reference, ours) = servers
        .both(route.via, Method::GET, &route.path, &gzip, &gzip)
        .await;
    compare(route, Variant::Gzip, (reference, ours), None, report);
}

/// Compares one pair of responses; `sent_etags` are the If-None-Match values of a
/// conditional GET (next start's, ours).
fn compare(
    route: &Route,
    variant: Variant,
    (reference, ours): (Result<Captured, String>, Result<Captured, String>),
    sent_etags: Option<(&str, &str)>,
    report: &mut Report,
) {
    report.compared += 1;
    let stability = route.stability(variant);
    let (reference, mut ours) = match (reference, ours) {
        (Ok(r), Ok(o)) => (r, o),
        (r, o) => {
            let describe = |side: &Result<Captured, String>| match side {
                Ok(c) => format!("{}", c.status),
                Err(e) => format!("request failed: {e}"),
            };
            report.differs(
                route,
                variant,
                format!("{} vs {}", describe(&r), describe(&o)),
            );
            return;
        }
    };

    let responder = ours
        .headers
        .remove(NATIVE_HEADER)
        .and_then(|v| v.into_iter().next());
    match &responder {
        Some(responder) => report.native.push(Native {
            route: route.path.clone(),
            variant: variant.name(),
            responder: responder.clone(),
        }),
        // From Next 16 on, Next redirects an RSC request without `_rsc` to one with it.
        None if route.native && !(variant == Variant::Rsc && support::next_major() >= 16) => report
            .differs(
                route,
                variant,
                "expected a native answer from tower-next, the worker answered".into(),
            ),
        None => {}
    }

    if revalidated_in_between(stability, &reference, &ours, sent_etags) {
        // A 304 and a 200 with the regenerated page: nothing else to compare.
        return;
    }
    if reference.status != ours.status {
        report.differs(
            route,
            variant,
            format!("status {} vs {}", reference.status, ours.status),
        );
    }

    for name in responses::compared_headers(&reference, &ours) {
        let (r, o) = (reference.headers.get(name), ours.headers.get(name));
        let (Some(r), Some(o)) = (r, o) else {
            let (side, values) = match r {
                Some(values) => ("only next start", values),
                None => ("only tower-next", o.unwrap()),
            };
            report.differs(route, variant, format!("{name}: {side} sends {values:?}"));
            continue;
        };
        let body_derived = BODY_HEADERS.contains(&name.as_str());
        if stability != Stability::Stable && body_derived {
            continue;
        }
        if stability == Stability::Revalidating && name == "x-nextjs-cache" {
            let fresh_or_stale = |v: &Vec<String>| v.iter().all(|v| v == "HIT" || v == "STALE");
            if !(fresh_or_stale(r) && fresh_or_stale(o)) {
                report.differs(route, variant, format!("{name}: {r:?} vs {o:?}"));
            }
            continue;
        }
        let (mut r, mut o) = (r.clone(), o.clone());
        r.sort();
        o.sort();
        if r != o {
            report.differs(route, variant, format!("{name}: {r:?} vs {o:?}"));
        }
    }

    let compare_bytes = stability == Stability::Stable
        || variant == Variant::Head
        || reference.body.is_empty()
        || ours.body.is_empty();
    if compare_bytes && reference.body != ours.body {
        report.differs(
            route,
            variant,
            describe_body_difference(&reference.body, &ours.body),
        );
    }
}

/// For an ISR page: a conditional GET answered `304` on one server and `200` on the other
/// is fine when the `200` carries an ETag other than the one sent, i.e. that server
/// regenerated the page between the GET and the conditional GET.
fn revalidated_in_between(
    stability: Stability,
    reference: &Captured,
    ours: &Captured,
    sent_etags: Option<(&str, &str)>,
) -> bool {
    let Some((reference_sent, our_sent)) = sent_etags else {
        return false;
    };
    if stability != Stability::Revalidating {
        return false;
    }
    let regenerated = |c: &Captured, sent: &str| c.status == 200 && c.header("etag") != Some(sent);
    match (reference.status, ours.status) {
        (304, 200) => regenerated(ours, our_sent),
        (200, 304) => regenerated(reference, reference_sent),
        _ => false,
    }
}

/// DESIGN.md §2, rule 4: a path that neither Next's route table nor a next.config rule or
/// middleware matcher claims is the inner service's, here axum's default 404.
async fn layer_leaves_unknown_paths_to_the_inner_service(servers: &Servers, report: &mut Report) {
    let route = Route::new("/nope", Stability::Stable);
    report.compared += 1;
    match servers
        .send(servers.layer, Method::GET, &route.path, &[])
        .await
    {
        Ok(c)
            if c.status == 404 && c.body.is_empty() && !c.headers.contains_key("x-powered-by") => {}
        Ok(c) => report.differs(
            &route,
            Variant::Get,
            format!(
                "through the layer: expected the inner service's empty 404, got {} with {} bytes",
                c.status,
                c.body.len()
            ),
        ),
        Err(e) => report.differs(&route, Variant::Get, format!("through the layer: {e}")),
    }
}

/// A request to `/api/echo-headers`, and the `X-Forwarded-For/Host/Proto/Port` values each
/// server's route handler is expected to see.
struct EchoCase<'a> {
    variant: &'static str,
    headers: &'a [(&'a str, &'a str)],
    next_start_sees: [&'a str; 4],
    tower_next_sees: [&'a str; 4],
}

/// The request a route handler sees (`/api/echo-headers` answers its request headers as
/// JSON) is the one `next start` would see, but for the `X-Forwarded-*` headers that differ
/// on purpose (see the module docs).
async fn next_sees_the_same_request_headers(servers: &Servers, report: &mut Report) {
    const PATH: &str = "/api/echo-headers";
    const FORWARDED: [&str; 4] = [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
    ];
    let reference_port = servers.reference.port().to_string();
    let cases = [
        EchoCase {
            variant: "GET request headers",
            headers: &[("cookie", "a=1; b=2"), ("x-test", "yes")],
            next_start_sees: ["127.0.0.1", HOST, "http", &reference_port],
            tower_next_sees: ["127.0.0.1", HOST, "http", "3000"],
        },
        EchoCase {
            variant: "GET X-Forwarded-* spoofed",
            headers: &[
                ("cookie", "a=1; b=2"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-port", "99"),
            ],
            next_start_sees: ["203.0.113.9", "evil.example", "https", "99"],
            tower_next_sees: ["127.0.0.1", HOST, "http", "3000"],
        },
    ];
    for case in cases {
        report.compared += 1;
        let (reference, ours) = servers
            .both(Via::Layer, Method::GET, PATH, case.headers, case.headers)
            .await;
        let (mut reference, mut ours) = match (echoed(reference), echoed(ours)) {
            (Ok(r), Ok(o)) => (r, o),
            (r, o) => {
                let what = format!("{:?} vs {:?}", r.err(), o.err());
                report.differs_in(PATH, case.variant, what);
                continue;
            }
        };
        for (i, name) in FORWARDED.iter().enumerate() {
            let seen = (reference.remove(*name), ours.remove(*name));
            let expected = (case.next_start_sees[i], case.tower_next_sees[i]);
            let as_str = |v: &Option<serde_json::Value>| v.as_ref()?.as_str().map(str::to_owned);
            if (as_str(&seen.0).as_deref(), as_str(&seen.1).as_deref())
                != (Some(expected.0), Some(expected.1))
            {
                let what = format!("{name} seen by Next: {seen:?}, expected {expected:?}");
                report.differs_in(PATH, case.variant, what);
            }
        }
        if reference != ours {
            let what = format!("request headers seen by Next: {reference:?} vs {ours:?}");
            report.differs_in(PATH, case.variant, what);
        }
    }
}

/// The request headers `/api/echo-headers` answered.
fn echoed(
    response: Result<Captured, String>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let captured = response?;
    serde_json::from_slice(&captured.body)
        .map_err(|err| format!("{}, not JSON: {err}", captured.status))
}
