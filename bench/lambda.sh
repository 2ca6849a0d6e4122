#!/usr/bin/env bash
# Issue 26: Lambda functions on Gust.
#   bench/lambda.sh [DURATION_SECONDS] [CONNECTIONS] [COLD_SAMPLES]
# Measures, in one run on one machine:
#   - warm blocking invoke of a Python and a Node.js Lambda handler through Lambda's Invoke API
#     (SigV4, signed once) and through the OpenWhisk API, beside the same function written as an
#     OpenWhisk action, and a bare hyper hello world as the ceiling;
#   - cold start (no stem cell: a Lambda instance never starts from one) of each, Lambda handler
#     beside OpenWhisk action.
# Needs root (the sandbox), wrk, node, python3 and tests/lambda/.venv (.ci/run makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
SAMPLES=${3:-20}
THREADS=${THREADS:-2}
PY=tests/lambda/.venv/bin/python

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p gust -p gust-gateway --examples --bins
GUST=$PWD/target/release/gust
DATA=$(mktemp -d)
PORT=${PORT:-3291}
BASE_PORT=$((PORT + 1))
cleanup() { kill "${SERVER:-}" "${BASE:-}" 2>/dev/null || true; sleep 0.5; rm -rf "$DATA"; }
trap cleanup EXIT

"$GUST" serve --listen 127.0.0.1:$PORT --data-dir "$DATA/d" --no-client-config \
  --stem-cells 0 --max-instances 64 ${SERVE_ARGS:-} > "$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
AUTH=$(printf '%s' "$KEY" | base64 -w0)
export AUTH
URL=http://127.0.0.1:$PORT

echo "== cold start, no stem cells ($SAMPLES new functions per kind)"
$PY bench/lambda_bench.py cold "$URL" "$KEY" "$SAMPLES"

$PY bench/lambda_bench.py setup "$URL" "$KEY"
target/release/examples/hyper_hello 127.0.0.1:$BASE_PORT > /dev/null &
BASE=$!
sleep 0.3
echo "== bare hyper hello world (ceiling), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "http://127.0.0.1:$BASE_PORT/" | grep -E 'RESULT'
API=$URL/api/v1/namespaces/_/actions
for a in ow-python lambda-python ow-nodejs lambda-nodejs; do
  wrk -t$THREADS -c$CONNS -d2s -s bench/invoke.lua "$API/$a?blocking=true&result=true" > /dev/null
  echo "== warm blocking invoke, OpenWhisk API ($a), $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$API/$a?blocking=true&result=true" | grep -E 'RESULT'
  case $a in lambda-*)
    eval "$($PY bench/lambda_bench.py sign "$URL" "$KEY" "$a")"
    export SIGV4_AUTHORIZATION SIGV4_DATE
    echo "== warm Invoke, Lambda API ($a, SigV4), $CONNS connections, ${DURATION}s"
    wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/lambda_invoke.lua "$URL/2015-03-31/functions/$a/invocations" | grep -E 'RESULT'
    ;;
  esac
done
