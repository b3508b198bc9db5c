//! The `Next` handle: the prepared app, as the seed's `app` object.

use std::{path::Path, sync::Arc};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};

use crate::{
    Error, NextOptions,
    assets::{self, Assets, Decision, Native, Reach},
    body::{Body, BoxError, plain_response},
    proxy::{Dispatch, Proxy},
    routes::{RouteTable, Routing},
    runtime::{AppInfo, Events, Worker, WorkerEvent, WorkerState},
    service::NextService,
};

/// A prepared Next.js app: the seed's `app = next({...})` after `app.prepare()`.
///
/// Cheap to clone (an `Arc` inside). When the last clone is dropped the worker is stopped;
/// [`Next::shutdown`] does the same and waits for it.
#[derive(Clone)]
pub struct Next {
    shared: Arc<Shared>,
}

struct Shared {
    options: NextOptions,
    dir: std::path::PathBuf,
    info: AppInfo,
    routes: ArcSwap<RouteTable>,
    /// The native responders (production only, unless switched off).
    assets: Option<Arc<Assets>>,
    proxy: Proxy,
    worker: Worker,
    // Last: removed after the worker has been told to stop.
    _private_dir: tempfile::TempDir,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("dir", &self.shared.dir)
            .field("dev", &self.shared.options.dev)
            .field("next_version", &self.shared.info.next_version)
            .field("build_id", &self.shared.info.build_id)
            .finish()
    }
}

impl Next {
    /// Starts the app and waits until it is ready: `app.prepare()`.
    ///
    /// Spawns a Node.js worker running the embedded bridge, waits for Next.js to be prepared
    /// and loads the route table. Fails with an actionable [`Error`] when Node.js or the
    /// `next` package is missing, the production build is missing or stale, or the worker
    /// exits while starting.
    pub async fn prepare(options: NextOptions) -> Result<Next, Error> {
        let dir = std::fs::canonicalize(&options.dir).map_err(|source| Error::ProjectDir {
            dir: options.dir.clone(),
            source,
        })?;
        if !dir.is_dir() {
            return Err(Error::ProjectDir {
                dir,
                source: std::io::Error::other("not a folder"),
            });
        }
        // A private 0700 folder for the socket and the bridge script.
        let private_dir = tempfile::Builder::new()
            .prefix("tower-next-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()?;
        let (events, received) = Events::new();
        let (worker, info) = Worker::start(&options, &dir, private_dir.path(), 0, events).await?;
        let routes = Arc::new(RouteTable::load(&dir, &info, options.dev)?);
        let assets = if options.serve_natively {
            let (dir, info, routes) = (dir.clone(), info.clone(), routes.clone());
            let (dev, mark) = (options.dev, options.mark_native);
            tokio::task::spawn_blocking(move || Assets::load(&dir, &info, routes, dev, mark))
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))?
                .map(Arc::new)
        } else {
            None
        };
        let (applied, applied_rx) = watch::channel(0);
        tokio::spawn(keep_current(received, assets.clone(), applied));
        let proxy = Proxy::new(worker.socket(), options.trust_forwarded, applied_rx);
        Ok(Next {
            shared: Arc::new(Shared {
                options,
                dir,
                info,
                routes: ArcSwap::new(routes),
                assets,
                proxy,
                worker,
                _private_dir: private_dir,
            }),
        })
    }

    /// The request handler, `app.getRequestHandler()`: a tower `Service` that gives every
    /// request to Next.js. Use it as a fallback service, or behind your own middleware.
    pub fn service(&self) -> NextService {
        NextService::new(self.clone(), Routing::default())
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
        if !page.starts_with('/') {
            tracing::error!(page, "render: the page path must start with '/'");
            return plain_response(StatusCode::INTERNAL_SERVER_ERROR, "invalid page path");
        }
        let query = {
            // Not held across the await below: the serializer is not `Send`.
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (key, value) in query {
                encoded.append_pair(key.as_ref(), value.as_ref());
            }
            encoded.finish()
        };
        let dispatch = Dispatch::Render {
            page: page.to_owned(),
            query,
        };
        self.dispatch(request.map(Body::new), dispatch).await
    }

    /// Next's own 404 page for this request: `app.render404(req, res)`.
    pub async fn render_404<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.dispatch(request.map(Body::new), Dispatch::NotFound)
            .await
    }

    /// Stops the worker: no new requests, in-flight ones get a grace period, then the
    /// Node.js process is ended and its socket removed.
    pub async fn shutdown(&self) {
        if let Some(assets) = &self.shared.assets {
            assets.stop();
        }
        self.shared.worker.stop().await;
    }

    /// The Next.js version the worker runs.
    pub fn next_version(&self) -> &str {
        &self.shared.info.next_version
    }

    /// The build id (`.next/BUILD_ID`), or `development` in dev mode.
    pub fn build_id(&self) -> &str {
        &self.shared.info.build_id
    }

    /// The project folder.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The process id of the Node.js worker, if one is running (for monitoring).
    pub fn worker_pid(&self) -> Option<u32> {
        self.shared.worker.pid()
    }

    /// Whether the app runs in development mode.
    pub fn is_dev(&self) -> bool {
        self.shared.options.dev
    }

    pub(crate) fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.shared.routes.load()
    }

    /// Answers a request that Next.js would handle as it is: natively when Rust can give
    /// `next start`'s answer, else through the worker.
    pub(crate) async fn handle(&self, request: Request<Body>, reach: Reach) -> Response<Body> {
        match self.native(&request, reach) {
            Decision::Native(native) => native.into_response().await,
            Decision::Node(learn) => {
                let response = self.dispatch(request, Dispatch::Handle).await;
                match learn {
                    Some(learn) => learn.watch(response),
                    None => response,
                }
            }
        }
    }

    /// The native responders' decision for a request.
    fn native<B>(&self, request: &Request<B>, reach: Reach) -> Decision {
        if assets::is_traversal(request.uri().path()) {
            tracing::warn!(path = request.uri().path(), "path traversal refused");
            return Decision::Native(Native::Ready(assets::refuse_traversal()));
        }
        match &self.shared.assets {
            Some(assets) => assets.respond(request, reach),
            None => Decision::Node(None),
        }
    }

    /// Sends a request to the worker, waiting (bounded) for it to be ready.
    pub(crate) async fn dispatch(
        &self,
        request: Request<Body>,
        dispatch: Dispatch,
    ) -> Response<Body> {
        let worker = &self.shared.worker;
        let state = match worker.state() {
            WorkerState::Ready => WorkerState::Ready,
            _ => worker.wait_ready(self.shared.options.ready_wait).await,
        };
        match state {
            WorkerState::Ready => self.shared.proxy.forward(request, dispatch).await,
            WorkerState::Stopped => unavailable("Next.js is shutting down"),
            WorkerState::Starting => unavailable("Next.js worker is starting"),
            WorkerState::Down(reason) => {
                tracing::warn!(%reason, "no Next.js worker ready");
                unavailable(&reason)
            }
        }
    }
}

/// Applies the worker's cache events to the native responders, in order, and publishes
/// the generation applied (the proxy waits on it).
async fn keep_current(
    mut received: mpsc::UnboundedReceiver<WorkerEvent>,
    assets: Option<Arc<Assets>>,
    applied: watch::Sender<u64>,
) {
    while let Some(event) = received.recv().await {
        let generation = match &event {
            WorkerEvent::Cache(event) => Some(event.generation),
            WorkerEvent::Restarted => None,
        };
        if let Some(assets) = &assets {
            assets.apply(event).await;
        }
        if let Some(generation) = generation {
            applied.send_modify(|applied| *applied = (*applied).max(generation));
        }
    }
}

fn unavailable(reason: &str) -> Response<Body> {
    let mut response = plain_response(StatusCode::SERVICE_UNAVAILABLE, reason);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
