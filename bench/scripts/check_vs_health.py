#!/usr/bin/env python3
"""Check throughput against the no-op RPC (grpc.health Check) on one server, as PERF.md reports it.

Starts `LOOKOUT serve` (cache off) on ports 24478/24479, loads docs:100000 with the load
generator, then runs ROUNDS pairs of SECS of health and SECS of Check (16 in flight), printing
per pair the rates, the server's CPU per call (/proc/PID/stat) and the client's (getrusage),
and the medians at the end.

usage: bench/scripts/check_vs_health.py [ROUNDS [SECS]]
env:   LOOKOUT (default target/release/lookout), LOADGEN (default target/release/lookout-loadgen)
"""
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECS = sys.argv[2] if len(sys.argv) > 2 else "3s"
LOOKOUT = os.environ.get("LOOKOUT", "target/release/lookout")
LOADGEN = os.environ.get("LOADGEN", "target/release/lookout-loadgen")
TARGET = ["--target", "127.0.0.1:24478"]
DATA = ["--dataset", "docs:100000"]
TICK = os.sysconf("SC_CLK_TCK")

server = subprocess.Popen(
    [LOOKOUT, "serve", "--grpc-port", "24478", "--http-port", "24479",
     "--log-level", "warn", "--cache-capacity", "0"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    time.sleep(1.5)
    subprocess.run([LOADGEN, *TARGET, "--call", "check", *DATA, "--setup", "-n", "1", "--quiet"],
                   check=True, capture_output=True)
    subprocess.run([LOADGEN, *TARGET, "--call", "check", *DATA, "-z", "2s", "-c", "16", "--quiet"],
                   check=True, capture_output=True)

    def server_cpu():
        fields = open(f"/proc/{server.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def run(call):
        s0, c0 = server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([LOADGEN, *TARGET, "--call", call, *DATA, "-z", SECS, "-c", "16",
                              "--quiet"], check=True, capture_output=True, text=True).stdout
        c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu()
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        count = int(re.search(r"Count:\s+(\d+)", out).group(1))
        client = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        return rate, (s1 - s0) / count * 1e6, client / count * 1e6

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
    server.terminate()
    server.wait()
