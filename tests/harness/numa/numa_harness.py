# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared by the guest side of the multi-node harness (guest-test.py) and bench/migrate-guest.py: runs inside
the 2-node test guest (tests/guest, memvisor.mode=9p), as root, on the host's root over 9p. Starts the build
tree's memvisord with its directories on tmpfs, defines and starts the inner guest, and offers a minimal
varlink client and a numa_maps reader of its own (independent of the daemon's parser). Stdlib only."""

import json
import os
import socket
import subprocess
import sys
import time

OUT = "/run/memvisor-out"
WORK = "/tmp/numa-harness"
SOCKET = WORK + "/run/io.memvisor.Manager"
M = "io.memvisor.Manager."

# For a build with -Dsanitize=true (ASan + UBSan; without it these variables do nothing): reports go to files in
# the writable out export, asan.PID for memvisord and asan-ctl.PID for memvisorctl (one log_path for both
# sanitizers: in one process they share it, the last one parsed wins), which run.sh prints and fails on.
# LeakSanitizer runs when memvisord exits, so it must end by SIGTERM (stop_daemon).
DAEMON_SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:log_path=%s/asan" % OUT,
                  "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:log_path=%s/asan" % OUT}
CTL_SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:log_path=%s/asan-ctl" % OUT,
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:log_path=%s/asan-ctl" % OUT}


def params():
    with open(os.path.join(OUT, "params.json")) as f:
        return json.load(f)


def log(*a):
    print("harness:", *a, flush=True)


class Varlink:
    """One connection; call() sends and waits for the (single) reply."""

    def __init__(self, path=SOCKET, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, method, parameters=None, more=False):
        msg = {"method": method if "." in method else M + method}
        if parameters is not None:
            msg["parameters"] = parameters
        if more:
            msg["more"] = True
        self.sock.sendall(json.dumps(msg).encode() + b"\0")

    def receive(self):
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by memvisord")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, parameters=None):
        self.send(method, parameters)
        return self.receive()


def call_ok(method, parameters=None):
    c = Varlink()
    try:
        r = c.call(method, parameters)
    finally:
        c.close()
    if "error" in r:
        raise RuntimeError("%s failed: %s" % (method, json.dumps(r)))
    return r.get("parameters", {})


def ctl(build, *args, check=True, timeout=300):
    """memvisorctl --json ARGS…; returns the list of JSON documents it printed (one per line)."""
    argv = [os.path.join(build, "memvisorctl"), "--address=" + SOCKET, "--json"] + list(args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **CTL_SAN_ENV))
    if check and p.returncode != 0:
        raise RuntimeError("%s → %d: %s%s" % (" ".join(argv[3:]), p.returncode, p.stdout, p.stderr))
    docs = [json.loads(line) for line in p.stdout.splitlines() if line.strip().startswith("{")]
    return docs


def numa_maps(pid):
    """Our own reading of /proc/PID/numa_maps: ({node: bytes}, total, {node: bytes} of the guest RAM
    mapping). The guest RAM is the largest mapping (it is far larger than anything else QEMU maps)."""
    nodes, best = {}, (0, {})
    with open("/proc/%d/numa_maps" % pid) as f:
        for line in f:
            fields = line.split()
            ps = 4096
            per = {}
            for w in fields[2:]:
                if w.startswith("kernelpagesize_kB="):
                    ps = int(w.split("=", 1)[1]) * 1024
            for w in fields[2:]:
                if w.startswith("N") and "=" in w and w[1:w.index("=")].isdigit():
                    n, v = w[1:].split("=", 1)
                    per[int(n)] = per.get(int(n), 0) + int(v) * ps
            for n, b in per.items():
                nodes[n] = nodes.get(n, 0) + b
            if sum(per.values()) > best[0]:
                best = (sum(per.values()), per)
    return nodes, sum(nodes.values()), best[1]


def fraction(per, node):
    total = sum(per.values())
    return per.get(node, 0) / total if total else 0.0


def make_dirs():
    for d in ("run", "state", "vms"):
        os.makedirs(os.path.join(WORK, d), exist_ok=True)


def start_daemon(build, log_level="info", config=None):
    make_dirs()
    if config is not None:
        with open(WORK + "/memvisord.conf", "w") as f:
            f.write(config)
    logf = open(os.path.join(OUT, "daemon.log"), "ab")
    argv = [os.path.join(build, "memvisord"), "--runtime-dir=%s/run" % WORK, "--state-dir=%s/state" % WORK,
            "--config=%s/memvisord.conf" % WORK, "--vm-dir=%s/vms" % WORK, "--log-target=console",
            "--log-level=" + log_level]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **DAEMON_SAN_ENV))
    end = time.monotonic() + 60
    while True:
        try:
            call_ok("GetDaemonStatus")
            return proc
        except (OSError, RuntimeError):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("memvisord did not come up (exit status %s)" % proc.poll())
            time.sleep(0.1)


def write_inner_vm(memory, extra=""):
    make_dirs()
    disk = WORK + "/blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    text = ("[VM]\nName=inner\nMemory=%s\nVCPUs=1\nAccelerator=tcg\nDisk=%s\nStopTimeoutSec=1s\n"
            "[Memory]\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n"
            "[CPU]\nVCPUAffinity=0:0\n%s" % (memory, disk, extra))
    with open(WORK + "/vms/inner.vm", "w") as f:
        f.write(text)
    return text


def start_inner(build, timeout=240):
    t0 = time.monotonic()
    ctl(build, "start", "inner")
    while True:
        vm = ctl(build, "status", "inner")[0]
        vm = vm.get("vm", vm)
        if vm.get("state") == "running" and vm.get("vcpuThreads"):
            return vm, time.monotonic() - t0
        if vm.get("state") in ("failed", "stopped") or time.monotonic() - t0 > timeout:
            raise RuntimeError("inner guest did not reach running: %s" % json.dumps(vm))
        time.sleep(0.2)


def write_result(name, obj):
    tmp = os.path.join(OUT, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, os.path.join(OUT, name))


def sanitizer_reports():
    """The sanitizer report files written so far ({file name: text}); empty for a build without sanitizers."""
    found = {}
    for name in sorted(os.listdir(OUT)):
        if name.startswith(("asan", "ubsan")):
            with open(os.path.join(OUT, name), errors="replace") as f:
                found[name] = f.read()
    return found


def stop_daemon(build, proc, timeout=90):
    """Stops the inner guest, then memvisord with SIGTERM, and waits for it (LeakSanitizer runs at its exit,
    slowly under nested TCG). Returns its exit status, or None when it had to be killed."""
    try:
        ctl(build, "stop", "inner", check=False, timeout=30)
    except Exception:
        pass
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    sys.stdout.flush()
    return rc
