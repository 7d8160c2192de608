# SPDX-License-Identifier: LGPL-2.1-or-later
"""Placement from the first instruction (real QEMU under TCG): EmulatorAffinity= is set in memvisord's child
before execve, so at the first QMP greeting every QEMU thread was already inside it (DescribeVM's placement,
read by the daemon then; checked here too from /proc); vCPUs are still pinned while the guest is paused; a
backend with Prealloc=yes bound to host nodes gets a thread-context on those nodes (QEMU's /proc/PID/cmdline),
whose thread the greeting check counts apart; an offline CPU in EmulatorAffinity= fails the start naming the key."""

import os

import pytest

from test_numa import allowed_list, two_cpus  # noqa: F401 (fixture)
from test_vms import M, call, describe, firmware_vm, ok, wait_state, write_vm


def threads(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[int(tid)] = f.read().strip()
        except FileNotFoundError:
            pass
    return out


def test_emulator_affinity_from_exec(daemons, workdir, ctl, two_cpus):  # noqa: F811
    d = daemons(name="place", start=False)
    write_vm(d, "pl", firmware_vm(workdir, "VCPUs=2\n[Memory]\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n"
                                  "PreallocThreads=2\n[CPU]\nVCPUAffinity=0:0\nEmulatorAffinity=1\n"))
    d.start()
    ok(d, "StartVM", {"name": "pl"})
    vm = wait_state(d, "pl", "running", timeout=60)
    pid = vm["pid"]

    # what the daemon saw at the first greeting, before pinning the vCPUs and cont
    pl = vm["placement"]
    assert pl["emulatorAffinity"] == "1", pl
    assert pl["allInside"] is True and pl["threadsOutside"] == 0, pl
    assert "firstOutside" not in pl, pl
    assert pl["threadsAtGreeting"] >= 3, pl         # main loop, RCU, two vCPUs at least
    assert pl["preallocContextThreads"] == 1, pl

    r = ctl("status", "pl", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "Placement: all %d QEMU threads inside EmulatorAffinity=1 at the first greeting" % \
        pl["threadsAtGreeting"] in r.stdout, r.stdout

    # the thread-context on the backend's node, named by the backend (QEMU's own argv)
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv = f.read().decode().split("\0")
    assert "thread-context,id=tc0,node-affinity=0" in argv, argv
    backend = [a for a in argv if a.startswith("memory-backend-ram,id=m0,")]
    assert len(backend) == 1 and backend[0].endswith(",policy=bind,host-nodes=0,prealloc=on,prealloc-threads=2,"
                                                     "prealloc-context=tc0"), backend
    assert argv.index("thread-context,id=tc0,node-affinity=0") < argv.index(backend[0])

    # now: vCPU 0 pinned while paused, vCPU 1 (not named) still on EmulatorAffinity=, every other thread on it,
    # the thread-context's too (pinned with QEMU's other threads once preallocation was over, at the greeting)
    vcpus = {t["index"]: t["threadId"] for t in vm["vcpuThreads"]}
    assert allowed_list(pid, vcpus[0]) == "0"
    assert allowed_list(pid, vcpus[1]) == "1"
    names = threads(pid)
    assert "TC tc0" in names.values(), names
    for tid, comm in names.items():
        if tid in vcpus.values():
            continue
        assert allowed_list(pid, tid) == "1", (tid, comm)

    ok(d, "StopVM", {"name": "pl"})
    wait_state(d, "pl", "stopped", timeout=20)
    # the last start's check stays on view
    assert describe(d, "pl")["placement"]["allInside"] is True


def test_emulator_affinity_offline_cpu(daemons, workdir):
    d = daemons(name="placeoff", start=False)
    cpu = os.cpu_count() + 5
    write_vm(d, "off", firmware_vm(workdir, "[CPU]\nEmulatorAffinity=%d\n" % cpu))
    d.start()
    r = call(d, "StartVM", {"name": "off"})
    assert r.get("error") == M + "StartFailed", r
    reason = r["parameters"]["reason"]
    assert reason.startswith("EmulatorAffinity=%d: CPU %d is not online (online: " % (cpu, cpu)), reason
    vm = describe(d, "off")
    assert vm["state"] == "failed" and "pid" not in vm and "placement" not in vm, vm


def test_no_emulator_affinity_no_check(daemons, workdir):
    """Without EmulatorAffinity= nothing is confined and nothing is reported (the default stays)."""
    d = daemons(name="placenone", start=False)
    write_vm(d, "free", firmware_vm(workdir, "[Memory]\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n"))
    d.start()
    ok(d, "StartVM", {"name": "free"})
    vm = wait_state(d, "free", "running", timeout=60)
    assert "placement" not in vm, vm
    # QEMU keeps the daemon's affinity
    assert allowed_list(vm["pid"], vm["pid"]) == allowed_list(d.pid, d.pid)
    with open("/proc/%d/cmdline" % vm["pid"], "rb") as f:
        assert "thread-context,id=tc0,node-affinity=0" in f.read().decode().split("\0")
    ok(d, "StopVM", {"name": "free"})
    wait_state(d, "free", "stopped", timeout=20)


@pytest.mark.parametrize("memory", ["Policy=bind\nHostNodes=64\n", "GuestNode=64M hostnodes=100 policy=bind\n"])
def test_host_node_beyond_limit_refused_at_definition(daemon, workdir, memory):
    """Nodes 64-127 parse as node lists, but the NUMA code's masks have 64 bits: refused when defined."""
    r = call(daemon, "DefineVM", {"name": "far", "ini": firmware_vm(workdir, "[Memory]\n" + memory)})
    assert "error" in r, r
    assert "is not supported: memvisor handles host nodes 0-63 only" in str(r), r
