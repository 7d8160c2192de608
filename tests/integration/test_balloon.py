# SPDX-License-Identifier: LGPL-2.1-or-later
"""Ballooning with the real daemon, real QEMU and the Linux test guest (TCG, virtio_balloon loaded): targets
with --wait, the guest's own statistics, a schedule whose steps are recorded, the host-pressure policy driven by
an injected host meminfo file ([Balloon] HostMeminfoPath=), and the errors a user sees. One guest boot per test."""

import json
import shutil
import socket
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


def guest_vm(d, test_guest, name="web", extra=""):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text(
        "[VM]\nMemory=512M\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\nAppend=console=ttyS0 quiet\n"
        "StopTimeoutSec=3s\n%s" % (test_guest, test_guest, extra))
    ok(d, "Reload")


def start_and_wait_ready(d, ctl, name="web"):
    r = ctl("start", name, address=d.socket)
    assert r.returncode == 0, r.stderr
    vm = ok(d, "DescribeVM", {"name": name})["vm"]
    console = vm["consoleLog"]
    deadline = time.monotonic() + 90
    while True:
        try:
            with open(console, "rb") as f:
                if b"MEMVISOR-GUEST-READY" in f.read():
                    return
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "guest never printed its ready line"
        time.sleep(0.2)


def wait_balloon(d, name, predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    b = None
    while time.monotonic() < deadline:
        b = ok(d, "GetBalloon", {"name": name})["balloon"]
        if predicate(b):
            return b
        time.sleep(0.2)
    raise AssertionError("balloon of %s: %s not reached within %.0fs; last: %s" % (name, what, timeout,
                                                                                  json.dumps(b, indent=1)))


def test_balloon_inflate_deflate_and_errors(daemons, ctl, test_guest):
    d = daemons(name="bl", config="[Balloon]\nStatsIntervalSec=1s\n")
    guest_vm(d, test_guest, extra="[Balloon]\nFloor=128M\n")
    (d.vm_dir / "noballoon.vm").write_text("[VM]\nMemory=256M\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
                                           "Balloon=no\n" % (test_guest, test_guest))
    r = ctl("reload", address=d.socket)
    assert r.returncode == 0, r.stderr

    # not running → InvalidState; no balloon device → NoBalloonDevice (also when not running)
    r = ctl("balloon", "web", "256M", address=d.socket)
    assert r.returncode == 1 and "io.memvisor.Manager.InvalidState" in r.stderr, r.stderr
    r = ctl("balloon", "noballoon", "128M", address=d.socket)
    assert r.returncode == 1 and "io.memvisor.Manager.NoBalloonDevice" in r.stderr, r.stderr
    r = ctl("balloon", "nosuch", address=d.socket)
    assert r.returncode == 1 and "io.memvisor.Manager.NoSuchVM" in r.stderr

    start_and_wait_ready(d, ctl)
    b = wait_balloon(d, "web", lambda b: "guestStats" in b and "actualBytes" in b, what="first guest stats")
    assert b["actualBytes"] == 512 * MiB and b["targetBytes"] == 512 * MiB
    total0 = b["guestStats"]["totalBytes"]
    assert 400 * MiB < total0 <= 512 * MiB
    for k in ("freeBytes", "availableBytes", "diskCachesBytes", "swapInBytes", "swapOutBytes", "majorFaults",
              "minorFaults", "lastUpdateRealtimeUSec"):
        assert k in b["guestStats"], k

    # malformed sizes are named by the CLI
    for bad, why in (("12Q", "expected a size"), ("-256M", "expected a size"), ("99999999999999999999", "too large")):
        r = ctl("balloon", "web", "--", bad, address=d.socket)
        assert r.returncode == 2 and ("'%s' for SIZE" % bad) in r.stderr and why in r.stderr, r.stderr
    # bounds: above boot memory, below the floor, 0 (the API), negative (the API)
    r = ctl("balloon", "web", "600M", address=d.socket)
    assert r.returncode == 1 and "BalloonTargetOutOfRange" in r.stderr and "above the guest's boot memory" in r.stderr
    r = ctl("balloon", "web", "64M", address=d.socket)
    assert r.returncode == 1 and "below the guest's balloon floor" in r.stderr
    reply = d.call(M + "SetBalloon", {"name": "web", "targetBytes": 0})
    assert reply["error"] == M + "BalloonTargetOutOfRange" and reply["parameters"]["parameter"] == "targetBytes"
    reply = d.call(M + "SetBalloon", {"name": "web", "targetBytes": -5})
    assert reply["error"] == "org.varlink.service.InvalidParameter"
    assert reply["parameters"]["parameter"] == "targetBytes"

    # inflate to 256 MiB, following progress
    t0 = time.monotonic()
    r = ctl("balloon", "web", "256M", "--wait", "--timeout", "30s", address=d.socket, timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "web: balloon target 256M, waiting…"
    assert lines[-1].startswith("web: actual 256M after ") and lines[-1].endswith("(target reached)"), lines
    assert len(lines) >= 3, "no intermediate sizes printed: %s" % lines
    print("inflate 512M → 256M: %.2fs, %d progress lines" % (time.monotonic() - t0, len(lines) - 1))

    # the guest's own total memory follows
    b = wait_balloon(d, "web", lambda b: b["guestStats"]["totalBytes"] < total0 - 200 * MiB, timeout=15,
                     what="guest total memory down by 200M")
    assert b["actualBytes"] == 256 * MiB
    r = ctl("balloon", "web", address=d.socket)
    assert r.returncode == 0 and "Actual: 256M" in r.stdout and "total:" in r.stdout, r.stdout

    # and back
    r = ctl("balloon", "web", "512M", "--wait", address=d.socket, timeout=40)
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("web: actual 512M"), r.stdout + r.stderr
    wait_balloon(d, "web", lambda b: b["guestStats"]["totalBytes"] >= total0 - 8 * MiB, timeout=15,
                 what="guest total memory back")

    # the raw streaming call: intermediate replies with continues, then the final one
    with d.connect(timeout=40) as c:
        c.send(M + "SetBalloon", {"name": "web", "targetBytes": 384 * MiB}, more=True)
        msgs = []
        while True:
            m = c.receive(40)
            assert "error" not in m, m
            msgs.append(m)
            if not m.get("continues"):
                break
    assert msgs[-1]["parameters"]["reached"] is True and msgs[-1]["parameters"]["actualBytes"] == 384 * MiB
    assert all(m["parameters"]["reached"] is False for m in msgs[:-1])

    r = ctl("kill", "web", address=d.socket)
    assert r.returncode == 0
    wait_balloon(d, "web", lambda b: not b["tracking"], timeout=10, what="not tracked after kill")


def test_balloon_schedule_steps_recorded(daemons, ctl, test_guest):
    d = daemons(name="bs", config="[Balloon]\nStatsIntervalSec=1s\n")
    guest_vm(d, test_guest)
    start_and_wait_ready(d, ctl)
    wait_balloon(d, "web", lambda b: "actualBytes" in b, what="actual known")

    r = ctl("balloon", "web", "--between", "256M,448M", "--every", "12Q", "--count", "3", address=d.socket)
    assert r.returncode == 2 and "--every=" in r.stderr
    r = ctl("balloon", "web", "--between", "256M", "--every", "4s", "--count", "3", address=d.socket)
    assert r.returncode == 2 and "--between=" in r.stderr
    reply = d.call(M + "SetBalloonSchedule", {"name": "web", "mode": "oscillate", "fromBytes": 256 * MiB,
                                              "toBytes": 448 * MiB, "everyUSec": 1000, "count": 3})
    assert reply["error"] == M + "InvalidBalloonSchedule" and reply["parameters"]["parameter"] == "everyUSec"

    r = ctl("balloon", "web", "--between", "256M,448M", "--every", "4s", "--count", "3", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "oscillate 256M → 448M, 3 steps every 4" in r.stdout
    b = ok(d, "GetBalloon", {"name": "web"})["balloon"]
    assert b["schedule"]["mode"] == "oscillate" and b["schedule"]["origin"] == "api"

    deadline = time.monotonic() + 30
    while True:
        steps = ok(d, "GetBalloonSteps", {"name": "web"})["steps"]
        if len(steps) == 3 and all(s["finished"] for s in steps):
            break
        assert time.monotonic() < deadline, steps
        time.sleep(0.3)
    assert [s["targetBytes"] for s in steps] == [256 * MiB, 448 * MiB, 256 * MiB]
    assert [s["index"] for s in steps] == [0, 1, 2]
    assert steps[1]["realtimeUSec"] - steps[0]["realtimeUSec"] == pytest.approx(4e6, abs=0.5e6)
    reached = [s for s in steps if s["reached"]]
    assert len(reached) >= 2, steps
    for s in reached:
        assert 0 <= s["timeToReachUSec"] < 4e6 and s["actualBytes"] == s["targetBytes"]
    for s in steps:
        # TCG: no KVM counters, and it says so
        assert s["kvm"]["available"] is False and "TCG" in s["kvm"]["reason"], s
    print("steps: %s" % [(s["targetBytes"] // MiB, s.get("timeToReachUSec")) for s in steps])

    r = ctl("balloon-steps", "web", address=d.socket)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4, r.stdout
    assert r.stdout.splitlines()[1].split()[0] == "0"
    # the schedule ends when the last step's period is over
    wait_balloon(d, "web", lambda b: "schedule" not in b, timeout=8, what="schedule over")

    # cancel: nothing to cancel now; a started one can be cancelled
    r = ctl("balloon", "web", "--cancel", address=d.socket)
    assert r.returncode == 1 and "NoBalloonSchedule" in r.stderr
    r = ctl("balloon", "web", "--ramp", "512M,256M", "--every", "10s", "--count", "3", address=d.socket)
    assert r.returncode == 0, r.stderr
    r = ctl("balloon", "web", "--cancel", address=d.socket)
    assert r.returncode == 0 and "cancelled" in r.stdout
    steps = ok(d, "GetBalloonSteps", {"name": "web"})["steps"]
    assert len(steps) == 4 and steps[-1]["targetBytes"] == 512 * MiB and steps[-1]["finished"]
    ctl("kill", "web", address=d.socket)


def write_meminfo(path, available_gib, committed_gib):
    total, limit = 16, 20
    path.write_text("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n"
                    "SwapTotal:      0 kB\nSwapFree:       0 kB\nCommitLimit:    %d kB\nCommitted_AS:   %d kB\n"
                    % (total << 20, int(available_gib * (1 << 20)), int(available_gib * (1 << 20)), limit << 20,
                       int(committed_gib * (1 << 20))))


def test_balloon_policy_squeezes_under_injected_pressure(daemons, ctl, test_guest, workdir):
    meminfo = workdir / "meminfo"
    write_meminfo(meminfo, 8, 10)   # relaxed: 50% available, committed 50% of the limit
    d = daemons(name="bp", config="[Balloon]\nStatsIntervalSec=1s\nPolicy=yes\nPolicyIntervalSec=1s\n"
                                  "MaxStep=64M\nGuestReserve=32M\nHostMeminfoPath=%s\n" % meminfo)
    guest_vm(d, test_guest, extra="[Balloon]\nFloor=256M\n")
    start_and_wait_ready(d, ctl)
    wait_balloon(d, "web", lambda b: "guestStats" in b and "actualBytes" in b, what="guest stats")
    time.sleep(2.5)
    b = ok(d, "GetBalloon", {"name": "web"})["balloon"]
    assert b["policy"] is True and b["actualBytes"] == 512 * MiB
    assert b["lastDecision"]["action"] == "hold" and b["lastDecision"]["reason"] == "at-ceiling", b

    # host pressure: MemAvailable 1G of 16G (under 10%) → squeezed step by step down to the floor
    write_meminfo(meminfo, 1, 10)
    b = wait_balloon(d, "web", lambda b: b.get("actualBytes") == 256 * MiB, timeout=40, what="squeezed to the floor")
    decisions = ok(d, "GetBalloonDecisions", {"name": "web"})
    assert decisions["hostState"] == "pressure"
    squeezes = [x for x in decisions["decisions"] if x["action"] == "squeeze"]
    assert len(squeezes) >= 4, decisions
    for x in squeezes:
        assert x["reason"] == "host-pressure" and x["actualBytes"] - x["targetBytes"] <= 64 * MiB
        assert x["host"]["availableLow"] is True and x["host"]["memAvailableBytes"] == 1 << 30
        assert "guestAvailableBytes" in x
    assert d.wait_for_log("Balloon policy: squeeze guest web")
    wait_balloon(d, "web", lambda b: b["lastDecision"]["reason"] == "at-floor", timeout=10, what="hold at floor")

    # Committed_AS over CommitLimit with plenty available still counts as pressure: stays squeezed
    write_meminfo(meminfo, 8, 21)
    time.sleep(2.5)
    b = ok(d, "GetBalloon", {"name": "web"})["balloon"]
    assert b["actualBytes"] == 256 * MiB and b["lastDecision"]["host"]["commitHigh"] is True

    # pressure gone → memory given back up to the ceiling (boot memory)
    write_meminfo(meminfo, 8, 10)
    wait_balloon(d, "web", lambda b: b.get("actualBytes") == 512 * MiB, timeout=40, what="given back")
    decisions = ok(d, "GetBalloonDecisions", {"name": "web"})
    assert decisions["hostState"] == "normal"
    assert any(x["action"] == "grow" and x["reason"] == "host-relief" for x in decisions["decisions"])
    r = ctl("balloon-decisions", "web", address=d.socket)
    assert r.returncode == 0 and "squeeze" in r.stdout and "grow" in r.stdout and "host-pressure" in r.stdout
    ctl("kill", "web", address=d.socket)


def test_balloon_config_errors(daemons, workdir):
    d = daemons(name="bc", start=False)
    d.config.write_text("[Balloon]\nHostAvailableLowPercent=30\nHostAvailableHighPercent=20\n")
    d.start(wait=False)
    rc = d.wait_exit(timeout=10)
    assert rc != 0
    assert "[Balloon] HostAvailableHighPercent= is out of range" in d.log_text()


class QmpMonitor:
    """A second QMP monitor of a guest (its own -qmp socket from ExtraArgs=), beside memvisord's."""

    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                assert time.monotonic() < deadline, "QMP monitor %s never appeared" % path
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rwb")
        self.events = []
        assert "QMP" in self._read()
        self.command("qmp_capabilities")

    def close(self):
        self.f.close()
        self.sock.close()

    def _read(self):
        line = self.f.readline()
        assert line, "QMP monitor closed"
        return json.loads(line)

    def command(self, name, arguments=None):
        msg = {"execute": name}
        if arguments is not None:
            msg["arguments"] = arguments
        self.f.write(json.dumps(msg).encode() + b"\r\n")
        self.f.flush()
        while True:
            m = self._read()
            if "event" in m:
                self.events.append(m)
                continue
            return m

    def wait_event(self, predicate, timeout=30.0, what="event"):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if predicate(e):
                    return e
            assert time.monotonic() < deadline, "%s not seen within %.0fs; events: %s" % (what, timeout, self.events)
            self.sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                self.events.append(self._read())
            except socket.timeout:
                pass


def assert_qemu_refused(reply, started, what):
    elapsed = time.monotonic() - started
    assert reply.get("error") == M + "BalloonFailed", "%s: %s" % (what, reply)
    p = reply["parameters"]
    assert p["name"] == "web" and p["qmpErrorClass"] == "DeviceNotActive", "%s: %s" % (what, reply)
    assert p["qmpErrorDesc"] == "No balloon device has been activated" and p["reason"] == p["qmpErrorDesc"], p
    # at once: QEMU answers within milliseconds, the wait timeout is a minute
    assert elapsed < 5, "%s: QEMU's error took %.1fs to reach the caller" % (what, elapsed)


def test_balloon_qemu_error_reaches_caller_at_once(daemons, ctl, test_guest, workdir):
    """QEMU refuses the balloon command: every SetBalloon form gets QEMU's error class and description at once,
    not a timeout blaming the guest's driver. Real QEMU refuses it once the balloon device is gone: on the pc
    machine the guest kernel's ACPI hotplug driver completes a device_del (sent through a second QMP monitor),
    after which QEMU answers balloon with DeviceNotActive."""
    bus = None
    if shutil.which("dbus-daemon") and shutil.which("busctl"):
        from test_dbus import Bus
        bus = Bus(workdir, shipped_policy=False)
    try:
        mon_path = workdir / "monitor.sock"
        config = "[Balloon]\nStatsIntervalSec=1s\nWaitTimeoutSec=60s\n"
        if bus:
            config += "[DBus]\nAddress=%s\n" % bus.address
        d = daemons(name="qe", config=config)
        if bus:
            bus.wait_name()
        guest_vm(d, test_guest, extra="Machine=pc\nExtraArgs=-qmp unix:%s,server=on,wait=off\n" % mon_path)
        start_and_wait_ready(d, ctl)
        wait_balloon(d, "web", lambda b: b.get("actualBytes") == 512 * MiB, what="balloon tracked")

        mon = QmpMonitor(mon_path)
        try:
            assert mon.command("device_del", {"id": "balloon0"}) == {"return": {}}
            mon.wait_event(lambda e: e["event"] == "DEVICE_DELETED" and e.get("data", {}).get("device") == "balloon0",
                           what="DEVICE_DELETED balloon0")
            # what QEMU itself says now
            r = mon.command("balloon", {"value": 256 * MiB})
            assert r["error"]["class"] == "DeviceNotActive", r
        finally:
            mon.close()

        target = {"name": "web", "targetBytes": 256 * MiB}
        with d.connect(timeout=90) as c:
            # without wait: the reply once QEMU answered
            t0 = time.monotonic()
            assert_qemu_refused(c.call(M + "SetBalloon", target), t0, "SetBalloon")
            # with wait: QEMU's answer ends the wait
            t0 = time.monotonic()
            assert_qemu_refused(c.call(M + "SetBalloon", dict(target, wait=True, timeoutUSec=60 * 1000000)), t0,
                                "SetBalloon wait")
            # streaming: at most the size it starts from, then the error ends the call
            t0 = time.monotonic()
            c.send(M + "SetBalloon", target, more=True)
            m = c.receive(90)
            while m.get("continues"):
                assert m["parameters"]["reached"] is False and m["parameters"]["actualBytes"] == 512 * MiB, m
                m = c.receive(90)
            assert_qemu_refused(m, t0, "SetBalloon more")
            # the connection goes on
            assert "error" not in c.call(M + "GetBalloon", {"name": "web"})

        t0 = time.monotonic()
        r = ctl("balloon", "web", "256M", "--wait", address=d.socket, timeout=90)
        assert r.returncode == 1 and M + "BalloonFailed" in r.stderr and "DeviceNotActive" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 5

        if bus:
            t0 = time.monotonic()
            p = bus.send("/io/memvisor/Manager1", "io.memvisor.Manager1", "SetBalloon", "string:web",
                         "uint64:%d" % (256 * MiB))
            assert p.returncode != 0 and "io.memvisor.Manager1.BalloonFailed" in p.stderr, p.stderr
            assert "DeviceNotActive" in p.stderr and "No balloon device has been activated" in p.stderr, p.stderr
            assert time.monotonic() - t0 < 5

        r = ctl("kill", "web", address=d.socket)
        assert r.returncode == 0
    finally:
        if bus:
            bus.close()


def test_balloon_policy_reads_the_metrics_host_sample(daemons, ctl, test_guest):
    """Without HostMeminfoPath= the policy takes host memory from the metrics sampler's last host sample (one
    reading for both), not from a /proc/meminfo read of its own, and acts on each sample once. With
    HostSampleIntervalSec=1h there is one sample for the whole test: one decision, with exactly its MemAvailable
    (the real one moves), however many 1 s policy rounds pass."""
    d = daemons(name="bs", config="[Balloon]\nStatsIntervalSec=1s\nPolicy=yes\nPolicyIntervalSec=1s\n"
                                  "[Metrics]\nHostSampleIntervalSec=1h\n")
    guest_vm(d, test_guest)
    start_and_wait_ready(d, ctl)
    wait_balloon(d, "web", lambda b: "guestStats" in b and "lastDecision" in b, what="a policy decision")
    time.sleep(3.5)
    sample = ok(d, "GetHostMemory")["sample"]
    decisions = ok(d, "GetBalloonDecisions", {"name": "web"})["decisions"]
    assert len(decisions) == 1, decisions
    assert decisions[0]["host"]["memAvailableBytes"] == sample["memAvailableBytes"], (decisions, sample)
    ctl("kill", "web", address=d.socket)
