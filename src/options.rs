//! The seed's `next({ dev, dir, conf, quiet, hostname, port, turbo })` options, plus the
//! settings that only a Rust host needs (which `node`, how long to wait).

use std::{net::IpAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;

/// How to start a Next.js app: the options of Next's custom server `next({...})`.
///
/// ```
/// use tower_next::NextOptions;
///
/// let options = NextOptions::new("./web")
///     .dev(std::env::var("NODE_ENV").as_deref() != Ok("production"))
///     .hostname("localhost")
///     .port(3000);
/// ```
#[derive(Clone, Debug)]
pub struct NextOptions {
    pub(crate) dir: PathBuf,
    pub(crate) dev: bool,
    pub(crate) conf: Option<serde_json::Value>,
    pub(crate) quiet: bool,
    pub(crate) hostname: String,
    pub(crate) port: u16,
    pub(crate) turbo: Option<bool>,
    pub(crate) node_binary: PathBuf,
    pub(crate) start_timeout: Duration,
    pub(crate) ready_wait: Duration,
    pub(crate) proxy_trust: ProxyTrust,
    pub(crate) workers: Option<usize>,
    pub(crate) max_in_flight: usize,
    pub(crate) queue_size: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) health_interval: Duration,
    pub(crate) health_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) unready_delay: Duration,
    pub(crate) reload_grace: Duration,
    pub(crate) serve_natively: bool,
    pub(crate) mark_native: bool,
    pub(crate) cache_size: u64,
    pub(crate) shared_cache: Option<String>,
    pub(crate) brotli_budget: u64,
    pub(crate) previous_builds: usize,
    pub(crate) image_optimizations: Option<usize>,
}

impl NextOptions {
    /// Options for the Next.js project in `dir` (the folder with `package.json`), in
    /// production mode, behind `localhost:3000`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NextOptions {
            dir: dir.into(),
            dev: false,
            conf: None,
            quiet: false,
            hostname: "localhost".to_owned(),
            port: 3000,
            turbo: None,
            node_binary: PathBuf::from("node"),
            start_timeout: Duration::from_secs(60),
            ready_wait: Duration::from_secs(10),
            proxy_trust: ProxyTrust::default(),
            workers: None,
            max_in_flight: 32,
            queue_size: 256,
            request_timeout: Duration::from_secs(60),
            health_interval: Duration::from_secs(5),
            health_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            unready_delay: Duration::ZERO,
            reload_grace: Duration::from_secs(60),
            serve_natively: true,
            mark_native: false,
            cache_size: 50 * 1024 * 1024,
            shared_cache: None,
            brotli_budget: 0,
            previous_builds: 2,
            image_optimizations: None,
        }
    }

    /// The most memory, in bytes, the host's cache of Next's entries may take: pages,
    /// route handlers, `fetch` results and `'use cache'` values, which every worker reads
    /// and writes (README: the cache). Least recently used entries go first, and one entry
    /// may take at most an eighth of it. Default: 50 MiB, Next's own `cacheMaxMemorySize`
    /// default for one `next start` process.
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Shares the cache with every host serving the same build through a Redis or Valkey
    /// store at `url` (`redis://host:port/db`; README: several hosts): entries are written
    /// through, and a revalidation on one host reaches every host's cache and native
    /// answers. Keys are scoped by the build id. Hosts keep serving from their own cache
    /// while the store is unreachable, and resync when it is back. Default: none, the
    /// cache is this host's. Checked by [`crate::Next::prepare`], which fails with
    /// [`crate::Error::InvalidOptions`] for a URL that is not Redis's.
    pub fn shared_cache(mut self, url: impl Into<String>) -> Self {
        self.shared_cache = Some(url.into());
        self
    }

    /// Opt-in brotli for hashed assets (`/_next/static`): a client that accepts `br` gets
    /// the file compressed at brotli's highest quality, made in the background on the
    /// file's first request and kept in memory, at most `budget_bytes` of them. `next start`
    /// never sends brotli (its `compression` middleware knows gzip and deflate), so the
    /// answers are then no longer byte-identical to its own: hence off by default (`0`).
    /// Files are compressed only when they are compressible (by type) and smaller that way.
    pub fn brotli(mut self, budget_bytes: u64) -> Self {
        self.brotli_budget = budget_bytes;
        self
    }

    /// How many `/_next/image` requests that may make Next optimize an image (no fresh
    /// entry in its image cache) are sent to the workers at once, across the pool. More
    /// wait in line, in order: at most [`NextOptions::queue_size`] of them, each at most 5
    /// minutes (a turn lasts one optimization; browsers wait long for images); past
    /// either, `503` with `Retry-After: 1`. Requests for one image (the same url, width,
    /// quality and format) go one at a time: the others wait for the first one's answer
    /// and are then answered from the entry it wrote. Default: one per worker. Images
    /// with a fresh entry are answered without waiting (natively, once checked against
    /// Node). 0 counts as 1.
    pub fn image_optimizations(mut self, at_once: usize) -> Self {
        self.image_optimizations = Some(at_once);
        self
    }

    /// How many previous builds may still be served at once after quick successive
    /// reloads (each during its [`NextOptions::reload_grace`]); past it, the oldest stops
    /// at once, so memory stays bounded. Default: 2.
    pub fn previous_builds(mut self, count: usize) -> Self {
        self.previous_builds = count;
        self
    }

    /// Development mode (`next dev`): pages compile on demand. Default: `false`, which serves
    /// the production build made by `next build`.
    pub fn dev(mut self, dev: bool) -> Self {
        self.dev = dev;
        self
    }

    /// The next.config object. When given, Next.js uses it instead of `next.config.js`,
    /// exactly as the `conf` option of `next()` does. Only the JSON-serialisable part of a
    /// config can be given this way; keep functions (`rewrites()`, `webpack`) in the file.
    pub fn conf(mut self, conf: serde_json::Value) -> Self {
        self.conf = Some(conf);
        self
    }

    /// Hide Next.js error messages that contain server information.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The public host name the app is reached at. Default `localhost`.
    ///
    /// Next.js builds `request.url` in middleware from it. Prefer a name over `127.0.0.1`:
    /// given an IP, Next.js treats a middleware rewrite as external and proxies it to itself.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// The public port the app is reached at. Default 3000.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Turbopack in development mode (`turbo` / `turbopack` in `next()`). Unset: the
    /// Next.js version's default.
    pub fn turbo(mut self, turbo: bool) -> Self {
        self.turbo = Some(turbo);
        self
    }

    /// The Node.js executable. Default: `node` from `PATH`.
    pub fn node_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.node_binary = path.into();
        self
    }

    /// How long [`crate::Next::prepare`] waits for the worker to be ready. Default 60 s.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long a request may wait for a worker, one that is (re)starting or one with room
    /// for it under [`max_in_flight`](Self::max_in_flight), before it is answered
    /// `503 Service Unavailable` with `Retry-After`. Default 10 s.
    pub fn ready_wait(mut self, wait: Duration) -> Self {
        self.ready_wait = wait;
        self
    }

    /// Trust `Forwarded` and `X-Forwarded-For/Proto/Host/Port` from every client, as
    /// when every connection comes from a reverse proxy that sets them. Default `false`:
    /// the Rust server is the edge, so they are replaced with what it saw itself (spoofed
    /// values never reach Next.js). Prefer [`trusted_proxies`](Self::trusted_proxies),
    /// which trusts only the proxies' addresses.
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.proxy_trust.all = trust;
        self
    }

    /// Trust `Forwarded` and `X-Forwarded-*` only from peers in these networks (a single
    /// address is a `/32` or `/128` network), as nginx's `set_real_ip_from` does: behind
    /// such a proxy, Next.js sees the public host and scheme the proxy received (Server
    /// Actions compare `Origin` with `X-Forwarded-Host`), and the client's address is
    /// appended to `X-Forwarded-For`. From any other peer the headers are replaced.
    /// The peer address comes from axum's `ConnectInfo` or [`crate::ClientAddr`].
    ///
    /// ```
    /// use tower_next::NextOptions;
    ///
    /// let options = NextOptions::new("./web")
    ///     .trusted_proxies(["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()]);
    /// ```
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.proxy_trust.networks = networks.into_iter().collect();
        self
    }

    /// How many Node.js workers serve the app. Default: the number of cores
    /// (`std::thread::available_parallelism`) in production, always 1 in development
    /// (`next dev` compiles on demand and writes into the project; one compiler is enough).
    ///
    /// Requests go to the ready worker with the fewest outstanding requests. With more than
    /// one worker, the workers share Next's cache through the project's `.next` folder
    /// (see the README, "The worker pool"), unless next.config sets its own `cacheHandler`.
    ///
    /// 0 is refused by [`crate::Next::prepare`] with [`crate::Error::InvalidOptions`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// How many requests one worker handles at once. Default 32. A request counts from the
    /// moment it is sent until its response body has been sent in full (or dropped). More
    /// requests wait in the queue.
    ///
    /// 0 is refused by [`crate::Next::prepare`] with [`crate::Error::InvalidOptions`].
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// How many requests may wait for a worker, across the pool. Default 256. Past it a
    /// request is answered `503` with `Retry-After` at once: overload costs neither
    /// unbounded memory nor unbounded latency. 0 means: never wait for a busy worker.
    pub fn queue_size(mut self, size: usize) -> Self {
        self.queue_size = size;
        self
    }

    /// How long a worker may take to start answering a request (its response head) before
    /// the request is answered `504 Gateway Timeout`. Default 60 s. A streaming response
    /// that has started is not cut.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often each worker is asked whether it still answers, and how long it has to
    /// answer. Default every 5 s, within 5 s. A worker that misses a check gets no new
    /// requests until it answers again; after three missed checks in a row it is killed
    /// and replaced.
    pub fn health_check(mut self, interval: Duration, timeout: Duration) -> Self {
        self.health_interval = interval;
        self.health_timeout = timeout;
        self
    }

    /// How long [`crate::Next::shutdown`] (and a reload, for the old workers) waits for
    /// requests in flight to finish before the workers are stopped. Default 10 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long [`crate::Next::begin_shutdown`] reports not-ready while still serving
    /// before it returns, so that a load balancer (a Kubernetes Service) stops sending new
    /// requests before the server stops accepting them. Default 0; behind a load balancer
    /// a little more than its probe period times its failure threshold (e.g. 10 s).
    pub fn unready_delay(mut self, delay: Duration) -> Self {
        self.unready_delay = delay;
        self
    }

    /// After [`crate::Next::reload`], how long the previous build's workers keep serving
    /// that build's `/_next/static` files and `/_next/data` routes, so that pages loaded
    /// before the reload can still load their assets, and, when next.config sets
    /// `deploymentId`, every request of its clients (`x-deployment-id` on RSC requests and
    /// Server Actions, `?dpl=` on assets: skew protection). Default 60 s.
    pub fn reload_grace(mut self, grace: Duration) -> Self {
        self.reload_grace = grace;
        self
    }

    /// Whether prerendered pages are answered natively: production and switched on.
    pub(crate) fn native_pages(&self) -> bool {
        self.serve_natively && !self.dev
    }

    /// The number of workers this configuration runs: 1 in development.
    /// The options that cannot work, as the reason to give.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.workers == Some(0) {
            return Err("workers(0): a pool needs at least one worker".into());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight(0): a worker must take at least one request".into());
        }
        if let Some(url) = &self.shared_cache {
            crate::cache::check_store_url(url)?;
        }
        Ok(())
    }

    pub(crate) fn worker_count(&self) -> usize {
        if self.dev {
            if self.workers.is_some_and(|n| n > 1) {
                tracing::warn!(
                    "development mode runs one Next.js worker; workers(n) applies in production"
                );
            }
            return 1;
        }
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Answer what needs no JavaScript in Rust: `/_next/static` and `public/` files, and
    /// prerendered pages as Next's cache holds them, with the status, headers and bytes
    /// `next start` would send. Default `true` (production only); `false` sends every
    /// request to Node.js. The native responders learn of every page Next writes and every
    /// revalidation from the workers' cache events; a worker's response waits until the
    /// events it may show (its own, and with a pool those the others noted in the shared
    /// cache's journal) are applied, so no native answer after it is older.
    pub fn serve_natively(mut self, on: bool) -> Self {
        self.serve_natively = on;
        self
    }

    /// Mark each answer given by Rust with a response header `x-tower-next-native` naming
    /// its responder (`static`, `public`, `page`, `data`, `not-found`, `gzip`...). Meant for
    /// tests and debugging: the header is not part of what `next start` sends. Default
    /// `false`.
    pub fn mark_native_responses(mut self, on: bool) -> Self {
        self.mark_native = on;
        self
    }
}

/// Whose `Forwarded`/`X-Forwarded-*` headers reach Next.js.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProxyTrust {
    all: bool,
    networks: Vec<IpNet>,
}

impl ProxyTrust {
    /// Whether the headers of a request from `peer` are kept.
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        self.all
            || peer.is_some_and(|peer| {
                // An IPv4 client on a dual-stack socket appears as `::ffff:a.b.c.d`.
                let peer = peer.to_canonical();
                self.networks.iter().any(|network| network.contains(&peer))
            })
    }
}
