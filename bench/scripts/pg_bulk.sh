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
. bench/scripts/pg_cluster.sh
pg_cluster_start pgbulk "-c max_wal_size=4GB"

file="$dir/docs.txt"
docs_file "$datagen" "$documents" "$file"
lines=$(grep -vc '^//' "$file")
echo "file: $lines tuple lines, $(du -h "$file" | cut -f1)"

n=0
for round in $(seq "$rounds"); do
  n=$((n + 1))
  psql -d postgres -c "CREATE DATABASE a$n" -c "CREATE DATABASE b$n"
  "$lookout" migrate up --database-uri "$pg_uri_base/a$n" >/dev/null
  "$lookout" migrate up --database-uri "$pg_uri_base/b$n" >/dev/null
  start=$(now)
  "$lookout" import --database-uri "$pg_uri_base/a$n" --tenant bulk --create-tenant "$file" >/dev/null 2>"$dir/import.err" \
    || { cat "$dir/import.err"; exit 1; }
  import_s=$(seconds_since "$start")
  start=$(now)
  "$lookout" export --database-uri "$pg_uri_base/a$n" --tenant bulk "$dir/export.txt" 2>"$dir/export.err" \
    || { cat "$dir/export.err"; exit 1; }
  export_s=$(seconds_since "$start")
  start=$(now)
  "$lookout" import --database-uri "$pg_uri_base/b$n" --tenant bulk --create-tenant "$dir/export.txt" >/dev/null 2>"$dir/reimport.err" \
    || { cat "$dir/reimport.err"; exit 1; }
  reimport_s=$(seconds_since "$start")
  start=$(now)
  "$lookout" import --database-uri "$pg_uri_base/b$n" --tenant bulk "$dir/export.txt" >/dev/null 2>"$dir/again.err" \
    || { cat "$dir/again.err"; exit 1; }
  again_s=$(seconds_since "$start")
  stored=$(psql -d "a$n" -At -c "SELECT count(*) FROM lookout_tuples WHERE tenant_id = 'bulk'")
  again=$(psql -d "b$n" -At -c "SELECT count(*) FROM lookout_tuples WHERE tenant_id = 'bulk'")
  echo "round $round: import ${import_s}s ($stored tuples stored), export ${export_s}s, import of the export ${reimport_s}s ($again tuples stored), the same again ${again_s}s"
  sed 's/^/  /' "$dir/import.err" "$dir/export.err" "$dir/again.err"
  psql -d postgres -c "DROP DATABASE a$n" -c "DROP DATABASE b$n"
done
