//! `center preflight`: before (or while) the bot runs, checks what it needs from outside —
//! a token Telegram accepts, the rights it needs in each of its chats, the embedded node's
//! machine, and the nodes it dials — and prints one ✓/⚠/✗ line per check with a fix.
//!
//! Rights matter per chat: the center makes one forum topic per session, so in a group it must
//! be able to post and to manage topics, and it must see plain messages. A bot sees every group
//! message only as an admin or with privacy mode off (getMe's `can_read_all_group_messages`);
//! otherwise only commands and replies to it. The chats checked are `allowed_chats` and those
//! the state database counts as owned (read only; the database is not created if missing).
//!
//! Nodes are checked for reachability only (a TCP or Unix-socket connection, closed at once):
//! a full link would be a second center link to a node a running center already serves.
//! The decisions are pure functions over the Bot API's answers, unit-tested with fake ones; the
//! token never appears in what is printed (the client scrubs it from errors, and nothing here
//! prints it).

use std::{collections::BTreeSet, path::Path, time::Duration};

use center::{
    config::CenterConfig,
    nodes::unix_socket,
    store::Store,
    telegram::api::{BotInfo, Tg, TgError},
};
use shared::preflight::Check;

// The rights decision is the library's: the running center checks the same at start.
pub(crate) use center::health::rights::chat_check;

/// How long a node may take to accept a connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check for `cfg` (the embedded node's with its scratch run when `scratch`).
pub(crate) async fn run(cfg: &CenterConfig, scratch: bool) -> Vec<Check> {
    let mut checks = vec![Check::ok(
        "config",
        format!("loaded (state dir {})", cfg.state_dir.display()),
    )];
    checks.push(agent_node::preflight::private_dir(
        "state dir",
        &cfg.state_dir,
    ));
    let (store, store_check) = open_store(&cfg.state_dir);
    checks.extend(store_check);
    checks.extend(telegram(cfg, store.as_ref()).await);
    if cfg.embedded_node {
        let opts = agent_node::preflight::Options { scratch };
        checks.extend(
            agent_node::preflight::run(&cfg.node, opts)
                .await
                .into_iter()
                .map(|c| c.prefixed("embedded node: ")),
        );
    } else {
        checks.push(Check::ok(
            "embedded node",
            "off (Codex runs only on enrolled nodes)",
        ));
    }
    checks.extend(nodes(cfg, store.as_ref()).await);
    checks
}

/// The state database, if there is one (never created here).
fn open_store(state_dir: &Path) -> (Option<Store>, Option<Check>) {
    let path = state_dir.join("center.db");
    if !path.exists() {
        return (None, None);
    }
    match Store::open(&path) {
        Ok(store) => (Some(store), None),
        Err(err) => (
            None,
            Some(Check::fail(
                "state database",
                format!("{} cannot be opened ({err})", path.display()),
                "check its owner and permissions (it must be this user's, mode 600)",
            )),
        ),
    }
}

async fn telegram(cfg: &CenterConfig, store: Option<&Store>) -> Vec<Check> {
    let tg = match Tg::new(cfg.token.expose(), &cfg.api_url) {
        Ok(tg) => tg,
        Err(err) => {
            return vec![Check::fail(
                "Telegram",
                format!("cannot set up the Bot API client ({err})"),
                "check TELEGRAM_API_URL and TELOXIDE_PROXY",
            )];
        }
    };
    let me = tg.me().await;
    let mut checks = vec![token_check(&me, &cfg.api_url)];
    let Ok(me) = me else { return checks };
    let mut chats: BTreeSet<i64> = cfg.allowed_chats.iter().copied().collect();
    if let Some(store) = store {
        match store.owned_chats() {
            Ok(owned) => chats.extend(owned),
            Err(err) => checks.push(Check::fail(
                "owned chats",
                format!("cannot read them from the state database ({err})"),
                "check the state database",
            )),
        }
    }
    // Private chats (positive ids) have no admins and no rights to check.
    let groups: Vec<i64> = chats.into_iter().filter(|&c| c < 0).collect();
    let mut rights = Vec::new();
    for &chat in &groups {
        rights.push((chat, tg.bot_rights(chat, me.id).await));
    }
    let all_admin = rights
        .iter()
        .all(|(_, r)| r.as_ref().is_ok_and(|r| r.admin));
    checks.push(privacy_check(
        me.can_read_all_group_messages,
        !groups.is_empty() && all_admin,
    ));
    checks.extend(
        rights
            .iter()
            .map(|(chat, r)| chat_check(*chat, r, me.can_read_all_group_messages)),
    );
    checks
}

/// getMe's answer → the token check.
pub(crate) fn token_check(me: &Result<BotInfo, TgError>, api_url: &str) -> Check {
    const NAME: &str = "Telegram token";
    let fix_token = "copy the token from @BotFather (/mybots → API Token) into TELEGRAM_BOT_TOKEN or token_file";
    match me {
        Ok(me) => Check::ok(NAME, format!("valid (@{}, id {})", me.username, me.id)),
        Err(TgError::Network(why)) => Check::fail(
            NAME,
            format!("cannot reach {api_url} ({why})"),
            "check the network, TELOXIDE_PROXY and TELEGRAM_API_URL",
        ),
        Err(TgError::Server(why)) => Check::fail(
            NAME,
            format!("the Bot API answered with a server error ({why})"),
            "try again in a few minutes",
        ),
        Err(TgError::RetryAfter(wait)) => Check::fail(
            NAME,
            format!("flood control: retry after {} s", wait.as_secs()),
            "wait, then run preflight again",
        ),
        Err(err) => {
            let text = err.to_string().to_lowercase();
            if text.contains("invalid bot token") || text.contains("unauthorized") {
                Check::fail(NAME, "the token is refused (401)", fix_token)
            } else if text.contains("not found") {
                Check::fail(NAME, "the token is refused (404)", fix_token)
            } else {
                Check::fail(NAME, format!("getMe failed: {err}"), fix_token)
            }
        }
    }
}

/// Privacy mode, given whether the bot is an admin in every group checked (and there was one).
pub(crate) fn privacy_check(reads_all: bool, admin_everywhere: bool) -> Check {
    const NAME: &str = "Telegram privacy mode";
    if reads_all {
        Check::ok(NAME, "off (the bot reads every group message)")
    } else if admin_everywhere {
        Check::ok(NAME, "on (fine: the bot is an admin in every chat checked)")
    } else {
        Check::warn(
            NAME,
            "on: in a group where the bot is not an admin it sees only commands and replies to it",
            "make the bot an admin in its groups, or in @BotFather send /setprivacy → Disable (then remove and re-add the bot)",
        )
    }
}

async fn nodes(cfg: &CenterConfig, store: Option<&Store>) -> Vec<Check> {
    let mut nodes: Vec<(String, String)> = cfg.remote_nodes.clone();
    if let Some(store) = store {
        match store.nodes() {
            Ok(list) => {
                for n in list.into_iter().filter(|n| !n.revoked) {
                    if !nodes.iter().any(|(name, _)| *name == n.name) {
                        nodes.push((n.name, n.endpoint));
                    }
                }
            }
            Err(err) => {
                return vec![Check::fail(
                    "nodes",
                    format!("cannot read them from the state database ({err})"),
                    "check the state database",
                )];
            }
        }
    }
    let mut checks = Vec::new();
    for (name, endpoint) in nodes {
        let reached = if endpoint.is_empty() {
            None
        } else {
            Some(reach(&endpoint).await)
        };
        checks.push(node_check(&name, &endpoint, reached));
    }
    checks
}

/// Why a node's endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReachError {
    /// The connection was refused or failed.
    #[error("{0}")]
    Connect(std::io::Error),
    /// Nothing answered in time.
    #[error("no answer within {} s", REACH_TIMEOUT.as_secs())]
    Timeout,
}

/// Opens (and at once closes) a connection to a node's endpoint.
async fn reach(endpoint: &str) -> Result<(), ReachError> {
    let connect = async {
        match unix_socket(endpoint) {
            Some(path) => tokio::net::UnixStream::connect(path).await.map(drop),
            None => tokio::net::TcpStream::connect(endpoint).await.map(drop),
        }
    };
    match tokio::time::timeout(REACH_TIMEOUT, connect).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ReachError::Connect(err)),
        Err(_) => Err(ReachError::Timeout),
    }
}

/// One node: `reached` is `None` for a node that dials in (it has no address to try).
pub(crate) fn node_check(
    name: &str,
    endpoint: &str,
    reached: Option<Result<(), ReachError>>,
) -> Check {
    let label = format!("node {name}");
    match reached {
        None => Check::ok(label, "dials in (nothing to try from here)"),
        Some(Ok(())) => Check::ok(label, format!("{endpoint} accepts connections")),
        Some(Err(why)) => Check::fail(
            label,
            format!("{endpoint} is unreachable ({why})"),
            "start `agent-node serve` there and check the address, its --listen and the firewall",
        ),
    }
}

#[cfg(test)]
mod tests {
    use center::telegram::api::BotRights;
    use shared::preflight::Outcome;

    use super::*;

    fn admin() -> BotRights {
        BotRights {
            status: "administrator",
            admin: true,
            can_send: true,
            can_delete_others: true,
            can_manage_topics: true,
        }
    }

    #[test]
    fn the_token_check_names_the_problem_without_the_token() {
        let me = BotInfo {
            id: 42,
            username: "fleet_bot".into(),
            can_read_all_group_messages: false,
        };
        assert_eq!(
            token_check(&Ok(me), "https://api.telegram.org").line(),
            "✓ Telegram token valid (@fleet_bot, id 42)"
        );
        let refused = token_check(&Err(TgError::Other("Invalid bot token".into())), "u");
        assert!(refused.failed());
        assert!(
            refused
                .line()
                .starts_with("✗ Telegram token the token is refused (401) — fix: "),
            "{refused:?}"
        );
        let down = token_check(&Err(TgError::Network("timed out".into())), "http://x");
        assert!(down.failed() && down.line().contains("cannot reach http://x"));
        assert!(token_check(&Err(TgError::Server("502".into())), "u").failed());
        assert!(token_check(&Err(TgError::RetryAfter(Duration::from_secs(3))), "u").failed());
    }

    #[test]
    fn privacy_mode_warns_only_where_it_matters() {
        assert!(privacy_check(true, false).line().starts_with("✓"));
        assert!(privacy_check(false, true).line().starts_with("✓"));
        let on = privacy_check(false, false);
        assert!(matches!(on.outcome, Outcome::Warn { .. }), "{on:?}");
        assert!(on.line().contains("/setprivacy"));
    }

    #[test]
    fn chat_rights() {
        let ok = chat_check(-100, &Ok(admin()), false);
        assert_eq!(
            ok.line(),
            "✓ chat -100 administrator: posts, edits and deletes its messages, manages topics, reads every message"
        );
        let no_topics = chat_check(
            -100,
            &Ok(BotRights {
                can_manage_topics: false,
                ..admin()
            }),
            false,
        );
        assert!(no_topics.failed() && no_topics.line().contains("Manage topics"));
        let member = BotRights {
            status: "member",
            admin: false,
            can_send: true,
            can_delete_others: false,
            can_manage_topics: false,
        };
        let plain = chat_check(-100, &Ok(member.clone()), false);
        assert!(
            plain.failed() && plain.line().contains("privacy mode"),
            "{plain:?}"
        );
        let reads = chat_check(-100, &Ok(member.clone()), true);
        assert!(reads.failed() && !reads.line().contains("privacy mode"));
        let muted = BotRights {
            status: "restricted",
            can_send: false,
            ..member
        };
        assert!(
            chat_check(-100, &Ok(muted), true)
                .line()
                .contains("may not post")
        );
        let gone = BotRights {
            status: "left",
            can_send: false,
            ..member
        };
        assert!(
            chat_check(-100, &Ok(gone), true)
                .line()
                .contains("not in this chat (left)")
        );
        let unknown = chat_check(
            -100,
            &Err(TgError::Other("Bad Request: chat not found".into())),
            true,
        );
        assert!(unknown.failed() && unknown.line().contains("allowed_chats"));
        let partial = chat_check(
            -100,
            &Ok(BotRights {
                can_delete_others: false,
                ..admin()
            }),
            false,
        );
        assert!(!partial.failed() && partial.line().contains("not other users'"));
    }

    #[test]
    fn nodes_are_reachable_or_dial_in() {
        assert_eq!(
            node_check("vps1", "10.0.0.1:7443", Some(Ok(()))).line(),
            "✓ node vps1 10.0.0.1:7443 accepts connections"
        );
        assert!(!node_check("nat", "", None).failed());
        let down = node_check(
            "vps2",
            "10.0.0.2:7443",
            Some(Err(ReachError::Connect(
                std::io::ErrorKind::ConnectionRefused.into(),
            ))),
        );
        assert!(down.failed() && down.line().contains("agent-node serve"));
        let silent = node_check("vps3", "10.0.0.3:7443", Some(Err(ReachError::Timeout)));
        assert!(
            silent.line().contains("unreachable (no answer within 5 s)"),
            "{}",
            silent.line()
        );
    }

    #[tokio::test]
    async fn reach_tries_tcp_and_unix_sockets() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        reach(&addr).await.unwrap();
        drop(tcp);
        assert!(reach(&addr).await.is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sock");
        let _unix = tokio::net::UnixListener::bind(&path).unwrap();
        reach(&format!("unix:{}", path.display())).await.unwrap();
        assert!(reach("unix:/nonexistent/node.sock").await.is_err());
    }
}
