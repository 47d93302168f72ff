"""Peak memory one large request adds to a Lookout server, against the request's body size.

For each case a fresh server (`LOOKOUT serve`, in memory, on free ports) gets a schema and a
small warm-up write; then the kernel's peak-RSS mark is reset (`5` into
/proc/PID/clear_refs), the large request is sent, and the growth of the peak (VmHWM after
minus VmRSS before) is divided by the body size. Each case sends its request `--repeat`
times (each with new IDs) and reports every one: the first pays for the allocator's heaps
growing, later ones show what a server that has seen such a request before needs.

Cases:
  http-write   POST /v1/tenants/t1/data/write, ~`--mb` MB of JSON tuples
  grpc-write   base.v1.Data/Write over gRPC (curl, HTTP/2 without TLS), same tuples in
               protobuf, ~`--mb` MB
  http-check   POST /v1/tenants/t1/permissions/check with ~`--check-mb` MB of contextual
               tuples

usage: python3 bench/scripts/peak_memory.py [--cases http-write,grpc-write,http-check]
       [--mb 4] [--check-mb 3] [--repeat 2]
env: LOOKOUT (default target/release/lookout); needs curl with HTTP/2 for grpc-write.
Standard library only.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

LOOKOUT = os.environ.get("LOOKOUT", "target/release/lookout")
SCHEMA = """
entity user {}
entity group {
    relation member @user
}
entity document {
    relation owner @user
    relation viewer @user @group#member
    permission view = owner or viewer
}
"""
# Largest body the server accepts by default is 4 MiB; stay just under it.
BODY_LIMIT = 4 * 1024 * 1024 - 4096


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid):
    """VmRSS and VmHWM of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Server:
    def __init__(self):
        self.grpc = free_port()
        self.http = free_port()
        self.process = subprocess.Popen(
            [LOOKOUT, "serve", "--grpc-port", str(self.grpc), "--http-port", str(self.http),
             "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz").read()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("server did not start")
                time.sleep(0.1)

    def post(self, path, body):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http}{path}", data=body,
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def grpc_call(self, method, message):
        """A unary gRPC call through curl; returns curl's exit status and gRPC status."""
        frame = b"\x00" + struct.pack(">I", len(message)) + message
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:
            f.write(frame)
            f.flush()
            out = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-",
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 "--data-binary", f"@{f.name}",
                 f"http://127.0.0.1:{self.grpc}/{method}"],
                capture_output=True, text=True, check=True).stdout
        codes = [line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.lower().startswith("grpc-status:")]
        if codes != ["0"]:
            raise RuntimeError(f"gRPC {method} failed: {out}")

    def stop(self):
        self.process.terminate()
        self.process.wait()


def tuple_json(doc, user):
    return {"entity": {"type": "document", "id": f"doc-{doc}"}, "relation": "viewer",
            "subject": {"type": "user", "id": f"user-{user}", "relation": ""}}


def tuples_json(start, limit, wrap):
    """As many tuples from `start` as fit in `limit` bytes of `wrap(tuples)`."""
    one = len(json.dumps(tuple_json(start, start))) + 2
    count = max(1, (limit - len(json.dumps(wrap([])))) // one)
    while True:
        tuples = [tuple_json(start + i, start + i) for i in range(count)]
        body = json.dumps(wrap(tuples)).encode()
        if len(body) <= limit:
            return body, count
        count = count * limit // len(body) - 1


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def tuple_proto(doc, user):
    entity = field(1, b"document") + field(2, f"doc-{doc}".encode())
    subject = field(1, b"user") + field(2, f"user-{user}".encode())
    return field(1, entity) + field(2, b"viewer") + field(3, subject)


def write_proto(start, limit):
    """A DataWriteRequest for tenant t1 of as many tuples as fit in `limit` bytes."""
    parts = [field(1, b"t1")]
    size = len(parts[0])
    i = start
    while True:
        part = field(3, tuple_proto(i, i))
        if size + len(part) > limit:
            return b"".join(parts), i - start
        parts.append(part)
        size += len(part)
        i += 1


def measure(server, send):
    before = status(server.process.pid)
    reset_peak(server.process.pid)
    started = time.time()
    send()
    seconds = time.time() - started
    after = status(server.process.pid)
    return after["VmHWM"] - before["VmRSS"], after["VmRSS"] - before["VmRSS"], seconds


def run_case(case, args):
    server = Server()
    try:
        server.post("/v1/tenants/t1/schemas/write", json.dumps({"schema": SCHEMA}).encode())
        server.post("/v1/tenants/t1/data/write",
                    json.dumps({"tuples": [tuple_json(0, 0)]}).encode())
        rows = []
        for round_ in range(args.repeat):
            start = 1 + round_ * 1_000_000
            if case == "http-write":
                body, count = tuples_json(
                    start, min(int(args.mb * 1e6), BODY_LIMIT), lambda t: {"tuples": t})
                send = lambda: server.post("/v1/tenants/t1/data/write", body)
            elif case == "grpc-write":
                body, count = write_proto(start, min(int(args.mb * 1e6), BODY_LIMIT))
                send = lambda: server.grpc_call("base.v1.Data/Write", body)
            elif case == "http-check":
                def wrap(tuples):
                    return {"metadata": {"depth": 20},
                            "entity": {"type": "document", "id": f"doc-{start}"},
                            "permission": "view",
                            "subject": {"type": "user", "id": f"user-{start}"},
                            "context": {"tuples": tuples}}
                body, count = tuples_json(start, min(int(args.check_mb * 1e6), BODY_LIMIT), wrap)
                send = lambda: server.post("/v1/tenants/t1/permissions/check", body)
            else:
                raise SystemExit(f"unknown case {case}")
            peak, kept, seconds = measure(server, send)
            rows.append((case, round_ + 1, len(body), count, peak, kept, seconds))
        return rows
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="http-write,grpc-write,http-check")
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--check-mb", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"{'case':<11} {'#':>2} {'body B':>10} {'tuples':>7} {'peak +B':>12} "
          f"{'peak/body':>9} {'kept +B':>11} {'seconds':>7}")
    for case in args.cases.split(","):
        for case_, n, body, count, peak, kept, seconds in run_case(case, args):
            print(f"{case_:<11} {n:>2} {body:>10,} {count:>7,} {peak:>12,} "
                  f"{peak / body:>9.1f} {kept:>11,} {seconds:>7.2f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
