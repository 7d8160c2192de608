# SPDX-License-Identifier: LGPL-2.1-or-later
"""Faults injected into the real daemon's surroundings: a QEMU that stops answering (SIGSTOP), memvisord
killed with SIGKILL in the middle of operations, a state directory that is full, a runtime directory removed
under a running guest. Each test checks that the fault reaches the caller as a clear error, that the daemon
keeps serving everyone else, and that nothing that was acknowledged is lost.

Firmware-only guests (a blank disk; SeaBIOS waits) are enough: QEMU's QMP monitor and the virtio-balloon
device are there without a guest kernel. Bounds on waiting are generous (tens of seconds) and only guard
against hangs; they are not timing assertions."""

import os
import signal
import subprocess
import threading
import time

import pytest

from memvisor_it import wait_for
from test_vms import Events, alive, describe, firmware_vm, ok, state_event, write_vm

M = "io.memvisor.Manager."
MiB = 1 << 20


def qemu_pid(d, name):
    pid = describe(d, name)["pid"]
    assert pid and alive(pid)
    return pid


def answered_quickly(d, method, params=None, bound=5.0):
    """A call on a fresh connection that must be answered within bound seconds (the loop is not blocked)."""
    t0 = time.monotonic()
    with d.connect(timeout=bound) as c:
        reply = c.call(M + method, params)
    took = time.monotonic() - t0
    assert "error" not in reply, reply
    assert took < bound, "%s took %.1fs" % (method, took)
    return reply["parameters"]


class AsyncCall(threading.Thread):
    """One call on its own connection, answered whenever the daemon answers it."""

    def __init__(self, d, method, params, timeout):
        super().__init__(daemon=True)
        self.conn = d.connect(timeout=timeout)
        self.method, self.params, self.reply, self.error = method, params, None, None
        self.t0 = time.monotonic()
        self.took = None
        self.start()

    def run(self):
        try:
            self.reply = self.conn.call(M + self.method, self.params)
        except Exception as e:          # noqa: BLE001 - reported by the test
            self.error = e
        self.took = time.monotonic() - self.t0
        self.conn.close()


def test_stopped_qemu_stalls_only_its_own_callers(daemons, workdir):
    """A QEMU that never answers QMP (SIGSTOP): the balloon call on it fails with an error naming the guest once
    the QMP timeout passes, other guests and other clients are served meanwhile, and StopVM still ends the guest
    (SIGTERM stays pending on a stopped process: the SIGKILL escalation does it)."""
    d = daemons(name="stall", start=False)
    write_vm(d, "frozen", firmware_vm(workdir))
    write_vm(d, "other", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    for n in ("frozen", "other"):
        ok(d, "StartVM", {"name": n})
        ev.wait(state_event(n, "running"))
    pid = qemu_pid(d, "frozen")
    os.kill(pid, signal.SIGSTOP)
    try:
        stuck = AsyncCall(d, "SetBalloon", {"name": "frozen", "targetBytes": 32 * MiB}, timeout=60)
        # meanwhile: the daemon, the other guest and the metrics API answer at once
        for _ in range(5):
            answered_quickly(d, "GetDaemonStatus")
            assert answered_quickly(d, "ListVMs")["vms"]
            b = answered_quickly(d, "GetBalloon", {"name": "other"})["balloon"]
            assert b["targetBytes"] == 64 * MiB
            time.sleep(0.3)
        ok(d, "SetBalloon", {"name": "other", "targetBytes": 48 * MiB})
        stuck.join(60)
        assert not stuck.is_alive(), "SetBalloon on a stopped QEMU never answered"
        assert stuck.error is None, stuck.error
        assert stuck.reply.get("error") == M + "BalloonFailed", stuck.reply
        assert stuck.reply["parameters"]["name"] == "frozen", stuck.reply
        assert describe(d, "frozen")["state"] == "running"

        ok(d, "StopVM", {"name": "frozen"})
        ev.wait(state_event("frozen", "stopped"), timeout=60)
        wait_for(lambda: not alive(pid), timeout=10, what="the stopped QEMU gone")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert describe(d, "other")["state"] == "running"
    assert d.running
    ev.close()


def test_kill_9_mid_operations_loses_nothing_acknowledged(daemons, workdir):
    """SIGKILL while a balloon wait and an event stream are open: the guest keeps running, the new daemon
    re-adopts it (same pid), the definition DefineVM acknowledged before the kill is there, and the guest can be
    controlled as before."""
    d = daemons(name="k9ops", start=False)
    d.start()
    reply = ok(d, "DefineVM", {"name": "acked", "ini": firmware_vm(workdir)})
    assert reply["vm"]["name"] == "acked"
    ev = Events(d)
    ok(d, "StartVM", {"name": "acked"})
    ev.wait(state_event("acked", "running"))
    pid = qemu_pid(d, "acked")
    # a wait that cannot end by itself (no guest driver moves the balloon), then SIGKILL under it
    waiting = AsyncCall(d, "SetBalloon", {"name": "acked", "targetBytes": 32 * MiB, "wait": True,
                                          "timeoutUSec": 60 * 1000000}, timeout=60)
    time.sleep(0.5)
    os.kill(d.pid, signal.SIGKILL)
    d.wait_exit()
    waiting.join(10)
    assert not waiting.is_alive() and waiting.reply is None, "the client saw the connection end"
    ev.close()
    assert alive(pid), "the guest must outlive the daemon"

    d.start()
    vm = describe(d, "acked")
    assert vm["state"] == "running" and vm["pid"] == pid, vm
    assert (d.state_dir / "vms" / "acked.vm").exists()
    # the re-adopted guest's balloon size is asked of QEMU again (query-balloon, asynchronous)
    wait_for(lambda: "actualBytes" in ok(d, "GetBalloon", {"name": "acked"})["balloon"], timeout=30,
             what="the balloon size known again")
    b = ok(d, "GetBalloon", {"name": "acked"})["balloon"]
    assert b["actualBytes"] == 64 * MiB        # no driver: the balloon never moved
    ok(d, "SetBalloon", {"name": "acked", "targetBytes": 48 * MiB})
    ok(d, "StopVM", {"name": "acked"})
    wait_for(lambda: describe(d, "acked")["state"] == "stopped", timeout=30, what="stopped")
    assert not alive(pid)


@pytest.fixture
def small_state_dir(workdir):
    """A 256 KiB tmpfs as the state directory (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path = workdir / "state-full"
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path):
    """Fills the filesystem of path; returns the filler file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_state_directory(daemons, workdir, small_state_dir):
    """DefineVM on a full state directory fails with an error saying so, leaves no partial file, keeps the
    definitions already saved intact and disturbs nobody; once there is room again it works."""
    d = daemons(name="full", start=False)
    d.state_dir = small_state_dir
    d.start()
    ok(d, "DefineVM", {"name": "first", "ini": firmware_vm(workdir)})
    saved = (small_state_dir / "vms" / "first.vm").read_bytes()
    filler = fill(small_state_dir)

    big = firmware_vm(workdir, "# " + "x" * 8000 + "\n")
    reply = d.call(M + "DefineVM", {"name": "second", "ini": big})
    assert "error" in reply, reply
    text = str(reply)
    assert "No space left on device" in text or "ENOSPC" in text or "space" in text, reply
    assert not (small_state_dir / "vms" / "second.vm").exists()
    assert not [p for p in (small_state_dir / "vms").iterdir() if p.name.startswith(".")], \
        "a temporary file was left behind"
    # replacing a saved definition must not truncate it either
    reply = d.call(M + "DefineVM", {"name": "first", "ini": big, "replace": True})
    assert "error" in reply, reply
    assert (small_state_dir / "vms" / "first.vm").read_bytes() == saved
    assert answered_quickly(d, "ListVMs")["vms"]
    assert d.running

    filler.unlink()
    ok(d, "DefineVM", {"name": "second", "ini": big})
    assert (small_state_dir / "vms" / "second.vm").exists()
    d.stop()
    d.start()
    names = sorted(v["name"] for v in ok(d, "ListVMs")["vms"])
    assert names == ["first", "second"], names


def test_runtime_directory_removed_under_a_running_guest(daemons, workdir):
    """rm -rf of a running guest's runtime directory: supervision goes on over the QMP connection already open,
    StopVM works, and the next start makes the directory again."""
    d = daemons(name="rmrun", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    ok(d, "StartVM", {"name": "fw"})
    ev.wait(state_event("fw", "running"))
    pid = qemu_pid(d, "fw")
    rundir = d.runtime_dir / "vms" / "fw"
    assert rundir.is_dir()
    subprocess.run(["rm", "-rf", str(rundir)], check=True)

    ok(d, "SetBalloon", {"name": "fw", "targetBytes": 48 * MiB})
    assert ok(d, "GetBalloon", {"name": "fw"})["balloon"]["targetBytes"] == 48 * MiB
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=30)
    assert not alive(pid)

    ok(d, "StartVM", {"name": "fw"})
    ev.wait(state_event("fw", "running"))
    assert rundir.is_dir()
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=30)
    assert d.running
    ev.close()


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3]), line.split()[4]
    raise AssertionError("no open files line")


def test_open_file_limit_raised_for_the_daemon_not_for_guests(daemons, workdir):
    """Started with the 1024 soft limit services get, memvisord raises its own (two fds per guest) and starts
    QEMU with 1024 again."""
    hard = nofile(os.getpid())[1]
    if hard != "unlimited" and int(hard) < 2048:
        pytest.skip("hard RLIMIT_NOFILE %s leaves nothing to raise" % hard)
    d = daemons(name="nofile", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start(wrapper=lambda argv: ["prlimit", "--nofile=1024:%s" % hard] + argv)
    soft, _ = nofile(d.pid)
    assert soft == min(16384, 1 << 62 if hard == "unlimited" else int(hard)), soft
    ev = Events(d)
    ok(d, "StartVM", {"name": "fw"})
    ev.wait(state_event("fw", "running"))
    assert nofile(qemu_pid(d, "fw"))[0] == 1024
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=30)
    ev.close()
