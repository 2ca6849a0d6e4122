#!/usr/bin/env bash
# Trigger fires: fires per second of one trigger with 1, 10 and 100 active rules to the Wasm
# hello action (each fire journals one non-blocking invocation per rule and stores the
# trigger's record), beside the blocking invoke of the same action in the same run; and the
# delay from a timer's tick to its action's start, median and p99 over TICKS ticks of an
# every-second cron.
#   bench/fire.sh [DURATION_SECONDS] [CONNECTIONS] [TICKS]
# Needs wrk (apt-get install wrk) and python3. The load generator runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
TICKS=${3:-60}
THREADS=${THREADS:-2}

cargo build --release -q -p gust
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
GUST=target/release/gust
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

DATA=$(mktemp -d)
PORT=${PORT:-3295}
cleanup() { kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
$GUST serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --no-client-config > "$DATA/serve.log" &
SERVER=$!
for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
AUTH=$(printf '%s' "$KEY" | base64 -w0)
export AUTH
NS=http://127.0.0.1:$PORT/api/v1/namespaces/_
# No throttle in the way: every rule's invocation is accepted (and runs once the invoker gets
# to it), so a fire line is followed by the time the invoker needs to run what it accepted.
$GUST admin --data-dir "$DATA" limits set guest --fires-per-minute 1000000000 \
  --invocations-per-minute 1000000000 --concurrent-invocations 1000000000 > /dev/null
sleep 1.2  # the server reads the namespace's limits again after its 1 s cache
runs() { curl -sf -u "$KEY" "$NS/activations?name=hello&count=true" | python3 -c 'import json,sys; print(json.load(sys.stdin)["activations"])'; }
put() { curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' --data-binary "$2" "$NS/$1" > /dev/null; }

printf '{"exec":{"kind":"wasm","code":"%s"}}' "$(base64 -w0 "$HELLO")" > "$DATA/hello.json"
put "actions/hello?overwrite=true" @"$DATA/hello.json"
echo "== blocking invoke (hello), $CONNS connections, ${DURATION}s"
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$NS/actions/hello?blocking=true&result=true" | grep -E 'RESULT'
for RULES in 1 10 100; do
  put "triggers/t$RULES" '{}'
  for i in $(seq $RULES); do
    put "rules/t$RULES-r$i" "{\"trigger\":\"t$RULES\",\"action\":\"hello\"}"
  done
  echo "== fire t$RULES ($RULES active rules), $CONNS connections, ${DURATION}s"
  BEFORE=$(runs); T0=$(date +%s.%N)
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/invoke.lua "$NS/triggers/t$RULES" | grep -E 'RESULT'
  # Until every accepted invocation has its record.
  LAST=-1; NOW=$(runs)
  while [ "$NOW" != "$LAST" ]; do LAST=$NOW; sleep 2; NOW=$(runs); done
  T1=$(date +%s.%N)
  python3 -c "n=$NOW-$BEFORE; t=$T1-$T0-2; print(f'RESULT actions_run={n} in {t:.1f}s: {n/t:.0f} actions/s end to end')"
done

echo "== tick to action start, every-second cron, $TICKS ticks"
put "triggers/beat" '{}'
put "rules/beat-r" '{"trigger":"beat","action":"hello"}'
curl -sf -u "$KEY" -X POST -H 'Content-Type: application/json' \
  "http://127.0.0.1:$PORT/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true" \
  -d "{\"lifecycleEvent\":\"CREATE\",\"triggerName\":\"/_/beat\",\"authKey\":\"$KEY\",\"cron\":\"* * * * * *\"}" > /dev/null
sleep $((TICKS + 3))
curl -sf -u "$KEY" "$NS/activations?name=beat&limit=200&docs=true" > "$DATA/beat.json"
curl -sf -u "$KEY" "$NS/activations?name=hello&limit=200&docs=true" > "$DATA/hello-runs.json"
python3 - "$DATA/beat.json" "$DATA/hello-runs.json" <<'PY'
import json, statistics, sys
fires = json.load(open(sys.argv[1]))
runs = {r["activationId"]: r for r in json.load(open(sys.argv[2]))}
delays = []
for f in fires:
    tick = int(f["activationId"][:12], 16)
    run = runs.get(json.loads(f["logs"][0])["activationId"])
    if run:
        delays.append(run["start"] - tick)
delays.sort()
p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
print(f"RESULT ticks={len(delays)} median_ms={statistics.median(delays)} p99_ms={p99}")
PY
