//! Headless Chromium for the tests: Debian's browser driven by the playwright-core
//! scripts in `tests/browser/` (never a downloaded browser).

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Runs `node <script> <args…>` in `tests/browser` with Chromium, echoing its output, and
/// fails unless it exits 0 within `limit` and prints `# all checks passed`.
pub fn run_script(script: &str, args: &[&str], limit: Duration) -> String {
    let chromium = chromium();
    let dir = super::repo().join("tests/browser");
    install_playwright(&dir);
    super::progress(&format!(
        "node {script} {} ({})",
        args.join(" "),
        chromium.display()
    ));
    let child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .env("CHROMIUM_PATH", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("spawn node {script}: {err}"));
    let (status, output) = wait_with_output(child, limit);
    let status = status.unwrap_or_else(|| {
        panic!("{script} did not finish within {limit:?} and was killed; output:\n{output}")
    });
    assert!(
        status.success(),
        "{script} failed ({status}); output:\n{output}"
    );
    assert!(
        output.contains("# all checks passed"),
        "{script} exited 0 without its summary line; output:\n{output}"
    );
    output
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
    let lock_path = super::repo().join("target/browser-npm.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().expect("browser npm lock");
    if marker.exists() {
        return;
    }
    super::progress(&format!(
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
            // The process group created for this child: Chromium's processes too.
            if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
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
            println!("[browser] {line}");
            let mut output = output.lock().unwrap();
            output.push_str(&line);
            output.push('\n');
        }
    })
}
