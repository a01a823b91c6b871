//! Runs the fake model server by hand: prints its base URL, then one line per request.
//!
//! `cargo run -p e2e --bin fake-model [DUMP_DIR]` — with `DUMP_DIR`, every request body is also
//! written there as `NNN.json`. Stop it with Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use e2e::fake_model::FakeModel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dump_dir = std::env::args_os().nth(1).map(PathBuf::from);
    if let Some(dir) = &dump_dir {
        std::fs::create_dir_all(dir)?;
    }
    let model = FakeModel::start().await?;
    println!("{}", model.base_url());
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            waited = model.wait_for_requests(seen + 1, Duration::from_secs(3600)) => {
                if waited.is_err() {
                    continue;
                }
            }
        }
        for request in model.requests().iter().skip(seen) {
            seen += 1;
            let summary = request.last_user_text().unwrap_or_default();
            let last = request.body["input"]
                .as_array()
                .and_then(|input| input.last())
                .and_then(|item| item["type"].as_str())
                .unwrap_or_default()
                .to_owned();
            let title = if request.is_title_request() {
                " (title)"
            } else {
                ""
            };
            eprintln!(
                "#{seen} {} {}{title} last={last} user={summary:?}",
                request.method, request.path
            );
            if let Some(dir) = &dump_dir {
                let pretty = serde_json::to_string_pretty(&serde_json::json!({
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                    "body": request.body,
                }))?;
                std::fs::write(dir.join(format!("{seen:03}.json")), pretty)?;
            }
        }
    }
    model.shutdown().await;
    Ok(())
}
