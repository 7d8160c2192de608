# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest supervision with the real daemon and real QEMU: definitions (files and DefineVM), start, stop,
restart, kill, restart policy and start limit, re-adoption after memvisord is killed, events.

Firmware-only guests (a blank disk: SeaBIOS finds nothing to boot and waits) stand in where only the QEMU
process matters; the Linux test guest (tests/guest, TCG) is used where the guest itself must run."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from memvisor_it import NOBODY_UID, NOGROUP_GID, ConnectionClosed, VarlinkConnection, wait_for

M = "io.memvisor.Manager."


# ---- helpers --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def test_guest(build):
    """The Linux test guest (kernel + busybox initramfs), built once per build tree."""
    return build.test_guest()


def call(d, method, params=None):
    reply = d.call(M + method, params)
    return reply


def ok(d, method, params=None):
    reply = call(d, method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def describe(d, name):
    return ok(d, "DescribeVM", {"name": name})["vm"]


def wait_vm(d, name, predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    vm = None
    while time.monotonic() < deadline:
        vm = describe(d, name)
        if predicate(vm):
            return vm
        time.sleep(0.05)
    raise AssertionError("guest %s: %s not reached within %.0fs; last: %s" % (name, what, timeout,
                                                                             json.dumps(vm, indent=1)))


def wait_state(d, name, state, timeout=30.0):
    return wait_vm(d, name, lambda vm: vm["state"] == state, timeout, "state " + state)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def write_vm(d, name, text):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text(text)


_disks = [0]


def firmware_vm(workdir, extra=""):
    """A firmware-only guest with a blank disk of its own (QEMU locks disk images)."""
    _disks[0] += 1
    disk = workdir / ("blank%d.img" % _disks[0])
    if not disk.exists():
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
    return "[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\nStopTimeoutSec=1s\n%s" % (disk, extra)


class Events:
    """A SubscribeEvents stream."""

    def __init__(self, d):
        self.conn = d.connect(timeout=30)
        self.conn.send(M + "SubscribeEvents", more=True)
        first = self.conn.receive()
        assert first.get("continues") is True, first
        assert first["parameters"]["event"] == "subscribed"
        self.initial = first["parameters"]["vms"]

    def next(self, timeout=30):
        msg = self.conn.receive(timeout)
        assert msg.get("continues") is True and "error" not in msg, msg
        return msg["parameters"]

    def wait(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("event not seen; got: %s" % json.dumps(seen, indent=1))
            e = self.next(left)
            seen.append(e)
            if predicate(e):
                return e, seen

    def close(self):
        self.conn.close()


def state_event(name, state):
    return lambda e: e["event"] == "state" and e.get("vm") == name and e.get("state") == state


# ---- tests ----------------------------------------------------------------------------------------

def test_linux_guest_lifecycle(daemons, workdir, ctl, test_guest):
    """define from a file, start, the guest reaches its ready line on the console, stop, restart."""
    d = daemons(name="lc", start=False)
    d.start()
    vmfile = workdir / "web.vm"
    vmfile.write_text("[VM]\nName=web\nMemory=256M\nVCPUs=2\nAccelerator=tcg\nKernel=%s/vmlinuz\n"
                      "Initrd=%s/initrd.gz\nAppend=console=ttyS0 quiet\nStopTimeoutSec=3s\n"
                      % (test_guest, test_guest))
    r = ctl("define", vmfile, address=d.socket)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "web: defined"

    r = ctl("list", address=d.socket)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "VCPUS", "MEMORY", "RESTARTS"]
    assert lines[1].split()[:2] == ["web", "defined"]

    ev = Events(d)
    assert ctl("start", "web", address=d.socket).returncode == 0
    ev.wait(state_event("web", "starting"))
    e, _ = ev.wait(state_event("web", "running"))
    vm = describe(d, "web")
    pid = vm["pid"]
    assert e["pid"] == pid and alive(pid)
    assert vm["accelerator"] == "tcg" and vm["qmpState"] == "running"
    assert len(vm["vcpuThreads"]) == 2
    for t in vm["vcpuThreads"]:
        comm = Path("/proc/%d/task/%d/comm" % (pid, t["threadId"])).read_text().strip()
        assert comm == "CPU %d/TCG" % t["index"]
    assert vm["argv"][0].endswith("qemu-system-x86_64")
    assert "web,debug-threads=on" in vm["argv"]
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        assert f.read().split(b"\0")[:-1] == [a.encode() for a in vm["argv"]]

    console = Path(vm["consoleLog"])
    deadline = time.monotonic() + 90
    while b"MEMVISOR-GUEST-READY" not in (console.read_bytes() if console.exists() else b""):
        assert time.monotonic() < deadline, "guest never printed its ready line; console:\n%s" % console.read_text()
        time.sleep(0.2)

    r = ctl("status", "web", address=d.socket)
    assert r.returncode == 0
    assert "web - running" in r.stdout and "Command line: " in r.stdout and "tid" in r.stdout

    # Graceful stop: the guest's acpid powers it off on the ACPI power button (system_powerdown).
    t0 = time.monotonic()
    assert ctl("stop", "web", address=d.socket).returncode == 0
    ev.wait(state_event("web", "stopping"))
    e, _ = ev.wait(state_event("web", "stopped"), timeout=20)
    assert time.monotonic() - t0 < 3, "the guest did not power down by itself before StopTimeoutSec"
    assert not alive(pid)
    vm = describe(d, "web")
    assert vm["lastExit"]["exitCode"] == 0 and vm["lastExit"]["shutdownReason"] == "guest-shutdown"
    assert vm["restarts"] == 0

    # restart from stopped starts it; restart while running stops and starts it
    assert ctl("restart", "web", address=d.socket).returncode == 0
    ev.wait(state_event("web", "running"))
    pid2 = describe(d, "web")["pid"]
    assert pid2 != pid
    assert ctl("restart", "web", address=d.socket).returncode == 0
    ev.wait(state_event("web", "stopping"))
    ev.wait(state_event("web", "running"), timeout=30)
    pid3 = describe(d, "web")["pid"]
    assert pid3 != pid2 and not alive(pid2)
    assert ctl("kill", "web", address=d.socket).returncode == 0
    wait_state(d, "web", "stopped")
    ev.close()


def test_kill_9_restarts_by_policy(daemons, workdir):
    d = daemons(name="k9", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "[Restart]\nPolicy=on-failure\nRestartSec=100ms\n"))
    d.start()
    ev = Events(d)
    ok(d, "StartVM", {"name": "fw"})
    ev.wait(state_event("fw", "running"))
    pid = describe(d, "fw")["pid"]

    os.kill(pid, signal.SIGKILL)
    e, _ = ev.wait(state_event("fw", "restarting"))
    assert e["reason"] == "killed by signal KILL" and e["previousState"] == "running"
    e, _ = ev.wait(state_event("fw", "running"))
    vm = describe(d, "fw")
    assert vm["pid"] != pid and vm["restarts"] == 1 and e["restarts"] == 1
    assert vm["lastExit"]["signal"] == "KILL"

    # a second kill: backoff doubles (200 ms), counter 2
    os.kill(vm["pid"], signal.SIGKILL)
    ev.wait(state_event("fw", "running"))
    assert describe(d, "fw")["restarts"] == 2

    # stop is not a failure: no restart
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=20)
    time.sleep(0.5)
    assert describe(d, "fw")["state"] == "stopped"
    ev.close()


def test_crashing_guest_hits_start_limit(daemons, workdir):
    d = daemons(name="sl", start=False)
    # QEMU refuses an unknown device and exits 1 at once: a guest that always crashes.
    write_vm(d, "crash", firmware_vm(workdir, "ExtraArgs=-device no-such-device\n[Restart]\nPolicy=on-failure\n"
                                              "RestartSec=50ms\nRestartMaxDelaySec=100ms\nStartLimitBurst=3\n"
                                              "StartLimitIntervalSec=1min\n"))
    d.start()
    ev = Events(d)
    ok(d, "StartVM", {"name": "crash"})
    e, seen = ev.wait(lambda e: e["event"] == "state" and e.get("state") == "failed")
    assert "start limit hit" in e["reason"] and "exited with status 1" in e["reason"]
    restarts = [x for x in seen if x.get("state") == "restarting"]
    assert len(restarts) == 2
    vm = describe(d, "crash")
    assert vm["state"] == "failed" and vm["restarts"] == 2
    assert "MESSAGE_ID" not in vm  # journal detail stays in the journal
    d.wait_for_log("hit its start limit")

    # a start by the user resets the limit
    ok(d, "StartVM", {"name": "crash"})
    e, _ = ev.wait(lambda e: e["event"] == "state" and e.get("state") == "failed")
    assert "start limit hit" in e["reason"]
    ev.close()


def test_daemon_kill_9_guests_survive_and_are_readopted(daemons, workdir):
    d = daemons(name="ad", start=False)
    for n in ("one", "two"):
        write_vm(d, n, firmware_vm(workdir, "Autostart=yes\n"))
    d.start()
    wait_state(d, "one", "running")
    wait_state(d, "two", "running")
    pids = {n: describe(d, n)["pid"] for n in ("one", "two")}

    d.proc.kill()
    d.proc.wait()
    time.sleep(0.5)
    for p in pids.values():
        assert alive(p), "guest died with the daemon"

    d.start()
    for n, p in pids.items():
        vm = wait_state(d, n, "running")
        assert vm["pid"] == p and vm["adopted"] is True
        assert vm["stateReason"] == "re-adopted after daemon restart"
        wait_vm(d, n, lambda v: v.get("qmpState") == "running", what="QMP reconnected")
        # The vCPU threads come from query-cpus-fast, answered after the reconnect.
        wait_vm(d, n, lambda v: len(v.get("vcpuThreads") or []) == 1, what="vCPU threads known")
    d.wait_for_log("Re-adopted running guest one")

    ev = Events(d)
    ok(d, "StopVM", {"name": "one"})
    e, _ = ev.wait(state_event("one", "stopped"), timeout=20)
    assert not alive(pids["one"])
    # an adopted guest killed behind our back: noticed through its pidfd, status unknown
    os.kill(pids["two"], signal.SIGKILL)
    e, _ = ev.wait(lambda e: e.get("vm") == "two" and e.get("state") in ("failed", "stopped"))
    assert e["state"] == "failed" and "exit status unknown" in e["reason"]
    ev.close()


def test_guest_died_while_daemon_down_is_reported(daemons, workdir):
    d = daemons(name="gone", start=False)
    write_vm(d, "g", firmware_vm(workdir, "Autostart=yes\n"))
    d.start()
    pid = wait_state(d, "g", "running")["pid"]
    d.proc.kill()
    d.proc.wait()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    state_file = d.runtime_dir / "vms" / "g" / "state"
    assert state_file.exists()
    d.start()
    d.wait_for_log("ended while memvisord was not running")
    # Autostart=yes: it is started again
    vm = wait_state(d, "g", "running")
    assert vm["pid"] != pid and vm["adopted"] is False


def test_define_over_varlink_persists(daemons, workdir):
    d = daemons(name="def", start=False)
    d.start()
    disk = workdir / "blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    p = ok(d, "DefineVM", {"name": "api", "definition": {"VM": {"Memory": "64M", "VCPUs": 2, "Disk": [str(disk)],
                                                                  "Accelerator": "tcg"},
                                                           "Restart": {"Policy": "always"}}})
    assert p["vm"]["name"] == "api" and p["vm"]["state"] == "defined" and p["vm"]["vcpus"] == 2
    r = call(d, "DefineVM", {"name": "api", "ini": "[VM]\nMemory=64M\nDisk=%s\n" % disk})
    assert r["error"] == M + "VMExists" and r["parameters"] == {"name": "api"}
    ok(d, "DefineVM", {"name": "api", "ini": "[VM]\nMemory=128M\nDisk=%s\nAccelerator=tcg\n" % disk,
                       "replace": True})
    assert (d.state_dir / "vms" / "api.vm").exists()

    d.stop()
    d.start()
    vm = describe(d, "api")
    assert vm["memoryBytes"] == 128 << 20 and vm.get("source") is None

    # file-defined guests cannot be changed over the API
    write_vm(d, "file", firmware_vm(workdir))
    d.proc.send_signal(signal.SIGHUP)
    wait_vm(d, "file", lambda v: True)
    r = call(d, "DefineVM", {"name": "file", "ini": "[VM]\nDisk=%s\n" % disk, "replace": True})
    assert r["error"] == M + "DefinitionReadOnly"
    r = call(d, "UndefineVM", {"name": "file"})
    assert r["error"] == M + "DefinitionReadOnly"

    ok(d, "StartVM", {"name": "api"})
    wait_state(d, "api", "running")
    r = call(d, "UndefineVM", {"name": "api"})
    assert r["error"] == M + "InvalidState" and r["parameters"]["state"] == "running"
    ok(d, "KillVM", {"name": "api"})
    wait_state(d, "api", "stopped")
    ok(d, "UndefineVM", {"name": "api"})
    assert not (d.state_dir / "vms" / "api.vm").exists()
    r = call(d, "DescribeVM", {"name": "api"})
    assert r["error"] == M + "NoSuchVM" and r["parameters"] == {"name": "api"}


BAD_VALUES = [
    ("VM", "Memory", "12Q"), ("VM", "Memory", "-1"), ("VM", "Memory", "99999999999999999999G"),
    ("VM", "Memory", "1000K"), ("VM", "VCPUs", "0"), ("VM", "VCPUs", "many"), ("VM", "VCPUs", "513"),
    ("VM", "Accelerator", "xen"), ("VM", "Kernel", "relative/vmlinuz"), ("VM", "Balloon", "maybe"),
    ("VM", "Autostart", "2"), ("VM", "StartTimeoutSec", "soon"), ("VM", "StopTimeoutSec", "-5s"),
    ("VM", "ExtraArgs", "'unbalanced"), ("VM", "Name", "bad/name"), ("Memory", "Backend", "tmpfs"),
    ("Memory", "Policy", "spread"), ("Memory", "HostNodes", "1-0"), ("Memory", "HostNodes", "x"),
    ("Memory", "Prealloc", "perhaps"), ("Restart", "Policy", "sometimes"), ("Restart", "RestartSec", "1y"),
    ("Restart", "StartLimitBurst", "-1"), ("Restart", "StartLimitIntervalSec", "often"),
]


@pytest.mark.parametrize("section,key,value", BAD_VALUES)
def test_bad_field_values_are_named(daemons, workdir, section, key, value):
    d = daemons(name="bad", start=False)
    d.start()
    definition = {"VM": {"Disk": "/dev/null"}}
    definition.setdefault(section, {})[key] = value
    r = call(d, "DefineVM", {"name": "x", "definition": definition})
    assert r.get("error") == M + "InvalidDefinition", r
    assert r["parameters"]["field"] == "%s.%s" % (section, key), r
    assert value in r["parameters"]["reason"] or key in r["parameters"]["reason"], r

    ini = "[VM]\nDisk=/dev/null\n[%s]\n%s=%s\n" % (section, key, value)
    r = call(d, "DefineVM", {"name": "x", "ini": ini, "filename": "x.vm"})
    assert r.get("error") == M + "InvalidDefinition", r
    assert r["parameters"]["field"] == "%s.%s" % (section, key), r
    assert r["parameters"]["reason"].startswith("x.vm:4: "), r
    assert call(d, "DescribeVM", {"name": "x"})["error"] == M + "NoSuchVM"


def test_bad_file_does_not_stop_the_others(daemons, workdir):
    d = daemons(name="mix", start=False)
    write_vm(d, "good", firmware_vm(workdir, "Autostart=yes\n"))
    write_vm(d, "broken", "[VM]\nMemory=lots\nDisk=/dev/null\nAutostart=yes\n")
    d.start()
    wait_state(d, "good", "running")
    d.wait_for_log("broken.vm:2: Invalid value 'lots' for Memory=")
    names = [v["name"] for v in ok(d, "ListVMs")["vms"]]
    assert names == ["good"]


def test_missing_emulator_is_a_clear_error(daemons, workdir, ctl):
    d = daemons(name="noemu", start=False)
    write_vm(d, "ghost", firmware_vm(workdir, "Emulator=/nonexistent/qemu-system-x86_64\n"))
    d.start()
    r = call(d, "StartVM", {"name": "ghost"})
    assert r["error"] == M + "StartFailed"
    assert r["parameters"]["reason"] == "emulator /nonexistent/qemu-system-x86_64 not found"
    vm = describe(d, "ghost")
    assert vm["state"] == "failed" and vm["stateReason"] == r["parameters"]["reason"]
    r = ctl("start", "ghost", address=d.socket)
    assert r.returncode == 1 and M + "StartFailed" in r.stderr and "not found" in r.stderr


def test_lifecycle_errors(daemons, workdir):
    d = daemons(name="err", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    r = call(d, "KillVM", {"name": "fw"})
    assert r["error"] == M + "InvalidState" and r["parameters"] == {"name": "fw", "state": "defined"}
    assert call(d, "StartVM", {"name": "nope"})["error"] == M + "NoSuchVM"
    r = call(d, "KillVM", {"name": "fw", "signal": "BOGUS"})
    assert r["error"] == "org.varlink.service.InvalidParameter" and r["parameters"]["parameter"] == "signal"
    assert call(d, "StartVM", {})["parameters"]["parameter"] == "name"
    # stop of a stopped guest and start of a running one are no-ops
    ok(d, "StopVM", {"name": "fw"})
    ok(d, "StartVM", {"name": "fw"})
    pid = wait_state(d, "fw", "running")["pid"]
    ok(d, "StartVM", {"name": "fw"})
    assert describe(d, "fw")["pid"] == pid
    r = call(d, "SubscribeEvents")
    assert r["error"] == "org.varlink.service.ExpectedMore"
    ok(d, "KillVM", {"name": "fw", "signal": "TERM"})
    vm = wait_state(d, "fw", "stopped")
    assert vm["lastExit"]["exitCode"] == 0


def test_state_changing_methods_need_privilege(daemons, workdir):
    from memvisor_it import calls_as
    d = daemons(name="priv", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    denied = [(M + m, p) for m, p in (("StartVM", {"name": "fw"}), ("StopVM", {"name": "fw"}),
                                     ("KillVM", {"name": "fw"}), ("RestartVM", {"name": "fw"}),
                                     ("UndefineVM", {"name": "fw"}),
                                     ("DefineVM", {"ini": "[VM]\nDisk=/dev/null\n", "name": "y"}))]
    replies = calls_as(d.socket, denied + [(M + "ListVMs", None)], uid=65534, gid=65534)
    for (method, _), r in zip(denied, replies[:-1]):
        assert r["error"] == "org.varlink.service.PermissionDenied", (method, r)
    assert replies[-1]["parameters"]["vms"][0]["name"] == "fw"
    assert describe(d, "fw")["state"] == "defined"


def test_strings_that_are_not_text_are_refused(daemons, workdir):
    """A string with NUL would be cut in C ("nul4\u0000x" defined "nul4"; Kernel "/ok\u0000-evil" became "/ok";
    ini text after a NUL was dropped); overlong UTF-8 and encoded surrogates were accepted and echoed back raw.
    All are refused at the door, naming the parameter; nothing is defined."""
    d = daemons(name="text", start=False)
    d.start()
    cases = [
        ({"name": "nul4\u0000x", "ini": "[VM]\nDisk=/dev/null\n"}, "name"),
        ({"name": "k", "definition": {"VM": {"Disk": "/dev/null", "Kernel": "/ok\u0000-evil"}}}, "definition"),
        ({"name": "i", "ini": "[VM]\nDisk=/dev/null\n\u0000[Restart]\nPolicy=bogus\n"}, "ini"),
    ]
    for params, bad in cases:
        r = call(d, "DefineVM", params)
        assert r.get("error") == "org.varlink.service.InvalidParameter", (params, r)
        assert r["parameters"] == {"parameter": bad}, r
    # Raw bytes: an overlong "/" (C0 AF) and an encoded surrogate (ED A0 80) in a string value.
    for raw in (b"\xc0\xaf", b"\xed\xa0\x80"):
        with d.connect() as c:
            c.send_raw(b'{"method":"io.memvisor.Manager.DefineVM","parameters":{"name":"' + raw +
                       b'","ini":"[VM]\\nDisk=/dev/null\\n"}}\0')
            r = c.receive()
        assert r.get("error") == "org.varlink.service.InvalidParameter" and r["parameters"] == {"parameter": "name"}, r
    assert ok(d, "ListVMs")["vms"] == []

    # A .vm file with invalid UTF-8 is refused with its file and line, like any other bad line.
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "bad.vm").write_bytes(b"[VM]\nDisk=/dev/null\nAppend=console=ttyS0 \xc0\xaf\n")
    ok(d, "Reload")
    d.wait_for_log("bad.vm:3: Line is not valid UTF-8 text")
    assert call(d, "DescribeVM", {"name": "bad"})["error"] == M + "NoSuchVM"


def test_one_size_limit_for_every_way_in(daemons, workdir):
    """A definition whose .vm file would be over 1 MiB was accepted and then refused on the next start
    ("File too large"): the guest was gone. Every way in is checked against the same limit at the door, and
    what is accepted loads again after a restart. Append= over what execve(2) takes is refused at once."""
    d = daemons(name="size", start=False)
    d.start()
    kernel = {"VM": {"Kernel": "/boot/vmlinuz", "Accelerator": "tcg"}}

    big = "x" * (1 << 20)
    r = call(d, "DefineVM", {"name": "a", "definition": {"VM": dict(kernel["VM"], Append=big)}})
    assert r.get("error") == M + "InvalidDefinition" and r["parameters"]["field"] == "VM.Append", r
    assert r["parameters"]["reason"] == ("VM.Append: Append= is 1048576 bytes; QEMU's command line takes at most 131071 "
                                         "bytes per argument"), r
    r = call(d, "DefineVM", {"name": "a", "ini": "[VM]\nKernel=/boot/vmlinuz\nAppend=%s\n" % big})
    assert r.get("error") == M + "InvalidDefinition" and "field" not in r["parameters"], r
    assert "over the limit of 1048576 bytes for a .vm file" in r["parameters"]["reason"], r
    # Each argument under the execve limit, all of them together over 1 MiB.
    args = ["-%s" % ("y" * 120000)] * 10
    r = call(d, "DefineVM", {"name": "a", "definition": {"VM": dict(kernel["VM"], ExtraArgs=args)}})
    assert r.get("error") == M + "InvalidDefinition" and r["parameters"]["field"] == "definition", r
    assert "over the limit of 1048576 bytes" in r["parameters"]["reason"], r
    r = call(d, "DefineVM", {"name": "a", "definition": {"VM": dict(kernel["VM"], Append="z" * 131072)}})
    assert r["parameters"]["field"] == "VM.Append", r
    assert call(d, "DescribeVM", {"name": "a"})["error"] == M + "NoSuchVM"

    # The largest Append= accepted is saved, and comes back after a restart.
    ok(d, "DefineVM", {"name": "a", "definition": {"VM": dict(kernel["VM"], Append="z" * 131071)}})
    d.stop()
    d.start()
    assert describe(d, "a")["definition"]["VM"]["Append"] == "z" * 131071
    # A .vm file over the limit is refused with the reason, not silently.
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "huge.vm").write_text("[VM]\nKernel=/boot/vmlinuz\nAppend=%s\n" % big)
    ok(d, "Reload")
    d.wait_for_log("huge.vm")
    assert call(d, "DescribeVM", {"name": "huge"})["error"] == M + "NoSuchVM"


def test_definitions_writable_by_others_are_not_loaded(daemons, workdir):
    """Emulator= runs as root, so a .vm file or VM directory that someone else can write is refused, as sshd's
    StrictModes refuses a loose authorized_keys: logged with the reason, nothing defined."""
    d = daemons(name="strict", start=False)
    write_vm(d, "good", firmware_vm(workdir))
    write_vm(d, "loose", "[VM]\nDisk=/dev/null\nEmulator=/bin/true\n")
    loose = d.vm_dir / "loose.vm"
    os.chmod(loose, 0o666)
    write_vm(d, "foreign", "[VM]\nDisk=/dev/null\nEmulator=/bin/true\n")
    os.chown(d.vm_dir / "foreign.vm", NOBODY_UID, NOGROUP_GID)
    d.start()
    names = [v["name"] for v in ok(d, "ListVMs")["vms"]]
    assert names == ["good"], names
    d.wait_for_log("%s is writable by everyone (mode 0666): it could change what runs as root; not loading it."
                   % loose)
    d.wait_for_log("%s is owned by uid %d, not by root" % (d.vm_dir / "foreign.vm", NOBODY_UID))

    # Fixed, it loads on reload; a world-writable directory refuses everything in it.
    os.chmod(loose, 0o644)
    ok(d, "Reload")
    assert sorted(v["name"] for v in ok(d, "ListVMs")["vms"]) == ["good", "loose"]
    assert "definitionProblem" not in ok(d, "DescribeVM", {"name": "loose"})["vm"]

    # A loaded guest whose file turns loose keeps its definition, and DescribeVM says why the file was refused,
    # until the file is trusted again.
    os.chmod(loose, 0o666)
    ok(d, "Reload")
    vm = ok(d, "DescribeVM", {"name": "loose"})["vm"]
    assert vm["definitionProblem"] == ("%s is writable by everyone (mode 0666): it could change what runs as root; "
                                       "not loading it." % loose), vm
    assert vm["definition"]["VM"]["Emulator"] == "/bin/true"
    os.chmod(loose, 0o644)
    ok(d, "Reload")
    assert "definitionProblem" not in ok(d, "DescribeVM", {"name": "loose"})["vm"]
    d2 = daemons(name="strict2", start=False)
    write_vm(d2, "x", firmware_vm(workdir))
    os.chmod(d2.vm_dir, 0o777)
    d2.start()
    assert ok(d2, "ListVMs")["vms"] == []
    d2.wait_for_log("%s is writable by everyone (mode 0777)" % d2.vm_dir)


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_state_file_never_loses_a_running_guest(daemons, workdir, damage):
    """A truncated (or removed) run/vms/NAME/state made the next memvisord show the guest as defined and leave
    its QEMU unsupervised; a start then launched a second QEMU on the same disk. The QEMU is found again by
    the QMP socket it holds, and re-adopted."""
    d = daemons(name="dmg", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "Autostart=yes\n"))
    d.start()
    pid = wait_state(d, "fw", "running")["pid"]
    wait_vm(d, "fw", lambda v: v.get("qmpState") == "running", what="QMP connected")
    d.stop()
    assert alive(pid)
    state = d.runtime_dir / "vms" / "fw" / "state"
    if damage == "truncated":
        with open(state, "r+b") as f:
            f.truncate(min(300, os.path.getsize(state) - 1))
    else:
        state.unlink()

    d.start()
    vm = wait_state(d, "fw", "running")
    assert vm["pid"] == pid and vm["adopted"] is True, vm
    d.wait_for_log("The state file of guest fw is %s, but QEMU pid %d still holds its QMP socket"
                   % ("damaged" if damage == "truncated" else "missing", pid))
    wait_vm(d, "fw", lambda v: v.get("qmpState") == "running", what="QMP reconnected")
    # Starting it again is a no-op: still one QEMU.
    ok(d, "StartVM", {"name": "fw"})
    assert describe(d, "fw")["pid"] == pid
    qemus = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(int(p), str(d.state_dir))]
    assert qemus == [str(pid)], qemus
    # The state file is written again, so the next restart needs no search.
    assert json.loads(state.read_text())["pid"] == pid
    ev = Events(d)
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=20)
    ev.close()
    assert not alive(pid)


def _cmdline_has(pid, text):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return any(b"qemu" in a for a in args[:1]) and any(text.encode() in a for a in args)


def test_no_second_qemu_for_a_guest_left_unsupervised(daemons, workdir):
    """A QEMU that cannot be re-adopted (state file damaged and the guest no longer defined) is left alone,
    and a later start of a guest of that name is refused while it holds the QMP socket."""
    d = daemons(name="lone", start=False)
    text = firmware_vm(workdir, "Autostart=yes\n")
    write_vm(d, "fw", text)
    d.start()
    pid = wait_state(d, "fw", "running")["pid"]
    d.stop()
    (d.runtime_dir / "vms" / "fw" / "state").write_text("{ not json")
    (d.vm_dir / "fw.vm").unlink()
    d.start()
    d.wait_for_log("Guest fw runs (pid %d) but neither its definition nor its saved one can be read" % pid)
    ok(d, "DefineVM", {"name": "fw", "ini": text.replace("Autostart=yes\n", "")})
    r = call(d, "StartVM", {"name": "fw"})
    assert r.get("error") == M + "StartFailed", r
    assert ("process %d still holds this guest's QMP socket" % pid) in r["parameters"]["reason"], r
    assert alive(pid) and describe(d, "fw")["state"] == "failed"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), timeout=10)
    ok(d, "StartVM", {"name": "fw"})
    assert wait_state(d, "fw", "running")["pid"] != pid
    ok(d, "KillVM", {"name": "fw"})


# ---- the runtime directory run/vms/NAME is never followed through a symbolic link ------------------

def _fw_runtime_dir(d, workdir, name="fw"):
    """A daemon with one firmware guest, not started; returns its run/vms/NAME path (not created)."""
    write_vm(d, name, firmware_vm(workdir))
    d.start()
    return d.runtime_dir / "vms" / name


def _start_refused(d, name, *words):
    """StartVM fails; the reason names each of words, and is the guest's state reason and in the log."""
    r = call(d, "StartVM", {"name": name})
    assert r.get("error") == M + "StartFailed", r
    reason = r["parameters"]["reason"]
    for w in words:
        assert w in reason, reason
    vm = describe(d, name)
    assert vm["state"] == "failed" and vm["stateReason"] == reason and "pid" not in vm, vm
    d.wait_for_log("Failed to start guest %s: %s" % (name, reason))
    return reason


@pytest.mark.parametrize("target", ["existing", "dangling"])
def test_log_file_symlink_in_runtime_dir_is_not_followed(daemons, workdir, target):
    """run/vms/NAME/qemu.log as a symbolic link made the daemon create and append to its target. It is opened
    with O_NOFOLLOW now: the start is refused with the reason, and the target is neither changed nor created."""
    d = daemons(name="lnk", start=False)
    run = _fw_runtime_dir(d, workdir)
    run.mkdir(mode=0o700)
    outside = workdir / "outside.txt"
    if target == "existing":
        outside.write_text("not the daemon's\n")
    (run / "qemu.log").symlink_to(outside)

    _start_refused(d, "fw", str(run / "qemu.log"), "symbolic link")
    if target == "existing":
        assert outside.read_text() == "not the daemon's\n"
    else:
        assert not outside.exists()
    assert (run / "qemu.log").is_symlink()
    # Without the link the same guest starts.
    (run / "qemu.log").unlink()
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running")
    assert not (run / "qemu.log").is_symlink() and outside.exists() == (target == "existing")


def test_console_is_a_pipe_and_earlier_boots_stay(daemons, workdir):
    """QEMU writes its console into a pipe the daemon reads (-add-fd + /dev/fdset/N, append=on), never into a
    file it opens: an earlier boot's file is never truncated, the new boot gets the next number. The guest's
    console directory planted as a symbolic link is not followed: the guest runs, its console is not kept, the
    target is untouched."""
    d = daemons(name="cfd", start=False)
    _fw_runtime_dir(d, workdir)
    consoles = d.state_dir / "consoles" / "fw"
    consoles.mkdir(parents=True, mode=0o700)
    (consoles / "boot-1.log").write_text("last boot\n")
    ok(d, "StartVM", {"name": "fw"})
    vm = wait_state(d, "fw", "running")
    assert vm["consoleBoot"] == 2 and vm["consoleLog"] == str(consoles / "boot-2.log")
    with open("/proc/%d/cmdline" % vm["pid"], "rb") as f:
        argv = f.read().decode().split("\0")
    assert [a for a in argv if "console" in a and a != "chardev:console"] == [
        "fd=4,set=1,opaque=%s" % consoles, "file,id=console,path=/dev/fdset/1,append=on"], argv
    # fd 5 is QEMU's unused copy of the read end (the pipe outlives a daemon restart); the write end is in the fd
    # set and open in the chardev: QEMU holds the pipe three times.
    fd_dir = "/proc/%d/fd" % vm["pid"]
    pipe = os.readlink(fd_dir + "/5")
    assert pipe.startswith("pipe:["), pipe
    assert sum(os.readlink(os.path.join(fd_dir, f)) == pipe for f in os.listdir(fd_dir)) == 3
    assert (consoles / "boot-1.log").read_text() == "last boot\n"
    assert (consoles / "boot-2.log").read_bytes().startswith(b"-- memvisor: guest fw, boot 2, ")
    assert (consoles / "boot-2.log").stat().st_mode & 0o777 == 0o600
    ok(d, "KillVM", {"name": "fw"})
    wait_state(d, "fw", "stopped")

    decoy = workdir / "decoy-consoles"
    consoles.rename(decoy)
    consoles.symlink_to(decoy)
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running")
    d.wait_for_log("Failed to begin the console history of guest fw")
    assert sorted(os.listdir(decoy)) == ["boot-1.log", "boot-2.log"]
    assert consoles.is_symlink()


def test_runtime_dir_symlink_or_foreign_is_refused(daemons, workdir):
    """run/vms/NAME as a symbolic link (to a directory of decoys), or a directory owned by another uid, is
    refused: the start fails with the reason, nothing in the link's target is touched or created."""
    d = daemons(name="rdir", start=False)
    run = _fw_runtime_dir(d, workdir)
    decoy = workdir / "decoy"
    decoy.mkdir()
    for n in ("state", "qmp.sock", "console.log", "qemu.log"):
        (decoy / n).write_text("decoy %s\n" % n)
    run.symlink_to(decoy)
    _start_refused(d, "fw", str(run), "symbolic link")
    assert sorted(os.listdir(decoy)) == ["console.log", "qemu.log", "qmp.sock", "state"]
    for n in os.listdir(decoy):
        assert (decoy / n).read_text() == "decoy %s\n" % n
    assert run.is_symlink()

    run.unlink()
    run.mkdir(mode=0o700)
    os.chown(run, NOBODY_UID, NOGROUP_GID)
    _start_refused(d, "fw", str(run), "owned by uid %d" % NOBODY_UID)
    assert os.listdir(run) == []


def test_undefine_with_runtime_dir_a_symlink_spares_its_target(daemons, workdir):
    """UndefineVM removed state, qmp.sock, console.log and qemu.log through run/vms/NAME when that was a
    symbolic link, i.e. in the link's target. Now only the link itself goes."""
    d = daemons(name="undef")
    disk = workdir / "blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    ok(d, "DefineVM", {"name": "api", "definition": {"VM": {"Memory": "64M", "Disk": [str(disk)],
                                                                  "Accelerator": "tcg"}}})
    decoy = workdir / "decoy"
    decoy.mkdir()
    names = ["console.log", "keep", "qemu.log", "qmp.sock", "state"]
    for n in names:
        (decoy / n).write_text("decoy %s\n" % n)
    link = d.runtime_dir / "vms" / "api"
    link.symlink_to(decoy)

    ok(d, "UndefineVM", {"name": "api"})
    assert sorted(os.listdir(decoy)) == names
    for n in names:
        assert (decoy / n).read_text() == "decoy %s\n" % n
    assert not os.path.lexists(link)
    assert call(d, "DescribeVM", {"name": "api"})["error"] == M + "NoSuchVM"

    # A real runtime directory is still removed whole by UndefineVM.
    ok(d, "DefineVM", {"name": "api", "definition": {"VM": {"Memory": "64M", "Disk": [str(disk)],
                                                                  "Accelerator": "tcg"}}})
    ok(d, "StartVM", {"name": "api"})
    wait_state(d, "api", "running")
    ev = Events(d)
    ok(d, "KillVM", {"name": "api"})
    ev.wait(state_event("api", "stopped"), timeout=20)
    ev.close()
    assert link.is_dir() and (d.state_dir / "consoles" / "api" / "boot-1.log").exists()
    ok(d, "UndefineVM", {"name": "api"})
    assert not os.path.lexists(link)
    assert not os.path.lexists(d.state_dir / "consoles" / "api")


def test_planted_state_file_adopts_nothing(daemons, workdir):
    """A run/vms/NAME that is a symbolic link to a directory with a crafted state file (naming an unrelated
    process with its real start time) must not get that process adopted, and so never signalled by StopVM."""
    d = daemons(name="plant", start=False)
    write_vm(d, "evil", firmware_vm(workdir))
    d.start()
    d.stop()
    victim = subprocess.Popen(["sleep", "300"])
    try:
        with open("/proc/%d/stat" % victim.pid) as f:
            starttime = int(f.read().rsplit(")", 1)[1].split()[19])
        decoy = workdir / "decoy"
        decoy.mkdir()
        (decoy / "state").write_text(json.dumps({"name": "evil", "pid": victim.pid, "starttime": starttime}))
        vms = d.runtime_dir / "vms"
        vms.mkdir(exist_ok=True)
        os.symlink(decoy, vms / "evil")
        d.start()
        d.wait_for_log("%s is not a directory of memvisord's own" % (vms / "evil"))
        vm = describe(d, "evil")
        assert vm["state"] == "defined" and not vm.get("adopted"), vm
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
