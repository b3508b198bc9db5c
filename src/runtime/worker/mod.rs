//! One supervised Node.js worker: spawn, wait for the ready line, check its health,
//! replace it when it dies or stops answering.

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

mod supervise;

use super::{STATUS_MARK, Status};
use crate::cache::{CacheEvent, WorkerEvent};
use crate::{Error, NextOptions, build::AppInfo};
use supervise::supervise;

/// Lines of stderr kept to explain a failed start.
const STDERR_TAIL: usize = 20;
/// After a process exits, how long its pipes may take to deliver what it wrote last.
const PIPE_DRAIN: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a worker may finish its requests after SIGTERM before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the worker is in its life, as the pool sees it.
#[derive(Clone, Debug)]
pub(crate) enum WorkerState {
    Starting,
    Ready,
    /// Running, but it missed its last health check: no new requests until it answers.
    Unhealthy(Arc<str>),
    /// Not running, and restarted after a backoff. `failing` once a restart has failed
    /// (a crash loop): requests then get `503` at once instead of waiting for it.
    Down {
        reason: Arc<str>,
        failing: bool,
    },
    Stopped,
}

/// A supervised worker. Dropping it stops the worker.
pub(crate) struct Worker {
    name: Arc<str>,
    state: watch::Receiver<WorkerState>,
    stop: watch::Sender<bool>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    socket: PathBuf,
    stats: Arc<Stats>,
}

/// Counters the supervisor keeps for monitoring.
#[derive(Default)]
struct Stats {
    /// The running process's id, 0 while there is none.
    pid: AtomicU32,
    /// Successful restarts.
    restarts: AtomicU32,
    /// Failed restarts since the last successful start.
    failed_starts: AtomicU32,
}

/// Everything needed to (re)start one worker process.
pub(crate) struct Launch {
    pub options: NextOptions,
    pub dir: PathBuf,
    pub private_dir: PathBuf,
    /// The bridge script, written once for the pool.
    pub script: PathBuf,
    pub socket: PathBuf,
    pub name: Arc<str>,
    /// More bridge options, set by the pool (its shared cache).
    pub bridge_extra: serde_json::Value,
    pub crash_report: Arc<CrashReport>,
    /// Where the worker's cache events go (native responses).
    pub events: Events,
}

/// Reports a crash loop once, however many workers and attempts hit the same error.
#[derive(Default)]
pub(crate) struct CrashReport {
    last: Mutex<Option<String>>,
}

impl CrashReport {
    fn restart_failed(&self, worker: &str, err: &Error, retry_in: Duration) {
        let message = err.to_string();
        // The same error, whatever the worker printed before it (one worker of the pool
        // prints Next's config messages, the others do not).
        let error = message
            .split(crate::error::STDERR_TAIL)
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut last = self.last.lock().expect("crash report lock");
        if last.as_deref() == Some(error.as_str()) {
            tracing::debug!(
                worker,
                retry_in_ms = retry_in.as_millis() as u64,
                "worker restart failed again"
            );
            return;
        }
        tracing::error!(
            worker,
            "Next.js worker cannot start; retrying with backoff (up to {BACKOFF_MAX:?}), \
             requests get 503 meanwhile. This error is reported once: {message}"
        );
        *last = Some(error);
    }

    fn started(&self, worker: &str) {
        if self
            .last
            .lock()
            .expect("crash report lock")
            .take()
            .is_some()
        {
            tracing::info!(worker, "Next.js worker starts again");
        }
    }
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

/// A running Node process and what it has said so far.
struct Process {
    child: Child,
    /// Held open for the worker's life: its closing tells the worker the host is gone.
    /// Kept out of `child`, whose `wait()` would close it.
    _stdin: tokio::process::ChildStdin,
    status: oneshot::Receiver<Status>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Ends when stderr closes: after it, the tail is complete.
    stderr_done: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker and waits until Next.js is prepared.
    pub(crate) async fn start(launch: Launch) -> Result<(Worker, AppInfo), Error> {
        let options = &launch.options;
        tracing::info!(worker = %launch.name, dir = %launch.dir.display(), dev = options.dev, "starting Next.js");
        let started = Instant::now();
        let mut process = launch.spawn()?;
        let info = process.ready(options.start_timeout, &launch.dir).await?;
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
        let name = launch.name.clone();
        let stats = Arc::new(Stats::default());
        stats
            .pid
            .store(process.child.id().unwrap_or(0), Ordering::Relaxed);
        let supervisor = tokio::spawn(supervise(launch, process, state_tx, stop_rx, stats.clone()));
        Ok((
            Worker {
                name,
                state,
                stop,
                supervisor: Mutex::new(Some(supervisor)),
                socket,
                stats,
            },
            info,
        ))
    }

    /// The worker's name in logs, `worker-<generation>.<index>`.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The Unix socket the worker listens on.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The worker process's id, if one is running.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.stats.pid.load(Ordering::Relaxed)).filter(|pid| *pid != 0)
    }

    /// How often the worker has been restarted.
    pub(crate) fn restarts(&self) -> u32 {
        self.stats.restarts.load(Ordering::Relaxed)
    }

    /// Failed restarts since the worker last started.
    pub(crate) fn failed_starts(&self) -> u32 {
        self.stats.failed_starts.load(Ordering::Relaxed)
    }

    /// The current state, without waiting.
    pub(crate) fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    /// Whether the worker takes new requests, without cloning the state.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(*self.state.borrow(), WorkerState::Ready)
    }

    /// A receiver of the worker's state changes.
    pub(crate) fn watch(&self) -> watch::Receiver<WorkerState> {
        self.state.clone()
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
        let mut bridge_options = serde_json::json!({
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
            "cacheEvents": self.options.native_pages(),
        });
        if let (Some(options), Some(extra)) = (
            bridge_options.as_object_mut(),
            self.bridge_extra.as_object(),
        ) {
            options.extend(extra.clone());
        }
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
                Error::io(&self.options.node_binary)(err)
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
        let stderr_done = tokio::spawn(read_stderr(stderr, self.name.clone(), stderr_tail.clone()));
        Ok(Process {
            child,
            _stdin: stdin,
            status,
            stderr_tail,
            stderr_done: Some(stderr_done),
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
        let status = match outcome {
            Ok(Ok(status)) => status,
            // Exited: its status line and last stderr lines may still be in the pipes.
            Ok(Err(exit)) => {
                let status = tokio::time::timeout(PIPE_DRAIN, &mut self.status).await;
                match status {
                    Ok(Ok(Status::Error { code, message })) => {
                        self.stderr_closed().await;
                        return Err(self.start_error(&code, message, dir));
                    }
                    _ => {
                        self.stderr_closed().await;
                        return Err(self.exit_error(exit));
                    }
                }
            }
            Err(_) => {
                let _ = self.child.start_kill();
                return Err(Error::StartTimeout {
                    after: timeout,
                    stderr: self.stderr(),
                });
            }
        };
        match status {
            Some(Status::Ready(info)) => Ok(*info),
            // Cache events never reach the status channel (see `read_stdout`).
            Some(Status::Cache(_)) => Err(Error::WorkerFailed {
                reason: "unexpected status".into(),
                stderr: self.stderr(),
            }),
            Some(Status::Error { code, message }) => {
                let _ = self.child.wait().await;
                self.stderr_closed().await;
                Err(self.start_error(&code, message, dir))
            }
            // stdout closed without a status line: the process is exiting.
            None => {
                let exit = self.child.wait().await;
                self.stderr_closed().await;
                Err(self.exit_error(exit))
            }
        }
    }

    /// Waits (briefly) until the process's stderr has been read to its end.
    async fn stderr_closed(&mut self) {
        if let Some(reader) = self.stderr_done.take() {
            let _ = tokio::time::timeout(PIPE_DRAIN, reader).await;
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
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
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
