#!/usr/bin/env python3
"""Latency and server cost of Check and the no-op RPC (grpc.health Check) as the offered rate
changes, as PERF.md reports it.

Starts `LOOKOUT serve` (cache off) on ports 24478/24479 and loads docs:100000 (see
benchserver.py). For each rate (0 = as fast as 16 callers go) it runs SECS of health, then SECS
of Check, each with 16 in flight, evenly paced, and prints: the rate reached; the client's p50
and p99 (from the load generator); the server's CPU time and context switches per call
(/proc); and, for Check, the server's own p50 and p99 from its request-duration histogram
(gate entry to response headers, interpolated within buckets).

usage: bench/scripts/rate_sweep.py [SECS [RATE...]]     (default: 5 0 20000 10000 5000 1000)
env:   LOOKOUT, LOADGEN (see benchserver.py)
"""
import sys

from benchserver import Server, loadgen_json, quantile

SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
RATES = [int(r) for r in sys.argv[2:]] or [0, 20000, 10000, 5000, 1000]

server = Server()
try:
    print("rate     call    reached/s  client p50  client p99  server µs/call  switches/call"
          "  server p50  server p99")
    for rate in RATES:
        for call in ("health", "check"):
            cpu0, cs0 = server.cpu_seconds(), server.context_switches()
            hist0 = server.durations("Permission/Check")
            report = loadgen_json(call, "-z", f"{SECS}s", "-c", "16", "--rps", str(rate))
            cpu1, cs1 = server.cpu_seconds(), server.context_switches()
            hist1 = server.durations("Permission/Check")
            count = max(report["count"], 1)
            latency = report["latency_ms"]
            own = ""
            if call == "check":
                own = (f"  {quantile(hist0, hist1, 0.5) * 1e3:8.3f} ms"
                       f"  {quantile(hist0, hist1, 0.99) * 1e3:8.3f} ms")
            print(f"{rate or 'peak':>6}  {call:6}  {report['rps']:9.0f}  "
                  f"{latency['p50']:7.3f} ms  {latency['p99']:7.3f} ms  "
                  f"{(cpu1 - cpu0) / count * 1e6:14.1f}  {(cs1 - cs0) / count:13.2f}{own}",
                  flush=True)
finally:
    server.stop()
