//! The `center` binary: runs the Telegram bot with an embedded node (single-machine mode).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

mod preflight;

use center::{
    config::{CenterConfig, FileConfig, RunArgs},
    operator::ControlRequest,
};

/// Codex Fleet center: drive live Codex sessions from Telegram topics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see deploy/center.example.toml).
    #[arg(long, global = true, env = "CENTER_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, global = true, env = "RUST_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

// Parsed once at startup; the size of the `Run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot (the default).
    Run {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Check what the center needs before running it: the config, the Telegram token (getMe),
    /// the bot's rights and privacy mode in its chats (getChatMember), the embedded node's
    /// machine (as `agent-node preflight`) and whether the nodes accept connections. One line
    /// per check (✓/⚠/✗, with a fix); exit status 1 if any check failed.
    Preflight {
        #[command(flatten)]
        args: RunArgs,
        /// Also run one short `codex exec` turn on the embedded node (it leaves one session in
        /// CODEX_HOME) and check that every record type of its rollout is known.
        #[arg(long)]
        scratch: bool,
    },
    /// Manage the fleet's remote nodes (the same as /node and /nodes in Telegram).
    Nodes {
        /// State directory (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: NodesAction,
    },
    /// Update a center that runs from a git checkout: fetch, fast-forward (refusing a checkout
    /// with local changes or one that diverged), `cargo build --release`, then ask the running
    /// center to restart once no Codex turn runs.
    Update {
        /// Only say whether there is something new upstream.
        #[arg(long)]
        check: bool,
        /// The checkout (default: the one holding this executable).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Show the running center's bindings, nodes and send queues.
    Status {
        /// Print JSON (the default is a short summary).
        #[arg(long)]
        json: bool,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Type text into a topic's Codex session, exactly as a Telegram message would be.
    Input {
        /// The topic: chat:thread, thread id, session id or folder (default: the only one).
        #[arg(long)]
        topic: Option<String>,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The text.
        text: String,
    },
    /// Send a topic the last answers of its Codex session again, from the transcript (after
    /// an outage, or into a new topic).
    Backfill {
        /// The topic: chat:thread, thread id, session id or folder (default: the only one).
        #[arg(long)]
        topic: Option<String>,
        /// How many turns' answers (1-20).
        #[arg(long, default_value_t = 1)]
        turns: u32,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Jobs: headless Codex runs (the same as /run in Telegram).
    Job {
        #[command(subcommand)]
        action: JobAction,
    },
    /// Send text and/or a file to a topic.
    Send {
        /// The topic: chat:thread, thread id, session id or folder (default: the only one).
        #[arg(long)]
        topic: Option<String>,
        /// A file to send.
        #[arg(long)]
        file: Option<PathBuf>,
        /// How to send the file: photo, document, video, animation or audio (default: by type).
        #[arg(long = "type", value_name = "TYPE")]
        media_type: Option<String>,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The message (the caption, with a file).
        text: Option<String>,
    },
}

/// `center job …`.
#[derive(Debug, Subcommand)]
enum JobAction {
    /// Submit a job to the running center; its status and answer go to Telegram.
    Add {
        /// The node (default: `[jobs] default_node`).
        #[arg(long)]
        node: Option<String>,
        /// The folder on the node (absolute, under its roots).
        #[arg(long)]
        folder: String,
        /// The chat that gets the job's status and answer (default: the first allowed user's
        /// private chat).
        #[arg(long)]
        chat: Option<i64>,
        /// The topic in that chat.
        #[arg(long)]
        thread: Option<i32>,
        /// State directory of the running center (default ~/.codex-fleet).
        #[arg(long, env = "CODEX_FLEET_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The prompt.
        prompt: String,
    },
}

#[derive(Debug, Subcommand)]
enum NodesAction {
    /// List the nodes.
    List,
    /// Enroll a node from the join code `agent-node init` printed on it. The code is read from
    /// standard input (prompted for on a terminal) or --code-file, never from the command line,
    /// where every local user could read it.
    Add {
        /// Its name.
        name: String,
        /// `host:port` of its `agent-node serve`.
        endpoint: String,
        /// Read the join code from this file (first line) instead of standard input.
        #[arg(long)]
        code_file: Option<PathBuf>,
        /// Refused: a code here would be readable in /proc/<pid>/cmdline.
        #[arg(hide = true)]
        code: Option<String>,
    },
    /// Manual mode: sign a node's certificate request (from its own key) and print the
    /// certificate followed by the fleet CA; give both to `agent-node serve --tls-cert/--tls-ca`.
    Sign {
        /// Its name.
        name: String,
        /// The CSR file (PEM).
        csr: PathBuf,
        /// `host:port` to dial it at (omit for a node that dials in).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Revoke a node: it is never dialled again.
    Remove {
        /// Its name.
        name: String,
    },
    /// Upgrade nodes of the running center: send them an agent-node binary over their links;
    /// each checks it, replaces its executable and restarts (tmux windows keep running).
    Upgrade {
        /// A node's name, or `all` (every connected remote node, one at a time).
        target: String,
        /// The agent-node binary to send (default: the one next to this `center` executable).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("center: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn real_main() -> anyhow::Result<()> {
    // Before anything reads the token: a Codex window of the same user cannot read our memory
    // or environment.
    shared::hardening::no_dumps();
    let cli = Cli::parse();
    let file: Option<FileConfig> = cli
        .config
        .as_deref()
        .map(CenterConfig::load_file)
        .transpose()?;
    let log = cli
        .log
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.log.clone()))
        .unwrap_or_else(|| "info".into());
    shared::telemetry::init(&log, false);
    let args = match cli.command {
        Some(Command::Run { args }) => args,
        Some(Command::Preflight { args, scratch }) => return preflight(&args, file, scratch).await,
        Some(Command::Nodes { state_dir, action }) => return nodes(state_dir, action).await,
        Some(Command::Update {
            check,
            repo,
            state_dir,
        }) => {
            let dir = state_dir_or_default(state_dir)?;
            return Ok(center::update::cli(check, repo, &dir).await?);
        }
        Some(Command::Status { json, state_dir }) => {
            let answer = control(state_dir, &ControlRequest::Status).await?;
            let status = answer.status.unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            return Ok(());
        }
        Some(Command::Input {
            topic,
            state_dir,
            text,
        }) => {
            let req = ControlRequest::Input {
                topic: topic.unwrap_or_default(),
                text,
            };
            let answer = control(state_dir, &req).await?;
            println!("{}", answer.message);
            return Ok(());
        }
        Some(Command::Backfill {
            topic,
            turns,
            state_dir,
        }) => {
            let req = ControlRequest::Backfill {
                topic: topic.unwrap_or_default(),
                turns,
            };
            let answer = control(state_dir, &req).await?;
            println!("{}", answer.message);
            return Ok(());
        }
        Some(Command::Job {
            action:
                JobAction::Add {
                    node,
                    folder,
                    chat,
                    thread,
                    state_dir,
                    prompt,
                },
        }) => {
            let req = ControlRequest::JobAdd {
                node: node.unwrap_or_default(),
                folder,
                prompt,
                chat,
                thread: thread.unwrap_or(0),
            };
            let answer = control(state_dir, &req).await?;
            println!("{}", answer.message);
            return Ok(());
        }
        Some(Command::Send {
            topic,
            file,
            media_type,
            state_dir,
            text,
        }) => {
            let file = file
                .map(|f| {
                    std::path::absolute(&f).with_context(|| format!("reading {}", f.display()))
                })
                .transpose()?;
            let req = ControlRequest::Send {
                topic: topic.unwrap_or_default(),
                text: text.unwrap_or_default(),
                file: file
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                media_type: media_type.unwrap_or_default(),
            };
            let answer = control(state_dir, &req).await?;
            println!("{}", answer.message);
            return Ok(());
        }
        None => cli.run,
    };
    // Secrets come from the environment (or files it names), never from flags.
    let secrets = center::config::SecretEnv::from_process();
    let cfg = CenterConfig::resolve_with(&args, file, &secrets)?;
    let token = CancellationToken::new();
    shared::shutdown::cancel_on_signal(token.clone());
    // `center update` may ask this center to restart into the rebuilt binary.
    center::update::allow_restart(token.clone());
    let ran = center::run(cfg, token).await.context("center stopped");
    center::update::restart_if_requested();
    ran
}

/// `center preflight`: prints the checks; an error (exit status 1) if any failed.
async fn preflight(args: &RunArgs, file: Option<FileConfig>, scratch: bool) -> anyhow::Result<()> {
    let secrets = center::config::SecretEnv::from_process();
    let checks = match CenterConfig::resolve_with(args, file, &secrets) {
        Ok(cfg) => {
            shared::tls::install_crypto_provider();
            preflight::run(&cfg, scratch).await
        }
        Err(err) => vec![shared::preflight::Check::fail(
            "config",
            err.to_string(),
            "set what it names (README: Configuration)",
        )],
    };
    print!("{}", shared::preflight::render(&checks));
    let failed = checks.iter().filter(|c| c.failed()).count();
    anyhow::ensure!(failed == 0, "preflight: {failed} check(s) failed");
    Ok(())
}

fn state_dir_or_default(state_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    state_dir
        .map(|p| shared::config::expand_tilde(&p))
        .or_else(|| shared::config::home_dir().map(|h| h.join(".codex-fleet")))
        .context("HOME is not set; pass --state-dir")
}

/// Sends one request to the running center; a refusal becomes the error.
async fn control(
    state_dir: Option<PathBuf>,
    req: &ControlRequest,
) -> anyhow::Result<center::operator::ControlAnswer> {
    let dir = state_dir_or_default(state_dir)?;
    let answer = center::control::request(&dir, req).await?;
    anyhow::ensure!(answer.ok, "{}", answer.message);
    Ok(answer)
}

fn print_status(status: &serde_json::Value) {
    let empty = Vec::new();
    println!("nodes:");
    for n in status["nodes"].as_array().unwrap_or(&empty) {
        let state = if n["online"].as_bool().unwrap_or(false) {
            "online"
        } else {
            "offline"
        };
        println!(
            "  {}\t{state}\t{}",
            n["name"].as_str().unwrap_or("?"),
            n["version"].as_str().unwrap_or("")
        );
    }
    println!("bindings:");
    for b in status["bindings"].as_array().unwrap_or(&empty) {
        println!(
            "  {}:{}\t{} on {}\t{}\theld {}",
            b["chat_id"],
            b["thread_id"],
            b["session_id"].as_str().unwrap_or("?"),
            b["node"].as_str().unwrap_or("?"),
            b["cwd"].as_str().unwrap_or("?"),
            b["held_inputs"]
        );
    }
    let queued: u64 = status["queues"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|q| q["sends"].as_u64().unwrap_or(0) + q["edits"].as_u64().unwrap_or(0))
        .sum();
    println!("queued Telegram calls: {queued}");
    if let Some(open) = status["inbox_open"].as_u64() {
        println!("messages still being handled: {open}");
    }
}

/// `center nodes …`: works on the state directory; a running center picks up changes when it
/// restarts (revocations in Telegram take effect at once).
async fn nodes(state_dir: Option<PathBuf>, action: NodesAction) -> anyhow::Result<()> {
    if let NodesAction::Upgrade { target, binary } = action {
        // The running center sends the binary: it holds the links.
        let binary = binary
            .map(|b| std::path::absolute(&b).with_context(|| format!("reading {}", b.display())))
            .transpose()?;
        let req = ControlRequest::UpgradeNodes {
            target,
            binary: binary
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let answer = control(state_dir, &req).await?;
        println!("{}", answer.message);
        return Ok(());
    }
    shared::tls::install_crypto_provider();
    let state_dir = state_dir
        .map(|p| shared::config::expand_tilde(&p))
        .or_else(|| shared::config::home_dir().map(|h| h.join(".codex-fleet")))
        .context("HOME is not set; pass --state-dir")?;
    std::fs::create_dir_all(&state_dir)?;
    let store = center::store::Store::open(&state_dir.join("center.db"))?;
    match action {
        NodesAction::List => {
            for n in store.nodes()? {
                let state = if n.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{state}", n.name, n.endpoint);
            }
        }
        NodesAction::Add {
            name,
            endpoint,
            code_file,
            code,
        } => {
            let code =
                agent_node::code_input::read_join_code(code.as_deref(), code_file.as_deref())?;
            let pki = center::nodes::pki::CenterPki::load_or_create(&state_dir)?;
            pki.enroll(&store, &name, &endpoint, &code).await?;
            println!(
                "{name} enrolled; restart the center to connect to it (or use /node add in Telegram next time)."
            );
        }
        NodesAction::Sign {
            name,
            csr,
            endpoint,
        } => {
            let pki = center::nodes::pki::CenterPki::load_or_create(&state_dir)?;
            let csr = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let cert = pki.sign_renewal(&name, &csr)?;
            let serial = shared::pki::inspect(cert.as_bytes())?.serial_hex;
            store.put_node(&name, endpoint.as_deref().unwrap_or(""), &serial)?;
            print!("{cert}{}", pki.ca_pem());
        }
        NodesAction::Remove { name } => {
            anyhow::ensure!(store.revoke_node(&name)?, "there is no node {name}");
            // A running center closes the node's link at once (its certificate is refused from
            // now on either way).
            match center::control::request(
                &state_dir,
                &ControlRequest::Revoke { name: name.clone() },
            )
            .await
            {
                Ok(answer) if answer.ok => {
                    println!("{name} revoked; the running center closed its link.")
                }
                _ => println!("{name} revoked."),
            }
        }
        // Sent to the running center above.
        NodesAction::Upgrade { .. } => {}
    }
    Ok(())
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
        let add = |extra: &[&str]| {
            let mut args = vec!["center", "nodes", "add", "vps1", "10.0.0.1:7443"];
            args.extend_from_slice(extra);
            match super::Cli::try_parse_from(args).unwrap().command {
                Some(super::Command::Nodes {
                    action:
                        super::NodesAction::Add {
                            code, code_file, ..
                        },
                    ..
                }) => (code, code_file),
                other => panic!("{other:?}"),
            }
        };
        let (code, _) = add(&["cfj1.secret"]);
        let err = agent_node::code_input::read_join_code(code.as_deref(), None).unwrap_err();
        assert!(err.to_string().contains("--code-file"), "{err}");
        let (code, file) = add(&["--code-file", "/run/code"]);
        assert_eq!((code, file), (None, Some("/run/code".into())));
    }
}
