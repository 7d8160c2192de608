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
