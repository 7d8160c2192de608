#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Record real QMP transcripts from the local QEMU into tests/data/qmp/*.qmp.

Standard library only (run with /usr/bin/python3).  See README.md in this directory for the
transcript format and for what each scenario does.

    tests/data/qmp/record.py [--guest DIR] [--out DIR] [--list] [--check] [SCENARIO...]

--guest is a directory built by tests/guest/build-guest.sh (default: build one into
$TMPDIR/memvisor-record-guest).  Without SCENARIO arguments every scenario is recorded.
"""

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
QEMU = "qemu-system-x86_64"
MiB = 1024 * 1024


class Fail(Exception):
    pass


class Transcript:
    """Collects the lines of one .qmp file."""

    def __init__(self, name, title):
        self.name = name
        self.lines = ["# SPDX-License-Identifier: LGPL-2.1-or-later",
                      "# " + title]
        self.header_end = len(self.lines)

    def header(self, text):
        """A comment placed after the title (notes known only at the end of a recording)."""
        self.lines.insert(self.header_end, "# " + text)
        self.header_end += 1

    def comment(self, text):
        for line in text.splitlines() or [""]:
            self.lines.append(("# " + line).rstrip())

    def add(self, line):
        self.lines.append(line)

    def write(self, outdir):
        path = os.path.join(outdir, self.name + ".qmp")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")
        return path


class Guest:
    """A QEMU process with its serial console on a pipe and QMP on a unix socket."""

    def __init__(self, args, transcript, tmpdir):
        self.sock_path = os.path.join(tmpdir, "qmp.sock")
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.argv = [QEMU] + args + [
            "-display", "none", "-no-reboot", "-serial", "stdio",
            "-qmp", "unix:%s,server=on,wait=off" % self.sock_path]
        self.t = transcript
        self.console = []
        self.console_q = queue.Queue()
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read_console, daemon=True)
        self.reader.start()
        self.sock = None
        self.buf = b""
        self.eof = False

    def _read_console(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.console.append(line)
            self.console_q.put((time.monotonic() - self.start, line))
        self.console_q.put((time.monotonic() - self.start, None))

    def wait_console(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timeout waiting for %r on the console; got:\n%s"
                           % (text, "\n".join(self.console[-30:])))
            try:
                when, line = self.console_q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise Fail("QEMU exited before %r; console:\n%s" % (text, "\n".join(self.console[-30:])))
            if text in line:
                return when

    def connect(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock_path)
                self.sock = s
                return
            except OSError:
                s.close()
                if self.proc.poll() is not None:
                    raise Fail("QEMU exited: %s" % "\n".join(self.console[-30:]))
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    # --- raw protocol, everything goes into the transcript

    def send_raw(self, data):
        """Send bytes exactly; they are recorded as one C: line (without the final newline)."""
        assert data.endswith(b"\n") and b"\n" not in data[:-1]
        self.t.add("C: " + data[:-1].decode("utf-8"))
        self.sock.sendall(data)

    def send(self, execute, arguments=None, id=None):
        msg = {"execute": execute}
        if arguments is not None:
            msg["arguments"] = arguments
        if id is not None:
            msg["id"] = id
        self.send_raw(json.dumps(msg, separators=(", ", ": ")).encode() + b"\n")

    def recv(self, timeout=30):
        """Next message from the server (parsed), or None at EOF; recorded as an S: line."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timeout waiting for a QMP message")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                # Linux reports ECONNRESET instead of EOF when the peer closed while data it
                # had not read was still queued on its side.
                self.eof = True
                if self.buf:
                    raise Fail("ECONNRESET inside a message: %r" % self.buf)
                self.t.add("EOF ECONNRESET")
                return None
            if not chunk:
                self.eof = True
                if self.buf:
                    raise Fail("EOF inside a message: %r" % self.buf)
                self.t.add("EOF")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise Fail("message not terminated by CRLF: %r" % line)
        line = line[:-1]
        self.t.add("S: " + line.decode("utf-8"))
        return json.loads(line)

    def reply(self, timeout=30):
        """Read until a return/error message (events before it are recorded too)."""
        while True:
            msg = self.recv(timeout)
            if msg is None:
                raise Fail("EOF while waiting for a reply")
            if "return" in msg or "error" in msg:
                return msg

    def until_event(self, name, timeout=30):
        while True:
            msg = self.recv(timeout)
            if msg is None:
                raise Fail("EOF while waiting for %s" % name)
            if msg.get("event") == name:
                return msg

    def drain(self, quiet=0.5):
        """Record whatever arrives until nothing came for `quiet` seconds or EOF."""
        while not self.eof:
            try:
                if self.recv(timeout=quiet) is None:
                    return
            except Fail:
                return

    def handshake(self):
        greeting = self.recv()
        if greeting is None or "QMP" not in greeting:
            raise Fail("no greeting")
        self.send("qmp_capabilities")
        if "return" not in self.reply():
            raise Fail("qmp_capabilities failed")
        return greeting

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("QEMU did not exit")

    def close(self):
        if self.sock:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)


def linux_args(guest, mem=512, smp=2, mode=None, extra=()):
    append = "console=ttyS0 quiet"
    if mode:
        append += " memvisor.mode=" + mode
    return ["-accel", "tcg", "-m", str(mem), "-smp", str(smp),
            "-kernel", os.path.join(guest, "vmlinuz"), "-initrd", os.path.join(guest, "initrd.gz"),
            "-append", append] + list(extra)


def kvm_usable():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    r = subprocess.run([QEMU, "-accel", "kvm", "-machine", "q35", "-display", "none", "-S",
                        "-nodefaults", "-qmp", "stdio"],
                       input=b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode == 0 and b"SHUTDOWN" in r.stdout


# ------------------------------------------------------------------------------ scenarios ---
# Each scenario gets (transcript, ctx) and records into the transcript.

def argv_comment(t, g, guest_dir, tmpdir):
    words = [a if " " not in a else "'%s'" % a for a in g.argv]
    line = " ".join(words).replace(guest_dir, "$GUEST").replace(tmpdir, "$TMP")
    t.header("qemu: " + line)


def sc_greeting_status(t, ctx):
    """(a) greeting, qmp_capabilities, query-status (running guest), query-version."""
    g = ctx.guest(linux_args(ctx.guest_dir, mode=None), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        g.send("query-status")
        g.reply()
        g.send("query-status", id="status-1")
        g.reply()
        g.send("query-version")
        g.reply()
    finally:
        g.close()


def sc_capabilities_required(t, ctx):
    """(c') commands before qmp_capabilities fail; qmp_capabilities twice fails."""
    g = ctx.guest(["-accel", "tcg", "-m", "64", "-nodefaults", "-S"], t)
    try:
        g.connect()
        g.recv()
        g.send("query-status")
        g.reply()
        g.send("qmp_capabilities", id=1)
        g.reply()
        g.send("qmp_capabilities", id=2)
        g.reply()
    finally:
        g.close()


def sc_cpus_fast_tcg(t, ctx):
    """(b) query-cpus-fast on a 2-vCPU TCG Linux guest (one thread per vCPU with MTTCG)."""
    g = ctx.guest(linux_args(ctx.guest_dir, smp=2), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        g.send("query-cpus-fast")
        r = g.reply()
        t.comment("QEMU pid was %d; the thread-id values are its vCPU threads (/proc/%d/task/*)"
                  % (g.proc.pid, g.proc.pid))
        if len(r["return"]) != 2:
            raise Fail("expected 2 vCPUs")
    finally:
        g.close()


def sc_cpus_fast_kvm(t, ctx):
    """(b') query-cpus-fast on a 2-vCPU firmware-only KVM guest."""
    if not ctx.kvm:
        raise Skip("KVM not usable")
    g = ctx.guest(["-accel", "kvm", "-machine", "q35", "-m", "128", "-smp", "2"], t)
    try:
        g.connect()
        g.handshake()
        g.send("query-cpus-fast")
        g.reply()
        t.comment("QEMU pid was %d" % g.proc.pid)
    finally:
        g.close()


def sc_errors(t, ctx):
    """(c) error replies: unknown command, bad argument type, missing argument, unknown argument,
    no balloon device, JSON syntax error, non-object."""
    g = ctx.guest(["-accel", "tcg", "-m", "64", "-nodefaults", "-S"], t)
    try:
        g.connect()
        g.handshake()
        g.send("no-such-command")
        g.reply()
        g.send("no-such-command", id="e1")
        g.reply()
        g.send("balloon", {"value": "lots"}, id="e2")
        g.reply()
        g.send("balloon", {}, id="e3")
        g.reply()
        g.send("query-status", {"bogus": 1}, id="e4")
        g.reply()
        g.send("balloon", {"value": 256 * MiB}, id="e5")
        g.reply()
        g.send("query-stats", {"target": "nonsense"}, id="e6")
        g.reply()
        g.send_raw(b'{"execute": "query-status",,}\n')
        g.reply()
        g.send_raw(b'[1, 2]\n')
        g.reply()
        g.send_raw(b'{"arguments": {}}\n')
        g.reply()
        g.send("query-status", id={"nested": [1, 2]})
        g.reply()
    finally:
        g.close()


def sc_balloon(t, ctx):
    """(d) balloon 512 → 256 MiB and back, polling query-balloon; BALLOON_CHANGE events arrive
    between replies (QEMU throttles BALLOON_CHANGE to one per second)."""
    g = ctx.guest(linux_args(ctx.guest_dir, mem=512,
                             extra=["-device", "virtio-balloon-pci,id=balloon0"]), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        g.send("query-balloon", id="q0")
        g.reply()
        t0 = time.monotonic()
        g.send("balloon", {"value": 256 * MiB}, id="b1")
        g.reply()
        n = 0
        reached = None
        while time.monotonic() - t0 < 30:
            time.sleep(0.25)
            n += 1
            g.send("query-balloon", id="q%d" % n)
            r = g.reply()
            if r["return"]["actual"] == 256 * MiB:
                reached = time.monotonic() - t0
                break
        if reached is None:
            raise Fail("balloon did not reach 256 MiB")
        ctx.notes.append("balloon 512→256 MiB reached in %.2f s" % reached)
        g.drain(1.5)
        t0 = time.monotonic()
        g.send("balloon", {"value": 512 * MiB}, id="b2")
        g.reply()
        while time.monotonic() - t0 < 30:
            time.sleep(0.25)
            n += 1
            g.send("query-balloon", id="q%d" % n)
            r = g.reply()
            if r["return"]["actual"] == 512 * MiB:
                break
        g.drain(1.5)
    finally:
        g.close()


def sc_balloon_stats(t, ctx):
    """(d') guest memory statistics through the balloon device's QOM properties."""
    g = ctx.guest(linux_args(ctx.guest_dir, mem=512,
                             extra=["-device", "virtio-balloon-pci,id=balloon0"]), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        path = "/machine/peripheral/balloon0"
        g.send("qom-get", {"path": path, "property": "guest-stats-polling-interval"})
        g.reply()
        g.send("qom-get", {"path": path, "property": "guest-stats"})
        g.reply()
        g.send("qom-set", {"path": path, "property": "guest-stats-polling-interval", "value": 1})
        g.reply()
        time.sleep(2.5)
        g.send("qom-get", {"path": path, "property": "guest-stats"})
        g.reply()
        g.send("qom-get", {"path": "/machine/peripheral/nosuch", "property": "guest-stats"})
        g.reply()
    finally:
        g.close()


def sc_powerdown(t, ctx):
    """(e) system_powerdown: ACPI power button → guest acpid → poweroff -f → SHUTDOWN
    (guest: true, reason guest-shutdown), then QEMU exits and closes the socket."""
    g = ctx.guest(linux_args(ctx.guest_dir), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        t0 = time.monotonic()
        g.send("system_powerdown")
        g.reply()
        g.until_event("SHUTDOWN", timeout=30)
        ctx.notes.append("system_powerdown → SHUTDOWN in %.2f s" % (time.monotonic() - t0))
        g.drain(5)
        rc = g.wait_exit()
        t.comment("QEMU exit status %d; console showed MEMVISOR-GUEST-POWERBUTTON: %s"
                  % (rc, any("POWERBUTTON" in l for l in g.console)))
    finally:
        g.close()


def sc_quit(t, ctx):
    """(e') quit: SHUTDOWN (guest: false, reason host-qmp-quit) comes before the reply, then
    the connection ends; because the newline the client sent after the command is still unread when
    QEMU exits, Linux usually reports ECONNRESET instead of EOF."""
    g = ctx.guest(linux_args(ctx.guest_dir), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        g.send("quit", id="bye")
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


def sc_guest_poweroff(t, ctx):
    """(e'') the guest powers itself off (memvisor.mode=crash): SHUTDOWN (guest: true,
    reason guest-shutdown) without any command; the client connects before the guest is up."""
    g = ctx.guest(linux_args(ctx.guest_dir, mode="crash"), t)
    try:
        g.connect()
        g.handshake()
        g.until_event("SHUTDOWN", timeout=120)
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


def sc_stop_cont_reset(t, ctx):
    """(e''') stop / cont / system_reset with -no-reboot (a reset request ends QEMU)."""
    g = ctx.guest(linux_args(ctx.guest_dir), t)
    try:
        g.wait_console("MEMVISOR-GUEST-READY")
        g.connect()
        g.handshake()
        g.send("stop")
        g.reply()
        g.send("query-status")
        g.reply()
        g.send("cont")
        g.reply()
        g.send("query-status")
        g.reply()
        g.send("system_reset")
        g.reply()
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


def sc_panic(t, ctx):
    """(h) guest kernel panic (memvisor.mode=panic) with a pvpanic device: GUEST_PANICKED
    (action poweroff, QEMU's default -action panic=shutdown), SHUTDOWN reason guest-panic, EOF."""
    g = ctx.guest(linux_args(ctx.guest_dir, mode="panic", extra=["-device", "pvpanic"]), t)
    try:
        g.connect()
        g.handshake()
        g.until_event("GUEST_PANICKED", timeout=120)
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


def sc_panic_pause(t, ctx):
    """(h') guest kernel panic with pvpanic and -action panic=pause: GUEST_PANICKED (action
    pause) and STOP; query-status says guest-panicked; then quit."""
    g = ctx.guest(linux_args(ctx.guest_dir, mode="panic",
                             extra=["-device", "pvpanic", "-action", "panic=pause"]), t)
    try:
        g.connect()
        g.handshake()
        g.until_event("GUEST_PANICKED", timeout=120)
        g.drain(1)
        g.send("query-status")
        g.reply()
        g.send("quit")
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


def sc_stats_kvm(t, ctx):
    """(f) query-stats (target vm and vcpu) and query-stats-schemas on a firmware-only KVM guest."""
    if not ctx.kvm:
        raise Skip("KVM not usable")
    g = ctx.guest(["-accel", "kvm", "-machine", "q35", "-m", "128", "-smp", "2"], t)
    try:
        g.connect()
        g.handshake()
        time.sleep(2)
        g.send("query-stats", {"target": "vm"})
        g.reply()
        g.send("query-stats", {"target": "vm", "providers": [
            {"provider": "kvm", "names": ["pages_4k", "pages_2m", "mmu_shadow_zapped"]}]})
        g.reply()
        # names are KVM's (underscores): unknown names just select nothing
        g.send("query-stats", {"target": "vm", "providers": [
            {"provider": "kvm", "names": ["pages-4k"]}]})
        g.reply()
        g.send("query-stats", {"target": "vcpu", "vcpus": ["/machine/unattached/device[0]"]})
        g.reply()
        g.send("query-stats", {"target": "vcpu"})
        g.reply()
        g.send("query-stats-schemas")
        g.reply()
        g.send("query-stats-schemas", {"provider": "kvm"})
        g.reply()
    finally:
        g.close()


def sc_stats_tcg(t, ctx):
    """(f') query-stats on a TCG guest: no provider, empty lists."""
    g = ctx.guest(["-accel", "tcg", "-m", "64", "-nodefaults", "-S"], t)
    try:
        g.connect()
        g.handshake()
        g.send("query-stats", {"target": "vm"})
        g.reply()
        g.send("query-stats-schemas")
        g.reply()
    finally:
        g.close()


def sc_memdev(t, ctx):
    """(g) query-memdev with a bound, preallocated RAM backend (m0) and a default one (m1), as
    two guest NUMA nodes."""
    g = ctx.guest(["-accel", "tcg", "-m", "256", "-nodefaults", "-S",
                   "-object", "memory-backend-ram,id=m0,size=128M,policy=bind,host-nodes=0,prealloc=on",
                   "-object", "memory-backend-ram,id=m1,size=128M",
                   "-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1"], t)
    try:
        g.connect()
        g.handshake()
        g.send("query-memdev")
        g.reply()
        g.send("query-memory-size-summary")
        g.reply()
        g.send("qom-get", {"path": "/objects/m0", "property": "host-nodes"})
        g.reply()
    finally:
        g.close()


def sc_pipelined(t, ctx):
    """(i) several commands sent in one write before reading: replies come back in order."""
    g = ctx.guest(["-accel", "tcg", "-m", "64", "-nodefaults", "-S"], t)
    try:
        g.connect()
        g.recv()
        msgs = [{"execute": "qmp_capabilities", "id": 1},
                {"execute": "query-status", "id": 2},
                {"execute": "no-such-command", "id": 3},
                {"execute": "query-name", "id": 4}]
        data = b"".join(json.dumps(m).encode() + b"\n" for m in msgs)
        for m in msgs:
            t.add("C: " + json.dumps(m))
        g.sock.sendall(data)
        for _ in msgs:
            g.reply()
    finally:
        g.close()


def qga_call(path, messages, timeout=30):
    """Sends each message to the guest agent on the chardev socket at path, in turn, and returns the reply
    lines (a guest-sync-delimited reply is preceded by 0xFF, which is stripped)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(timeout)
    buf, replies = b"", []
    try:
        for m in messages:
            s.sendall(json.dumps(m).encode() + b"\n")
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise Fail("agent socket closed")
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            replies.append(json.loads(line.lstrip(b"\xff")))
    finally:
        s.close()
    return replies


def sc_vserport_change(t, ctx):
    """the guest agent's virtio-serial port: query-chardev (qga0 frontend-open false), VSERPORT_CHANGE
    open=true when qemu-ga in the guest opens the port, frontend-open true; qemu-ga killed in the guest
    (through its own guest-exec) → VSERPORT_CHANGE open=false, frontend-open false; quit."""
    qga = os.path.join(ctx.tmpdir, "qga.sock")
    if os.path.exists(qga):
        os.unlink(qga)
    g = ctx.guest(linux_args(ctx.guest_dir, extra=[
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % qga,
        "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0-port"]), t)
    try:
        g.connect()
        g.handshake()
        g.send("query-chardev")
        g.reply()
        g.until_event("VSERPORT_CHANGE", timeout=120)
        g.wait_console("MEMVISOR-GUEST-READY")
        g.send("query-chardev")
        g.reply()
        r = qga_call(qga, [{"execute": "guest-sync-delimited", "arguments": {"id": 4711}},
                           {"execute": "guest-exec", "arguments": {
                               "path": "/bin/sh", "arg": ["-c", "kill $(cat /var/run/qemu-ga.pid)"]}}])
        t.comment("agent: guest-sync-delimited → %s; guest-exec of kill → %s" % (json.dumps(r[0]), json.dumps(r[1])))
        g.until_event("VSERPORT_CHANGE", timeout=30)
        g.send("query-chardev")
        g.reply()
        g.send("quit")
        g.drain(5)
        t.comment("QEMU exit status %d" % g.wait_exit())
    finally:
        g.close()


class Skip(Exception):
    pass


SCENARIOS = [
    ("greeting-status", sc_greeting_status),
    ("capabilities-required", sc_capabilities_required),
    ("query-cpus-fast-tcg", sc_cpus_fast_tcg),
    ("query-cpus-fast-kvm", sc_cpus_fast_kvm),
    ("errors", sc_errors),
    ("balloon-events", sc_balloon),
    ("balloon-guest-stats", sc_balloon_stats),
    ("powerdown-shutdown", sc_powerdown),
    ("quit-shutdown", sc_quit),
    ("guest-poweroff", sc_guest_poweroff),
    ("stop-cont-reset", sc_stop_cont_reset),
    ("guest-panicked", sc_panic),
    ("guest-panicked-pause", sc_panic_pause),
    ("query-stats-kvm", sc_stats_kvm),
    ("query-stats-tcg", sc_stats_tcg),
    ("query-memdev", sc_memdev),
    ("pipelined", sc_pipelined),
    ("vserport-change", sc_vserport_change),
]


class Context:
    def __init__(self, guest_dir, tmpdir, kvm):
        self.guest_dir = guest_dir
        self.tmpdir = tmpdir
        self.kvm = kvm
        self.notes = []
        self.current = None

    def guest(self, args, t):
        g = Guest(args, t, self.tmpdir)
        argv_comment(t, g, self.guest_dir, self.tmpdir)
        self.current = g
        return g


def parse(path):
    """Parse a transcript into [(kind, payload)], kind "S"/"C" (payload: the JSON text) or
    "EOF" (payload: None or "ECONNRESET").  Raises ValueError on malformed files."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            if line.startswith(("S: ", "C: ")):
                if line[0] == "S":  # C: lines may be deliberately malformed (errors.qmp)
                    try:
                        json.loads(line[3:])
                    except ValueError as e:
                        raise ValueError("%s:%d: %s" % (path, n, e))
                out.append((line[0], line[3:]))
            elif line in ("EOF", "EOF ECONNRESET"):
                out.append(("EOF", line[4:] or None))
            else:
                raise ValueError("%s:%d: bad line %r" % (path, n, line))
    if not out or out[0][0] != "S" or "QMP" not in json.loads(out[0][1]):
        raise ValueError("%s: does not start with the greeting" % path)
    if any(k == "EOF" for k, _ in out[:-1]):
        raise ValueError("%s: lines after EOF" % path)
    return out


def check(outdir):
    bad = 0
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".qmp"):
            try:
                print("%-28s %d messages" % (name, len(parse(os.path.join(outdir, name)))))
            except ValueError as e:
                print(e)
                bad += 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guest", help="directory built by tests/guest/build-guest.sh")
    ap.add_argument("--touch", help="memvisor-touch for the guest (build-guest.sh --touch), e.g. "
                    "BUILDDIR/src/touch/memvisor-touch")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    ap.add_argument("--check", action="store_true", help="parse the transcripts in --out")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.check:
        return check(a.out)
    if a.list:
        for name, fn in SCENARIOS:
            print("%-24s %s" % (name, " ".join(fn.__doc__.split())))
        return 0
    names = a.names or [n for n, _ in SCENARIOS]
    unknown = set(names) - {n for n, _ in SCENARIOS}
    if unknown:
        ap.error("unknown scenario(s): %s" % " ".join(sorted(unknown)))

    guest_dir = a.guest or os.path.join(tempfile.gettempdir(), "memvisor-record-guest")
    subprocess.run([os.path.join(TOP, "tests", "guest", "build-guest.sh")] +
                   (["--touch", a.touch] if a.touch else []) + [guest_dir], check=True)
    version = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE,
                             text=True).stdout.splitlines()[0]
    kvm = kvm_usable()
    print("%s; KVM usable: %s" % (version, kvm))
    os.makedirs(a.out, exist_ok=True)

    failed = 0
    with tempfile.TemporaryDirectory(prefix="memvisor-qmp-") as tmpdir:
        ctx = Context(guest_dir, tmpdir, kvm)
        for name, fn in SCENARIOS:
            if name not in names:
                continue
            t = Transcript(name, " ".join(fn.__doc__.split()))
            t.header("recorded by tests/data/qmp/record.py with %s" % version)
            ctx.notes = []
            t0 = time.monotonic()
            try:
                fn(t, ctx)
            except Skip as e:
                print("%-24s SKIP %s" % (name, e))
                continue
            except Exception as e:  # noqa: BLE001 - report and go on with the next scenario
                failed += 1
                print("%-24s FAIL %s" % (name, e))
                continue
            for n in ctx.notes:
                t.header(n)
            path = t.write(a.out)
            print("%-24s ok %.1f s %s %s" % (name, time.monotonic() - t0,
                                            path, "; ".join(ctx.notes)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
