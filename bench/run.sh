#!/usr/bin/env bash
# Entryway's throughput benchmark, in one command: `bash bench/run.sh`.
#
# Starts `entryway serve --workers 2` on a fresh data directory (loopback, free ports), measures the
# RSA-2048 signing ceiling with `openssl speed` (1 process, then 1 per core), then drives the
# client-credentials token endpoint and an authenticated connectionData with wrk over HTTPS with
# keep-alive. The report is printed and written to bench/results/<time>.md. Runs in about a minute; the
# server is stopped on every exit path. Not a test: see docs/benchmarks.md.
#
# Knobs (environment): BENCH_WORKERS (2), BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_DURATION (15).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WORKERS="${BENCH_WORKERS:-2}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-15}"

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "wrk is missing: install it (apt-get install wrk) and run again." >&2
    exit 2
  fi
  echo "Installing wrk..." >&2
  # Update the package lists only when the install fails without it.
  if ! apt-get install -y -qq wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/entryway" ]; then
  echo "Installing Entryway into .venv..." >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  constraints=()
  [ -f "$ROOT/constraints.txt" ] && constraints=(-c "$ROOT/constraints.txt")
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${constraints[@]}" -e "$ROOT" >&2
fi

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/entryway-bench.XXXXXX")"
SERVER_PID=""
HARNESS_PID=""

# Server and harness each lead their own process group (setsid), so one kill reaches the server's workers
# and the harness's wrk or openssl.
stop_group() {
  local leader="$1"
  if [ -z "$leader" ] || ! kill -0 "$leader" 2>/dev/null; then
    return 0
  fi
  kill -TERM -- "-$leader" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$leader" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$leader" 2>/dev/null || true
  wait "$leader" 2>/dev/null || true
}

cleanup() {
  stop_group "$HARNESS_PID"
  stop_group "$SERVER_PID"
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the server picks free ports; the harness reads them from the data directory.
setsid "$VENV/bin/entryway" serve --data-dir "$DATA_DIR" --identity-port 0 --devops-port 0 --imds-port 0 --app-service-port 0 \
  --workers "$WORKERS" >"$DATA_DIR/server.log" 2>&1 &
SERVER_PID=$!

# In the background and waited for: bash runs its traps during `wait`, not during a foreground command.
setsid "$VENV/bin/python" "$ROOT/bench/harness.py" --data-dir "$DATA_DIR" --log "$DATA_DIR/server.log" \
  --server-pid "$SERVER_PID" --workers "$WORKERS" --threads "$THREADS" --connections "$CONNECTIONS" \
  --duration "$DURATION" &
HARNESS_PID=$!
status=0
wait "$HARNESS_PID" || status=$?
HARNESS_PID=""
if [ "$status" != 0 ]; then
  echo "--- server log ---" >&2
  tail -n 40 "$DATA_DIR/server.log" >&2 || true
fi
exit "$status"
