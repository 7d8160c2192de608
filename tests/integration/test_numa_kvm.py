# SPDX-License-Identifier: LGPL-2.1-or-later
"""KVM counters of a firmware-only KVM guest on this host (Accelerator=kvm; a stock Linux guest does not boot
under the nested KVM here, SeaBIOS does). On a one-node host MigratePages refuses (SingleNUMANode), so its
query-stats deltas cannot be had here (the multi-node harness runs its inner guest under TCG, where QEMU has
no KVM counters). The same query-stats collection feeds the metrics API: this test takes GetMetrics
snapshots before and after a measured window and asserts that the per-VM and per-vCPU KVM counters are
collected, reported and move forward (exits, halt wakeups), next to the placement of the guest on node 0."""

import os
import time

import pytest

from test_metrics import free_port
from test_vms import M, call, ok, wait_state, write_vm

KVM_CPU = "host,-arch-capabilities"     # plain -cpu host aborts on this nested-KVM host


def kvm_usable():
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return "/dev/kvm not usable: %s" % e
    return None


@pytest.fixture
def kvm():
    why = kvm_usable()
    if why:
        pytest.skip(why)


def kvm_series(metrics, vm):
    """{(family, vcpu or None): value} of the memvisor_guest_kvm_* families for vm."""
    out = {}
    for f in metrics:
        if not f["name"].startswith("memvisor_guest_kvm_"):
            continue
        for s in f["samples"]:
            if s["labels"].get("vm") == vm:
                out[(f["name"], s["labels"].get("vcpu"))] = s["value"]
    return out


def snapshot_after(d, vm, t_min, timeout=20):
    """The first GetMetrics snapshot taken after monotonic-free realtime t_min (µs) with KVM series for vm."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = ok(d, "GetMetrics")
        if (r.get("realtimeUSec") or 0) > t_min:
            s = kvm_series(r["metrics"], vm)
            if s:
                return r["realtimeUSec"], s, r["metrics"]
        time.sleep(0.1)
    raise AssertionError("no metrics snapshot with KVM series for %s after %d" % (vm, t_min))


def test_kvm_counters_collected_and_reported(daemons, workdir, kvm):
    disk = workdir / "kvm-blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    d = daemons(name="kvm", start=False,
                config="[Metrics]\nHostSampleIntervalSec=200ms\nGuestSampleIntervalSec=200ms\n"
                       "[Exporter]\nListenAddress=127.0.0.1:%d\n" % free_port())
    write_vm(d, "fw", "[VM]\nMemory=64M\nAccelerator=kvm\nCPUModel=%s\nDisk=%s\nStopTimeoutSec=1s\n"
             "[Memory]\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n[CPU]\nVCPUAffinity=0:0\n" % (KVM_CPU, disk))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    try:
        vm = wait_state(d, "fw", "running")
    except AssertionError:
        pytest.fail("the firmware-only KVM guest did not run: %s" % d.log_text()[-3000:])
    assert vm.get("accelerator") == "kvm", vm

    # One node here: the migration is refused, with the reason.
    e = call(d, "MigratePages", {"name": "fw", "from": "0", "to": "1"})
    if len([n for n in os.listdir("/sys/devices/system/node") if n.startswith("node") and n[4:].isdigit()]) == 1:
        assert e.get("error") == M + "SingleNUMANode", e

    # Placement: guest memory bound to node 0 and resident (prealloc).
    pl = ok(d, "GetPlacement", {"name": "fw"})["placement"]
    assert pl["memoryPolicy"] == "bind" and pl["hostNodes"] == "0", pl
    assert pl["residentBytes"] >= 64 << 20 and pl["residency"][0]["node"] == 0, pl

    # The measured window: counters before, 1.5 s of the guest running, counters after.
    t0, before, metrics = snapshot_after(d, "fw", 0)
    time.sleep(1.5)
    t1, after, _ = snapshot_after(d, "fw", t0 + 1_000_000)
    assert t1 - t0 >= 1_000_000

    names = {n for (n, _) in before}
    fams = [f for f in metrics if f["name"].startswith("memvisor_guest_kvm_")]
    # Each KVM statistic is a family of its own (a registry bug once folded them all into the first).
    assert len(fams) > 10, [f["name"] for f in fams]
    # per-VM and per-vCPU statistics from query-stats (names as KVM defines them)
    for want in ("memvisor_guest_kvm_remote_tlb_flush_total", "memvisor_guest_kvm_vcpu_exits_total",
                 "memvisor_guest_kvm_vcpu_pf_taken_total", "memvisor_guest_kvm_vcpu_halt_wakeup_total"):
        assert want in names, sorted(names)
    vcpu_keys = [k for k in before if k[1] is not None]
    assert vcpu_keys and all(k[1] == "0" for k in vcpu_keys), vcpu_keys
    families = {f["name"]: f for f in metrics}
    assert families["memvisor_guest_kvm_vcpu_exits_total"]["type"] == "counter"

    # Deltas over the window: cumulative counters never go back, and a running guest exits to KVM.
    deltas = {}
    for k, v in before.items():
        if k in after and k[0].endswith("_total") and v is not None and after[k] is not None:
            deltas[k] = after[k] - v
            assert deltas[k] >= 0, (k, v, after[k])
    # The guest has run under KVM (SeaBIOS exits to KVM thousands of times while it boots); over the window
    # a firmware guest that found nothing to boot may sit halted, so the delta itself may be small or zero.
    assert after[("memvisor_guest_kvm_vcpu_exits_total", "0")] > 0, after
    assert ("memvisor_guest_kvm_vcpu_exits_total", "0") in deltas and len(deltas) > 10, deltas
    print("KVM counter deltas over %.2f s: %s" % ((t1 - t0) / 1e6, {"%s[%s]" % k: v for k, v in sorted(deltas.items()) if v}))

    ok(d, "StopVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
