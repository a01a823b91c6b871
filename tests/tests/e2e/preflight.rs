//! `agent-node preflight` and `center preflight` as an operator runs them: the real binaries,
//! real tmux, the pinned Codex on the fake model (a scratch `codex exec` turn whose rollout the
//! node's parser must fully know), and the strict fake Bot API for the center's token and
//! rights. Each prints one ✓/✗ line per check and exits 1 on any ✗.

use std::path::Path;

use e2e::{
    codex::{CodexHome, FAKE_API_KEY, codex_bin, codex_bin_version},
    fake_model::FakeModel,
    fake_telegram::FakeTelegram,
    node_proc::{TmuxSandbox, workspace_bin},
};

/// What a preflight run printed and how it exited.
struct Report {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

async fn run(bin: &str, args: &[&str], env: &[(String, String)]) -> Report {
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness running the binary under test"
    )]
    let mut cmd = tokio::process::Command::new(workspace_bin(bin).unwrap());
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
        .await
        .expect("preflight finished within 240 s")
        .unwrap();
    Report {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// Logs the scratch CODEX_HOME in with an API key (the fake provider reads its own key from
/// the environment, but `codex login status` must say "logged in", as on a real machine).
async fn log_in(codex: &CodexHome) {
    use tokio::io::AsyncWriteExt;
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness preparing the Codex CLI under test"
    )]
    let mut child = tokio::process::Command::new(codex_bin().unwrap())
        .args(["login", "--with-api-key"])
        .envs(codex.env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{FAKE_API_KEY}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success(), "codex login failed");
}

fn node_args<'a>(
    state: &'a Path,
    codex_home: &'a Path,
    command: &'a str,
    root: &'a str,
    tmux: &'a str,
) -> Vec<String> {
    [
        "--state-dir",
        &state.display().to_string(),
        "--codex-home",
        &codex_home.display().to_string(),
        "--codex-command",
        command,
        "--root",
        root,
        "--tmux-socket",
        tmux,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_node_preflight_passes_on_a_good_machine_and_its_scratch_run_is_all_known() {
    let model = FakeModel::start().await.unwrap();
    let codex = CodexHome::builder(&model.base_url()).build().unwrap();
    log_in(&codex).await;
    // As `agent-node serve` leaves it.
    let state = private_tempdir();
    let root = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("preflight");
    let command = codex_bin().unwrap().display().to_string();
    let root_spec = format!("test={}", root.path().display());
    let mut args = vec!["preflight".to_owned(), "--scratch".to_owned()];
    args.extend(node_args(
        state.path(),
        codex.path(),
        &command,
        &root_spec,
        &tmux.socket,
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("agent-node", &args, &codex.env()).await;
    let version = codex_bin_version().unwrap();
    for line in [
        "✓ tmux ".to_owned(),
        format!("✓ Codex command {command}"),
        format!("✓ Codex version {version} (supported)"),
        "✓ Codex login logged in with an API key".to_owned(),
        format!("✓ CODEX_HOME {} (writable)", codex.path().display()),
        "✓ rollout records ".to_owned(),
        "✓ root test ".to_owned(),
        "✓ state dir ".to_owned(),
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&line)),
            "no line {line:?} in:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    assert!(!out.stdout.contains('✗'), "{}", out.stdout);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    // The scratch turn really went to the model, and left exactly one rollout.
    assert!(model.request_count() >= 1);
    assert_eq!(codex.rollouts().unwrap().len(), 1);
    assert!(!out.stdout.contains(FAKE_API_KEY), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_node_preflight_fails_with_a_fix_when_codex_is_missing() {
    let codex = CodexHome::builder("http://127.0.0.1:9/v1").build().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("preflight-bad");
    let mut args = vec!["preflight".to_owned()];
    args.extend(node_args(
        state.path(),
        codex.path(),
        "/nonexistent/codex --no-daemon",
        "gone=/nonexistent/root",
        &tmux.socket,
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("agent-node", &args, &codex.env()).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("✓ tmux "), "{}", out.stdout);
    let missing = out
        .stdout
        .lines()
        .find(|l| l.starts_with("✗ Codex command"))
        .unwrap_or_else(|| panic!("no ✗ Codex command line:\n{}", out.stdout));
    assert!(
        missing.contains("\"/nonexistent/codex\" not found") && missing.contains("— fix: "),
        "{missing}"
    );
    assert!(
        out.stdout
            .contains("✗ root gone /nonexistent/root does not exist — fix: "),
        "{}",
        out.stdout
    );
}

const TOKEN: &str = "123456:AAfleet-preflight-secret";

/// A center's environment for preflight against `tg`: one allowed user, `chats` allowed, the
/// embedded node on the pinned Codex (or off), and the nodes given.
fn center_env(
    tg: &FakeTelegram,
    token: &str,
    state: &Path,
    chats: &[i64],
    nodes: &str,
    embedded: Option<(&CodexHome, &str, &str)>,
) -> Vec<(String, String)> {
    let chats: Vec<String> = chats.iter().map(i64::to_string).collect();
    let mut env = vec![
        ("TELEGRAM_BOT_TOKEN", token.to_owned()),
        ("ALLOWED_USERS", "1000".to_owned()),
        ("ALLOWED_CHATS", chats.join(",")),
        ("TELEGRAM_API_URL", tg.api_url()),
        ("CODEX_FLEET_STATE_DIR", state.display().to_string()),
    ];
    if !nodes.is_empty() {
        env.push(("CODEX_FLEET_NODES", nodes.to_owned()));
    }
    match embedded {
        Some((codex, root, tmux)) => {
            env.push((
                "CODEX_FLEET_CODEX_COMMAND",
                codex_bin().unwrap().display().to_string(),
            ));
            env.push(("CODEX_FLEET_ROOTS", root.to_owned()));
            env.push(("CODEX_FLEET_TMUX_SOCKET", tmux.to_owned()));
            let mut env: Vec<(String, String)> =
                env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            env.extend(codex.env());
            env
        }
        None => {
            env.push(("CODEX_FLEET_EMBEDDED_NODE", "false".to_owned()));
            env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        }
    }
}

fn private_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    dir
}

fn has_line(out: &Report, start: &str) {
    assert!(
        out.stdout.lines().any(|l| l.starts_with(start)),
        "no line {start:?} in:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_preflight_passes_with_a_good_token_rights_node_and_embedded_node() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let allowed = tg.create_forum("Fleet");
    let owned = tg.create_forum("Added by Alice");
    let state = private_tempdir();
    // A group an allowed user added the bot to, as the running center records it.
    center::store::Store::open(&state.path().join("center.db"))
        .unwrap()
        .own_chat(owned, 1000)
        .unwrap();
    let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = node.local_addr().unwrap();
    let model = FakeModel::start().await.unwrap();
    let codex = CodexHome::builder(&model.base_url()).build().unwrap();
    log_in(&codex).await;
    let root = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("preflight-center");
    let root_spec = format!("test={}", root.path().display());
    let env = center_env(
        &tg,
        TOKEN,
        state.path(),
        &[allowed],
        &format!("vps1={node_addr}"),
        Some((&codex, &root_spec, &tmux.socket)),
    );
    let out = run("center", &["preflight"], &env).await;
    for line in [
        "✓ config ".to_owned(),
        "✓ state dir ".to_owned(),
        "✓ Telegram token valid (@codex_fleet_fake_bot, id 123456)".to_owned(),
        "✓ Telegram privacy mode on (fine: the bot is an admin".to_owned(),
        format!("✓ chat {allowed} administrator: "),
        format!("✓ chat {owned} administrator: "),
        "✓ embedded node: tmux ".to_owned(),
        "✓ embedded node: Codex login logged in".to_owned(),
        format!("✓ node vps1 {node_addr} accepts connections"),
    ] {
        has_line(&out, &line);
    }
    assert!(!out.stdout.contains('✗'), "{}", out.stdout);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(tg.calls_to("getChatMember").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_preflight_fails_on_a_refused_token_and_missing_rights_without_printing_the_token() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let forum = tg.create_forum("Fleet");
    let state = private_tempdir();
    let wrong = "123456:AAwrong-secret-never-printed";
    let env = center_env(&tg, wrong, state.path(), &[forum], "", None);
    let out = run("center", &["preflight"], &env).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    has_line(
        &out,
        "✗ Telegram token the token is refused (401) — fix: copy the token from @BotFather",
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("AAwrong-secret"), "token printed:\n{text}");
    }

    // The right token, but the bot may not manage topics there; a node that is down.
    tg.set_bot_can_manage_topics(forum, false).unwrap();
    let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let env = center_env(
        &tg,
        TOKEN,
        state.path(),
        &[forum],
        &format!("vps2={down_addr}"),
        None,
    );
    let out = run("center", &["preflight"], &env).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    has_line(&out, "✓ Telegram token valid");
    has_line(
        &out,
        &format!("✗ chat {forum} the bot cannot create or close topics — fix: "),
    );
    has_line(&out, &format!("✗ node vps2 {down_addr} is unreachable"));
    has_line(&out, "✓ embedded node off");
    assert!(!out.stdout.contains("AAfleet-preflight-secret"));
}
