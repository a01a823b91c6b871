#!/usr/bin/env bash
# Records text pasted while a turn runs, then covered by an approval question that comes up
# before Enter: panes/leftover_under_question.txt (the question; the text is not drawn) and
# panes/leftover_after_denied.txt (after `3`, "No, and tell Codex what to do differently": the
# question is gone and the text is back in the composer). In 0.171.0/panes with
# OUT=0.171.0/panes.
#
#   cargo build -p e2e --bin fake-model
#   CODEX_BIN=... OUT=0.171.0/panes bash agent-node/testdata/record_leftover.sh
# It runs its own tmux server (-L leftover-rec-PID) and kills only that, and only its own fake
# model process; everything else lives in a temporary folder.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CODEX_BIN=${CODEX_BIN:-$HOME/.cache/codex-fleet/codex-0.169.0/node_modules/.bin/codex}
FAKE_MODEL=${FAKE_MODEL:-$REPO/target/debug/fake-model}
OUT=$HERE/${OUT:-panes}
WORK=$(mktemp -d)
PROJECT=$WORK/project
export CODEX_HOME=$WORK/codex-home
SOCK=leftover-rec-$$
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
wait_for() {
  local deadline=$((SECONDS + 30))
  until pane | grep -q "$1"; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for $1" >&2; pane >&2; exit 1; }
    sleep 0.05
  done
}
paste() {
  printf '%s' "$1" | "${T[@]}" load-buffer -b p -
  "${T[@]}" paste-buffer -p -d -r -b p -t m
}
wait_for '? for shortcuts'
sleep 1
paste 'approve: touch never.txt'
sleep 0.3
"${T[@]}" send-keys -t m Enter
# Typed while the model answers, before the question is drawn.
wait_for 'esc to interrupt'
paste 'echo: typed while the question came up'
wait_for 'Would you like to run'
sleep 0.5
pane > "$OUT/leftover_under_question.txt"
"${T[@]}" send-keys -t m 3
wait_for 'Conversation interrupted'
sleep 1
pane > "$OUT/leftover_after_denied.txt"
grep -q 'typed while the question came up' "$OUT/leftover_after_denied.txt" \
  || { echo "the typed text is not in the composer" >&2; exit 1; }
echo "recorded leftover_*.txt in $OUT with $("$CODEX_BIN" --version)"
