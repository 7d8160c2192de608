#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest agent of the memvisor test guest, spoken to directly (standard library only).

    tests/guest/agent-smoke.py [--touch PATH] OUTDIR

Builds the guest into OUTDIR if needed (tests/guest/build-guest.sh --touch PATH), boots it under TCG with
-smp 2, a virtio-serial port org.qemu.guest_agent.0 on a chardev socket and QMP, and checks:
(the port needs an id=: QEMU sends VSERPORT_CHANGE only for a virtserialport that has one)

- QMP: VSERPORT_CHANGE open=true when qemu-ga opens the port, query-chardev frontend-open of qga0;
- the agent: guest-sync-delimited (0xFF sentinel), guest-info, guest-get-osinfo (kernel-release equals
  recipe.txt's), guest-get-vcpus (= -smp), guest-file-open/read/close of /proc/vmstat and /proc/interrupts
  (the TLB: row has one number per CPU), guest-exec of memvisor-touch --mib=16 --write by path and through a
  PATH search with guest-exec-status polling (its JSON parses; vmstat's pgfault rose by at least 16 MiB/4 KiB),
  a missing program;
- killing qemu-ga in the guest: VSERPORT_CHANGE open=false, frontend-open false.

Then two more boots: memvisor.agent=0 (console says the agent is absent, nothing answers on the port) and
a guest without the port (absent, READY all the same). Prints the timings. Exit status 0 = pass, 1 = fail,
77 = skipped (no QEMU, or no memvisor-touch given).
"""

import argparse
import base64
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20
SMP = 2


class Fail(Exception):
    pass


class Qemu:
    """QEMU with the serial console on a pipe, QMP and (optionally) the agent port on unix sockets."""

    def __init__(self, outdir, tmp, append="", agent_port=True):
        self.qmp_path = os.path.join(tmp, "qmp.sock")
        self.qga_path = os.path.join(tmp, "qga.sock")
        for p in (self.qmp_path, self.qga_path):
            if os.path.exists(p):
                os.unlink(p)
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", str(SMP),
                "-kernel", os.path.join(outdir, "vmlinuz"), "-initrd", os.path.join(outdir, "initrd.gz"),
                "-append", ("console=ttyS0 quiet " + append).strip(), "-display", "none", "-serial", "stdio",
                "-no-reboot", "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if agent_port:
            argv += ["-device", "virtio-serial-pci,id=vser0",
                     "-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % self.qga_path,
                     "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0-port"]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.console = []
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.console.append(line)
            self.lines.put((time.monotonic() - self.t0, line))
        self.lines.put((time.monotonic() - self.t0, None))

    def wait_line(self, prefix, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                when, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise Fail("no %r on the console within %d s" % (prefix, timeout))
            if line is None:
                raise Fail("QEMU exited before %r" % prefix)
            if line.startswith(prefix):
                return when, line

    def tail(self):
        return "\n".join(self.console[-30:])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(30)
        self.f = self.sock.makefile("rwb")
        self.events = []
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise Fail("QMP closed")
        msg = json.loads(line)
        if "event" in msg:
            self.events.append((time.monotonic(), msg))
        return msg

    def cmd(self, execute, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise Fail("QMP %s: %s" % (execute, r["error"]))

    def wait_event(self, name, pred=lambda m: True, timeout=30):
        for _, m in self.events:
            if m["event"] == name and pred(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                m = self._read()
            except socket.timeout:
                break
            if m.get("event") == name and pred(m):
                return m
        raise Fail("no QMP event %s within %d s (events: %r)" % (name, timeout, self.events))

    def close(self):
        self.sock.close()


class Agent:
    """A qemu-ga client: one JSON reply per line; guest-sync-delimited puts 0xFF before its reply."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 12345

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        if not chunk:
            raise Fail("agent socket closed")
        self.buf += chunk

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._recv(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def sync(self, timeout=3, attempts=10):
        """guest-sync-delimited until the reply with our id comes back; returns the attempts used."""
        for attempt in range(1, attempts + 1):
            sync_id = self.next_id
            self.next_id += 1
            self.sock.sendall(json.dumps({"execute": "guest-sync-delimited",
                                          "arguments": {"id": sync_id}}).encode() + b"\n")
            deadline = time.monotonic() + timeout
            try:
                while True:
                    while b"\xff" not in self.buf:  # whatever came before the sentinel is stale
                        self.buf = b""
                        self._recv(deadline)
                    self.buf = self.buf.split(b"\xff", 1)[1]
                    reply = json.loads(self._line(deadline - time.monotonic()))
                    if reply.get("return") == sync_id:
                        return attempt
            except TimeoutError:
                continue
        raise TimeoutError("no guest-sync-delimited reply after %d attempts" % attempts)

    def call(self, execute, timeout=30, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        reply = json.loads(self._line(timeout))
        if "error" in reply:
            raise Fail("agent %s: %s" % (execute, reply["error"]))
        return reply["return"]

    def call_error(self, execute, timeout=30, **args):
        msg = {"execute": execute, "arguments": args}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return json.loads(self._line(timeout))

    def read_file(self, path):
        h = self.call("guest-file-open", path=path, mode="r")
        data = b""
        try:
            while True:
                r = self.call("guest-file-read", handle=h, count=65536)
                data += base64.b64decode(r["buf-b64"])
                if r["eof"] or r["count"] == 0:
                    break
        finally:
            self.call("guest-file-close", handle=h)
        return data.decode()

    def exec(self, path, args, timeout=120):
        return self.wait_exec(self.call("guest-exec", path=path, arg=args, **{"capture-output": True})["pid"],
                              path, timeout)

    def wait_exec(self, pid, path, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            st = self.call("guest-exec-status", pid=pid)
            if st["exited"]:
                st["out"] = base64.b64decode(st.get("out-data", "")).decode()
                st["err"] = base64.b64decode(st.get("err-data", "")).decode()
                return st
            if time.monotonic() > deadline:
                raise Fail("%s did not exit within %d s" % (path, timeout))
            time.sleep(0.1)

    def close(self):
        self.sock.close()


def vmstat(text):
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def check(cond, what):
    if not cond:
        raise Fail(what)


def boot_with_agent(outdir, tmp, kernel_release, notes):
    q = Qemu(outdir, tmp)
    try:
        # QMP connected before the guest opens the port, to see the VSERPORT_CHANGE event
        deadline = time.monotonic() + 20
        while True:
            try:
                qmp = Qmp(q.qmp_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or q.proc.poll() is not None:
                    raise Fail("QMP socket never came up:\n" + q.tail())
                time.sleep(0.05)
        chardev = {c["label"]: c for c in qmp.cmd("query-chardev")}
        check(chardev["qga0"]["frontend-open"] is False, "qga0 frontend-open before the guest booted: %r"
              % chardev["qga0"])
        agent_at, agent_line = q.wait_line("MEMVISOR-GUEST-AGENT")
        ready_at, _ = q.wait_line("MEMVISOR-GUEST-READY")
        notes.append("console: %s at %.2f s, READY at %.2f s" % (agent_line, agent_at, ready_at))
        check(agent_line.startswith("MEMVISOR-GUEST-AGENT started"), "agent not started: " + agent_line)
        ev = qmp.wait_event("VSERPORT_CHANGE", lambda m: m["data"]["open"], timeout=10)
        notes.append("QMP VSERPORT_CHANGE %s" % json.dumps(ev["data"]))
        chardev = {c["label"]: c for c in qmp.cmd("query-chardev")}
        check(chardev["qga0"]["frontend-open"] is True, "qga0 frontend-open: %r" % chardev["qga0"])

        t0 = time.monotonic()
        agent = Agent(q.qga_path)
        attempts = agent.sync()
        notes.append("agent answered guest-sync-delimited %.2f s after READY (%d attempt(s))"
                     % (time.monotonic() - q.t0 - ready_at, attempts))
        info = agent.call("guest-info")
        names = {c["name"] for c in info["supported_commands"] if c["enabled"]}
        notes.append("guest-info: qemu-ga %s, %d commands enabled" % (info["version"], len(names)))
        for c in ("guest-exec", "guest-exec-status", "guest-file-open", "guest-file-read", "guest-file-close",
                  "guest-get-osinfo", "guest-get-vcpus", "guest-get-memory-blocks", "guest-sync-delimited"):
            check(c in names, "agent lacks %s" % c)
        osinfo = agent.call("guest-get-osinfo")
        notes.append("guest-get-osinfo: %s" % json.dumps(osinfo))
        check(osinfo["kernel-release"] == kernel_release, "kernel-release %r, recipe says %r"
              % (osinfo["kernel-release"], kernel_release))
        vcpus = agent.call("guest-get-vcpus")
        check(len(vcpus) == SMP and all(v["online"] for v in vcpus), "guest-get-vcpus: %r" % vcpus)
        blocks = agent.call("guest-get-memory-blocks")
        notes.append("guest-get-memory-blocks: %d blocks" % len(blocks))

        irq = agent.read_file("/proc/interrupts")
        rows = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].split() for line in irq.splitlines()[1:]
                if ":" in line}
        for row in ("TLB", "CAL"):
            check(row in rows and all(x.isdigit() for x in rows[row][:SMP]) and
                  not rows[row][SMP].isdigit(), "/proc/interrupts %s row: %r" % (row, rows.get(row)))
        notes.append("TLB: row %s" % " ".join(rows["TLB"][:SMP]))
        before = vmstat(agent.read_file("/proc/vmstat"))
        check("pgfault" in before, "no pgfault in /proc/vmstat")
        notes.append("nr_tlb_* in /proc/vmstat: %s" % (sorted(k for k in before if k.startswith("nr_tlb_"))
                                                        or "none (no CONFIG_DEBUG_TLBFLUSH)"))

        t1 = time.monotonic()
        st = agent.exec("/usr/bin/memvisor-touch", ["--mib=16", "--write"])
        exec_s = time.monotonic() - t1
        check(st.get("exitcode") == 0, "memvisor-touch: %r" % st)
        j = json.loads(st["out"])
        after = vmstat(agent.read_file("/proc/vmstat"))
        rise = after["pgfault"] - before["pgfault"]
        check(j["pages_touched"] == 16 * MiB // 4096, "pages_touched %r" % j["pages_touched"])
        check(rise >= 16 * MiB // 4096, "pgfault rose by %d only" % rise)
        notes.append("guest-exec /usr/bin/memvisor-touch --mib=16 --write: exit 0 in %.2f s, pass %.1f ms, "
                     "minflt_first_pass %d, pgfault +%d" % (exec_s, j["pass_ns"][0] / 1e6,
                                                           j["minflt_first_pass"], rise))
        st = agent.exec("memvisor-touch", ["--mib=4", "--pattern=random", "--read"])
        check(st.get("exitcode") == 0 and json.loads(st["out"])["pages_touched"] == 1024,
              "memvisor-touch through PATH: %r" % st)
        notes.append("guest-exec memvisor-touch (PATH search): exit 0")
        r = agent.call_error("guest-exec", path="/usr/bin/no-such-program", **{"capture-output": True})
        notes.append("guest-exec of a missing program: %s" % json.dumps(r)[:200])
        if "return" in r:
            st = agent.wait_exec(r["return"]["pid"], "no-such-program", 30)
            notes.append("  its guest-exec-status: %s" % json.dumps(st))
        st = agent.exec("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        check(st["exitcode"] == 3 and st["out"] == "out\n" and st["err"] == "err\n", "sh -c: %r" % st)
        notes.append("agent checks took %.2f s" % (time.monotonic() - t0))

        # qemu-ga killed in the guest: the port closes, and opens again when the image's loop restarts it
        agent.call("guest-exec", path="/bin/sh", arg=["-c", "kill $(pidof qemu-ga)"])
        ev = qmp.wait_event("VSERPORT_CHANGE", lambda m: not m["data"]["open"], timeout=20)
        notes.append("qemu-ga killed: VSERPORT_CHANGE %s" % json.dumps(ev["data"]))
        deadline = time.monotonic() + 20
        while True:
            chardev = {c["label"]: c for c in qmp.cmd("query-chardev")}
            if chardev["qga0"]["frontend-open"] is True:
                break
            check(time.monotonic() < deadline, "after the restart: %r" % chardev["qga0"])
            time.sleep(0.1)
        notes.append("qemu-ga restarted by the image's loop: frontend-open true again after %.1f s"
                     % (20 - (deadline - time.monotonic())))
        agent.close()
        qmp.cmd("quit")
        qmp.close()
    except Fail as e:
        raise Fail("%s\nconsole:\n%s" % (e, q.tail()))
    finally:
        q.close()


def boot_without_agent(outdir, tmp, notes, append, agent_port, expect):
    q = Qemu(outdir, tmp, append=append, agent_port=agent_port)
    try:
        _, line = q.wait_line("MEMVISOR-GUEST-AGENT")
        ready_at, _ = q.wait_line("MEMVISOR-GUEST-READY")
        check(line == expect, "expected %r, console says %r" % (expect, line))
        if agent_port:
            agent = Agent(q.qga_path)
            try:
                agent.sync(timeout=1, attempts=2)
                raise Fail("an agent answered with memvisor.agent=0")
            except TimeoutError:
                pass
            agent.close()
        notes.append("%s%s: %r, READY at %.2f s" % ("port, " if agent_port else "no port, ", append or "-",
                                                    line, ready_at))
    except Fail as e:
        raise Fail("%s\nconsole:\n%s" % (e, q.tail()))
    finally:
        q.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--touch", default=os.environ.get("MEMVISOR_TOUCH"),
                    help="the static memvisor-touch to put in the guest (BUILDDIR/src/touch/memvisor-touch)")
    ap.add_argument("--quick", action="store_true", help="only the boot with the agent")
    ap.add_argument("outdir")
    a = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 not installed")
        return 77
    if not a.touch:
        print("SKIP: no memvisor-touch given (--touch PATH or MEMVISOR_TOUCH)")
        return 77
    subprocess.run([os.path.join(HERE, "build-guest.sh"), "--touch", a.touch, a.outdir], check=True)
    recipe = dict(line.split(" ", 1) for line in open(os.path.join(a.outdir, "recipe.txt")).read().splitlines())
    kernel_release = recipe["kernel-release"]
    print("initrd.gz: %d bytes" % os.path.getsize(os.path.join(a.outdir, "initrd.gz")))

    tmp = tempfile.mkdtemp(prefix="memvisor-agent-")
    notes = []
    try:
        boot_with_agent(a.outdir, tmp, kernel_release, notes)
        if not a.quick:
            boot_without_agent(a.outdir, tmp, notes, "memvisor.agent=0", True,
                               "MEMVISOR-GUEST-AGENT absent (memvisor.agent=0)")
            boot_without_agent(a.outdir, tmp, notes, "", False,
                               "MEMVISOR-GUEST-AGENT absent (no org.qemu.guest_agent.0 port)")
        print("\n".join(notes))
        print("PASS")
        return 0
    except (Fail, TimeoutError, OSError, ValueError, KeyError) as e:
        print("\n".join(notes))
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
