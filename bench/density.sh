#!/usr/bin/env bash
# Issue 22: density and cold starts.
#   bench/density.sh [DURATION_SECONDS] [CONNECTIONS] [COLD_SAMPLES]
# Measures, in one run on one machine (one `gust serve` release build per part):
#   - blocking invokes spread at random over N distinct actions, beside the same load on one
#     action: Wasm hello (N = 1,000 and 10,000), Node.js and Python hello (N = 100 and 1,000),
#     each action its own copy of the code (so Wasm compiles and caches each);
#   - cold starts without a stem cell: Node.js, Python (forked from the zygote, and with
#     --no-zygotes), native; and the bare launchers (no sandbox, server or HTTP);
#   - idle instances per GiB (memory charged to their cgroups) after the 1,000-action runs.
# Needs root (the sandbox), wrk, node and python3. CASES limits the parts: wasm, node,
# python, cold (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
SAMPLES=${3:-20}
THREADS=${THREADS:-2}
CASES=${CASES:-"wasm node python cold"}

[ -n "${SKIP_BUILD:-}" ] || {
  cargo build --release -q -p gust
  cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
    --manifest-path tests/functions/Cargo.toml --bin hello
}
GUST=${GUST:-$PWD/target/release/gust}
HELLO=${HELLO:-target/functions/wasm32-wasip1/release/hello.wasm}
DATA=$(mktemp -d)
PORT=${PORT:-3291}
cleanup() { kill "${SERVER:-}" 2>/dev/null || true; sleep 0.5; rm -rf "$DATA"; }
trap cleanup EXIT

start() { # start ARGS...: a server on $PORT with a new data dir
  kill "${SERVER:-}" 2>/dev/null || true
  sleep 0.5
  rm -rf "$DATA/d"
  "$GUST" serve --listen 127.0.0.1:$PORT --data-dir "$DATA/d" --no-client-config \
    --max-instances 64 "$@" > "$DATA/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
  KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
  AUTH=$(printf '%s' "$KEY" | base64 -w0)
  export KEY AUTH
}
API() { echo "http://127.0.0.1:$PORT/api/v1/namespaces/_/actions"; }

# many KIND N: creates N actions d0..d(N-1) of KIND (each with its own code), then measures
# one action, then all N at random (a warm-up pass first: every action once).
many() {
  local kind=$1 n=$2
  python3 bench/density.py create "http://127.0.0.1:$PORT" "$KEY" "$kind" "$n" "$HELLO"
  wrk -t$THREADS -c$CONNS -d2s -s bench/density.lua "$(API)/d0?blocking=true&result=true" -- 1 > /dev/null
  echo "== $kind: 1 action, $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/density.lua "$(API)/d0?blocking=true&result=true" -- 1 | grep RESULT
  python3 bench/density.py warm "http://127.0.0.1:$PORT" "$KEY" "$n"
  echo "== $kind: $n actions at random, $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/density.lua "$(API)/d0?blocking=true&result=true" -- "$n" | grep RESULT
  python3 bench/density.py memory "$SERVER"
}

for c in $CASES; do
  case $c in
    wasm)
      start --no-process-runtimes
      many wasm 1000
      start --no-process-runtimes
      many wasm 10000
      ;;
    node|python)
      for n in 100 1000; do
        start
        many "$c" "$n"
      done
      ;;
    cold)
      echo "== bare baseline: the launcher without sandbox or server, exec to first answer ($SAMPLES each)"
      python3 bench/processes_cold.py bare "$SAMPLES"
      echo "== cold start, no stem cells, Python forked from the zygote ($SAMPLES new actions per kind)"
      start --stem-cells 0
      python3 bench/processes_cold.py "http://127.0.0.1:$PORT" "$KEY" "$SAMPLES" 0
      python3 bench/density.py native "http://127.0.0.1:$PORT" "$KEY" "$SAMPLES"
      echo "== cold start, no stem cells, --no-zygotes ($SAMPLES new actions per kind)"
      start --stem-cells 0 --no-zygotes
      python3 bench/processes_cold.py "http://127.0.0.1:$PORT" "$KEY" "$SAMPLES" 0
      ;;
  esac
done
