#!/usr/bin/env bash
# Load test of issue 27: blocking invoke of the Rust hello function over plain HTTP with a
# key (the baseline), over TLS (keep-alive, and a new TLS connection for every request), and
# with a scoped bearer token instead of the key; all against one `gust serve` per transport
# in the same run.
#   bench/tls.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk (apt-get install wrk, built with OpenSSL). The load generator runs on the same
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
THREADS=${THREADS:-2}

cargo build --release -q -p gust --bins
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
GUST=target/release/gust
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

PLAIN_DATA=$(mktemp -d)
TLS_DATA=$(mktemp -d)
PORT=${PORT:-3295}
TLS_PORT=$((PORT + 1))
cleanup() { kill "${PLAIN:-}" "${TLS:-}" 2>/dev/null || true; rm -rf "$PLAIN_DATA" "$TLS_DATA"; }
trap cleanup EXIT

$GUST serve --listen 127.0.0.1:$PORT --data-dir "$PLAIN_DATA" --no-client-config > "$PLAIN_DATA/serve.log" &
PLAIN=$!
$GUST serve --listen 127.0.0.1:$TLS_PORT --data-dir "$TLS_DATA" --no-client-config --tls-self-signed > "$TLS_DATA/serve.log" &
TLS=$!
for d in "$PLAIN_DATA" "$TLS_DATA"; do
  for _ in $(seq 100); do grep -q "guest key" "$d/serve.log" 2>/dev/null && break; sleep 0.1; done
done
CA="$TLS_DATA/tls/ca.pem"
CODE=$(base64 -w0 "$HELLO")

# setup HOST KEY: the hello action; prints a token that may invoke it.
setup() {
  local host=$1 key=$2 api="$1/api/v1/namespaces/_"
  printf '{"exec":{"kind":"wasm","code":"%s"}}' "$CODE" > "$PLAIN_DATA/hello.json"
  curl -sf --cacert "$CA" -u "$key" -X PUT -H 'Content-Type: application/json' \
    --data-binary @"$PLAIN_DATA/hello.json" "$api/actions/hello?overwrite=true" > /dev/null
  curl -sf --cacert "$CA" -u "$key" -X POST -H 'Content-Type: application/json' \
    -d '{"ttl":"1h","scope":["invoke:actions/hello"]}' "$api/tokens" |
    sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}

PLAIN_KEY=$(sed -n 's/^gust: guest key //p' "$PLAIN_DATA/serve.log")
TLS_KEY=$(sed -n 's/^gust: guest key //p' "$TLS_DATA/serve.log")
PLAIN_HOST=http://127.0.0.1:$PORT
TLS_HOST=https://127.0.0.1:$TLS_PORT
PLAIN_TOKEN=$(setup "$PLAIN_HOST" "$PLAIN_KEY")
TLS_TOKEN=$(setup "$TLS_HOST" "$TLS_KEY")
[ -n "$PLAIN_TOKEN" ] && [ -n "$TLS_TOKEN" ] || { echo "no token minted"; exit 1; }

# A wrk script sending this Authorization header (and Connection: close when asked).
script() {
  local authz=$1 close=${2:-}
  sed "s|^wrk.headers\[\"Authorization\"\].*|wrk.headers[\"Authorization\"] = \"$authz\"|" bench/invoke.lua > "$PLAIN_DATA/run.lua"
  [ -n "$close" ] && echo 'wrk.headers["Connection"] = "close"' >> "$PLAIN_DATA/run.lua"
  echo "$PLAIN_DATA/run.lua"
}
basic() { printf 'Basic %s' "$(printf '%s' "$1" | base64 -w0)"; }
INVOKE=/api/v1/namespaces/_/actions/hello?blocking=true\&result=true
run() { # title host script
  echo "== $1, $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s "$3" "$2$INVOKE" | grep -E 'RESULT'
}
export AUTH=unused
echo "== warm-up"
wrk -t$THREADS -c$CONNS -d2s -s "$(script "$(basic "$PLAIN_KEY")")" "$PLAIN_HOST$INVOKE" > /dev/null
wrk -t$THREADS -c$CONNS -d2s -s "$(script "$(basic "$TLS_KEY")")" "$TLS_HOST$INVOKE" > /dev/null
run "plain HTTP, key, keep-alive (baseline)" "$PLAIN_HOST" "$(script "$(basic "$PLAIN_KEY")")"
run "plain HTTP, bearer token, keep-alive" "$PLAIN_HOST" "$(script "Bearer $PLAIN_TOKEN")"
run "TLS, key, keep-alive" "$TLS_HOST" "$(script "$(basic "$TLS_KEY")")"
run "TLS, bearer token, keep-alive" "$TLS_HOST" "$(script "Bearer $TLS_TOKEN")"
run "plain HTTP, key, new connection per request" "$PLAIN_HOST" "$(script "$(basic "$PLAIN_KEY")" close)"
run "TLS, key, new TLS connection per request" "$TLS_HOST" "$(script "$(basic "$TLS_KEY")" close)"
