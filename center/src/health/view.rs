//! One node's health as `/health` shows it and `center status --json` reports it. Pure: a
//! [`NodeHealth`] in, text or JSON out.

use std::time::Duration;

use proto::v1;

/// What the center knows of one node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeHealth {
    pub(crate) name: String,
    pub(crate) online: bool,
    /// The last heartbeat (possibly from before the node went away) and its age.
    pub(crate) heartbeat: Option<(Duration, v1::Heartbeat)>,
}

/// Bytes for people: `900 MB`, `1.2 GB` (binary units, as `free -h` and `df -h` count).
pub(crate) fn size(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    const GB: u64 = 1024 * MB;
    if bytes >= 1000 * MB {
        format!("{:.1} GB", bytes as f64 / GB as f64)
    } else {
        format!("{} MB", bytes / MB)
    }
}

/// A duration for people: `45 s`, `6 min 40 s`, `2 min`, `3 h 5 min`.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ if s % 3600 < 60 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn login_text(c: &v1::CodexHealth) -> String {
    match c.login() {
        v1::CodexLogin::Unspecified => "login not checked yet".into(),
        v1::CodexLogin::LoggedIn => c.detail.clone(),
        v1::CodexLogin::LoggedOut => "not logged in".into(),
        v1::CodexLogin::Unknown => format!("login unknown ({})", c.detail),
    }
}

/// The `/health` block of one node.
pub(crate) fn render(n: &NodeHealth) -> String {
    let mut lines = Vec::new();
    let Some((age, hb)) = &n.heartbeat else {
        let state = if n.online {
            "online, no heartbeat yet"
        } else {
            "offline, never heard from since the center started"
        };
        return format!(
            "{} {} — {state}",
            if n.online { "🟡" } else { "🔴" },
            n.name
        );
    };
    let mark = match (n.online, hb.healthy) {
        (false, _) => "🔴",
        (true, true) => "🟢",
        (true, false) => "🟡",
    };
    let state = if n.online { "online" } else { "offline" };
    lines.push(format!(
        "{mark} {} — {state}, last heartbeat {} ago, agent-node {}",
        n.name,
        duration(*age),
        hb.node_version
    ));
    if !hb.healthy && !hb.detail.is_empty() {
        lines.push(format!("⚠️ {}", hb.detail));
    }
    if let Some(m) = &hb.memory {
        let swap = if m.swap_total_bytes == 0 {
            "no swap".to_owned()
        } else {
            format!(
                "swap {} used of {}",
                size(m.swap_used_bytes),
                size(m.swap_total_bytes)
            )
        };
        lines.push(format!(
            "RAM {} available of {} · {swap}",
            size(m.ram_available_bytes),
            size(m.ram_total_bytes)
        ));
    }
    let mut disks: Vec<String> = hb
        .disks
        .iter()
        .map(|d| {
            if d.total_bytes == 0 {
                format!("{} unreadable", d.name)
            } else {
                format!(
                    "{} {} free of {}",
                    d.name,
                    size(d.free_bytes),
                    size(d.total_bytes)
                )
            }
        })
        .collect();
    if hb.disk_free_bytes > 0 {
        disks.push(format!("state dir {} free", size(hb.disk_free_bytes)));
    }
    if !disks.is_empty() {
        lines.push(format!("Disk: {}", disks.join(" · ")));
    }
    let cpus = if hb.cpus > 0 {
        format!(" on {} CPUs", hb.cpus)
    } else {
        String::new()
    };
    lines.push(format!(
        "Load {:.2} / {:.2} / {:.2}{cpus}",
        hb.load1, hb.load5, hb.load15
    ));
    let w = hb.windows.unwrap_or_default();
    lines.push(format!(
        "Windows: {} busy, {} idle, {} asking ({} live)",
        w.busy, w.idle, w.asking, hb.live_windows
    ));
    lines.push(if hb.oldest_unacked_secs == 0 {
        "Delivery: all caught up".to_owned()
    } else {
        format!(
            "Delivery: oldest unacked event waiting {}",
            duration(Duration::from_secs(hb.oldest_unacked_secs))
        )
    });
    lines.push(match &hb.codex {
        Some(c) if !c.version.is_empty() => {
            let newer = if shared::release::newer(&c.latest_version, &c.version) {
                format!(" ({} available)", c.latest_version)
            } else {
                String::new()
            };
            format!("Codex {}{newer} · {}", c.version, login_text(c))
        }
        Some(c) if c.checked_unix_ms > 0 => format!("Codex: {}", c.detail),
        _ => "Codex: not checked yet".to_owned(),
    });
    lines.join("\n")
}

/// The health fields of one node in `center status --json`.
pub(crate) fn json(n: &NodeHealth) -> serde_json::Value {
    let Some((age, hb)) = &n.heartbeat else {
        return serde_json::Value::Null;
    };
    let codex = hb.codex.clone().unwrap_or_default();
    serde_json::json!({
        "heartbeat_age_secs": age.as_secs(),
        "healthy": hb.healthy,
        "detail": hb.detail,
        "memory": hb.memory.map(|m| serde_json::json!({
            "ram_total_bytes": m.ram_total_bytes,
            "ram_available_bytes": m.ram_available_bytes,
            "swap_total_bytes": m.swap_total_bytes,
            "swap_used_bytes": m.swap_used_bytes,
        })),
        "disks": hb.disks.iter().map(|d| serde_json::json!({
            "name": d.name,
            "path": d.path,
            "free_bytes": d.free_bytes,
            "total_bytes": d.total_bytes,
        })).collect::<Vec<_>>(),
        "state_dir_free_bytes": hb.disk_free_bytes,
        "load": [hb.load1, hb.load5, hb.load15],
        "cpus": hb.cpus,
        "windows": hb.windows.map(|w| serde_json::json!({
            "busy": w.busy,
            "idle": w.idle,
            "asking": w.asking,
        })),
        "oldest_unacked_secs": hb.oldest_unacked_secs,
        "codex": {
            "version": codex.version,
            "login": match codex.login() {
                v1::CodexLogin::Unspecified => "unchecked",
                v1::CodexLogin::LoggedIn => "logged_in",
                v1::CodexLogin::LoggedOut => "logged_out",
                v1::CodexLogin::Unknown => "unknown",
            },
            "detail": codex.detail,
            "latest_version": codex.latest_version,
            "upgradable": codex.upgradable,
            "upgrade_detail": codex.upgrade_detail,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn node() -> NodeHealth {
        NodeHealth {
            name: "vps".into(),
            online: true,
            heartbeat: Some((
                Duration::from_secs(4),
                v1::Heartbeat {
                    node_version: "0.3.0".into(),
                    healthy: true,
                    live_windows: 3,
                    load1: 0.5,
                    load5: 0.25,
                    load15: 0.125,
                    cpus: 2,
                    disk_free_bytes: 20 * 1024 * MB,
                    memory: Some(v1::MemoryUsage {
                        ram_total_bytes: 8 * 1024 * MB,
                        ram_available_bytes: 700 * MB,
                        swap_total_bytes: 0,
                        swap_used_bytes: 0,
                    }),
                    disks: vec![v1::RootDisk {
                        name: "home".into(),
                        path: "/home/u".into(),
                        free_bytes: 20 * 1024 * MB,
                        total_bytes: 40 * 1024 * MB,
                    }],
                    windows: Some(v1::WindowCounts {
                        busy: 1,
                        idle: 1,
                        asking: 1,
                    }),
                    codex: Some(v1::CodexHealth {
                        version: "0.171.0".into(),
                        login: v1::CodexLogin::LoggedIn as i32,
                        detail: "logged in with ChatGPT".into(),
                        checked_unix_ms: 1,
                        latest_version: "0.172.0".into(),
                        upgradable: true,
                        upgrade_detail: String::new(),
                    }),
                    ..Default::default()
                },
            )),
        }
    }

    #[test]
    fn a_node_block() {
        assert_eq!(
            render(&node()),
            "🟢 vps — online, last heartbeat 4 s ago, agent-node 0.3.0
RAM 700 MB available of 8.0 GB · no swap
Disk: home 20.0 GB free of 40.0 GB · state dir 20.0 GB free
Load 0.50 / 0.25 / 0.12 on 2 CPUs
Windows: 1 busy, 1 idle, 1 asking (3 live)
Delivery: all caught up
Codex 0.171.0 (0.172.0 available) · logged in with ChatGPT"
        );
        let json = json(&node());
        assert_eq!(json["codex"]["login"], "logged_in");
        assert_eq!(json["disks"][0]["free_bytes"], 20 * 1024 * MB);
        assert_eq!(json["windows"]["asking"], 1);
    }

    #[test]
    fn unhealthy_offline_and_silent_nodes() {
        let mut sick = node();
        if let Some((_, hb)) = &mut sick.heartbeat {
            hb.healthy = false;
            hb.detail = "RAM low: 10 MB available of 8192 MB".into();
            hb.oldest_unacked_secs = 400;
            hb.codex = Some(v1::CodexHealth {
                login: v1::CodexLogin::Unknown as i32,
                detail: "\"codex\" not found".into(),
                checked_unix_ms: 1,
                ..Default::default()
            });
        }
        let text = render(&sick);
        assert!(text.starts_with("🟡 vps"), "{text}");
        assert!(
            text.contains("\n⚠️ RAM low: 10 MB available of 8192 MB\n"),
            "{text}"
        );
        assert!(
            text.contains("Delivery: oldest unacked event waiting 6 min 40 s"),
            "{text}"
        );
        assert!(text.ends_with("Codex: \"codex\" not found"), "{text}");
        sick.online = false;
        assert!(render(&sick).starts_with("🔴 vps — offline, last heartbeat"));
        let never = NodeHealth {
            name: "new".into(),
            online: false,
            heartbeat: None,
        };
        assert_eq!(
            render(&never),
            "🔴 new — offline, never heard from since the center started"
        );
        assert!(json(&never).is_null());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size(900 * MB), "900 MB");
        assert_eq!(size(1229 * MB), "1.2 GB");
        assert_eq!(duration(Duration::from_secs(45)), "45 s");
        assert_eq!(duration(Duration::from_secs(120)), "2 min");
        assert_eq!(duration(Duration::from_secs(400)), "6 min 40 s");
        assert_eq!(duration(Duration::from_secs(3600 * 3 + 300)), "3 h 5 min");
    }
}
