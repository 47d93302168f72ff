#!/usr/bin/env bash
# PostgreSQL store figures for PERF.md (bench/examples/pg_store.rs) against a throwaway
# cluster: Debian's postgresql binaries, initdb into a temporary directory, a free port,
# track_commit_timestamp on, default durability settings (fsync and synchronous_commit on).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/scripts/pg_cluster.sh
pg_cluster_start pgbench
cargo run --release -p lookout-bench --example pg_store -- \
  --database-uri "$pg_uri_base/postgres" "$@"
