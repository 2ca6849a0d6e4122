#!/usr/bin/env bash
# Load test: blocking invoke of the Rust hello function over HTTP, against a bare hyper
# hello-world measured in the same run as the ceiling.
#   bench/invoke.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk (apt-get install wrk). The load generator runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
THREADS=${THREADS:-2}

cargo build --release -q -p gust -p gust-gateway --examples --bins
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
GUST=target/release/gust
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

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
AUTH=$(printf '%s' "$KEY" | base64 -w0)
export AUTH
API=http://127.0.0.1:$PORT/api/v1/namespaces/_/actions

CODE=$(base64 -w0 "$HELLO")
printf '{"exec":{"kind":"wasm","code":"%s"}}' "$CODE" > "$DATA/hello.json"
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' \
  --data-binary @"$DATA/hello.json" "$API/hello?overwrite=true" > /dev/null
curl -sf -u "$KEY" -X POST "$API/hello?blocking=true&result=true" -d '{}' ; echo

echo "== warm-up"
wrk -t$THREADS -c$CONNS -d2s -s bench/invoke.lua "$API/hello?blocking=true&result=true" > /dev/null
echo "== bare hyper hello world (ceiling), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "http://127.0.0.1:$BASE_PORT/" | grep -E 'RESULT'
echo "== gust authenticated GET /api/v1/namespaces (gateway + auth, no invoke), $CONNS connections, ${DURATION}s"
sed 's/wrk.method = "POST"/wrk.method = "GET"/; s/^wrk.body.*//' bench/invoke.lua > "$DATA/get.lua"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s "$DATA/get.lua" "http://127.0.0.1:$PORT/api/v1/namespaces" | grep -E 'RESULT'
echo "== gust blocking invoke (hello, result=true), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$API/hello?blocking=true&result=true" | grep -E 'RESULT'
echo "== gust non-blocking invoke (hello), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$API/hello" | grep -E 'RESULT'

# Issue 5: a web action answering from the same Wasm hello (a fresh instance per request), no
# API key; and the latency a 3-step sequence adds over one action (1 connection, p50).
printf '{"annotations":[{"key":"web-export","value":true}],"exec":{"kind":"wasm","code":"%s"}}' "$CODE" > "$DATA/web.json"
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' \
  --data-binary @"$DATA/web.json" "$API/webhello?overwrite=true" > /dev/null
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/seq3?overwrite=true" \
  -d '{"exec":{"kind":"sequence","components":["/guest/hello","/guest/hello","/guest/hello"]}}' > /dev/null
WEB=http://127.0.0.1:$PORT/api/v1/web/guest/default/webhello.json
curl -sf "$WEB?name=web"; echo
sed 's/wrk.method = "POST"/wrk.method = "GET"/; s/^wrk.body.*//; s/^wrk.headers.*//' bench/invoke.lua > "$DATA/web.lua"
echo "== gust web action GET (hello.json, no key), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s "$DATA/web.lua" "$WEB" | grep -E 'RESULT'
echo "== gust blocking invoke of hello, 1 connection, ${DURATION}s"
wrk -t1 -c1 -d${DURATION}s --latency -s bench/invoke.lua "$API/hello?blocking=true&result=true" | grep -E 'RESULT'
echo "== gust blocking invoke of a 3-step sequence of hello, 1 connection, ${DURATION}s"
wrk -t1 -c1 -d${DURATION}s --latency -s bench/invoke.lua "$API/seq3?blocking=true&result=true" | grep -E 'RESULT'

