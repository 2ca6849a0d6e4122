#!/usr/bin/env bash
# Issue 4: Node.js and Python actions in sandboxed processes.
#   bench/processes.sh [DURATION_SECONDS] [CONNECTIONS] [COLD_SAMPLES]
# Measures, in one run on one machine:
#   - cold start to first result (blocking invoke of a new action, sandbox included), without
#     and with a prewarmed stem cell, for Node.js and Python (median and p90 of the client's
#     time, and the record's initTime);
#   - the bare baseline for those: Gust's launcher run by the same interpreter without
#     sandbox, server or HTTP, exec to first answer;
#   - warm blocking invoke throughput of Node.js and Python hello over HTTP (and Node.js with
#     limits.concurrency 16), against a bare hyper hello world as the ceiling;
#   - idle instances per GiB (memory charged to their cgroups).
# Needs root (the sandbox), wrk, node and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
SAMPLES=${3:-20}
THREADS=${THREADS:-2}

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p gust -p gust-gateway --examples --bins
GUST=$PWD/target/release/gust
DATA=$(mktemp -d)
PORT=${PORT:-3281}
BASE_PORT=$((PORT + 1))
cleanup() { kill "${SERVER:-}" "${BASE:-}" 2>/dev/null || true; sleep 0.5; rm -rf "$DATA"; }
trap cleanup EXIT

start() { # start STEM_CELLS: a server on $PORT with a new data dir
  kill "${SERVER:-}" 2>/dev/null || true
  sleep 0.5
  rm -rf "$DATA/d"
  "$GUST" serve --listen 127.0.0.1:$PORT --data-dir "$DATA/d" --no-client-config \
    --stem-cells "$1" --max-instances 64 ${SERVE_ARGS:-} > "$DATA/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
  KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
  AUTH=$(printf '%s' "$KEY" | base64 -w0)
  export KEY AUTH
}

echo "== bare baseline: the launcher without sandbox or server, exec to first answer ($SAMPLES each)"
python3 bench/processes_cold.py bare "$SAMPLES"
echo "== cold start, no stem cells ($SAMPLES new actions per kind)"
start 0
python3 bench/processes_cold.py "http://127.0.0.1:$PORT" "$KEY" "$SAMPLES" 0
echo "== cold start from a stem cell ($SAMPLES new actions per kind)"
start 1
python3 bench/processes_cold.py "http://127.0.0.1:$PORT" "$KEY" "$SAMPLES" 1

API=http://127.0.0.1:$PORT/api/v1/namespaces/_/actions
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/nodehello?overwrite=true" \
  -d '{"exec":{"kind":"nodejs:default","code":"function main(p) { return { greeting: \"Hello \" + (p.name || \"world\") }; }"}}' > /dev/null
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/pyhello?overwrite=true" \
  -d '{"exec":{"kind":"python:default","code":"def main(a):\n    return {\"greeting\": \"Hello \" + a.get(\"name\", \"world\")}\n"}}' > /dev/null
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/nodeconc?overwrite=true" \
  -d '{"exec":{"kind":"nodejs:default","code":"function main(p) { return { greeting: \"Hello \" + (p.name || \"world\") }; }"},"limits":{"concurrency":16}}' > /dev/null
target/release/examples/hyper_hello 127.0.0.1:$BASE_PORT > /dev/null &
BASE=$!
sleep 0.3
echo "== bare hyper hello world (ceiling), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "http://127.0.0.1:$BASE_PORT/" | grep -E 'RESULT'
for a in nodehello nodeconc pyhello; do
  wrk -t$THREADS -c$CONNS -d2s -s bench/invoke.lua "$API/$a?blocking=true&result=true" > /dev/null
  echo "== gust warm blocking invoke ($a, result=true), $CONNS connections, ${DURATION}s"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$API/$a?blocking=true&result=true" | grep -E 'RESULT'
done
echo "== idle instances per GiB (memory charged to each instance's cgroup)"
python3 - "$SERVER" <<'PY'
import glob, os, sys
pid = sys.argv[1]
for family in ("memory",):
    groups = glob.glob(f"/sys/fs/cgroup/{family}/gust/srv-{pid}/i*") or glob.glob(f"/sys/fs/cgroup/gust/srv-{pid}/i*")
    used = []
    for g in groups:
        for f in ("memory.usage_in_bytes", "memory.current"):
            p = os.path.join(g, f)
            if os.path.exists(p):
                used.append(int(open(p).read()))
    if used:
        avg = sum(used) / len(used)
        print(f"RESULT instances={len(used)} avg_MiB={avg / 2**20:.1f} per_GiB={2**30 / avg:.0f}")
PY
