# A throwaway PostgreSQL cluster for the benchmark scripts, sourced by them: Debian's
# postgresql binaries, initdb into a temporary directory, a free port on 127.0.0.1,
# track_commit_timestamp on, default durability (fsync and synchronous_commit on).
#
#   . bench/scripts/pg_cluster.sh
#   pg_cluster_start NAME [EXTRA_POSTGRES_OPTIONS]   # sets $bindir, $dir, $port, $pg_uri_base
#   psql -d DB -c '...'                               # psql against the cluster
#   pg_cluster_stop                                   # also run by the EXIT trap it installs
#
# A script that starts servers of its own lists their PIDs in $pg_cluster_pids so the trap
# stops them first.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_cluster_pids=()

pg_cluster_start() {
  local name=$1 extra=${2:-}
  bindir=$(pg_config --bindir 2>/dev/null || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  dir=$(mktemp -d "/tmp/lookout-$name-XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
  port=$(free_port)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c track_commit_timestamp=on -c max_connections=100 $extra" \
    start >/dev/null
  pg_uri_base="postgres://postgres@127.0.0.1:$port"
  trap pg_cluster_stop EXIT
}

pg_cluster_stop() {
  local pid
  for pid in "${pg_cluster_pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  pg_cluster_pids=()
  if [ -n "${dir:-}" ] && [ -d "$dir" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null || true
    rm -rf "$dir"
  fi
}

psql() { "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q "$@"; }

# Waits until a server's HTTP port answers /healthz (at most 10 minutes).
wait_healthy() {
  local http=$1
  for _ in $(seq 6000); do
    curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server on HTTP port $http did not become healthy" >&2
  return 1
}

now() { python3 -c 'import time; print(time.time())'; }
seconds_since() { python3 -c 'import sys, time; print("%.2f" % (time.time() - float(sys.argv[1])))' "$1"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# docs_file DATAGEN DOCUMENTS FILE: the document data set of `lookout-datagen` under its schema
# section (`//| LINE` each, see server/src/data_file.rs), as `lookout import` reads it.
docs_file() {
  {
    echo "// lookout-datagen --documents $2"
    echo "// lookout-schema-begin"
    "$1" --schema | sed -e 's/^\(.\)/\/\/| \1/' -e 's/^$/\/\/|/'
    echo "// lookout-schema-end"
    "$1" --documents "$2" 2>/dev/null
  } > "$3"
}
