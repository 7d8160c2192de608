# SPDX-License-Identifier: LGPL-2.1-or-later
"""Metrics with the real daemon: the exporter (promtool, status codes, concurrency), a real Prometheus server
scraping it, guest series appearing and disappearing, and the varlink metrics methods through memvisorctl."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from test_balloon import guest_vm, start_and_wait_ready, test_guest  # noqa: F401 - test_guest is a fixture
from test_vms import firmware_vm, ok, wait_state

M = "io.memvisor.Manager."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(daemons, interval="200ms", extra=""):
    port = free_port()
    d = daemons(config="[Metrics]\nHostSampleIntervalSec=%s\nGuestSampleIntervalSec=1s\n"
                       "[Exporter]\nListenAddress=127.0.0.1:%d\n%s" % (interval, port, extra))
    d.exporter_port = port
    d.wait_for_log("Prometheus exporter listening on http://127.0.0.1:%d/metrics" % port)
    return d


def scrape(d, path="/metrics", method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", d.exporter_port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body.decode()


def raw(d, data, timeout=5):
    with socket.create_connection(("127.0.0.1", d.exporter_port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                if b"\r\n\r\n" in out:   # a kept-alive connection: the response is complete
                    break
                raise
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                s.settimeout(0.5)
    return out.decode(errors="replace")


def series(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def test_scrape_passes_promtool(daemons):
    if not shutil.which("promtool"):
        pytest.skip("promtool missing (apt-get install prometheus)")
    d = start(daemons)
    status, headers, body = scrape(d)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    s = series(body)
    for name in ("memvisor_host_memory_committed_as_bytes", "memvisor_host_memory_commit_limit_bytes",
                 "memvisor_host_memory_available_bytes", "memvisor_host_memory_total_bytes",
                 "memvisor_host_memory_overcommit_ratio", 'memvisor_host_hugepages{state="total"}',
                 "memvisor_daemon_scrapes_total"):
        assert name in s, name
    assert abs(s["memvisor_host_memory_total_bytes"] - meminfo("MemTotal")) == 0
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
    # HEAD: same headers, no body.
    status, headers, body = scrape(d, method="HEAD")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 1000
    status, _, body = scrape(d, "/")
    assert status == 200 and 'href="/metrics"' in body


@pytest.mark.parametrize("request_bytes,code", [
    (b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405),
    (b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    (b"GET /metrics HTTP/1.1\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\nHost: a\n\n", 400),
    (b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET /metrics HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", 431),
    (b"BREW /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    (b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505),
])
def test_bad_requests(daemons, request_bytes, code):
    d = start(daemons)
    out = raw(d, request_bytes)
    assert out.startswith("HTTP/1.1 %d " % code), out[:200]


def test_absolute_form_target(daemons):
    """RFC 9112 3.2.2: a server MUST accept the absolute-form (as proxies and some clients send it)."""
    d = start(daemons)
    out = raw(d, b"GET http://memvisor.example:9098/metrics?x HTTP/1.1\r\nHost: elsewhere\r\n\r\n"
                 b"HEAD HTTP://127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert out.startswith("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4"), out[:200]
    assert "memvisor_daemon_scrapes_total" in out
    assert out.count("HTTP/1.1 200 OK\r\n") == 2 and "text/html" in out
    assert raw(d, b"GET https://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n").startswith("HTTP/1.1 400 ")
    assert raw(d, b"GET http://a/metrics HTTP/1.1\r\n\r\n").startswith("HTTP/1.1 400 ")


def test_read_timeout_and_keep_alive(daemons):
    d = start(daemons, extra="TimeoutSec=500ms\n")
    # Two pipelined requests on one connection, the second closes it.
    out = raw(d, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.count("HTTP/1.1 200 OK") == 2
    # A client that never finishes its request gets 408.
    t0 = time.monotonic()
    out = raw(d, b"GET /metrics HTTP/1.1\r\nHost:")
    assert out.startswith("HTTP/1.1 408 "), out
    assert time.monotonic() - t0 < 5


def test_200_concurrent_scrapes(daemons):
    d = start(daemons, extra="MaxConnections=256\n")
    results = []
    lock = threading.Lock()

    def one():
        try:
            status, _, body = scrape(d)
            res = status == 200 and "memvisor_host_memory_committed_as_bytes" in body
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            res = repr(e)
        with lock:
            results.append(res)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(True) == 200, [r for r in results if r is not True][:5]
    s = series(scrape(d)[2])
    assert s["memvisor_daemon_scrapes_total"] >= 201


class SlowClients:
    """Slow-loris clients: each connection sends a request head one byte a second (it would take minutes
    to complete) and reconnects as soon as the server answers or closes it. sources: [(address, count)],
    the local addresses to connect from (all of 127.0.0.0/8 is loopback)."""

    HEAD = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 400 + b"\r\n\r\n"

    def __init__(self, port, sources):
        self.port = port
        self.slots = [{"source": a, "sock": None, "sent": 0} for a, n in sources for _ in range(n)]
        self.connects = 0
        self.answers = {}           # status line → how often the server answered a slow client with it
        self.ticks = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self, slot):
        s = socket.socket()
        s.bind((slot["source"], 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        s.setblocking(False)
        slot["sock"], slot["sent"] = s, 0
        self.connects += 1

    def _drop(self, slot):
        slot["sock"].close()
        slot["sock"] = None

    def _tick(self):
        for slot in self.slots:
            if slot["sock"] is None:
                self._connect(slot)
                if slot["sock"] is None:
                    continue
            try:
                data = slot["sock"].recv(4096)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data is not None:    # answered or closed: note the answer, come back at once
                if data:
                    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
                    self.answers[line] = self.answers.get(line, 0) + 1
                self._drop(slot)
                self._connect(slot)
                if slot["sock"] is None:
                    continue
            try:
                slot["sock"].send(self.HEAD[slot["sent"]:slot["sent"] + 1])
                slot["sent"] += 1
            except BlockingIOError:
                pass
            except OSError:
                self._drop(slot)

    def _run(self):
        while not self.stopping.is_set():
            self._tick()
            self.ticks += 1
            self.stopping.wait(1.0)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.ticks < 2 and time.monotonic() < deadline:   # all connected and sending
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(30)
        for slot in self.slots:
            if slot["sock"] is not None:
                self._drop(slot)


def timed_scrape(d):
    t0 = time.monotonic()
    try:
        status, _, body = scrape(d)
    except OSError as e:
        return repr(e), time.monotonic() - t0, ""
    return status, time.monotonic() - t0, body


def test_slow_clients_do_not_hold_off_scrapes(daemons):
    """Far more slow connections than MaxConnections= (64 by default), from the scraper's own address and from
    eight others, keep reconnecting: scrapes are still answered 200 at once, without waiting for any of them
    to time out. The daemon closes the slow ones to make room and says so in its metrics."""
    d = start(daemons)
    sources = [("127.0.0.1", 72)] + [("127.0.0.%d" % i, 10) for i in range(2, 10)]
    with SlowClients(d.exporter_port, sources) as slow:
        assert slow.connects >= 152
        results = []
        for _ in range(6):
            results.append(timed_scrape(d))
            time.sleep(0.5)
        # Keep-alive scrapers are not starved either: a second request on an open connection.
        c = http.client.HTTPConnection("127.0.0.1", d.exporter_port, timeout=10)
        c.request("GET", "/metrics")
        r1 = c.getresponse()
        r1.read()
        c.request("GET", "/")
        r2 = c.getresponse()
        r2.read()
        c.close()
        status, elapsed, body = timed_scrape(d)
    # Generous bounds: the point is not to wait for the slow clients' timeouts (5 s, 10 s).
    assert [r[0] for r in results] == [200] * 6, results
    assert max(r[1] for r in results) < 4, results
    assert (r1.status, r2.status) == (200, 200)
    assert status == 200 and elapsed < 4, (status, elapsed)
    s = series(body)
    assert s['memvisor_daemon_http_connections_evicted_total{reason="slow_request"}'] > 0, body
    assert s["memvisor_daemon_http_connections"] <= 64
    # The slow clients were told: 408 when closed to make room (or at their deadline), 503 when refused.
    assert set(slow.answers) <= {"HTTP/1.1 408 Request Timeout", "HTTP/1.1 503 Service Unavailable"}, slow.answers
    assert slow.answers.get("HTTP/1.1 408 Request Timeout", 0) > 0, slow.answers


def test_refused_client_reads_503_not_reset(daemons):
    """When no connection can be closed to make room (all are busy sending responses their clients do not
    read), a newcomer is refused — with a 503 it can read, also when its request comes in several pieces
    after the server has decided, not with a connection reset."""
    d = start(daemons, extra="MaxConnections=2\nTimeoutSec=60s\n")
    body_size = len(scrape(d)[2].encode())
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])
    # Enough pipelined scrapes that the responses cannot all fit into the socket buffers of a client
    # that reads nothing: the server stays busy writing to it.
    n = min((2 * wmem_max) // max(body_size, 1024) + 16, 100000)
    busy = []
    try:
        for _ in range(2):
            b = socket.socket()
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            b.connect(("127.0.0.1", d.exporter_port))
            b.settimeout(2)
            try:
                b.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n" * n)
            except TimeoutError:
                pass    # the server reads requests only as it answers them
            busy.append(b)
        deadline = time.monotonic() + 20
        while varlink_series(d).get("memvisor_daemon_http_connections") != 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        for _ in range(3):
            with socket.create_connection(("127.0.0.1", d.exporter_port), timeout=10) as c:
                c.sendall(b"GET /metrics HTTP/1.1\r\n")
                time.sleep(0.3)         # the server has refused by now; an unread request would reset
                c.sendall(b"Host: a\r\nUser-Agent: slow-to-write\r\n\r\n")
                out = b""
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), out
            assert b"Retry-After: 1\r\n" in out and b"Connection: close\r\n" in out, out
    finally:
        for b in busy:
            b.close()
    deadline = time.monotonic() + 20
    while True:
        status, _, body = timed_scrape(d)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200
    s = series(body)
    assert s['memvisor_daemon_http_connections_refused_total{reason="max_connections"}'] >= 3, body


def varlink_series(d):
    """The daemon's series as series() gives them, through GetMetrics: a scrape cannot get in while the
    exporter is full."""
    out = {}
    for m in ok(d, "GetMetrics", {})["metrics"]:
        for sample in m["samples"]:
            labels = ",".join('%s="%s"' % kv for kv in (sample.get("labels") or {}).items())
            out[m["name"] + ("{%s}" % labels if labels else "")] = sample.get("value")
    return out


def test_ctl_host_metrics_watch(daemons, ctl, build):
    d = start(daemons)
    addr = "unix:%s" % d.socket
    r = ctl("--json", "host", address=addr)
    assert r.returncode == 0, r.stderr
    host = json.loads(r.stdout)
    assert host["sample"]["commitLimitBytes"] == meminfo("CommitLimit")
    assert abs(host["sample"]["committedASBytes"] - meminfo("Committed_AS")) < 512 << 20
    r = ctl("host", address=addr)
    assert r.returncode == 0 and "Committed_AS:" in r.stdout and "CommitLimit:" in r.stdout
    r = ctl("--json", "metrics", address=addr)
    names = {f["name"] for f in json.loads(r.stdout)["metrics"]}
    assert "memvisor_host_memory_committed_as_bytes" in names and "memvisor_daemon_varlink_calls_total" in names

    # watch streams until interrupted: at least 3 samples in 1.5 s at 300ms.
    p = subprocess.Popen([str(build.memvisorctl), "-A", addr, "--json", "watch", "--interval", "300ms"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.terminate()
    out, _ = p.communicate(timeout=5)
    samples = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(samples) >= 3, out
    assert all(s["sample"]["memTotalBytes"] == meminfo("MemTotal") for s in samples)

    r = ctl("watch", "--interval", "5ms", address=addr)
    assert r.returncode == 2 and "--interval" in r.stderr

    with d.connect() as c:
        rep = c.call(M + "WatchMetrics", {"intervalUSec": 1}, more=True)
        assert rep["error"] == "org.varlink.service.InvalidParameter"
        assert rep["parameters"]["parameter"] == "intervalUSec"
        hist = c.call(M + "GetHostMemoryHistory", {})["parameters"]
        assert len(hist["samples"]) >= 3 and hist["capacity"] == 600
        ts = [s["realtimeUSec"] for s in hist["samples"]]
        assert ts == sorted(ts)
        assert len(c.call(M + "GetHostMemoryHistory", {"limit": 2})["parameters"]["samples"]) == 2
        rep = c.call(M + "GetHostMemoryHistory", {"limit": 0})
        assert rep["parameters"]["parameter"] == "limit"


def test_guest_series_appear_and_disappear(daemons, workdir):
    d = start(daemons)
    ok(d, "DefineVM", {"name": "fw", "ini": firmware_vm(workdir)})
    ok(d, "StartVM", {"name": "fw"})
    try:
        wait_state(d, "fw", "running")
        deadline = time.monotonic() + 15
        s = {}
        while time.monotonic() < deadline:
            s = series(scrape(d)[2])
            if 'memvisor_guest_resident_bytes{vm="fw"}' in s and \
                    any(k.startswith('memvisor_guest_node_resident_bytes{vm="fw"') for k in s):
                break
            time.sleep(0.2)
        assert s.get('memvisor_guest_state{vm="fw",state="running"}') == 1
        assert s.get('memvisor_guest_state{vm="fw",state="stopped"}') == 0
        assert s.get('memvisor_guest_vcpus{vm="fw"}') == 1
        assert s.get('memvisor_guest_memory_size_bytes{vm="fw"}') == 64 << 20
        assert s['memvisor_guest_resident_bytes{vm="fw"}'] > 1 << 20
        assert any(k.startswith('memvisor_guest_node_resident_bytes{vm="fw",node="0"}') for k in s)
    finally:
        d.call(M + "KillVM", {"name": "fw"})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and describe_state(d) in ("running", "stopping"):
        time.sleep(0.1)
    ok(d, "UndefineVM", {"name": "fw"})
    time.sleep(0.6)
    body = scrape(d)[2]
    assert 'vm="fw"' not in body


def describe_state(d):
    return ok(d, "DescribeVM", {"name": "fw"})["vm"]["state"]


def test_prometheus_server_scrapes(daemons, workdir):
    if not shutil.which("prometheus"):
        pytest.skip("prometheus missing (apt-get install prometheus)")
    d = start(daemons)
    port = free_port()
    cfg = workdir / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: memvisor\n"
                   "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % d.exporter_port)
    p = subprocess.Popen(["prometheus", "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % (workdir / "tsdb"),
                          "--web.listen-address=127.0.0.1:%d" % port], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline:
            try:
                q = urllib.parse.urlencode({"query": "memvisor_host_memory_committed_as_bytes"})
                with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?%s" % (port, q), timeout=5) as r:
                    res = json.load(r)["data"]["result"]
                if res:
                    value = float(res[0]["value"][1])
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert value is not None, "prometheus never returned the Committed_AS series"
        now = meminfo("Committed_AS")
        # Committed_AS moves while the test runs; within the sampling window it stays close.
        assert abs(value - now) < 256 << 20, (value, now)
        q = urllib.parse.urlencode({"query": "up{job='memvisor'}"})
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?%s" % (port, q), timeout=5) as r:
            assert json.load(r)["data"]["result"][0]["value"][1] == "1"
    finally:
        p.terminate()
        p.wait(10)


def wait_series(d, predicate, timeout=20, what="series"):
    deadline = time.monotonic() + timeout
    s = {}
    while time.monotonic() < deadline:
        s = series(scrape(d)[2])
        if predicate(s):
            return s
        time.sleep(0.2)
    raise AssertionError("%s not seen within %ds; guest series: %s" % (
        what, timeout, {k: v for k, v in s.items() if 'vm="' in k}))


def promtool_clean(body):
    if not shutil.which("promtool"):
        return
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)


def test_guest_vcpu_pinning_and_totals_series(daemons, workdir):
    d = start(daemons)
    own = len(os.sched_getaffinity(d.proc.pid))
    ok(d, "DefineVM", {"name": "pin", "ini": firmware_vm(workdir, "VCPUs=2\n[CPU]\nVCPUAffinity=0:0\n")})
    ok(d, "StartVM", {"name": "pin"})
    try:
        wait_state(d, "pin", "running")
        s = wait_series(d, lambda s: all('memvisor_guest_vcpu_last_cpu{vm="pin",vcpu="%d"}' % i in s
                                         for i in (0, 1)), what="last CPU of both vCPUs")
        # vCPU 0 is pinned by VCPUAffinity=0:0: one info series, for CPU 0, and it ran there.
        assert s['memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="0",cpu="0"}'] == 1
        assert [k for k in s if k.startswith('memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="0"')] == \
            ['memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="0",cpu="0"}']
        assert s['memvisor_guest_vcpu_allowed_cpus{vm="pin",vcpu="0"}'] == 1
        assert s['memvisor_guest_vcpu_last_cpu{vm="pin",vcpu="0"}'] == 0
        # vCPU 1 is not named: it keeps the daemon's affinity, and no per-CPU series are spent on it.
        assert s['memvisor_guest_vcpu_allowed_cpus{vm="pin",vcpu="1"}'] == own
        assert not any(k.startswith('memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="1"') for k in s)
        assert 0 <= s['memvisor_guest_vcpu_last_cpu{vm="pin",vcpu="1"}'] < os.cpu_count()
        # Running totals exist from the start (no migration on this guest yet); balloon steps as Balloon=yes.
        for name in ("migrations_total", "migration_failures_total", "migration_pages_total",
                     "migration_bytes_total", "migration_seconds_total", "balloon_steps_total",
                     "balloon_steps_reached_total", "balloon_step_seconds_total"):
            assert s['memvisor_guest_%s{vm="pin"}' % name] == 0, name
        promtool_clean(scrape(d)[2])

        if own >= 2 and os.cpu_count() >= 2:
            # Re-pinned at runtime: now vCPU 1 has its own series too, for CPU 1 only.
            ok(d, "PinVCPUs", {"name": "pin", "map": "1:1"})
            s = wait_series(d, lambda s: 'memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="1",cpu="1"}' in s,
                            what="the re-pinned vCPU's series")
            assert s['memvisor_guest_vcpu_allowed_cpus{vm="pin",vcpu="1"}'] == 1
            assert [k for k in s if k.startswith('memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="1"')] == \
                ['memvisor_guest_vcpu_pinned_cpu{vm="pin",vcpu="1",cpu="1"}']
    finally:
        d.call(M + "KillVM", {"name": "pin"})
    wait_state(d, "pin", "stopped", timeout=20)
    s = wait_series(d, lambda s: not any(k.startswith("memvisor_guest_vcpu_") and 'vm="pin"' in k for k in s),
                    what="vCPU series gone once stopped")
    assert s['memvisor_guest_migrations_total{vm="pin"}'] == 0


def test_guest_balloon_target_and_steps_series(daemons, workdir):
    """A firmware guest has the virtio-balloon device but no driver: QEMU accepts a target (the balloon never
    moves), the guest reports no statistics. Target and step counts are the daemon's own and show."""
    d = start(daemons)
    ok(d, "DefineVM", {"name": "bal", "ini": firmware_vm(workdir, "[Balloon]\nFloor=16M\n")})
    ok(d, "StartVM", {"name": "bal"})
    try:
        wait_state(d, "bal", "running")
        s = wait_series(d, lambda s: 'memvisor_guest_balloon_target_bytes{vm="bal"}' in s, what="balloon target")
        assert s['memvisor_guest_balloon_target_bytes{vm="bal"}'] == 64 << 20     # nothing asked: boot memory
        # The actual size is the balloon module's own reading (GetBalloon's actualBytes), not a second poll.
        s = wait_series(d, lambda s: 'memvisor_guest_balloon_actual_bytes{vm="bal"}' in s, what="balloon actual")
        assert s['memvisor_guest_balloon_actual_bytes{vm="bal"}'] == 64 << 20     # no driver: never moves
        assert ok(d, "GetBalloon", {"name": "bal"})["balloon"]["actualBytes"] == 64 << 20
        ok(d, "SetBalloon", {"name": "bal", "targetBytes": 48 << 20})
        s = wait_series(d, lambda s: s.get('memvisor_guest_balloon_target_bytes{vm="bal"}') == 48 << 20,
                        what="the new target")
        for stat in ("free_bytes", "available_bytes", "total_bytes", "disk_caches_bytes", "swap_in_bytes_total",
                     "major_faults_total", "stats_timestamp_seconds"):
            assert 'memvisor_guest_balloon_%s{vm="bal"}' % stat not in s, stat   # no driver, no statistics

        # Two schedule steps: counted as they start; without a driver none is reached.
        ok(d, "SetBalloonSchedule", {"name": "bal", "mode": "oscillate", "fromBytes": 32 << 20,
                                     "toBytes": 56 << 20, "everyUSec": 200000, "count": 2})
        s = wait_series(d, lambda s: s.get('memvisor_guest_balloon_steps_total{vm="bal"}') == 2, what="2 steps")
        assert s['memvisor_guest_balloon_steps_reached_total{vm="bal"}'] == 0
        assert s['memvisor_guest_balloon_step_seconds_total{vm="bal"}'] == 0
        s = wait_series(d, lambda s: s.get('memvisor_guest_balloon_target_bytes{vm="bal"}') == 56 << 20,
                        what="the last step's target")
        promtool_clean(scrape(d)[2])
    finally:
        d.call(M + "KillVM", {"name": "bal"})
    wait_state(d, "bal", "stopped", timeout=20)
    # Not tracked any more: no target; the step count is the daemon's and stays (a counter never goes back).
    s = wait_series(d, lambda s: 'memvisor_guest_balloon_target_bytes{vm="bal"}' not in s, what="target gone")
    assert 'memvisor_guest_balloon_actual_bytes{vm="bal"}' not in s
    assert s['memvisor_guest_balloon_steps_total{vm="bal"}'] == 2
    ok(d, "StartVM", {"name": "bal"})
    try:
        wait_state(d, "bal", "running")
        s = wait_series(d, lambda s: s.get('memvisor_guest_balloon_target_bytes{vm="bal"}') == 64 << 20,
                        what="the target of the new QEMU")
        assert s['memvisor_guest_balloon_steps_total{vm="bal"}'] == 2
    finally:
        d.call(M + "KillVM", {"name": "bal"})
    wait_state(d, "bal", "stopped", timeout=20)


def test_linux_guest_balloon_statistics_series(daemons, ctl, test_guest):
    """The Linux test guest loads virtio_balloon: its statistics and reached steps show as series."""
    d = start(daemons, extra="[Balloon]\nStatsIntervalSec=1s\n")
    guest_vm(d, test_guest)
    start_and_wait_ready(d, ctl)
    try:
        s = wait_series(d, lambda s: 'memvisor_guest_balloon_free_bytes{vm="web"}' in s, timeout=30,
                        what="guest statistics")
        b = ok(d, "GetBalloon", {"name": "web"})["balloon"]
        assert s['memvisor_guest_balloon_target_bytes{vm="web"}'] == 512 << 20
        assert 400 << 20 < s['memvisor_guest_balloon_total_bytes{vm="web"}'] <= 512 << 20
        assert s['memvisor_guest_balloon_total_bytes{vm="web"}'] == b["guestStats"]["totalBytes"]
        for stat in ("available_bytes", "disk_caches_bytes", "swap_in_bytes_total", "swap_out_bytes_total",
                     "major_faults_total", "minor_faults_total"):
            assert 'memvisor_guest_balloon_%s{vm="web"}' % stat in s, stat
        assert s['memvisor_guest_balloon_minor_faults_total{vm="web"}'] > 0
        assert abs(s['memvisor_guest_balloon_stats_timestamp_seconds{vm="web"}'] - time.time()) < 30

        ok(d, "SetBalloonSchedule", {"name": "web", "mode": "oscillate", "fromBytes": 384 << 20,
                                     "toBytes": 448 << 20, "everyUSec": 3000000, "count": 2})
        s = wait_series(d, lambda s: s.get('memvisor_guest_balloon_steps_reached_total{vm="web"}', 0) >= 1,
                        timeout=30, what="a reached step")
        steps = ok(d, "GetBalloonSteps", {"name": "web"})["steps"]
        reached = [st for st in steps if st["reached"]]
        assert s['memvisor_guest_balloon_steps_total{vm="web"}'] >= 1
        assert s['memvisor_guest_balloon_step_seconds_total{vm="web"}'] == \
            pytest.approx(sum(st["timeToReachUSec"] for st in reached[:int(
                s['memvisor_guest_balloon_steps_reached_total{vm="web"}'])]) / 1e6)
        assert s['memvisor_guest_balloon_step_seconds_total{vm="web"}'] > 0
        promtool_clean(scrape(d)[2])
    finally:
        ctl("kill", "web", address=d.socket)
