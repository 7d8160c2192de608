#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""soak: memvisord under a long mix of clients against 8 QEMU guests — listing and describing, /metrics
scrapes, the metrics API, balloon targets up and down, vCPU pinning, event subscribers that connect and
leave, metric watchers — and whether its memory and open fds stay flat. Prints RSS and fds at the start, over
time and at the end (after the clients stopped), calls answered per kind and errors by kind.

Standard library only; runs with /usr/bin/python3. It never asserts: the exit status is non-zero only when
the benchmark itself cannot run (the daemon fails to start or dies). See bench/README.md."""

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
M = "io.memvisor.Manager."
MiB = 1 << 20


def log(msg=""):
    print(msg, flush=True)


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, method, parameters=None, more=False):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        if more:
            msg["more"] = True
        self.sock.sendall(json.dumps(msg).encode() + b"\0")

    def receive(self):
        while b"\0" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by memvisord")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method, parameters=None):
        self.send(method, parameters)
        return self.receive()

    def close(self):
        self.sock.close()


class Soak:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="memvisor-soak.", dir=args.tmpdir))
        self.socket = self.tmp / "run" / "io.memvisor.Manager"
        self.port = free_port()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.errors = collections.Counter()
        self.daemon = None
        self.names = ["s%d" % i for i in range(args.guests)]

    def count(self, kind, reply=None, exc=None):
        with self.lock:
            if exc is not None:
                self.errors["%s: %s" % (kind, type(exc).__name__)] += 1
            elif reply is not None and "error" in reply:
                self.errors["%s: %s" % (kind, reply["error"].replace(M, ""))] += 1
            else:
                self.calls[kind] += 1

    def setup(self):
        vms = self.tmp / "vms"
        vms.mkdir()
        for i, n in enumerate(self.names):
            disk = self.tmp / ("%s.img" % n)
            with open(disk, "wb") as f:
                f.truncate(1 << 20)
            # -S: QEMU and QMP run, the vCPUs never do (no CPU used); the balloon device answers
            (vms / (n + ".vm")).write_text(
                "[VM]\nMemory=64M\nVCPUs=2\nAccelerator=tcg\nDisk=%s\nAutostart=yes\nExtraArgs=-S\n"
                "StopTimeoutSec=2s\n" % disk)
        (self.tmp / "memvisord.conf").write_text(
            "[Exporter]\nListenAddress=127.0.0.1:%d\n[DBus]\nAddress=none\n" % self.port)
        argv = [self.args.memvisord, "--runtime-dir=%s" % (self.tmp / "run"),
                "--state-dir=%s" % (self.tmp / "state"), "--config=%s" % (self.tmp / "memvisord.conf"),
                "--vm-dir=%s" % vms, "--log-target=console", "--log-level=notice"]
        self.log_file = open(self.tmp / "memvisord.log", "ab")
        self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                       stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                c = Conn(self.socket)
                vms = c.call(M + "ListVMs")["parameters"]["vms"]
                c.close()
                if sum(v["state"] == "running" for v in vms) == len(self.names):
                    return
            except (OSError, ConnectionError, KeyError):
                pass
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("memvisord or its guests did not come up; see %s" % self.log_file.name)
            time.sleep(0.1)

    # ---- the clients; each loops until stop, on its own connection(s)

    def loop(self, kind, fn, period):
        rnd = random.Random(kind)
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = Conn(self.socket)
                fn(conn, rnd)
            except (OSError, ConnectionError, ValueError) as e:
                self.count(kind, exc=e)
                if conn:
                    conn.close()
                conn = None
            self.stop.wait(period * rnd.uniform(0.5, 1.5))
        if conn:
            conn.close()

    def lister(self, c, rnd):
        r = c.call(M + "ListVMs")
        self.count("ListVMs", r)
        r = c.call(M + "DescribeVM", {"name": rnd.choice(self.names)})
        self.count("DescribeVM", r)

    def metrics_api(self, c, rnd):
        r = c.call(M + rnd.choice(["GetMetrics", "GetHostMemory", "GetDaemonStatus"]))
        self.count("metrics API", r)

    def balloon(self, c, rnd):
        r = c.call(M + "SetBalloon", {"name": rnd.choice(self.names), "targetBytes": rnd.choice([32, 48, 64]) * MiB})
        self.count("SetBalloon", r)
        r = c.call(M + "GetBalloon", {"name": rnd.choice(self.names)})
        self.count("GetBalloon", r)

    def pinner(self, c, rnd):
        cpus = os.cpu_count() or 1
        m = "0:%d 1:%d" % (rnd.randrange(cpus), rnd.randrange(cpus))
        r = c.call(M + "PinVCPUs", {"name": rnd.choice(self.names), "map": m})
        self.count("PinVCPUs", r)

    def scraper(self):
        while not self.stop.is_set():
            try:
                h = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                for _ in range(random.randint(1, 20)):
                    h.request("GET", "/metrics")
                    resp = h.getresponse()
                    resp.read()
                    if resp.status == 200:
                        self.count("/metrics scrape")
                    else:
                        self.count("/metrics scrape", {"error": "HTTP %d" % resp.status})
                    if self.stop.wait(0.1):
                        break
                h.close()
            except (OSError, http.client.HTTPException) as e:
                self.count("/metrics scrape", exc=e)
                self.stop.wait(0.1)

    def subscriber(self, method, params):
        """Streams that connect, read for a while (or not at all) and leave."""
        rnd = random.Random(method)
        while not self.stop.is_set():
            try:
                c = Conn(self.socket)
                c.send(M + method, params, more=True)
                first = c.receive()
                self.count(method, first)
                end = time.monotonic() + rnd.uniform(0.5, 3.0)
                if rnd.random() < 0.7:
                    c.sock.settimeout(0.5)
                    while time.monotonic() < end and not self.stop.is_set():
                        try:
                            c.receive()
                        except socket.timeout:
                            pass
                else:
                    self.stop.wait(end - time.monotonic())     # a subscriber that never reads
                c.close()
            except (OSError, ConnectionError, ValueError) as e:
                self.count(method, exc=e)
                self.stop.wait(0.2)

    def sample(self):
        pid = self.daemon.pid
        return status_kib(pid, "VmRSS"), len(os.listdir("/proc/%d/fd" % pid))

    def run(self):
        a = self.args
        threads = [
            threading.Thread(target=self.loop, args=("lister", self.lister, 0.02)),
            threading.Thread(target=self.loop, args=("metrics", self.metrics_api, 0.1)),
            threading.Thread(target=self.loop, args=("balloon", self.balloon, 0.2)),
            threading.Thread(target=self.loop, args=("pin", self.pinner, 0.5)),
            threading.Thread(target=self.scraper),
            threading.Thread(target=self.subscriber, args=("SubscribeEvents", None)),
            threading.Thread(target=self.subscriber, args=("SubscribeEvents", None)),
            threading.Thread(target=self.subscriber, args=("WatchMetrics", {"intervalUSec": 200000})),
        ]
        time.sleep(a.settle)
        rss0, fds0 = self.sample()
        log("start (guests running, %.0f s settled): memvisord VmRSS %d KiB, %d fds" % (a.settle, rss0, fds0))
        for t in threads:
            t.daemon = True
            t.start()
        time.sleep(a.warmup)
        rss_w, fds_w = self.sample()
        log("after %.0f s of warm-up under load: VmRSS %d KiB, %d fds" % (a.warmup, rss_w, fds_w))
        t_end = time.monotonic() + a.minutes * 60
        samples = []
        while time.monotonic() < t_end:
            time.sleep(min(a.every, max(0.0, t_end - time.monotonic())))
            if self.daemon.poll() is not None:
                raise RuntimeError("memvisord exited with %d during the soak" % self.daemon.returncode)
            rss, fds = self.sample()
            samples.append((rss, fds))
            with self.lock:
                total = sum(self.calls.values())
                errs = sum(self.errors.values())
            log("  %5.1f min: VmRSS %d KiB, %d fds, %d calls answered, %d errors" %
                (a.minutes - (t_end - time.monotonic()) / 60, rss, fds, total, errs))
        rss_e, fds_e = samples[-1] if samples else self.sample()
        self.stop.set()
        for t in threads:
            t.join(30)
        time.sleep(a.settle)
        rss1, fds1 = self.sample()
        log()
        log("under load: VmRSS %d KiB after the warm-up, %d KiB at the end (%+d KiB, %.3fx)" %
            (rss_w, rss_e, rss_e - rss_w, rss_e / rss_w))
        log("quiet: VmRSS %d KiB before the clients, %d KiB after they left (%+d KiB); fds %d before, %d after" %
            (rss0, rss1, rss1 - rss0, fds0, fds1))
        if samples:
            log("during the soak: VmRSS %d–%d KiB, fds %d–%d" % (min(s[0] for s in samples),
                                                                 max(s[0] for s in samples),
                                                                 min(s[1] for s in samples),
                                                                 max(s[1] for s in samples)))
        log("calls answered in %.0f min (+ warm-up): %d" % (a.minutes, sum(self.calls.values())))
        for k, v in sorted(self.calls.items()):
            log("  %-22s %9d" % (k, v))
        log("errors by kind: %d" % sum(self.errors.values()))
        for k, v in sorted(self.errors.items()):
            log("  %-40s %7d" % (k, v))
        log("flat (information): RSS under load %s (end within 5%% of after the warm-up), fds %s (the same "
            "before and after the clients)" % ("yes" if rss_e <= rss_w * 1.05 else "NO",
                                               "yes" if fds1 == fds0 else "NO"))

    def cleanup(self):
        if self.daemon and self.daemon.poll() is None:
            c = None
            try:
                c = Conn(self.socket)
                for n in self.names:
                    c.call(M + "KillVM", {"name": n, "signal": "KILL"})
            except (OSError, ConnectionError, ValueError):
                pass
            if c:
                c.close()
            time.sleep(1)
            self.daemon.terminate()
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        if self.args.keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build = Path(os.environ.get("MEMVISOR_BUILD_DIR", REPO / "build"))
    ap.add_argument("--memvisord", default=str(build / "memvisord"))
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    ap.add_argument("--guests", type=int, default=8)
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    ap.add_argument("--settle", type=float, default=5.0, help="quiet seconds before and after the clients")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds of load before the first figure (buffers reach their working size)")
    ap.add_argument("--tmpdir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        log("error: qemu-system-x86_64 not installed")
        return 1
    s = Soak(args)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    try:
        s.setup()
        log("soak: %d guests (QEMU -S), %.0f min, memvisord %s, in %s" % (args.guests, args.minutes,
                                                                         args.memvisord, s.tmp))
        s.run()
        return 0
    except RuntimeError as e:
        log("error: %s" % e)
        return 1
    finally:
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
