//! The `Next` handle: the prepared app, as the seed's `app` object.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use http::{Request, Response, StatusCode};
use tracing::Instrument;

use crate::{
    Error, NextLayer, NextOptions, Probe,
    assets::{self, Assets, Decision, Native},
    body::{Body, BoxError, plain_response},
    build::{AppInfo, Manifests},
    cache, proxy,
    routes::{DevWatch, Dispatch, Reach, RouteTable, Target},
    runtime::{Generation, PoolStatus, WorkerPool, protocol},
    service::NextService,
    telemetry::{self, Responder},
};

/// A prepared Next.js app: the seed's `app = next({...})` after `app.prepare()`.
///
/// Cheap to clone (an `Arc` inside). When the last clone is dropped the workers are
/// stopped; [`Next::shutdown`] does the same gracefully and waits for it.
#[derive(Clone)]
pub struct Next {
    shared: Arc<Shared>,
}

struct Shared {
    options: NextOptions,
    /// The workers, with what was derived from the build they run.
    pool: WorkerPool<App>,
    /// Dev only: keeps the route folders watched while the app lives (new ones are
    /// added as they appear).
    dev_watch: Option<Mutex<DevWatch>>,
    /// Set by `begin_shutdown`: readiness is false from then on (after `shutdown`, the
    /// pool's own closing says so).
    stopping: std::sync::atomic::AtomicBool,
    // Last: removed after the workers have been told to stop.
    private_dir: Mutex<Option<tempfile::TempDir>>,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.shared.pool.current();
        f.debug_struct("Next")
            .field("dir", &current.dir)
            .field("dev", &self.shared.options.dev)
            .field("next_version", &current.info.next_version)
            .field("build_id", &current.info.build_id)
            .finish()
    }
}

impl Next {
    /// Starts the app and waits until it is ready: `app.prepare()`.
    ///
    /// Spawns the Node.js workers ([`NextOptions::workers`]) running the embedded bridge,
    /// waits for Next.js to be prepared in each and loads the route table.
    ///
    /// # Errors
    /// An [`Error`] that says what to do: [`Error::InvalidOptions`] for settings that
    /// cannot work, [`Error::ProjectDir`] when `dir` is not a folder,
    /// [`Error::NodeNotFound`] and [`Error::NextNotInstalled`] when Node.js or the `next`
    /// package is missing, [`Error::BuildMissing`] when the production build is missing
    /// or was made by another Next.js version, [`Error::StartTimeout`] and
    /// [`Error::WorkerFailed`] when a worker does not become ready (with its last stderr
    /// lines), [`Error::Manifest`] when the build output cannot be read, [`Error::Io`]
    /// for operating-system errors.
    pub async fn prepare(options: NextOptions) -> Result<Next, Error> {
        options
            .check()
            .map_err(|detail| Error::InvalidOptions { detail })?;
        let dir = project_dir(&options.dir)?;
        // A private 0700 folder for the sockets and the scripts.
        let private_dir = tempfile::Builder::new()
            .prefix("tower-next-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;
        let dev = options.dev;
        let dev_watch = if dev {
            match DevWatch::start(&dir) {
                Ok(watch) => Some(watch),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot watch the route folders; pages added later need a restart");
                    None
                }
            }
        } else {
            None
        };
        let app_options = options.clone();
        let pool = WorkerPool::start(
            options.clone(),
            dir,
            private_dir.path().to_owned(),
            move |dir, info| App::load(dir, info, &app_options),
        )
        .await?;
        keep_native_answers_current(&pool).await;
        let (dev_watcher, changes) = dev_watch.unzip();
        let shared = Arc::new(Shared {
            options,
            pool,
            dev_watch: dev_watcher.map(Mutex::new),
            stopping: std::sync::atomic::AtomicBool::new(false),
            private_dir: Mutex::new(Some(private_dir)),
        });
        if let Some(changes) = changes {
            tokio::spawn(refresh_dev_routes(Arc::downgrade(&shared), changes));
        }
        tokio::spawn(report_pool(Arc::downgrade(&shared)));
        Ok(Next { shared })
    }

    /// The request handler, `app.getRequestHandler()`: a tower `Service` that gives every
    /// request to Next.js. Use it as a fallback service, or behind your own middleware.
    pub fn service(&self) -> NextService {
        NextService::new(self.clone())
    }

    /// A [`NextLayer`] for this app: Next.js for the requests it owns, the wrapped service
    /// for the rest. The same as `NextLayer::new(next.clone())`.
    pub fn layer(&self) -> NextLayer {
        NextLayer::new(self.clone())
    }

    /// Renders Next page `page` for this request, with `query` as its query:
    /// `app.render(req, res, page, query)`. Headers, cookies and the body of `request`
    /// reach the page; next.config headers and middleware for `page` apply.
    ///
    /// Use [`crate::request_query`] to pass the request's own query on.
    pub async fn render<B, K, V>(
        &self,
        request: Request<B>,
        page: &str,
        query: impl IntoIterator<Item = (K, V)>,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let query = {
            // Not held across the await below: the serializer is not `Send`.
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (key, value) in query {
                encoded.append_pair(key.as_ref(), value.as_ref());
            }
            encoded.finish()
        };
        let target = Target::Render {
            page: page.to_owned(),
            query,
        };
        self.serve(request.map(Body::new), target).await
    }

    /// Next's own 404 page for this request: `app.render404(req, res)`.
    pub async fn render_404<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve(request.map(Body::new), Target::NotFound).await
    }

    /// Stops gracefully: no new requests (they get `503`), requests in flight finish (up
    /// to [`NextOptions::drain_timeout`]), then every worker gets SIGTERM and, after a
    /// grace period of 5 s, SIGKILL; sockets and temporary files are removed. Calling it
    /// again waits for the first call to finish.
    pub async fn shutdown(&self) {
        if let Some(assets) = &self.shared.pool.current().app.assets {
            assets.stop();
        }
        self.shared.pool.shutdown().await;
        if let Some(cache) = self.shared.pool.cache() {
            cache.stop();
        }
        let private_dir = self
            .shared
            .private_dir
            .lock()
            .expect("private dir lock")
            .take();
        if let Some(private_dir) = private_dir {
            let path = private_dir.path().to_owned();
            if let Err(err) = private_dir.close() {
                tracing::warn!(dir = %path.display(), error = %err, "could not remove the private folder");
            }
        }
    }

    /// Serves a new build without dropping a request: after `next build`, starts workers
    /// on the new build, and once they are all ready swaps them in together with the new
    /// route table. The previous workers finish the requests they have, and serve the
    /// previous build's `/_next/static` files and `/_next/data` routes for
    /// [`NextOptions::reload_grace`], so pages loaded before the reload can still load
    /// their assets; then they are stopped.
    ///
    /// The project folder is resolved again, so the zero-downtime way is to build each
    /// release in its own folder and point a symbolic link (the `dir` given to
    /// [`NextOptions::new`]) at the new one before calling `reload`. A build made in place
    /// replaces the files the running workers read while it runs; see the README.
    ///
    /// # Errors
    /// [`Error::ReloadInDev`] in development mode (Next.js recompiles itself),
    /// [`Error::ShutDown`] after [`Next::shutdown`], and the errors of [`Next::prepare`]
    /// when the new build is missing or its workers fail to start. On error the running
    /// app is left as it was.
    pub async fn reload(&self) -> Result<(), Error> {
        let dev = self.shared.options.dev;
        if dev {
            return Err(Error::ReloadInDev);
        }
        let dir = project_dir(&self.shared.options.dir)?;
        let options = &self.shared.options;
        self.shared
            .pool
            .reload(dir, |dir, info| App::load(dir, info, options))
            .await?;
        keep_native_answers_current(&self.shared.pool).await;
        Ok(())
    }

    /// The Next.js version the workers run.
    pub fn next_version(&self) -> String {
        self.shared.pool.current().info.next_version.clone()
    }

    /// The build id (`.next/BUILD_ID`) the workers serve, or `development` in dev mode.
    pub fn build_id(&self) -> String {
        self.shared.pool.current().info.build_id.clone()
    }

    /// The project folder (after resolving symbolic links, as of the last start or
    /// reload).
    pub fn dir(&self) -> PathBuf {
        self.shared.pool.current().dir.clone()
    }

    /// The workers and their load, for monitoring.
    pub fn pool_status(&self) -> PoolStatus {
        self.shared.pool.status()
    }

    /// Whether the app can take a new request now: at least one worker of the current
    /// build is ready, and neither [`Next::begin_shutdown`] nor [`Next::shutdown`] was
    /// called. What [`Next::readiness`] answers. Requests are still served while it is
    /// false (queued while workers restart, up to [`NextOptions::ready_wait`]).
    pub fn is_ready(&self) -> bool {
        !self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
            && self.shared.pool.ready()
    }

    /// A readiness probe for orchestrators (Kubernetes `readinessProbe`): `200 ready`
    /// while [`Next::is_ready`], else `503 not ready` with the reason. Serve it on a path
    /// of your own, e.g. `.route_service("/readyz", next.readiness())`.
    pub fn readiness(&self) -> Probe {
        Probe::readiness(self.clone())
    }

    /// A liveness probe (Kubernetes `livenessProbe`): `200 alive` whenever the Rust
    /// server answers. Worker crashes are not a reason to restart the host (it restarts
    /// its workers itself), so liveness does not depend on them.
    pub fn liveness(&self) -> Probe {
        Probe::liveness(self.clone())
    }

    /// The first step of a stop behind a load balancer: readiness turns false at once,
    /// requests are still served, and this waits [`NextOptions::unready_delay`] so the
    /// load balancer stops sending new requests. Call it when the stop signal (SIGTERM)
    /// arrives, before the server stops accepting connections; then [`Next::shutdown`]
    /// drains and stops.
    pub async fn begin_shutdown(&self) {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let delay = self.shared.options.unready_delay;
        if !delay.is_zero() {
            tracing::info!(?delay, "not ready any more; still serving during the delay");
            tokio::time::sleep(delay).await;
        }
    }

    /// Whether the app runs in development mode.
    pub fn is_dev(&self) -> bool {
        self.shared.options.dev
    }

    pub(crate) fn routes(&self) -> Routes {
        Routes(self.shared.pool.current())
    }

    /// Answers a request Next.js owns, as `target` says.
    pub(crate) async fn serve(&self, request: Request<Body>, target: Target) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let route = match &target {
            Target::Render { page, .. } => Some(page.clone()),
            Target::NotFound => None,
            Target::Handle(_) | Target::Rewrite(_) => self.routes().route(request.uri()),
        };
        // On the caller's span, when it declares the field (tower-http's TraceLayer with
        // `http.route = Empty`), and on this one.
        tracing::Span::current().record("http.route", route.as_deref());
        let span = tracing::debug_span!("next", http.route = route.as_deref());
        let (mut response, responder) = self.answer(request, target).instrument(span).await;
        telemetry::record_request(
            &method,
            response.status(),
            route.as_deref(),
            responder,
            started.elapsed(),
        );
        response.extensions_mut().insert(telemetry::Measured);
        response
    }

    async fn answer(&self, request: Request<Body>, target: Target) -> (Response<Body>, Responder) {
        if let Some((status, reason)) = proxy::refused_by_node(&request) {
            tracing::warn!(method = %request.method(), uri = %request.uri(), reason, "request refused");
            return (plain_response(status, reason), Responder::Native);
        }
        match target {
            Target::Handle(reach) => self.handle(request, reach).await,
            Target::Rewrite(path_and_query) => {
                let request = rewrite_target(request, &path_and_query);
                (
                    self.dispatch(request, Dispatch::Handle).await,
                    Responder::Node,
                )
            }
            Target::Render { page, .. } if !page.starts_with('/') => {
                tracing::error!(page, "render: the page path must start with '/'");
                let response =
                    plain_response(StatusCode::INTERNAL_SERVER_ERROR, "invalid page path");
                (response, Responder::Native)
            }
            Target::Render { page, query } => {
                let response = self
                    .dispatch(request, Dispatch::Render { page, query })
                    .await;
                (response, Responder::Node)
            }
            Target::NotFound => (
                self.dispatch(request, Dispatch::NotFound).await,
                Responder::Node,
            ),
        }
    }

    /// Answers a request that Next.js would handle as it is: natively when Rust can give
    /// `next start`'s answer, else through a worker.
    async fn handle(&self, request: Request<Body>, reach: Reach) -> (Response<Body>, Responder) {
        match self.native(&request, reach) {
            Decision::Native(Native::Resume(resume)) => {
                (self.resume(request, resume), Responder::Node)
            }
            Decision::Native(native) => (native.into_response().await, Responder::Native),
            Decision::Node(learn) => (self.to_node(request, learn).await, Responder::Node),
            Decision::ImageMiss(miss) => self.optimize(request, reach, miss).await,
        }
    }

    /// Node's answer, checked or learned from when `learn` says so.
    async fn to_node(
        &self,
        request: Request<Body>,
        learn: Option<assets::Learn>,
    ) -> Response<Body> {
        let response = self.dispatch(request, Dispatch::Handle).await;
        match learn {
            Some(learn) => learn.watch(response),
            None => response,
        }
    }

    /// An image request that may make Node optimize: after any request of the same image
    /// at Node, and within the bound on optimizations at once (see `assets::Optimizations`).
    async fn optimize(
        &self,
        request: Request<Body>,
        reach: Reach,
        miss: assets::ImageMiss,
    ) -> (Response<Body>, Responder) {
        let guard = match miss.join() {
            assets::Flight::Lead(guard) => guard,
            assets::Flight::Wait(waiting) => {
                waiting.wait().await;
                // The first request's entry is on disk now, unless it failed.
                match self.native(&request, reach) {
                    Decision::Native(native) => {
                        return (native.into_response().await, Responder::Native);
                    }
                    Decision::Node(learn) => {
                        return (self.to_node(request, learn).await, Responder::Node);
                    }
                    // Still no entry (the first request failed): no second wait.
                    Decision::ImageMiss(miss) => miss.alone(),
                }
            }
        };
        let Ok(_permit) = guard.permit().await else {
            tracing::warn!(uri = %request.uri(), "no turn to optimize an image (the line is full, or 5 minutes passed); answering 503 (see NextOptions::image_optimizations)");
            let mut response = plain_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many images being optimized",
            );
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            return (response, Responder::Native);
        };
        let response = self.dispatch(request, Dispatch::Handle).await;
        drop(guard);
        (response, Responder::Node)
    }

    /// The native responders' decision for a request.
    fn native<B>(&self, request: &Request<B>, reach: Reach) -> Decision {
        if assets::is_traversal(request.uri().path()) {
            tracing::warn!(path = request.uri().path(), "path traversal refused");
            return Decision::Native(Native::Ready(assets::refuse_traversal()));
        }
        // A client on a page of the previous build, during a reload's grace period: its
        // workers answer (skew protection), not the new build's files.
        if !self.shared.pool.is_current(request) {
            return Decision::Node(None);
        }
        match &self.shared.pool.current().app.assets {
            Some(assets) => assets.respond(request, reach),
            None => Decision::Node(None),
        }
    }

    /// A partially prerendered page: its head and static shell at once, then the rest of
    /// the page as a worker resumes the render from the shell's postponed state (`next
    /// start` appends its resumed render to the cached shell the same way). A worker that
    /// fails cuts the answer short, as a failing render does in `next start`.
    fn resume(&self, request: Request<Body>, resume: assets::Resume) -> Response<Body> {
        use futures::{StreamExt, stream};

        let (parts, _) = request.into_parts();
        let worker_request = Request::from_parts(parts, Body::full(resume.state));
        let next = self.clone();
        let rest = async move {
            let response = next.dispatch(worker_request, Dispatch::Resume).await;
            if response.status() != StatusCode::OK {
                tracing::error!(
                    status = %response.status(),
                    "a worker did not resume a partially prerendered page; its answer is cut short"
                );
                return Err(BoxError::from("the page's render was not resumed"));
            }
            Ok(response.into_body())
        };
        let rest = stream::once(rest)
            .map(|body| match body {
                Ok(body) => http_body_util::BodyStream::new(body).left_stream(),
                Err(err) => stream::once(async move { Err(err) }).right_stream(),
            })
            .flatten();
        let shell = resume.shell;
        let frames = stream::once(async move { Ok(http_body::Frame::data(shell)) }).chain(rest);
        let (head, ()) = resume.head.into_parts();
        Response::from_parts(head, Body::new(http_body_util::StreamBody::new(frames)))
    }

    /// Sends a request to a worker of the pool.
    async fn dispatch(&self, request: Request<Body>, dispatch: Dispatch) -> Response<Body> {
        let mut request = request;
        let upgrade = proxy::take_upgrade(&mut request);
        let public_path = request.uri().path().to_owned();
        match proxy::prepare(request, &dispatch, &self.shared.options.proxy_trust) {
            Ok(mut request) => {
                if let Some(upgrade) = &upgrade {
                    upgrade.restore_request_headers(request.headers_mut());
                }
                if let Some(cache) = self.shared.pool.cache() {
                    let headers = request.headers_mut();
                    headers.insert(protocol::TAGS_SEQ, cache.tags_seq().into());
                    headers.insert(
                        protocol::USE_CACHE_CHANGES,
                        cache.use_cache_changes().into(),
                    );
                }
                let response = self.shared.pool.forward(request).await;
                proxy::finish(response, &dispatch, &public_path, upgrade)
            }
            Err(reason) => plain_response(StatusCode::BAD_REQUEST, reason),
        }
    }
}

/// Applies the cache events of a generation's workers to its native answers.
/// Publishes the pool's state as gauges (`telemetry`) every second while the app lives.
async fn report_pool(shared: std::sync::Weak<Shared>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        telemetry::record_pool(&shared.pool.status());
    }
}

async fn keep_native_answers_current(pool: &WorkerPool<App>) {
    let generation = pool.current().clone();
    if let Some(cache) = pool.cache() {
        cache.open_build(&generation.info.cache_namespace()).await;
    }
    cache::keep_current(
        generation.take_events(),
        generation.app.assets.clone(),
        generation.fence().clone(),
        pool.cache()
            .map(|cache| (cache.clone(), generation.info.cache_namespace())),
    );
    if let (Some(cache), Some(assets)) = (pool.cache(), &generation.app.assets) {
        cache::follow_remote_changes(cache, &generation.info.cache_namespace(), assets).await;
    }
}

/// Replaces the path and query of a request, keeping scheme and authority.
fn rewrite_target(mut request: Request<Body>, path_and_query: &str) -> Request<Body> {
    let mut parts = request.uri().clone().into_parts();
    match path_and_query.parse() {
        Ok(target) => {
            parts.path_and_query = Some(target);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
        Err(err) => tracing::error!(%path_and_query, error = %err, "invalid rewrite target"),
    }
    request
}

/// The most bytes of a request head (request line and headers) that Node's HTTP server
/// accepts by default (`--max-http-header-size`, 16 KiB): a larger one never reaches
/// Next.js under `next start`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Dev mode: rebuilds the route table after each burst of changes in the route folders,
/// until the app is dropped (which drops the watcher and closes `changes`).
async fn refresh_dev_routes(
    shared: std::sync::Weak<Shared>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    while changes.recv().await.is_some() {
        // Editors write in several steps: let the burst settle, then scan once.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        while changes.try_recv().is_ok() {}
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(watch) = &shared.dev_watch
            && let Err(err) = watch.lock().expect("dev watch lock").watch_new_folders()
        {
            tracing::warn!(error = %err, "cannot watch a new route folder");
        }
        let matchers = match shared.pool.control("middleware-matchers").await {
            Ok(body) => serde_json::from_slice::<Vec<String>>(&body).map_err(|err| err.to_string()),
            Err(err) => Err(err),
        };
        let refreshed = shared.pool.replace_app(|dir, info| {
            let mut info = info.clone();
            match &matchers {
                Ok(matchers) => info.middleware_matchers = matchers.clone(),
                Err(err) => {
                    tracing::warn!(error = %err, "could not ask the worker for middleware matchers")
                }
            }
            // Dev mode has no native responders.
            Ok(App {
                routes: Arc::new(RouteTable::load(dir, &info, None)?),
                assets: None,
            })
        });
        match refreshed {
            Ok(()) => tracing::debug!("dev routes refreshed"),
            Err(err) => tracing::warn!(error = %err, "could not refresh dev routes"),
        }
    }
}

/// What is derived from one build, swapped together with its workers on reload.
pub(crate) struct App {
    /// Who owns a request.
    routes: Arc<RouteTable>,
    /// The native responders (production only, unless switched off).
    assets: Option<Arc<Assets>>,
}

impl App {
    fn load(dir: &Path, info: &AppInfo, options: &NextOptions) -> Result<App, Error> {
        // The manifests are read once, for ownership and native answers alike; dev mode
        // has no complete ones (routes come from the folders, nothing is prebuilt).
        let build = if options.dev {
            None
        } else {
            Some(Arc::new(Manifests::read(&info.config.dist_dir)?))
        };
        let routes = Arc::new(RouteTable::load(dir, info, build.as_deref())?);
        let assets = match build {
            Some(build) if options.serve_natively => {
                Assets::load(dir, info, build, routes.clone(), options).map(Arc::new)
            }
            _ => None,
        };
        Ok(App { routes, assets })
    }
}

/// The route table of the build that takes new requests.
pub(crate) struct Routes(arc_swap::Guard<Arc<Generation<App>>>);

impl std::ops::Deref for Routes {
    type Target = RouteTable;

    fn deref(&self) -> &RouteTable {
        &self.0.app.routes
    }
}

/// The canonical project folder.
fn project_dir(dir: &Path) -> Result<PathBuf, Error> {
    let canonical = std::fs::canonicalize(dir).map_err(|source| Error::ProjectDir {
        dir: dir.to_owned(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(Error::ProjectDir {
            dir: canonical,
            source: std::io::Error::other("not a folder"),
        });
    }
    Ok(canonical)
}

/// The query pairs of a request, to pass on to [`Next::render`].
pub fn request_query<B>(request: &Request<B>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// axum handlers need `Send` futures; this fails to compile if one is not.
#[cfg(test)]
#[allow(dead_code)]
fn futures_are_send(next: Next, request: Request<Body>) {
    fn send<T: Send>(_: T) {}
    send(next.render(request, "/b", [("a", "b")]));
    send(next.render_404(Request::new(Body::empty())));
}
