#!/usr/bin/env bash
# Embedded against clustered, in one run: blocking and non-blocking invokes of the Rust hello
# function through `gust serve` (SQLite, in-process bus), then through one `gust controller`
# and one `gust invoker` (separate processes) on PostgreSQL and NATS JetStream, with a bare
# hyper hello world as the ceiling.
#   bench/cluster.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk, psql, PostgreSQL at $PG (trust auth) and NATS with JetStream at $NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
CONNS=${2:-16}
THREADS=${THREADS:-2}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
NATS=${NATS:-nats://127.0.0.1:4222}

cargo build --release -q -p gust -p gust-gateway --examples --bins
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
GUST=target/release/gust
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

DATA=$(mktemp -d)
PORT=${PORT:-3391}
SCHEMA=gust_bench_$$
CLUSTER=bench_$$
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done; cat "$1"; exit 1; }

# CPU time (ms) used so far by every process of a role: gust processes by pid, the brokers
# by name.
cpu_ms() {
  local pids
  case $1 in
    nats) pids=$(pgrep -x nats-server || true) ;;
    postgres) pids=$(pgrep -x postgres || true) ;;
    *) pids=$1 ;;
  esac
  local total=0
  for p in $pids; do
    [ -r /proc/$p/stat ] || continue
    total=$((total + $(awk '{print $14 + $15}' /proc/$p/stat)))
  done
  echo $((total * 1000 / $(getconf CLK_TCK)))
}

# run_line LABEL URL: one wrk line, then the CPU each role spent per request during it
# (ROLES: "name=pid-or-broker ...").
run_line() {
  local label=$1 url=$2 before=() after=() out
  for r in $ROLES; do before+=("$(cpu_ms "${r#*=}")"); done
  out=$(wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$url" | grep RESULT)
  for r in $ROLES; do after+=("$(cpu_ms "${r#*=}")"); done
  echo "== $label"
  echo "$out"
  local rps i=0 line="CPU per request (us):"
  rps=$(sed -n 's/.*requests\/s=\([0-9]*\).*/\1/p' <<< "$out")
  for r in $ROLES; do
    line+=" ${r%%=*}=$(( (after[i] - before[i]) * 1000 / (rps * DURATION + 1) ))"
    i=$((i + 1))
  done
  echo "$line"
}

# measure NAME KEY API: warm-up, then blocking and non-blocking lines.
measure() {
  local name=$1 key=$2 api=$3
  AUTH=$(printf '%s' "$key" | base64 -w0)
  export AUTH
  printf '{"exec":{"kind":"wasm","code":"%s"}}' "$(base64 -w0 "$HELLO")" > "$DATA/hello.json"
  curl -sf -u "$key" -X PUT -H 'Content-Type: application/json' \
    --data-binary @"$DATA/hello.json" "$api/hello?overwrite=true" > /dev/null
  curl -sf -u "$key" -X POST "$api/hello?blocking=true&result=true" -d '{}' > /dev/null
  wrk -t$THREADS -c$CONNS -d2s -s bench/invoke.lua "$api/hello?blocking=true&result=true" > /dev/null
  run_line "$name: blocking invoke, $CONNS connections, ${DURATION}s" "$api/hello?blocking=true&result=true"
  run_line "$name: non-blocking invoke, $CONNS connections, ${DURATION}s" "$api/hello"
}

target/release/examples/hyper_hello 127.0.0.1:$((PORT + 9)) > /dev/null &
PIDS+=($!)
sleep 0.3
echo "== bare hyper hello world (ceiling), $CONNS connections, ${DURATION}s"
AUTH=eA== wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "http://127.0.0.1:$((PORT + 9))/" | grep RESULT

$GUST serve --listen 127.0.0.1:$PORT --data-dir "$DATA/serve" --no-client-config > "$DATA/serve.log" &
PIDS+=($!)
ROLES="serve=$!"
wait_for "$DATA/serve.log" "guest key"
measure "embedded (gust serve)" "$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")" \
  "http://127.0.0.1:$PORT/api/v1/namespaces/_/actions"
kill "${PIDS[-1]}"

psql -q "$PG" -c "CREATE SCHEMA $SCHEMA"
export GUST_STORE="$PG?options=-c%20search_path%3D$SCHEMA" GUST_BUS=$NATS GUST_CLUSTER=$CLUSTER
KEY=$($GUST admin namespace create guest)
$GUST invoker --id bench-invoker --data-dir "$DATA/invoker" > "$DATA/invoker.log" 2>&1 &
PIDS+=($!)
INVOKER=$!
wait_for "$DATA/invoker.log" "taking work"
$GUST controller --listen 127.0.0.1:$((PORT + 1)) --data-dir "$DATA/controller" > "$DATA/controller.log" 2>&1 &
PIDS+=($!)
ROLES="controller=$! invoker=$INVOKER nats=nats postgres=postgres"
wait_for "$DATA/controller.log" "invokers heard"
measure "cluster (1 controller + 1 invoker, PostgreSQL + NATS)" "$KEY" \
  "http://127.0.0.1:$((PORT + 1))/api/v1/namespaces/_/actions"
