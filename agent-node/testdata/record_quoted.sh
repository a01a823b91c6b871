#!/usr/bin/env bash
# Records answers that quote Codex's own screens (a question with numbered choices, a status
# line): panes/answer_quotes_prompt[_VERSION].txt. The screen classifier must call them Ready.
#
#   cargo build -p e2e --bin fake-model
#   CODEX_BIN=... SUFFIX=_0171 bash agent-node/testdata/record_quoted.sh
# It runs its own tmux server (-L paste-measure-PID) and kills only that, and only its own fake
# model process; everything else lives in a temporary folder.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CODEX_BIN=${CODEX_BIN:-$HOME/.cache/codex-fleet/codex-0.169.0/node_modules/.bin/codex}
FAKE_MODEL=${FAKE_MODEL:-$REPO/target/debug/fake-model}
DELAYS=${DELAYS:-"chained 0 5 10 20 40 80"}
TRIES=${TRIES:-6}
WORK=$(mktemp -d)
PROJECT=$WORK/project
export CODEX_HOME=$WORK/codex-home
SOCK=quoted-rec-$$
T=(tmux -L "$SOCK" -f /dev/null)
mkdir -p "$PROJECT" "$CODEX_HOME"

. "$HERE/fake_codex.sh"
start_fake_model
cleanup() {
  "${T[@]}" kill-server 2>/dev/null || true
  kill "$MODEL_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

write_codex_config "$URL" "$PROJECT"

"${T[@]}" new-session -d -s m -x 100 -y 30 -c "$PROJECT" \
  -e "CODEX_HOME=$CODEX_HOME" -e FAKE_OPENAI_API_KEY=fake-key "$CODEX_BIN"
pane() { "${T[@]}" capture-pane -p -t m; }
ready() {
  local screen
  screen=$(pane)
  grep -q '? for shortcuts' <<< "$screen" && ! grep -q 'esc to interrupt' <<< "$screen"
}
wait_ready() {
  local deadline=$((SECONDS + 30))
  until ready; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for ready" >&2; pane >&2; exit 1; }
    sleep 0.05
  done
}
wait_ready
QUOTE='echo: Codex will ask:

  Would you like to run the following command?

  $ rm -rf build

1. Yes, proceed (y)
2. No, and tell Codex what to do differently (esc)

Press enter to confirm or esc to cancel

and while it works it shows • Working (2s • esc to interrupt)'
printf '%s' "$QUOTE" | "${T[@]}" load-buffer -b p -
"${T[@]}" paste-buffer -p -d -r -b p -t m
sleep 0.3
"${T[@]}" send-keys -t m Enter
deadline=$((SECONDS + 20))
until pane | grep -q 'Worked for'; do
  [ $SECONDS -ge $deadline ] && { echo "no answer" >&2; pane >&2; exit 1; }
  sleep 0.1
done
# Not wait_ready: the quoted status line is exactly what a naive "esc to interrupt" check sees.
sleep 1
pane > "$HERE/panes/answer_quotes_prompt${SUFFIX:-}.txt"
echo "recorded answer_quotes_prompt${SUFFIX:-}.txt with $("$CODEX_BIN" --version)"
