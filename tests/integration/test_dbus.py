# SPDX-License-Identifier: LGPL-2.1-or-later
"""The D-Bus interface (io.memvisor.Manager1 and the per-guest io.memvisor.VM1 objects) against a private
dbus-daemon started by each test, driven with busctl: introspection, one call per operation, properties,
PropertiesChanged and StateChanged on a guest state change, access control (the daemon's own check with a
permissive bus policy, and the shipped policy file), and a daemon without a bus."""

import grp
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from memvisor_it import NOBODY_UID, NOGROUP_GID, REPO, run_as_kwargs

NAME = "io.memvisor.Manager1"
PATH = "/io/memvisor/Manager1"
IFACE = "io.memvisor.Manager1"
VM_IFACE = "io.memvisor.VM1"
POLICY = REPO / "units" / "io.memvisor.Manager1.conf"

pytestmark = pytest.mark.skipif(not (shutil.which("dbus-daemon") and shutil.which("busctl")),
                                reason="dbus-daemon or busctl not installed (apt-get install dbus systemd)")


class Bus:
    """A private dbus-daemon. shipped_policy: include units/io.memvisor.Manager1.conf after a policy that
    lets everybody connect; otherwise everybody may call everything (so only memvisord's own check stands)."""

    def __init__(self, workdir, shipped_policy):
        self.socket = workdir / "bus.sock"
        self.config = workdir / "bus.conf"
        include = "<include>%s</include>" % POLICY if shipped_policy else ""
        self.config.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig>\n"
            "  <type>system</type>\n"
            "  <listen>unix:path=%s</listen>\n"
            "  <auth>EXTERNAL</auth>\n"
            "  <policy context=\"default\">\n"
            "    <allow user=\"*\"/>\n"
            "    <allow own=\"*\"/>\n"
            "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
            "    <allow eavesdrop=\"true\"/>\n"
            "  </policy>\n"
            "  %s\n"
            "</busconfig>\n" % (self.socket, include))
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=%s" % self.config, "--nofork",
                                      "--print-address"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        assert self.address.startswith("unix:"), "dbus-daemon failed: %s" % self.proc.stderr.read()
        os.chmod(self.socket, 0o777)

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)

    def busctl(self, *args, uid=None, gid=None, groups=None, check=True, timeout=15):
        p = subprocess.run(["busctl", "--address=%s" % self.address] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd="/",
                           **run_as_kwargs(uid, gid, groups))
        if check:
            assert p.returncode == 0, "busctl %s failed: %s" % (" ".join(map(str, args)), p.stderr)
        return p

    def call(self, path, iface, method, signature="", *args, **kw):
        p = self.busctl("--json=short", "call", NAME, path, iface, method, *([signature] + list(args)
                                                                              if signature else []), **kw)
        return json.loads(p.stdout)["data"] if p.stdout.strip() else None

    def send(self, path, iface, method, *args, uid=None, gid=None):
        """dbus-send, which (unlike busctl) prints the name of an error: the CompletedProcess."""
        return subprocess.run(["dbus-send", "--bus=%s" % self.address, "--print-reply", "--dest=%s" % NAME, path,
                               "%s.%s" % (iface, method)] + list(args), capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL, cwd="/", **run_as_kwargs(uid, gid, None))

    def get(self, path, iface, prop):
        p = self.busctl("--json=short", "get-property", NAME, path, iface, prop)
        return json.loads(p.stdout)["data"]

    def wait_name(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.busctl("--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", NAME)
            if json.loads(p.stdout)["data"] == [True]:
                return
            time.sleep(0.05)
        raise AssertionError("%s never appeared on the bus" % NAME)


class Monitor:
    """busctl monitor --json=short on the bus: one JSON message per line."""

    def __init__(self, bus, workdir):
        self.out = workdir / "monitor.json"
        self.f = open(self.out, "w")
        self.proc = subprocess.Popen(["busctl", "--address=%s" % bus.address, "--json=short", "monitor"],
                                     stdout=self.f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        time.sleep(0.5)  # BecomeMonitor is asynchronous

    def messages(self):
        msgs = []
        for line in self.out.read_text().splitlines():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                pass
        return msgs

    def wait(self, predicate, timeout=30, what="message"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages():
                if predicate(m):
                    return m
            time.sleep(0.1)
        raise AssertionError("%s not seen; monitor output:\n%s" % (what, self.out.read_text()[-4000:]))

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.f.close()


@pytest.fixture
def private_bus(workdir):
    buses = []

    def make(shipped_policy=False):
        b = Bus(workdir, shipped_policy)
        buses.append(b)
        return b

    yield make
    for b in buses:
        b.close()


def firmware_vm(workdir, name, extra=""):
    disk = workdir / ("%s.img" % name)
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    return "[VM]\nMemory=64M\nVCPUs=1\nAccelerator=tcg\nDisk=%s\nStopTimeoutSec=1s\n%s" % (disk, extra)


def start_daemon(daemons, bus, workdir, extra_config="", vms=("fw",), vm_extra=""):
    d = daemons(name="dbus", start=False)
    d.vm_dir.mkdir(exist_ok=True)
    for n in vms:
        (d.vm_dir / (n + ".vm")).write_text(firmware_vm(workdir, n, vm_extra))
    d.start(config="[DBus]\nAddress=%s\n%s" % (bus.address, extra_config))
    bus.wait_name()
    return d


def vm_path(name):
    # sd_bus_path_encode: [A-Za-z0-9] stay, everything else is _XX
    return PATH + "/vm/" + "".join(c if c.isalnum() else "_%02x" % ord(c) for c in name)


def wait_prop(bus, path, prop, value, timeout=30):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = bus.get(path, VM_IFACE, prop)
        if got == value:
            return
        time.sleep(0.05)
    raise AssertionError("%s of %s is %r, expected %r" % (prop, path, got, value))


def prop_changed(path, state):
    return lambda m: (m.get("member") == "PropertiesChanged" and m.get("path") == path and
                      m["payload"]["data"][0] == VM_IFACE and
                      m["payload"]["data"][1].get("State", {}).get("data") == state)


# ---- tests ----------------------------------------------------------------------------------------

def test_introspection(daemons, private_bus, workdir):
    bus = private_bus()
    start_daemon(daemons, bus, workdir, vms=("fw", "web-1"))
    p = bus.busctl("introspect", NAME, PATH)
    assert p.stderr == ""
    for member in (".ListVMs", ".GetVM", ".DescribeVM", ".StartVM", ".StopVM", ".RestartVM", ".KillVM",
                   ".Reload", ".GetDaemonStatus", ".StateChanged", ".Version", ".Status", ".StartExperiment",
                   ".ListExperiments", ".DescribeExperiment", ".CancelExperiment", ".DeleteExperiment",
                   ".CompareExperiments", ".ExperimentProgress",
                   "org.freedesktop.DBus.ObjectManager"):
        assert member in p.stdout, member
    p = bus.busctl("introspect", NAME, vm_path("web-1"))
    for member in (".State", ".Pid", ".Restarts", ".VCPUs", ".MemoryBytes", ".Start", ".Stop", ".Kill",
                   "emits-change"):
        assert member in p.stdout, member
    tree = bus.busctl("tree", "--list", NAME).stdout.split()
    assert vm_path("fw") in tree and vm_path("web-1") in tree
    # An object that is no guest's is not there.
    p = bus.busctl("introspect", NAME, PATH + "/vm/nosuch", check=False)
    assert p.returncode != 0


def test_operations_and_signals(daemons, private_bus, workdir):
    bus = private_bus()
    d = start_daemon(daemons, bus, workdir)
    path = vm_path("fw")
    mon = Monitor(bus, workdir)
    try:
        assert bus.call(PATH, IFACE, "ListVMs") == [[["fw", "defined", path]]]
        assert bus.call(PATH, IFACE, "GetVM", "s", "fw") == [path]
        desc = json.loads(bus.call(PATH, IFACE, "DescribeVM", "s", "fw")[0])
        assert desc["name"] == "fw" and desc["state"] == "defined" and desc["memoryBytes"] == 64 << 20
        st = bus.call(PATH, IFACE, "GetDaemonStatus")[0]
        assert st["PID"]["data"] == d.pid and st["Guests"]["data"] == 1
        assert st["Status"]["data"] == d.status()["status"]
        assert bus.get(PATH, IFACE, "Version") == d.status()["version"]
        assert bus.get(path, VM_IFACE, "MemoryBytes") == 64 << 20
        assert bus.get(path, VM_IFACE, "VCPUs") == 1
        assert bus.get(path, VM_IFACE, "Pid") == 0

        p = bus.busctl("call", NAME, PATH, IFACE, "GetVM", "s", "nosuch", check=False)
        assert p.returncode != 0 and "No guest named 'nosuch'" in p.stderr

        # StartVM: PropertiesChanged and StateChanged, the Pid property is QEMU's.
        bus.call(PATH, IFACE, "StartVM", "s", "fw")
        mon.wait(prop_changed(path, "running"), what="PropertiesChanged State=running")
        mon.wait(lambda m: m.get("member") == "StateChanged" and m["payload"]["data"][:4] ==
                 ["fw", path, "running", "starting"], what="StateChanged running")
        wait_prop(bus, path, "State", "running")
        pid = bus.get(path, VM_IFACE, "Pid")
        assert pid == json.loads(bus.call(PATH, IFACE, "DescribeVM", "s", "fw")[0])["pid"]
        assert os.path.exists("/proc/%d" % pid)

        # StopVM (a firmware guest ignores the power button: SIGTERM after StopTimeoutSec=1s).
        bus.call(PATH, IFACE, "StopVM", "s", "fw")
        mon.wait(prop_changed(path, "stopping"), what="PropertiesChanged State=stopping")
        wait_prop(bus, path, "State", "stopped")
        assert bus.get(path, VM_IFACE, "Pid") == 0

        # RestartVM from stopped starts it; KillVM with a signal name; the guest object's own methods.
        bus.call(PATH, IFACE, "RestartVM", "s", "fw")
        wait_prop(bus, path, "State", "running")
        bus.call(PATH, IFACE, "KillVM", "ss", "fw", "SIGKILL")
        wait_prop(bus, path, "State", "stopped")
        p = bus.busctl("call", NAME, PATH, IFACE, "KillVM", "ss", "fw", "KILL", check=False)
        assert p.returncode != 0 and "not running" in p.stderr
        p = bus.busctl("call", NAME, PATH, IFACE, "KillVM", "ss", "fw", "SIGNOPE", check=False)
        assert p.returncode != 0 and "Unknown signal" in p.stderr

        bus.call(path, VM_IFACE, "Start")
        wait_prop(bus, path, "State", "running")
        assert json.loads(bus.call(path, VM_IFACE, "Describe")[0])["state"] == "running"
        bus.call(path, VM_IFACE, "Restart")
        wait_prop(bus, path, "State", "running")
        bus.call(path, VM_IFACE, "Kill", "s", "TERM")
        wait_prop(bus, path, "State", "stopped")
        bus.call(path, VM_IFACE, "Stop")  # not running: a no-op, not an error

        # Reload: the daemon logs the reload; a broken config is reported as ConfigInvalid.
        n = len(d.log_text())
        bus.call(PATH, IFACE, "Reload")
        d.wait_for_log("Reloaded configuration", start=n)
        d.config.write_text(d.config.read_text() + "[Nope]\n")
        p = bus.busctl("call", NAME, PATH, IFACE, "Reload", check=False)
        assert p.returncode != 0 and "Unknown section" in p.stderr
    finally:
        mon.close()


def meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k == key:
                return int(v.split()[0])
    raise KeyError(key)


def test_pin_balloon_migrate_host_memory(daemons, private_bus, workdir):
    """The operations shared with varlink, on a firmware TCG guest with a balloon device (and no driver in
    the guest: QEMU accepts a target, the balloon just does not move)."""
    bus = private_bus()
    start_daemon(daemons, bus, workdir, vm_extra="Balloon=yes\n")
    path = vm_path("fw")
    p = bus.busctl("introspect", NAME, PATH)
    for member in (".PinVCPUs", ".SetBalloon", ".GetBalloon", ".MigratePages", ".GetHostMemory",
                   ".MigrationFinished"):
        assert member in p.stdout, member
    p = bus.busctl("introspect", NAME, path)
    assert p.stderr == ""
    for member in (".BalloonTarget", ".BalloonActual", ".PinVCPUs", ".SetBalloon", ".GetBalloon",
                   ".MigratePages", ".MigratePagesScoped"):
        assert member in p.stdout, member
    # Not running: no balloon sizes, pinning is refused.
    assert bus.get(path, VM_IFACE, "BalloonTarget") == 2**64 - 1
    p = bus.send(PATH, IFACE, "PinVCPUs", "string:fw", "string:0:0", "string:")
    assert p.returncode != 0 and "io.memvisor.Manager1.InvalidState" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "PinVCPUs", "string:nosuch", "string:0:0", "string:")
    assert "io.memvisor.Manager1.NoSuchVM" in p.stderr, p.stderr

    mon = Monitor(bus, workdir)
    try:
        bus.call(PATH, IFACE, "StartVM", "s", "fw")
        wait_prop(bus, path, "State", "running")
        pid = bus.get(path, VM_IFACE, "Pid")

        # PinVCPUs: vCPU 0 to CPU 0, as the kernel sees it.
        vcpus = bus.call(PATH, IFACE, "PinVCPUs", "sss", "fw", "0:0", "")[0]
        assert len(vcpus) == 1 and vcpus[0]["Index"]["data"] == 0
        tid = vcpus[0]["ThreadId"]["data"]
        assert vcpus[0]["AllowedCPUs"]["data"] == "0"
        with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Cpus_allowed_list"].strip() == "0"
        p = bus.send(PATH, IFACE, "PinVCPUs", "string:fw", "string:7:0", "string:")
        assert "io.memvisor.Manager1.NoSuchVCPU" in p.stderr, p.stderr
        p = bus.send(PATH, IFACE, "PinVCPUs", "string:fw", "string:nonsense", "string:")
        assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "map" in p.stderr, p.stderr

        # SetBalloon: the reply comes when QEMU accepted the target; BalloonTarget follows, with
        # PropertiesChanged. Without a driver the balloon stays at the boot size.
        wait_prop(bus, path, "BalloonActual", 64 << 20)
        res = bus.call(PATH, IFACE, "SetBalloon", "st", "fw", 48 << 20)[0]
        assert res["Name"]["data"] == "fw" and res["TargetBytes"]["data"] == 48 << 20
        assert res["Reached"]["data"] is False
        assert bus.get(path, VM_IFACE, "BalloonTarget") == 48 << 20
        mon.wait(lambda m: (m.get("member") == "PropertiesChanged" and m.get("path") == path and
                            m["payload"]["data"][1].get("BalloonTarget", {}).get("data") == 48 << 20),
                 what="PropertiesChanged BalloonTarget")
        b = bus.call(PATH, IFACE, "GetBalloon", "s", "fw")[0]
        assert b["TargetBytes"]["data"] == 48 << 20 and b["Tracking"]["data"] is True
        assert b["MemoryBytes"]["data"] == 64 << 20
        assert bus.call(path, VM_IFACE, "GetBalloon")[0]["TargetBytes"]["data"] == 48 << 20
        p = bus.send(PATH, IFACE, "SetBalloon", "string:fw", "uint64:%d" % (128 << 20))
        assert "io.memvisor.Manager1.BalloonTargetOutOfRange" in p.stderr, p.stderr
        assert ("128M is above the guest's boot memory 64M (name fw, parameter targetBytes, targetBytes %d, "
                "minimumBytes 1, maximumBytes %d)." % (128 << 20, 64 << 20)) in p.stderr, p.stderr
        assert "{" not in p.stderr, p.stderr  # a sentence for D-Bus callers, not raw JSON
        bus.call(path, VM_IFACE, "SetBalloon", "t", 56 << 20)
        assert bus.get(path, VM_IFACE, "BalloonTarget") == 56 << 20

        # MigratePages on this one-node host: SingleNUMANode, decided before anything moves.
        p = bus.send(PATH, IFACE, "MigratePages", "string:fw", "string:0", "string:1")
        if os.path.exists("/sys/devices/system/node/node1"):
            pytest.skip("more than one NUMA node: the single-node error cannot be shown here")
        assert p.returncode != 0 and "io.memvisor.Manager1.SingleNUMANode" in p.stderr, p.stderr
        assert "The host has a single NUMA node: there is no other node to move memory to (nodes 1)." in p.stderr, p.stderr
        p = bus.send(path, VM_IFACE, "MigratePages", "string:0", "string:nonsense")
        assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "to" in p.stderr, p.stderr
        # MigratePagesScoped: guest-ram runs on a one-node host too (each page is asked to stay on node 0) and
        # ends with MigrationFinished; a scope that does not exist is refused before anything moves.
        p = bus.send(path, VM_IFACE, "MigratePagesScoped", "string:0", "string:0", "string:whole")
        assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "scope" in p.stderr, p.stderr
        bus.call(PATH, IFACE, "MigratePagesScoped", "ssss", "fw", "0", "0", "guest-ram")
        fin = mon.wait(lambda m: m.get("member") == "MigrationFinished", what="MigrationFinished")["payload"]["data"]
        assert fin[0] == "fw" and fin[2] == "" and fin[3]["Moves"]["data"] == 1, fin

        # GetHostMemory: the sampler's last snapshot, in bytes.
        deadline = time.monotonic() + 10
        while True:
            p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "GetHostMemory", check=False)
            if p.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert p.returncode == 0, p.stderr
        mem = json.loads(p.stdout)["data"][0]
        assert mem["MemTotalBytes"]["data"] == meminfo_kib("MemTotal") * 1024
        assert mem["MemAvailableBytes"]["data"] > 0 and mem["SampleIntervalUSec"]["data"] > 0
        assert isinstance(mem["Nodes"]["data"], list)

        # Stopped: the balloon sizes are gone again.
        bus.call(PATH, IFACE, "KillVM", "ss", "fw", "KILL")
        wait_prop(bus, path, "State", "stopped")
        assert bus.get(path, VM_IFACE, "BalloonTarget") == 2**64 - 1
    finally:
        mon.close()


def test_daemon_denies_unprivileged_callers(daemons, private_bus, workdir):
    """With a bus policy that lets everybody call everything, memvisord's own check refuses state changes
    from anyone but root and AdminGroup= members; reading works for all. (dbus-daemon only accepts uids it
    can look up, so the callers are nobody, with and without the group.)"""
    try:
        users = grp.getgrnam("users")
    except KeyError:
        pytest.skip("no group 'users' on this host")
    bus = private_bus()
    d = start_daemon(daemons, bus, workdir, extra_config="[Daemon]\nAdminGroup=users\n")
    path = vm_path("fw")
    for args in (("StartVM", "s", "fw"), ("StopVM", "s", "fw"), ("KillVM", "ss", "fw", "KILL"), ("Reload",),
                 ("PinVCPUs", "sss", "fw", "0:0", ""), ("SetBalloon", "st", "fw", 32 << 20),
                 ("MigratePages", "sss", "fw", "0", "1")):
        p = bus.busctl("call", NAME, PATH, IFACE, *args, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
        assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
    for args in (("Start",), ("PinVCPUs", "ss", "0:0", ""), ("SetBalloon", "t", 32 << 20),
                 ("MigratePages", "ss", "0", "1")):
        p = bus.busctl("call", NAME, path, VM_IFACE, *args, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
        assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
    # memvisord refused them (busctl shows org.freedesktop.DBus.Error.AccessDenied without its message).
    log = d.log_text()
    for method in ("StartVM", "StopVM", "KillVM", "Reload", "PinVCPUs", "SetBalloon", "MigratePages"):
        assert "Denied io.memvisor.Manager1.%s to uid 65534." % method in log, log
    for method in ("Start", "PinVCPUs", "SetBalloon", "MigratePages"):
        assert "Denied io.memvisor.VM1.%s to uid 65534." % method in log, log
    # Reading is open, also for a guest that never ran (GetBalloon used to crash the daemon there).
    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "GetBalloon", "s", "fw", uid=NOBODY_UID,
                   gid=NOGROUP_GID)
    b = json.loads(p.stdout)["data"][0]
    assert b["State"]["data"] == "defined" and b["Tracking"]["data"] is False and "TargetBytes" not in b
    assert bus.get(path, VM_IFACE, "State") == "defined"

    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "ListVMs", uid=NOBODY_UID, gid=NOGROUP_GID)
    assert json.loads(p.stdout)["data"][0][0][0] == "fw"

    # A member of AdminGroup= (a supplementary group here) may.
    bus.busctl("call", NAME, PATH, IFACE, "StartVM", "s", "fw", uid=NOBODY_UID, gid=NOGROUP_GID,
               groups=[users.gr_gid])
    wait_prop(bus, path, "State", "running")
    bus.busctl("call", NAME, path, VM_IFACE, "Kill", "s", "KILL", uid=NOBODY_UID, gid=users.gr_gid)
    wait_prop(bus, path, "State", "stopped")


def test_shipped_policy(daemons, private_bus, workdir):
    """units/io.memvisor.Manager1.conf: the bus itself refuses state-changing calls of ordinary users and
    lets them read."""
    bus = private_bus(shipped_policy=True)
    d = start_daemon(daemons, bus, workdir)
    path = vm_path("fw")
    p = bus.busctl("call", NAME, PATH, IFACE, "StartVM", "s", "fw", uid=NOBODY_UID, check=False)
    assert p.returncode != 0
    assert "Access denied" in p.stderr or "AccessDenied" in p.stderr or "denied" in p.stderr.lower(), p.stderr
    d.wait_for_log("1 guest defined")
    assert "Denied" not in d.log_text()  # refused by the bus, memvisord never saw the call
    p = bus.busctl("call", NAME, path, VM_IFACE, "Kill", "s", "KILL", uid=NOBODY_UID, check=False)
    assert p.returncode != 0
    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "ListVMs", uid=NOBODY_UID)
    assert json.loads(p.stdout)["data"][0][0][0] == "fw"
    p = bus.busctl("--json=short", "get-property", NAME, path, VM_IFACE, "State", uid=NOBODY_UID)
    assert json.loads(p.stdout)["data"] == "defined"
    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "GetBalloon", "s", "fw", uid=NOBODY_UID)
    assert json.loads(p.stdout)["data"][0]["Name"]["data"] == "fw"
    p = bus.busctl("--json=short", "call", NAME, path, VM_IFACE, "GetBalloon", uid=NOBODY_UID)
    assert json.loads(p.stdout)["data"][0]["Name"]["data"] == "fw"
    for args in (("SetBalloon", "st", "fw", 32 << 20), ("PinVCPUs", "sss", "fw", "0:0", ""),
                 ("MigratePages", "sss", "fw", "0", "1"), ("StartExperiment", "st", "[Experiment]\nGuest=fw\n", 0),
                 ("CancelExperiment", "s", "x"), ("DeleteExperiment", "s", "x")):
        p = bus.busctl("call", NAME, PATH, IFACE, *args, uid=NOBODY_UID, check=False)
        assert p.returncode != 0 and "denied" in p.stderr.lower(), p.stderr
    assert "Denied" not in d.log_text()
    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "ListExperiments", "s", "", uid=NOBODY_UID)
    assert json.loads(p.stdout)["data"] == [[]]
    p = bus.send(PATH, IFACE, "DescribeExperiment", "string:nosuch", uid=NOBODY_UID)
    assert "io.memvisor.Manager1.NoSuchExperiment" in p.stderr, p.stderr  # memvisord's answer, not the bus's
    bus.busctl("introspect", NAME, PATH, uid=NOBODY_UID)
    # root may.
    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, path, "State", "running")
    bus.call(PATH, IFACE, "KillVM", "ss", "fw", "KILL")
    wait_prop(bus, path, "State", "stopped")


def test_without_a_bus(daemons, workdir):
    """No bus at the configured address: said once, and varlink works."""
    d = daemons(name="nobus", config="[DBus]\nAddress=unix:path=%s\n" % (workdir / "no-bus.sock"))
    assert d.status()["pid"] == d.pid
    log = d.log_text()
    assert log.count("D-Bus not available") == 1, log
    d.stop(signal.SIGTERM)
    assert d.returncode == 0


def test_bus_disabled(daemons, workdir):
    d = daemons(name="off", config="[DBus]\nAddress=none\n")
    assert d.status()["pid"] == d.pid
    assert "D-Bus not available" not in d.log_text()


def test_stop_guests_on_exit(daemons, private_bus, workdir):
    """StopGuestsOnExit=yes: SIGTERM stops the guests (observed on D-Bus), then memvisord exits 0. Without
    it (the default) guests outlive memvisord."""
    bus = private_bus()
    d = start_daemon(daemons, bus, workdir, extra_config="[Daemon]\nStopGuestsOnExit=yes\n", vms=("a", "b"))
    for n in ("a", "b"):
        bus.call(PATH, IFACE, "StartVM", "s", n)
    for n in ("a", "b"):
        wait_prop(bus, vm_path(n), "State", "running")
    pids = [bus.get(vm_path(n), VM_IFACE, "Pid") for n in ("a", "b")]
    mon = Monitor(bus, workdir)
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit(timeout=20) == 0
        for n in ("a", "b"):
            mon.wait(prop_changed(vm_path(n), "stopped"), what="%s stopped before exit" % n)
    finally:
        mon.close()
    for pid in pids:
        assert not os.path.exists("/proc/%d/cmdline" % pid) or open("/proc/%d/cmdline" % pid).read() == ""
    assert "stopping 2 guests before shutting down" in d.log_text()


def test_guest_agent_over_dbus(daemons, private_bus, workdir):
    """GuestInfo, GuestCounters, GuestExec and GuestCopy on the manager and the guest objects, against a fake
    QEMU whose agent answers (tests/integration/fake-qemu-agent.py): replies as a{sv}, the agent's errors under
    their D-Bus names, exec and copy refused to ordinary users."""
    bus = private_bus()
    d = daemons(name="dbusga", start=False)
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "g.vm").write_text("[VM]\nMemory=64M\nEmulator=%s\nAccelerator=tcg\nDisk=/dev/null\n"
                                   "StopTimeoutSec=1s\n" % (REPO / "tests/integration/fake-qemu-agent.py"))
    d.start(config="[DBus]\nAddress=%s\n" % bus.address, env={"FAKE_AGENT_MODE": "good"})
    bus.wait_name()
    path = vm_path("g")
    bus.call(PATH, IFACE, "StartVM", "s", "g")
    wait_prop(bus, path, "State", "running")
    deadline = time.monotonic() + 20
    while json.loads(bus.call(PATH, IFACE, "DescribeVM", "s", "g")[0]).get("agent", {}).get("state") != "ready":
        assert time.monotonic() < deadline, "the fake agent never got ready"
        time.sleep(0.1)

    info = bus.call(PATH, IFACE, "GuestInfo", "s", "g")[0]
    assert info["AgentVersion"]["data"] == "7.2.99-fake" and info["KernelRelease"]["data"] == "6.1.0-fake", info
    info = bus.call(path, VM_IFACE, "GuestInfo")[0]
    assert info["Vcpus"]["data"] == 1, info
    # Reading is open to everybody (as over varlink); exec and copy are not.
    p = bus.busctl("--json=short", "call", NAME, path, VM_IFACE, "GuestInfo", uid=NOBODY_UID, gid=NOGROUP_GID)
    assert json.loads(p.stdout)["data"][0]["Machine"]["data"] == "x86_64"
    for obj, iface, args in ((PATH, IFACE, ("GuestExec", "sast", "g", 1, "/bin/true", 0)),
                             (path, VM_IFACE, ("GuestCopy", "sayu", "/tmp/x", 1, 65, 0))):
        p = bus.busctl("call", NAME, obj, iface, *args, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
        assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
    # The fake agent has no guest-file-open: GuestCounters fails with the agent's error, named on D-Bus.
    p = bus.send(PATH, IFACE, "GuestCounters", "string:g")
    assert p.returncode != 0 and "io.memvisor.Manager1.AgentCommandFailed" in p.stderr, p.stderr
    # A guest that is not running: InvalidState.
    bus.call(PATH, IFACE, "KillVM", "ss", "g", "KILL")
    wait_prop(bus, path, "State", "stopped")
    p = bus.send(PATH, IFACE, "GuestInfo", "string:g")
    assert p.returncode != 0 and "io.memvisor.Manager1.InvalidState" in p.stderr, p.stderr


def experiment_text(guest, iterations, settle):
    """A baseline that needs no agent: nothing provoked, no workload, host-side counters only."""
    return ("[Experiment]\nGuest=%s\nIterations=%d\nSettle=%s\n[Provoke]\nOperation=none\n[Workload]\nWhen=none\n"
            "[Measure]\nCounters=time host-vmstat\n" % (guest, iterations, settle))


def progress(id_, state=None, done=None):
    def match(m):
        if m.get("member") != "ExperimentProgress" or m.get("path") != PATH:
            return False
        data = m["payload"]["data"]
        return data[0] == id_ and (state is None or data[4] == state) and (done is None or data[2] >= done)
    return match


def test_experiments_over_dbus(daemons, private_bus, workdir):
    """StartExperiment, ListExperiments, DescribeExperiment, CancelExperiment and DeleteExperiment on a firmware
    TCG guest (a baseline with host counters only: no agent needed), ExperimentProgress for each step, GuestBusy
    for the guest's other state changes, the experiment errors under their D-Bus names, and the privilege check."""
    try:
        users = grp.getgrnam("users")
    except KeyError:
        pytest.skip("no group 'users' on this host")
    bus = private_bus()
    d = start_daemon(daemons, bus, workdir, extra_config="[Daemon]\nAdminGroup=users\n")
    path = vm_path("fw")

    # Refusals before anything runs, under their D-Bus names.
    p = bus.send(PATH, IFACE, "StartExperiment", "string:" + experiment_text("fw", 3, "0"), "uint64:0")
    assert p.returncode != 0 and "io.memvisor.Manager1.InvalidState" in p.stderr, p.stderr  # not running
    p = bus.send(PATH, IFACE, "StartExperiment", "string:" + experiment_text("nosuch", 3, "0"), "uint64:0")
    assert "io.memvisor.Manager1.NoSuchVM" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "StartExperiment", "string:[Experiment]\nGuest=fw\nIterations=x\n", "uint64:0")
    assert "io.memvisor.Manager1.InvalidExperiment" in p.stderr and "Experiment.Iterations" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "StartExperiment", "string:" + experiment_text("fw", 3, "0") + "Counters=nope\n",
                 "uint64:0")
    assert "io.memvisor.Manager1.InvalidExperiment" in p.stderr and "host-vmstat" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "StartExperiment", "string:" + experiment_text("fw", 3, "0"), "uint64:%d" % 10 ** 9)
    assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "iterations" in p.stderr, p.stderr
    for method in ("DescribeExperiment", "CancelExperiment", "DeleteExperiment"):
        p = bus.send(PATH, IFACE, method, "string:20260101-000000-abcdef")
        assert p.returncode != 0 and "io.memvisor.Manager1.NoSuchExperiment" in p.stderr, (method, p.stderr)

    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, path, "State", "running")
    mon = Monitor(bus, workdir)
    try:
        # A long one: answered with the id once it started, a signal per iteration.
        n = len(d.log_text())
        id_ = bus.call(PATH, IFACE, "StartExperiment", "st", experiment_text("fw", 1000, "200ms"), 0)[0]
        assert id_
        d.wait_for_log("Experiment on fw requested over D-Bus", start=n)
        mon.wait(progress(id_, "running", done=2), what="ExperimentProgress after the second iteration")
        sig = [m["payload"]["data"] for m in mon.messages() if progress(id_)(m)]
        assert sig[0][1:] == ["fw", 0, 1000, "running", ""], sig  # the start
        assert [s[2] for s in sig] == sorted(s[2] for s in sig) and all(s[3] == 1000 for s in sig), sig

        desc = json.loads(bus.call(PATH, IFACE, "DescribeExperiment", "s", id_)[0])
        assert desc["experiment"]["id"] == id_ and desc["experiment"]["state"] == "running", desc["experiment"]
        assert desc["experiment"]["guest"] == "fw" and desc["experiment"]["operation"] == "none"
        assert desc["definition"]["Experiment"]["Guest"] == "fw" and desc["provenance"]
        lst = bus.call(PATH, IFACE, "ListExperiments", "s", "fw")[0]
        assert [e["Id"]["data"] for e in lst] == [id_], lst
        assert lst[0]["State"]["data"] == "running" and lst[0]["IterationsPlanned"]["data"] == 1000, lst
        assert bus.call(PATH, IFACE, "ListExperiments", "s", "other")[0] == []
        assert [e["Id"]["data"] for e in bus.call(PATH, IFACE, "ListExperiments", "s", "")[0]] == [id_]

        # Reading is open to everybody; starting, cancelling and deleting are not.
        p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "ListExperiments", "s", "", uid=NOBODY_UID,
                       gid=NOGROUP_GID)
        assert json.loads(p.stdout)["data"][0][0]["Id"]["data"] == id_
        p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "DescribeExperiment", "s", id_, uid=NOBODY_UID,
                       gid=NOGROUP_GID)
        assert json.loads(json.loads(p.stdout)["data"][0])["experiment"]["id"] == id_
        for args in (("StartExperiment", "st", experiment_text("fw", 3, "0"), 0), ("CancelExperiment", "s", id_),
                     ("DeleteExperiment", "s", id_)):
            p = bus.busctl("call", NAME, PATH, IFACE, *args, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
            assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
        log = d.log_text()
        for method in ("StartExperiment", "CancelExperiment", "DeleteExperiment"):
            assert "Denied io.memvisor.Manager1.%s to uid 65534." % method in log, log

        # The guest is busy: its state changes and a second experiment are refused, naming the experiment.
        for obj, iface, args in ((PATH, IFACE, ("StopVM", "string:fw")), (path, VM_IFACE, ("Kill", "string:KILL")),
                                 (PATH, IFACE, ("SetBalloon", "string:fw", "uint64:%d" % (32 << 20)))):
            p = bus.send(obj, iface, *args)
            assert p.returncode != 0 and "io.memvisor.Manager1.GuestBusy" in p.stderr and id_ in p.stderr, p.stderr
        p = bus.send(PATH, IFACE, "StartExperiment", "string:" + experiment_text("fw", 3, "0"), "uint64:0")
        assert "io.memvisor.Manager1.GuestBusy" in p.stderr and id_ in p.stderr, p.stderr
        p = bus.send(PATH, IFACE, "DeleteExperiment", "string:" + id_)
        assert "io.memvisor.Manager1.ExperimentRunning" in p.stderr, p.stderr
        assert bus.get(path, VM_IFACE, "State") == "running"

        # Cancel (by a member of AdminGroup=): the iteration in flight ends, the end is signalled.
        bus.busctl("call", NAME, PATH, IFACE, "CancelExperiment", "s", id_, uid=NOBODY_UID, gid=NOGROUP_GID,
                   groups=[users.gr_gid])
        end = mon.wait(progress(id_, "cancelled"), what="ExperimentProgress cancelled")["payload"]["data"]
        assert 2 <= end[2] < 1000 and end[3] == 1000 and end[5], end
        desc = json.loads(bus.call(PATH, IFACE, "DescribeExperiment", "s", id_)[0])
        assert desc["experiment"]["state"] == "cancelled" and desc["experiment"]["iterationsDone"] == end[2]
        assert any(s["counter"].startswith("time") for s in desc["statistics"]), desc["statistics"]
        p = bus.send(PATH, IFACE, "CancelExperiment", "string:" + id_)
        assert "io.memvisor.Manager1.ExperimentNotRunning" in p.stderr and "cancelled" in p.stderr, p.stderr

        # Iterations overridden, run to its end; a varlink caller sees the same experiment.
        id2 = bus.call(PATH, IFACE, "StartExperiment", "st", experiment_text("fw", 1000, "0"), 2)[0]
        end = mon.wait(progress(id2, "completed"), what="ExperimentProgress completed")["payload"]["data"]
        assert end == [id2, "fw", 2, 2, "completed", ""], end
        got = [m["payload"]["data"][2] for m in mon.messages() if progress(id2)(m)]
        assert got == [0, 1, 2, 2], got
        reply = d.call("io.memvisor.Manager.DescribeExperiment", {"id": id2})
        assert reply["parameters"]["experiment"]["state"] == "completed", reply

        # CompareExperiments, open to everybody: the varlink method's comparison as JSON text; its errors under
        # their D-Bus names.
        p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "CompareExperiments", "ssastu", id_, id2, 1,
                       "time.*", 7, 200, uid=NOBODY_UID, gid=NOGROUP_GID)
        cmp = json.loads(json.loads(p.stdout)["data"][0])
        assert cmp["a"]["id"] == id_ and cmp["b"]["id"] == id2 and cmp["seed"] == 7 and cmp["resamples"] == 200, cmp
        assert cmp["comparisons"] and all(c["counter"].startswith("time.") for c in cmp["comparisons"]), cmp
        vl = d.call("io.memvisor.Manager.CompareExperiments",
                    {"a": id_, "b": id2, "counters": ["time.*"], "seed": 7, "resamples": 200})["parameters"]
        assert vl["comparison"]["comparisons"] == cmp["comparisons"]
        p = bus.send(PATH, IFACE, "CompareExperiments", "string:" + id_, "string:20260101-000000-abcdef",
                     "array:string:", "uint64:0", "uint32:0")
        assert "io.memvisor.Manager1.NoSuchExperiment" in p.stderr, p.stderr
        p = bus.send(PATH, IFACE, "CompareExperiments", "string:" + id_, "string:" + id_ + ":B",
                     "array:string:", "uint64:0", "uint32:0")
        assert "io.memvisor.Manager1.InvalidExperiment" in p.stderr and "not a matrix run" in p.stderr, p.stderr

        # An experiment started over varlink is signalled too.
        reply = d.call("io.memvisor.Manager.StartExperiment", {"text": experiment_text("fw", 1, "0")})
        id3 = reply["parameters"]["id"]
        mon.wait(progress(id3, "completed"), what="ExperimentProgress of a varlink experiment")

        # Delete: gone from the list and the store.
        bus.call(PATH, IFACE, "DeleteExperiment", "s", id_)
        assert sorted(e["Id"]["data"] for e in bus.call(PATH, IFACE, "ListExperiments", "s", "")[0]) == \
            sorted([id2, id3])
        p = bus.send(PATH, IFACE, "DescribeExperiment", "string:" + id_)
        assert "io.memvisor.Manager1.NoSuchExperiment" in p.stderr, p.stderr
        assert "Experiment %s deleted over D-Bus" % id_ in d.log_text()
        # The guest is free again.
        bus.call(PATH, IFACE, "KillVM", "ss", "fw", "KILL")
        wait_prop(bus, path, "State", "stopped")
    finally:
        mon.close()


def test_dirty_rate_over_dbus(daemons, private_bus, workdir):
    """MeasureDirtyRate on the manager: a firmware TCG guest's page-sampling rate; QEMU's limits and the
    dirty-bitmap mode under TCG refused with the typed errors."""
    bus = private_bus()
    start_daemon(daemons, bus, workdir)
    p = bus.busctl("introspect", NAME, PATH)
    assert ".MeasureDirtyRate" in p.stdout, p.stdout
    p = bus.send(PATH, IFACE, "MeasureDirtyRate", "string:fw", "uint32:1", "string:", "uint32:0")
    assert "io.memvisor.Manager1.InvalidState" in p.stderr, p.stderr
    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, vm_path("fw"), "State", "running")

    res = bus.call(PATH, IFACE, "MeasureDirtyRate", "susu", "fw", 1, "", 0)[0]
    assert res["Mode"]["data"] == "page-sampling" and res["PeriodSec"]["data"] == 1, res
    assert res["RateMBPerSec"]["data"] >= 0 and res["SamplePages"]["data"] == 512, res
    p = bus.send(PATH, IFACE, "MeasureDirtyRate", "string:fw", "uint32:61", "string:", "uint32:0")
    assert "io.memvisor.Manager1.DirtyRateOutOfRange" in p.stderr and "periodSec" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "MeasureDirtyRate", "string:fw", "uint32:1", "string:", "uint32:100")
    assert "io.memvisor.Manager1.DirtyRateOutOfRange" in p.stderr and "samplePages" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "MeasureDirtyRate", "string:fw", "uint32:1", "string:sideways", "uint32:0")
    assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "mode" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "MeasureDirtyRate", "string:fw", "uint32:1", "string:dirty-bitmap", "uint32:0")
    assert "io.memvisor.Manager1.DirtyRateFailed" in p.stderr and "TCG" in p.stderr, p.stderr
    assert bus.get(vm_path("fw"), VM_IFACE, "State") == "running"


def test_hotplug_over_dbus(daemons, private_bus, workdir):
    """SetHotplugMemory on the manager: a firmware TCG guest with a virtio-mem device but no guest driver, so
    QEMU takes the requested size and the plugged size stays 0: without wait the reply says so, with wait the
    call ends with HotplugTimeout; sizes out of range are refused."""
    bus = private_bus()
    start_daemon(daemons, bus, workdir, vm_extra="[Memory]\nHotplugSize=64M\n")
    p = bus.busctl("introspect", NAME, PATH)
    assert ".SetHotplugMemory" in p.stdout, p.stdout
    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, vm_path("fw"), "State", "running")

    res = bus.call(PATH, IFACE, "SetHotplugMemory", "stbt", "fw", 32 << 20, "false", 0)[0]
    assert res["RequestedBytes"]["data"] == 32 << 20 and res["SizeBytes"]["data"] == 0, res
    assert res["MaximumBytes"]["data"] == 64 << 20, res
    p = bus.send(PATH, IFACE, "SetHotplugMemory", "string:fw", "uint64:%d" % (32 << 20), "boolean:true",
                 "uint64:1000000")
    assert "io.memvisor.Manager1.HotplugTimeout" in p.stderr and "virtio_mem driver" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "SetHotplugMemory", "string:fw", "uint64:%d" % (128 << 20), "boolean:false",
                 "uint64:0")
    assert "io.memvisor.Manager1.HotplugSizeOutOfRange" in p.stderr and "HotplugSize=" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "SetHotplugMemory", "string:fw", "uint64:%d" % (1 << 20), "boolean:false", "uint64:0")
    assert "io.memvisor.Manager1.HotplugSizeOutOfRange" in p.stderr, p.stderr
    assert bus.get(vm_path("fw"), VM_IFACE, "State") == "running"


def test_console_over_dbus(daemons, private_bus, workdir):
    """GetConsole on the manager: the bytes of a boot's console file as ay (its header line first) and the
    varlink reply's other members as a{sv}; from an offset on; a boot that is not kept is NoSuchBoot; admin only."""
    bus = private_bus()
    start_daemon(daemons, bus, workdir)
    p = bus.busctl("introspect", NAME, PATH)
    assert ".GetConsole" in p.stdout and "sxtx" in p.stdout and "aya{sv}" in p.stdout, p.stdout
    p = bus.send(PATH, IFACE, "GetConsole", "string:fw", "int64:0", "uint64:0", "int64:-1")
    assert "io.memvisor.Manager1.NoSuchBoot" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "GetConsole", "string:nosuch", "int64:0", "uint64:0", "int64:-1")
    assert "io.memvisor.Manager1.NoSuchVM" in p.stderr, p.stderr
    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, vm_path("fw"), "State", "running")

    def get_console(*args, **kw):
        # "--": busctl would take the -1 for an option
        p = bus.busctl("--json=short", "call", "--", NAME, PATH, IFACE, "GetConsole", "sxtx", *args, **kw)
        return json.loads(p.stdout)["data"] if kw.get("check", True) else p

    data, info = get_console("fw", 0, 0, -1)
    text = bytes(data)
    assert text.startswith(b"-- memvisor: guest fw, boot 1, started "), text[:200]
    assert info["Boot"]["data"] == 1 and info["First"]["data"] == 1 and info["Last"]["data"] == 1, info
    assert info["Active"]["data"] is True and info["Start"]["data"] == 0, info
    assert info["End"]["data"] == len(text) and info["Size"]["data"] >= len(text), info
    assert "Data" not in info, info
    # from the end on: nothing new yet, or what the firmware wrote since
    data, info2 = get_console("fw", 1, 0, info["End"]["data"])
    assert info2["Start"]["data"] == info["End"]["data"] and info2["End"]["data"] >= info2["Start"]["data"], info2
    # offset past the end, bad lines, a boot that is not kept
    p = bus.send(PATH, IFACE, "GetConsole", "string:fw", "int64:0", "uint64:0", "int64:%d" % (1 << 40))
    assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "offset" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "GetConsole", "string:fw", "int64:0", "uint64:1000000", "int64:-1")
    assert "org.freedesktop.DBus.Error.InvalidArgs" in p.stderr and "lines" in p.stderr, p.stderr
    p = bus.send(PATH, IFACE, "GetConsole", "string:fw", "int64:-1", "uint64:0", "int64:-1")
    assert "io.memvisor.Manager1.NoSuchBoot" in p.stderr, p.stderr
    # a console shows what the guest prints: not for everybody
    p = get_console("fw", 0, 0, -1, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
    assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
    bus.call(PATH, IFACE, "KillVM", "ss", "fw", "KILL")
    wait_prop(bus, vm_path("fw"), "State", "stopped")


def test_host_info_over_dbus(daemons, private_bus, workdir):
    """GetHostInfo on the manager: KVM and the confidential guest kinds as a{sv}, open to everybody (it reads)."""
    bus = private_bus()
    start_daemon(daemons, bus, workdir)
    p = bus.busctl("--json=short", "call", NAME, PATH, IFACE, "GetHostInfo", uid=NOBODY_UID, gid=NOGROUP_GID)
    info = json.loads(p.stdout)["data"][0]
    assert info["Kvm"]["data"] is os.access("/dev/kvm", os.R_OK | os.W_OK), info
    kinds = [c["data"]["Kind"]["data"] for c in info["Confidential"]["data"]]
    assert kinds == ["sev", "sev-es", "sev-snp", "tdx"], info
    for c in info["Confidential"]["data"]:
        c = c["data"]
        assert c["Usable"]["data"] is False and c["Reason"]["data"], c
        assert c["Host"]["data"] or c["HostReason"]["data"] == c["Reason"]["data"], c
