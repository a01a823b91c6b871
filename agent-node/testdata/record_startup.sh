#!/usr/bin/env bash
# Records what a fresh Codex TUI shows when text is pasted into its first composer, before Codex
# has drawn the footer under it: panes/startup_typed_loading.txt (header still says `loading`) and
# panes/startup_typed.txt (header shows the folder). Pane 160x48 like the node's windows. Checks
# that Enter on that footerless composer submits the text (the answer shows).
#
#   cargo build -p e2e --bin fake-model
#   bash agent-node/testdata/record_startup.sh                        # 0.169.0 → panes/
#   CODEX_VERSION=0.171.0 bash agent-node/testdata/record_startup.sh  # → 0.171.0/panes/
#
# Everything lives in a scratch HOME (shown as `~`). It runs its own tmux server
# (-L startup-rec-PID) and kills only that, and only its own fake model process.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CODEX_VERSION=${CODEX_VERSION:-0.169.0}
CODEX_BIN=${CODEX_BIN:-$HOME/.cache/codex-fleet/codex-$CODEX_VERSION/node_modules/.bin/codex}
FAKE_MODEL=${FAKE_MODEL:-$REPO/target/debug/fake-model}
if [ "$CODEX_VERSION" = 0.169.0 ]; then OUT=${OUT:-$HERE}; else OUT=${OUT:-$HERE/$CODEX_VERSION}; fi
WORK=$(mktemp -d)
USER_HOME=$WORK/home
export CODEX_HOME=$USER_HOME/.codex
SOCK=startup-rec-$$
T=(tmux -L "$SOCK" -f /dev/null)
mkdir -p "$USER_HOME/p" "$CODEX_HOME" "$OUT/panes"
"$CODEX_BIN" --version | grep -qx "codex-cli $CODEX_VERSION" || { echo "$CODEX_BIN is not codex-cli $CODEX_VERSION" >&2; exit 1; }

. "$HERE/fake_codex.sh"
start_fake_model
cleanup() {
  "${T[@]}" kill-server 2>/dev/null || true
  kill "$MODEL_PID" 2>/dev/null || true
}
trap cleanup EXIT
write_codex_config "$URL" "$USER_HOME/p"

"${T[@]}" new-session -d -s rec -x 160 -y 48 -c "$USER_HOME/p" \
  -e "HOME=$USER_HOME" -e "CODEX_HOME=$CODEX_HOME" -e FAKE_OPENAI_API_KEY=fake-key "$CODEX_BIN"
pane() { "${T[@]}" capture-pane -p -t rec; }
deadline=$((SECONDS + 30))
until pane | grep -q 'for shortcuts'; do
  [ $SECONDS -lt $deadline ] || { echo "Codex never drew its composer" >&2; exit 1; }
  sleep 0.005
done
printf 'echo: far' | "${T[@]}" load-buffer -b rec - \; paste-buffer -p -d -r -b rec -t rec
# Every screen until the footer shows; keep the footerless ones.
loading= folder=
deadline=$((SECONDS + 10))
while [ $SECONDS -lt $deadline ]; do
  s=$(pane)
  if grep -q '› echo: far' <<< "$s"; then
    grep -q 'fake-model default' <<< "$s" && break
    if grep -q 'loading' <<< "$s"; then
      [ -n "$loading" ] || { loading=1; printf '%s\n' "$s" > "$OUT/panes/startup_typed_loading.txt"; }
    else
      [ -n "$folder" ] || { folder=1; printf '%s\n' "$s" > "$OUT/panes/startup_typed.txt"; }
    fi
  fi
  sleep 0.002
done
[ -n "$folder" ] || { echo "no footerless composer with the folder in the header was seen; run again" >&2; exit 1; }
[ -n "$loading" ] || echo "NOTE: no footerless composer while loading was seen (kept the old file, if any)" >&2
"${T[@]}" send-keys -t rec Enter
deadline=$((SECONDS + 20))
until pane | grep -q '^• far'; do
  [ $SECONDS -lt $deadline ] || { echo "Enter did not submit the text" >&2; pane >&2; exit 1; }
  sleep 0.05
done
echo "recorded startup_typed*.txt into $OUT/panes with $("$CODEX_BIN" --version)"
