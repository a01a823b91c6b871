//! The alert task: re-judges the fleet whenever a node's heartbeat arrives or its link comes up
//! or ends (each `NodeConn` publishes those on a watch channel), and every [`TICK`] for what
//! only time reveals — a node that stays away, a new node to watch. The decisions are
//! [`Alerts`]' (pure); this shell gathers observations and sends the lines of one pass as one
//! message where alerts go ([`super::destination`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use proto::v1;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::alerts::{Alerts, Observation};
use crate::{app::App, nodes::NodeConn};

/// How often time alone is checked (offline nodes, new nodes).
const TICK: Duration = Duration::from_secs(5);

type Beats = watch::Receiver<Option<(Instant, v1::Heartbeat)>>;

/// Runs until `token` is cancelled (with alerts off, only Codex upgrades are offered).
pub(super) async fn run(app: Arc<App>, token: CancellationToken) {
    let cfg = app.cfg.alerts.clone();
    let mut alerts = Alerts::default();
    let mut offers = crate::codex_upgrade::Offers::default();
    let mut watched: HashMap<String, (Arc<NodeConn>, Beats)> = HashMap::new();
    // A node not connected counts as away from when this task first noticed (the center's
    // start, for nodes that have yet to connect).
    let mut away_since: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        let names = super::node_names(&app);
        let known: HashSet<String> = names.iter().cloned().collect();
        alerts.retain(&known);
        watched.retain(|name, _| known.contains(name));
        away_since.retain(|name, _| known.contains(name));
        let now = Instant::now();
        let mut lines = Vec::new();
        for name in &names {
            let conn = app.node(name);
            match &conn {
                Some(c) if !watched.get(name).is_some_and(|(w, _)| Arc::ptr_eq(w, c)) => {
                    watched.insert(name.clone(), (c.clone(), c.heartbeats()));
                }
                None => {
                    watched.remove(name);
                }
                Some(_) => {}
            }
            let online = conn.as_ref().is_some_and(|c| c.online());
            let beat = watched
                .get_mut(name)
                .and_then(|(_, rx)| rx.borrow_and_update().clone());
            let away_for = if online {
                away_since.remove(name);
                // Connected but silent for as long as an absence counts too.
                beat.as_ref()
                    .map(|(at, _)| now.saturating_duration_since(*at))
                    .filter(|age| *age >= cfg.offline_after())
            } else {
                let since = *away_since.entry(name.clone()).or_insert(now);
                Some(now.saturating_duration_since(since))
            };
            if let Some((_, hb)) = &beat {
                offers.observe(&app, name, hb);
            }
            if cfg.enabled {
                lines.extend(alerts.observe(
                    &cfg,
                    Observation {
                        node: name,
                        away_for,
                        heartbeat: beat.as_ref().map(|(_, hb)| hb),
                    },
                ));
            }
        }
        if !lines.is_empty() {
            super::destination::send(&app, &lines.join("\n"));
        }
        let mut changes: Vec<_> = watched
            .values_mut()
            .map(|(_, rx)| Box::pin(rx.changed()))
            .collect();
        let any_change = async {
            if changes.is_empty() {
                std::future::pending::<()>().await;
            } else {
                let _ = futures::future::select_all(changes.iter_mut()).await;
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
            () = any_change => {}
        }
    }
}
