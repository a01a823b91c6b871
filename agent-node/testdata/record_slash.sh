#!/usr/bin/env bash
# Records the slash-command screens in panes/slash_*.txt by driving the REAL Codex CLI in
# tmux against the fake model server (tests/src/fake_model.rs), the way record.sh does; it is
# separate so these screens can be re-recorded without touching the others.
#
#   cargo build -p e2e --bin fake-model
#   bash agent-node/testdata/record_slash.sh      # writes agent-node/testdata/panes/slash_*.txt
#   CODEX_VERSION=0.171.0 bash agent-node/testdata/record_slash.sh   # into testdata/0.171.0/panes
#
# Everything lives in a scratch HOME (the screens show it as `~`). It runs its own tmux server
# (-L slash-rec-PID) and kills only that, and only its own fake model process.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CODEX_VERSION=${CODEX_VERSION:-0.169.0}
CODEX_BIN=${CODEX_BIN:-$HOME/.cache/codex-fleet/codex-$CODEX_VERSION/node_modules/.bin/codex}
FAKE_MODEL=${FAKE_MODEL:-$REPO/target/debug/fake-model}
# The first pinned version's fixtures live at the top of this folder, later ones in a subfolder.
if [ "$CODEX_VERSION" = 0.169.0 ]; then OUT=${OUT:-$HERE}; else OUT=${OUT:-$HERE/$CODEX_VERSION}; fi
WORK=$(mktemp -d)
USER_HOME=$WORK/home
PLAIN=$USER_HOME/project   # not a git repository: /new starts over at once
GIT=$USER_HOME/repo        # a git repository: /new asks where the conversation should run
export CODEX_HOME=$USER_HOME/.codex
SOCK=slash-rec-$$
T=(tmux -L "$SOCK" -f /dev/null)

mkdir -p "$PLAIN" "$GIT" "$CODEX_HOME" "$OUT/panes"
(cd "$GIT" && git init -q && printf '# demo\n' > README.md)
"$CODEX_BIN" --version | grep -qx "codex-cli $CODEX_VERSION" || { echo "$CODEX_BIN is not codex-cli $CODEX_VERSION" >&2; exit 1; }

. "$HERE/fake_codex.sh"
start_fake_model
cleanup() {
  "${T[@]}" kill-server 2>/dev/null || true
  kill "$MODEL_PID" 2>/dev/null || true
}
trap cleanup EXIT

write_codex_config "$URL" "$GIT"

"${T[@]}" new-session -d -s rec -x 100 -y 30 -n idle -c "$PLAIN"
"${T[@]}" set -g remain-on-exit on
"${T[@]}" set -g default-terminal tmux-256color

pane() { "${T[@]}" capture-pane -p -t "rec:$1"; }
save() { pane "$1" > "$OUT/panes/$2.txt"; }
wait_for() { # WINDOW REGEX [TIMEOUT_S]
  local deadline=$((SECONDS + ${3:-20}))
  until pane "$1" | grep -Eq -- "$2"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timeout waiting for /$2/ in $1:" >&2; pane "$1" >&2; exit 1
    fi
    sleep 0.1
  done
}
wait_gone() { # WINDOW REGEX: until the pane no longer matches.
  local deadline=$((SECONDS + 20))
  while pane "$1" | grep -Eq -- "$2"; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for /$2/ to go in $1" >&2; pane "$1" >&2; exit 1; }
    sleep 0.1
  done
}
ready() {
  local screen
  screen=$(pane "$1")
  grep -q '? for shortcuts' <<< "$screen" && ! grep -q 'esc to interrupt' <<< "$screen"
}
wait_ready() {
  local deadline=$((SECONDS + ${2:-20}))
  until ready "$1"; do
    if [ $SECONDS -ge $deadline ]; then echo "timeout waiting for ready $1" >&2; pane "$1" >&2; exit 1; fi
    sleep 0.1
  done
}
type_text() {
  printf '%s' "$2" | "${T[@]}" load-buffer -b fixture - \; paste-buffer -p -d -r -b fixture -t "rec:$1"
}
enter() { sleep 0.4; "${T[@]}" send-keys -t "rec:$1" Enter; }
submit() { type_text "$1" "$2"; enter "$1"; }
# The keys the node clears the composer with (agent-node/src/ops/composer.rs), for two lines.
clear_composer() {
  "${T[@]}" send-keys -t "rec:$1" C-e C-u BSpace C-e C-u BSpace C-e C-u BSpace DC C-k DC C-k DC C-k
}
start_codex() { # WINDOW DIR
  "${T[@]}" new-window -t rec -n "$1" -c "$2" \
    -e "HOME=$USER_HOME" -e "CODEX_HOME=$CODEX_HOME" -e FAKE_OPENAI_API_KEY=fake-key "$CODEX_BIN"
}

# --- idle: /status, an unknown command, /new after a turn -------------------------------------
start_codex s "$PLAIN"
wait_ready s 30
sleep 0.5
type_text s "/status"
wait_for s '/statusline'
sleep 0.3
save s slash_status_typed            # the popup above the composer
enter s
wait_for s 'Session:'
sleep 0.3
save s slash_status_done             # taken: status card in the history, empty composer
type_text s "/frobnicate"
wait_for s '› /frobnicate'
sleep 0.3
save s slash_unknown_typed           # no popup: nothing matches
enter s
wait_for s "Unrecognized command '/frobnicate'"
sleep 0.3
save s slash_unknown_refused         # refused: the text stays in the composer
clear_composer s
wait_ready s
sleep 0.3
save s slash_unknown_cleared
submit s "echo: before new"
wait_for s '^• before new'
wait_ready s
submit s "/new"
wait_gone s 'before new'
wait_ready s
sleep 0.3
save s slash_new_done                # a fresh conversation: header and an empty composer

# --- during a turn: /new is refused (composer emptied), /frobnicate too (text stays) ----------
submit s "slow: 8"
wait_for s 'esc to interrupt'
submit s "/new"
wait_for s "'/new' is disabled while a task is in progress"
sleep 0.3
save s slash_new_busy
submit s "/frobnicate"
wait_for s "Unrecognized command '/frobnicate'"
sleep 0.3
save s slash_unknown_busy
clear_composer s

# --- a git repository: /new asks where the new conversation should run -------------------------
start_codex g "$GIT"
wait_ready g 30
submit g "echo: in a repo"
wait_for g '^• in a repo'
wait_ready g
submit g "/new"
wait_for g 'Where should the new conversation run'
sleep 0.3
save g slash_new_worktree_question

echo "recorded slash screens into $OUT/panes; scratch: $WORK"
