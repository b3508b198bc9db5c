//! A real browser through the layer: Debian's Chromium, driven by `tests/browser/check.mjs`
//! (playwright-core, never a downloaded browser), against the `axum_layer` example. It
//! checks hydration, client-side navigation (also to the explicit route `/a` → `/b`), a
//! server action, and that the console stays clean.

mod support;

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How long the whole check may take; `check.mjs` bounds itself at 60 s.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn browser_check_through_axum_layer() {
    let chromium = chromium();
    let browser_dir = support::repo().join("tests/browser");
    install_playwright(&browser_dir);

    let server = support::example("axum_layer", &[]);
    let base_url = format!("http://{}", server.addr);
    support::progress(&format!(
        "browser check against {base_url} ({})",
        chromium.display()
    ));
    let child = Command::new("node")
        .arg("check.mjs")
        .arg(&base_url)
        .current_dir(&browser_dir)
        .env("CHROMIUM_PATH", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn node check.mjs");
    let (status, output) = wait_with_output(child, CHECK_TIMEOUT);
    let status = status.unwrap_or_else(|| {
        panic!(
            "the browser check did not finish within {CHECK_TIMEOUT:?} and was killed; output:\n{output}"
        )
    });
    assert!(
        status.success(),
        "the browser check failed ({status}); output:\n{output}"
    );
    assert!(
        output.contains("# all checks passed"),
        "the browser check exited 0 without its summary line; output:\n{output}"
    );
}

/// The browser binary: `$CHROMIUM_PATH`, default Debian's `/usr/bin/chromium`. Missing is a
/// failure, never a skip.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} does not exist: the browser test needs Debian's Chromium. Install it with \
         `apt-get install -y chromium` (or point CHROMIUM_PATH at a Chromium binary).",
        path.display()
    );
    path
}

/// `npm ci` in `tests/browser` (playwright-core only) when it was not done yet, under a
/// file lock so that parallel test processes install once.
fn install_playwright(dir: &Path) {
    let marker = dir.join("node_modules/playwright-core/package.json");
    if marker.exists() {
        return;
    }
    let lock_path = support::repo().join("target/browser-npm.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().expect("browser npm lock");
    if marker.exists() {
        return;
    }
    support::progress(&format!(
        "npm ci in {} (playwright-core, ~5 s)",
        dir.display()
    ));
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        // playwright-core never downloads a browser, but be explicit about it.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .unwrap_or_else(|err| panic!("npm ci in {}: {err}", dir.display()));
    assert!(
        status.success(),
        "npm ci in {} failed: {status}",
        dir.display()
    );
}

/// Waits for `child`, echoing its output as it comes; kills its process group after
/// `limit`. Returns the exit status (`None` when killed) and everything it printed.
fn wait_with_output(
    mut child: std::process::Child,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let output = Arc::new(Mutex::new(String::new()));
    let readers = [
        echo(child.stdout.take().unwrap(), output.clone()),
        echo(child.stderr.take().unwrap(), output.clone()),
    ];
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            // SAFETY: signals the process group that we created for this child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_some() {
        for reader in readers {
            let _ = reader.join();
        }
    } else {
        // Killed: whatever is still in the pipes is not worth waiting for.
        std::thread::sleep(Duration::from_millis(500));
    }
    let output = output.lock().unwrap().clone();
    (status, output)
}

fn echo(stream: impl Read + Send + 'static, output: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("[check.mjs] {line}");
            let mut output = output.lock().unwrap();
            output.push_str(&line);
            output.push('\n');
        }
    })
}
