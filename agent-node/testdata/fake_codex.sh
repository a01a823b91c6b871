# Sourced (not run) by the recording scripts in this folder: starts the fake model server and
# writes a CODEX_HOME config that points the real Codex CLI at it, the same way for all of them.
#
# Needs WORK (a scratch folder), FAKE_MODEL (the built fake-model binary) and CODEX_HOME.

# Copies the fake model into WORK (cargo may rebuild the original meanwhile) and starts it,
# logging requests to $WORK/requests; sets MODEL_PID (the caller's cleanup kills it) and URL.
start_fake_model() {
  cp "$FAKE_MODEL" "$WORK/fake-model"
  "$WORK/fake-model" "$WORK/requests" > "$WORK/url" 2> "$WORK/model.log" &
  MODEL_PID=$!
  for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
  URL=$(head -1 "$WORK/url")
}

# write_codex_config URL [TRUSTED_FOLDER ...]: Codex on the fake model, no updates, no daemon,
# no analytics, paste-burst detection on, the given folders trusted.
write_codex_config() {
  local url=$1
  shift
  {
    cat <<CONFIG
model = "fake-model"
model_provider = "fake"
check_for_update_on_startup = false

[model_providers.fake]
name = "Fake"
base_url = "$url"
wire_api = "responses"
env_key = "FAKE_OPENAI_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[features]
daemon_auto_start = false
plugins = false

[analytics]
enabled = false

[feedback]
enabled = false

[tui]
disable_paste_burst = false
show_tooltips = false
CONFIG
    for dir in "$@"; do
      printf '\n[projects."%s"]\ntrust_level = "trusted"\n' "$dir"
    done
  } > "$CODEX_HOME/config.toml"
}
