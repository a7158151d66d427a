#!/usr/bin/env bash
# Set up a fresh Debian machine for webcam-peer: system packages, .venv, the project.
#   scripts/setup.sh          what running calls needs (OpenCV's libraries, PortAudio for
#                             the microphone and speaker)
#   scripts/setup.sh --test   plus what the test suite needs (Chromium, Xvfb, Redis, coturn,
#                             iproute2 + iptables for the NAT tests, openssl for certificates,
#                             PulseAudio + ALSA's pulse plugin as the sound server tests' room)
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

debs=(libgl1 libglib2.0-0 libportaudio2)
if (( want_test )); then
  debs+=(chromium xvfb xdotool redis-server coturn iproute2 iptables procps openssl)
  debs+=(pulseaudio pulseaudio-utils libasound2-plugins)
  # Node.js runs the page's module tests (tests/unit/page/, `node --test`, Node >= 20.19) and the
  # tutorial's server that bench_signaling.py measures ours against; any node+npm on
  # PATH will do (e.g. NodeSource's), else Debian's.
  command -v node >/dev/null && command -v npm >/dev/null || debs+=(nodejs npm)
fi

missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  as_root=""
  [[ $(id -u) -ne 0 ]] && as_root="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi

# Reinstall only when the project's dependency list changes. `all`: the server with
# Redis and the peer (a plain `pip install webcam-peer` is the server alone).
extras="[all]"
(( want_test )) && extras="[all,dev]"
stamp=".venv/.installed$extras"
digest=$(sha256sum pyproject.toml | cut -c1-16)
# A test set-up already holds everything a plain one installs (demo.sh after setup.sh --test).
if [[ "$extras" == "[all]" && -f ".venv/.installed[all,dev]" && "$(cat ".venv/.installed[all,dev]")" == "$digest" ]]; then
  stamp=".venv/.installed[all,dev]"
fi
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$digest" ]]; then
  echo "setup: installing Python packages into .venv (first run takes a minute)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras" 2>&1 \
    | grep -v -e '^WARNING: Location' -e 'BuildBackendWarning' || true
  .venv/bin/python -c "import aiortc, aiohttp, av, cv2, numpy, sounddevice, livekit.rtc" \
    || { echo "setup: the Python packages did not install" >&2; exit 1; }
  echo "$digest" > "$stamp"
fi

# The Node server's `ws`, exactly as benchmarks/package-lock.json pins it.
if (( want_test )); then
  lock_digest=$(sha256sum benchmarks/package-lock.json | cut -c1-16)
  lock_stamp=benchmarks/node_modules/.installed
  if [[ ! -f "$lock_stamp" ]] || [[ "$(cat "$lock_stamp")" != "$lock_digest" ]]; then
    echo "setup: installing the benchmark's Node packages (npm ci --prefix benchmarks)"
    npm ci --prefix benchmarks --no-audit --no-fund --loglevel=error
    echo "$lock_digest" > "$lock_stamp"
  fi
fi
