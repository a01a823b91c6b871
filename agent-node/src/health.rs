//! What the heartbeat says about this machine: RAM, swap, disk per root, load, windows by
//! state, delivery lag and the Codex CLI, plus the node's own verdict (`healthy`, `detail`).
//!
//! Why here and not in the center: only the node can read its `/proc`, `statvfs` its roots, run
//! its Codex and see which events it sent. The center decides what to alert on with its own,
//! configurable thresholds; the node's verdict uses the fixed, conservative limits below so that
//! `healthy` means the same on every node whatever center it talks to.
//!
//! Nothing here blocks a heartbeat: the machine is sampled on the blocking pool with a timeout
//! (a hung NFS root must not stop the beat), Codex is asked in the background ([`codex`]) and
//! the lag comes from events already observed ([`lag`]).

mod codex;
mod lag;

use std::{path::Path, sync::atomic::Ordering, time::Duration};

use proto::v1;
use tokio_util::sync::CancellationToken;

use crate::{config::RootConfig, node::Node};

pub(crate) use codex::CodexProbe;
pub(crate) use lag::LagTracker;

/// Longest a machine sample may take before the beat goes without it.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The node calls itself unhealthy below this much available RAM (per mille of the total)…
const RAM_AVAILABLE_MIN_PERMILLE: u64 = 50;
/// …above this much swap in use (per mille of the swap)…
const SWAP_USED_MAX_PERMILLE: u64 = 900;
/// …below this much free disk on its state directory or a root…
const DISK_FREE_MIN_BYTES: u64 = 512 * 1024 * 1024;
/// …or when an event waited this long for the center's ack.
const LAG_MAX: Duration = Duration::from_secs(600);

/// One look at the machine (everything that needs the file system).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Machine {
    pub(crate) memory: Option<v1::MemoryUsage>,
    pub(crate) load: (f64, f64, f64),
    pub(crate) cpus: u32,
    pub(crate) state_free: u64,
    pub(crate) disks: Vec<v1::RootDisk>,
}

impl Machine {
    /// Samples `/proc` and the file systems of `state_dir` and `roots` (blocking calls).
    fn sample_blocking(state_dir: &Path, roots: &[RootConfig]) -> Self {
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_meminfo(&s));
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| parse_loadavg(&s))
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
        let disks = roots
            .iter()
            .map(|r| {
                let (free_bytes, total_bytes) = disk(&r.path).unwrap_or_default();
                v1::RootDisk {
                    name: r.name.clone(),
                    path: r.path.display().to_string(),
                    free_bytes,
                    total_bytes,
                }
            })
            .collect();
        Self {
            memory,
            load,
            cpus,
            state_free: disk(state_dir).map_or(0, |(free, _)| free),
            disks,
        }
    }

    /// Samples on the blocking pool; `None` if that took longer than [`SAMPLE_TIMEOUT`].
    pub(crate) async fn sample(state_dir: &Path, roots: &[RootConfig]) -> Option<Self> {
        let (dir, roots) = (state_dir.to_owned(), roots.to_vec());
        let job = tokio::task::spawn_blocking(move || Self::sample_blocking(&dir, &roots));
        tokio::time::timeout(SAMPLE_TIMEOUT, job).await.ok()?.ok()
    }
}

/// `/proc/meminfo` → RAM and swap in bytes (`None` without `MemTotal`). Kernels before 3.14
/// lack `MemAvailable`; there free + buffers + cached stands in for it.
pub(crate) fn parse_meminfo(text: &str) -> Option<v1::MemoryUsage> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").unwrap_or_else(|| {
        field("MemFree").unwrap_or(0) + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0)
    });
    let swap_total = field("SwapTotal").unwrap_or(0);
    let swap_free = field("SwapFree").unwrap_or(0);
    Some(v1::MemoryUsage {
        ram_total_bytes: total,
        ram_available_bytes: available.min(total),
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_total.saturating_sub(swap_free),
    })
}

/// `/proc/loadavg` → the 1-, 5- and 15-minute load averages.
pub(crate) fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
}

/// (free, total) bytes of the file system holding `dir`; free is what an unprivileged user
/// may use.
fn disk(dir: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// The node's verdict on a filled-in heartbeat: healthy, or why not (`; `-separated).
pub(crate) fn verdict(hb: &v1::Heartbeat) -> (bool, String) {
    const MB: u64 = 1024 * 1024;
    let mut why = Vec::new();
    if let Some(m) = &hb.memory {
        if m.ram_total_bytes > 0
            && m.ram_available_bytes * 1000 < m.ram_total_bytes * RAM_AVAILABLE_MIN_PERMILLE
        {
            why.push(format!(
                "RAM low: {} MB available of {} MB",
                m.ram_available_bytes / MB,
                m.ram_total_bytes / MB
            ));
        }
        if m.swap_total_bytes > 0
            && m.swap_used_bytes * 1000 > m.swap_total_bytes * SWAP_USED_MAX_PERMILLE
        {
            why.push(format!(
                "swap nearly full: {} MB of {} MB used",
                m.swap_used_bytes / MB,
                m.swap_total_bytes / MB
            ));
        }
    }
    if hb.disk_free_bytes > 0 && hb.disk_free_bytes < DISK_FREE_MIN_BYTES {
        why.push(format!(
            "state directory disk low: {} MB free",
            hb.disk_free_bytes / MB
        ));
    }
    for d in &hb.disks {
        if d.total_bytes > 0 && d.free_bytes < DISK_FREE_MIN_BYTES {
            why.push(format!(
                "disk of root {} low: {} MB free",
                d.name,
                d.free_bytes / MB
            ));
        }
    }
    if hb.oldest_unacked_secs > LAG_MAX.as_secs() {
        why.push(format!(
            "an event has waited {} s for the center",
            hb.oldest_unacked_secs
        ));
    }
    if let Some(c) = &hb.codex
        && c.checked_unix_ms > 0
        && c.version.is_empty()
    {
        why.push(format!("Codex does not run: {}", c.detail));
    }
    (why.is_empty(), why.join("; "))
}

/// What feeds the heartbeats of one link: the lag of its events and the cached Codex state.
pub(crate) struct LinkHealth {
    pub(crate) lag: LagTracker,
    pub(crate) codex: CodexProbe,
}

impl LinkHealth {
    /// Starts watching for the link whose center claimed `cursors` (see [`LagTracker`]) and
    /// asks Codex in the background. Call before replaying, so replayed events are seen.
    pub(crate) fn start(
        node: &Node,
        cursors: &[v1::SessionCursor],
        token: &CancellationToken,
    ) -> Self {
        let lag = LagTracker::new(cursors, token.clone());
        lag.watch_new(&node.inner.windows.runtimes());
        let machine = node.clone();
        Self {
            lag,
            codex: CodexProbe::start(&node.inner.cfg, token.clone(), move || {
                machine.codex_in_use().is_empty()
            }),
        }
    }

    /// A heartbeat for now.
    pub(crate) async fn heartbeat(&self, node: &Node) -> v1::Heartbeat {
        let inner = &node.inner;
        let runtimes = inner.windows.runtimes();
        self.lag.watch_new(&runtimes);
        let mut windows = v1::WindowCounts::default();
        let mut live = 0;
        for rt in runtimes
            .iter()
            .filter(|rt| rt.alive.load(Ordering::Relaxed))
        {
            live += 1;
            match rt.screen_state().state() {
                v1::ScreenState::Busy => windows.busy += 1,
                v1::ScreenState::Ready => windows.idle += 1,
                v1::ScreenState::Prompt => windows.asking += 1,
                _ => {}
            }
        }
        let lag = self
            .lag
            .oldest(|id| inner.windows.record(id).map(|r| r.acked_seq));
        let machine = Machine::sample(&inner.cfg.state_dir, &inner.cfg.roots).await;
        let mut hb = v1::Heartbeat {
            node_version: crate::upgrade::node_version(),
            uptime_secs: inner.started.elapsed().as_secs(),
            sessions: runtimes.len() as u32,
            live_windows: live,
            unix_ms: shared::clock::now_unix_ms(),
            unknown_records: inner.unknown_records.load(Ordering::Relaxed),
            windows: Some(windows),
            oldest_unacked_secs: lag.map_or(0, |d| d.as_secs()),
            codex: Some(self.codex.current()),
            ..Default::default()
        };
        match machine {
            Some(m) => {
                (hb.load1, hb.load5, hb.load15) = m.load;
                hb.cpus = m.cpus;
                hb.memory = m.memory;
                hb.disk_free_bytes = m.state_free;
                hb.disks = m.disks;
            }
            None => {
                hb.detail = format!(
                    "reading the machine's state took over {} s (a hung file system?)",
                    SAMPLE_TIMEOUT.as_secs()
                );
            }
        }
        let (healthy, why) = verdict(&hb);
        hb.healthy = healthy && hb.detail.is_empty();
        if !why.is_empty() {
            hb.detail = if hb.detail.is_empty() {
                why
            } else {
                format!("{}; {why}", hb.detail)
            };
        }
        hb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683520 kB
MemFree:         6915036 kB
MemAvailable:   23858764 kB
Buffers:          412412 kB
Cached:         16548916 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        1048572 kB
";

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.ram_total_bytes, 24_683_520 * 1024);
        assert_eq!(m.ram_available_bytes, 23_858_764 * 1024);
        assert_eq!(m.swap_total_bytes, 2_097_148 * 1024);
        assert_eq!(m.swap_used_bytes, (2_097_148 - 1_048_572) * 1024);
    }

    #[test]
    fn old_kernels_without_memavailable_and_garbage() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n";
        let m = parse_meminfo(old).unwrap();
        assert_eq!(m.ram_available_bytes, 350 * 1024);
        assert_eq!((m.swap_total_bytes, m.swap_used_bytes), (0, 0));
        assert_eq!(parse_meminfo("nonsense"), None);
        assert_eq!(parse_meminfo(""), None);
        // A prefix of another field's name is not that field.
        assert_eq!(parse_meminfo("MemTotalX: 5 kB\n"), None);
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.78 2.41 2.75 3/104 23357\n"),
            Some((0.78, 2.41, 2.75))
        );
        assert_eq!(parse_loadavg("x"), None);
    }

    #[test]
    fn this_machine_is_sampled() {
        let roots = [RootConfig {
            name: "root".into(),
            path: "/".into(),
        }];
        let m = Machine::sample_blocking(Path::new("/"), &roots);
        assert!(m.memory.is_some_and(|m| m.ram_total_bytes > 0));
        assert!(m.state_free > 0 && m.cpus > 0);
        assert!(m.disks[0].total_bytes >= m.disks[0].free_bytes);
    }

    #[test]
    fn verdict_names_each_problem() {
        const MB: u64 = 1024 * 1024;
        let fine = v1::Heartbeat {
            memory: Some(v1::MemoryUsage {
                ram_total_bytes: 1000 * MB,
                ram_available_bytes: 500 * MB,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
            }),
            disk_free_bytes: 10_000 * MB,
            disks: vec![v1::RootDisk {
                name: "home".into(),
                path: "/home".into(),
                free_bytes: 10_000 * MB,
                total_bytes: 20_000 * MB,
            }],
            codex: Some(v1::CodexHealth {
                version: "0.171.0".into(),
                checked_unix_ms: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(verdict(&fine), (true, String::new()));
        let mut sick = fine.clone();
        sick.memory.as_mut().unwrap().ram_available_bytes = 10 * MB;
        sick.disks[0].free_bytes = 100 * MB;
        sick.oldest_unacked_secs = 601;
        sick.codex = Some(v1::CodexHealth {
            checked_unix_ms: 1,
            detail: "`codex` not found".into(),
            ..Default::default()
        });
        let (healthy, detail) = verdict(&sick);
        assert!(!healthy);
        assert_eq!(
            detail,
            "RAM low: 10 MB available of 1000 MB; disk of root home low: 100 MB free; \
             an event has waited 601 s for the center; Codex does not run: `codex` not found"
        );
        // Not checked yet is not a problem.
        let mut unknown = fine;
        unknown.codex = Some(v1::CodexHealth::default());
        assert!(verdict(&unknown).0);
    }
}
