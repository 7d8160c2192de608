# SPDX-License-Identifier: LGPL-2.1-or-later
"""virtio-mem ([Memory] HotplugSize=, issue 17) with the real daemon, real QEMU under TCG and the Linux test guest
(virtio_mem loaded, hotplugged memory onlined movable): SetHotplugMemory grows the device to 128M and shrinks it
back to 0 with --wait, QEMU's query-memory-devices follows, and so does the guest's own MemTotal (its agent's
meminfo). And the errors a user sees: bad definitions, a guest without the device, sizes out of range."""

import json
import subprocess
import time

import pytest


M = "io.memvisor.Manager."
MiB = 1 << 20


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def vm_text(test_guest, memory_extra=""):
    return ("[VM]\nMemory=512M\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
            "Append=console=ttyS0 quiet\nStopTimeoutSec=3s\n[Memory]\n%s" % (test_guest, test_guest, memory_extra))


def start_and_wait_ready(d, ctl, name):
    r = ctl("start", name, address=d.socket)
    assert r.returncode == 0, r.stderr
    console = ok(d, "DescribeVM", {"name": name})["vm"]["consoleLog"]
    deadline = time.monotonic() + 120
    while True:
        try:
            with open(console, "rb") as f:
                if b"MEMVISOR-GUEST-READY" in f.read():
                    return
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "guest never printed its ready line"
        time.sleep(0.2)


def qemu_device(d, name):
    reply = ok(d, "ExecuteMonitorCommand", {"name": name, "command": "query-memory-devices"})
    devs = [x for x in reply["reply"] if x["type"] == "virtio-mem"]
    assert len(devs) == 1, reply
    return devs[0]["data"]


def guest_memtotal(d, name, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        reply = d.call(M + "GuestCounters", {"name": name})
        if "error" not in reply:
            return reply["parameters"]["counters"]["meminfoBytes"]["MemTotal"]
        assert time.monotonic() < deadline, reply
        time.sleep(0.5)


def wait_memtotal(d, name, predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        t = guest_memtotal(d, name)
        if predicate(t):
            return t
        assert time.monotonic() < deadline, "guest MemTotal %d: %s not reached" % (t, what)
        time.sleep(0.5)


def test_hotplug_definition_errors(daemons, test_guest):
    d = daemons(name="hd")
    for extra, field, words in (
            ("HotplugSize=256M\nMaxMemory=256M\n", "Memory.MaxMemory", "is below Memory=512M"),
            ("HotplugSize=256M\nMaxMemory=640M\n", "Memory.MaxMemory", "below Memory=512M + HotplugSize=256M"),
            ("HotplugSize=257M\n", "Memory.HotplugSize", "multiple of the virtio-mem block size 2M"),
            ("MaxMemory=1G\n", "Memory.MaxMemory", "needs HotplugSize="),
            ("HotplugSize=256M\nHotplugNode=1\n", "Memory.HotplugNode", "not a guest NUMA node")):
        reply = d.call(M + "DefineVM", {"name": "bad", "ini": vm_text(test_guest, extra)})
        assert "error" in reply, (extra, reply)
        assert field in json.dumps(reply) and words in json.dumps(reply), (extra, reply)


def test_hotplug_grow_and_shrink(daemons, ctl, test_guest):
    d = daemons(name="hp")
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "vmem.vm").write_text(vm_text(test_guest, "HotplugSize=256M\nMaxMemory=1G\n"))
    (d.vm_dir / "plain.vm").write_text(vm_text(test_guest))
    ok(d, "Reload")

    # not running → InvalidState
    reply = d.call(M + "SetHotplugMemory", {"name": "vmem", "sizeBytes": 128 * MiB})
    assert reply["error"] == M + "InvalidState", reply

    start_and_wait_ready(d, ctl, "vmem")
    argv = ok(d, "DescribeVM", {"name": "vmem"})["vm"]
    assert "512M,maxmem=1024M,slots=1" in json.dumps(argv), argv
    dev = qemu_device(d, "vmem")
    assert dev["id"] == "vmem0dev" and dev["max-size"] == 256 * MiB and dev["size"] == 0
    assert dev["block-size"] == 2 * MiB
    total0 = guest_memtotal(d, "vmem")

    # out of range: above HotplugSize=, not a multiple of the block size; a negative size
    r = ctl("hotplug", "vmem", "512M", address=d.socket)
    assert r.returncode == 1 and "HotplugSizeOutOfRange" in r.stderr and "HotplugSize=" in r.stderr, r.stderr
    reply = d.call(M + "SetHotplugMemory", {"name": "vmem", "sizeBytes": 3 * MiB})
    assert reply["error"] == M + "HotplugSizeOutOfRange" and reply["parameters"]["parameter"] == "sizeBytes"
    assert reply["parameters"]["blockBytes"] == 2 * MiB and reply["parameters"]["maximumBytes"] == 256 * MiB
    reply = d.call(M + "SetHotplugMemory", {"name": "vmem", "sizeBytes": -1})
    assert reply["error"] == "org.varlink.service.InvalidParameter", reply

    # grow to 128M, following progress
    t0 = time.monotonic()
    r = ctl("hotplug", "vmem", "128M", "--wait", "--timeout", "60s", address=d.socket, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "vmem: virtio-mem requested size 128M, waiting…", lines
    assert lines[-1].startswith("vmem: virtio-mem size 128M of requested 128M") and lines[-1].endswith("(reached)")
    grow = time.monotonic() - t0
    dev = qemu_device(d, "vmem")
    assert dev["size"] == 128 * MiB and dev["requested-size"] == 128 * MiB, dev
    t = wait_memtotal(d, "vmem", lambda t: t >= total0 + 120 * MiB, "grown by 128M")
    print("virtio-mem grow 0 → 128M: %.2fs; guest MemTotal %d → %d kB" % (grow, total0 >> 10, t >> 10))

    # shrink back to 0 over the raw streaming call
    t0 = time.monotonic()
    with d.connect(timeout=90) as c:
        c.send(M + "SetHotplugMemory", {"name": "vmem", "sizeBytes": 0}, more=True)
        msgs = []
        while True:
            m = c.receive(90)
            assert "error" not in m, m
            msgs.append(m)
            if not m.get("continues"):
                break
    final = msgs[-1]["parameters"]["hotplug"]
    assert final["sizeBytes"] == 0 and final["requestedBytes"] == 0 and final["maximumBytes"] == 256 * MiB, msgs
    assert all(m["parameters"]["hotplug"]["sizeBytes"] > 0 for m in msgs[:-1]), msgs
    shrink = time.monotonic() - t0
    assert qemu_device(d, "vmem")["size"] == 0
    t = wait_memtotal(d, "vmem", lambda t: t <= total0 + 8 * MiB, "back to the boot size")
    print("virtio-mem shrink 128M → 0: %.2fs, %d progress messages; guest MemTotal %d kB" % (shrink, len(msgs) - 1,
                                                                                           t >> 10))

    # a guest without the device
    start_and_wait_ready(d, ctl, "plain")
    r = ctl("hotplug", "plain", "128M", address=d.socket)
    assert r.returncode == 1 and "NoHotplugDevice" in r.stderr and "HotplugSize=" in r.stderr, r.stderr

    for name in ("vmem", "plain"):
        assert ctl("kill", name, address=d.socket).returncode == 0


def test_hotplug_wait_ends_when_client_goes(daemons, ctl, build, test_guest):
    """A guest that never follows (its virtio_mem module is blacklisted): `hotplug --wait` waits; killing the
    client ends the daemon's wait at once, so the guest's next SetHotplugMemory is accepted, not Busy."""
    d = daemons(name="hk")
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "deaf.vm").write_text(vm_text(test_guest, "HotplugSize=256M\nMaxMemory=1G\n").replace(
        "quiet\n", "quiet module_blacklist=virtio_mem\n"))
    ok(d, "Reload")
    start_and_wait_ready(d, ctl, "deaf")

    client = subprocess.Popen([str(build.memvisorctl), "-A", str(d.socket), "hotplug", "deaf", "128M", "--wait",
                               "--timeout", "600s"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # QEMU took the requested size (so the client's call is in flight, waiting): another call is Busy
        deadline = time.monotonic() + 20
        while qemu_device(d, "deaf")["requested-size"] != 128 * MiB:
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the client's SetHotplugMemory never reached QEMU"
            time.sleep(0.1)
        reply = d.call(M + "SetHotplugMemory", {"name": "deaf", "sizeBytes": 0})
        assert reply.get("error") == M + "Busy", reply
        time.sleep(0.5)
        assert client.poll() is None, client.communicate()
        assert qemu_device(d, "deaf")["size"] == 0
    finally:
        client.kill()
        client.wait()

    t0 = time.monotonic()
    while True:
        reply = d.call(M + "SetHotplugMemory", {"name": "deaf", "sizeBytes": 0})
        if "error" not in reply:
            break
        assert reply["error"] == M + "Busy", reply
        assert time.monotonic() - t0 < 5, "still Busy 5s after the waiting client was killed"
        time.sleep(0.1)
    print("SetHotplugMemory accepted %.2fs after the waiting client was killed" % (time.monotonic() - t0))
    assert reply["parameters"]["hotplug"]["requestedBytes"] == 0
    assert qemu_device(d, "deaf")["requested-size"] == 0
    assert ctl("kill", "deaf", address=d.socket).returncode == 0
