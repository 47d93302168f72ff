#!/usr/bin/env python3
"""Check throughput against the no-op RPC (grpc.health Check) on one server, as PERF.md reports it.

Starts `LOOKOUT serve` (cache off) on ports 24478/24479, loads docs:100000 with the load
generator, then runs ROUNDS pairs of SECS of health and SECS of Check (16 in flight), printing
per pair the rates, the server's CPU per call (/proc/PID/stat) and the client's (getrusage),
and the medians at the end.

usage: bench/scripts/check_vs_health.py [ROUNDS [SECS]]
env:   LOOKOUT (default target/release/lookout), LOADGEN (default target/release/lookout-loadgen)
"""
import resource
import statistics
import sys

from benchserver import Server, loadgen_json

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECS = sys.argv[2] if len(sys.argv) > 2 else "3s"

server = Server()
try:
    def run(call):
        s0, c0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
        report = loadgen_json(call, "-z", SECS, "-c", "16")
        c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), server.cpu_seconds()
        count = report["count"]
        client = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        return report["rps"], (s1 - s0) / count * 1e6, client / count * 1e6

    pairs = []
    for _ in range(ROUNDS):
        h, c = run("health"), run("check")
        pairs.append((h, c))
        print(f"health {h[0]:.0f}/s (server {h[1]:.1f} µs, client {h[2]:.1f} µs)  "
              f"check {c[0]:.0f}/s (server {c[1]:.1f} µs, client {c[2]:.1f} µs)  "
              f"ratio {c[0] / h[0] * 100:.1f}%", flush=True)
    print(f"median: check {statistics.median(c[0] for _, c in pairs):.0f}/s, "
          f"ratio {statistics.median(c[0] / h[0] for h, c in pairs) * 100:.1f}%")
finally:
    server.stop()
