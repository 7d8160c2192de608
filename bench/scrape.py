#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""scrape: memvisord's Prometheus exporter (GET /metrics, 16 supervised guests' series present) against
prometheus-node-exporter with only its meminfo collector, on the same machine with the same request loop:
p50/p99 latency and server CPU per scrape for each, and the ratios.

Standard library only; runs with /usr/bin/python3. Prints figures and never asserts timings: the exit status
is non-zero only when the benchmark itself cannot run (a server fails to start or answers wrongly). See
bench/README.md."""

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

TARGET_P50_RATIO = 0.5              # memvisord p50 <= 0.5x node_exporter's

READY_TIMEOUT = 30.0                # a server must answer GET /metrics within this
DAEMON_STOP_TIMEOUT = 5.0
IO_TIMEOUT = 5.0                    # a reply must come within this
MAX_BODY = 64 << 20
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot run (a server fails to start, a reply is wrong, a guest fails)."""


class Interrupted(BaseException):
    pass


def log(msg=""):
    print(msg, flush=True)


# ---- processes ----------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # Runs in the child between fork and exec: the child gets SIGKILL when the benchmark goes away.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, log_file):
    with open(log_file, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                close_fds=True, preexec_fn=_die_with_parent)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def pids_with_cmdline(needle):
    """Processes other than this one whose command line contains needle (bytes)."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % e, "rb") as f:
                if needle in f.read() and alive(int(e)):
                    out.append(int(e))
        except OSError:
            pass
    return out


def cpu_sample(pid):
    """utime+stime of the whole process in clock ticks (dead threads included) and the exact CPU time
    (sum_exec_runtime, ns) of its live threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    exec_ns = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                exec_ns += int(f.read().split()[0])
        except OSError:
            pass    # a thread that just ended
    return int(fields[11]) + int(fields[12]), exec_ns


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP client --------------------------------------------------------------------------------------

class HttpConnection:
    """A keep-alive HTTP/1.1 client that sends GET /metrics and reads one response at a time."""

    REQUEST = b"GET /metrics HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\nUser-Agent: memvisor-bench\r\n\r\n"

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = self.REQUEST % ("127.0.0.1:%d" % port).encode()
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(1 << 18)
        if not data:
            raise BenchError("the server closed the connection")
        self.buf += data

    def get(self):
        """One request; returns (status, headers dict with lower-case names, body)."""
        self.sock.sendall(self.request)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 65536:
                raise BenchError("response head too long")
            self._fill()
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BenchError("malformed status line %r" % head[0])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            if n > MAX_BODY:
                raise BenchError("body of %d bytes" % n)
            while len(self.buf) < n:
                self._fill()
            body = bytes(self.buf[:n])
            del self.buf[:n]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            raise BenchError("response without Content-Length on a keep-alive connection")
        if headers.get("connection", "").lower() == "close":
            raise BenchError("the server closes keep-alive connections")
        return int(parts[1]), headers, body

    def _read_chunked(self):
        body = bytearray()
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, _, rest = bytes(self.buf).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            self.buf = bytearray(rest)
            while len(self.buf) < size + 2:
                self._fill()
            body += self.buf[:size]
            del self.buf[:size + 2]
            if size == 0:
                return bytes(body)


def check_reply(name, status, headers, body):
    if status != 200:
        raise BenchError("%s answered %d" % (name, status))
    ctype = headers.get("content-type", "")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        raise BenchError("%s sent Content-Type %r" % (name, ctype))
    if b"# TYPE " not in body:
        raise BenchError("%s sent no metric families" % name)


# ---- the run ------------------------------------------------------------------------------------------

class Server:
    def __init__(self, name, port, proc):
        self.name = name
        self.port = port
        self.proc = proc
        self.latencies = []        # seconds, every measured request
        self.cpu_ticks = 0
        self.cpu_ns = 0
        self.requests = 0
        self.body_size = 0
        self.series = 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = None
        self.daemon = None
        self.node = None
        self.servers = []

    def setup(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="scrape.", dir=self.args.tmpdir))
        self.needle = str(self.tmp).encode()
        for d in ("run", "state", "vms", "disks"):
            (self.tmp / d).mkdir()
        self.names = ["g%02d" % i for i in range(self.args.guests)]
        for n in self.names:
            disk = self.tmp / "disks" / (n + ".img")
            with open(disk, "wb") as f:
                f.truncate(1 << 20)
            # Firmware TCG guests stopped before their first instruction (-S): QEMU and QMP are up, the vCPUs
            # never run. memvisord sends "cont" only to guests it started paused itself, so these stay put.
            (self.tmp / "vms" / (n + ".vm")).write_text(
                "[VM]\nMemory=%s\nAccelerator=tcg\nDisk=%s\nAutostart=yes\nStartTimeoutSec=5min\n"
                "StopTimeoutSec=1s\nExtraArgs=-S\n" % (self.args.memory, disk))
        self.mv_port = free_port()
        self.ne_port = free_port()
        while self.ne_port == self.mv_port:
            self.ne_port = free_port()
        (self.tmp / "memvisord.conf").write_text(
            "[Metrics]\nHostSampleIntervalSec=1s\n[Exporter]\nListenAddress=127.0.0.1:%d\n" % self.mv_port)

    def wait_ready(self, name, proc, port, logf):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise BenchError("%s exited with %d during start-up" % (name, proc.returncode))
            try:
                c = HttpConnection(port, timeout=2.0)
                try:
                    status, headers, body = c.get()
                finally:
                    c.close()
                check_reply(name, status, headers, body)
                return body
            except (OSError, socket.timeout):
                pass
            if time.monotonic() > deadline:
                raise BenchError("%s did not serve /metrics on 127.0.0.1:%d within %.0fs (log: %s)"
                                 % (name, port, READY_TIMEOUT, logf))
            time.sleep(0.05)

    def start(self):
        mv_log = self.tmp / "memvisord.log"
        self.daemon = spawn([self.args.memvisord, "--config=%s" % (self.tmp / "memvisord.conf"),
                             "--runtime-dir=%s" % (self.tmp / "run"), "--state-dir=%s" % (self.tmp / "state"),
                             "--vm-dir=%s" % (self.tmp / "vms"), "--log-target=console"], mv_log)
        ne_log = self.tmp / "node-exporter.log"
        self.node = spawn([self.args.node_exporter, "--collector.disable-defaults", "--collector.meminfo",
                           "--web.listen-address=127.0.0.1:%d" % self.ne_port], ne_log)
        self.wait_ready("memvisord", self.daemon, self.mv_port, mv_log)
        self.wait_ready("node_exporter", self.node, self.ne_port, ne_log)

        # Every guest running with its series in the exporter (RSS comes with the next host sample).
        deadline = time.monotonic() + self.args.start_timeout
        want = [b'memvisor_guest_state{vm="%s",state="running"} 1' % n.encode() for n in self.names]
        want += [b'memvisor_guest_resident_bytes{vm="%s"}' % n.encode() for n in self.names]
        while True:
            c = HttpConnection(self.mv_port)
            try:
                body = c.get()[2]
            finally:
                c.close()
            missing = [w for w in want if w not in body]
            if not missing:
                break
            failed = [n for n in self.names
                      if b'memvisor_guest_state{vm="%s",state="failed"} 1' % n.encode() in body]
            if failed:
                raise BenchError("guest %s failed to start" % failed[0])
            if self.daemon.poll() is not None:
                raise BenchError("memvisord exited with %d" % self.daemon.returncode)
            if time.monotonic() > deadline:
                raise BenchError("not every guest is running with its series after %.0fs; first missing: %s"
                                 % (self.args.start_timeout, missing[0].decode()))
            time.sleep(0.2)
        self.servers = [Server("memvisord", self.mv_port, self.daemon),
                        Server("node_exporter", self.ne_port, self.node)]

    def loop(self, s, n, record):
        """n requests on one fresh keep-alive connection; every reply is checked."""
        c = HttpConnection(s.port)
        try:
            t0 = cpu_sample(s.proc.pid)
            lat = []
            for _ in range(n):
                start = time.perf_counter_ns()
                status, headers, body = c.get()
                lat.append((time.perf_counter_ns() - start) / 1e9)
                check_reply(s.name, status, headers, body)
            t1 = cpu_sample(s.proc.pid)
        finally:
            c.close()
        if s.proc.poll() is not None:
            raise BenchError("%s exited with %d during the run" % (s.name, s.proc.returncode))
        if record:
            s.latencies += lat
            s.cpu_ticks += t1[0] - t0[0]
            s.cpu_ns += t1[1] - t0[1]
            s.requests += n
            s.body_size = len(body)
            s.series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))

    def run(self):
        for s in self.servers:
            self.loop(s, self.args.warmup, record=False)
        for r in range(self.args.rounds):
            order = self.servers if r % 2 == 0 else self.servers[::-1]
            for s in order:
                self.loop(s, self.args.requests, record=True)
            if self.args.progress:
                print("round %d/%d done" % (r + 1, self.args.rounds), file=sys.stderr, flush=True)

    # -- clean-up

    def cleanup(self):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            self._cleanup()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _cleanup(self):
        for name, p in (("memvisord", self.daemon), ("node_exporter", self.node)):
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(DAEMON_STOP_TIMEOUT)
                if rc != 0 and name == "memvisord":
                    log("note: memvisord exited with %d on SIGTERM" % rc)
            except subprocess.TimeoutExpired:
                log("note: %s did not exit within %.0fs of SIGTERM, killing it" % (name, DAEMON_STOP_TIMEOUT))
                p.kill()
                p.wait()
        if self.tmp is None:
            return
        # Guests outlive the daemon by design: kill every process started for this run (their command lines
        # name files in the temporary directory).
        deadline = time.monotonic() + 10
        while True:
            left = pids_with_cmdline(self.needle)
            if not left:
                break
            if time.monotonic() > deadline:
                log("warning: processes of this run did not go away: %s" % " ".join(map(str, left)))
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        if self.args.keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, name="memvisord.log", n=30):
        try:
            return "\n".join((self.tmp / name).read_text(errors="replace").splitlines()[-n:])
        except (OSError, TypeError):
            return ""


# ---- report -------------------------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))]


def ratio(a, b):
    return a / b if b else float("inf")


def report(b):
    mv, ne = b.servers
    log("")
    log("%-14s %9s %9s %9s %9s %14s %14s %9s %8s" % ("server", "p50 ms", "p90 ms", "p99 ms", "max ms",
                                                  "CPU us/scrape", "(schedstat)", "body KiB", "series"))
    for s in b.servers:
        lat = [x * 1e3 for x in s.latencies]
        s.p50, s.p99 = pct(lat, 50), pct(lat, 99)
        s.cpu_us = s.cpu_ticks / CLK_TCK * 1e6 / s.requests
        s.exec_us = s.cpu_ns / 1e3 / s.requests
        log("%-14s %9.3f %9.3f %9.3f %9.3f %14.1f %14.1f %9.1f %8d"
            % (s.name, s.p50, pct(lat, 90), s.p99, max(lat), s.cpu_us, s.exec_us, s.body_size / 1024, s.series))
    log("")
    log("CPU per scrape: utime+stime of the server process (clock ticks of %.0f ms, all threads) over the "
        "measured requests; (schedstat): sum_exec_runtime of its live threads, exact." % (1e3 / CLK_TCK))
    log("ratios memvisord / node_exporter: p50 %.2fx, p99 %.2fx, CPU per scrape %.2fx (schedstat %.2fx), "
        "series per scrape %.2fx"
        % (ratio(mv.p50, ne.p50), ratio(mv.p99, ne.p99), ratio(mv.cpu_us, ne.cpu_us),
           ratio(mv.exec_us, ne.exec_us), ratio(mv.series, ne.series)))
    ok = mv.p50 <= TARGET_P50_RATIO * ne.p50
    log("target: memvisord p50 <= %.1fx node_exporter: %s (%.3f ms vs %.3f ms, %.2fx; information only)"
        % (TARGET_P50_RATIO, "PASS" if ok else "MISS", mv.p50, ne.p50, ratio(mv.p50, ne.p50)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memvisord", help="the daemon (default: $MEMVISOR_BUILD_DIR/memvisord or build/memvisord)")
    ap.add_argument("--node-exporter", default=NODE_EXPORTER, help="default " + NODE_EXPORTER)
    ap.add_argument("--guests", type=int, default=16, help="supervised guests (default 16)")
    ap.add_argument("--memory", default="64M", help="guest memory (default 64M)")
    ap.add_argument("--requests", type=int, default=500, help="requests per server per round (default 500)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    ap.add_argument("--warmup", type=int, default=100, help="unmeasured requests per server first (default 100)")
    ap.add_argument("--start-timeout", type=float, default=300.0,
                    help="all guests must be running with their series within this, s (default 300)")
    ap.add_argument("--tmpdir", help="where the temporary directory goes (default $TMPDIR or /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument("--progress", action="store_true", help="show progress on stderr")
    args = ap.parse_args()
    if args.guests < 0 or args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("--requests and --rounds must be at least 1, --guests and --warmup at least 0")

    if not args.memvisord:
        bd = os.environ.get("MEMVISOR_BUILD_DIR")
        args.memvisord = str(Path(bd) / "memvisord") if bd else str(REPO / "build" / "memvisord")
    for what, path in (("memvisord", args.memvisord), ("node_exporter", args.node_exporter)):
        if not os.access(path, os.X_OK):
            print("%s not found at %s (build it / apt-get install prometheus-node-exporter)" % (what, path),
                  file=sys.stderr)
            return 1
    if args.guests > 0 and not shutil.which("qemu-system-x86_64"):
        print("qemu-system-x86_64 not found in PATH", file=sys.stderr)
        return 1

    def on_signal(sig, frame):
        raise Interrupted()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    b = Bench(args)
    try:
        ver = subprocess.run([args.node_exporter, "--version"], capture_output=True, text=True)
        ver = (ver.stdout or ver.stderr).splitlines()
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        log("scrape: %d guests (TCG, %s, ExtraArgs=-S), %d rounds x %d keep-alive GET /metrics per server; "
            "%s; %d CPUs, load average %s"
            % (args.guests, args.memory, args.rounds, args.requests, ver[0] if ver else "node_exporter ?",
               os.cpu_count(), " ".join(load)))
        b.setup()
        b.start()
        log("memvisord pid %d on 127.0.0.1:%d, node_exporter pid %d on 127.0.0.1:%d (meminfo collector only), "
            "temporary directory %s" % (b.daemon.pid, b.mv_port, b.node.pid, b.ne_port, b.tmp))
        b.run()
        report(b)
        return 0
    except BenchError as e:
        print("scrape: %s" % e, file=sys.stderr)
        for name in ("memvisord.log", "node-exporter.log"):
            tail = b.log_tail(name)
            if tail:
                print("--- %s (tail) ---\n%s" % (name, tail), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("\nscrape: interrupted, cleaning up", file=sys.stderr)
        return 130
    finally:
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
