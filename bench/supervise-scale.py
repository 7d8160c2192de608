#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""supervise-scale: memvisord supervising many lightweight guests — its memory, its idle CPU, and how fast it
reports a guest killed behind its back, next to a bare pidfd wait on the same kind of process (what the
kernel alone costs) in the same run.

Standard library only; runs with /usr/bin/python3. Prints figures and never asserts timings: the exit status
is non-zero only when the benchmark itself cannot run. See bench/README.md."""

import argparse
import ctypes
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOCKET_NAME = "io.memvisor.Manager"
M = "io.memvisor.Manager."

TARGET_RSS_KIB = 8 * 1024
TARGET_IDLE_CPU_PCT = 0.5
TARGET_DETECT_MSEC = 20.0

DAEMON_READY_TIMEOUT = 60.0        # autostart of every guest runs before the socket is served
DAEMON_STOP_TIMEOUT = 5.0
RECOVER_TIMEOUT = 60.0          # a killed guest must be running again within this
QEMU_READY_TIMEOUT = 60.0       # a baseline QEMU must greet on QMP within this
EVENT_TIMEOUT = 10.0            # the state event after a kill must come within this
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot run (a server fails to start, a reply is wrong, a guest fails)."""


class Interrupted(BaseException):
    pass


def log(msg=""):
    print(msg, flush=True)


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# ---- child processes ---------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # Runs in the child between fork and exec: the child gets SIGKILL when the benchmark goes away.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, log_file=None):
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                close_fds=True, preexec_fn=_die_with_parent)
    finally:
        if log_file:
            out.close()


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def pids_with_cmdline(needle):
    """Processes other than this one whose command line contains needle (bytes)."""
    me = os.getpid()
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != me and needle in cmdline(int(e)) and alive(int(e)):
            out.append(int(e))
    return out


# ---- /proc figures -----------------------------------------------------------------------------------

def read_kv(path):
    """'Key:   123 kB' lines → {Key: 123}."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            parts = v.split()
            if parts and parts[0].isdigit():
                out[k] = int(parts[0])
    return out


def memory(pid):
    st = read_kv("/proc/%d/status" % pid)
    sm = read_kv("/proc/%d/smaps_rollup" % pid)
    return {
        "rss": st.get("VmRSS", 0), "hwm": st.get("VmHWM", 0), "anon": st.get("RssAnon", 0),
        "file": st.get("RssFile", 0), "pss": sm.get("Pss", 0), "pss_anon": sm.get("Pss_Anon", 0),
        "pss_file": sm.get("Pss_File", 0), "threads": st.get("Threads", 0),
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
    }


def cpu_ticks(pid, which=(11, 12)):
    """utime+stime of a whole process, dead threads included, in clock ticks (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(fields[i]) for i in which)   # utime, stime: fields 14 and 15 of stat


def cpu_sample(pid):
    """Exact CPU time (sum_exec_runtime over all threads, ns), utime+stime in ticks, context switches."""
    exec_ns = 0
    switches = 0
    tasks = os.listdir("/proc/%d/task" % pid)
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                exec_ns += int(f.read().split()[0])
            st = read_kv("/proc/%d/task/%s/status" % (pid, t))
            switches += st.get("voluntary_ctxt_switches", 0) + st.get("nonvoluntary_ctxt_switches", 0)
        except OSError:
            pass  # a thread that just ended
    return {"exec_ns": exec_ns, "ticks": cpu_ticks(pid), "utime": cpu_ticks(pid, (11,)), "switches": switches,
            "t": mono_ns()}


def fs_type(path):
    """The file system type of the mount holding path (longest mount point prefix in /proc/self/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]      # idle + iowait
    return sum(v), idle


# ---- varlink ------------------------------------------------------------------------------------------

class Connection:
    """A raw varlink client (NUL-terminated JSON over AF_UNIX). Each message is returned with the
    CLOCK_MONOTONIC time of the recv() that completed it."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def send(self, method, parameters=None, **flags):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        msg.update(flags)
        self.sock.sendall(json.dumps(msg).encode() + b"\0")

    def receive(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        t = mono_ns()
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete message within the timeout")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            t = mono_ns()
            if not data:
                raise BenchError("memvisord closed the connection")
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"\0")
        reply = json.loads(msg)
        if not isinstance(reply, dict):
            raise BenchError("reply is not a JSON object: %r" % msg[:200])
        return reply, t

    def call(self, method, parameters=None):
        self.send(method, parameters)
        reply, _ = self.receive()
        if "error" in reply:
            raise BenchError("%s failed: %s" % (method, json.dumps(reply)))
        return reply.get("parameters", {})


class Events:
    """A SubscribeEvents stream that keeps every guest's last known state and pid."""

    def __init__(self, path):
        self.conn = Connection(path, timeout=30.0)
        self.conn.send(M + "SubscribeEvents", more=True)
        first, _ = self.conn.receive()
        p = first.get("parameters", {})
        if first.get("continues") is not True or p.get("event") != "subscribed":
            raise BenchError("unexpected first SubscribeEvents reply: %s" % json.dumps(first)[:300])
        self.vms = {vm["name"]: dict(vm) for vm in p.get("vms", [])}

    def next(self, timeout):
        msg, t = self.conn.receive(timeout)
        if "error" in msg or msg.get("continues") is not True:
            raise BenchError("event stream ended: %s" % json.dumps(msg)[:300])
        e = msg["parameters"]
        if e.get("event") == "state" and e.get("vm"):
            vm = self.vms.setdefault(e["vm"], {"name": e["vm"]})
            vm["state"] = e.get("state")
            vm["pid"] = e.get("pid")
            vm["reason"] = e.get("reason")
        return e, t

    def close(self):
        self.conn.close()


# ---- the run ------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = None
        self.daemon = None
        self.children = []          # baseline children still to kill and reap
        self.events = None

    # -- set-up

    def setup(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="supervise-scale.", dir=self.args.tmpdir))
        self.needle = str(self.tmp).encode()
        for d in ("run", "state", "vms", "disks", "baseline"):
            (self.tmp / d).mkdir()
        self.socket = self.tmp / "run" / SOCKET_NAME
        self.config = self.tmp / "memvisord.conf"
        if self.args.config:
            shutil.copyfile(self.args.config, self.config)
        self.daemon_log = self.tmp / "memvisord.log"
        self.names = ["g%02d" % i for i in range(self.args.guests)]
        extra = "ExtraArgs=-S\n" if self.args.mode == "paused" else ""
        for n in self.names:
            disk = self.tmp / "disks" / (n + ".img")
            with open(disk, "wb") as f:
                f.truncate(1 << 20)
            (self.tmp / "vms" / (n + ".vm")).write_text(
                "[VM]\nMemory=%s\nAccelerator=%s\nDisk=%s\nAutostart=yes\nStartTimeoutSec=5min\n"
                "StopTimeoutSec=1s\n%s"
                "[Restart]\nPolicy=on-failure\nRestartSec=100ms\nRestartMaxDelaySec=100ms\n"
                "StartLimitBurst=64\nStartLimitIntervalSec=1min\n"
                % (self.args.memory, self.args.accel, disk, extra))

    def start_daemon(self):
        argv = [self.args.memvisord, "--runtime-dir=%s" % (self.tmp / "run"),
                "--state-dir=%s" % (self.tmp / "state"), "--config=%s" % self.config,
                "--vm-dir=%s" % (self.tmp / "vms"), "--log-target=console"]
        self.t_spawn = time.monotonic()
        self.daemon = spawn(argv, self.daemon_log)
        deadline = time.monotonic() + DAEMON_READY_TIMEOUT
        while True:
            if self.daemon.poll() is not None:
                raise BenchError("memvisord exited with %d before serving" % self.daemon.returncode)
            try:
                c = Connection(self.socket, timeout=2.0)
                try:
                    info = c.call("org.varlink.service.GetInfo")
                finally:
                    c.close()
                if info.get("product") != "memvisord":
                    raise BenchError("unexpected GetInfo reply: %s" % json.dumps(info)[:300])
                return time.monotonic() - self.t_spawn
            except (OSError, socket.timeout):
                pass
            if time.monotonic() > deadline:
                raise BenchError("memvisord did not answer on %s within %.0fs" % (self.socket, DAEMON_READY_TIMEOUT))
            time.sleep(0.02)

    def wait_all_running(self):
        # The definitions are loaded before the socket is served: a guest missing now was rejected.
        missing = [n for n in self.names if n not in self.events.vms]
        if missing:
            raise BenchError("memvisord did not load %d of the %d guest definitions (e.g. %s)"
                             % (len(missing), len(self.names), missing[0]))
        deadline = time.monotonic() + self.args.start_timeout
        while True:
            states = {n: self.events.vms.get(n, {}).get("state") for n in self.names}
            bad = [n for n, s in states.items() if s in ("failed", "stopped")]
            if bad:
                raise BenchError("guest %s is %s: %s" % (bad[0], states[bad[0]],
                                                        self.events.vms[bad[0]].get("reason")))
            if all(s == "running" for s in states.values()):
                return time.monotonic() - self.t_spawn
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(n for n, s in states.items() if s != "running")
                raise BenchError("%d guests not running after %.0fs (e.g. %s: %s)"
                                 % (len(missing), self.args.start_timeout, missing[0], states[missing[0]]))
            try:
                self.events.next(left)
            except socket.timeout:
                pass

    def qemu_pids(self):
        return [vm["pid"] for vm in self.events.vms.values() if vm.get("pid") and alive(vm["pid"])]

    # -- idle

    def measure_idle(self):
        pid = self.daemon.pid
        qpids = self.qemu_pids()
        m_total0, m_idle0 = machine_cpu()
        a = cpu_sample(pid)
        q0 = sum(cpu_ticks(p) for p in qpids)
        time.sleep(self.args.idle)
        b = cpu_sample(pid)
        q1 = sum(cpu_ticks(p) for p in qpids)
        m_total1, m_idle1 = machine_cpu()
        elapsed_ns = b["t"] - a["t"]
        el = elapsed_ns / 1e9
        busy = (m_total1 - m_total0) - (m_idle1 - m_idle0)
        return {
            "elapsed": el,
            "cpu_pct": 100.0 * (b["exec_ns"] - a["exec_ns"]) / elapsed_ns,
            "tick_pct": 100.0 * (b["ticks"] - a["ticks"]) / CLK_TCK / el,
            "user_pct": 100.0 * (b["utime"] - a["utime"]) / CLK_TCK / el,
            "wakeups": (b["switches"] - a["switches"]) / el,
            "qemu_pct": 100.0 * (q1 - q0) / CLK_TCK / el,
            "machine_pct": 100.0 * busy / max(1, m_total1 - m_total0) * os.cpu_count(),
        }

    # -- detection

    def measure_memvisord(self, name):
        """kill -9 of a guest's QEMU → the state event on the SubscribeEvents stream. A pidfd of the same QEMU,
        polled alongside, shows when the kernel had it gone (what memvisord's own pidfd saw)."""
        vm = self.events.vms[name]
        pid = vm.get("pid")
        if vm.get("state") != "running" or not pid or not alive(pid) or self.needle not in cmdline(pid):
            raise BenchError("guest %s is not a running QEMU of this run: %r" % (name, vm))
        pidfd = os.pidfd_open(pid)
        t_gone = None
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self.events.conn.sock, select.POLLIN)
            rt0 = time.time_ns()
            t0 = mono_ns()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + EVENT_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("no state event for %s within %.0fs of kill -9" % (name, EVENT_TIMEOUT))
                if b"\0" not in self.events.conn.buf:
                    ready = dict(poller.poll(left * 1000))
                    t = mono_ns()
                    if pidfd in ready and t_gone is None:
                        t_gone = t
                        poller.unregister(pidfd)
                    if self.events.conn.sock.fileno() not in ready:
                        continue
                e, t1 = self.events.next(left)
                if e.get("event") == "state" and e.get("vm") == name and e.get("state") != "running":
                    if e.get("previousState") != "running" or e.get("state") not in ("restarting", "failed"):
                        raise BenchError("unexpected event after kill -9 of %s: %s" % (name, json.dumps(e)))
                    if t_gone is None:
                        # The event overtook our own wake-up on the pidfd: take the time we see it readable.
                        poller.poll(EVENT_TIMEOUT * 1000)
                        t_gone = min(mono_ns(), t1)
                    return {"event": (t1 - t0) / 1e6, "stamp": (e.get("realtimeUSec", 0) * 1000 - rt0) / 1e6,
                            "gone": (t_gone - t0) / 1e6}
        finally:
            os.close(pidfd)

    def recover_memvisord(self, name):
        deadline = time.monotonic() + RECOVER_TIMEOUT
        while self.events.vms[name].get("state") != "running":
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("guest %s not running again within %.0fs (%s)"
                                 % (name, RECOVER_TIMEOUT, self.events.vms[name].get("state")))
            if self.events.vms[name].get("state") == "failed":
                raise BenchError("guest %s failed: %s" % (name, self.events.vms[name].get("reason")))
            try:
                self.events.next(left)
            except socket.timeout:
                pass

    def spawn_sleep(self):
        p = spawn(["sleep", "1000000"])
        self.children.append(p)
        deadline = time.monotonic() + 5
        while not (cmdline(p.pid).startswith(b"sleep\0") and proc_state(p.pid) == "S"):
            if time.monotonic() > deadline:
                raise BenchError("sleep child did not start")
            time.sleep(0.002)
        return p

    def spawn_qemu(self, template_argv):
        """A QEMU with the same command line as a supervised guest, but its own disk, console and QMP
        socket path; returns once QMP has answered query-status, as memvisord waits for its guests."""
        b = self.tmp / "baseline"
        qmp_path = b / "qmp.sock"
        try:
            qmp_path.unlink()
        except FileNotFoundError:
            pass
        disk = b / "disk.img"
        if not disk.exists():
            with open(disk, "wb") as f:
                f.truncate(1 << 20)
        argv = []
        for a in template_argv:
            if a.startswith("socket,id=qmp,fd="):
                a = "socket,id=qmp,path=%s,server=on,wait=off" % qmp_path
            elif a.startswith("file,id=console,path="):
                a = "file,id=console,path=%s" % (b / "console.log")
            elif a.startswith("file=") and ",if=virtio" in a:
                a = "file=%s,if=virtio,format=raw" % disk
            elif a.endswith(",debug-threads=on"):
                a = "baseline,debug-threads=on"
            argv.append(a)
        p = spawn(argv, b / "qemu.log")
        self.children.append(p)
        deadline = time.monotonic() + QEMU_READY_TIMEOUT
        s = None
        while s is None:
            if p.poll() is not None:
                raise BenchError("baseline QEMU exited with %d; see %s" % (p.returncode, b / "qemu.log"))
            if time.monotonic() > deadline:
                raise BenchError("baseline QEMU did not open its QMP socket")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(QEMU_READY_TIMEOUT)
                s.connect(str(qmp_path))
            except OSError:
                s.close()
                s = None
                time.sleep(0.01)
        f = s.makefile("rwb")
        greeting = json.loads(f.readline())
        if "QMP" not in greeting:
            raise BenchError("baseline QEMU sent no QMP greeting: %r" % greeting)
        for cmd in ("qmp_capabilities", "query-status"):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "return" in r:
                    break
                if "error" in r:
                    raise BenchError("baseline QEMU: %s failed: %r" % (cmd, r))
        p.qmp = (s, f)  # held open until the kill, as memvisord holds its QMP connections
        return p

    def measure_pidfd(self, p):
        """kill -9 of a child and the wake-up of a poll() on its pidfd: what the kernel alone costs."""
        pidfd = os.pidfd_open(p.pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            t0 = mono_ns()
            os.kill(p.pid, signal.SIGKILL)
            if not poller.poll(EVENT_TIMEOUT * 1000):
                raise BenchError("pidfd of pid %d not readable within %.0fs of kill -9" % (p.pid, EVENT_TIMEOUT))
            t1 = mono_ns()
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        finally:
            os.close(pidfd)
        p.returncode = -signal.SIGKILL  # reaped here, not by Popen
        if hasattr(p, "qmp"):
            p.qmp[1].close()
            p.qmp[0].close()
        self.children.remove(p)
        return (t1 - t0) / 1e6

    def run_detection(self):
        a = self.args
        res = {"memvisord": [], "stamp": [], "gone": [], "own": [], "sleep": [], "qemu": []}
        template = None
        if a.qemu_baseline:
            c = Connection(self.socket)
            try:
                template = c.call(M + "DescribeVM", {"name": self.names[0]})["vm"]["argv"]
            finally:
                c.close()
        kinds = ["memvisord", "sleep"] + (["qemu"] if a.qemu_baseline else [])
        res["anon"] = [(0, memory(self.daemon.pid)["anon"])]
        for i in range(a.kills):
            if i and i % max(1, a.kills // 4) == 0:
                res["anon"].append((i, memory(self.daemon.pid)["anon"]))
            if self.args.progress:
                sys.stderr.write("\rkill %d/%d " % (i + 1, a.kills))
                sys.stderr.flush()
            name = self.names[i % len(self.names)]
            sleeper = self.spawn_sleep()
            qemu = self.spawn_qemu(template) if a.qemu_baseline else None
            time.sleep(a.settle)
            # Rotate the order so that no kind always follows the same disturbance.
            k = i % len(kinds)
            for kind in kinds[k:] + kinds[:k]:
                if kind == "memvisord":
                    r = self.measure_memvisord(name)
                    res["memvisord"].append(r["event"])
                    res["stamp"].append(r["stamp"])
                    res["gone"].append(r["gone"])
                    res["own"].append(r["event"] - r["gone"])
                    self.recover_memvisord(name)
                elif kind == "sleep":
                    res["sleep"].append(self.measure_pidfd(sleeper))
                else:
                    res["qemu"].append(self.measure_pidfd(qemu))
                time.sleep(a.settle)
        if self.args.progress:
            sys.stderr.write("\r")
        return res

    # -- clean-up

    def cleanup(self):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            self._cleanup()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _cleanup(self):
        if self.events:
            self.events.close()
        # The daemon first: it would restart guests killed before it.
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(DAEMON_STOP_TIMEOUT)
                if rc != 0:
                    log("note: memvisord exited with %d on SIGTERM" % rc)
            except subprocess.TimeoutExpired:
                log("note: memvisord did not exit within %.0fs of SIGTERM, killing it" % DAEMON_STOP_TIMEOUT)
                self.daemon.kill()
                self.daemon.wait()
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.children = []
        if self.tmp is None:
            return
        # Guests outlive the daemon by design: kill every process started for this run.
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

    def log_tail(self, n=30):
        try:
            lines = self.daemon_log.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return ""
        return "\n".join(lines[-n:])


# ---- report -------------------------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def verdict(ok):
    return "PASS" if ok else "MISS"


def mib(kib):
    return "%.2f MiB" % (kib / 1024.0)


def print_memory(label, m):
    log("  %-22s VmRSS %s (anon %s, file %s), VmHWM %s" % (label, mib(m["rss"]), mib(m["anon"]),
                                                           mib(m["file"]), mib(m["hwm"])))
    log("  %-22s Pss   %s (anon %s, file %s); %d threads, %d fds"
        % ("", mib(m["pss"]), mib(m["pss_anon"]), mib(m["pss_file"]), m["threads"], m["fds"]))


def report_detection(res, args):
    log("")
    log("detection: kill -9 → notice, %d kills, ms (CLOCK_MONOTONIC around kill() and the wake-up)" % args.kills)
    log("  %-34s %8s %8s %8s %8s %8s" % ("", "median", "p90", "p99", "max", "min"))
    rows = [("memvisord: event received", "memvisord"),
            ("  kill → QEMU gone (its pidfd)", "gone"),
            ("  kill → event stamp (realtime)", "stamp"),
            ("  event received − QEMU gone", "own"),
            ("peer: pidfd poll, sleep child", "sleep"),
            ("peer: pidfd poll, QEMU child", "qemu")]
    for label, k in rows:
        v = res[k]
        if v:
            log("  %-34s %8.3f %8.3f %8.3f %8.3f %8.3f" % (label, median(v), pct(v, 90), pct(v, 99), max(v), min(v)))
    mv = median(res["memvisord"])
    log("  ratio memvisord / pidfd(sleep), medians: %.1fx" % (mv / median(res["sleep"])))
    if res["qemu"]:
        q = median(res["qemu"])
        log("  ratio memvisord / pidfd(QEMU),  medians: %.2fx (memvisord adds %.3f ms to the kernel's %.3f ms)"
            % (mv / q, mv - q, q))
    return mv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memvisord", help="the daemon (default: $MEMVISOR_BUILD_DIR/memvisord or build/memvisord)")
    ap.add_argument("--guests", type=int, default=64, help="number of guests (default 64)")
    ap.add_argument("--memory", default="64M", help="guest memory (default 64M)")
    ap.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"), help="accelerator (default tcg)")
    ap.add_argument("--mode", default="paused", choices=("paused", "firmware"),
                    help="paused: ExtraArgs=-S, vCPUs never run (default); firmware: SeaBIOS runs and idles")
    ap.add_argument("--kills", type=int, default=50, help="kill -9 measurements (default 50)")
    ap.add_argument("--idle", type=float, default=10.0, help="idle CPU window, s (default 10)")
    ap.add_argument("--quiet-time", type=float, default=3.0,
                    help="pause after all guests run, before measuring, s (default 3)")
    ap.add_argument("--settle", type=float, default=0.25, help="pause around each kill, s (default 0.25)")
    ap.add_argument("--start-timeout", type=float, default=300.0,
                    help="all guests must be running within this, s (default 300)")
    ap.add_argument("--no-qemu-baseline", dest="qemu_baseline", action="store_false",
                    help="skip the pidfd-on-a-QEMU-child peer")
    ap.add_argument("--config", help="a memvisord.conf for the daemon (default: none, built-in defaults)")
    ap.add_argument("--tmpdir", help="where the temporary directory goes (runtime and state dirs, disks, logs; "
                    "default $TMPDIR or /tmp); e.g. /dev/shm for tmpfs, as /run is in production")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument("--progress", action="store_true", help="show progress on stderr")
    args = ap.parse_args()
    if args.guests < 1 or args.kills < 1:
        ap.error("--guests and --kills must be at least 1")

    if not args.memvisord:
        bd = os.environ.get("MEMVISOR_BUILD_DIR")
        args.memvisord = str(Path(bd) / "memvisord") if bd else str(REPO / "build" / "memvisord")
    if not os.access(args.memvisord, os.X_OK):
        print("memvisord not found at %s (build it, or pass --memvisord=)" % args.memvisord, file=sys.stderr)
        return 1
    if not shutil.which("qemu-system-x86_64"):
        print("qemu-system-x86_64 not found in PATH", file=sys.stderr)
        return 1

    def on_signal(sig, frame):
        raise Interrupted()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    b = Bench(args)
    try:
        qver = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        log("supervise-scale: %d guests, %s, %s, %s; %s; %d CPUs, load average %s"
            % (args.guests, args.accel, args.memory,
               "ExtraArgs=-S (vCPUs stopped)" if args.mode == "paused" else "firmware only (SeaBIOS idles)",
               qver.splitlines()[0] if qver else "QEMU ?", os.cpu_count(), " ".join(load)))
        b.setup()
        answered = b.start_daemon()
        log("memvisord pid %d (%s, %s), temporary directory %s (%s)"
            % (b.daemon.pid, args.memvisord, "config %s" % args.config if args.config else "built-in defaults",
               b.tmp, fs_type(b.tmp)))
        mem_empty = memory(b.daemon.pid)
        b.events = Events(b.socket)
        took = b.wait_all_running()
        log("start-up: memvisord answered GetInfo %.2f s after it was started, all %d guests running after %.2f s"
            % (answered, args.guests, took))
        time.sleep(args.quiet_time)

        log("")
        log("memory:")
        print_memory("right after start-up:", mem_empty)
        mem = memory(b.daemon.pid)
        print_memory("with %d guests:" % args.guests, mem)

        idle = b.measure_idle()
        log("")
        log("idle CPU over %.1f s, daemon only supervising (one idle SubscribeEvents connection):" % idle["elapsed"])
        log("  memvisord: %.3f %% of one core (schedstat), %.2f %% (utime+stime ticks: user %.2f, system %.2f), "
            "%.1f wake-ups/s" % (idle["cpu_pct"], idle["tick_pct"], idle["user_pct"],
                                 idle["tick_pct"] - idle["user_pct"], idle["wakeups"]))
        log("  for context: %d QEMUs together %.2f %% of one core; machine busy %.0f %% of one core "
            "(of %d)" % (args.guests, idle["qemu_pct"], idle["machine_pct"], 100 * os.cpu_count()))
        if idle["machine_pct"] - idle["qemu_pct"] - idle["cpu_pct"] > 20:
            log("  note: other load on the machine during the window; latency figures will be noisy")

        res = b.run_detection()
        mv = report_detection(res, args)

        mem_after = memory(b.daemon.pid)
        log("")
        log("memory after the kills (%d guest restarts):" % args.kills)
        print_memory("with %d guests:" % args.guests, mem_after)
        log("  growth: VmRSS %+d KiB, RssAnon %+d KiB" % (mem_after["rss"] - mem["rss"],
                                                         mem_after["anon"] - mem["anon"]))
        trend = res["anon"] + [(args.kills, mem_after["anon"])]
        log("  RssAnon after N kills: %s" % ", ".join("%d: %+d KiB" % (n, kib - trend[0][1]) for n, kib in trend))

        rss = max(mem["rss"], mem_after["rss"])
        log("")
        log("targets (information only):")
        log("  target: memvisord RSS < 8 MiB with %d guests: %s (VmRSS %s, Pss %s)"
            % (args.guests, verdict(rss < TARGET_RSS_KIB), mib(rss), mib(max(mem["pss"], mem_after["pss"]))))
        log("  target: memvisord idle CPU < %.1f %% of a core: %s (%.3f %%)"
            % (TARGET_IDLE_CPU_PCT, verdict(idle["cpu_pct"] < TARGET_IDLE_CPU_PCT), idle["cpu_pct"]))
        log("  target: detection median < %.0f ms: %s (%.3f ms)"
            % (TARGET_DETECT_MSEC, verdict(mv < TARGET_DETECT_MSEC), mv))
        if b.daemon.poll() is not None:
            raise BenchError("memvisord exited with %d during the run" % b.daemon.returncode)
        return 0
    except BenchError as e:
        print("supervise-scale: %s" % e, file=sys.stderr)
        tail = b.log_tail()
        if tail:
            print("--- memvisord log (tail) ---\n%s" % tail, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("\nsupervise-scale: interrupted, cleaning up", file=sys.stderr)
        return 130
    finally:
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
