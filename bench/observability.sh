#!/usr/bin/env bash
# Issue 28: what metrics and tracing cost on the invoke path. The same loads against
#   1. BASE_GUST, a gust binary built from before issue 28 (optional; "off"),
#   2. this build with nothing configured (metrics recorded, never scraped; no export),
#   3. this build with --metrics-addr scraped once a second and every invocation's spans
#      exported over OTLP to bench/otlp_sink.py ("on"),
# one server at a time, in one run.
#   BASE_GUST=/path/to/old/gust bench/observability.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk (apt-get install wrk). The load generator runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
THREADS=${THREADS:-2}

cargo build --release -q -p gust
GUST=${CARGO_TARGET_DIR:-target}/release/gust
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
HELLO=target/functions/wasm32-wasip1/release/hello.wasm
CODE=$(base64 -w0 "$HELLO")
PORT=${PORT:-3295}
METRICS_PORT=$((PORT + 1))
SINK_PORT=$((PORT + 2))
WORK=$(mktemp -d)
cleanup() { kill "${SERVER:-}" "${SINK:-}" "${SCRAPER:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# run LABEL BINARY [serve flags...]: starts a server on a fresh data dir, loads it, stops it.
run() {
  local label=$1 bin=$2; shift 2
  local data; data=$(mktemp -d -p "$WORK")
  "$bin" serve --listen 127.0.0.1:$PORT --data-dir "$data" --no-client-config "$@" > "$data/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do grep -q "guest key" "$data/serve.log" 2>/dev/null && break; sleep 0.1; done
  local key; key=$(sed -n 's/^gust: guest key //p' "$data/serve.log")
  AUTH=$(printf '%s' "$key" | base64 -w0); export AUTH
  local api=http://127.0.0.1:$PORT/api/v1/namespaces/_/actions
  printf '{"exec":{"kind":"wasm","code":"%s"}}' "$CODE" > "$data/hello.json"
  curl -sf -u "$key" -X PUT -H 'Content-Type: application/json' \
    --data-binary @"$data/hello.json" "$api/hello?overwrite=true" > /dev/null
  curl -sf -u "$key" -X PUT -H 'Content-Type: application/json' "$api/seq3?overwrite=true" \
    -d '{"exec":{"kind":"sequence","components":["/guest/hello","/guest/hello","/guest/hello"]}}' > /dev/null
  wrk -t$THREADS -c$CONNS -d2s -s bench/invoke.lua "$api/hello?blocking=true&result=true" > /dev/null
  echo "== $label: blocking invoke of hello, $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$api/hello?blocking=true&result=true" | grep RESULT
  echo "== $label: blocking invoke of hello, 1 connection, ${DURATION}s"
  wrk -t1 -c1 -d${DURATION}s --latency -s bench/invoke.lua "$api/hello?blocking=true&result=true" | grep RESULT
  echo "== $label: blocking invoke of a 3-step sequence, 1 connection, ${DURATION}s"
  wrk -t1 -c1 -d${DURATION}s --latency -s bench/invoke.lua "$api/seq3?blocking=true&result=true" | grep RESULT
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
}

if [ -n "${BASE_GUST:-}" ]; then
  run "off (before issue 28: $BASE_GUST)" "$BASE_GUST"
fi
run "metrics recorded, no scrape, no export" "$GUST"

python3 bench/otlp_sink.py $SINK_PORT &
SINK=$!
( while sleep 1; do curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" > /dev/null || true; done ) &
SCRAPER=$!
run "on: metrics scraped each second, every span exported over OTLP" "$GUST" \
  --metrics-addr 127.0.0.1:$METRICS_PORT --otlp-endpoint http://127.0.0.1:$SINK_PORT
kill "$SCRAPER"
kill -TERM "$SINK"; wait "$SINK" 2>/dev/null || true
