#!/usr/bin/env bash
# Load test of what the gateway serves without an API key (issue 5): a static file of a site
# (the 28 bytes the ceiling answers, and a 1 KB page) and a wasi:http handler behind a web
# action, against a bare hyper hello world measured in the same run (before and after).
#   bench/web.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk (apt-get install wrk). The load generator runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
THREADS=${THREADS:-2}

cargo build --release -q -p gust -p gust-gateway --examples --bins
cargo build --release -q --target wasm32-wasip2 --target-dir target/functions \
  --manifest-path tests/http-handler/Cargo.toml
GUST=target/release/gust
HANDLER=target/functions/wasm32-wasip2/release/gust_test_http_handler.wasm

DATA=$(mktemp -d)
PORT=${PORT:-3291}
BASE_PORT=$((PORT + 1))
cleanup() { kill "${SERVER:-}" "${BASE:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

$GUST serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --no-client-config > "$DATA/serve.log" &
SERVER=$!
target/release/examples/hyper_hello 127.0.0.1:$BASE_PORT > /dev/null &
BASE=$!
for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
CLIENT=("$GUST" --apihost "http://127.0.0.1:$PORT" --auth "$KEY")

mkdir -p "$DATA/site"
printf '%s' '{"greeting":"Hello, World!"}' > "$DATA/site/hello.json"
head -c 1024 /dev/zero | tr '\0' 'x' > "$DATA/site/index.html"
"${CLIENT[@]}" site deploy "$DATA/site" --name bench > /dev/null
"${CLIENT[@]}" action create handler "$HANDLER" --web true > /dev/null

SITE=http://127.0.0.1:$PORT/sites/guest/bench
HANDLED=http://127.0.0.1:$PORT/api/v1/web/guest/default/handler/bench
curl -sf "$SITE/hello.json"; echo
curl -sf "$HANDLED"; echo
sed 's/wrk.method = "POST"/wrk.method = "GET"/; s/^wrk.body.*//; s/^wrk.headers.*//' bench/invoke.lua > "$DATA/get.lua"
run() {
  echo "== $1, $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s "$DATA/get.lua" "$2" | grep -E 'RESULT'
}
wrk -t$THREADS -c$CONNS -d2s -s "$DATA/get.lua" "$SITE/hello.json" > /dev/null
run "bare hyper hello world (ceiling, 28 bytes)" "http://127.0.0.1:$BASE_PORT/"
run "gust static file (28 bytes, the same body)" "$SITE/hello.json"
run "gust static file (1 KB page)" "$SITE/index.html"
run "gust wasi:http handler behind a web action (fresh instance per request)" "$HANDLED"
run "bare hyper hello world again (ceiling)" "http://127.0.0.1:$BASE_PORT/"
run "gust static file again (28 bytes)" "$SITE/hello.json"
