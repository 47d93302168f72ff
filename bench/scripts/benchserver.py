"""What the measurement scripts in this directory share: a Lookout server on ports 24478/24479
(cache off) loaded with docs:100000, the load generator, and the server's CPU time, context
switches and request-duration histogram.

env: LOOKOUT (default target/release/lookout), LOADGEN (default target/release/lookout-loadgen)
"""
import glob
import json
import os
import re
import subprocess
import time
import urllib.request

LOOKOUT = os.environ.get("LOOKOUT", "target/release/lookout")
LOADGEN = os.environ.get("LOADGEN", "target/release/lookout-loadgen")
TARGET = ["--target", "127.0.0.1:24478"]
METRICS = "http://127.0.0.1:24479/metrics"
DATA = ["--dataset", "docs:100000"]
TICK = os.sysconf("SC_CLK_TCK")


class Server:
    """`LOOKOUT serve` with the result cache off, loaded with docs:100000 and warmed up."""

    def __init__(self):
        self.process = subprocess.Popen(
            [LOOKOUT, "serve", "--grpc-port", "24478", "--http-port", "24479",
             "--log-level", "warn", "--cache-capacity", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            loadgen("check", "--setup", "-n", "1")
            loadgen("check", "-z", "2s", "-c", "16")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        self.process.terminate()
        self.process.wait()

    def cpu_seconds(self):
        """User plus system CPU time of the server so far."""
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def context_switches(self):
        """Voluntary and involuntary context switches of all the server's threads so far."""
        total = 0
        for status in glob.glob(f"/proc/{self.process.pid}/task/*/status"):
            try:
                for line in open(status):
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass  # a thread that ended meanwhile
        return total

    def durations(self, rpc):
        """The cumulative (upper bound in seconds, count) buckets of the server's gRPC
        request-duration histogram for `rpc` (e.g. `Permission/Check`), OK calls."""
        text = urllib.request.urlopen(METRICS).read().decode()
        pattern = re.compile(
            r'lookout_request_duration_seconds_bucket\{code="OK",rpc="%s",transport="grpc",'
            r'le="([^"]+)"\} (\S+)' % re.escape(rpc))
        return [(float(m.group(1)), float(m.group(2)))
                for m in map(pattern.match, text.splitlines()) if m]


def quantile(before, after, q):
    """The `q` quantile of the calls between two `Server.durations` readings, interpolated
    linearly within its bucket (as Prometheus's histogram_quantile does)."""
    buckets = [(le, c - c0) for (le, c), (_, c0) in zip(after, before)]
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return float("nan")
    want, low, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= want:
            if le == float("inf"):
                return low
            return low + (le - low) * (want - below) / max(count - below, 1)
        low, below = le, count
    return low


def loadgen(call, *args):
    """Runs the load generator against the server; returns its stdout."""
    return subprocess.run([LOADGEN, *TARGET, "--call", call, *DATA, "--quiet", *args],
                          check=True, capture_output=True, text=True).stdout


def loadgen_json(call, *args):
    """Runs the load generator with a JSON report and returns the report."""
    return json.loads(loadgen(call, "--output", "json", *args))
