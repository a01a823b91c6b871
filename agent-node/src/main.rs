//! The `agent-node` binary: serves this machine's Codex windows to a center.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use agent_node::{
    Node, NodeConfig,
    config::{FileConfig, ServeArgs},
    enroll::TlsState,
    transport,
};

/// Codex Fleet agent-node: live Codex sessions in tmux, driven from a center.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see deploy/agent-node.example.toml).
    #[arg(long, global = true, env = "AGENT_NODE_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, global = true, env = "RUST_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prepare this machine to join a fleet: make its key and print a one-line join code
    /// (valid for an hour) to give to the center with `/node add <name> <host:port> <code>`.
    Init {
        /// This node's name in the fleet (1-32 characters of a-z, 0-9 and '-').
        #[arg(long)]
        name: String,
        /// State directory (default ~/.codex-fleet/node).
        #[arg(long, env = "AGENT_NODE_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Minutes the join code stays valid.
        #[arg(long, default_value_t = 60)]
        valid_minutes: u64,
    },
    /// Manual mode: make this node's key (kept in the state directory) and print a certificate
    /// request for `center nodes sign <name> <csr-file>`.
    Csr {
        /// This node's name in the fleet.
        #[arg(long)]
        name: String,
        /// State directory (default ~/.codex-fleet/node).
        #[arg(long, env = "AGENT_NODE_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Join a center that accepts nodes dialling in (for machines behind NAT): use the code
    /// its `/node add <name>` printed; afterwards `serve` dials the center over mutual TLS.
    /// The code is read from standard input (prompted for on a terminal) or --code-file, never
    /// from the command line, where every local user could read it.
    Join {
        /// This node's name (as given to /node add).
        #[arg(long)]
        name: String,
        /// The center's address for node links (its --listen), host:port.
        #[arg(long)]
        center: String,
        /// State directory (default ~/.codex-fleet/node).
        #[arg(long, env = "AGENT_NODE_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The center's enrollment address (its --enroll-listen), host:port.
        enroll: String,
        /// Read the join code from this file (first line) instead of standard input.
        #[arg(long)]
        code_file: Option<PathBuf>,
        /// Refused: a code here would be readable in /proc/<pid>/cmdline.
        #[arg(hide = true)]
        code: Option<String>,
    },
    /// Send text and/or a file on this machine to a session's Telegram topic, through the
    /// running daemon and its center. Inside a fleet window the topic is that window's; elsewhere
    /// give --session, or the node's only bound session is used.
    Send {
        /// Session id (see /status in the topic); default: the window this runs in.
        #[arg(long, env = "CODEX_FLEET_SESSION")]
        session: Option<String>,
        /// A file to send.
        #[arg(long)]
        file: Option<PathBuf>,
        /// How to send the file: photo, document, video, animation or audio (default: by type).
        #[arg(long = "type", value_name = "TYPE")]
        media_type: Option<String>,
        /// State directory of the running daemon (default ~/.codex-fleet/node).
        #[arg(long, env = "AGENT_NODE_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The message (the caption, with a file).
        text: Option<String>,
    },
    /// Check that this machine can run Codex windows: tmux, the Codex command, its version and
    /// login, CODEX_HOME, the roots and the state directory. One line per check (✓/⚠/✗, with a
    /// fix); exit status 1 if any check failed. Takes the same settings as `serve`.
    Preflight {
        #[command(flatten)]
        args: Box<ServeArgs>,
        /// Also run one short `codex exec` turn with the configured model (it leaves one session
        /// in CODEX_HOME) and check that this node knows every record type of its rollout.
        #[arg(long)]
        scratch: bool,
    },
    /// Serve the node protocol: over mutual TLS once enrolled, else on a Unix socket only this
    /// user may use.
    Serve {
        #[command(flatten)]
        args: Box<ServeArgs>,
        /// Print the effective configuration and exit.
        #[arg(long)]
        dump_config: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Keys and window environments in memory stay out of reach of other processes of the user.
    shared::hardening::no_dumps();
    let cli = Cli::parse();
    let file = cli.config.as_deref().map(FileConfig::load).transpose()?;
    let log = cli
        .log
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.log.clone()))
        .unwrap_or_else(|| "info".into());
    shared::telemetry::init(&log, false);
    match cli.command {
        Command::Init {
            name,
            state_dir,
            valid_minutes,
        } => {
            let args = ServeArgs {
                state_dir,
                ..ServeArgs::default()
            };
            let config = NodeConfig::resolve(&args, file)?;
            let code = agent_node::enroll::init(
                &config.state_dir,
                &name,
                Duration::from_secs(valid_minutes.max(1) * 60),
            )?;
            println!("{code}");
            eprintln!(
                "Join code for node {name:?} (valid {valid_minutes} min). Start `agent-node serve --listen 0.0.0.0:7443`, then in Telegram send:\n  /node add {name} <this-host>:7443 <code>"
            );
            Ok(())
        }
        Command::Csr { name, state_dir } => {
            let args = ServeArgs {
                state_dir,
                ..ServeArgs::default()
            };
            let config = NodeConfig::resolve(&args, file)?;
            let dir = agent_node::enroll::tls_dir(&config.state_dir);
            std::fs::create_dir_all(&dir)?;
            let key_path = dir.join("node.key");
            let key = shared::pki::PrivateKey::load_or_generate(&key_path)?;
            print!("{}", key.csr(&shared::pki::Role::node(&name)?)?);
            eprintln!("key: {} (use it with --tls-key)", key_path.display());
            Ok(())
        }
        Command::Join {
            name,
            center,
            state_dir,
            enroll,
            code_file,
            code,
        } => {
            let code =
                agent_node::code_input::read_join_code(code.as_deref(), code_file.as_deref())?;
            let args = ServeArgs {
                state_dir,
                ..ServeArgs::default()
            };
            let config = NodeConfig::resolve(&args, file)?;
            agent_node::enroll::join(&config.state_dir, &name, &enroll, &center, &code).await?;
            println!("joined as {name}; `agent-node serve` now dials {center} over mutual TLS");
            Ok(())
        }
        Command::Send {
            session,
            file: send_file,
            media_type,
            state_dir,
            text,
        } => {
            let args = ServeArgs {
                state_dir,
                ..ServeArgs::default()
            };
            let config = NodeConfig::resolve(&args, file)?;
            let file = send_file
                .map(|f| {
                    std::path::absolute(&f).with_context(|| format!("reading {}", f.display()))
                })
                .transpose()?;
            let req = agent_node::control::SendRequest {
                session_id: session.unwrap_or_default(),
                text: text.unwrap_or_default(),
                file: file
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                media_type: media_type.unwrap_or_default(),
            };
            let answer = agent_node::control::request(&config.state_dir, &req).await?;
            if !answer.ok {
                anyhow::bail!("{}", answer.message);
            }
            println!("{}", answer.message);
            Ok(())
        }
        Command::Preflight { args, scratch } => {
            let config = NodeConfig::resolve(&args, file)?;
            let checks =
                agent_node::preflight::run(&config, agent_node::preflight::Options { scratch })
                    .await;
            print!("{}", shared::preflight::render(&checks));
            if shared::preflight::any_failed(&checks) {
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Serve { args, dump_config } => {
            let listen = args
                .listen
                .or_else(|| file.as_ref().and_then(|f| f.listen))
                .unwrap_or_else(|| ([127, 0, 0, 1], 7443).into());
            let manual = match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
                (Some(c), Some(k), Some(a)) => Some(Manual {
                    cert_pem: std::fs::read_to_string(c)
                        .with_context(|| format!("reading {}", c.display()))?,
                    key: shared::pki::PrivateKey::read_from(k)
                        .with_context(|| format!("reading {}", k.display()))?,
                    ca_pem: std::fs::read_to_string(a)
                        .with_context(|| format!("reading {}", a.display()))?,
                    connect: args.connect.clone(),
                }),
                _ => None,
            };
            let socket = args
                .socket
                .clone()
                .or_else(|| file.as_ref().and_then(|f| f.socket.clone()))
                .map(|p| shared::config::expand_tilde(&p));
            let mut allow_uids = args.allow_uids.clone();
            if allow_uids.is_empty() {
                allow_uids = file
                    .as_ref()
                    .and_then(|f| f.allow_uids.clone())
                    .unwrap_or_default();
            }
            let config = NodeConfig::resolve(&args, file)?;
            let local = Local {
                own_dir: socket.is_none(),
                socket: socket.unwrap_or_else(|| config.state_dir.join(NODE_SOCKET)),
                access: transport::LocalAccess { allow_uids },
            };
            if dump_config {
                println!(
                    "{config:#?}\nlisten: {listen}\nsocket: {}\nallow_uids: {:?}",
                    local.socket.display(),
                    local.access.allow_uids
                );
                return Ok(());
            }
            // The center may replace this executable (`center nodes upgrade`); after serving
            // stops for that, the process restarts into the new binary.
            if let Err(err) = agent_node::upgrade::enable() {
                tracing::warn!(error = %err, "cannot read this executable; upgrades from the center are off");
            }
            let served = serve(config, listen, local, manual).await;
            agent_node::upgrade::restart_if_requested();
            served
        }
    }
}

/// The socket's file name in the state directory (when `--socket` is not given).
const NODE_SOCKET: &str = "node.sock";

/// Where an unenrolled node serves, and who may attach there.
struct Local {
    socket: std::path::PathBuf,
    /// `socket` is in the state directory (made private if it is not).
    own_dir: bool,
    access: transport::LocalAccess,
}

/// TLS material given by flags (manual mode) instead of enrollment.
struct Manual {
    cert_pem: String,
    key: shared::pki::PrivateKey,
    ca_pem: String,
    connect: Option<String>,
}

async fn serve(
    config: NodeConfig,
    listen: std::net::SocketAddr,
    local: Local,
    manual: Option<Manual>,
) -> anyhow::Result<()> {
    shared::tls::install_crypto_provider();
    let token = CancellationToken::new();
    shared::shutdown::cancel_on_signal(token.clone());
    let state_dir = config.state_dir.clone();
    let node = Node::start(config, token.clone())
        .await
        .context("starting the node")?;
    shared::systemd::ready_and_watchdog(|| true);
    match node.serve_control(token.clone()) {
        Ok(path) => tracing::info!(socket = %path.display(), "control socket ready"),
        Err(err) => {
            tracing::warn!(error = %err, "no control socket; `agent-node send` will not work")
        }
    }
    if let Some(m) = manual {
        shared::pki::verify_chain(&m.cert_pem, &m.ca_pem, std::time::SystemTime::now())
            .context("the --tls-cert is not a valid fleet certificate for --tls-ca")?;
        if let Some(center) = m.connect {
            println!("agent-node dialing {center} (mutual TLS)");
            let tls = shared::tls::client_config(
                &m.cert_pem,
                &m.key,
                &m.ca_pem,
                &shared::pki::Role::Center,
            );
            transport::dial_center(node, &center, tls, token).await;
            return Ok(());
        }
        let (bound, server) =
            transport::bind_mtls(node, listen, &m.cert_pem, &m.key, &m.ca_pem, token).await?;
        announce(bound, " (mutual TLS)");
        return server.await.context("serving");
    }
    let mut addr = listen;
    loop {
        let state = TlsState::load(&state_dir).context("reading the node's TLS state")?;
        match state {
            TlsState::None => {
                // Not enrolled: no TCP at all (any local user could reach a loopback port).
                let (path, server) = transport::bind_unix(
                    node.clone(),
                    &local.socket,
                    local.own_dir,
                    local.access.clone(),
                    token.clone(),
                )
                .await?;
                println!(
                    "agent-node listening on unix:{} (this user only; not enrolled)",
                    path.display()
                );
                tracing::info!(socket = %path.display(), "serving the node protocol on a Unix socket");
                return server.await.context("serving");
            }
            TlsState::Enrolled {
                cert_pem,
                key,
                ca_pem,
            } if agent_node::enroll::center_endpoint(&state_dir).is_some() => {
                let center = agent_node::enroll::center_endpoint(&state_dir).unwrap_or_default();
                println!("agent-node dialing {center} (mutual TLS)");
                let tls = shared::tls::client_config(
                    &cert_pem,
                    &key,
                    &ca_pem,
                    &shared::pki::Role::Center,
                );
                let stop = token.child_token();
                tokio::select! {
                    () = transport::dial_center(node.clone(), &center, tls, stop.clone()) => return Ok(()),
                    () = node.certificate_changed() => stop.cancel(),
                }
                continue;
            }
            TlsState::Enrolled {
                cert_pem,
                key,
                ca_pem,
            } => {
                let stop = token.child_token();
                let (bound, server) = transport::bind_mtls(
                    node.clone(),
                    addr,
                    &cert_pem,
                    &key,
                    &ca_pem,
                    stop.clone(),
                )
                .await?;
                announce(bound, " (mutual TLS)");
                addr = bound;
                let stop_after = stop.clone();
                tokio::select! {
                    r = server => return r.context("serving"),
                    () = node.certificate_changed() => stop_after.cancel(),
                }
                // Rebind with the renewed certificate (windows and links are not affected).
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            TlsState::Enrolling(pending) => {
                let service = agent_node::enroll::EnrollService::new(pending);
                let done = service.done.clone();
                let stop = token.child_token();
                let (bound, server) =
                    transport::bind_enrollment(addr, service, stop.clone()).await?;
                announce(bound, " (waiting for enrollment)");
                addr = bound;
                let server = tokio::spawn(server);
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = done.notified() => {}
                }
                // Let the center read the reply, then serve the fleet over mutual TLS.
                tokio::time::sleep(Duration::from_millis(300)).await;
                stop.cancel();
                let _ = server.await;
            }
        }
    }
}

fn announce(addr: std::net::SocketAddr, how: &str) {
    // Tests and scripts read this line to learn the port when --listen used port 0.
    println!("agent-node listening on {addr}{how}");
    tracing::info!(%addr, "serving the node protocol{how}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_join_code_in_argv_is_parsed_only_to_be_refused() {
        use clap::Parser;
        let join = |extra: &[&str]| {
            let mut args = vec![
                "agent-node",
                "join",
                "--name",
                "n",
                "--center",
                "c:1",
                "e:2",
            ];
            args.extend_from_slice(extra);
            match super::Cli::try_parse_from(args).unwrap().command {
                super::Command::Join {
                    code, code_file, ..
                } => (code, code_file),
                other => panic!("{other:?}"),
            }
        };
        let (code, _) = join(&["cfj1.secret"]);
        assert!(agent_node::code_input::read_join_code(code.as_deref(), None).is_err());
        let (code, file) = join(&["--code-file", "/run/code"]);
        assert_eq!((code, file), (None, Some("/run/code".into())));
    }
}
