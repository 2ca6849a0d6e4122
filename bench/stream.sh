#!/usr/bin/env bash
# Issue 24: records per second through a stream mapping (decision 0027) into a Wasm action,
# at batch sizes 1, 100 and 1,000 (and 1 with a parallelization factor of 10, the records
# spread over 16 subjects), beside JetStream's own rate in the same run: the same
# records read by the same reader with no function (crates/source-nats/examples/stream_rate).
#   bench/stream.sh [NATS_URL]
# One `gust serve` (release build); records counted from the mapping's checkpoint moving off
# its first batch until it reaches the last record (GET .../mappings/{rule}, polled every
# 50 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
NATS=${1:-nats://127.0.0.1:4222}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p gust
cargo build --release -q -p gust-source-nats --example stream_rate
GUST=$TARGET/release/gust
RATE=$TARGET/release/examples/stream_rate
cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
  --manifest-path tests/functions/Cargo.toml --bin hello
CODE=$(base64 -w0 target/functions/wasm32-wasip1/release/hello.wasm)
PORT=${PORT:-3299}
WORK=$(mktemp -d)
STREAMS=()
cleanup() {
  kill "${SERVER:-}" 2>/dev/null || true
  for s in "${STREAMS[@]}"; do "$RATE" delete "$NATS" "$s" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

"$GUST" serve --listen 127.0.0.1:$PORT --data-dir "$WORK" --no-client-config > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "guest key" "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$WORK/serve.log")
API=http://127.0.0.1:$PORT/api/v1/namespaces
printf '{"exec":{"kind":"wasm","code":"%s"}}' "$CODE" > "$WORK/hello.json"
curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' \
  --data-binary @"$WORK/hello.json" "$API/_/actions/hello?overwrite=true" > /dev/null

# checkpoint RULE: the mapping's checkpoint (0 before it has one).
checkpoint() {
  curl -s -u "$KEY" "$API/_/mappings/$1" |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("checkpoint", "0")))' 2>/dev/null || echo 0
}

for RUN in 1:1 100:1 1000:1 1:10; do
  BATCH=${RUN%:*}; PAR=${RUN#*:}
  if [ "$BATCH" = 1 ]; then N=${N_SMALL:-10000}; else N=${N_LARGE:-300000}; fi
  STREAM=GUSTBENCH${BATCH}p${PAR}x$$
  STREAMS+=("$STREAM")
  echo "== batch size $BATCH, parallelization factor $PAR, $N records"
  "$RATE" publish "$NATS" "$STREAM" "$N"
  echo -n "JetStream alone: "; "$RATE" read "$NATS" "$STREAM"
  T=t${BATCH}p$PAR
  curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/_/triggers/$T" \
    -d "{\"annotations\":[{\"key\":\"feed\",\"value\":\"/whisk.system/nats/stream\"}]}" > /dev/null
  curl -sf -u "$KEY" -X POST -H 'Content-Type: application/json' \
    "$API/whisk.system/actions/nats/stream?blocking=true" \
    -d "{\"lifecycleEvent\":\"CREATE\",\"triggerName\":\"/_/$T\",\"authKey\":\"$KEY\",\"url\":\"$NATS\",\"stream\":\"$STREAM\",\"startingPosition\":\"oldest\",\"batchSize\":$BATCH,\"parallelizationFactor\":$PAR}" > /dev/null
  curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' "$API/_/rules/r$T" \
    -d "{\"trigger\":\"/_/$T\",\"action\":\"/_/hello\"}" > /dev/null
  # From the first stored checkpoint (the first batch done) to the last record.
  FIRST=0
  while [ "$FIRST" = 0 ]; do sleep 0.05; FIRST=$(checkpoint "r$T"); done
  START=$(date +%s.%N)
  AT=$FIRST
  while [ "$AT" -lt "$N" ]; do sleep 0.05; AT=$(checkpoint "r$T"); done
  END=$(date +%s.%N)
  python3 -c "n=$N-$FIRST; s=$END-$START; print(f'mapping into hello: {n} records in {s:.2f} s: {n/s:.0f}/s')"
  # The rule off, so the next round has the machine to itself.
  curl -sf -u "$KEY" -X DELETE "$API/_/rules/r$T" > /dev/null
done
