# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the memvisord integration tests: the build directory, a raw varlink client, the daemon
under test, clients run under other uids and a stand-in for the service manager's notify socket.
The fixtures using them are in conftest.py."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANAGER_IDL = REPO / "src" / "varlink" / "io.memvisor.Manager.varlink"
SERVICE_IDL = REPO / "src" / "varlink" / "org.varlink.service.varlink"

SOCKET_NAME = "io.memvisor.Manager"
STOP_TIMEOUT = 5.0
START_TIMEOUT = 10.0

NOBODY_UID = 65534
NOGROUP_GID = 65534


# ---- build directory --------------------------------------------------------------------------------

def find_build_dir():
    env = os.environ.get("MEMVISOR_BUILD_DIR")
    if env:
        candidates = [Path(env)] if os.path.isabs(env) else [Path.cwd() / env, REPO / env]
    else:
        candidates = [REPO / "build"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise pytest.UsageError(
        "memvisor build directory not found (tried %s); set MEMVISOR_BUILD_DIR"
        % ", ".join(str(c) for c in candidates))


def _find_binary(build, name, subdir):
    for p in (build / name, build / subdir / name):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise pytest.UsageError("%s not found in %s; build it first (ninja -C %s)" % (name, build, build))


class Build:
    def __init__(self, path):
        self.path = path
        self.memvisord = _find_binary(path, "memvisord", "src/daemon")
        self.memvisorctl = _find_binary(path, "memvisorctl", "src/ctl")
        self.memvisor_touch = _find_binary(path, "memvisor-touch", "src/touch")

    def test_guest(self):
        """The Linux test guest of this build tree (tests/guest: kernel, busybox initramfs with qemu-ga and this
        tree's memvisor-touch), built into BUILD/test-guest when its recipe changed. Fails the test when it cannot
        be built."""
        out = self.path / "test-guest"
        r = subprocess.run([str(REPO / "tests/guest/build-guest.sh"), "--touch", str(self.memvisor_touch), str(out)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail("building the test guest failed:\n%s%s" % (r.stdout, r.stderr))
        return out


# ---- raw varlink client -----------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The server closed the connection; partial is the number of bytes of an unfinished message."""

    def __init__(self, partial):
        super().__init__("connection closed with %d bytes of an unfinished message" % partial)
        self.partial = partial


class VarlinkConnection:
    """A minimal varlink client: JSON objects terminated by NUL bytes over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=5.0):
        self.path = str(path)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send_raw(self, data):
        self.sock.sendall(data)

    @staticmethod
    def encode(method, parameters=None, **flags):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        msg.update(flags)
        return json.dumps(msg).encode() + b"\0"

    def send(self, method, parameters=None, **flags):
        self.send_raw(self.encode(method, parameters, **flags))

    def receive(self, timeout=None):
        """Returns the next message as a dict; raises ConnectionClosed on EOF, socket.timeout on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply within the timeout")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            if not data:
                raise ConnectionClosed(len(self.buf))
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"\0")
        reply = json.loads(msg)
        assert isinstance(reply, dict), "reply is not a JSON object: %r" % msg
        return reply

    def call(self, method, parameters=None, **flags):
        self.send(method, parameters, **flags)
        return self.receive()

    def assert_closed(self, timeout=5.0):
        """Waits for the server to close the connection; returns what it sent before (normally b'')."""
        got = self.buf
        self.buf = b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close the connection within %.1fs (got %r)"
                                     % (timeout, got[:200]))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return got
            except socket.timeout:
                continue
            if not data:
                return got
            got += data

    def assert_no_message(self, wait=0.3):
        """Asserts that nothing arrives within `wait` seconds and the connection stays open."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(self.timeout)
        raise AssertionError("expected silence, got %r" % (data[:200] if data else "EOF"))


def daemon_interfaces():
    """The interfaces GetInfo lists for the build under test: a build with -Dcertification=true (tools/check's
    sanitizer build) serves the test-only org.varlink.certification as well."""
    interfaces = ["org.varlink.service", "io.memvisor.Manager"]
    if "#define ENABLE_CERTIFICATION 1" in (find_build_dir() / "build-config.h").read_text():
        interfaces.append("org.varlink.certification")
    return interfaces


def daemon_has_sanitizers():
    """True for a build with -Dsanitize=true: its memory figures (shadow memory, quarantine) are not the
    daemon's own."""
    return "-fsanitize=address" in (find_build_dir() / "build.ninja").read_text()


def get_info_ok(conn):
    """Calls GetInfo and checks the answer is the daemon's."""
    reply = conn.call("org.varlink.service.GetInfo")
    assert "error" not in reply, reply
    p = reply["parameters"]
    assert p["product"] == "memvisord"
    assert p["interfaces"] == daemon_interfaces()
    return p


# ---- the daemon -------------------------------------------------------------------------------------

class Daemon:
    """One memvisord process with its own runtime and state directories inside a test directory."""

    def __init__(self, build, workdir, name):
        self.build = build
        self.name = name
        self.workdir = Path(workdir)
        self.runtime_dir = self.workdir / ("run-" + name)
        self.state_dir = self.workdir / ("state-" + name)
        self.config = self.workdir / (name + ".conf")
        self.vm_dir = self.workdir / ("vms-" + name)
        self.socket = self.runtime_dir / SOCKET_NAME
        self.log_path = self.workdir / (name + ".log")
        self.proc = None
        self.returncode = None
        self._log_cache = ""

    # -- lifecycle

    def argv(self, extra_args=(), log_level=None):
        argv = [str(self.build.memvisord), "--runtime-dir=%s" % self.runtime_dir,
                "--state-dir=%s" % self.state_dir, "--config=%s" % self.config, "--log-target=console",
                "--vm-dir=%s" % self.vm_dir]
        if log_level:
            argv.append("--log-level=%s" % log_level)
        return argv + list(extra_args)

    def start(self, config=None, extra_args=(), env=None, log_level="debug", wrapper=None, wait=True,
              probe_address=None):
        """Starts the daemon. config: text written to the config file (None: no file). wrapper: a
        function turning the daemon's argv into the argv actually run (e.g. under a shell or
        systemd-socket-activate). With wait, returns once a GetInfo call is answered."""
        if config is not None:
            self.config.write_text(config)
        argv = self.argv(extra_args, log_level)
        if wrapper:
            argv = wrapper(argv)
        full_env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                  "LISTEN_FDNAMES", "JOURNAL_STREAM", "MEMVISOR_ADDRESS"):
            full_env.pop(k, None)
        full_env.update(env or {})
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=full_env, close_fds=True)
        if wait:
            self.wait_ready(probe_address)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, address=None, timeout=START_TIMEOUT):
        address = str(address or self.socket)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("memvisord exited with %d before serving; log:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                with VarlinkConnection(address, timeout=2.0) as c:
                    get_info_ok(c)
                return
            except (OSError, ConnectionClosed) as e:
                last = e
            time.sleep(0.02)
        raise AssertionError("memvisord did not answer on %s within %.0fs (%r); log:\n%s"
                             % (address, timeout, last, self.log_text()))

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._finish()
            raise AssertionError("memvisord (pid %d) did not exit within %.0fs; log:\n%s"
                                 % (self.proc.pid, timeout, self.log_text()))
        self._finish()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and returns the exit status (fails if the daemon does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def _finish(self):
        if getattr(self, "log_file", None):
            self.log_file.close()
            self.log_file = None
        self.log_text()

    def log_text(self):
        try:
            self._log_cache = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            pass
        return self._log_cache

    def wait_for_log(self, text, timeout=5.0, start=0):
        """Waits until text appears in the log after offset start; returns the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log[start:]:
                return log
            if time.monotonic() > deadline:
                raise AssertionError("%r did not appear in the memvisord log within %.0fs; log:\n%s"
                                     % (text, timeout, log))
            time.sleep(0.02)

    # -- clients

    def connect(self, timeout=5.0):
        return VarlinkConnection(self.socket, timeout)

    def call(self, method, parameters=None):
        with self.connect() as c:
            return c.call(method, parameters)

    def status(self):
        reply = self.call("io.memvisor.Manager.GetDaemonStatus")
        assert "error" not in reply, reply
        return reply["parameters"]

    def wait_status(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("daemon status never satisfied the condition: %r" % st)
            time.sleep(0.02)


# ---- other uids -------------------------------------------------------------------------------------

def run_as_kwargs(uid=None, gid=None, groups=None):
    if uid is None:
        return {}
    if os.geteuid() != 0:
        pytest.skip("switching to uid %d needs root" % uid)
    return {"user": uid, "group": gid if gid is not None else uid, "extra_groups": list(groups or [])}


# A raw client run as another user: calls each (method, parameters) of argv[2] on a fresh connection
# to argv[1] and prints the replies as one JSON array.
_CLIENT_SCRIPT = r"""
import json, socket, sys
out = []
for method, params in json.loads(sys.argv[2]):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
    msg = {"method": method}
    if params is not None:
        msg["parameters"] = params
    buf = b""
    try:
        s.sendall(json.dumps(msg).encode() + b"\0")
        while b"\0" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (BrokenPipeError, ConnectionResetError):
        pass
    out.append(json.loads(buf.split(b"\0")[0]) if b"\0" in buf else None)
    s.close()
print(json.dumps(out))
"""


def calls_as(address, calls, uid, gid=None, groups=None):
    """Runs the (method, parameters) calls as uid/gid/groups, one connection each; returns the replies
    (None for a connection closed without a reply)."""
    p = subprocess.run([sys.executable, "-c", _CLIENT_SCRIPT, str(address), json.dumps(calls)],
                       capture_output=True, text=True, timeout=20, cwd="/",
                       **run_as_kwargs(uid, gid, groups))
    assert p.returncode == 0, "client as uid %d failed: %s" % (uid, p.stderr)
    return json.loads(p.stdout)



# ---- sd_notify receiver -----------------------------------------------------------------------------

class NotifySocket:
    """An AF_UNIX datagram socket standing in for the service manager's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def close(self):
        self.sock.close()

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        msg = data.decode()
        self.messages.append(msg)
        return msg

    def wait_for(self, predicate, timeout=5.0):
        """Reads datagrams until one satisfies predicate(dict of its assignments); returns that dict."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching notification within %.1fs; got %r" % (timeout, self.messages))
            msg = self._read(left)
            if msg is not None and predicate(parse_notify(msg)):
                return parse_notify(msg)

    def drain(self, wait=0.0):
        """Returns the datagrams arriving within wait seconds."""
        got = []
        deadline = time.monotonic() + wait
        while True:
            msg = self._read(deadline - time.monotonic())
            if msg is None:
                return got
            got.append(msg)


def parse_notify(msg):
    fields = {}
    for line in msg.split("\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k] = v
    return fields


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %.1fs" % (what, timeout))
        time.sleep(0.02)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)
