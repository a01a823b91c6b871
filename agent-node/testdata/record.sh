#!/usr/bin/env bash
# Records the Codex CLI fixtures in this folder (rollouts/*.jsonl, panes/*.txt) by driving the
# REAL Codex CLI in tmux against the fake model server (tests/src/fake_model.rs).
#
#   cargo build -p e2e --bin fake-model
#   bash agent-node/testdata/record.sh            # 0.169.0: writes into agent-node/testdata/
#   CODEX_VERSION=0.171.0 bash agent-node/testdata/record.sh   # writes into testdata/0.171.0/
#
# The fixtures use realistic paths: the project is /home/user/project and CODEX_HOME is
# /home/user/.codex. Both are created (and wiped) by this script, which refuses to touch
# /home/user unless it made it (marker file /home/user/.fixture-recording).
# It runs its own tmux server (-L fixture-rec-PID) and kills only that, and only its own
# fake model process.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CODEX_VERSION=${CODEX_VERSION:-0.169.0}
CODEX_BIN=${CODEX_BIN:-$HOME/.cache/codex-fleet/codex-$CODEX_VERSION/node_modules/.bin/codex}
FAKE_MODEL=${FAKE_MODEL:-$REPO/target/debug/fake-model}
# The first pinned version's fixtures live at the top of this folder, later ones in a subfolder.
if [ "$CODEX_VERSION" = 0.169.0 ]; then OUT=${OUT:-$HERE}; else OUT=${OUT:-$HERE/$CODEX_VERSION}; fi
USER_HOME=/home/user
PROJECT=$USER_HOME/project
OTHER=$USER_HOME/other
export CODEX_HOME=$USER_HOME/.codex
SOCK=fixture-rec-$$
T=(tmux -L "$SOCK")
WORK=$(mktemp -d)

if [ -e "$USER_HOME" ] && [ ! -e "$USER_HOME/.fixture-recording" ]; then
  echo "$USER_HOME exists and was not made by this script; refusing to touch it" >&2
  exit 1
fi
rm -rf "$USER_HOME"
mkdir -p "$PROJECT" "$OTHER" "$CODEX_HOME"
touch "$USER_HOME/.fixture-recording"
(cd "$PROJECT" && git init -q && printf '# demo project\n' > README.md)
(cd "$OTHER" && git init -q)
"$CODEX_BIN" --version | grep -qx "codex-cli $CODEX_VERSION" || { echo "$CODEX_BIN is not codex-cli $CODEX_VERSION" >&2; exit 1; }

. "$HERE/fake_codex.sh"
start_fake_model
cleanup() {
  "${T[@]}" kill-server 2>/dev/null || true
  kill "$MODEL_PID" 2>/dev/null || true
}
trap cleanup EXIT

write_codex_config "$URL" "$PROJECT"

mkdir -p "$OUT/rollouts" "$OUT/panes"
"${T[@]}" -f /dev/null new-session -d -s rec -x 100 -y 30 -n idle -c "$PROJECT"
"${T[@]}" set -g remain-on-exit on
"${T[@]}" set -g default-terminal tmux-256color

# --- helpers ---------------------------------------------------------------------------------
pane() { "${T[@]}" capture-pane -p -t "rec:$1"; }
save() { pane "$1" > "$OUT/panes/$2.txt"; }
save_ansi() { "${T[@]}" capture-pane -p -e -t "rec:$1" > "$OUT/panes/$2.ansi.txt"; }
# wait_for WINDOW REGEX [TIMEOUT_S]: until the pane matches (grep -E).
wait_for() {
  local deadline=$((SECONDS + ${3:-20}))
  until pane "$1" | grep -Eq -- "$2"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timeout waiting for /$2/ in $1:" >&2; pane "$1" >&2; exit 1
    fi
    sleep 0.1
  done
}
# Ready = composer footer shown and no busy line; one capture, so both tests see the same screen.
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
# type_text WINDOW TEXT: bracketed paste, no Enter.
type_text() {
  printf '%s' "$2" | "${T[@]}" load-buffer -b fixture - \; paste-buffer -p -d -r -b fixture -t "rec:$1"
}
submit() { type_text "$1" "$2"; "${T[@]}" send-keys -t "rec:$1" Enter; }
requests() { grep -c 'POST' "$WORK/model.log" || true; }
wait_requests() {
  local deadline=$((SECONDS + 20))
  until [ "$(requests)" -ge "$1" ]; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for $1 requests" >&2; exit 1; }
    sleep 0.1
  done
}
start_codex() { # WINDOW DIR [ARGS...]
  local window=$1 dir=$2; shift 2
  "${T[@]}" new-window -t rec -n "$window" -c "$dir" \
    -e "HOME=$USER_HOME" -e "CODEX_HOME=$CODEX_HOME" -e FAKE_OPENAI_API_KEY=fake-key \
    "$CODEX_BIN" "$@"
}
dead() { [ "$("${T[@]}" display-message -p -t "rec:$1" '#{pane_dead}')" = 1 ]; }
wait_dead() {
  local deadline=$((SECONDS + 20))
  until dead "$1"; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for $1 to exit" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5
}
# Ctrl-C on an idle, empty composer quits Codex (remain-on-exit keeps the dead pane).
# Sometimes the first Ctrl-C only shows "ctrl + c again to quit"; then send the second.
quit_codex() {
  "${T[@]}" send-keys -t "rec:$1" C-c
  local deadline=$((SECONDS + 3))
  until dead "$1" || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
  if ! dead "$1"; then
    echo "--- $1: still alive 3 s after one Ctrl-C:" >&2
    pane "$1" | grep -v '^$' | tail -6 >&2
    "${T[@]}" send-keys -t "rec:$1" C-c
  fi
  wait_dead "$1"
}
rollouts() { find "$CODEX_HOME/sessions" -name 'rollout-*.jsonl' 2>/dev/null | sort; }
# collect NAME: copies the newest rollout (by name: local start time + uuid v7).
# turns_done: task_complete + turn_aborted records in the newest rollout (the ground truth).
# The rollout of the session under test: set by submit_first (new file) or by hand (resume).
CURRENT=
submit_first() { # WINDOW TEXT: first message of a fresh session; waits for its new rollout.
  local before
  before=$(rollouts)
  submit "$1" "$2"
  wait_new_rollout "$1" "$before"
}
wait_new_rollout() { # WINDOW BEFORE_LIST: sets CURRENT to the rollout not in BEFORE_LIST.
  local deadline=$((SECONDS + 20))
  CURRENT=
  until [ -n "$CURRENT" ]; do
    [ $SECONDS -ge $deadline ] && { echo "no rollout created for $1" >&2; exit 1; }
    sleep 0.05
    CURRENT=$(comm -13 <(printf '%s\n' "$2") <(rollouts) | head -1)
  done
}
turns_done() {
  local file=$CURRENT
  if [ -z "$file" ]; then echo 0; else grep -cE '"type":"(task_complete|turn_aborted)"' "$file" || true; fi
}
wait_turns() { # WINDOW N: until the newest rollout holds N finished turns and the TUI is ready.
  local deadline=$((SECONDS + 30))
  until [ "$(turns_done)" -ge "$2" ]; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for $2 turns in $1" >&2; pane "$1" >&2; exit 1; }
    sleep 0.1
  done
  wait_ready "$1"
}
collect() { cp "$CURRENT" "$OUT/rollouts/$1.jsonl"; }
session_id() { basename "$CURRENT" .jsonl | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'; }

# --- 1. fresh session, one echo turn; first-launch / typed / complete / exited panes ------------------
start_codex echo "$PROJECT"
wait_ready echo 30
sleep 0.5
save echo ready_first_launch # a fresh $HOME/.codex shows the logo until the first message
[ -z "$(rollouts)" ] || { echo "rollout exists before the first message" >&2; exit 1; }
type_text echo "echo: hello from the fixture"
wait_for echo 'echo: hello from the fixture'
sleep 0.3
save echo composer_typed; save_ansi echo composer_typed
[ -z "$(rollouts)" ] || { echo "rollout exists before submit" >&2; exit 1; }
"${T[@]}" send-keys -t rec:echo Enter
wait_new_rollout echo ""
wait_turns echo 1
wait_for echo 'Fake session title' # the title request finished
save echo turn_complete; save_ansi echo turn_complete
quit_codex echo
save echo exited_ctrl_c
collect echo

# --- 2. tool call + result --------------------------------------------------------------------
start_codex tool "$PROJECT"
wait_ready tool 30
sleep 0.5
save tool ready; save_ansi tool ready
submit_first tool "run: ls -a"
wait_turns tool 1
save tool tool_call_complete
quit_codex tool
collect tool_call

# --- 3. commentary + tool call + final answer -------------------------------------------------
start_codex comm "$PROJECT"
wait_ready comm 30
submit_first comm "commentary: Let me check the files first."
wait_turns comm 1
save comm commentary_complete
quit_codex comm
collect commentary

# --- 4. interrupted with Escape during slow:, then one more turn --------------------------------
start_codex intr "$PROJECT"
wait_ready intr 30
submit_first intr "slow: 30"
wait_for intr 'esc to interrupt'
sleep 2.2
save intr busy; save_ansi intr busy
"${T[@]}" send-keys -t rec:intr Escape
wait_for intr 'Conversation interrupted'
wait_turns intr 1
save intr interrupted; save_ansi intr interrupted
submit intr "echo: after the interrupt"
wait_turns intr 2
quit_codex intr
collect interrupted

# --- 5. steered: a second message typed and submitted (Enter) while the turn runs ------------
start_codex steer "$PROJECT"
wait_ready steer 30
submit_first steer "slow: 6"
wait_for steer 'esc to interrupt'
sleep 1.5
type_text steer "echo: steered while busy"
sleep 0.3
save steer busy_typed
"${T[@]}" send-keys -t rec:steer Enter
wait_turns steer 1
save steer steered_complete
quit_codex steer
collect steered

# --- 6. queued: a second message queued with Tab while the turn runs -------------------------
start_codex queue "$PROJECT"
wait_ready queue 30
submit_first queue "slow: 4"
wait_for queue 'esc to interrupt'
sleep 1
type_text queue "echo: queued with tab"
sleep 0.3
"${T[@]}" send-keys -t rec:queue Tab
wait_for queue 'Queued follow-up'
save queue busy_queued
wait_turns queue 2
save queue queued_complete
quit_codex queue
collect queued

# --- 7. approval: approved with y, then denied with Escape -----------------------------------
start_codex appr "$PROJECT"
wait_ready appr 30
submit_first appr "approve: touch approved.txt"
wait_for appr 'Press enter to confirm'
sleep 0.3
save appr approval; save_ansi appr approval
"${T[@]}" send-keys -t rec:appr y
wait_turns appr 1
save appr approval_approved
submit appr "approve: touch denied.txt"
wait_for appr 'Press enter to confirm'
"${T[@]}" send-keys -t rec:appr Escape
wait_for appr 'Conversation interrupted'
wait_turns appr 2
save appr approval_denied
quit_codex appr
collect approval

# --- 8. resumed session: one turn, quit, `codex resume <id>`, one more turn -----------------
start_codex res1 "$PROJECT"
wait_ready res1 30
submit_first res1 "echo: before resume"
wait_turns res1 1
wait_for res1 'Fake session title'
quit_codex res1
ID=$(session_id)
cp "$(rollouts | tail -1)" "$WORK/before_resume.jsonl"
start_codex res2 "$PROJECT" resume "$ID"
wait_ready res2 30
sleep 0.5
save res2 resumed_ready
cmp -s "$WORK/before_resume.jsonl" "$(rollouts | grep "$ID")" \
  || echo "NOTE: the rollout changed when the session was resumed (before any message)"
submit res2 "echo: after resume"
wait_turns res2 2
quit_codex res2
[ "$(rollouts | grep -c "$ID")" -eq 1 ] || { echo "resume did not reuse the rollout" >&2; exit 1; }
cp "$(rollouts | grep "$ID")" "$OUT/rollouts/resumed.jsonl"

# --- 9. long answer and a multi-line paste ----------------------------------------------------
start_codex long "$PROJECT"
wait_ready long 30
submit_first long "$(printf 'echo: first line\nsecond line\n\nfourth line')"
wait_turns long 1
submit long "long: 3000"
wait_turns long 2
sleep 0.5
save long long_complete
quit_codex long
collect long_and_multiline

# --- 10. /quit instead of Ctrl-C ----------------------------------------------------------------
start_codex quit "$PROJECT"
wait_ready quit 30
submit_first quit "echo: then quit"
wait_turns quit 1
# Escape twice on an idle, empty composer opens the transcript backtrack view; Escape leaves it.
"${T[@]}" send-keys -t rec:quit Escape
wait_for quit 'esc again to edit previous message'
"${T[@]}" send-keys -t rec:quit Escape
wait_for quit 'Browsing transcript'
sleep 0.3
save quit transcript_backtrack
"${T[@]}" send-keys -t rec:quit Escape
wait_ready quit
submit quit "/quit"
wait_dead quit
save quit exited_quit

# --- 10b. Ctrl-C before the first message: no rollout is ever written ------------------------
before=$(rollouts | wc -l)
start_codex empty "$PROJECT"
wait_ready empty 30
quit_codex empty
save empty exited_before_first_message
[ "$(rollouts | wc -l)" -eq "$before" ] || echo "NOTE: a session without messages left a rollout"

# --- 11. untrusted git repo: "Trust this folder?" and, after Escape, the agent command center --
start_codex trust "$OTHER"
wait_for trust 'Trust this folder' 30
sleep 0.3
save trust trust_folder; save_ansi trust trust_folder
"${T[@]}" send-keys -t rec:trust Escape
wait_for trust 'Agent command center' 20
sleep 0.5
save trust agent_command_center

# --- 12. codex exec (headless) -----------------------------------------------------------------
before=$(rollouts)
(cd "$PROJECT" && HOME=$USER_HOME FAKE_OPENAI_API_KEY=fake-key "$CODEX_BIN" exec "echo: from exec" < /dev/null \
  > "$WORK/exec.out" 2> "$WORK/exec.err")
wait_new_rollout exec "$before"
collect exec

cp "$WORK/model.log" "$WORK/requests.log"
echo "recorded into $OUT (model requests: $(requests)); scratch: $WORK"
