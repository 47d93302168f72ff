#!/usr/bin/env bash
# PostgreSQL store figures for PERF.md (bench/examples/pg_store.rs) against a throwaway
# cluster: Debian's postgresql binaries, initdb into a temporary directory, a free port,
# track_commit_timestamp on, default durability settings (fsync and synchronous_commit on).
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
dir=$(mktemp -d /tmp/lookout-pgbench-XXXXXX)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c track_commit_timestamp=on -c max_connections=100" start >/dev/null
trap 'as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; rm -rf "$dir"' EXIT
cargo run --release -p lookout-bench --example pg_store -- \
  --database-uri "postgres://postgres@127.0.0.1:$port/postgres" "$@"
