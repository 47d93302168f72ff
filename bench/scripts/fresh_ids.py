#!/usr/bin/env python3
"""Server RSS across reads that each name IDs no stored data mentions: it must stay flat.

Starts `LOOKOUT serve` on ports 24478/24479 (memory store, default cache), writes a small
schema and data set over HTTP, then sends N reads in rounds through the load generator,
every read with fresh IDs:
  - LookupEntityStream whose subject is the subject set `doc:fresh<i>#owner` (a subject set
    is its own member, so the server must number `doc:fresh<i>` to answer);
  - Check with a contextual tuple `doc:ctx<i>#viewer@user:ctx<i>`.
After each round it prints the server's VmRSS; the last line compares the first and last.

usage: bench/scripts/fresh_ids.py [TOTAL_READS] [ROUNDS]   (default 1000000 10)
env: LOOKOUT (default target/release/lookout), LOADGEN (default target/release/lookout-loadgen)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

LOOKOUT = os.environ.get("LOOKOUT", "target/release/lookout")
LOADGEN = os.environ.get("LOADGEN", "target/release/lookout-loadgen")
HTTP = "http://127.0.0.1:24479"
SCHEMA = """entity user {}
entity doc {
    relation owner @user @doc#owner
    relation viewer @user
    permission view = owner or viewer
}
"""


def post(path, body):
    request = urllib.request.Request(HTTP + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def requests(kind, start, count):
    for i in range(start, start + count):
        if kind == "lookup":
            yield {"tenant_id": "t1", "entity_type": "doc", "permission": "view",
                   "subject": {"type": "doc", "id": f"fresh{i}", "relation": "owner"}}
        else:
            yield {"tenant_id": "t1", "metadata": {"depth": 20},
                   "entity": {"type": "doc", "id": f"ctx{i}"}, "permission": "view",
                   "subject": {"type": "user", "id": f"ctx{i}"},
                   "context": {"tuples": [{"entity": {"type": "doc", "id": f"ctx{i}"},
                                           "relation": "viewer",
                                           "subject": {"type": "user", "id": f"ctx{i}"}}]}}


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    per_round = total // rounds
    server = subprocess.Popen([LOOKOUT, "serve", "--grpc-port", "24478", "--http-port", "24479",
                               "--log-level", "warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        post("/v1/tenants/t1/schemas/write", {"schema": SCHEMA})
        post("/v1/tenants/t1/data/write", {"metadata": {"schema_version": ""}, "tuples": [
            {"entity": {"type": "doc", "id": str(d)}, "relation": "owner",
             "subject": {"type": "user", "id": f"u{d % 100}"}} for d in range(1000)]})
        first = rss_kib(server.pid)
        print(f"after setup: {first} KiB")
        sent = 0
        for r in range(rounds):
            for kind, call in (("lookup", "lookup-entity-stream"), ("check", "check")):
                half = per_round // 2
                with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
                    for body in requests(kind, sent, half):
                        f.write(json.dumps(body) + "\n")
                    f.flush()
                    out = subprocess.run([LOADGEN, "--target", "127.0.0.1:24478", "--call", call,
                                          "--data", f.name, "-n", str(half), "-c", "16",
                                          "--output", "json"],
                                         check=True, capture_output=True, text=True)
                    report = json.loads(out.stdout)
                    # A read that failed would keep nothing: only answered reads count.
                    if report["errors"] or report["ok"] != half:
                        sys.exit(f"{call}: {report['errors']} errors of {half}")
                sent += half
            print(f"after {sent:>9,} reads with fresh IDs: {rss_kib(server.pid)} KiB", flush=True)
        last = rss_kib(server.pid)
        print(f"RSS {first} KiB -> {last} KiB over {sent:,} reads "
              f"({(last - first) * 1024 / max(sent, 1):.2f} B per read)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
