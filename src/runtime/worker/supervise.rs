//! Supervision of one worker: serving while it answers its health checks, and restarting
//! it with growing delays when it exits or stops answering.

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    sync::watch,
};

use super::{BACKOFF_MAX, Launch, Process, Stats, WorkerState};
use crate::cache::WorkerEvent;

/// Restart delays grow from the first to the last, and reset after a healthy run.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Missed health checks in a row after which a worker is replaced.
const MISSED_CHECKS_LIMIT: u32 = 3;
/// The bridge answers this request itself, without Next.js: it shows that the worker's
/// event loop turns. Rust strips `x-tower-next-*` headers from clients.
const HEALTH_REQUEST: &[u8] =
    b"GET /_tower-next/health HTTP/1.1\r\nhost: worker\r\nx-tower-next-health: 1\r\nconnection: close\r\n\r\n";

pub(super) async fn supervise(
    launch: Launch,
    mut process: Process,
    state: watch::Sender<WorkerState>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let up_since = Instant::now();
        let Some(ended) = serve(&launch, &mut process, &state, &mut stop).await else {
            let _ = state.send(WorkerState::Stopped);
            process.terminate().await;
            stats.pid.store(0, Ordering::Relaxed);
            let _ = std::fs::remove_file(&launch.socket);
            return;
        };
        stats.pid.store(0, Ordering::Relaxed);
        report_down(&launch, &process, &state, ended);
        if up_since.elapsed() > HEALTHY_RUN {
            backoff = BACKOFF_FIRST;
        }
        match restart(&launch, &state, &mut stop, &stats, &mut backoff).await {
            Some(next) => process = next,
            None => {
                let _ = state.send(WorkerState::Stopped);
                return;
            }
        }
    }
}

/// How a worker process ended while it served.
enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    /// It missed too many health checks in a row and was killed.
    Unresponsive,
}

/// Serves until the process exits or stops answering its health checks (`Some`), or the
/// worker is told to stop (`None`). A missed check takes it out of rotation until it
/// answers again.
async fn serve(
    launch: &Launch,
    process: &mut Process,
    state: &watch::Sender<WorkerState>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Ended> {
    let options = &launch.options;
    let mut health = health_ticker(options.health_interval);
    let mut missed = 0;
    let mut unresponsive = false;
    loop {
        tokio::select! {
            exit = process.child.wait() => {
                return Some(if unresponsive { Ended::Unresponsive } else { Ended::Exited(exit) });
            }
            _ = stop_requested(stop) => return None,
            checked = async {
                health.tick().await;
                health_check(&launch.socket, options.health_timeout).await
            } => match checked {
                Ok(()) if missed > 0 => {
                    tracing::info!(worker = %launch.name, "worker answers its health check again");
                    missed = 0;
                    let _ = state.send(WorkerState::Ready);
                }
                Ok(()) => {}
                Err(why) => {
                    missed += 1;
                    if missed >= MISSED_CHECKS_LIMIT {
                        tracing::error!(worker = %launch.name, %why, "worker missed {missed} health checks in a row; replacing it");
                        unresponsive = true;
                        let _ = process.child.start_kill();
                    } else {
                        tracing::warn!(worker = %launch.name, %why, "worker missed a health check; no new requests until it answers");
                        let reason = format!("Next.js worker missed a health check: {why}");
                        let _ = state.send(WorkerState::Unhealthy(reason.into()));
                    }
                }
            },
        }
    }
}

/// Logs why the worker went down and publishes it.
fn report_down(
    launch: &Launch,
    process: &Process,
    state: &watch::Sender<WorkerState>,
    ended: Ended,
) {
    let reason: Arc<str> = match &ended {
        Ended::Unresponsive => "Next.js worker stopped answering and was replaced".into(),
        Ended::Exited(Ok(status)) => format!("Next.js worker exited ({status})").into(),
        Ended::Exited(Err(err)) => format!("Next.js worker lost: {err}").into(),
    };
    if let Ended::Unresponsive = ended {
        tracing::warn!(worker = %launch.name, "unresponsive worker killed; restarting");
    } else {
        tracing::error!(worker = %launch.name, reason = %reason, stderr = %process.stderr(), "worker died; restarting");
    }
    let _ = state.send(WorkerState::Down {
        reason,
        failing: false,
    });
}

/// Starts a new process, with growing delays (`backoff`) while starts keep failing;
/// `None` when the worker is told to stop meanwhile.
async fn restart(
    launch: &Launch,
    state: &watch::Sender<WorkerState>,
    stop: &mut watch::Receiver<bool>,
    stats: &Stats,
    backoff: &mut Duration,
) -> Option<Process> {
    let options = &launch.options;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = stop_requested(stop) => return None,
        }
        let _ = state.send(WorkerState::Starting);
        let restarted = match launch.spawn() {
            Ok(mut next) => tokio::select! {
                ready = next.ready(options.start_timeout, &launch.dir) => ready.map(|_| next),
                _ = stop_requested(stop) => return None,
            },
            Err(err) => Err(err),
        };
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        match restarted {
            Ok(next) => {
                tracing::info!(worker = %launch.name, "worker restarted");
                launch.crash_report.started(&launch.name);
                stats
                    .pid
                    .store(next.child.id().unwrap_or(0), Ordering::Relaxed);
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                stats.failed_starts.store(0, Ordering::Relaxed);
                let _ = launch.events.sender.send(WorkerEvent::Restarted);
                let _ = state.send(WorkerState::Ready);
                return Some(next);
            }
            Err(err) => {
                stats.failed_starts.fetch_add(1, Ordering::Relaxed);
                launch
                    .crash_report
                    .restart_failed(&launch.name, &err, *backoff);
                let _ = state.send(WorkerState::Down {
                    reason: "Next.js worker fails to start".into(),
                    failing: true,
                });
            }
        }
    }
}

fn health_ticker(interval: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Asks the bridge whether it answers: a fresh connection, a request that Next.js never
/// sees, `204` expected within `timeout`.
async fn health_check(socket: &Path, timeout: Duration) -> Result<(), String> {
    let check = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        stream
            .write_all(HEALTH_REQUEST)
            .await
            .map_err(|err| format!("cannot send: {err}"))?;
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .map_err(|err| format!("no answer: {err}"))?;
        if &head == b"HTTP/1.1 204" {
            Ok(())
        } else {
            Err(format!(
                "unexpected answer {:?}",
                String::from_utf8_lossy(&head)
            ))
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
