# SPDX-License-Identifier: LGPL-2.1-or-later
"""GetHostInfo's QEMU probe (`qemu-system-x86_64 -object help` in a worker thread) against QEMUs that misbehave, a
fake one first in the daemon's PATH: one that closes its output and hangs is killed at the probe's 10 s deadline
(it used to keep the call, the probe slots and the daemon's shutdown waiting forever); SIGTERM with probes in
flight ends them at once; a QEMU that leaves a descendant holding its output is answered when it exits, and the
descendant is killed with its process group; the answer is cached for the same binary (it runs once)."""

import os
import signal
import time

from test_vms import alive

M = "io.memvisor.Manager."


def fake(workdir, body):
    b = workdir / "fakebin"
    b.mkdir(exist_ok=True)
    q = b / "qemu-system-x86_64"
    q.write_text("#!/bin/sh\n" + body + "\n")
    q.chmod(0o755)
    return str(b) + ":" + os.environ["PATH"]


def test_probe_hung_qemu_killed_at_deadline(daemons, workdir):
    path = fake(workdir, "exec >/dev/null 2>&1\nexec sleep 1000")
    d = daemons(name="hp1", env={"PATH": path})
    conns = [d.connect(timeout=30) for _ in range(4)]
    for c in conns:
        c.send(M + "GetHostInfo", None)
    t0 = time.monotonic()
    for c in conns:
        r = c.receive(timeout=30)
        assert "error" not in r, r
        reason = r["parameters"]["confidential"][0].get("qemuReason", "")
        assert "did not finish within 10 s" in reason, r
    assert time.monotonic() - t0 < 25
    # the slots are free again: a fifth call is probed (not Busy), and killed at the deadline too
    c = d.connect(timeout=30)
    c.send(M + "GetHostInfo", None)
    r = c.receive(timeout=30)
    assert "error" not in r and "did not finish" in r["parameters"]["confidential"][0].get("qemuReason", ""), r


def test_probe_ended_by_sigterm(daemons, workdir):
    path = fake(workdir, "exec sleep 300")
    d = daemons(name="hp2", env={"PATH": path})
    c = d.connect(timeout=30)
    c.send(M + "GetHostInfo", None)
    time.sleep(1)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=8)
    assert rc == 0 and time.monotonic() - t0 < 5, (rc, time.monotonic() - t0)


def test_probe_descendant_killed_and_cached(daemons, workdir):
    pidfile = workdir / "gc.pid"
    count = workdir / "runs"
    path = fake(workdir, "echo x >> %s\nsleep 300 &\necho $! > %s\necho sev-guest\nexit 0" % (count, pidfile))
    d = daemons(name="hp3", env={"PATH": path})
    t0 = time.monotonic()
    r = d.call(M + "GetHostInfo")
    assert "error" not in r, r
    assert time.monotonic() - t0 < 5, "answered when QEMU exited, not at the deadline"
    sev = [k for k in r["parameters"]["confidential"] if k["kind"] == "sev"][0]
    assert sev.get("qemu") is True, sev
    gc = int(pidfile.read_text())
    for _ in range(50):
        if not alive(gc):
            break
        time.sleep(0.1)
    assert not alive(gc), "the descendant holding QEMU's output was left running"
    for _ in range(3):
        assert "error" not in d.call(M + "GetHostInfo")
    assert count.read_text().count("x") == 1, "the same binary was asked again"
