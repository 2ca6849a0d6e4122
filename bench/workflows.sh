#!/usr/bin/env bash
# Durable workflows (issue 25), in one run on one server, beside the blocking invoke of the
# same Wasm hello action as the baseline:
#   1. state transitions per second: EXECUTIONS executions of a chain of 100 Pass states and
#      of a chain of 10 hello Task states, each a blocking start, from CLIENTS clients at once;
#   2. what one Task step adds to a direct blocking invoke: blocking starts of a one-Task
#      workflow and blocking invokes of hello, one after another on one connection (wrk,
#      DURATION s each); then SEQUENTIAL of each of the one-Task start, the 10-Task chain's
#      start and the invoke through bench/workflows.py (Python: every answer checked);
#   3. a 100-way fan-out/fan-in: MAPS blocking starts, one after another, of a Map of 100
#      hello tasks with MaxConcurrency 0 (all at once) and 10;
#   4. the blocking invoke of hello under load (wrk, 16 connections, DURATION s): the baseline.
#   bench/workflows.sh [EXECUTIONS] [CLIENTS] [SEQUENTIAL] [MAPS] [DURATION]
# (defaults 1000 16 200 20 10)
# STORE=postgres://user@host:port/db runs the server on PostgreSQL, in a fresh schema dropped
# at the end (with a master key of the run's own); the default is the embedded SQLite store.
# Needs wrk, curl, python3 (and psql for STORE). CARGO_TARGET_DIR is honoured; BUILD=0 uses
# the binaries already built (GUST=path picks another gust binary, e.g. a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
EXECUTIONS=${1:-1000}
CLIENTS=${2:-16}
SEQUENTIAL=${3:-200}
MAPS=${4:-20}
DURATION=${5:-10}
TARGET=${CARGO_TARGET_DIR:-target}

if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release -q -p gust
  cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
    --manifest-path tests/functions/Cargo.toml --bin hello
fi
GUST=${GUST:-$TARGET/release/gust}
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

DATA=$(mktemp -d)
PORT=${PORT:-3295}
SCHEMA=gust_bench_wf_$$
cleanup() {
  kill "${SERVER:-}" 2>/dev/null || true
  wait "${SERVER:-}" 2>/dev/null || true
  if [ -n "${STORE:-}" ]; then psql -q "$STORE" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

ARGS=()
if [ -n "${STORE:-}" ]; then
  psql -q "$STORE" -c "CREATE SCHEMA $SCHEMA"
  case $STORE in *\?*) SEP='&' ;; *) SEP='?' ;; esac
  ARGS=(--store "$STORE${SEP}options=-c%20search_path%3D$SCHEMA")
  GUST_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  export GUST_MASTER_KEY
fi
echo "== store: ${STORE:-embedded SQLite}; load before: $(uptime)"
$GUST serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --no-client-config "${ARGS[@]}" > "$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
[ -n "$KEY" ] || { cat "$DATA/serve.log"; exit 1; }
AUTH=$(printf '%s' "$KEY" | base64 -w0)
export AUTH
URL=http://127.0.0.1:$PORT
PY="python3 bench/workflows.py"

$PY setup "$URL" "$KEY" "$HELLO"
API=$URL/api/v1/namespaces/_/actions
wrk -t2 -c16 -d2s -s bench/invoke.lua "$API/hello?blocking=true&result=true" > /dev/null

echo "== baseline: blocking invoke of hello (wrk, 16 connections, ${DURATION}s)"
wrk -t2 -c16 -d${DURATION}s --latency -s bench/invoke.lua "$API/hello?blocking=true&result=true" | grep RESULT
echo "== state transitions: $EXECUTIONS executions from $CLIENTS clients, blocking starts"
$PY load "$URL" "$KEY" pass100 "$EXECUTIONS" "$CLIENTS"
$PY load "$URL" "$KEY" task10 "$EXECUTIONS" "$CLIENTS"
echo "== one Task step against a direct invoke: one after another, 1 connection, ${DURATION}s each"
echo "blocking invoke of hello:"
BODY='{"name":"bench"}' CHECK='"greeting":"Hello, bench!"' wrk -t1 -c1 -d${DURATION}s --latency \
  -s bench/workflows.lua "$API/hello?blocking=true&result=true" | grep RESULT
echo "blocking start of a one-Task workflow (hello):"
BODY='{"input":{"name":"bench"}}' CHECK='"status":"SUCCEEDED"' wrk -t1 -c1 -d${DURATION}s --latency \
  -s bench/workflows.lua "$URL/api/v1/namespaces/_/workflows/task1/executions?blocking=true" | grep RESULT
$PY seq "$URL" "$KEY" task1 "$SEQUENTIAL"
$PY seq "$URL" "$KEY" task10 "$SEQUENTIAL"
$PY seq "$URL" "$KEY" invoke "$SEQUENTIAL"
echo "== fan-out/fan-in: Map of 100 hello tasks, $MAPS executions one after another"
$PY seq "$URL" "$KEY" map100 "$MAPS"
$PY seq "$URL" "$KEY" map100c10 "$MAPS"
echo "== baseline again: blocking invoke of hello (wrk, 16 connections, ${DURATION}s)"
wrk -t2 -c16 -d${DURATION}s --latency -s bench/invoke.lua "$API/hello?blocking=true&result=true" | grep RESULT
echo "== load after: $(uptime)"
