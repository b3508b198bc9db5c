//! The seed's `next({ dev, dir, conf, quiet, hostname, port, turbo })` options, plus the
//! settings that only a Rust host needs (which `node`, how long to wait).

use std::{path::PathBuf, time::Duration};

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
    pub(crate) trust_forwarded: bool,
    pub(crate) serve_natively: bool,
    pub(crate) mark_native: bool,
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
            trust_forwarded: false,
            serve_natively: true,
            mark_native: false,
        }
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

    /// How long a request waits for a (re)starting worker before it is answered
    /// `503 Service Unavailable` with `Retry-After`. Default 10 s.
    pub fn ready_wait(mut self, wait: Duration) -> Self {
        self.ready_wait = wait;
        self
    }

    /// Trust `X-Forwarded-For/Proto/Host` from clients, as behind a reverse proxy that sets
    /// them. Default `false`: the Rust server is the edge, so they are replaced with what it
    /// saw itself (spoofed values never reach Next.js).
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// Answer what needs no JavaScript in Rust: `/_next/static` and `public/` files, and
    /// prerendered pages as Next's cache holds them, with the status, headers and bytes
    /// `next start` would send. Default `true` (production only); `false` sends every
    /// request to Node.js.
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
