//! One supervised Node.js worker: spawn, wait for the ready line, restart when it dies.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::{mpsc, oneshot, watch},
};

use super::{AppInfo, BRIDGE_SCRIPT, CacheEvent, STATUS_MARK, Status};
use crate::{Error, NextOptions};

/// Lines of stderr kept to explain a failed start.
const STDERR_TAIL: usize = 20;
/// Restart delays grow from the first to the last, and reset after a healthy run.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long a worker may drain after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the worker is in its life, as requests see it.
#[derive(Clone, Debug)]
pub(crate) enum WorkerState {
    Starting,
    Ready,
    /// Down and about to be restarted; the reason is the one-line explanation for a 502.
    Down(Arc<str>),
    Stopped,
}

/// A supervised worker. Dropping it stops the worker.
pub(crate) struct Worker {
    state: watch::Receiver<WorkerState>,
    stop: watch::Sender<bool>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    socket: PathBuf,
    /// The running process's id, 0 while there is none.
    pid: Arc<AtomicU32>,
}

/// What the worker reports while it runs, for whoever keeps the native responses current.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// A change to Next's response cache.
    Cache(Box<CacheEvent>),
    /// A new worker process took over (its in-memory cache starts empty).
    Restarted,
}

/// The channel the worker's events go to, and the last generation seen (a restarted
/// worker continues the numbering, so generations only grow).
#[derive(Clone)]
pub(crate) struct Events {
    sender: mpsc::UnboundedSender<WorkerEvent>,
    seen: Arc<AtomicU64>,
}

impl Events {
    pub(crate) fn new() -> (Events, mpsc::UnboundedReceiver<WorkerEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            Events {
                sender,
                seen: Arc::default(),
            },
            receiver,
        )
    }

    fn cache(&self, event: CacheEvent) {
        self.seen.fetch_max(event.generation, Ordering::Relaxed);
        let _ = self.sender.send(WorkerEvent::Cache(Box::new(event)));
    }
}

/// Everything needed to (re)start the worker process.
struct Launch {
    options: NextOptions,
    dir: PathBuf,
    private_dir: PathBuf,
    script: PathBuf,
    socket: PathBuf,
    name: Arc<str>,
    events: Events,
}

/// A running Node process and what it has said so far.
struct Process {
    child: Child,
    /// Held open for the worker's life: its closing tells the worker the host is gone.
    /// Kept out of `child`, whose `wait()` would close it.
    _stdin: tokio::process::ChildStdin,
    status: oneshot::Receiver<Status>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Worker {
    /// Starts the worker and waits until Next.js is prepared.
    pub(crate) async fn start(
        options: &NextOptions,
        dir: &Path,
        private_dir: &Path,
        index: usize,
        events: Events,
    ) -> Result<(Worker, AppInfo), Error> {
        let script = private_dir.join("bridge.cjs");
        tokio::fs::write(&script, BRIDGE_SCRIPT).await?;
        let launch = Launch {
            options: options.clone(),
            dir: dir.to_owned(),
            private_dir: private_dir.to_owned(),
            script,
            socket: private_dir.join(format!("worker-{index}.sock")),
            name: format!("worker-{index}").into(),
            events,
        };

        tracing::info!(worker = %launch.name, dir = %dir.display(), dev = options.dev, "starting Next.js");
        let started = Instant::now();
        let mut process = launch.spawn()?;
        let info = process.ready(options.start_timeout, dir).await?;
        tracing::info!(
            worker = %launch.name,
            next = %info.next_version,
            build = %info.build_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Next.js ready"
        );

        let (state_tx, state) = watch::channel(WorkerState::Ready);
        let (stop, stop_rx) = watch::channel(false);
        let socket = launch.socket.clone();
        let pid = Arc::new(AtomicU32::new(process.child.id().unwrap_or(0)));
        let supervisor = tokio::spawn(supervise(launch, process, state_tx, stop_rx, pid.clone()));
        Ok((
            Worker {
                state,
                stop,
                supervisor: Mutex::new(Some(supervisor)),
                socket,
                pid,
            },
            info,
        ))
    }

    /// The Unix socket the worker listens on.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits until the worker is ready, up to `wait`. Returns the state it settled in.
    pub(crate) async fn wait_ready(&self, wait: Duration) -> WorkerState {
        let mut state = self.state.clone();
        let settled = tokio::time::timeout(
            wait,
            state.wait_for(|s| matches!(s, WorkerState::Ready | WorkerState::Stopped)),
        )
        .await;
        match settled {
            Ok(Ok(s)) => s.clone(),
            _ => self.state.borrow().clone(),
        }
    }

    /// The worker process's id, if one is running.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|pid| *pid != 0)
    }

    /// The current state, without waiting.
    pub(crate) fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    /// Stops the worker: SIGTERM, a grace period for in-flight requests, then SIGKILL.
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        let supervisor = self.supervisor.lock().expect("supervisor lock").take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The supervisor owns the child (kill_on_drop): stopping it stops the process.
        let _ = self.stop.send(true);
    }
}

impl Launch {
    fn spawn(&self) -> Result<Process, Error> {
        let _ = std::fs::remove_file(&self.socket);
        let bridge_options = serde_json::json!({
            "dir": self.dir,
            "dev": self.options.dev,
            "conf": self.options.conf,
            "quiet": self.options.quiet,
            "hostname": self.options.hostname,
            "port": self.options.port,
            "turbo": self.options.turbo,
            "socket": self.socket,
            "privateDir": self.private_dir,
            "generationBase": self.events.seen.load(Ordering::Relaxed),
            "cacheEvents": self.options.serve_natively && !self.options.dev,
        });
        let mut command = Command::new(&self.options.node_binary);
        command
            .arg(&self.script)
            .current_dir(&self.dir)
            .env("TOWER_NEXT_OPTIONS", bridge_options.to_string())
            .env(
                "NODE_ENV",
                if self.options.dev {
                    "development"
                } else {
                    "production"
                },
            )
            .env("NEXT_TELEMETRY_DISABLED", "1")
            // The worker stays alive while this pipe is open; see bridge.js.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a terminal's Ctrl-C reaches the host, which then stops
            // the worker in order, instead of killing both at once.
            .process_group(0);
        let mut child = command.spawn().map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Error::NodeNotFound {
                    program: self.options.node_binary.clone(),
                }
            } else {
                Error::Io(err)
            }
        })?;

        let (status_tx, status) = oneshot::channel();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(read_stdout(
            stdout,
            self.name.clone(),
            status_tx,
            self.events.clone(),
        ));
        tokio::spawn(read_stderr(stderr, self.name.clone(), stderr_tail.clone()));
        Ok(Process {
            child,
            _stdin: stdin,
            status,
            stderr_tail,
        })
    }
}

impl Process {
    /// Waits for the bridge's status line, the process's exit, or the timeout.
    async fn ready(&mut self, timeout: Duration, dir: &Path) -> Result<AppInfo, Error> {
        let outcome = tokio::time::timeout(timeout, async {
            tokio::select! {
                status = &mut self.status => Ok(status.ok()),
                exit = self.child.wait() => Err(exit),
            }
        })
        .await;
        match outcome {
            Ok(Ok(Some(Status::Ready(info)))) => Ok(info),
            // Cache events never reach the status channel (see `read_stdout`).
            Ok(Ok(Some(Status::Cache(_)))) => Err(Error::WorkerFailed {
                reason: "unexpected status".into(),
                stderr: self.stderr(),
            }),
            Ok(Ok(Some(Status::Error { code, message }))) => {
                let _ = self.child.wait().await;
                Err(self.start_error(&code, message, dir))
            }
            // stdout closed without a status line: the process is exiting.
            Ok(Ok(None)) => {
                let exit = self.child.wait().await;
                Err(self.exit_error(exit))
            }
            Ok(Err(exit)) => Err(self.exit_error(exit)),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(Error::StartTimeout {
                    after: timeout,
                    stderr: self.stderr(),
                })
            }
        }
    }

    fn stderr(&self) -> String {
        let tail = self.stderr_tail.lock().expect("stderr lock");
        tail.iter().map(|line| format!("{line}\n")).collect()
    }

    fn start_error(&self, code: &str, message: String, dir: &Path) -> Error {
        match code {
            "next-not-installed" => Error::NextNotInstalled {
                install: install_command(dir),
                dir: dir.to_owned(),
            },
            "no-build" => Error::BuildMissing {
                dir: dir.to_owned(),
                detail: message,
            },
            _ => Error::WorkerFailed {
                reason: message,
                stderr: self.stderr(),
            },
        }
    }

    fn exit_error(&self, exit: std::io::Result<std::process::ExitStatus>) -> Error {
        let reason = match exit {
            Ok(status) => format!("the process exited ({status})"),
            Err(err) => format!("waiting for the process failed: {err}"),
        };
        Error::WorkerFailed {
            reason,
            stderr: self.stderr(),
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we own; no memory is touched.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The command that installs the project's packages, by its lockfile.
fn install_command(dir: &Path) -> String {
    let has = |file: &str| dir.join(file).exists();
    if has("pnpm-lock.yaml") {
        "pnpm install".into()
    } else if has("yarn.lock") {
        "yarn install".into()
    } else if has("bun.lockb") || has("bun.lock") {
        "bun install".into()
    } else if has("package-lock.json") {
        "npm ci".into()
    } else {
        "npm install".into()
    }
}

async fn supervise(
    launch: Launch,
    mut process: Process,
    state: watch::Sender<WorkerState>,
    mut stop: watch::Receiver<bool>,
    pid: Arc<AtomicU32>,
) {
    let mut backoff = BACKOFF_FIRST;
    let mut up_since = Instant::now();
    loop {
        // Serve until the process exits or we are told to stop.
        let exit = tokio::select! {
            exit = process.child.wait() => exit,
            _ = stop_requested(&mut stop) => {
                let _ = state.send(WorkerState::Stopped);
                process.terminate().await;
                pid.store(0, Ordering::Relaxed);
                let _ = std::fs::remove_file(&launch.socket);
                return;
            }
        };
        pid.store(0, Ordering::Relaxed);
        let reason: Arc<str> = match exit {
            Ok(status) => format!("Next.js worker exited ({status})").into(),
            Err(err) => format!("Next.js worker lost: {err}").into(),
        };
        tracing::error!(worker = %launch.name, reason = %reason, stderr = %process.stderr(), "worker died; restarting");
        let _ = state.send(WorkerState::Down(reason));
        if up_since.elapsed() > HEALTHY_RUN {
            backoff = BACKOFF_FIRST;
        }

        // Restart, with growing delays while starts keep failing.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop_requested(&mut stop) => {
                    let _ = state.send(WorkerState::Stopped);
                    return;
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            let _ = state.send(WorkerState::Starting);
            let started = launch.spawn();
            let restarted = match started {
                Ok(mut next) => match next.ready(launch.options.start_timeout, &launch.dir).await {
                    Ok(_) => Ok(next),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            };
            match restarted {
                Ok(next) => {
                    tracing::info!(worker = %launch.name, "worker restarted");
                    pid.store(next.child.id().unwrap_or(0), Ordering::Relaxed);
                    process = next;
                    up_since = Instant::now();
                    let _ = launch.events.sender.send(WorkerEvent::Restarted);
                    let _ = state.send(WorkerState::Ready);
                    break;
                }
                Err(err) => {
                    tracing::error!(worker = %launch.name, error = %err, retry_in_ms = backoff.as_millis() as u64, "worker restart failed");
                    let _ = state.send(WorkerState::Down(
                        format!("Next.js worker failed to restart: {err}").into(),
                    ));
                }
            }
        }
    }
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    worker: Arc<str>,
    status: oneshot::Sender<Status>,
    events: Events,
) {
    let mut status = Some(status);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(json) = line.strip_prefix(STATUS_MARK) {
            match serde_json::from_str::<Status>(json) {
                Ok(Status::Cache(event)) => events.cache(event),
                Ok(parsed) => {
                    if let Some(status) = status.take() {
                        let _ = status.send(parsed);
                    }
                }
                Err(err) => {
                    tracing::error!(worker = %worker, error = %err, "unreadable bridge status")
                }
            }
        } else if !line.trim().is_empty() {
            tracing::info!(target: "tower_next::node", worker = %worker, "{line}");
        }
    }
}

async fn read_stderr(
    stderr: impl AsyncRead + Unpin,
    worker: Arc<str>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        tracing::warn!(target: "tower_next::node", worker = %worker, "{line}");
        let mut tail = tail.lock().expect("stderr lock");
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
