# SPDX-License-Identifier: LGPL-2.1-or-later
"""NUMA on the host (one node here): topology, vCPU pinning at start (VCPUAffinity=) and at runtime
(PinVCPUs / memvisorctl pin) verified through /proc/PID/task/TID/status, placement in status, and the
migration error paths (single node, bad parameters, guest not running). KVM counters over a migration need
two nodes: they are covered by the multi-node harness."""

import os
import time

import pytest

from test_vms import M, call, describe, firmware_vm, ok, wait_state, write_vm


def allowed_list(pid, tid):
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list for %d/%d" % (pid, tid))


def host_nodes():
    try:
        return [n for n in os.listdir("/sys/devices/system/node") if n.startswith("node") and n[4:].isdigit()]
    except FileNotFoundError:
        return ["node0"]


def err(reply):
    assert "error" in reply, reply
    return reply["error"], reply.get("parameters", {})


@pytest.fixture
def two_cpus():
    if os.cpu_count() < 2:
        pytest.skip("needs 2 CPUs")


def test_topology(daemon, ctl):
    t = ok(daemon, "GetTopology")
    assert len(t["nodes"]) == len(host_nodes())
    n0 = t["nodes"][0]
    assert n0["node"] == 0 and n0["memTotalBytes"] > n0["memFreeBytes"] > 0
    assert n0["distances"][0] == 10
    r = ctl("numa", address=daemon.socket)
    assert r.returncode == 0, r.stderr
    assert "NODE" in r.stdout and "DISTANCES" in r.stdout


def test_pin_at_start_and_runtime(daemons, workdir, ctl, two_cpus):
    d = daemons(name="pin", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "VCPUs=2\n[CPU]\nVCPUAffinity=0:0 1:1\nEmulatorAffinity=0-1\n"))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    vm = wait_state(d, "fw", "running")
    pid = vm["pid"]
    threads = {t["index"]: t["threadId"] for t in vm["vcpuThreads"]}
    assert allowed_list(pid, threads[0]) == "0"
    assert allowed_list(pid, threads[1]) == "1"

    # placement as the API and memvisorctl status show it
    pl = ok(d, "GetPlacement", {"name": "fw"})["placement"]
    assert [v["allowedCPUs"] for v in pl["vcpus"]] == ["0", "1"]
    assert all(v["lastCPU"] in (0, 1) and v["lastNode"] == 0 for v in pl["vcpus"])
    assert pl["residentBytes"] > 0 and pl["residency"][0]["node"] == 0
    assert pl["vcpuAffinity"] == "0:0 1:1"
    r = ctl("status", "fw", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "vCPU 0: thread %d, allowed CPUs 0" % threads[0] in r.stdout
    assert "Resident:" in r.stdout and "node 0:" in r.stdout

    # runtime re-pin with the CLI, verified by the kernel's view
    r = ctl("pin", "fw", "0=1", "1=0-1", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert allowed_list(pid, threads[0]) == "1"
    assert allowed_list(pid, threads[1]) == "0-1"
    ok(d, "PinVCPUs", {"name": "fw", "map": "0:0 1:1"})
    assert allowed_list(pid, threads[0]) == "0" and allowed_list(pid, threads[1]) == "1"

    # errors name what is wrong
    assert err(call(d, "PinVCPUs", {"name": "fw", "map": "0:2000"})) == \
        ("org.varlink.service.InvalidParameter", {"parameter": "map"})
    e, p = err(call(d, "PinVCPUs", {"name": "fw", "map": "7:0"}))
    assert e == M + "NoSuchVCPU" and p == {"vcpu": 7, "vcpus": 2}
    e, p = err(call(d, "PinVCPUs", {"name": "fw", "map": "0:%d" % os.cpu_count()}))
    assert e == M + "NoSuchCPU" and p["parameter"] == "map" and p["cpu"] == os.cpu_count()
    e, _ = err(call(d, "PinVCPUs", {"name": "nope", "map": "0:0"}))
    assert e == M + "NoSuchVM"
    r = ctl("pin", "fw", "0=x", address=d.socket)
    assert r.returncode == 2 and "0=x" in r.stderr
    # a failed call changed nothing
    assert allowed_list(pid, threads[0]) == "0"

    ok(d, "StopVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
    e, p = err(call(d, "PinVCPUs", {"name": "fw", "map": "0:0"}))
    assert e == M + "InvalidState" and p["state"] == "stopped"


def test_migration_errors_on_this_host(daemons, workdir, ctl):
    if len(host_nodes()) != 1:
        pytest.skip("the single-node error needs a one-node host")
    d = daemons(name="mig", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running")

    e, p = err(call(d, "MigratePages", {"name": "fw", "from": "0", "to": "1"}))
    assert e == M + "SingleNUMANode" and p["nodes"] == 1 and "single NUMA node" in p["reason"]
    r = ctl("migrate", "fw", "--from", "0", "--to", "1", address=d.socket)
    assert r.returncode == 1 and "SingleNUMANode" in r.stderr
    for params, bad in (({"from": "x", "to": "1"}, "from"), ({"from": "0", "to": "1-"}, "to"),
                        ({"from": "0"}, "to"), ({"between": "0"}, "between"),
                        ({"between": "0,1", "count": 0}, "count"), ({"between": "0,1", "from": "0"}, "from"),
                        ({"from": "0", "to": "1", "settleUSec": -1}, "settleUSec")):
        params["name"] = "fw"
        assert err(call(d, "MigratePages", params)) == \
            ("org.varlink.service.InvalidParameter", {"parameter": bad}), params
    e, _ = err(call(d, "MigratePages", {"name": "nope", "from": "0", "to": "1"}))
    assert e == M + "NoSuchVM"
    r = ctl("migrate", "fw", "--from", "0", address=d.socket)
    assert r.returncode == 2
    r = ctl("migrate", "fw", "--count", "3", "--from", "0", "--to", "1", address=d.socket)
    assert r.returncode == 2

    assert ok(d, "ListMigrations", {"name": "fw"}) == {"migrations": [], "inProgress": False}
    r = ctl("migrations", "fw", address=d.socket)
    assert r.returncode == 0 and "no migrations recorded" in r.stdout

    ok(d, "StopVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
    pl = ok(d, "GetPlacement", {"name": "fw"})["placement"]
    assert pl["vcpus"] == [] and pl["state"] == "stopped"


def test_pingpong_from_definition_on_this_host(daemons, workdir, ctl):
    """[Memory] MigrateBetween=: the schedule starts with the guest; on a one-node host the daemon logs the
    SingleNUMANode refusal once and the guest runs on."""
    if len(host_nodes()) != 1:
        pytest.skip("the single-node refusal needs a one-node host")
    d = daemons(name="pp", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "[Memory]\nMigrateBetween=1,0\nMigrateEverySec=1s\nMigrateCount=3\n"
                                           "MigrateSettleSec=0\n"))
    d.start()

    # the definition as the API shows it: normalized, typed
    mem = describe(d, "fw")["definition"]["Memory"]
    assert (mem["MigrateBetween"], mem["MigrateEverySec"], mem["MigrateCount"], mem["MigrateSettleSec"]) == \
        ("0,1", "1s", 3, "0"), mem

    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running")
    log = d.wait_for_log("io.memvisor.Manager.SingleNUMANode", timeout=10)
    assert "ping-pong migration of [Memory] MigrateBetween=0,1 not started" in log, log

    # no retries: after three periods the refusal is still logged once, the guest still runs, nothing recorded
    time.sleep(3.5)
    log = d.log_text()
    assert log.count("io.memvisor.Manager.SingleNUMANode") == 1, log
    assert describe(d, "fw")["state"] == "running"
    assert ok(d, "ListMigrations", {"name": "fw"}) == {"migrations": [], "inProgress": False}
    r = ctl("migrations", "fw", address=d.socket)
    assert r.returncode == 0 and "no migrations recorded" in r.stdout

    ok(d, "StopVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
