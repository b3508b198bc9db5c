//! Caching as one `next start` process caches (issue 9): one request sequence played
//! against `next start` and against tower-next, with one worker and with a pool of two,
//! must give the same answers, in the same caching pattern.
//!
//! # The apps
//!
//! - `tests/fixtures/caching` (Next 15 and 16, Next's default config): Pages Router ISR with
//!   `fallback: 'blocking'` whose `getStaticProps` also gives cached `notFound` and
//!   redirect results, App Router ISR pages and `unstable_cache` data tagged `articles`, a
//!   cached GET route handler, revalidation by route handler (`revalidateTag`,
//!   `revalidatePath`), by Pages API route (`res.revalidate`) and by Server Action.
//! - `tests/fixtures/cache-components` (Next 16 only, `cacheComponents: true`): Partial
//!   Prerendering with prerendered and on-demand params, a fully static page with on-demand
//!   params, `'use cache'` and
//!   `'use cache: remote'` data tagged `items`, read in the static shell and after
//!   `await connection()`, `revalidateTag` from a route handler, `updateTag` from a Server
//!   Action. On Next 15 its test prints why it does not run and passes.
//!
//! # The sequence
//!
//! What is asked comes from the build, not from a hand list ([`Plan::discover`]): every
//! route of `prerender-manifest.json` and `routes-manifest.json` (but Next's own `/_…`
//! pages and the API routes, which are the revalidation endpoints), each dynamic route
//! filled with the params its page does not prerender, read from the fixture's
//! `lib/params.json` (which the pages read too); the revalidation requests in the fixture's
//! `lib/revalidations.json`; and the Server Actions of `server/server-reference-manifest.json`
//! whose page is a static route (posted as a form without JavaScript posts it).
//!
//! 1. Before: for each route ([`Player::reads`]) `GET`, `GET` again, `GET` with
//!    `If-None-Match` of that server's first ETag; for App Router pages the client router's
//!    RSC navigation, its prefetch (`Next-Router-Prefetch: 1`) and, on builds with segment
//!    prefetches (Next 16), the segment prefetches `/_tree`, `/_full`, one no page has, and
//!    the route's page segment (read from the build's `.meta` files), each with the `_rsc`
//!    value the fixture's Next.js computes, each asked twice (tower-next answers natively
//!    only once Node's first answer matched); for Pages Router pages the data route without and with
//!    `x-nextjs-data: 1`; then the data route 5 more times and the page twice (Pages
//!    Router), or the page 4 more times (6 reads in all).
//! 2. Revalidation: each request of `lib/revalidations.json` (`POST`), then each Server
//!    Action.
//! 3. After: one `GET` of every route (the first read after revalidation), then rounds of
//!    `GET`s of every route until the server is settled ([`Player::settle`], not compared),
//!    then the reads of step 1 again.
//!
//! # Normalisation
//!
//! Each render stamps its page with `stamp:` and 19 digits (time and randomness). Stamps
//! differ between servers, so each distinct stamp is replaced by its order of first
//! appearance in that route's requests on that server (`stamp#1`, `stamp#2`…): the
//! comparison checks the caching pattern ("the same value 6 times", "a new value after
//! revalidation"), not the value. ETags hash the bytes, so they are numbered the same way.
//! React's per-render ids in a dynamically rendered RSC payload (the keys of the metadata
//! and viewport boundaries, 21 characters and `v` or `m`) are replaced by `render-id`.
//! React writes each row of an RSC payload when its data resolves, so the order of rows
//! depends on timing (a cache read that takes one more tick, as a read through tower-next's
//! cache handler may, moves the page's row after the metadata's): the rows of an RSC
//! answer, and those of the payload inlined in an HTML page, are compared sorted, the rest
//! of the page as it is. `Content-Length` is compared as it is: stamps have one length.
//!
//! # Compared
//!
//! The status, every header but the hop-by-hop ones and `Date`
//! ([`responses::IGNORED_HEADERS`]) as a multiset, and the normalised body, request by
//! request, between next start's run and each tower-next run. Every difference is collected
//! and the test fails once, with one table per deployment.
//!
//! # Timing
//!
//! - Each server runs on its own fresh copy of the build ([`support::fresh_copy`]), its
//!   file times set to the start of the run, as a fresh deployment: Next counts a
//!   prerendered page's age from its file's modification time, so an old build would answer
//!   its ISR pages `STALE` from the first request. A run lasts well under the shortest
//!   revalidate (60 s), so no page goes stale by time during it.
//! - The runs are one after the other, never at the same time (2 cores).
//! - A `STALE` answer (and a `'use cache'` value past its revalidation) regenerates in the
//!   background: what the next request sees depends on when that finishes. So after the
//!   revalidation requests the servers are let settle ([`Player::settle`]): rounds of
//!   `GET`s of every route until one round answers as the previous one (statuses,
//!   `x-nextjs-cache`, stamps) and none is `STALE`, at most [`SETTLE_ROUNDS`] rounds and
//!   [`SETTLE_TIME`]; a server that does not settle is a difference.
//! - The first read after revalidation is compared with the tolerance of
//!   `tests/differential.rs`'s `Stability::Revalidating` ([`Check::FirstAfterRevalidation`]):
//!   one server may still answer the old entry (`STALE`) where the other already answers
//!   the new one (`MISS`, or `HIT` once regenerated): then `x-nextjs-cache`, the stamps and
//!   the body-derived headers are not compared, the rest is.
//! - next start's own run-to-run differences: the sequence is played twice on next start
//!   (two fresh copies); whatever differs between those two runs (a header, a body, at one
//!   step) is printed and not compared for tower-next either.
//!
//! # The servers under test
//!
//! A [`Deployment`] is a list of addresses the sequence rotates over, request by request:
//! one for `next start`, one per tower-next host ([`Deployment::TowerNext`], `hosts`
//! instances of [`tower_next::Next`] on one copy of the build, each with `workers`
//! workers and native answers on, the default, served in the `axum_layer` example's
//! shape). Another deployment is one line in [`DEPLOYMENTS`]; the options all tower-next
//! hosts get are [`options`].
//!
//! `TOWER_NEXT_CACHE_TRANSCRIPT=1` prints next start's answers, one line per request
//! (status, `x-nextjs-cache`, stamp numbers): the caching pattern the others must match.

mod support;

#[path = "support/redis.rs"]
mod redis_server;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use redis_server::RedisServer;
use reqwest::Method;
use support::responses::{self, Captured, HOST, describe_body_difference};
use tower_next::{Next, NextOptions};

/// How many times a page is read in a row in each phase.
const REPEATS: usize = 6;

/// How many times a Pages Router page's data route is read in a row, after its first two.
const DATA_REPEATS: usize = 5;

/// The most rounds, and the longest time, a server is given to settle after revalidation.
const SETTLE_ROUNDS: usize = 15;
const SETTLE_TIME: Duration = Duration::from_secs(20);

/// The longest one run of the sequence may take.
const RUN_TIME: Duration = Duration::from_secs(90);

/// A render stamp: this prefix and [`STAMP_DIGITS`] digits (see `lib/stamp.js`).
const STAMP: &[u8] = b"stamp:";
const STAMP_DIGITS: usize = 19;

/// A router state tree of the home page, as the browser sends it from there
/// (`["",{"children":["__PAGE__",{},null,null]},null,null]`, valid for Next 15 and 16: 16
/// refuses 15's fifth element, `true`).
const TREE: &str = "%5B%22%22%2C%7B%22children%22%3A%5B%22__PAGE__%22%2C%7B%7D%2Cnull%2Cnull%5D%7D%2Cnull%2Cnull%5D";

/// The deployments compared with `next start`, in order.
const DEPLOYMENTS: [Deployment; 3] = [
    Deployment::TowerNext {
        hosts: 1,
        workers: 1,
    },
    Deployment::TowerNext {
        hosts: 1,
        workers: 2,
    },
    // Two hosts sharing one cache through a real Redis (README: Several hosts).
    Deployment::TowerNext {
        hosts: 2,
        workers: 2,
    },
];

/// One test at a time: the runs must not share the 2 cores (timing), nor the builds.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn isr_and_revalidation_cache_as_next_start() {
    let _one = ONE_AT_A_TIME.lock().await;
    differential(&support::caching_fixture()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_components_cache_as_next_start() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(dir) = support::cache_components_fixture() else {
        support::progress(&format!(
            "cache-components: Cache Components need Next 16, the fixture has Next {}; not run \
             (TOWER_NEXT_FIXTURE=app16 runs it)",
            support::next_major()
        ));
        return;
    };
    differential(&dir).await;
}

/// The options every tower-next host of a deployment gets; several hosts share their
/// cache through the store at `shared`.
fn options(dir: &Path, workers: usize, shared: Option<&str>) -> NextOptions {
    let options = NextOptions::new(dir).workers(workers);
    match shared {
        Some(url) => options.shared_cache(url),
        None => options,
    }
}

/// Servers the sequence is played against.
#[derive(Clone, Copy, Debug)]
enum Deployment {
    /// `next start -H localhost`: the reference.
    NextStart,
    /// `hosts` instances of tower-next on one copy of the build, each with `workers`
    /// workers; requests rotate over the hosts.
    TowerNext { hosts: usize, workers: usize },
}

impl Deployment {
    fn name(self) -> String {
        match self {
            Deployment::NextStart => "next start".into(),
            Deployment::TowerNext { hosts: 1, workers } => {
                format!("tower-next, {workers} worker(s)")
            }
            Deployment::TowerNext { hosts, workers } => {
                format!("tower-next, {hosts} hosts of {workers} worker(s)")
            }
        }
    }

    /// A name for its copy of the build.
    fn folder(self) -> String {
        match self {
            Deployment::NextStart => "next-start".into(),
            Deployment::TowerNext { hosts, workers } => format!("tower-next-{hosts}x{workers}"),
        }
    }
}

/// A deployment while it runs.
struct Running {
    addrs: Vec<SocketAddr>,
    next_start: Option<support::Process>,
    hosts: Vec<Next>,
    redis: Option<RedisServer>,
}

impl Running {
    async fn start(deployment: Deployment, dir: &Path, run: &str) -> Running {
        let copy = fresh_deployment(dir, &format!("{}-{run}", deployment.folder()));
        match deployment {
            Deployment::NextStart => {
                let process = support::next_start_in(&copy);
                Running {
                    addrs: vec![process.addr],
                    next_start: Some(process),
                    hosts: Vec::new(),
                    redis: None,
                }
            }
            Deployment::TowerNext { hosts, workers } => {
                support::init_tracing();
                let mut running = Running {
                    addrs: Vec::new(),
                    next_start: None,
                    hosts: Vec::new(),
                    redis: (hosts > 1).then(|| RedisServer::start(support::free_port())),
                };
                let shared = running.redis.as_ref().map(RedisServer::url);
                for _ in 0..hosts {
                    let next = Next::prepare(options(&copy, workers, shared.as_deref()))
                        .await
                        .expect("prepare the fixture");
                    running.addrs.push(support::serve_axum_layer(&next).await);
                    running.hosts.push(next);
                }
                running
            }
        }
    }

    async fn stop(self) {
        for next in &self.hosts {
            next.shutdown().await;
        }
        drop(self.next_start);
        drop(self.redis);
    }
}

/// A copy of the build for one run, its files' modification times set to now (see the
/// module docs, "Timing").
fn fresh_deployment(dir: &Path, name: &str) -> PathBuf {
    fn touch(path: &Path, now: SystemTime) {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                touch(&path, now);
            } else {
                let file = std::fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(now).unwrap();
            }
        }
    }
    let copy = support::fresh_copy(dir, name);
    touch(&copy.join(".next"), SystemTime::now());
    copy
}

/// Plays the sequence on next start twice and on each of [`DEPLOYMENTS`], and compares.
async fn differential(dir: &Path) {
    let started = Instant::now();
    let plan = Plan::discover(dir);
    let fixture = dir.file_name().unwrap().to_string_lossy().into_owned();
    support::progress(&format!(
        "{fixture}: {} routes, {} revalidations, {} server actions",
        plan.routes.len(),
        plan.revalidations.len(),
        plan.actions.len()
    ));

    let reference = play(&plan, dir, Deployment::NextStart, "1").await;
    if std::env::var_os("TOWER_NEXT_CACHE_TRANSCRIPT").is_some() {
        print_transcript(&reference);
    }
    let again = play(&plan, dir, Deployment::NextStart, "2").await;
    for run in [&reference, &again] {
        if let Some(why) = &run.unsettled {
            panic!("{fixture}: next start itself did not settle after revalidation: {why}");
        }
    }
    // What next start changes from one run to the next is not compared.
    let unstable: BTreeSet<(usize, String)> = compare(&reference, &again)
        .into_iter()
        .map(|d| (d.index, d.field))
        .collect();
    let mut out = String::new();
    if !unstable.is_empty() {
        let _ = writeln!(
            out,
            "{fixture}: next start differs from itself between two runs (not compared):"
        );
        for (index, field) in &unstable {
            let record = &reference.records[*index];
            let _ = writeln!(out, "  {}  {}  {field}", record.route, record.step);
        }
    }

    let mut failures = String::new();
    for deployment in DEPLOYMENTS {
        let ours = play(&plan, dir, deployment, "1").await;
        let differences: Vec<Difference> = compare(&reference, &ours)
            .into_iter()
            .filter(|d| !unstable.contains(&(d.index, d.field.clone())))
            .collect();
        let _ = writeln!(
            out,
            "{fixture}, {}: {} recorded requests in {:.1?}, {} difference(s)",
            deployment.name(),
            ours.records.len(),
            ours.took,
            differences.len() + ours.unsettled.iter().count()
        );
        if !differences.is_empty() || ours.unsettled.is_some() {
            let _ = writeln!(
                failures,
                "\n{fixture}: next start vs {}\n{}",
                deployment.name(),
                table(&reference, &ours, &differences)
            );
        }
    }
    support::progress(&format!(
        "{out}{fixture}: next start runs took {:.1?} and {:.1?}; all in {:.1?}",
        reference.took,
        again.took,
        started.elapsed()
    ));
    assert!(
        failures.is_empty(),
        "tower-next caches otherwise than next start:{failures}"
    );
}

/// What is asked, from the build (see the module docs, "The sequence").
struct Plan {
    routes: Vec<Route>,
    /// Paths to `POST` to revalidate.
    revalidations: Vec<String>,
    actions: Vec<Action>,
    /// The client router's RSC requests of an App Router page.
    router: Vec<RouterRequest>,
}

struct Route {
    path: String,
    kind: Kind,
    /// Next 16: the segment prefetch of the route's page segment (`/item/$d$id/__PAGE__`).
    page_segment: Option<RouterRequest>,
}

enum Kind {
    /// A Pages Router page, with its data route.
    Pages { data: String },
    /// An App Router page.
    App,
    /// A route handler.
    Handler,
}

/// A Server Action of a form on a page: posted to the page as a form without JavaScript
/// posts it.
struct Action {
    page: String,
    id: String,
}

/// An RSC request as Next's client router sends it: its name, its router headers, and
/// the `_rsc` query value of those headers, computed by the build's own Next.js.
struct RouterRequest {
    name: String,
    headers: Vec<(&'static str, String)>,
    rsc: String,
}

impl Plan {
    fn discover(dir: &Path) -> Plan {
        let read = |path: &str| -> serde_json::Value {
            let text = std::fs::read_to_string(dir.join(path))
                .unwrap_or_else(|err| panic!("{}: {err}", dir.join(path).display()));
            serde_json::from_str(&text).unwrap()
        };
        let prerender = read(".next/prerender-manifest.json");
        let routes_manifest = read(".next/routes-manifest.json");
        let app_paths = read(".next/app-path-routes-manifest.json");
        let params = read("lib/params.json");
        let build_id = std::fs::read_to_string(dir.join(".next/BUILD_ID")).unwrap();

        // Next's own pages (`/_not-found`…) and the API routes (the revalidation
        // endpoints, posted to in their step) are not read.
        let readable = |path: &str| !path.starts_with("/_") && !path.starts_with("/api/");
        // The App Router's route handlers (app-path-routes-manifest: `/x/route` → `/x`).
        let handlers: BTreeSet<&str> = app_paths
            .as_object()
            .unwrap()
            .iter()
            .filter(|(source, _)| source.ends_with("/route"))
            .filter_map(|(_, path)| path.as_str())
            .collect();
        let app_pages: BTreeSet<&str> = app_paths
            .as_object()
            .unwrap()
            .iter()
            .filter(|(source, _)| source.ends_with("/page"))
            .filter_map(|(_, path)| path.as_str())
            .collect();
        let kind = |path: &str, pattern: &str| {
            if handlers.contains(pattern) {
                Kind::Handler
            } else if app_pages.contains(pattern) {
                Kind::App
            } else {
                let name = if path == "/" { "/index" } else { path };
                Kind::Pages {
                    data: format!("/_next/data/{build_id}{name}.json"),
                }
            }
        };
        let mut paths = BTreeMap::new();
        for (path, route) in prerender["routes"].as_object().unwrap() {
            let pattern = route["srcRoute"].as_str().unwrap_or(path);
            if readable(path) || handlers.contains(path.as_str()) {
                paths.insert(path.clone(), pattern.to_owned());
            }
        }
        let static_routes = routes_manifest["staticRoutes"].as_array().unwrap();
        for route in static_routes {
            let page = route["page"].as_str().unwrap();
            if readable(page) {
                paths
                    .entry(page.to_owned())
                    .or_insert_with(|| page.to_owned());
            }
        }
        // Dynamic routes: the params their page does not prerender (lib/params.json).
        let mut on_demand = BTreeMap::new();
        for route in routes_manifest["dynamicRoutes"].as_array().unwrap() {
            let pattern = route["page"].as_str().unwrap();
            let Some(values) = params[pattern]["onDemand"].as_array() else {
                continue;
            };
            let start = pattern.find('[').unwrap();
            let end = pattern[start..].find(']').unwrap() + start + 1;
            for value in values {
                let path = format!(
                    "{}{}{}",
                    &pattern[..start],
                    value.as_str().unwrap(),
                    &pattern[end..]
                );
                on_demand.insert(path, pattern.to_owned());
            }
        }
        let segments = routes_manifest["rsc"]["prefetchSegmentHeader"].is_string()
            && std::fs::read_dir(dir.join(".next/server/app"))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".segments"));
        let routes: Vec<Route> = paths
            .into_iter()
            .chain(on_demand)
            .map(|(path, pattern)| Route {
                kind: kind(&path, &pattern),
                page_segment: segments
                    .then(|| page_segment(dir, &prerender, &pattern))
                    .flatten()
                    .map(|segment| RouterRequest::segment(dir, &segment)),
                path,
            })
            .collect();

        let revalidations = read("lib/revalidations.json")
            .as_array()
            .unwrap()
            .iter()
            .map(|path| path.as_str().unwrap().to_owned())
            .collect();

        // Server Actions of forms on static pages (`app/action/page` → `/action`).
        let references = read(".next/server/server-reference-manifest.json");
        let mut actions = Vec::new();
        for (id, action) in references["node"].as_object().unwrap() {
            let exported = action["exportedName"].as_str().unwrap_or_default();
            if !exported.starts_with("$$RSC_SERVER_ACTION_") {
                continue; // `'use cache'` functions are listed too
            }
            for worker in action["workers"].as_object().unwrap().keys() {
                let Some(page) = worker
                    .strip_prefix("app")
                    .and_then(|p| p.strip_suffix("/page"))
                else {
                    continue;
                };
                let page = if page.is_empty() { "/" } else { page };
                if !page.contains('[') {
                    actions.push(Action {
                        page: page.to_owned(),
                        id: id.clone(),
                    });
                }
            }
        }
        actions.sort_by(|a, b| (&a.page, &a.id).cmp(&(&b.page, &b.id)));

        Plan {
            routes,
            revalidations,
            actions,
            router: RouterRequest::all(dir, segments),
        }
    }
}

impl RouterRequest {
    /// The navigation and the prefetch from the home page, and with `segments` the
    /// segment prefetches every page has (`/_tree`, `/_full`) and one no page has.
    fn all(dir: &Path, segments: bool) -> Vec<RouterRequest> {
        let tree = TREE.to_owned();
        let mut requests = vec![
            RouterRequest::new(
                dir,
                "RSC navigation",
                vec![
                    ("rsc", "1".into()),
                    ("next-router-state-tree", tree.clone()),
                ],
            ),
            RouterRequest::new(
                dir,
                "RSC prefetch",
                vec![
                    ("rsc", "1".into()),
                    ("next-router-prefetch", "1".into()),
                    ("next-router-state-tree", tree),
                ],
            ),
        ];
        if segments {
            for segment in ["/_tree", "/_full", "/_no-such-segment"] {
                requests.push(RouterRequest::segment(dir, segment));
            }
        }
        requests
    }

    /// The segment prefetch of `segment`, as the client's Segment Cache sends it.
    fn segment(dir: &Path, segment: &str) -> RouterRequest {
        RouterRequest::new(
            dir,
            &format!("segment prefetch {segment}"),
            vec![
                ("rsc", "1".into()),
                ("next-router-prefetch", "1".into()),
                ("next-router-segment-prefetch", segment.to_owned()),
            ],
        )
    }

    /// A request with `headers`, and the `_rsc` value the build's Next.js computes for them.
    fn new(dir: &Path, name: &str, headers: Vec<(&'static str, String)>) -> RouterRequest {
        let header = |name: &str| {
            headers.iter().find(|(n, _)| *n == name).map_or_else(
                || "undefined".to_owned(),
                |(_, v)| serde_json::to_string(v).unwrap(),
            )
        };
        let script = format!(
            "const m = require(require.resolve('next/dist/shared/lib/router/utils/cache-busting-search-param.js', {{ paths: [process.cwd()] }}));
             Promise.resolve(m.computeCacheBustingSearchParam({}, {}, {}, undefined)).then((hash) => console.log(hash));",
            header("next-router-prefetch"),
            header("next-router-segment-prefetch"),
            header("next-router-state-tree"),
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
        RouterRequest {
            name: name.to_owned(),
            headers,
            rsc: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        }
    }

    /// The router headers, as the player sends them.
    fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    /// `path` with this request's `_rsc`.
    fn path(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{path}{separator}_rsc={}", self.rsc)
    }
}

/// The page segment of the routes of `pattern` (`/item/$d$id/__PAGE__`: named by the
/// route's params, not their values), as the build's `.meta` files list their segments:
/// those of a prerendered path of the route, or of its fallback shell.
fn page_segment(dir: &Path, prerender: &serde_json::Value, pattern: &str) -> Option<String> {
    let app = dir.join(".next/server/app");
    let stem = |path: &str| {
        if path == "/" {
            "/index".to_owned()
        } else {
            path.to_owned()
        }
    };
    let mut candidates: Vec<String> = prerender["routes"]
        .as_object()?
        .iter()
        .filter(|(path, route)| route["srcRoute"].as_str().unwrap_or(path) == pattern)
        .map(|(path, _)| stem(path))
        .collect();
    candidates.push(stem(pattern));
    candidates.iter().find_map(|stem| {
        let meta = std::fs::read_to_string(app.join(format!("{}.meta", &stem[1..]))).ok()?;
        let meta: serde_json::Value = serde_json::from_str(&meta).ok()?;
        meta["segmentPaths"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str())
            .find(|p| p.ends_with("/__PAGE__"))
            .map(str::to_owned)
    })
}

/// How a recorded answer is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Status, headers and normalised body.
    Exact,
    /// The first read after revalidation (see the module docs, "Timing").
    FirstAfterRevalidation,
}

/// One request of the sequence and its answer, normalised.
struct Record {
    route: String,
    step: String,
    check: Check,
    answer: Result<Normalised, String>,
}

struct Normalised {
    status: u16,
    /// By lowercase name, without [`responses::IGNORED_HEADERS`], ETags numbered.
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
    /// The numbers of its stamps, in order (for [`print_transcript`]).
    stamps: Vec<usize>,
}

impl Normalised {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// One run of the sequence on one deployment.
struct Transcript {
    records: Vec<Record>,
    /// Why the deployment did not settle after revalidation, if it did not.
    unsettled: Option<String>,
    took: Duration,
}

/// Stamps and ETags in order of first appearance, in one route's requests of one run.
#[derive(Default)]
struct Numbering {
    stamps: Vec<Vec<u8>>,
    etags: Vec<String>,
}

fn number<T: PartialEq + Clone>(seen: &mut Vec<T>, value: &T) -> usize {
    match seen.iter().position(|v| v == value) {
        Some(i) => i + 1,
        None => {
            seen.push(value.clone());
            seen.len()
        }
    }
}

/// Plays the sequence once on a fresh `deployment` of the build in `dir`.
async fn play(plan: &Plan, dir: &Path, deployment: Deployment, run: &str) -> Transcript {
    let started = Instant::now();
    let running = Running::start(deployment, dir, run).await;
    let mut player = Player {
        plan,
        client: support::client(),
        addrs: running.addrs.clone(),
        sent: 0,
        numbering: BTreeMap::new(),
        records: Vec::new(),
    };
    let unsettled = tokio::time::timeout(RUN_TIME, player.sequence())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: the sequence did not finish within {RUN_TIME:?}",
                deployment.name()
            )
        });
    running.stop().await;
    support::progress(&format!(
        "{} ({run}): {} requests in {:.1?}",
        deployment.name(),
        player.sent,
        started.elapsed()
    ));
    Transcript {
        records: player.records,
        unsettled,
        took: started.elapsed(),
    }
}

/// Sends the sequence to one deployment and records the answers.
struct Player<'a> {
    plan: &'a Plan,
    client: reqwest::Client,
    /// The deployment's addresses: each request goes to the next one.
    addrs: Vec<SocketAddr>,
    sent: usize,
    /// By route (or revalidation request).
    numbering: BTreeMap<String, Numbering>,
    records: Vec<Record>,
}

impl Player<'_> {
    /// The whole sequence (see the module docs); `Some` with the reason if the deployment
    /// did not settle after revalidation.
    async fn sequence(&mut self) -> Option<String> {
        let plan = self.plan;
        for route in &plan.routes {
            self.reads(route, "before").await;
        }
        for path in &plan.revalidations {
            let step = "POST".to_owned();
            self.record(path, step, Check::Exact, Method::POST, path, &[])
                .await;
        }
        for action in &plan.actions {
            self.action(action).await;
        }
        let mut first = Vec::new();
        for route in &plan.routes {
            let step = "after revalidation: first GET".to_owned();
            let captured = self
                .ask(
                    &route.path,
                    step,
                    Check::FirstAfterRevalidation,
                    Method::GET,
                    &route.path,
                    &[],
                )
                .await;
            first.push(Signature::of(&captured));
        }
        let unsettled = self.settle(first).await.err();
        for route in &plan.routes {
            self.reads(route, "after").await;
        }
        unsettled
    }

    /// The reads of a route in one phase (see the module docs, "The sequence").
    async fn reads(&mut self, route: &Route, phase: &str) {
        let path = &route.path;
        let get = |n: usize| format!("{phase}: GET #{n}");
        let first = self
            .ask(path, get(1), Check::Exact, Method::GET, path, &[])
            .await;
        self.record(path, get(2), Check::Exact, Method::GET, path, &[])
            .await;
        // With that server's own ETag, if it sent one (a missing one shows in GET #1).
        let etag = first.ok().and_then(|c| c.header("etag").map(str::to_owned));
        let conditional: Vec<(&str, &str)> =
            etag.iter().map(|e| ("if-none-match", e.as_str())).collect();
        let step = format!("{phase}: GET If-None-Match");
        self.record(path, step, Check::Exact, Method::GET, path, &conditional)
            .await;
        let mut gets = 2;
        match &route.kind {
            Kind::App => {
                let plan = self.plan;
                // Twice: tower-next answers natively only once Node's first answer matched.
                for router in plan.router.iter().chain(&route.page_segment) {
                    let url = router.path(path);
                    let headers = router.header_pairs();
                    for n in 1..=2 {
                        let step = format!("{phase}: {} #{n}", router.name);
                        self.record(path, step, Check::Exact, Method::GET, &url, &headers)
                            .await;
                    }
                }
            }
            Kind::Pages { data } => {
                let step = format!("{phase}: data route");
                self.record(path, step, Check::Exact, Method::GET, data, &[])
                    .await;
                let client = [("x-nextjs-data", "1")];
                for n in 1..=DATA_REPEATS + 1 {
                    let step = format!("{phase}: data route, x-nextjs-data #{n}");
                    self.record(path, step, Check::Exact, Method::GET, data, &client)
                        .await;
                }
                for _ in 0..2 {
                    gets += 1;
                    self.record(path, get(gets), Check::Exact, Method::GET, path, &[])
                        .await;
                }
                return;
            }
            Kind::Handler => {}
        }
        while gets < REPEATS {
            gets += 1;
            self.record(path, get(gets), Check::Exact, Method::GET, path, &[])
                .await;
        }
    }

    /// Posts a Server Action's form to its page, as a browser without JavaScript does.
    async fn action(&mut self, action: &Action) {
        let addr = self.next_addr();
        let form = reqwest::multipart::Form::new().text(format!("$ACTION_ID_{}", action.id), "");
        let request = self
            .client
            .post(format!("http://{addr}{}", action.page))
            .header(reqwest::header::HOST, HOST)
            .header(reqwest::header::ORIGIN, format!("http://{HOST}"))
            .multipart(form);
        let captured = responses::capture(request).await;
        let scope = format!("{} (Server Action)", action.page);
        self.keep(&scope, "POST form".into(), Check::Exact, &captured);
    }

    /// Rounds of `GET`s of every route until one answers as the one before and nothing is
    /// `STALE` (see the module docs, "Timing"); `previous` is the round before the first.
    /// Not recorded.
    async fn settle(&mut self, mut previous: Vec<Signature>) -> Result<usize, String> {
        let deadline = Instant::now() + SETTLE_TIME;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut round = Vec::new();
            for route in &self.plan.routes {
                let addr = self.next_addr();
                let captured =
                    responses::send(&self.client, addr, Method::GET, &route.path, &[]).await;
                round.push(Signature::of(&captured));
            }
            let stale: Vec<&str> = round
                .iter()
                .zip(&self.plan.routes)
                .filter(|(s, _)| s.cache.as_deref() == Some("STALE"))
                .map(|(_, r)| r.path.as_str())
                .collect();
            if stale.is_empty() && round == previous {
                return Ok(rounds);
            }
            if rounds >= SETTLE_ROUNDS || Instant::now() > deadline {
                let changing: Vec<&str> = round
                    .iter()
                    .zip(&previous)
                    .zip(&self.plan.routes)
                    .filter(|((now, before), _)| now != before)
                    .map(|(_, r)| r.path.as_str())
                    .collect();
                return Err(format!(
                    "not settled after {rounds} rounds: still changing {changing:?}, STALE {stale:?}"
                ));
            }
            previous = round;
        }
    }

    fn next_addr(&mut self) -> SocketAddr {
        let addr = self.addrs[self.sent % self.addrs.len()];
        self.sent += 1;
        addr
    }

    /// Sends one request and records its answer under `route`.
    async fn record(
        &mut self,
        route: &str,
        step: String,
        check: Check,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) {
        let _ = self.ask(route, step, check, method, path, headers).await;
    }

    /// As [`Player::record`], and returns the answer as received.
    async fn ask(
        &mut self,
        route: &str,
        step: String,
        check: Check,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Captured, String> {
        let addr = self.next_addr();
        let captured = responses::send(&self.client, addr, method, path, headers).await;
        self.keep(route, step, check, &captured);
        captured
    }

    fn keep(
        &mut self,
        route: &str,
        step: String,
        check: Check,
        captured: &Result<Captured, String>,
    ) {
        let numbering = self.numbering.entry(route.to_owned()).or_default();
        let answer = match captured {
            Ok(captured) => Ok(normalise(captured, numbering)),
            Err(err) => Err(err.clone()),
        };
        self.records.push(Record {
            route: route.to_owned(),
            step,
            check,
            answer,
        });
    }
}

/// What settling compares of a `GET`: status, `x-nextjs-cache` and the stamps as they are.
#[derive(PartialEq, Eq)]
struct Signature {
    status: Option<u16>,
    cache: Option<String>,
    stamps: Vec<Vec<u8>>,
}

impl Signature {
    fn of(captured: &Result<Captured, String>) -> Signature {
        match captured {
            Ok(c) => Signature {
                status: Some(c.status),
                cache: c.header("x-nextjs-cache").map(str::to_owned),
                stamps: stamps(&c.body).map(<[u8]>::to_vec).collect(),
            },
            Err(_) => Signature {
                status: None,
                cache: None,
                stamps: Vec::new(),
            },
        }
    }
}

/// The stamps in a body, in order.
fn stamps(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(found) = find(&body[at..], STAMP) {
            let start = at + found;
            at = start + STAMP.len();
            if let Some(len) = stamp_at(body, start) {
                at = start + len;
                return Some(&body[start..start + len]);
            }
        }
        None
    })
}

/// The length of the stamp at `at` in `body`, if one starts there.
fn stamp_at(body: &[u8], at: usize) -> Option<usize> {
    let len = STAMP.len() + STAMP_DIGITS;
    let candidate = body.get(at..at + len)?;
    (candidate.starts_with(STAMP) && candidate[STAMP.len()..].iter().all(u8::is_ascii_digit))
        .then_some(len)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The response with its stamps and ETags numbered and React's per-render ids replaced
/// (see the module docs, "Normalisation").
fn normalise(captured: &Captured, numbering: &mut Numbering) -> Normalised {
    let mut headers = BTreeMap::new();
    for (name, values) in &captured.headers {
        if responses::IGNORED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let values = if name == "etag" {
            values
                .iter()
                .map(|v| format!("etag#{}", number(&mut numbering.etags, v)))
                .collect()
        } else {
            values.clone()
        };
        headers.insert(name.clone(), values);
    }
    let body = &captured.body;
    let mut out = Vec::with_capacity(body.len());
    let mut stamps = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if let Some(len) = stamp_at(body, at) {
            let n = number(&mut numbering.stamps, &body[at..at + len].to_vec());
            stamps.push(n);
            out.extend_from_slice(format!("stamp#{n}").as_bytes());
            at += len;
        } else if let Some((keep, id)) = render_id_at(body, at) {
            out.extend_from_slice(&body[at..at + keep]);
            out.extend_from_slice(b"render-id");
            at += keep + id;
        } else {
            out.push(body[at]);
            at += 1;
        }
    }
    let content_type = captured.header("content-type").unwrap_or_default();
    let body = if content_type.starts_with("text/x-component") {
        sorted_rows(&out, b"\n")
    } else if content_type.starts_with("text/html") {
        html_with_sorted_rows(&out)
    } else {
        out
    };
    Normalised {
        status: captured.status,
        headers,
        body,
        stamps,
    }
}

/// The rows of an RSC payload (separated by `separator`), sorted: React writes each row
/// when its data resolves, so their order depends on timing (see the module docs,
/// "Normalisation").
fn sorted_rows(payload: &[u8], separator: &[u8]) -> Vec<u8> {
    let mut rows = Vec::new();
    let mut rest = payload;
    while let Some(at) = find(rest, separator) {
        rows.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    rows.push(rest);
    rows.sort();
    rows.join(separator)
}

/// An HTML page with its inline RSC payload (the strings of its
/// `<script>self.__next_f.push([1,"…"])</script>` elements, which may cut rows anywhere)
/// taken out, joined, and put at the end with its rows sorted ([`sorted_rows`]).
fn html_with_sorted_rows(html: &[u8]) -> Vec<u8> {
    const OPEN: &[u8] = b"<script>self.__next_f.push([1,\"";
    const CLOSE: &[u8] = b"\"])</script>";
    let mut document = Vec::with_capacity(html.len());
    let mut payload = Vec::new();
    let mut rest = html;
    while let Some(start) = find(rest, OPEN) {
        let Some(len) = find(&rest[start + OPEN.len()..], CLOSE) else {
            break;
        };
        document.extend_from_slice(&rest[..start]);
        payload.extend_from_slice(&rest[start + OPEN.len()..start + OPEN.len() + len]);
        rest = &rest[start + OPEN.len() + len + CLOSE.len()..];
    }
    document.extend_from_slice(rest);
    // Inside the script's string literal a row ends with the two characters `\n`.
    document.extend_from_slice(b"\n<!-- the inline RSC payload, rows sorted -->\n");
    document.extend_from_slice(&sorted_rows(&payload, b"\\n"));
    document
}

/// A React element key made per render in an RSC payload, as in
/// `["$","$L10","LBIINz9H_esDsUFUejGxGv",{…` (or JSON-escaped inside the HTML's inline
/// payload): if one follows the `$L…` reference at `at`, the length of what comes before
/// it and its own length (21 characters; the `v` or `m` after them is kept).
fn render_id_at(body: &[u8], at: usize) -> Option<(usize, usize)> {
    let rest = body.get(at..)?;
    let rest = rest.strip_prefix(b"$L")?;
    let hex = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex == 0 {
        return None;
    }
    let mut keep = 2 + hex;
    let after = &rest[hex..];
    let (quote, between): (&[u8], &[u8]) = if after.starts_with(b"\",\"") {
        (b"\"", b"\",\"")
    } else if after.starts_with(b"\\\",\\\"") {
        (b"\\\"", b"\\\",\\\"")
    } else {
        return None;
    };
    keep += between.len();
    let key = &after[between.len()..];
    let id = key
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
        .count();
    let ends = key[id..].starts_with(quote);
    (id == 22 && ends && matches!(key[21], b'v' | b'm')).then_some((keep, 21))
}

/// A difference at one record: which field (for next start's own differences) and how.
struct Difference {
    index: usize,
    field: String,
    what: String,
}

/// The differences between two transcripts of the sequence, record by record.
fn compare(reference: &Transcript, ours: &Transcript) -> Vec<Difference> {
    let mut differences = Vec::new();
    assert_eq!(
        reference.records.len(),
        ours.records.len(),
        "one sequence, as many requests"
    );
    for (index, (r, o)) in reference.records.iter().zip(&ours.records).enumerate() {
        let mut differs = |field: &str, what: String| {
            differences.push(Difference {
                index,
                field: field.to_owned(),
                what,
            })
        };
        let (r, o) = match (&r.answer, &o.answer) {
            (Ok(r), Ok(o)) => (r, o),
            (Err(r), Err(o)) if r == o => continue,
            (r, o) => {
                let describe = |a: &Result<Normalised, String>| match a {
                    Ok(n) => n.status.to_string(),
                    Err(e) => format!("request failed: {e}"),
                };
                differs("status", format!("{} vs {}", describe(r), describe(o)));
                continue;
            }
        };
        // One side still answered the entry from before revalidation, the other the new one.
        let one_stale = reference.records[index].check == Check::FirstAfterRevalidation
            && (r.header("x-nextjs-cache") == Some("STALE"))
                != (o.header("x-nextjs-cache") == Some("STALE"));
        if r.status != o.status {
            differs("status", format!("status {} vs {}", r.status, o.status));
        }
        let names: BTreeSet<&String> = r.headers.keys().chain(o.headers.keys()).collect();
        for name in names {
            let tolerated = ["x-nextjs-cache", "etag", "content-length"];
            if one_stale && tolerated.contains(&name.as_str()) {
                continue;
            }
            match (r.headers.get(name), o.headers.get(name)) {
                (Some(rv), Some(ov)) => {
                    let (mut rv, mut ov) = (rv.clone(), ov.clone());
                    rv.sort();
                    ov.sort();
                    if rv != ov {
                        differs(
                            &format!("header {name}"),
                            format!("{name}: {rv:?} vs {ov:?}"),
                        );
                    }
                }
                (Some(v), None) => differs(
                    &format!("header {name}"),
                    format!("{name}: only next start sends {v:?}"),
                ),
                (None, Some(v)) => differs(
                    &format!("header {name}"),
                    format!("{name}: only tower-next sends {v:?}"),
                ),
                (None, None) => {}
            }
        }
        if one_stale {
            let without = |body: &[u8]| strip_stamps(body);
            if without(&r.body) != without(&o.body) {
                differs("body", describe_body_difference(&r.body, &o.body));
            }
        } else if r.body != o.body {
            differs("body", describe_body_difference(&r.body, &o.body));
        }
    }
    differences
}

/// A normalised body without its stamp numbers (`stamp#3` → `stamp#`).
fn strip_stamps(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    while at < body.len() {
        out.push(body[at]);
        at += 1;
        if out.ends_with(b"stamp#") {
            at += body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        }
    }
    out
}

/// One line per request of a transcript: route, step, status, `x-nextjs-cache` and the
/// stamps (`TOWER_NEXT_CACHE_TRANSCRIPT=1` prints next start's).
fn print_transcript(transcript: &Transcript) {
    let mut out = String::new();
    for record in &transcript.records {
        let answer = match &record.answer {
            Ok(n) => format!(
                "{} {} stamps {:?}",
                n.status,
                n.header("x-nextjs-cache").unwrap_or("-"),
                n.stamps
            ),
            Err(err) => err.clone(),
        };
        let _ = writeln!(out, "  {:18} {:40} {answer}", record.route, record.step);
    }
    support::progress(&format!("next start's answers:\n{out}"));
}

/// The differences as a table: route, step, what differed.
fn table(reference: &Transcript, ours: &Transcript, differences: &[Difference]) -> String {
    let rows: Vec<(&str, &str, &str)> = differences
        .iter()
        .map(|d| {
            let record = &reference.records[d.index];
            (record.route.as_str(), record.step.as_str(), d.what.as_str())
        })
        .chain(
            ours.unsettled
                .iter()
                .map(|u| ("(all routes)", "after revalidation: settle", u.as_str())),
        )
        .collect();
    let route_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    let step_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:route_width$}  {:step_width$}  what differed (next start vs tower-next)\n",
        "route", "step"
    );
    for (route, step, what) in rows {
        let _ = writeln!(out, "{route:route_width$}  {step:step_width$}  {what}");
    }
    out
}
