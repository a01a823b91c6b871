//! `agent-node preflight` and `center preflight` as an operator runs them: the real binaries,
//! real tmux, the pinned Codex on the fake model (a scratch `codex exec` turn whose rollout the
//! node's parser must fully know), and the strict fake Bot API for the center's token and
//! rights. Each prints one ✓/✗ line per check and exits 1 on any ✗.

use std::path::Path;

use e2e::{
    codex::{CodexHome, FAKE_API_KEY, codex_bin, codex_bin_version},
    fake_model::FakeModel,
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
    let state = tempfile::tempdir().unwrap();
    // As `agent-node serve` leaves it.
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
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
