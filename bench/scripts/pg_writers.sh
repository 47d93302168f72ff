#!/usr/bin/env bash
# 16 concurrent single-tuple writers to one tenant on the PostgreSQL store, next to
# PostgreSQL's own single-row INSERT rate at 16 clients (pgbench), on one throwaway cluster
# (default durability: fsync and synchronous_commit on; track_commit_timestamp on), for the
# PERF.md target "16 writers of one tuple ÷ pgbench single-INSERT at 16 clients".
#
#   bench/scripts/pg_writers.sh [ROUNDS] [LOOKOUT...]
#
# Each round runs pgbench once, then each LOOKOUT binary (default target/release/lookout) on a
# fresh database: `--setup` loads docs:1000, then `lookout-loadgen --call write -z 10s -c 16`.
# Several binaries alternate within a round, so a before/after comparison shares the minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shift || true
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/lookout)
loadgen=${LOADGEN:-target/release/lookout-loadgen}
duration=${DURATION:-10s}
. bench/scripts/pg_cluster.sh
pg_cluster_start pgwriters
psql -d postgres -c "CREATE TABLE one (id bigserial PRIMARY KEY, v int)"
echo "INSERT INTO one (v) VALUES (1);" > "$dir/insert.sql"
n=0
for round in $(seq "$rounds"); do
  tps=$("$bindir/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 16 -j 2 -T "${duration%s}" \
    -f "$dir/insert.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  echo "round $round pgbench single-INSERT, 16 clients: $tps tx/s"
  for bin in "${binaries[@]}"; do
    n=$((n + 1))
    psql -d postgres -c "CREATE DATABASE w$n"
    grpc=$(free_port)
    http=$(free_port)
    "$bin" serve --host 127.0.0.1 --grpc-port "$grpc" --http-port "$http" --log-level warn \
      --database-engine postgres --database-uri "$pg_uri_base/w$n" &
    server=$!
    pg_cluster_pids=("$server")
    wait_healthy "$http"
    "$loadgen" --target "127.0.0.1:$grpc" --call check --dataset docs:1000 --setup -n 1 --quiet >/dev/null
    rate=$("$loadgen" --target "127.0.0.1:$grpc" --call write --dataset docs:1000 -z "$duration" \
      -c 16 --quiet --output json | python3 -c 'import json, sys; r = json.load(sys.stdin); l = r["latency_ms"]; print("%.0f writes/s, errors %d, p50 %.1f ms, p99 %.1f ms" % (r["rps"], r["errors"], l["p50"], l["p99"]))')
    echo "round $round $bin 16 writers, 1 tuple each: $rate"
    kill "$server"
    wait "$server" 2>/dev/null || true
    pg_cluster_pids=()
  done
done
