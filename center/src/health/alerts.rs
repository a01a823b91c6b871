//! When a node's health is worth a message: `[alerts]` thresholds and the pure decision of
//! which alerts start and which end, one message per crossing each way.
//!
//! Why hysteresis: a disk hovering at the threshold would otherwise alert and recover on every
//! heartbeat. An alert starts when a value crosses its threshold and ends only once the value is
//! back past it by a margin ([`MARGIN`] of the threshold): free space must climb 10 % above the
//! minimum, a load fall 10 % below the maximum. Going offline starts after `offline_after_secs`
//! without contact and ends at the next contact. A Codex login alert starts only when a node
//! that was logged in reports being logged out (a node that runs Codex with an API key from its
//! environment says "not logged in" all along, and that is not news).
//!
//! The state (which alerts are on) lives in memory: after a center restart an alert that is
//! still on is announced once more.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use proto::v1;
use serde::Deserialize;
use shared::config::ConfigError;

use super::view::{duration, size};

/// How far past its threshold a value must come back before its alert ends.
pub(crate) const MARGIN: f64 = 0.1;

/// `[alerts]` in the center's file. A threshold of 0 turns its alert off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Send alerts at all.
    pub enabled: bool,
    /// Alert when a root's file system (or the node's state directory's) has less free space.
    pub disk_free_min_mb: u64,
    /// Alert when less RAM is available.
    pub ram_available_min_mb: u64,
    /// Alert when more of the swap is in use (percent).
    pub swap_used_max_pct: u64,
    /// Alert when the 5-minute load average per CPU is higher.
    pub load_per_cpu_max: f64,
    /// Alert when an event waits longer for delivery to Telegram.
    pub lag_max_secs: u64,
    /// Alert when a node has been unreachable (or silent) this long.
    pub offline_after_secs: u64,
    /// Alert when a node's Codex gets logged out.
    pub codex_logout: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            disk_free_min_mb: 1024,
            ram_available_min_mb: 256,
            swap_used_max_pct: 80,
            load_per_cpu_max: 2.0,
            lag_max_secs: 300,
            offline_after_secs: 120,
            codex_logout: true,
        }
    }
}

impl AlertsConfig {
    /// The file's `[alerts]`, checked.
    pub fn validated(self) -> Result<Self, ConfigError> {
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_owned(),
        };
        if self.swap_used_max_pct > 100 {
            return Err(invalid(
                "alerts.swap_used_max_pct",
                "is a percentage (0-100; 0 turns the alert off)",
            ));
        }
        if !self.load_per_cpu_max.is_finite() || self.load_per_cpu_max < 0.0 {
            return Err(invalid(
                "alerts.load_per_cpu_max",
                "must be a number of 0 or more (0 turns the alert off)",
            ));
        }
        Ok(self)
    }

    /// How long a node may be away before it counts as offline.
    pub(crate) fn offline_after(&self) -> Duration {
        Duration::from_secs(self.offline_after_secs)
    }
}

/// What the center knows of one node right now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation<'a> {
    /// The node's name.
    pub(crate) node: &'a str,
    /// How long it has been unreachable or silent, if it is.
    pub(crate) away_for: Option<Duration>,
    /// Its last heartbeat (ignored while it is away).
    pub(crate) heartbeat: Option<&'a v1::Heartbeat>,
}

/// One value compared with its threshold.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    key: String,
    value: f64,
    limit: f64,
    high_is_bad: bool,
    what: String,
    shown: String,
    limit_shown: String,
}

/// Whether an alert on `value` is on, given whether it was; a limit of 0 means off.
pub(crate) fn crossed(was_on: bool, value: f64, limit: f64, high_is_bad: bool) -> bool {
    if limit <= 0.0 {
        return false;
    }
    // Rounding must not keep an alert on when the value is exactly at its recovery point.
    const EPSILON: f64 = 1e-9;
    match (high_is_bad, was_on) {
        (true, false) => value > limit,
        (true, true) => value - EPSILON > limit * (1.0 - MARGIN),
        (false, false) => value < limit,
        (false, true) => value + EPSILON < limit * (1.0 + MARGIN),
    }
}

/// Which alerts are on, per node. Pure: feed it observations, it answers with messages.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    on: HashMap<String, HashSet<String>>,
    /// Each node's login state last seen (Unknown and not-yet-checked never replace it).
    login: HashMap<String, v1::CodexLogin>,
}

impl Alerts {
    /// Updates one node's alerts; returns the message lines for the alerts that started or
    /// ended.
    pub(crate) fn observe(&mut self, cfg: &AlertsConfig, obs: Observation<'_>) -> Vec<String> {
        let node = obs.node;
        let mut lines = Vec::new();
        let on = self.on.entry(node.to_owned()).or_default();
        let away = obs
            .away_for
            .filter(|d| cfg.offline_after_secs > 0 && *d >= cfg.offline_after());
        match (away, on.contains("offline")) {
            (Some(d), false) => {
                on.insert("offline".into());
                lines.push(format!(
                    "🔴 {node} is offline: no contact for {}.",
                    duration(d)
                ));
            }
            (None, true) if obs.away_for.is_none() => {
                on.remove("offline");
                lines.push(format!("🟢 {node} is back online."));
            }
            _ => {}
        }
        // While away, the last heartbeat is stale: other alerts stay as they are.
        let Some(hb) = obs.heartbeat.filter(|_| obs.away_for.is_none()) else {
            return lines;
        };
        for r in readings(cfg, hb) {
            let was = on.contains(&r.key);
            let now = crossed(was, r.value, r.limit, r.high_is_bad);
            if now && !was {
                lines.push(format!(
                    "⚠️ {node}: {}: {} (alert {}).",
                    r.what, r.shown, r.limit_shown
                ));
                on.insert(r.key);
            } else if was && !now {
                lines.push(format!("✅ {node}: {} is fine again: {}.", r.what, r.shown));
                on.remove(&r.key);
            }
        }
        let login = hb
            .codex
            .as_ref()
            .map_or(v1::CodexLogin::Unspecified, |c| c.login());
        let before = self.login.get(node).copied();
        if matches!(login, v1::CodexLogin::LoggedIn | v1::CodexLogin::LoggedOut) {
            self.login.insert(node.to_owned(), login);
        }
        let was = on.contains("codex-login");
        if cfg.codex_logout
            && !was
            && login == v1::CodexLogin::LoggedOut
            && before == Some(v1::CodexLogin::LoggedIn)
        {
            on.insert("codex-login".into());
            lines.push(format!(
                "⚠️ {node}: Codex is no longer logged in; new windows and jobs there will fail. \
                 Fix: run `codex login --device-auth` on {node} as the node's user."
            ));
        } else if was && login == v1::CodexLogin::LoggedIn {
            on.remove("codex-login");
            lines.push(format!("✅ {node}: Codex is logged in again."));
        }
        lines
    }

    /// Forgets the nodes not in `known` (removed or revoked), without messages.
    pub(crate) fn retain(&mut self, known: &HashSet<String>) {
        self.on.retain(|n, _| known.contains(n));
        self.login.retain(|n, _| known.contains(n));
    }
}

/// The values of `hb` that have a threshold.
fn readings(cfg: &AlertsConfig, hb: &v1::Heartbeat) -> Vec<Reading> {
    const MB: f64 = 1024.0 * 1024.0;
    let mut out = Vec::new();
    let disk_limit = cfg.disk_free_min_mb as f64;
    // Roots on one file system are one disk (same free and total space in one sample).
    let mut disks: BTreeMap<(u64, u64), Vec<&v1::RootDisk>> = BTreeMap::new();
    for d in hb.disks.iter().filter(|d| d.total_bytes > 0) {
        disks
            .entry((d.free_bytes, d.total_bytes))
            .or_default()
            .push(d);
    }
    for ((free, _), roots) in &disks {
        let names: Vec<&str> = roots.iter().map(|d| d.name.as_str()).collect();
        let paths: Vec<&str> = roots.iter().map(|d| d.path.as_str()).collect();
        let plural = if roots.len() > 1 { "s" } else { "" };
        out.push(Reading {
            key: format!("disk:{}", names.join(",")),
            value: *free as f64 / MB,
            limit: disk_limit,
            high_is_bad: false,
            what: format!(
                "disk of root{plural} {} ({})",
                names.join(", "),
                paths.join(", ")
            ),
            shown: format!("{} free", size(*free)),
            limit_shown: format!("below {} MB", cfg.disk_free_min_mb),
        });
    }
    let state_shared = disks.keys().any(|(free, _)| *free == hb.disk_free_bytes);
    if hb.disk_free_bytes > 0 && !state_shared {
        out.push(Reading {
            key: "disk:state".into(),
            value: hb.disk_free_bytes as f64 / MB,
            limit: disk_limit,
            high_is_bad: false,
            what: "disk of the node's state directory".into(),
            shown: format!("{} free", size(hb.disk_free_bytes)),
            limit_shown: format!("below {} MB", cfg.disk_free_min_mb),
        });
    }
    if let Some(m) = hb.memory.as_ref().filter(|m| m.ram_total_bytes > 0) {
        out.push(Reading {
            key: "ram".into(),
            value: m.ram_available_bytes as f64 / MB,
            limit: cfg.ram_available_min_mb as f64,
            high_is_bad: false,
            what: "RAM".into(),
            shown: format!(
                "{} available of {}",
                size(m.ram_available_bytes),
                size(m.ram_total_bytes)
            ),
            limit_shown: format!("below {} MB", cfg.ram_available_min_mb),
        });
        if m.swap_total_bytes > 0 {
            let pct = m.swap_used_bytes as f64 * 100.0 / m.swap_total_bytes as f64;
            out.push(Reading {
                key: "swap".into(),
                value: pct,
                limit: cfg.swap_used_max_pct as f64,
                high_is_bad: true,
                what: "swap".into(),
                shown: format!("{pct:.0}% of {} used", size(m.swap_total_bytes)),
                limit_shown: format!("above {}%", cfg.swap_used_max_pct),
            });
        }
    }
    if hb.cpus > 0 {
        out.push(Reading {
            key: "load".into(),
            value: hb.load5 / f64::from(hb.cpus),
            limit: cfg.load_per_cpu_max,
            high_is_bad: true,
            what: "load".into(),
            shown: format!("{:.1} over 5 minutes on {} CPUs", hb.load5, hb.cpus),
            limit_shown: format!("above {} per CPU", cfg.load_per_cpu_max),
        });
    }
    out.push(Reading {
        key: "lag".into(),
        value: hb.oldest_unacked_secs as f64,
        limit: cfg.lag_max_secs as f64,
        high_is_bad: true,
        what: "delivery to Telegram".into(),
        shown: format!(
            "the oldest undelivered event has waited {}",
            duration(Duration::from_secs(hb.oldest_unacked_secs))
        ),
        limit_shown: format!("above {} s", cfg.lag_max_secs),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn beat(free_mb: u64) -> v1::Heartbeat {
        v1::Heartbeat {
            disks: vec![
                v1::RootDisk {
                    name: "home".into(),
                    path: "/home/u".into(),
                    free_bytes: free_mb * MB,
                    total_bytes: 100_000 * MB,
                },
                v1::RootDisk {
                    name: "work".into(),
                    path: "/srv/work".into(),
                    free_bytes: free_mb * MB,
                    total_bytes: 100_000 * MB,
                },
            ],
            disk_free_bytes: free_mb * MB,
            memory: Some(v1::MemoryUsage {
                ram_total_bytes: 8000 * MB,
                ram_available_bytes: 4000 * MB,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
            }),
            cpus: 2,
            load5: 0.5,
            ..Default::default()
        }
    }

    fn see(a: &mut Alerts, cfg: &AlertsConfig, hb: &v1::Heartbeat) -> Vec<String> {
        a.observe(
            cfg,
            Observation {
                node: "vps",
                away_for: None,
                heartbeat: Some(hb),
            },
        )
    }

    #[test]
    fn hysteresis() {
        // Low is bad, limit 100: on below 100, off only at 110 or more.
        assert!(!crossed(false, 100.0, 100.0, false));
        assert!(crossed(false, 99.0, 100.0, false));
        assert!(crossed(true, 105.0, 100.0, false));
        assert!(!crossed(true, 110.0, 100.0, false));
        // High is bad, limit 80: on above 80, off only at 72 or less.
        assert!(crossed(false, 81.0, 80.0, true));
        assert!(crossed(true, 75.0, 80.0, true));
        assert!(!crossed(true, 72.0, 80.0, true));
        // 0: off.
        assert!(!crossed(false, 1e9, 0.0, true));
    }

    #[test]
    fn a_disk_bouncing_on_the_threshold_alerts_once_and_recovers_once() {
        let cfg = AlertsConfig::default();
        let mut a = Alerts::default();
        assert!(see(&mut a, &cfg, &beat(5000)).is_empty());
        let fired = see(&mut a, &cfg, &beat(900));
        assert_eq!(
            fired,
            [
                "⚠️ vps: disk of roots home, work (/home/u, /srv/work): 900 MB free (alert below 1024 MB)."
            ],
            "one line for two roots and the state dir on one file system"
        );
        for free in [1030, 1000, 1100, 950, 1120] {
            assert!(see(&mut a, &cfg, &beat(free)).is_empty(), "{free} MB");
        }
        let recovered = see(&mut a, &cfg, &beat(1200));
        assert_eq!(
            recovered,
            ["✅ vps: disk of roots home, work (/home/u, /srv/work) is fine again: 1.2 GB free."]
        );
        assert!(see(&mut a, &cfg, &beat(1100)).is_empty());
        assert_eq!(
            see(&mut a, &cfg, &beat(10)).len(),
            1,
            "a new crossing alerts again"
        );
    }

    #[test]
    fn each_threshold_and_the_state_dir_on_its_own_disk() {
        let cfg = AlertsConfig::default();
        let mut a = Alerts::default();
        let mut hb = beat(50_000);
        hb.disk_free_bytes = 100 * MB;
        hb.memory = Some(v1::MemoryUsage {
            ram_total_bytes: 8000 * MB,
            ram_available_bytes: 100 * MB,
            swap_total_bytes: 1000 * MB,
            swap_used_bytes: 900 * MB,
        });
        hb.load5 = 4.2;
        hb.oldest_unacked_secs = 400;
        let lines = see(&mut a, &cfg, &hb);
        assert_eq!(
            lines,
            [
                "⚠️ vps: disk of the node's state directory: 100 MB free (alert below 1024 MB).",
                "⚠️ vps: RAM: 100 MB available of 7.8 GB (alert below 256 MB).",
                "⚠️ vps: swap: 90% of 1.0 GB used (alert above 80%).",
                "⚠️ vps: load: 4.2 over 5 minutes on 2 CPUs (alert above 2 per CPU).",
                "⚠️ vps: delivery to Telegram: the oldest undelivered event has waited 6 min 40 s (alert above 300 s).",
            ]
        );
        assert!(see(&mut a, &cfg, &hb).is_empty());
        let off = AlertsConfig {
            lag_max_secs: 0,
            ..cfg
        };
        assert_eq!(see(&mut a, &off, &hb).len(), 1, "lag alert turned off ends");
    }

    #[test]
    fn offline_after_the_grace_and_back_once() {
        let cfg = AlertsConfig::default();
        let mut a = Alerts::default();
        let hb = beat(50_000);
        let at = |away: Option<u64>| Observation {
            node: "vps",
            away_for: away.map(Duration::from_secs),
            heartbeat: Some(&hb),
        };
        assert!(a.observe(&cfg, at(Some(60))).is_empty());
        assert_eq!(
            a.observe(&cfg, at(Some(120))),
            ["🔴 vps is offline: no contact for 2 min."]
        );
        assert!(a.observe(&cfg, at(Some(600))).is_empty());
        assert_eq!(a.observe(&cfg, at(None)), ["🟢 vps is back online."]);
        assert!(a.observe(&cfg, at(None)).is_empty());
        // A short blip is not news.
        assert!(a.observe(&cfg, at(Some(5))).is_empty());
        assert!(a.observe(&cfg, at(None)).is_empty());
    }

    #[test]
    fn codex_logout_only_after_a_login() {
        let cfg = AlertsConfig::default();
        let mut a = Alerts::default();
        let with = |login: v1::CodexLogin| {
            let mut hb = beat(50_000);
            hb.codex = Some(v1::CodexHealth {
                version: "0.171.0".into(),
                login: login as i32,
                ..Default::default()
            });
            hb
        };
        // Never logged in (an API key from the environment): quiet.
        assert!(see(&mut a, &cfg, &with(v1::CodexLogin::LoggedOut)).is_empty());
        assert!(see(&mut a, &cfg, &with(v1::CodexLogin::LoggedIn)).is_empty());
        assert!(see(&mut a, &cfg, &with(v1::CodexLogin::Unknown)).is_empty());
        let out = see(&mut a, &cfg, &with(v1::CodexLogin::LoggedOut));
        assert!(out[0].contains("Codex is no longer logged in"), "{out:?}");
        assert!(see(&mut a, &cfg, &with(v1::CodexLogin::LoggedOut)).is_empty());
        assert_eq!(
            see(&mut a, &cfg, &with(v1::CodexLogin::LoggedIn)),
            ["✅ vps: Codex is logged in again."]
        );
    }

    #[test]
    fn config_defaults_and_checks() {
        let cfg: AlertsConfig = toml::from_str("disk_free_min_mb = 5").unwrap();
        assert_eq!(cfg.disk_free_min_mb, 5);
        assert_eq!(cfg.lag_max_secs, 300);
        assert!(toml::from_str::<AlertsConfig>("disk_min = 5").is_err());
        let bad = AlertsConfig {
            swap_used_max_pct: 101,
            ..AlertsConfig::default()
        };
        assert!(bad.validated().is_err());
    }
}
