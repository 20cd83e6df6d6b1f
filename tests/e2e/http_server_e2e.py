#!/usr/bin/env python3
"""End to end: examples/http_server driven by real clients, curl and wrk.

Every server listens on a free loopback port (it picks one: --port 0), and a Redis
server is started on a free port for the fleet scenario. Checks that the count of 200s
and 429s matches each quota exactly, that header values are right, that /metrics agrees
with what the clients saw, and that two servers on one Redis share one quota.

usage: http_server_e2e.py <http_server binary>
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SERVER = sys.argv[1]
PLANS = [
    "--plan", "small=5/h",        # header checks: 720 s a request
    "--plan", "reports=25/d",     # costs: a report is 10
    "--plan", "load=1000/d",      # wrk: no refill during the run (one per 86.4 s)
    "--key", "k-small=small", "--key", "k-reports=reports", "--key", "k-load=load",
]
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Server:
    def __init__(self, *args):
        self.process = subprocess.Popen([SERVER, "--port", "0", *PLANS, *args],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.match(r"listening on (\d+)", line)
        if not match:
            self.process.kill()
            raise SystemExit(f"http_server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}"
        # What the clients saw from this server's limiter.
        self.ok = 0
        self.limited = 0

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def curl(server, path, headers=()):
    """One request: (status, headers as a dict)."""
    command = ["curl", "-s", "-o", "/dev/null", "-D", "-", server.url + path]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout
    lines = out.replace("\r", "").split("\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    if status == 200:
        server.ok += 1
    elif status == 429:
        server.limited += 1
    return status, fields


def wrk(server, path, api_key, seconds=2):
    """Load from wrk: (responses, non-2xx responses)."""
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "-H", f"X-API-Key: {api_key}",
                          server.url + path], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(match.group(1)) if match else 0
    errors = re.search(r"Socket errors: (.*)", out)
    check(errors is None, f"wrk saw no socket errors ({errors.group(1) if errors else ''})")
    server.ok += total - non2xx
    server.limited += non2xx
    return total, non2xx


def metric(server, outcome):
    out = subprocess.run(["curl", "-s", server.url + "/metrics"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    match = re.search(r'ratelimit_decisions_total\{limiter="api",rule="",outcome="%s"\} (\d+)'
                      % outcome, out)
    return int(match.group(1))


def headers_and_quota(server):
    now = time.time()
    for i in range(5):
        status, h = curl(server, "/items", ["X-API-Key: k-small"])
        check(status == 200, f"request {i + 1} of 5/h admitted (got {status})")
        check(h.get("x-ratelimit-limit") == "5", f"X-RateLimit-Limit 5 (got {h})")
        check(h.get("x-ratelimit-remaining") == str(4 - i), f"X-RateLimit-Remaining {4 - i}")
        check(h.get("ratelimit-policy") == '"small";q=5;w=3600', f"RateLimit-Policy ({h})")
        check("retry-after" not in h, "no Retry-After when admitted")
    status, h = curl(server, "/items", ["X-API-Key: k-small"])
    check(status == 429, f"the 6th request of 5/h is rejected (got {status})")
    # The next token refills 720 s after the first was taken, a moment ago: rounded up.
    check(h.get("retry-after") == "720", f"Retry-After 720 (got {h.get('retry-after')})")
    check(h.get("ratelimit") == '"small";r=0;t=720', f"RateLimit (got {h.get('ratelimit')})")
    reset = int(h.get("x-ratelimit-reset", "0"))
    check(now + 3599 <= reset <= time.time() + 3601,
          f"X-RateLimit-Reset is the Unix second the bucket is full again (got {reset})")


def costs(server):
    for i in range(2):
        status, _ = curl(server, "/reports", ["X-API-Key: k-reports"])
        check(status == 200, f"report {i + 1} (cost 10 of 25) admitted (got {status})")
    status, h = curl(server, "/reports", ["X-API-Key: k-reports"])
    check(status == 429, f"a third report needs 10 of the 5 left (got {status})")
    check(h.get("x-ratelimit-remaining") == "5", f"5 units left (got {h})")
    status, _ = curl(server, "/items", ["X-API-Key: k-reports"])
    check(status == 200, f"a read (cost 1) still passes (got {status})")


def identity(server):
    # The peer, 127.0.0.1, is a trusted proxy: the client is the X-Forwarded-For address.
    for i in range(10):
        status, _ = curl(server, "/items", ["X-Forwarded-For: 198.51.100.7"])
        check(status == 200, f"anonymous request {i + 1} of a burst of 10 (got {status})")
    status, _ = curl(server, "/items", ["X-Forwarded-For: 198.51.100.7"])
    check(status == 429, f"the 11th anonymous request from one address (got {status})")
    status, _ = curl(server, "/items", ["X-Forwarded-For: 198.51.100.8"])
    check(status == 200, f"another address has its own quota (got {status})")
    status, _ = curl(server, "/items", ["X-Forwarded-For: 2001:db8::1"])
    check(status == 200, f"an IPv6 client (got {status})")
    status, _ = curl(server, "/items", ["X-Forwarded-For: 2001:DB8:0:0:ffff::2"])
    check(status == 200, f"the same /64, written otherwise, shares its quota (got {status})")
    status, _ = curl(server, "/items", ["X-Forwarded-For: not-an-address"])
    check(status == 400, f"no usable identity is a 400, never a shared bucket (got {status})")


def load(server):
    total, rejected = wrk(server, "/items", "k-load")
    check(total - rejected == 1000,
          f"wrk: exactly 1000 of {total} admitted under 1000/d (got {total - rejected})")


def metrics_agree(server, connections=16):
    """wrk stops with a request in flight on each connection and counts none of their
    responses: the server has decided up to that many more rejections than wrk reports.
    Admissions are exact: the quota ran out long before the end."""
    allowed, rejected = metric(server, "allowed"), metric(server, "rejected")
    check(allowed == server.ok, f"/metrics allowed {allowed} == 200s seen {server.ok}")
    check(server.limited <= rejected <= server.limited + connections,
          f"/metrics rejected {rejected} == 429s seen {server.limited} (+ <= {connections} "
          "in flight when wrk stopped)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet():
    """Two servers on one Redis share one quota: 1000/d admits 1000 across both."""
    port = free_port()
    directory = tempfile.mkdtemp()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", directory],
                             stdout=subprocess.DEVNULL)
    servers = []
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)  # waiting for a process to listen, not for time
        servers = [Server("--redis", f"redis://127.0.0.1:{port}") for _ in range(2)]
        loads = [subprocess.Popen(["wrk", "-t1", "-c8", "-d2s", "-H", "X-API-Key: k-load",
                                   s.url + "/items"], stdout=subprocess.PIPE, text=True)
                 for s in servers]
        admitted = 0
        for s, w in zip(servers, loads):
            out = w.communicate(timeout=120)[0]
            total = int(re.search(r"(\d+) requests in", out).group(1))
            match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            non2xx = int(match.group(1)) if match else 0
            check(total - non2xx > 0, "each server admitted some of the shared quota")
            admitted += total - non2xx
            check(metric(s, "allowed") == total - non2xx, "each server's /metrics agrees")
        check(admitted == 1000, f"two servers on one Redis admit 1000 in all (got {admitted})")
    finally:
        for s in servers:
            s.stop()
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    for tool in ("curl", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install curl wrk redis-server")
    server = Server("--trusted-proxy", "127.0.0.1/32")
    try:
        headers_and_quota(server)
        costs(server)
        identity(server)
        load(server)
        metrics_agree(server)
    finally:
        server.stop()
    fleet()
    if failures:
        raise SystemExit(f"{len(failures)} check(s) failed")
    print("all end-to-end checks passed")


if __name__ == "__main__":
    main()
