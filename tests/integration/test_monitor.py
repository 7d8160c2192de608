# SPDX-License-Identifier: LGPL-2.1-or-later
"""The QEMU monitor through the daemon (ExecuteMonitorCommand, memvisorctl monitor) and the guest's memory layout
(DescribeMemoryLayout, memvisorctl memory NAME layout) on a real QEMU under TCG: QMP and HMP passthrough, the
refusal of quit without --force (the guest keeps running), QEMU's own error for an unknown command, the size
bound, the caller check, and the layout checked against the guest's Memory= and its backend's HostNodes=."""

import json
import os
import shutil

import pytest

from memvisor_it import NOBODY_UID, NOGROUP_GID, calls_as
from test_dbus import IFACE, NAME, PATH, private_bus, start_daemon, vm_path, wait_prop  # noqa: F401 (fixture)
from test_vms import M, call, describe, firmware_vm, ok, wait_state, write_vm

MIB = 1 << 20


def err(reply):
    assert "error" in reply, reply
    return reply["error"], reply.get("parameters", {})


@pytest.fixture
def guest(daemons, workdir):
    d = daemons(name="monitor", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "[Memory]\nBackend=memfd\nPolicy=bind\nHostNodes=0\n"))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running")
    return d


def test_monitor_passthrough(guest, ctl):
    d = guest
    # QMP: QEMU's return value as it came
    r = ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})
    assert r["reply"]["status"] == "running" and r["reply"]["running"] is True
    r = ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-memdev", "arguments": {}})
    assert r["reply"][0]["size"] == 64 * MIB
    # HMP, verbatim text
    r = ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "info version", "hmp": True})
    version = os.popen("qemu-system-x86_64 --version").read().split()[3]
    assert r["output"].startswith(version), r
    assert d.wait_for_log('monitor command HMP "info version" by varlink uid %d' % os.getuid())

    # memvisorctl, as virsh qemu-monitor-command
    p = ctl("monitor", "fw", "query-status", address=d.socket)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "running"
    p = ctl("monitor", "fw", "--hmp", "info", "version", address=d.socket)
    assert p.returncode == 0 and p.stdout.startswith(version), p
    p = ctl("monitor", "fw", "query-memdev", "{}", address=d.socket)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["policy"] == "bind", p
    p = ctl("monitor", "fw", "query-status", "[1]", address=d.socket)
    assert p.returncode == 2 and "JSON object" in p.stderr, p

    # an unknown command: QEMU's error, typed
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "no-such-command"}))
    assert e == M + "MonitorCommandFailed"
    assert p == {"name": "fw", "command": "no-such-command", "errorClass": "CommandNotFound",
                 "description": "The command no-such-command has not been found"}
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status", "arguments": {"x": 1}}))
    assert e == M + "MonitorCommandFailed" and p["errorClass"] == "GenericError" and "'x'" in p["description"]
    p = ctl("monitor", "fw", "no-such-command", address=d.socket)
    assert p.returncode == 1 and "MonitorCommandFailed" in p.stderr and "CommandNotFound" in p.stderr

    # over the size bound: the limit named
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "echo " + "x" * 70000, "hmp": True}))
    assert e == M + "MonitorMessageTooLarge" and p["what"] == "request" and p["limitBytes"] == 65536
    assert p["bytes"] > 65536
    # a reply over 4 MiB: 700000 bytes of guest memory dumped as text (59 bytes of text per 8)
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "xp /700000xb 0", "hmp": True}))
    assert e == M + "MonitorMessageTooLarge" and p["what"] == "reply" and p["limitBytes"] == 4 * MIB, p
    assert p["bytes"] > 4 * MIB
    # the connection to QEMU is fine afterwards
    assert ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})["reply"]["running"]
    # a reply over the QMP client's own 16 MiB bound (3000000 bytes dumped: about 22 MB of text): dropped unread,
    # the same error, and the daemon keeps its QMP connection (it used to lose it for good)
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "xp /3000000xb 0", "hmp": True}))
    assert e == M + "MonitorMessageTooLarge" and p["what"] == "reply" and p["bytes"] > 16 * MIB, p
    assert ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})["reply"]["running"]

    # bad requests
    assert err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "   ", "hmp": True})) == \
        ("org.varlink.service.InvalidParameter", {"parameter": "command"})
    assert err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "x", "hmp": True, "arguments": {}})) == \
        ("org.varlink.service.InvalidParameter", {"parameter": "arguments"})
    assert err(call(d, "ExecuteMonitorCommand", {"name": "nope", "command": "query-status"}))[0] == M + "NoSuchVM"


def test_monitor_refusal(guest, ctl):
    d = guest
    pid = describe(d, "fw")["pid"]
    for params, verb in (({"command": "quit"}, "quit"), ({"command": "q", "hmp": True}, "q"),
                         ({"command": "  system_reset", "hmp": True}, "system_reset"),
                         ({"command": "stop"}, "stop"),
                         ({"command": "migrate", "arguments": {"uri": "exec:cat>/dev/null"}}, "migrate"),
                         ({"command": "human-monitor-command", "arguments": {"command-line": "quit"}},
                          "human-monitor-command"),
                         ({"command": "device_del", "arguments": {"id": "balloon0"}}, "device_del")):
        params["name"] = "fw"
        e, p = err(call(d, "ExecuteMonitorCommand", params))
        assert e == M + "MonitorCommandRefused", (params, e)
        assert p["name"] == "fw" and p["command"] == verb and p["reason"], p
    p = ctl("monitor", "fw", "quit", address=d.socket)
    assert p.returncode == 1 and "MonitorCommandRefused" in p.stderr and "memvisorctl stop" in p.stderr
    assert d.wait_for_log("monitor command QMP quit by varlink uid %d refused" % os.getuid())
    # nothing happened to the guest
    vm = describe(d, "fw")
    assert vm["state"] == "running" and vm["pid"] == pid
    assert ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})["reply"]["running"]

    # forced: runs, logged as forced (stop/cont round trip)
    r = ctl("monitor", "fw", "--force", "stop", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert d.wait_for_log("monitor command QMP stop by varlink uid %d, forced" % os.getuid())
    assert ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})["reply"]["status"] == "paused"
    ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "c", "hmp": True, "force": True})
    assert ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"})["reply"]["status"] == "running"


def test_unprivileged_caller_refused(guest):
    if os.geteuid() != 0:
        pytest.skip("needs root to call as another uid")
    d = guest
    replies = calls_as(d.socket, [[M + "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"}],
                                  [M + "DescribeMemoryLayout", {"name": "fw"}]], uid=NOBODY_UID, gid=NOGROUP_GID)
    for reply in replies:
        assert reply["error"] == "org.varlink.service.PermissionDenied", reply
    assert "by varlink uid %d" % NOBODY_UID not in d.log_text()


def test_memory_layout(guest, ctl):
    d = guest
    vm = describe(d, "fw")
    layout = ok(d, "DescribeMemoryLayout", {"name": "fw"})["layout"]
    assert layout["name"] == "fw" and layout["pid"] == vm["pid"] and layout["addressSpace"] == "memory"
    (backend,) = layout["backends"]
    assert backend["sizeBytes"] == 64 * MIB and backend["hostNodes"] == [0] and backend["policy"] == "bind"
    ram = [r for r in layout["regions"] if r.get("backend") == backend["id"]]
    assert ram and layout["ramBytes"] == sum(r["sizeBytes"] for r in layout["regions"] if r["kind"] == "ram")
    # the backend's ranges are the guest's 64 MiB (no VGA device, so no hole below 1 MiB), in GPA order
    assert sum(r["sizeBytes"] for r in ram) == 64 * MIB, ram
    assert all(a["gpaEnd"] == b["gpaStart"] for a, b in zip(ram, ram[1:])), ram
    assert {r["kind"] for r in ram} <= {"ram", "rom"} and ram[-1]["kind"] == "ram"
    assert ram[-1]["gpaEnd"] == 64 * MIB and ram[-1]["offsetBytes"] == ram[-1]["gpaStart"]
    # the firmware's ROM (pc.bios) is memory too, without a backend
    assert any(r["memoryRegion"] == "pc.bios" and "backend" not in r for r in layout["regions"])
    for r in ram:
        assert r["gpaEnd"] - r["gpaStart"] == r["sizeBytes"] and r["nonVolatile"] is False
        assert r["offsetBytes"] + r["sizeBytes"] <= 64 * MIB
        assert r["hostEnd"] - r["hostStart"] == r["sizeBytes"]
        # contiguous in QEMU's memory: host address - offset is the block's base, the same for every range
        assert r["hostStart"] - r["offsetBytes"] == ram[0]["hostStart"] - ram[0]["offsetBytes"]
        assert r["mappings"]["complete"] and r["mappings"]["path"].startswith("/memfd:"), r
        # resident only on the backend's host nodes
        assert r["residency"] and {x["node"] for x in r["residency"]} <= set(backend["hostNodes"])
        assert r["residentBytes"] == sum(x["bytes"] for x in r["residency"]) > 0
        assert r["residencyOf"] in ("region", "mappings")
    # the host range is in QEMU's mappings as /proc/PID/maps shows them
    with open("/proc/%d/maps" % vm["pid"]) as f:
        maps = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    for r in ram:
        assert any(a <= r["hostStart"] and r["hostEnd"] <= b for a, b in maps), r

    p = ctl("memory", "fw", "layout", address=d.socket)
    assert p.returncode == 0, p.stderr
    assert "GPA" in p.stdout and backend["id"] in p.stdout and "node 0" in p.stdout
    p = ctl("memory", "fw", "layout", "--json", address=d.socket)
    assert p.returncode == 0 and json.loads(p.stdout)["layout"]["backends"][0]["hostNodes"] == [0]

    # not running: InvalidState
    ok(d, "StopVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
    e, p = err(call(d, "DescribeMemoryLayout", {"name": "fw"}))
    assert e == M + "InvalidState" and p["state"] == "stopped"
    e, p = err(call(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-status"}))
    assert e == M + "InvalidState"


def test_over_dbus(daemons, private_bus, workdir):
    """The same operations on io.memvisor.Manager1: replies as JSON text, errors under their D-Bus names, both
    refused to ordinary users."""
    if not (shutil.which("dbus-daemon") and shutil.which("busctl")):
        pytest.skip("dbus-daemon or busctl not installed")
    bus = private_bus()
    d = start_daemon(daemons, bus, workdir)
    bus.call(PATH, IFACE, "StartVM", "s", "fw")
    wait_prop(bus, vm_path("fw"), "State", "running")
    (text,) = bus.call(PATH, IFACE, "ExecuteMonitorCommand", "sssbb", "fw", "query-status", "", "false", "false")
    assert json.loads(text)["reply"]["status"] == "running"
    (text,) = bus.call(PATH, IFACE, "ExecuteMonitorCommand", "sssbb", "fw", "info version", "", "true", "false")
    assert json.loads(text)["output"].startswith(os.popen("qemu-system-x86_64 --version").read().split()[3])
    (text,) = bus.call(PATH, IFACE, "ExecuteMonitorCommand", "sssbb", "fw", "query-memdev", "{}", "false", "false")
    assert json.loads(text)["reply"][0]["size"] == 64 * MIB
    assert d.wait_for_log('monitor command HMP "info version" by D-Bus ')
    for command, error in (("quit", "MonitorCommandRefused"), ("no-such-command", "MonitorCommandFailed")):
        p = bus.send(PATH, IFACE, "ExecuteMonitorCommand", "string:fw", "string:" + command, "string:",
                     "boolean:false", "boolean:false")
        assert p.returncode != 0 and "io.memvisor.Manager1." + error in p.stderr, p.stderr
    (text,) = bus.call(PATH, IFACE, "DescribeMemoryLayout", "s", "fw")
    layout = json.loads(text)
    assert layout["name"] == "fw" and 63 * MIB < layout["ramBytes"] <= 64 * MIB
    for args in (("ExecuteMonitorCommand", "sssbb", "fw", "query-status", "", "false", "false"),
                 ("DescribeMemoryLayout", "s", "fw")):
        p = bus.busctl("call", NAME, PATH, IFACE, *args, uid=NOBODY_UID, gid=NOGROUP_GID, check=False)
        assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
    log = d.log_text()
    for method in ("ExecuteMonitorCommand", "DescribeMemoryLayout"):
        assert "Denied io.memvisor.Manager1.%s to uid 65534." % method in log, log
