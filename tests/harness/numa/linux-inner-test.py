# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs inside the 2-node test guest (run.sh BUILDDIR linux): memvisord supervises the Linux test guest itself as
its inner guest (TCG inside TCG: the build tree's tests/guest kernel and initramfs over 9p, with its qemu-ga and
memvisor-touch), with two guest NUMA nodes bound to the two host nodes (issue 17; checked first, below), and runs
the experiment issue 15 asks for on two nodes: migrate-pingpong Between=0,1 Moves=2, 5 iterations, memvisor-touch writing in the guest during the
provocation, every counter set this machine can take (host and guest). Checked against the kernel's own view read
by this script (/proc/vmstat, numa_maps) and against what memvisor-touch and the guest's /proc/vmstat say:

- every iteration recorded, with the workload's own JSON (pages touched = --mib), the guest's pgfault delta at least
  those pages, guest interrupts (TLB shootdowns, or unavailable with the reason), the moves' pages and time;
- the host's pgmigrate_success over the whole run = the sum of the iterations' deltas (+ background, stated);
- tlb:tlb_flush and migrate:mm_migrate_pages counted (> 0), the KVM sets unavailable naming TCG;
- memvisorctl experiment show (saved to experiment-show.txt for the closing note) and export.

The guest's two NUMA nodes, each bound to its own host node ([Memory] GuestNode=128M cpus=0 hostnodes=0
policy=bind, GuestNode=128M cpus=1 hostnodes=1 policy=bind, Prealloc=yes, VCPUAffinity=node), are verified from
both sides right after the boot, before the experiment moves the memory: the guest's own /sys/devices/system/node and /proc/zoneinfo
through its agent (two nodes, their vCPUs and sizes), QEMU's query-memdev, each vCPU thread allowed only its
node's host CPU, and each backend's pages resident on its host node (DescribeMemoryLayout, and this script's own
reading of numa_maps).

Slow: the inner Linux boots under nested TCG (3-6 minutes); tools/check runs it once, with the gcc build (the
numa-linux test of the numa suite). Writes OUT/results.json like guest-test.py; exit 0 only if every check passes."""

import base64
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiment_checks import (BACKGROUND_FRACTION, BACKGROUND_PAGES, ctl_text, ensure_on_node0,  # noqa: E402
                               kvm_unavailable, prepare_tracing, results, run_experiment, vmstat)
from numa_harness import (OUT, WORK, call_ok, ctl, log, numa_maps, params, sanitizer_reports,  # noqa: E402
                          start_daemon, stop_daemon, write_result)

MIB = 1 << 20
PAGE = 4096
P = params()
BUILD = P["build"]
GUEST = os.path.join(BUILD, "test-guest")
MEMORY_MIB = int(P.get("memory_mib", 256))
TOUCH_MIB = int(P.get("touch_mib", 32))
ITERATIONS = int(P.get("iterations", 5))
MOVES = 2
BOOT_TIMEOUT = int(P.get("boot_timeout", 1200))
COUNTERS = "time workload host-vmstat host-tlb host-migrate host-kvm-exits host-kvm-stats guest-vmstat guest-interrupts"

checks = []
figures = {}


def check(name, ok, detail=None):
    checks.append({"name": name, "ok": bool(ok), "detail": detail})
    log("%s - %s%s" % ("ok" if ok else "not ok", name, "" if ok else ": %s" % json.dumps(detail)[:2000]))
    write_result("results.json", {"checks": checks, "figures": figures})
    return ok


def write_linux_inner():
    """Two guest nodes, each bound to its own host node and preallocated there, each vCPU pinned within its node's
    host CPUs (VCPUAffinity=node)."""
    node_mib = MEMORY_MIB // 2
    text = ("[VM]\nName=inner\nMemory=%dM\nVCPUs=2\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
            "Append=console=ttyS0 quiet\nStopTimeoutSec=5s\n"
            "[Memory]\nPrealloc=yes\n"
            "GuestNode=%dM cpus=0 hostnodes=0 policy=bind\nGuestNode=%dM cpus=1 hostnodes=1 policy=bind\n"
            "GuestDistance=0 1 21\n[CPU]\nVCPUAffinity=node\n"
            % (MEMORY_MIB, GUEST, GUEST, node_mib, node_mib))
    with open(WORK + "/vms/inner.vm", "w") as f:
        f.write(text)
    return text


def wait_agent(timeout):
    t0 = time.monotonic()
    while True:
        vm = call_ok("DescribeVM", {"name": "inner"})["vm"]
        if vm.get("state") == "running" and (vm.get("agent") or {}).get("state") == "ready":
            return vm, time.monotonic() - t0
        if vm.get("state") in ("failed", "stopped") or time.monotonic() - t0 > timeout:
            raise RuntimeError("the inner Linux guest's agent did not become ready in %d s: %s"
                               % (timeout, json.dumps({k: vm.get(k) for k in ("state", "agent", "lastExit")})))
        time.sleep(2)


def definition():
    text = ("[Experiment]\nName=pingpong-linux\nDescription=Linux inner guest, memvisor-touch --mib=%d --write during "
            "the ping-pong\nGuest=inner\nIterations=%d\nSettle=200ms\n"
            "[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\nMoves=%d\n"
            "[Workload]\nWhen=during\nProgram=/usr/bin/memvisor-touch\nArguments=--mib=%d --write\n"
            "[Measure]\nCounters=%s\n" % (TOUCH_MIB, ITERATIONS, MOVES, TOUCH_MIB, COUNTERS))
    path = os.path.join(WORK, "pingpong-linux.experiment")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_checks(pid):
    tracefs = prepare_tracing(figures)
    ensure_on_node0(BUILD, pid)
    pg0 = vmstat("pgmigrate_success")
    t0 = time.monotonic()
    final, streamed = run_experiment(BUILD, definition())
    secs = time.monotonic() - t0
    pg1 = vmstat("pgmigrate_success")
    xid = final.get("id")
    rows = results(xid) if xid else []
    counters = [r.get("counters", {}) for r in rows]
    keep = ("time.", "workload.", "host.migrate.", "host.tlb_flush", "host.mm_migrate", "guest.vmstat.pgfault",
            "guest.vmstat.pgmigrate", "guest.tlb", "host.vmstat.pgmigrate_success")
    figures["experiment"] = {"id": xid, "state": final.get("state"), "reason": final.get("reason"),
                             "seconds": round(secs, 1), "iterations": len(rows),
                             "counters": [{k: v for k, v in sorted(c.items()) if k.startswith(keep)}
                                          for c in counters],
                             "unavailable": rows[0].get("unavailable") if rows else None}
    check("experiment migrate-pingpong Between=0,1 Moves=2 x%d on the Linux inner guest, memvisor-touch --mib=%d "
          "--write during it: completed, streamed = stored" % (ITERATIONS, TOUCH_MIB),
          final.get("state") == "completed" and [r.get("iteration") for r in rows] == list(range(1, ITERATIONS + 1))
          and streamed == rows, {"final": final, "streamed": len(streamed), "stored": len(rows)})
    if not rows:
        return

    pages = TOUCH_MIB * MIB // PAGE
    check("every iteration: the workload's own JSON (pages_touched = %d) and its time, the guest's pgfault delta >= "
          "those pages (the guest's /proc/vmstat through the agent)" % pages,
          all(r.get("workload", {}).get("pages_touched") == pages and
              r.get("counters", {}).get("workload.pages_touched") == pages and
              r.get("counters", {}).get("time.workload_usec", 0) > 0 and
              r.get("counters", {}).get("guest.vmstat.pgfault", 0) >= pages for r in rows),
          [{"workload": r.get("workload", {}).get("pages_touched"),
            "pgfault": r.get("counters", {}).get("guest.vmstat.pgfault"),
            "workloadUSec": r.get("counters", {}).get("time.workload_usec")} for r in rows])
    check("every iteration: guest TLB shootdowns (/proc/interrupts TLB:) counted or unavailable with a reason",
          all("guest.tlb_shootdowns" in r.get("counters", {}) or r.get("unavailable", {}).get("guest.tlb_shootdowns")
              for r in rows),
          [(r.get("counters", {}).get("guest.tlb_shootdowns"), r.get("unavailable", {}).get("guest.tlb_shootdowns"))
           for r in rows])
    check("every iteration: host.migrate.moved_pages > 0, moves = %d, time.provoke_usec > 0" % MOVES,
          all(c.get("host.migrate.moved_pages", 0) > 0 and c.get("host.migrate.moves") == MOVES and
              c.get("time.provoke_usec", 0) > 0 for c in counters),
          [{k: c.get(k) for k in ("host.migrate.moved_pages", "host.migrate.moves", "time.provoke_usec")}
           for c in counters])

    whole = pg1 - pg0
    summed = sum(c.get("host.vmstat.pgmigrate_success", 0) for c in counters)
    tol = max(BACKGROUND_PAGES, int(BACKGROUND_FRACTION * summed))
    pgm = {"wholeRun": whole, "sumOfIterations": summed, "difference": whole - summed, "tolerancePages": tol,
           "perIteration": [c.get("host.vmstat.pgmigrate_success") for c in counters]}
    figures["experimentPgmigrate"] = pgm
    check("host /proc/vmstat pgmigrate_success over the whole run = sum of the iterations' deltas (whole %d, sum %d, "
          "tolerance +%d/-0 pages for background migration)" % (whole, summed, tol),
          summed > 0 and 0 <= whole - summed <= tol, pgm)

    tp = [{k: c.get(k) for k in ("host.tlb_flush.host", "host.tlb_flush.qemu", "host.mm_migrate_pages.host")}
          for c in counters]
    check("tlb:tlb_flush and migrate:mm_migrate_pages counted in every iteration (> 0; tracefs %s)"
          % ("mounted" if tracefs else "MISSING"),
          tracefs and all((t["host.tlb_flush.host"] or 0) > 0 and (t["host.mm_migrate_pages.host"] or 0) > 0
                          for t in tp), tp)
    kvm = [kvm_unavailable(r) for r in rows]
    check("host-kvm-exits and host-kvm-stats unavailable in every iteration naming TCG or /dev/kvm, never 0",
          all(k[0] for k in kvm), [k[1:] for k in kvm][:2])

    rc, out, err = ctl_text(BUILD, "experiment", "show", xid)
    with open(os.path.join(OUT, "experiment-show.txt"), "w") as f:
        f.write("$ memvisorctl experiment show %s\n%s%s" % (xid, out, err))
    check("memvisorctl experiment show exits 0 with host.migrate.moved_bytes and guest.vmstat.pgfault rows "
          "(saved to experiment-show.txt)",
          rc == 0 and all(any(l.split()[:1] == [k] for l in out.splitlines())
                          for k in ("host.migrate.moved_bytes", "guest.vmstat.pgfault")),
          {"rc": rc, "stderr": err[-500:]})
    rc, out, err = ctl_text(BUILD, "experiment", "export", xid, "--format=csv")
    with open(os.path.join(OUT, "experiment.csv"), "w") as f:
        f.write(out)
    check("experiment export --format=csv exits 0 with workload and guest rows",
          rc == 0 and "workload.pages_touched" in out and "guest.vmstat.pgfault" in out, {"rc": rc, "err": err[-500:]})


def guest_cat(path):
    r = call_ok("GuestExec", {"name": "inner", "argv": ["cat", path], "timeoutUSec": 120 * 1000000})["result"]
    if not (r.get("exited") and r.get("exitCode") == 0):
        raise RuntimeError("cat %s in the guest: %s" % (path, json.dumps(r)[:500]))
    return base64.b64decode(r.get("stdout", "")).decode(errors="replace")


def host_cpus(node):
    with open("/sys/devices/system/node/node%d/cpulist" % node) as f:
        return f.read().strip()


def backend_residency(pid, size):
    """This script's own numa_maps reading: {mapping start: {node: bytes}} of the mappings of exactly size bytes
    (the two guest-node backends)."""
    found = {}
    maps = {}
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            a, b = line.split()[0].split("-")
            maps[int(a, 16)] = int(b, 16) - int(a, 16)
    with open("/proc/%d/numa_maps" % pid) as f:
        for line in f:
            fields = line.split()
            start = int(fields[0], 16)
            if maps.get(start) != size:
                continue
            ps = 4096
            for w in fields[2:]:
                if w.startswith("kernelpagesize_kB="):
                    ps = int(w.split("=", 1)[1]) * 1024
            per = {}
            for w in fields[2:]:
                m = re.match(r"N(\d+)=(\d+)$", w)
                if m:
                    per[int(m.group(1))] = per.get(int(m.group(1)), 0) + int(m.group(2)) * ps
            found[start] = per
    return found


def guest_numa_checks(pid):
    node_mib = MEMORY_MIB // 2

    memdev = sorted(call_ok("ExecuteMonitorCommand", {"name": "inner", "command": "query-memdev",
                                                     "arguments": {}})["reply"], key=lambda m: m["id"])
    got = [(m["id"], m["size"], m["policy"], m["host-nodes"]) for m in memdev]
    check("QEMU's query-memdev: backend m0 bound to host node 0, m1 to host node 1, %d MiB each" % node_mib,
          got == [("m0", node_mib * MIB, "bind", [0]), ("m1", node_mib * MIB, "bind", [1])], got)

    guest = {"online": guest_cat("/sys/devices/system/node/online").strip()}
    present, node = {}, None
    for line in guest_cat("/proc/zoneinfo").splitlines():
        m = re.match(r"Node (\d+), zone", line)
        if m:
            node = int(m.group(1))
        m = re.match(r"\s+present\s+(\d+)$", line)
        if m and node is not None:
            present[node] = present.get(node, 0) + int(m.group(1)) * 4096
    guest["presentMiB"] = {n: round(b / MIB, 1) for n, b in present.items()}
    guest["cpulist"] = [guest_cat("/sys/devices/system/node/node%d/cpulist" % n).strip() for n in (0, 1)]
    guest["distance0"] = guest_cat("/sys/devices/system/node/node0/distance").split()
    figures["guestNumaGuestSide"] = guest
    # present pages: the node's memory less what the firmware keeps out of the e820 map (see test_guest_numa.py)
    check("the guest's own view (agent): nodes 0-1, vCPU 0 in node 0 and 1 in node 1, about %d MiB present in each, "
          "distance 10 21" % node_mib,
          guest["online"] == "0-1" and guest["cpulist"] == ["0", "1"] and set(present) == {0, 1} and
          all(node_mib - 1 <= present[n] / MIB <= node_mib for n in (0, 1)) and guest["distance0"] == ["10", "21"],
          guest)

    vcpus = call_ok("GetPlacement", {"name": "inner"})["placement"]["vcpus"]
    got = [(v["index"], v.get("allowedCPUs")) for v in vcpus]
    want = [(0, host_cpus(0)), (1, host_cpus(1))]
    check("VCPUAffinity=node: vCPU 0's thread allowed only host node 0's CPUs (%s), vCPU 1's only node 1's (%s)"
          % (want[0][1], want[1][1]), got == want, {"got": got, "want": want})

    layout = call_ok("DescribeMemoryLayout", {"name": "inner"})["layout"]
    daemon_view = {}
    for region in layout.get("regions", []):
        if region.get("backend") in ("m0", "m1"):
            for rr in region.get("residency") or []:
                if rr.get("bytes", 0) > 0:
                    daemon_view.setdefault(region["backend"], {}).setdefault(rr["node"], 0)
                    daemon_view[region["backend"]][rr["node"]] = max(daemon_view[region["backend"]][rr["node"]],
                                                                     rr["bytes"])
    own = backend_residency(pid, node_mib * MIB)
    figures["guestNumaHostSide"] = {"daemon": daemon_view, "numaMaps": {hex(k): v for k, v in own.items()},
                                    "unavailable": layout.get("residencyUnavailable")}
    check("the host's view: DescribeMemoryLayout shows m0 resident only on host node 0 and m1 only on node 1",
          not layout.get("residencyUnavailable") and set(daemon_view.get("m0", {})) == {0} and
          set(daemon_view.get("m1", {})) == {1}, figures["guestNumaHostSide"])
    homes = sorted(tuple(sorted(n for n, b in per.items() if b > 0)) for per in own.values())
    check("this script's numa_maps: two %d MiB mappings, one wholly on node 0, one wholly on node 1 (preallocated: "
          ">= 95%% resident)" % node_mib,
          homes == [(0,), (1,)] and all(sum(per.values()) >= 0.95 * node_mib * MIB for per in own.values()),
          figures["guestNumaHostSide"])


def main():
    proc = None
    status = 1
    try:
        if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
            raise RuntimeError("no test guest at %s (run.sh builds it)" % GUEST)
        os.makedirs(WORK + "/vms", exist_ok=True)
        write_linux_inner()
        proc = start_daemon(BUILD, config="[Metrics]\nGuestSampleIntervalSec=1h\n")
        t0 = time.monotonic()
        ctl(BUILD, "start", "inner")
        vm, secs = wait_agent(BOOT_TIMEOUT)
        figures["innerBootToAgentSeconds"] = round(time.monotonic() - t0, 1)
        pid = vm.get("pid") or vm.get("qemuPid")
        check("the Linux inner guest booted under nested TCG and its agent answered (%.0f s)" % secs,
              isinstance(pid, int) and pid > 0, {k: vm.get(k) for k in ("state", "pid", "agent")})
        nodes, _, ram = numa_maps(pid)
        figures["innerResidencyBefore"] = {"process": nodes, "guestRam": ram}
        guest_numa_checks(pid)         # before the experiment's moves take the memory off its nodes
        run_checks(pid)
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed check with its reason
        check("the Linux inner guest's checks ran to their end", False, repr(e))
        try:
            rc, out, err = ctl_text(BUILD, "console", "inner", "--lines=60")
            with open(os.path.join(OUT, "inner-console.txt"), "w") as f:
                f.write(out + err)
        except Exception:  # noqa: BLE001
            pass
    finally:
        if proc is not None:
            rc = stop_daemon(BUILD, proc, timeout=180)
            check("memvisord exited 0 on SIGTERM", rc == 0, rc)
        reports = sanitizer_reports()
        check("no sanitizer report", not reports, {k: v[:3000] for k, v in reports.items()})
        status = 0 if checks and all(c["ok"] for c in checks) else 1
        write_result("results.json", {"checks": checks, "figures": figures})
    return status


if __name__ == "__main__":
    sys.exit(main())
