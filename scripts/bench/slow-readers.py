#!/usr/bin/env python3
"""Server memory with slow readers of the largest pages (docs/server.md, "Pages and memory").

Starts `tether serve` (the binary given, SQLite storage in a temporary folder, or PostgreSQL
with --database-url), loads RECORDS records of about RECORD_BYTES of incompressible text each
through the admin API, then opens READERS connections that each ask for a first page (gzip, as
the CLI does), read its first bytes and then nothing. It samples the server's resident memory
(/proc/PID/status) while they stall and prints the baseline, the peak and when the server
closed the stalled connections. Loopback only; bounded in count and time.

Usage: slow-readers.py TETHER_BINARY [--database-url URL] [--readers 8] [--records 40]
"""
import argparse
import json
import os
import random
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def open_connections(base):
    """The server's own count of open connections, less the scrape's (its /metrics)."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("tether_connections_open "):
            return int(float(line.split()[1])) - 1
    return -1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tether")
    ap.add_argument("--database-url")
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--records", type=int, default=40)
    ap.add_argument("--record-bytes", type=int, default=2_000_000)
    ap.add_argument("--stall-s", type=float, default=75.0)
    a = ap.parse_args()

    work = tempfile.mkdtemp()
    port = free_port()
    cmd = [a.tether, "serve", "--bind", f"127.0.0.1:{port}", "--dev-token", "t"]
    cmd += ["--database-url", a.database_url] if a.database_url else ["--db", os.path.join(work, "cloud.db")]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    scope = f"slow{random.randrange(1 << 30)}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        rng = random.Random(7)
        alphabet = string.ascii_letters + string.digits
        for i in range(a.records):
            blob = "".join(rng.choices(alphabet, k=a.record_bytes - 64))
            body = json.dumps({"upserts": [{"collection": "big", "id": f"r{i}", "data": {"blob": blob}}]}).encode()
            req = urllib.request.Request(
                f"{base}/v1/admin/scopes/{scope}/records", data=body, method="POST",
                headers={"Authorization": "Bearer t", "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=60).read()
        time.sleep(1)
        baseline = rss_kib(server.pid, "VmRSS")
        socks = []
        for _ in range(a.readers):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /v1/scopes/{scope}/changes?limit=1000 HTTP/1.1\r\nHost: x\r\n"
                      f"Accept-Encoding: gzip\r\nAuthorization: Bearer t\r\n\r\n".encode())
            s.recv(16)
            socks.append(s)
        start = time.time()
        peak = baseline
        closed_at = None
        while time.time() - start < a.stall_s:
            peak = max(peak, rss_kib(server.pid, "VmRSS"))
            if closed_at is None and open_connections(base) == 0:
                closed_at = time.time() - start
            time.sleep(0.1)
        hwm = rss_kib(server.pid, "VmHWM")
        print(f"readers {a.readers}, records {a.records} x {a.record_bytes} bytes")
        print(f"server RSS: baseline {baseline / 1024:.0f} MiB, peak while stalled {peak / 1024:.0f} MiB,"
              f" high-water mark of the run {hwm / 1024:.0f} MiB")
        print("the stalled connections all closed by the server after "
              + (f"{closed_at:.1f} s" if closed_at is not None else f"more than {a.stall_s:.0f} s (not closed)"))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
