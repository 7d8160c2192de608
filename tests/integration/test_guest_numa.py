# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest NUMA nodes ([Memory] GuestNode=, GuestDistance=; issue 17) against the real daemon and QEMU under TCG:
bad definitions refused over DefineVM with the key and the reason (sizes that do not add up, a vCPU in two nodes,
a host node the host does not have), and the Linux test guest with two guest nodes, both bound to host node 0
(this host may have one node): the guest's own /sys/devices/system/node, read through its agent, shows node0
and node1 with their vCPUs, sizes and distance; QEMU's query-memdev shows two backends; DescribeMemoryLayout
shows each backend's pages resident on host node 0. The two-host-node variant belongs to the NUMA harness."""

import base64
import re

import pytest

from memvisor_it import wait_for

M = "io.memvisor.Manager."
MIB = 1 << 20


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def host_nodes_online():
    try:
        with open("/sys/devices/system/node/online") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return [0]
    nodes = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        nodes += range(int(a), int(b or a) + 1)
    return nodes


def test_guest_numa_bad_definitions(daemons):
    d = daemons(name="gn-bad")
    base = "[VM]\nMemory=256M\nVCPUs=2\nAccelerator=tcg\nKernel=/boot/vmlinuz\n[Memory]\n"
    missing = max(host_nodes_online()) + 1
    cases = [
        ("GuestNode=64M cpus=0\nGuestNode=64M cpus=1\n", "Memory.GuestNode",
         "the GuestNode= sizes add up to 128M, but Memory= is 256M"),
        ("GuestNode=128M cpus=0-1\nGuestNode=128M cpus=1\n", "Memory.GuestNode",
         "vCPU 1 is in guest node 0 and in guest node 1: each vCPU belongs to exactly one node"),
        ("GuestNode=128M cpus=0 hostnodes=0 policy=bind\nGuestNode=128M cpus=1 hostnodes=%d policy=bind\n" % missing,
         "Memory.GuestNode", "guest node 1 is bound to host node %d, but the host has node" % missing),
        ("GuestNode=128M cpus=0\nGuestNode=128M cpus=1\nGuestDistance=0 1 5\n", "Memory.GuestDistance",
         "distance 5: expected 10 to 255"),
    ]
    for body, field, reason in cases:
        r = d.call(M + "DefineVM", {"name": "bad", "ini": base + body})
        assert r.get("error") == M + "InvalidDefinition", (body, r)
        assert r["parameters"]["field"] == field and reason in r["parameters"]["reason"], (body, r)
    assert ok(d, "ListVMs")["vms"] == []        # nothing was defined


def guest_cat(d, name, path):
    r = ok(d, "GuestExec", {"name": name, "argv": ["cat", path], "timeoutUSec": 60 * 1000000})["result"]
    assert r["exited"] and r["exitCode"] == 0, (path, r)
    return base64.b64decode(r["stdout"]).decode()


def test_guest_numa_two_nodes(daemons, test_guest):
    d = daemons(name="gn")
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "gn.vm").write_text(
        "[VM]\nMemory=512M\nVCPUs=2\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
        "Append=console=ttyS0 quiet\nStopTimeoutSec=3s\n"
        "[Memory]\nBackend=memfd\n"
        "GuestNode=320M cpus=0 hostnodes=0 policy=bind\n"
        "GuestNode=192M cpus=1 hostnodes=0 policy=preferred\n"
        "GuestDistance=0 1 21\n"
        "[CPU]\nVCPUAffinity=node\n" % (test_guest, test_guest))
    ok(d, "Reload")
    ok(d, "StartVM", {"name": "gn"})
    wait_for(lambda: (ok(d, "DescribeVM", {"name": "gn"})["vm"].get("agent") or {}).get("state") == "ready",
             timeout=180, what="the guest agent")

    # QEMU's side: two backends, each with its node's policy and size.
    memdev = sorted(ok(d, "ExecuteMonitorCommand", {"name": "gn", "command": "query-memdev",
                                                    "arguments": {}})["reply"], key=lambda m: m["id"])
    assert [(m["id"], m["size"], m["policy"], m["host-nodes"]) for m in memdev] == \
        [("m0", 320 * MIB, "bind", [0]), ("m1", 192 * MIB, "preferred", [0])], memdev
    info = ok(d, "ExecuteMonitorCommand", {"name": "gn", "command": "info numa", "hmp": True})["output"]
    assert "node 0 cpus: 0" in info and "node 0 size: 320 MB" in info, info
    assert "node 1 cpus: 1" in info and "node 1 size: 192 MB" in info, info

    # The guest's side, through its agent: two nodes, their vCPUs, their sizes, the distance.
    assert guest_cat(d, "gn", "/sys/devices/system/node/online").strip() == "0-1"
    # Sizes: the pages each node holds (/proc/zoneinfo "present", summed over the node's zones) are the node's
    # memory less what the firmware keeps out of the e820 map (below 1 MiB, 128 KiB at the top); MemTotal is less again by what the kernel reserved
    # (its image, the memmap, swiotlb), so it is only checked to be there and below the size.
    present = {}
    node = None
    for line in guest_cat(d, "gn", "/proc/zoneinfo").splitlines():
        m = re.match(r"Node (\d+), zone", line)
        if m:
            node = int(m.group(1))
        m = re.match(r"\s+present\s+(\d+)$", line)
        if m and node is not None:
            present[node] = present.get(node, 0) + int(m.group(1)) * 4096
    assert set(present) == {0, 1}, present
    assert 319 * MIB <= present[0] <= 320 * MIB, present
    assert 191 * MIB <= present[1] <= 192 * MIB, present
    sizes = {}
    for n, cpu, want in ((0, "0", 320), (1, "1", 192)):
        assert guest_cat(d, "gn", "/sys/devices/system/node/node%d/cpulist" % n).strip() == cpu
        meminfo = guest_cat(d, "gn", "/sys/devices/system/node/node%d/meminfo" % n)
        m = re.search(r"Node %d MemTotal:\s+(\d+) kB" % n, meminfo)
        assert m, meminfo
        sizes[n] = int(m.group(1)) // 1024
        assert want // 2 <= sizes[n] <= want, (n, sizes[n], meminfo)
    assert guest_cat(d, "gn", "/sys/devices/system/node/node0/distance").split() == ["10", "21"]
    assert guest_cat(d, "gn", "/sys/devices/system/node/node1/distance").split() == ["21", "10"]
    print("guest NUMA: present node0 %d KiB, node1 %d KiB; MemTotal node0 %d MiB of 320, node1 %d MiB of 192" %
          (present[0] >> 10, present[1] >> 10, sizes[0], sizes[1]))

    # VCPUAffinity=node: each vCPU thread allowed exactly the CPUs of host node 0 (its guest node's host node).
    with open("/sys/devices/system/node/node0/cpulist") as f:
        node0_cpus = f.read().strip()
    vcpus = ok(d, "GetPlacement", {"name": "gn"})["placement"]["vcpus"]
    assert [(v["index"], v.get("allowedCPUs")) for v in vcpus] == [(0, node0_cpus), (1, node0_cpus)], vcpus
    assert "VCPUAffinity=node is 0:%s 1:%s on this host" % (node0_cpus, node0_cpus) in d.log_text(), "no log"

    # The host's side: each backend's pages (those touched so far) on host node 0, its bound node.
    layout = ok(d, "DescribeMemoryLayout", {"name": "gn"})["layout"]
    backends = {b["id"]: b for b in layout["backends"]}
    assert set(backends) == {"m0", "m1"} and backends["m1"]["sizeBytes"] == 192 * MIB, layout["backends"]
    seen = set()
    for region in layout["regions"]:
        if region.get("backend") in ("m0", "m1"):
            seen.add(region["backend"])
            if not layout.get("residencyUnavailable"):
                resident = {r["node"]: r["bytes"] for r in region.get("residency") or [] if r["bytes"] > 0}
                assert set(resident) <= {0}, region
    assert seen == {"m0", "m1"}, layout["regions"]
    if not layout.get("residencyUnavailable"):
        print("guest NUMA: host residency per backend region: %s" % [
            (r["backend"], r.get("residentBytes")) for r in layout["regions"] if r.get("backend")])
    ok(d, "StopVM", {"name": "gn"})
