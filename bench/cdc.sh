#!/usr/bin/env bash
# PostgreSQL change events: rows per second that reach an action through the `postgres/changes`
# feed (one fire per row change, each fire running the Wasm hello action through a rule),
# beside pgbench's own insert rate in the same run:
#   1. pgbench inserts ROWS rows (one per transaction, CLIENTS clients) into a table that no
#      publication holds: the database's insert rate without change events;
#   2. the same into the table the feed reads: pgbench's rate with the slot being read, and
#      the time until every row's action has run (change events per second end to end);
#   3. one transaction of ROWS rows (one slot advance): the same end-to-end rate.
#   bench/cdc.sh [ROWS] [CLIENTS]
# Needs PostgreSQL with wal_level = logical at PGURL (default postgres://postgres@127.0.0.1:5432/test),
# pgbench and psql (Debian's postgresql-client), curl and python3. Everything runs on one machine.
# BUILD=0 with GUST=path runs an already built binary (the script's logic with a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000}
CLIENTS=${2:-4}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
GUST=${GUST:-target/release/gust}
HELLO=target/functions/wasm32-wasip1/release/hello.wasm

for tool in pgbench psql curl python3; do
  command -v $tool > /dev/null || { echo "bench/cdc.sh needs $tool" >&2; exit 1; }
done
if [ "$(psql "$PGURL" -Atc 'show wal_level')" != logical ]; then
  echo "PostgreSQL at $PGURL needs wal_level = logical (ALTER SYSTEM SET wal_level = logical; restart)" >&2
  exit 1
fi
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release -q -p gust
  cargo build --release -q --target wasm32-wasip1 --target-dir target/functions \
    --manifest-path tests/functions/Cargo.toml --bin hello
fi

DATA=$(mktemp -d)
PORT=${PORT:-3297}
TABLE=gust_bench_cdc_$$
PLAIN=gust_bench_plain_$$
SLOT=gust_bench_$$
cleanup() {
  kill "${SERVER:-}" 2>/dev/null || true
  wait "${SERVER:-}" 2>/dev/null || true
  # The feed's DELETE drops the slot; this is for a run that stopped before it.
  psql "$PGURL" -qAtc "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$SLOT'" > /dev/null 2>&1 || true
  psql "$PGURL" -qc "drop publication if exists $SLOT; drop table if exists $TABLE; drop table if exists $PLAIN" > /dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

psql "$PGURL" -qc "create table $TABLE (id bigserial primary key, body text not null);
                   create table $PLAIN (id bigserial primary key, body text not null)"

$GUST serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --no-client-config > "$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "guest key" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/^gust: guest key //p' "$DATA/serve.log")
NS=http://127.0.0.1:$PORT/api/v1/namespaces/_
$GUST admin --data-dir "$DATA" limits set guest --fires-per-minute 1000000000 \
  --invocations-per-minute 1000000000 --concurrent-invocations 1000000000 > /dev/null
sleep 1.2  # the server reads the namespace's limits again after its 1 s cache
put() { curl -sf -u "$KEY" -X PUT -H 'Content-Type: application/json' --data-binary "$2" "$NS/$1" > /dev/null; }
feed() {
  curl -sf -u "$KEY" -X POST -H 'Content-Type: application/json' \
    "http://127.0.0.1:$PORT/api/v1/namespaces/whisk.system/actions/postgres/changes?blocking=true&result=true" \
    -d "{\"lifecycleEvent\":\"$1\",\"triggerName\":\"/_/cdc\",\"authKey\":\"$KEY\"$2}"
}
runs() { curl -sf -u "$KEY" "$NS/activations?name=hello&count=true" | python3 -c 'import json,sys; print(json.load(sys.stdin)["activations"])'; }
now() { date +%s.%N; }

printf '{"exec":{"kind":"wasm","code":"%s"}}' "$(base64 -w0 "$HELLO")" > "$DATA/hello.json"
put "actions/hello?overwrite=true" @"$DATA/hello.json"
put "triggers/cdc" '{"annotations":[{"key":"feed","value":"/whisk.system/postgres/changes"}]}'
feed CREATE ",\"url\":\"$PGURL\",\"tables\":[\"$TABLE\"],\"slot\":\"$SLOT\",\"operations\":[\"insert\"]" > "$DATA/create.json"
grep -q '"success"' "$DATA/create.json" || { echo "the feed's CREATE failed: $(cat "$DATA/create.json")" >&2; exit 1; }
put "rules/cdc-hello" '{"trigger":"cdc","action":"hello"}'

# pgbench: ROWS single-row transactions over CLIENTS clients into table $1; its tps line.
insert_rate() {
  echo "insert into $1 (body) values ('row ' || :client_id)" > "$DATA/insert.sql"
  pgbench -n -c "$CLIENTS" -j "$CLIENTS" -t $((ROWS / CLIENTS)) -f "$DATA/insert.sql" "$PGURL" 2> /dev/null \
    | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}
# Waits until the hello action has run $1 times (its count unchanged for about 10 s means stuck).
wait_runs() {
  local want=$1 last=-1 n stuck=0
  while :; do
    n=$(runs)
    [ "$n" -ge "$want" ] && return 0
    if [ "$n" = "$last" ]; then stuck=$((stuck + 1)); else stuck=0; fi
    [ $stuck -ge 100 ] && { echo "stuck at $n of $want action runs" >&2; return 1; }
    last=$n
    sleep 0.1
  done
}

TOTAL=$(( (ROWS / CLIENTS) * CLIENTS ))
echo "== pgbench: $TOTAL single-row inserts, $CLIENTS clients, a table no publication holds"
RATE=$(insert_rate "$PLAIN")
echo "RESULT pgbench_inserts_per_s=$RATE (no change events)"

echo "== pgbench: $TOTAL single-row inserts, $CLIENTS clients, into the table the feed reads"
BEFORE=$(runs); T0=$(now)
RATE=$(insert_rate "$TABLE")
T1=$(now)
wait_runs $((BEFORE + TOTAL))
T2=$(now)
python3 -c "n=$TOTAL; print(f'RESULT pgbench_inserts_per_s=$RATE (slot read meanwhile); change_events_per_s={n/($T2-$T0):.0f} end to end ({n} actions run, the last {$T2-$T1:.1f}s after pgbench ended)')"

echo "== one transaction of $ROWS rows into the table the feed reads"
BEFORE=$(runs); T0=$(now)
psql "$PGURL" -qc "insert into $TABLE (body) select 'row ' || n from generate_series(1, $ROWS) n"
T1=$(now)
wait_runs $((BEFORE + ROWS))
T2=$(now)
python3 -c "n=$ROWS; print(f'RESULT one_transaction_commit_s={$T1-$T0:.2f}; change_events_per_s={n/($T2-$T0):.0f} end to end ({n} actions run)')"

feed DELETE "" > /dev/null
LEFT=$(psql "$PGURL" -Atc "select count(*) from pg_replication_slots where slot_name = '$SLOT'")
echo "RESULT slot_dropped_by_delete=$([ "$LEFT" = 0 ] && echo yes || echo no)"
