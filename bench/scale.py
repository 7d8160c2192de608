#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""scale: memvisord with 1,000 defined and running guests. Each guest is bench/fake-qemu (a QMP-speaking
stand-in for QEMU of about 1 MiB), so the figures are the daemon's own: its memory, a full /metrics scrape,
`memvisorctl list`, and how long a restarted memvisord takes to re-adopt every guest. Next to each, in the
same run, a peer doing the comparable job on the same machine: prometheus-node-exporter's scrape (default
collectors) and `ps -e` listing the same processes.

Standard library only; runs with /usr/bin/python3. Prints figures, targets and ratios and never asserts
timings: the exit status is non-zero only when the benchmark itself cannot run. See bench/README.md."""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
M = "io.memvisor.Manager."
TARGETS = {"rss_mib": 16.0, "scrape_p50_ms": 5.0, "list_p50_ms": 20.0, "readopt_s": 2.0}


class BenchError(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Varlink:
    def __init__(self, path, timeout=60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def call(self, method, parameters=None):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        self.sock.sendall(json.dumps(msg).encode() + b"\0")
        while b"\0" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise BenchError("memvisord closed the connection")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        reply = json.loads(raw)
        if "error" in reply:
            raise BenchError("%s: %s %s" % (method, reply["error"], reply.get("parameters")))
        return reply.get("parameters", {})

    def close(self):
        self.sock.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="memvisor-scale.", dir=args.tmpdir))
        self.run_dir, self.state_dir, self.vm_dir = self.tmp / "run", self.tmp / "state", self.tmp / "vms"
        self.socket = self.run_dir / "io.memvisor.Manager"
        self.port = free_port()
        self.daemon = None
        self.log_file = open(self.tmp / "memvisord.log", "ab")
        self.guest_pids = set()
        self.peer = None

    def setup(self):
        self.vm_dir.mkdir()
        disk = self.tmp / "blank.img"
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        for i in range(self.args.guests):
            (self.vm_dir / ("g%04d.vm" % i)).write_text(
                "[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\nEmulator=%s\nAutostart=yes\nStartTimeoutSec=5min\n"
                % (disk, self.args.fake_qemu))
        (self.tmp / "memvisord.conf").write_text(
            "[Exporter]\nListenAddress=127.0.0.1:%d\n[DBus]\nAddress=none\n" % self.port)

    def start_daemon(self):
        argv = [self.args.memvisord, "--runtime-dir=%s" % self.run_dir, "--state-dir=%s" % self.state_dir,
                "--config=%s" % (self.tmp / "memvisord.conf"), "--vm-dir=%s" % self.vm_dir,
                "--log-target=console", "--log-level=notice"]
        t0 = time.monotonic()
        self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                       stderr=subprocess.STDOUT)
        deadline = t0 + self.args.start_timeout
        while True:
            if self.daemon.poll() is not None:
                raise BenchError("memvisord exited with %d; see %s" % (self.daemon.returncode,
                                                                        self.tmp / "memvisord.log"))
            try:
                c = Varlink(self.socket, timeout=5)
                c.call("org.varlink.service.GetInfo")
                c.close()
                return t0
            except (OSError, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError("memvisord did not answer within %ds" % self.args.start_timeout)
                time.sleep(0.01)

    def list_vms(self):
        c = Varlink(self.socket)
        try:
            return c.call(M + "ListVMs")["vms"]
        finally:
            c.close()

    def wait_all_running(self, t0, expect_pids=None):
        deadline = t0 + self.args.start_timeout
        while True:
            vms = self.list_vms()
            running = [v for v in vms if v["state"] == "running"]
            if len(running) == self.args.guests:
                pids = {v["pid"] for v in running}
                if expect_pids is not None and pids != expect_pids:
                    raise BenchError("re-adopted guests have other pids: %d differ"
                                     % len(pids.symmetric_difference(expect_pids)))
                return time.monotonic() - t0, pids
            bad = [v for v in vms if v["state"] in ("failed", "stopped")]
            if bad:
                raise BenchError("guest %s is %s: %s" % (bad[0]["name"], bad[0]["state"],
                                                          bad[0].get("reason", "")))
            if time.monotonic() > deadline:
                raise BenchError("only %d of %d guests running after %ds" % (len(running), self.args.guests,
                                                                              self.args.start_timeout))
            time.sleep(0.05)

    def scrape_ms(self, port, rounds, path="/metrics"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times, size = [], 0
        for _ in range(rounds + 2):
            t0 = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            times.append((time.perf_counter() - t0) * 1000.0)
            if r.status != 200:
                raise BenchError("GET %s on port %d: %d" % (path, port, r.status))
            size = len(body)
        conn.close()
        return times[2:], size          # the first two warm up

    def run_ms(self, argv, rounds):
        times = []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            times.append((time.perf_counter() - t0) * 1000.0)
            if r.returncode != 0:
                raise BenchError("%s failed: %s" % (" ".join(argv), r.stderr.decode().strip()))
        return times[1:]

    def start_peer(self):
        exe = shutil.which("prometheus-node-exporter")
        if not exe:
            return None
        port = free_port()
        self.peer = subprocess.Popen([exe, "--web.listen-address=127.0.0.1:%d" % port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return port
            except OSError:
                time.sleep(0.05)
        return None

    def cleanup(self):
        if self.peer:
            self.peer.kill()
            self.peer.wait()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        # the guests outlive memvisord by design (re-adoption): end them here
        for pid in self.guest_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept %s" % self.tmp)


def verdict(value, target):
    return "meets the target" if value <= target else "MISSES the target"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build = Path(os.environ.get("MEMVISOR_BUILD_DIR", REPO / "build"))
    ap.add_argument("--memvisord", default=str(build / "memvisord"))
    ap.add_argument("--memvisorctl", default=str(build / "memvisorctl"))
    ap.add_argument("--fake-qemu", default=str(build / "bench" / "fake-qemu"))
    ap.add_argument("--guests", type=int, default=1000, help="number of guests (default 1000)")
    ap.add_argument("--rounds", type=int, default=50, help="scrapes and list calls measured (default 50)")
    ap.add_argument("--settle", type=float, default=5.0, help="wait after start-up before measuring, s")
    ap.add_argument("--start-timeout", type=float, default=600.0)
    ap.add_argument("--tmpdir", help="where the temporary directory goes (default $TMPDIR or /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args()
    for p in (args.memvisord, args.memvisorctl, args.fake_qemu):
        if not os.access(p, os.X_OK):
            log("error: %s is not an executable (build it: ninja -C build)" % p)
            return 1

    # every guest holds a QMP socket and a pidfd in memvisord and is one process more for this user
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY and hard < args.guests + 200:
        log("error: RLIMIT_NPROC %d is too low for %d guests" % (hard, args.guests))
        return 1

    b = Bench(args)
    try:
        b.setup()
        log("scale: %d guests (bench/fake-qemu), memvisord %s, in %s" % (args.guests, args.memvisord, b.tmp))
        t0 = b.start_daemon()
        startup_s, pids = b.wait_all_running(t0)
        b.guest_pids |= pids
        log("start-up: all %d guests running %.2f s after exec" % (args.guests, startup_s))
        time.sleep(args.settle)
        pid = b.daemon.pid
        rss = status_kib(pid, "VmRSS") / 1024.0
        hwm = status_kib(pid, "VmHWM") / 1024.0
        nfd = fds(pid)
        guest_rss = sorted(status_kib(p, "VmRSS") for p in list(pids)[:20])

        scrape, size = b.scrape_ms(b.port, args.rounds)
        peer_port = b.start_peer()
        peer = peer_size = None
        if peer_port:
            peer, peer_size = b.scrape_ms(peer_port, args.rounds)
        ctl = b.run_ms([args.memvisorctl, "--address=unix:%s" % b.socket, "--no-pager", "list"], args.rounds)
        ps = b.run_ms(["ps", "-e", "-o", "pid,stat,etime,rss,comm"], args.rounds)

        # re-adoption: SIGKILL memvisord (the guests live on), start it again, wait for every guest
        b.daemon.kill()
        b.daemon.wait()
        t0 = b.start_daemon()
        readopt_s, _ = b.wait_all_running(t0, expect_pids=pids)
        rss_after = status_kib(b.daemon.pid, "VmRSS") / 1024.0

        log()
        log("memvisord memory with %d guests: VmRSS %.1f MiB (target <= %.0f MiB: %s), VmHWM %.1f MiB, "
            "%d fds; %.1f KiB of RSS per guest above an idle daemon's ~4 MiB" %
            (args.guests, rss, TARGETS["rss_mib"], verdict(rss, TARGETS["rss_mib"]), hwm, nfd,
             max(0.0, rss - 4.0) * 1024.0 / args.guests))
        log("  (a fake-qemu's own VmRSS: median %d KiB; after re-adoption memvisord's VmRSS is %.1f MiB)" %
            (guest_rss[len(guest_rss) // 2], rss_after))
        p50 = pct(scrape, 50)
        log("full /metrics scrape (%d bytes): p50 %.2f ms, p90 %.2f ms, max %.2f ms (target p50 <= %.0f ms: %s)"
            % (size, p50, pct(scrape, 90), max(scrape), TARGETS["scrape_p50_ms"],
               verdict(p50, TARGETS["scrape_p50_ms"])))
        if peer:
            log("  peer: prometheus-node-exporter (default collectors, %d bytes): p50 %.2f ms — memvisord/peer "
                "%.2f" % (peer_size, pct(peer, 50), p50 / pct(peer, 50)))
        else:
            log("  peer: prometheus-node-exporter not installed, no comparison")
        l50 = pct(ctl, 50)
        log("memvisorctl list (%d guests): p50 %.2f ms, p90 %.2f ms (target p50 <= %.0f ms: %s)" %
            (args.guests, l50, pct(ctl, 90), TARGETS["list_p50_ms"], verdict(l50, TARGETS["list_p50_ms"])))
        log("  peer: ps -e over the same processes: p50 %.2f ms — memvisorctl/ps %.2f" %
            (pct(ps, 50), l50 / pct(ps, 50)))
        log("re-adoption after SIGKILL: all %d guests running (same pids) %.2f s after exec "
            "(target <= %.0f s: %s); first start-up took %.2f s" %
            (args.guests, readopt_s, TARGETS["readopt_s"], verdict(readopt_s, TARGETS["readopt_s"]),
             startup_s))
        return 0
    except BenchError as e:
        log("error: %s" % e)
        try:
            with open(b.tmp / "memvisord.log", "rb") as f:
                log(f.read()[-3000:].decode(errors="replace"))
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            for v in b.list_vms():
                if v.get("pid"):
                    b.guest_pids.add(v["pid"])
        except (OSError, BenchError, KeyError):
            pass
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
