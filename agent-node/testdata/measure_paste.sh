#!/usr/bin/env bash
# Measures how soon after a bracketed paste Codex takes Enter as "submit" rather than as part of
# the paste (a newline), with paste-burst detection ON (`tui.disable_paste_burst = false`), the
# way users run Codex. The node's floor between paste and Enter (`ops::typing`) comes from this.
#
#   cargo build -p e2e --bin fake-model
#   CODEX_BIN=.../codex-0.171.0/node_modules/.bin/codex bash agent-node/testdata/measure_paste.sh
#
# For each delay (ms; `chained` = paste and Enter in one tmux invocation) and text (a short line,
# three lines), it pastes a unique text, waits, presses Enter and checks whether the fake model
# received the text (submitted) or not (swallowed: the text is cleared with Ctrl-C). Prints one
# line per delay and text: `delay kind submitted/tries`.
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
SOCK=paste-measure-$$
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
echo "# $("$CODEX_BIN" --version)"
n=0
for delay in $DELAYS; do
  for kind in short multi; do
    ok=0
    for _ in $(seq "$TRIES"); do
      n=$((n + 1))
      tag="m${n}x"
      if [ "$kind" = short ]; then text="echo: $tag"; else text=$(printf 'echo: %s first\nsecond line\nthird line' "$tag"); fi
      printf '%s' "$text" | "${T[@]}" load-buffer -b p -
      if [ "$delay" = chained ]; then
        "${T[@]}" paste-buffer -p -d -r -b p -t m \; send-keys -t m Enter
      else
        "${T[@]}" paste-buffer -p -d -r -b p -t m
        [ "$delay" = 0 ] || sleep "$(printf '0.%03d' "$delay")"
        "${T[@]}" send-keys -t m Enter
      fi
      deadline=$((SECONDS + 3))
      got=0
      until [ $SECONDS -ge $deadline ]; do
        if grep -q "$tag" "$WORK/model.log"; then got=1; break; fi
        sleep 0.05
      done
      if [ $got = 1 ]; then
        ok=$((ok + 1))
      else
        "${T[@]}" send-keys -t m C-c
        sleep 0.3
      fi
      wait_ready
    done
    echo "$delay $kind $ok/$TRIES"
  done
done
