#!/usr/bin/env bash
# `lookout import` and `lookout export` straight into and out of PostgreSQL (`--database-uri`,
# COPY in one transaction) with about a million tuples, on one throwaway cluster (default
# durability: fsync and synchronous_commit on; track_commit_timestamp on), for the PERF.md
# targets "import of 1M tuples into PostgreSQL" and "export of 1M tuples from PostgreSQL".
#
#   bench/scripts/pg_bulk.sh [ROUNDS] [DOCUMENTS]
#
# The file is the document-sharing data set of `lookout-datagen` (DOCUMENTS documents, default
# 300000: about 1.0M tuple lines, a few of them repeated) under its schema section. Each round
# imports it into a fresh database (a new tenant, schema written from the file), exports the
# tenant back out, imports that export into another fresh database, and imports the export
# again into that database (everything is stored already: the comparison with the stored rows,
# no revision); each step is timed on its own (wall clock of the whole command).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
documents=${2:-300000}
lookout=${LOOKOUT:-target/release/lookout}
datagen=${DATAGEN:-target/release/lookout-datagen}
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
dir=$(mktemp -d /tmp/lookout-pgbulk-XXXXXX)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
port=$(free_port)
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c track_commit_timestamp=on -c max_wal_size=4GB" start >/dev/null
cleanup() {
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
psql() { "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q "$@"; }

file="$dir/docs.txt"
{
  echo "// lookout-datagen --documents $documents"
  echo "// lookout-schema-begin"
  # Each source line as `//| LINE`, an empty one as `//|` (see server/src/data_file.rs).
  "$datagen" --schema | sed -e 's/^\(.\)/\/\/| \1/' -e 's/^$/\/\/|/'
  echo "// lookout-schema-end"
  "$datagen" --documents "$documents" 2>/dev/null
} > "$file"
lines=$(grep -vc '^//' "$file")
echo "file: $lines tuple lines, $(du -h "$file" | cut -f1)"

seconds() { python3 -c 'import sys, time; print("%.2f" % (time.time() - float(sys.argv[1])))' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }
n=0
for round in $(seq "$rounds"); do
  n=$((n + 1))
  psql -d postgres -c "CREATE DATABASE a$n" -c "CREATE DATABASE b$n"
  "$lookout" migrate up --database-uri "postgres://postgres@127.0.0.1:$port/a$n" >/dev/null
  "$lookout" migrate up --database-uri "postgres://postgres@127.0.0.1:$port/b$n" >/dev/null
  start=$(now)
  "$lookout" import --database-uri "postgres://postgres@127.0.0.1:$port/a$n" --tenant bulk --create-tenant "$file" >/dev/null 2>"$dir/import.err" \
    || { cat "$dir/import.err"; exit 1; }
  import_s=$(seconds "$start")
  start=$(now)
  "$lookout" export --database-uri "postgres://postgres@127.0.0.1:$port/a$n" --tenant bulk "$dir/export.txt" 2>"$dir/export.err" \
    || { cat "$dir/export.err"; exit 1; }
  export_s=$(seconds "$start")
  start=$(now)
  "$lookout" import --database-uri "postgres://postgres@127.0.0.1:$port/b$n" --tenant bulk --create-tenant "$dir/export.txt" >/dev/null 2>"$dir/reimport.err" \
    || { cat "$dir/reimport.err"; exit 1; }
  reimport_s=$(seconds "$start")
  start=$(now)
  "$lookout" import --database-uri "postgres://postgres@127.0.0.1:$port/b$n" --tenant bulk "$dir/export.txt" >/dev/null 2>"$dir/again.err" \
    || { cat "$dir/again.err"; exit 1; }
  again_s=$(seconds "$start")
  stored=$(psql -d "a$n" -At -c "SELECT count(*) FROM lookout_tuples WHERE tenant_id = 'bulk'")
  again=$(psql -d "b$n" -At -c "SELECT count(*) FROM lookout_tuples WHERE tenant_id = 'bulk'")
  echo "round $round: import ${import_s}s ($stored tuples stored), export ${export_s}s, import of the export ${reimport_s}s ($again tuples stored), the same again ${again_s}s"
  sed 's/^/  /' "$dir/import.err" "$dir/export.err" "$dir/again.err"
  psql -d postgres -c "DROP DATABASE a$n" -c "DROP DATABASE b$n"
done
