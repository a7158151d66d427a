#!/usr/bin/env bash
# The main job on the embedded default: a signaling server and two headless bot
# peers with synthetic video and audio that call each other over loopback.
#   scripts/demo.sh [SECONDS]      (default 10; Ctrl-C ends it early)
# Each bot prints a JSON stats line a second: frames and fps received, resolution,
# bitrate, RTT and capture-to-decoded latency read from the synthetic frames; a short
# summary per side follows at the end. Exit status 0 when the call connected and both
# sides decoded video, 1 when not, 2 for bad usage. Nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/demo.sh [SECONDS]" >&2; exit 2; }
scripts/setup.sh

port=${PORT:-8080}
if .venv/bin/python - "$port" <<'PY' 2>/dev/null; then :; else port=0; fi
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()
PY
if [[ "$port" == 0 ]]; then
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi

work=$(mktemp -d)
server="" bob="" alice=""
readers=()

# Each program writes into a FIFO that a reader prefixes and keeps in $work/NAME.log, so
# $! is the program's own PID (a `program | sed` pipeline would give sed's).
prefix() {
  local line
  while IFS= read -r line; do
    printf '%s %s\n' "$1" "$line"
    printf '%s\n' "$line" >>"$2"
  done
}
spawn() {  # NAME LABEL COMMAND...: sets $spawned to the command's PID
  local name=$1 label=$2
  shift 2
  mkfifo "$work/$name.fifo"
  : >"$work/$name.log"
  # The reader ignores Ctrl-C (which the whole process group gets) so it keeps the
  # program's last lines, which the summary reads, until the program ends.
  (trap '' INT; prefix "$label" "$work/$name.log") <"$work/$name.fifo" &
  readers+=($!)
  "$@" >"$work/$name.fifo" 2>&1 &
  spawned=$!
}
running() {  # PID: still running (a child that has exited but is not yet reaped is not)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ "${stat##*) }" != Z* ]]
}
settle() {  # TIMEOUT PID...: wait up to TIMEOUT seconds for all to exit, then kill the rest
  local tenths=$(( $1 * 10 )) pid left
  shift
  while (( tenths-- > 0 )); do
    left=0
    for pid in "$@"; do running "$pid" && left=1; done
    (( left )) || break
    sleep 0.1
  done
  for pid in "$@"; do running "$pid" && kill -KILL "$pid" 2>/dev/null; done
  return 0
}
finish() {  # PID TIMEOUT: wait up to TIMEOUT seconds for it to exit, then kill it; sets $status
  settle "$2" "$1"
  status=0
  wait "$1" 2>/dev/null || status=$?
}
stop() {  # PID: SIGTERM, SIGKILL after 5 s
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  finish "$1" 5
}
cleanup() {
  trap - EXIT INT TERM
  stop "$alice"
  stop "$bob"
  stop "$server"
  alice="" bob="" server=""
  if (( ${#readers[@]} )); then wait "${readers[@]}" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
interrupted=0
trap 'interrupted=1' INT TERM

spawn server "[server]" .venv/bin/signaling-server --port "$port"
server=$spawned
for _ in $(seq 100); do
  .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
  sleep 0.1
done

bot=(--server "ws://127.0.0.1:$port/ws" --video synthetic --no-window --no-speaker
     --ice-host 127.0.0.1 --stats-interval 1)
# The callee's answering policy: a bot answers without asking (webcam-peer asks a person).
answering=(--once --auto-answer)
spawn bob "[bob]   " .venv/bin/webcam-peer --login bob --audio synthetic:660 "${answering[@]}" "${bot[@]}"
bob=$spawned
for _ in $(seq 100); do
  grep -q "waiting for calls" "$work/bob.log" && break
  running "$bob" || break
  sleep 0.1
done
echo "demo: open http://127.0.0.1:$port/ in a browser to call alice or bob yourself"
spawn alice "[alice] " .venv/bin/webcam-peer --login alice --call bob --wait --audio synthetic:440 "${bot[@]}"
alice=$spawned

# `wait` returns at once on Ctrl-C (which the bots and the server receive too).
sleep "$seconds" &
sleeper=$!
wait "$sleeper" 2>/dev/null || true
kill "$sleeper" 2>/dev/null || true
wait "$sleeper" 2>/dev/null || true

kill -INT "$alice" 2>/dev/null || true  # alice hangs up as Ctrl-C would
# After Ctrl-C the bots and the server all got it: give them their 5 s together.
(( interrupted )) && settle 5 "$alice" "$bob"
finish "$alice" 5
alice_status=$status
alice=""
finish "$bob" 5  # --once: bob quits when alice's hang-up reaches him
bob=""
stop "$server"
server=""
wait "${readers[@]}" 2>/dev/null || true
readers=()

result=0
(( alice_status == 0 || interrupted )) || { echo "demo: alice exited with status $alice_status"; result=1; }
.venv/bin/python scripts/demo_summary.py "$work/alice.log" "$work/bob.log" || result=1
exit "$result"
