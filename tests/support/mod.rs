//! Shared setup for the integration tests: the fixture app (installed and built once,
//! across test binaries), servers on 127.0.0.1, and an HTTP client.
#![allow(dead_code)] // each test binary uses a different part

pub mod browser;
pub mod responses;

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt;

use axum::Router;
use tower_next::{Next, NextOptions};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture app the tests run on: `tests/fixtures/$TOWER_NEXT_FIXTURE`, default `app15`
/// (Next 15.5); `app16` is Next 16.4. `npm ci` and `next build` are done once: the first
/// caller in any test process does the work, under a file lock; the others wait for it.
pub fn fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| prepare_fixture(&repo().join("tests/fixtures").join(fixture_name())))
        .clone()
}

/// The major version of Next.js in the fixture.
pub fn next_major() -> u32 {
    let package =
        std::fs::read_to_string(installed_fixture().join("node_modules/next/package.json"))
            .unwrap();
    let package: serde_json::Value = serde_json::from_str(&package).unwrap();
    package["version"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The fixture app's folder with its `node_modules` installed (`npm ci`, once), not built:
/// for builds of other sources with the fixture's Next.js ([`shapes_fixture`]).
pub fn installed_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = repo().join("tests/fixtures").join(fixture_name());
            let _lock = fixture_lock(&dir);
            install(&dir);
            dir
        })
        .clone()
}

fn fixture_name() -> String {
    std::env::var("TOWER_NEXT_FIXTURE").unwrap_or_else(|_| "app15".into())
}

/// The route-shape fixture (`tests/fixtures/shapes`: a shop on the App Router, a blog on
/// the Pages Router, no middleware) built with the fixture's Next.js (its `package.json`,
/// its `node_modules` hard-linked), in `target/fixture-shapes-<major>`.
pub fn shapes_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let name = format!("shapes-{}", next_major());
            built_copy(&name, &repo().join("tests/fixtures/shapes"), &[], None)
        })
        .clone()
}

/// The caching fixture (`tests/fixtures/caching`: ISR, on-demand pages, `notFound` and
/// redirect results of `getStaticProps`, tagged data, a cached route handler, on-demand
/// revalidation, on Next's default config) built with the fixture's Next.js, in
/// `target/fixture-caching-<major>`.
pub fn caching_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let name = format!("caching-{}", next_major());
            built_copy(&name, &repo().join("tests/fixtures/caching"), &[], None)
        })
        .clone()
}

/// The caching fixture built with `deploymentId: id`, as one release of a deployment (skew
/// protection), in `target/fixture-caching-<major>-<id>`.
pub fn deployment_fixture(id: &str) -> PathBuf {
    static READY: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut ready = READY.lock().unwrap();
    if let Some((_, dir)) = ready.iter().find(|(known, _)| known == id) {
        return dir.clone();
    }
    let name = format!("caching-{}-{id}", next_major());
    let config = format!(
        "module.exports = {{\n  ...require('./next.config.base.js'),\n  deploymentId: {id:?},\n}};\n"
    );
    let dir = built_copy(
        &name,
        &repo().join("tests/fixtures/caching"),
        &[],
        Some(&config),
    );
    ready.push((id.to_owned(), dir.clone()));
    dir
}

/// The Cache Components fixture (`tests/fixtures/cache-components`: `cacheComponents: true`,
/// `'use cache'`, Partial Prerendering) built with the fixture's Next.js, in
/// `target/fixture-cache-components-<major>`; `None` before Next 16, which has no Cache
/// Components.
pub fn cache_components_fixture() -> Option<PathBuf> {
    static READY: OnceLock<Option<PathBuf>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let major = next_major();
            (major >= 16).then(|| {
                let name = format!("cache-components-{major}");
                built_copy(
                    &name,
                    &repo().join("tests/fixtures/cache-components"),
                    &[],
                    None,
                )
            })
        })
        .clone()
}

/// The route-shape fixture built with `basePath: '/shop'` and `trailingSlash: true`, in
/// `target/fixture-shapes-<major>-base`.
pub fn shapes_base_path_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let name = format!("shapes-{}-base", next_major());
            let config = "module.exports = {\n  ...require('./next.config.base.js'),\n  basePath: '/shop',\n  trailingSlash: true,\n};\n";
            built_copy(
                &name,
                &repo().join("tests/fixtures/shapes"),
                &[],
                Some(config),
            )
        })
        .clone()
}

/// The fixture app built with `output: 'standalone'`: a copy in `target/` (sources copied,
/// `node_modules` hard-linked) whose next.config adds that option. Built once, like
/// [`fixture`].
pub fn standalone_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let source = fixture();
            let name = source.file_name().unwrap().to_string_lossy().into_owned();
            let dir = repo().join("target").join(format!("{name}-standalone"));
            let lock_path = repo().join(format!("target/fixture-{name}-standalone.lock"));
            let lock = std::fs::File::create(&lock_path).unwrap();
            lock.lock().expect("standalone fixture lock");
            if !dir.join("node_modules").exists() {
                std::fs::create_dir_all(&dir).unwrap();
                let status = Command::new("cp")
                    .arg("-al")
                    .arg(source.join("node_modules"))
                    .arg(&dir)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            for entry in std::fs::read_dir(&source).unwrap().flatten() {
                let name = entry.file_name();
                if [".next", "node_modules", "next.config.js"]
                    .iter()
                    .any(|skip| name == *skip)
                {
                    continue;
                }
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(entry.path())
                    .arg(&dir)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            std::fs::copy(
                source.join("next.config.js"),
                dir.join("next.config.base.js"),
            )
            .unwrap();
            std::fs::write(
                dir.join("next.config.js"),
                "module.exports = { ...require('./next.config.base.js'), output: 'standalone' };\n",
            )
            .unwrap();
            drop(lock);
            prepare_fixture(&dir)
        })
        .clone()
}

/// The fixture built a second time with `tests/fixtures/app15-config.next.config.js`
/// (basePath `/base`, assetPrefix `/cdn`, trailingSlash, distDir `build`, more header
/// rules), in `target/fixture-app15-config`, sharing the fixture's `node_modules`.
pub fn configured_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let base = fixture();
            let dir = repo().join("target/fixture-app15-config");
            let lock_path = repo().join("target/fixture-app15-config.lock");
            let lock = std::fs::File::create(&lock_path).unwrap();
            lock.lock().expect("fixture lock");
            let config =
                std::fs::read_to_string(repo().join("tests/fixtures/app15-config.next.config.js"))
                    .unwrap();
            let stamp_text = format!("{}-{:016x}", source_hash(&base), {
                let mut hasher = DefaultHasher::new();
                config.hash(&mut hasher);
                hasher.finish()
            });
            let stamp = dir.join("build/tower-next-fixture.stamp");
            if std::fs::read_to_string(&stamp).ok().as_deref() != Some(stamp_text.as_str())
                || !dir.join("build/BUILD_ID").exists()
            {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                for name in [
                    "app",
                    "pages",
                    "public",
                    "components",
                    "lib",
                    "posts",
                    "middleware.js",
                    "package.json",
                ] {
                    copy_recursively(&base.join(name), &dir.join(name));
                }
                std::fs::write(dir.join("next.config.js"), &config).unwrap();
                std::os::unix::fs::symlink(base.join("node_modules"), dir.join("node_modules"))
                    .unwrap();
                progress(&format!("next build in {} (~30 s)", dir.display()));
                run(Command::new("node")
                    .args([
                        base.join("node_modules/next/dist/bin/next")
                            .to_str()
                            .unwrap(),
                        "build",
                    ])
                    .current_dir(&dir));
                std::fs::write(&stamp, &stamp_text).unwrap();
            }
            dir
        })
        .clone()
}

/// The fixture built a second time with Pages Router i18n (`locales: ['en', 'fr']`,
/// `defaultLocale: 'en'`) added to its next.config, in `target/fixture-<name>-i18n`,
/// sharing the fixture's `node_modules`. Both routers stay: Next builds the app and warns
/// that i18n is unsupported in the App Router, whose routes it then serves unlocalised.
pub fn i18n_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            variant_fixture(
                "i18n",
                &[],
                "module.exports = {\n  ...require('./next.config.base.js'),\n  i18n: { locales: ['en', 'fr'], defaultLocale: 'en' },\n};\n",
            )
        })
        .clone()
}

/// The fixture built without its middleware (`middleware.js` on 15, `proxy.js` on 16), in
/// `target/fixture-<name>-plain`: an app whose percent-encoded spellings Rust may decode
/// and answer itself (with middleware, Node answers them).
pub fn plain_fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            variant_fixture(
                "plain",
                &["middleware.js", "proxy.js"],
                "module.exports = require('./next.config.base.js');\n",
            )
        })
        .clone()
}

/// A variant of the fixture in `target/fixture-<name>-<suffix>`: its sources without
/// `skip`, `config` as next.config.js (`next.config.base.js` is the fixture's own).
fn variant_fixture(suffix: &str, skip: &[&str], config: &str) -> PathBuf {
    let base = fixture();
    let name = base.file_name().unwrap().to_string_lossy().into_owned();
    built_copy(&format!("{name}-{suffix}"), &base, skip, Some(config))
}

/// A build of the app in `sources` in `target/fixture-<name>`: its files without `skip`,
/// `config` (if any) as next.config.js with the sources' own as `next.config.base.js`, and
/// the installed fixture's `package.json` and `node_modules` (hard-linked); built once,
/// again when any of these change.
fn built_copy(name: &str, sources: &Path, skip: &[&str], config: Option<&str>) -> PathBuf {
    let installed = installed_fixture();
    let dir = repo().join(format!("target/fixture-{name}"));
    let lock = std::fs::File::create(repo().join(format!("target/fixture-{name}.lock"))).unwrap();
    lock.lock().expect("fixture variant lock");
    let package = std::fs::read_to_string(installed.join("package.json")).unwrap();
    let mut hasher = DefaultHasher::new();
    (skip, config, &package).hash(&mut hasher);
    let stamp_text = format!("{}-{name}-{:016x}", source_hash(sources), hasher.finish());
    let stamp = dir.join(".next/tower-next-fixture.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(stamp_text.as_str())
        || !dir.join(".next/BUILD_ID").exists()
    {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(sources).unwrap().flatten() {
            let file = entry.file_name();
            if [".next", "node_modules", "next.config.js"]
                .iter()
                .chain(skip)
                .any(|skip| file == *skip)
            {
                continue;
            }
            copy_recursively(&entry.path(), &dir.join(&file));
        }
        match config {
            Some(config) => {
                std::fs::copy(
                    sources.join("next.config.js"),
                    dir.join("next.config.base.js"),
                )
                .unwrap();
                std::fs::write(dir.join("next.config.js"), config).unwrap();
            }
            None => {
                std::fs::copy(sources.join("next.config.js"), dir.join("next.config.js")).unwrap();
            }
        }
        std::fs::write(dir.join("package.json"), &package).unwrap();
        run(Command::new("cp")
            .arg("-al")
            .arg(installed.join("node_modules"))
            .arg(&dir));
        progress(&format!("next build in {} (~30 s)", dir.display()));
        run(Command::new("node")
            .args(["node_modules/next/dist/bin/next", "build"])
            .current_dir(&dir));
        std::fs::write(&stamp, &stamp_text).unwrap();
    }
    dir
}

/// A fresh copy of the built app in `dir` for one server, in `target/runs/<dir>-<name>`:
/// its files and build copied, `node_modules` hard-linked. Two servers on two copies of
/// one build each start from what the build holds, and neither reads the cache entries the
/// other writes while it runs (or those of an earlier run).
pub fn fresh_copy(dir: &Path, name: &str) -> PathBuf {
    let folder = dir.file_name().unwrap().to_string_lossy();
    let copy = repo().join(format!("target/runs/{folder}-{name}"));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let link = entry.file_name() == "node_modules";
        run(Command::new("cp")
            .arg(if link { "-al" } else { "-a" })
            .arg(entry.path())
            .arg(&copy));
    }
    copy
}

fn copy_recursively(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            copy_recursively(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

fn prepare_fixture(dir: &Path) -> PathBuf {
    let _lock = fixture_lock(dir);
    install(dir);
    let stamp = dir.join(".next/tower-next-fixture.stamp");
    let sources = source_hash(dir);
    let built = std::fs::read_to_string(&stamp).ok();
    if built.as_deref() != Some(sources.as_str()) || !dir.join(".next/BUILD_ID").exists() {
        progress(&format!("next build in {} (~30 s)", dir.display()));
        run(Command::new("node")
            .args(["node_modules/next/dist/bin/next", "build"])
            .current_dir(dir));
        std::fs::write(&stamp, &sources).unwrap();
    }
    progress("fixture app ready");
    dir.to_owned()
}

/// The lock under which a fixture folder is installed and built, across test binaries.
fn fixture_lock(dir: &Path) -> std::fs::File {
    let name = dir.file_name().unwrap().to_string_lossy();
    let lock_path = repo().join(format!("target/fixture-{name}.lock"));
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().expect("fixture lock");
    lock
}

/// `npm ci` in `dir`, unless its `node_modules` holds Next.js already.
fn install(dir: &Path) {
    if !dir.join("node_modules/next/package.json").exists() {
        progress(&format!("npm ci in {} (~15 s)", dir.display()));
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir));
    }
}

/// A second release of the fixture, for reload: its own folder under `target/`, the About
/// page and the home page's counter changed and a page `/only-in-v2` added, built once (and again when the fixture's
/// sources change). Its `node_modules` is the fixture's, hard-linked (Turbopack refuses a
/// symlink that leads out of the project).
pub fn fixture_v2() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(prepare_fixture_v2).clone()
}

fn prepare_fixture_v2() -> PathBuf {
    let fixture = fixture();
    let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let dir = repo().join(format!("target/fixture-releases/{name}-v2"));
    let lock =
        std::fs::File::create(repo().join(format!("target/fixture-{name}-v2.lock"))).unwrap();
    lock.lock().expect("fixture v2 lock");
    let stamp = dir.join(".next/tower-next-fixture.stamp");
    let sources = format!("{}-v2.3", source_hash(&fixture));
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(sources.as_str())
        && dir.join(".next/BUILD_ID").exists()
    {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    copy_sources(&fixture, &dir);
    run(Command::new("cp")
        .arg("-al")
        .arg(fixture.join("node_modules"))
        .arg(&dir));
    // A client component changed too: its chunk differs from v1's in either bundler.
    let counter = dir.join("components/Counter.js");
    let text = std::fs::read_to_string(&counter).unwrap();
    std::fs::write(&counter, text.replace("Count: ", "Count v2: ")).unwrap();
    let about = dir.join("app/about/page.js");
    let text = std::fs::read_to_string(&about).unwrap();
    std::fs::write(&about, text.replace("About page", "About page v2")).unwrap();
    let only = dir.join("app/only-in-v2/page.js");
    std::fs::create_dir_all(only.parent().unwrap()).unwrap();
    std::fs::write(
        &only,
        "export default function OnlyInV2() {\n  return <h1 id=\"title\">Only in v2</h1>;\n}\n",
    )
    .unwrap();
    progress(&format!("next build in {} (~30 s)", dir.display()));
    run(Command::new("node")
        .args(["node_modules/next/dist/bin/next", "build"])
        .current_dir(&dir));
    std::fs::write(&stamp, &sources).unwrap();
    dir
}

fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "node_modules" || name == ".next" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_sources(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// A hash of the fixture's sources: a change means the build is stale.
fn source_hash(dir: &Path) -> String {
    fn visit(path: &Path, hasher: &mut DefaultHasher) {
        let mut entries: Vec<_> = std::fs::read_dir(path).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if name == "node_modules" || name == ".next" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                visit(&path, hasher);
            } else {
                path.hash(hasher);
                std::fs::read(&path).unwrap().hash(hasher);
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    visit(dir, &mut hasher);
    format!("{:016x}", hasher.finish())
}

fn run(command: &mut Command) {
    let status = command
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env("NEXT_IGNORE_INCORRECT_LOCKFILE", "1")
        .status()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(status.success(), "{command:?} failed: {status}");
}

pub fn progress(message: &str) {
    eprintln!("[tower-next tests] {message}");
}

/// Logs from the crate while a test runs (`RUST_LOG` to see them).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Options for the fixture app in production.
pub fn options() -> NextOptions {
    NextOptions::new(fixture())
}

/// The process id of a worker of the current build (the first that runs one).
pub fn worker_pid(next: &Next) -> Option<u32> {
    next.pool_status()
        .workers
        .iter()
        .filter(|worker| worker.current)
        .find_map(|worker| worker.pid)
}

/// Prepares the fixture app in production.
pub async fn prepare() -> Next {
    init_tracing();
    Next::prepare(options()).await.expect("prepare the fixture")
}

/// Serves `router` on 127.0.0.1 (any free port), with the client address available.
/// The header every response of a test's inner service carries (see [`mark_inner`]).
pub const INNER: &str = "x-inner-service";

/// `router` with [`INNER`] on each of its responses, so that a test can tell the inner
/// service's answers from Next's.
pub fn mark_inner(router: Router) -> Router {
    router.layer(axum::middleware::map_response(
        |mut response: axum::response::Response| async move {
            response
                .headers_mut()
                .insert(INNER, axum::http::HeaderValue::from_static("1"));
            response
        },
    ))
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Streamed responses: without TCP_NODELAY, a response written in two small pieces
    // waits ~40 ms for the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// `next` served in the `axum_layer` example's shape: a Router whose fallback is
/// `next.service()` (Next's 404 page for unknown paths), under `NextLayer`.
pub async fn serve_axum_layer(next: &Next) -> SocketAddr {
    serve(
        Router::new()
            .fallback_service(next.service())
            .layer(tower_next::NextLayer::new(next.clone())),
    )
    .await
}

/// The render stamp of a caching-fixture page (`stamp:<digits>`, see
/// `tests/fixtures/caching/lib/stamp.js`).
pub fn render_stamp(page: &str) -> String {
    let at = page.find("stamp:").expect("a render stamp") + "stamp:".len();
    page[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The body of `GET http://{addr}{path}`, as text (whatever the status).
pub async fn page_text(addr: SocketAddr, path: &str) -> String {
    client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
        .text()
        .await
        .unwrap()
}

/// An HTTP client that shows responses as they are: no redirects followed, no
/// decompression, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (with its process group) when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signals to a process group we created.
        unsafe { libc_kill(-pid, 9) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// `next start -H localhost` on the fixture's build, on a free port: the reference.
/// `localhost`, as tower-next tells Next by default: given an IP, Next treats a middleware
/// rewrite as external and proxies it to itself (DESIGN.md §3).
pub fn next_start() -> Process {
    next_start_in(&fixture())
}

/// `next start -H localhost` on the build in `dir`.
pub fn next_start_in(dir: &Path) -> Process {
    let port = free_port();
    let child = Command::new("node")
        .args([
            "node_modules/next/dist/bin/next",
            "start",
            "-H",
            "localhost",
            "-p",
        ])
        .arg(port.to_string())
        .current_dir(dir)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("spawn next start");
    let mut process = Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    // `localhost` may be 127.0.0.1 or ::1: take the address Next listens on.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening = ("localhost", port)
            .to_socket_addrs()
            .expect("resolve localhost")
            .find(|addr| {
                std::net::TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
            });
        if let Some(addr) = listening {
            process.addr = addr;
            return process;
        }
        assert!(
            Instant::now() < deadline,
            "next start is not listening on localhost:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs an example binary (built by `cargo test`) serving the fixture in production.
pub fn example(name: &str, env: &[(&str, &str)]) -> Process {
    let dir = fixture();
    let binary = examples_dir().join(name);
    assert!(binary.exists(), "{} is not built", binary.display());
    let port = free_port();
    let child = Command::new(&binary)
        .env("NEXT_DIR", &dir)
        .env("NODE_ENV", "production")
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {}: {err}", binary.display()));
    let process = Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_listening(process.addr, Duration::from_secs(60));
    process
}

/// `target/<profile>/examples`, next to this test binary's `deps` folder.
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

fn wait_listening(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing listening on {addr} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first `/_next/static/…` URL in a page.
pub fn first_static_asset(html: &str) -> String {
    let start = html
        .find("/_next/static/")
        .expect("a /_next/static asset in the page");
    let end = html[start..].find(['"', '\'']).unwrap() + start;
    html[start..end].to_owned()
}

/// A private copy of the fixture app for dev mode (which writes into `.next` and would
/// overwrite the shared production build): sources copied, `node_modules` hard-linked
/// (instant, and Turbopack refuses a symlinked one). Removed when dropped.
pub fn dev_project() -> tempfile::TempDir {
    let fixture = fixture();
    let parent = repo().join("target/dev-projects");
    std::fs::create_dir_all(&parent).unwrap();
    let copy = tempfile::Builder::new()
        .prefix("app15-")
        .tempdir_in(&parent)
        .unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap().flatten() {
        let name = entry.file_name();
        if name == ".next" {
            continue;
        }
        let link = name == "node_modules";
        let status = Command::new("cp")
            .arg(if link { "-al" } else { "-a" })
            .arg(entry.path())
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "copying {} failed",
            entry.path().display()
        );
    }
    copy
}

/// `(name, value)` of the `<input type="hidden">` elements of a page.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut inputs = Vec::new();
    for tag in html.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        if !tag.contains("type=\"hidden\"") {
            continue;
        }
        let attribute = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            let end = tag[start..].find('"')? + start;
            Some(
                tag[start..end]
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&"),
            )
        };
        if let Some(name) = attribute("name") {
            inputs.push((name, attribute("value").unwrap_or_default()));
        }
    }
    inputs
}
