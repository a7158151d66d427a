#!/usr/bin/env bash
# The main job on the embedded default: a signaling server and two headless bot
# peers with synthetic video and audio that call each other over loopback.
#   scripts/demo.sh [SECONDS]      (default 10; Ctrl-C ends it early)
# Each bot prints a JSON stats line a second: frames and fps received, resolution,
# bitrate, RTT and capture-to-decoded latency read from the synthetic frames.
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

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

.venv/bin/signaling-server --port "$port" 2>&1 | sed -u 's/^/[server] /' &
pids+=($!)
for _ in $(seq 50); do
  .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
  sleep 0.1
done

bot=(--server "ws://127.0.0.1:$port/ws" --video synthetic --no-window --no-speaker
     --ice-host 127.0.0.1 --stats-interval 1)
.venv/bin/webcam-peer --login bob --audio synthetic:660 --once --auto-answer "${bot[@]}" 2>&1 | sed -u 's/^/[bob]   /' &
pids+=($!)
sleep 1
echo "demo: open http://127.0.0.1:$port/ in a browser to call alice or bob yourself"
.venv/bin/webcam-peer --login alice --call bob --wait --audio synthetic:440 "${bot[@]}" 2>&1 \
  | sed -u 's/^/[alice] /' &
alice=$!
pids+=($alice)
sleep "$seconds"
kill -INT "$(pgrep -f 'webcam-peer --login alice' | head -1)" 2>/dev/null || true
wait "$alice" || true
sleep 1
echo "demo: done. The browser page is served at http://127.0.0.1:$port/ while the server runs:"
echo "demo:   .venv/bin/signaling-server --port $port"
