//! Shared setup for the integration tests: the fixture app (installed and built once,
//! across test binaries), servers on 127.0.0.1, and an HTTP client.
#![allow(dead_code)] // each test binary uses a different part

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

/// The Next 15.5 fixture app, with `npm ci` and `next build` done. The first caller in any
/// test process does the work, under a file lock; the others wait for it.
pub fn fixture() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| prepare_fixture(&repo().join("tests/fixtures/app15")))
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
    let lock_path = repo().join("target/fixture-app15.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().expect("fixture lock");

    if !dir.join("node_modules/next/package.json").exists() {
        progress(&format!("npm ci in {} (~15 s)", dir.display()));
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir));
    }
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

/// Prepares the fixture app in production.
pub async fn prepare() -> Next {
    init_tracing();
    Next::prepare(options()).await.expect("prepare the fixture")
}

/// Serves `router` on 127.0.0.1 (any free port), with the client address available.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
