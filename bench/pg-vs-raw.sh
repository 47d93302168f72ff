#!/usr/bin/env bash
# The PostgreSQL store next to raw PostgreSQL: every figure of PERF.md's durable-path targets,
# in one run, on one throwaway cluster (bench/scripts/pg_cluster.sh: fsync and
# synchronous_commit on, track_commit_timestamp on).
#
#   bench/pg-vs-raw.sh [DOCUMENTS] [COLD_DOCUMENTS]
#
# 1. Single-row writes: pgbench's one-row INSERT at 16 clients, then 16 Lookout writers of one
#    tuple each (`lookout-loadgen --call write -c 16`: random tuples of the docs:1000 data set,
#    whose entities are mostly known) on a fresh database, while a Watch
#    subscriber (bench/examples/watch_latency.rs) records when each revision arrives; commit →
#    Watch latency is that arrival minus PostgreSQL's commit timestamp of the revision's
#    transaction (`pg_xact_commit_timestamp`), on the machine's one clock.
# 2. Writes of 1,000 tuples: 2 and 4 writers (`--write-tuples 1000`, random documents of a
#    million, so nearly every tuple and many entities are new).
# 3. Import and export: the document data set of DOCUMENTS documents (default 300000, about
#    1.07M tuples) imported straight into PostgreSQL (`lookout import --database-uri`) and
#    exported back out (`lookout export --database-uri`).
# 4. Cold start: COLD_DOCUMENTS documents (default 2800000, about 10M tuples) imported, then a
#    replica started on them: seconds to /healthz and its RSS, next to an in-memory server
#    holding the same data (imported through the API).
#
# Binaries: LOOKOUT, LOADGEN, DATAGEN, WATCH_LATENCY (default target/release/...); build them
# with `cargo build --release -p lookout-server -p lookout-bench --bins --examples`.
# DURATION (default 10s) is each load phase's length.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/scripts/pg_cluster.sh
lookout=${LOOKOUT:-target/release/lookout}
loadgen=${LOADGEN:-target/release/lookout-loadgen}
datagen=${DATAGEN:-target/release/lookout-datagen}
watch_latency=${WATCH_LATENCY:-target/release/examples/watch_latency}
duration=${DURATION:-10s}
documents=${1:-300000}
cold_documents=${2:-2800000}
for bin in "$lookout" "$loadgen" "$datagen" "$watch_latency"; do
  [ -x "$bin" ] || {
    echo "$bin is missing: cargo build --release -p lookout-server -p lookout-bench --bins --examples" >&2
    exit 2
  }
done
pg_cluster_start pgvsraw "-c max_wal_size=4GB"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $(nproc) cores; load phases of $duration"

# serve DB GRPC HTTP: a PostgreSQL-store server in the background ($server).
serve() {
  "$lookout" serve --host 127.0.0.1 --grpc-port "$2" --http-port "$3" --log-level warn \
    --database-engine postgres --database-uri "$pg_uri_base/$1" &
  server=$!
  pg_cluster_pids+=("$server")
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
# load ARGS...: one loadgen run; prints "RPS P50 P99 ERRORS".
load() {
  if ! "$loadgen" --quiet --output json "$@" > "$dir/load.json" 2> "$dir/load.err"; then
    echo "lookout-loadgen $* failed:" >&2
    cat "$dir/load.err" >&2
    return 1
  fi
  python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("%.0f %.1f %.1f %d" % (r["rps"], l["p50"], l["p99"], r["errors"]))' < "$dir/load.json"
}
echo
echo "## 1. One-row writes at 16 clients"
psql -d postgres -c "CREATE TABLE one (id bigserial PRIMARY KEY, v int)"
echo "INSERT INTO one (v) VALUES (1);" > "$dir/insert.sql"
tps=$("$bindir/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 16 -j 2 -T "${duration%s}" \
  -f "$dir/insert.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
echo "pgbench, one-row INSERT: $tps transactions/s"
psql -d postgres -c "CREATE DATABASE writes"
grpc=$(free_port)
http=$(free_port)
serve writes "$grpc" "$http"
wait_healthy "$http"
"$loadgen" --target "127.0.0.1:$grpc" --call check --dataset docs:1000 --setup -n 1 --quiet >/dev/null
"$watch_latency" "127.0.0.1:$grpc" t1 $((${duration%s} + 3)) > "$dir/arrivals" &
watcher=$!
sleep 1
read -r rps p50 p99 errors < <(load --target "127.0.0.1:$grpc" --call write --dataset docs:1000 -z "$duration" -c 16)
wait "$watcher"
echo "Lookout, 16 writers of one tuple: $rps writes/s (p50 $p50 ms, p99 $p99 ms, $errors errors) = $(python3 -c "print('%.1f' % (100 * $rps / $tps))")% of pgbench"
psql -d writes -At -F ' ' -c "SELECT revision, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint FROM lookout_revisions WHERE tenant_id = 't1'" > "$dir/commits"
python3 - "$dir/commits" "$dir/arrivals" <<'PY'
import sys
commits = dict(map(int, l.split()) for l in open(sys.argv[1]) if l.strip())
lags = sorted((int(at) - commits[int(rev)]) / 1000 for rev, at in (l.split() for l in open(sys.argv[2])) if int(rev) in commits)
if not lags:
    sys.exit("no Watch message matched a committed revision")
pick = lambda p: lags[min(len(lags) - 1, round(p / 100 * (len(lags) - 1)))]
print("commit -> Watch subscriber under that load: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d revisions" % (pick(50), pick(99), lags[-1], len(lags)))
PY
echo
echo "## 2. Writes of 1,000 tuples"
for writers in 2 4; do
  read -r rps p50 p99 errors < <(load --target "127.0.0.1:$grpc" --call write --dataset docs:1000000 --write-tuples 1000 -z "$duration" -c "$writers")
  echo "$writers writers: $(python3 -c "print('%.0f' % ($rps * 1000))") tuples/s (p50 $p50 ms, p99 $p99 ms, $errors errors)"
done
stop "$server"

echo
echo "## 3. Import and export of $documents documents"
docs_file "$datagen" "$documents" "$dir/docs.txt"
echo "file: $(grep -vc '^//' "$dir/docs.txt") tuple lines, $(du -h "$dir/docs.txt" | cut -f1)"
psql -d postgres -c "CREATE DATABASE bulk"
"$lookout" migrate up --database-uri "$pg_uri_base/bulk" >/dev/null
start=$(now)
"$lookout" import --database-uri "$pg_uri_base/bulk" --tenant bulk --create-tenant --quiet "$dir/docs.txt" >/dev/null
import_s=$(seconds_since "$start")
stored=$(psql -d bulk -At -c "SELECT count(*) FROM lookout_tuples WHERE tenant_id = 'bulk'")
start=$(now)
"$lookout" export --database-uri "$pg_uri_base/bulk" --tenant bulk --quiet "$dir/export.txt"
export_s=$(seconds_since "$start")
echo "import: ${import_s} s ($stored tuples stored); export: ${export_s} s ($(grep -vc '^//' "$dir/export.txt") lines)"
psql -d postgres -c "DROP DATABASE bulk"
rm -f "$dir/export.txt"

echo
echo "## 4. Cold start on $cold_documents documents"
docs_file "$datagen" "$cold_documents" "$dir/cold.txt"
psql -d postgres -c "CREATE DATABASE cold"
"$lookout" migrate up --database-uri "$pg_uri_base/cold" >/dev/null
start=$(now)
"$lookout" import --database-uri "$pg_uri_base/cold" --tenant t1 --quiet "$dir/cold.txt" >/dev/null
echo "import: $(seconds_since "$start") s"
start=$(now)
serve cold "$grpc" "$http"
wait_healthy "$http"
cold_s=$(seconds_since "$start")
sleep 2
tuples=$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^lookout_tenant_tuples\{tenant="t1"\}/ {print $2}')
replica_kib=$(rss_kib "$server")
stop "$server"
"$lookout" serve --host 127.0.0.1 --grpc-port "$grpc" --http-port "$http" --log-level warn &
server=$!
pg_cluster_pids+=("$server")
wait_healthy "$http"
start=$(now)
"$lookout" import --target "127.0.0.1:$grpc" --tenant t1 --quiet "$dir/cold.txt" >/dev/null
memory_load_s=$(seconds_since "$start")
sleep 2
memory_kib=$(rss_kib "$server")
stop "$server"
echo "replica: serving after $cold_s s on $tuples tuples, RSS $((replica_kib / 1024)) MiB"
echo "in-memory server, same file through the API (${memory_load_s} s): RSS $((memory_kib / 1024)) MiB"
echo "replica RSS / in-memory RSS: $(python3 -c "print('%.2f' % ($replica_kib / $memory_kib))")"
