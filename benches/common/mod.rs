//! What the benches share: loading the servers with `wrk` in turns, reading wrk's numbers,
//! and the CPU time each server's processes spend per request.

// Each bench compiles this module and uses a part of it.
#![allow(dead_code)]

use std::{net::SocketAddr, process::Command, time::Duration};

use tower_next::Next;

/// The environment variable `name` as a number, or `default`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The machine as a run starts: "2 cores; load average before: 0.52 0.61 0.70".
pub fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{} cores; load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 2..]
            .split(' ')
            .map(str::to_owned)
            .collect(),
    )
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    stat(pid).map_or(0, |fields| {
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
    })
}

/// The processes whose field `index` of `/proc/<pid>/stat` is `value` (1: parent, 2:
/// process group), and whose command is `command` if given.
pub fn processes(index: usize, value: u32, command: Option<&str>) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some(fields) = stat(pid) else { continue };
        if fields[index].parse::<u32>() != Ok(value) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if command.is_none_or(|command| comm.trim() == command) {
            pids.push(pid);
        }
    }
    pids
}

/// The process ids of `next`'s Node workers.
pub fn worker_pids(next: &Next) -> Vec<u32> {
    next.pool_status()
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .collect()
}

/// A server under load and where its CPU time goes: the Rust process (none for `next
/// start`), its Node processes, and the store (for a shared cache).
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub rust: bool,
    pub node: Vec<u32>,
    pub redis: Option<u32>,
}

impl Server {
    /// Rust, Node and Redis ticks so far.
    fn ticks(&self) -> [u64; 3] {
        let rust = if self.rust {
            cpu_ticks(std::process::id())
        } else {
            0
        };
        [
            rust,
            self.node.iter().map(|pid| cpu_ticks(*pid)).sum(),
            self.redis.map_or(0, cpu_ticks),
        ]
    }
}

/// One wrk run's numbers (all zero when wrk failed).
#[derive(Default)]
pub struct Run {
    pub requests_per_second: f64,
    pub requests: u64,
    pub p50: String,
    pub p99: String,
    pub errors: u64,
    /// CPU µs per request: Rust, Node, Redis.
    pub cpu: [f64; 3],
}

/// `wrk -t2 -c32 --latency` on `path` for `seconds`: its numbers, or, when wrk fails, what
/// it wrote (stdout, then stderr).
pub fn wrk(addr: SocketAddr, path: &str, seconds: u64) -> Result<Run, String> {
    wrk_with(addr, path, seconds, &[])
}

/// [`wrk`] with request headers (`name`, `value`).
pub fn wrk_with(
    addr: SocketAddr,
    path: &str,
    seconds: u64,
    headers: &[(String, String)],
) -> Result<Run, String> {
    let mut command = Command::new("wrk");
    command
        .args(["-t2", "-c32", "--latency", "-d"])
        .arg(format!("{seconds}s"));
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run wrk (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("{text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    let field = |prefix: &str| {
        text.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_owned())
        })
    };
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        + field("Socket errors:").map_or(0, |v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    // "  12345 requests in 10.00s, 1.23MB read"
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ")?.0.parse().ok())
        .unwrap_or(0);
    Ok(Run {
        requests,
        requests_per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        errors,
        cpu: [0.0; 3],
    })
}

/// `rounds` runs of `load` on `path` for `seconds`, the servers taking turns (a burst of
/// other load on the machine then hits every server alike), with the CPU time of each run:
/// each server's runs, slowest first.
pub async fn take_turns(
    servers: &[Server],
    path: &str,
    seconds: u64,
    rounds: u64,
    load: impl Fn(SocketAddr, &str, u64) -> Run,
) -> Vec<Vec<Run>> {
    let mut runs: Vec<Vec<Run>> = servers.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (server, runs) in servers.iter().zip(&mut runs) {
            let before = server.ticks();
            let mut run = load(server.addr, path, seconds);
            let after = server.ticks();
            // Ticks are 10 ms; per request in µs.
            for (cpu, (after, before)) in run.cpu.iter_mut().zip(after.iter().zip(before)) {
                *cpu = (after - before) as f64 * 10_000.0 / run.requests.max(1) as f64;
            }
            runs.push(run);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for runs in &mut runs {
        runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    }
    runs
}

/// The median of `runs` (slowest first) by throughput.
pub fn median(runs: &[Run]) -> &Run {
    &runs[runs.len() / 2]
}

/// "1234 (1200, 1234, 1301)": the median run's requests per second, and every run's.
pub fn throughput(runs: &[Run]) -> String {
    let all: Vec<String> = runs
        .iter()
        .map(|run| format!("{:.0}", run.requests_per_second))
        .collect();
    format!(
        "{:.0} ({})",
        median(runs).requests_per_second,
        all.join(", ")
    )
}

/// The table cells of each server's median run, after a first column the caller adds:
/// name, throughput (every run's), p50, p99, errors, the ratio to the first server, and
/// the CPU µs per request in Rust and Node.
pub fn cells(servers: &[Server], runs: &[Vec<Run>]) -> Vec<String> {
    let mut baseline = None;
    servers
        .iter()
        .zip(runs)
        .map(|(server, runs)| {
            let run = median(runs);
            let base = *baseline.get_or_insert(run.requests_per_second);
            let [rust, node, _] = run.cpu;
            format!(
                "{} | {} | {} | {} | {} | {:.2}x | {:.0} + {:.0} |",
                server.name,
                throughput(runs),
                run.p50,
                run.p99,
                run.errors,
                run.requests_per_second / base,
                rust,
                node,
            )
        })
        .collect()
}
