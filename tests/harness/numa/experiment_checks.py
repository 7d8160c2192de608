# SPDX-License-Identifier: LGPL-2.1-or-later
"""The two-node experiment checks of the multi-node harness (issue 15), called by guest-test.py once its migration
checks are through: a migrate-pingpong experiment of 5 iterations on the inner guest (firmware-only: no guest
agent, so [Workload] When=none and no memvisor-touch) with the host counter sets, run by `memvisorctl --json
experiment run FILE`, checked against the kernel's own view read by this script (/proc/vmstat, numa_maps), then
`experiment show` and `experiment export --format=csv`, and a baseline experiment (Operation=none) on the same
guest whose migration counters must stay below the migrate experiment's."""

import csv
import io
import os
import statistics
import subprocess
import time

from matrix_checks import run_matrix_checks
from numa_harness import CTL_SAN_ENV, OUT, SOCKET, WORK, Varlink, ctl, numa_maps

MIB = 1 << 20
PAGE = 4096
ITERATIONS = 5
MOVES = 2
COUNTERS = "time host-vmstat host-tlb host-migrate host-kvm-exits host-kvm-stats"
# Migrations the run's iterations did not do (compaction, the kernel's own work during the settle times) that may
# show in the host's pgmigrate_success over the whole run: 1% of the iterations' sum, at least 1024 pages.
BACKGROUND_FRACTION = 0.01
BACKGROUND_PAGES = 1024
TRACEFS = "/sys/kernel/tracing"


def prepare_tracing(figures):
    """tracefs at /sys/kernel/tracing (as systemd mounts it on a host): the tlb and migrate sets count
    tracepoints with perf, which needs the events' ids from there. And kernel.perf_event_paranoid at most 2:
    Debian's kernel (the test guest boots the host's) adds a level 3, its default, at which perf_event_open needs
    CAP_SYS_ADMIN, which memvisord drops (it keeps CAP_PERFMON, what upstream's levels ask for); a host that
    counts tracepoints sets it to 2, as this script does."""
    if not os.path.isdir(TRACEFS + "/events"):
        p = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True, text=True)
        figures["tracefsMount"] = "mounted by the script (%d%s)" % (p.returncode, (": " + p.stderr.strip()) if p.stderr else "")
    else:
        figures["tracefsMount"] = "already mounted"
    path = "/proc/sys/kernel/perf_event_paranoid"
    try:
        with open(path) as f:
            level = int(f.read())
        figures["perfEventParanoidBefore"] = level
        if level > 2:
            with open(path, "w") as f:
                f.write("2\n")
    except (OSError, ValueError) as e:
        figures["perfEventParanoidBefore"] = "unavailable: %s" % e
    return os.path.isdir(TRACEFS + "/events")


def vmstat(key):
    with open("/proc/vmstat") as f:
        for line in f:
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    return None


def definition(name, operation, description):
    provoke = "Operation=%s\n" % operation
    if operation == "migrate-pingpong":
        provoke += "Between=0,1\nMoves=%d\n" % MOVES
    text = ("[Experiment]\nName=%s\nDescription=%s\nGuest=inner\nIterations=%d\nSettle=200ms\n"
            "[Provoke]\n%s[Workload]\nWhen=none\n[Measure]\nCounters=%s\n"
            % (name, description, ITERATIONS, provoke, COUNTERS))
    path = os.path.join(WORK, name + ".experiment")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_experiment(build, path):
    """memvisorctl --json experiment run FILE: (the final reply, the streamed iteration records)."""
    docs = ctl(build, "experiment", "run", path, check=False, timeout=900)
    streamed = [d["iteration"] for d in docs if isinstance(d.get("iteration"), dict)]
    return (docs[-1] if docs else {}), streamed


def results(xid):
    """GetExperimentResults with more: every stored record."""
    out = []
    c = Varlink(timeout=60)
    try:
        c.send("GetExperimentResults", {"id": xid}, more=True)
        while True:
            r = c.receive()
            if "error" in r:
                raise RuntimeError("GetExperimentResults: %s" % r)
            out += r.get("parameters", {}).get("iterations", [])
            if not r.get("continues"):
                return out
    finally:
        c.close()


def ctl_text(build, *args):
    argv = [os.path.join(build, "memvisorctl"), "--address=" + SOCKET] + list(args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **CTL_SAN_ENV))
    return p.returncode, p.stdout, p.stderr


def ensure_on_node0(build, pid):
    """The ping-pong's first move goes 0 → 1: the memory starts every iteration on node 0 (the whole process: the
    earlier moves took QEMU's own pages along)."""
    nodes, _, _ = numa_maps(pid)
    if nodes.get(1, 0) > 0:
        ctl(build, "migrate", "inner", "--from", "1", "--to", "0", "--settle=0", timeout=300)


def kvm_unavailable(rec):
    """Both KVM sets unavailable with a reason naming TCG or /dev/kvm, and no KVM counter reported."""
    u, c = rec.get("unavailable", {}), rec.get("counters", {})
    reasons = [u.get("host.kvm_exit"), u.get("host.kvm_stats")]
    kvm_counters = [k for k in c if k.startswith(("host.kvm_exit", "host.kvm_stats", "host.kvm_page_fault",
                                                  "host.kvm_pv_tlb_flush"))]
    return (all(r and ("TCG" in r or "/dev/kvm" in r) for r in reasons) and not kvm_counters), reasons, kvm_counters


def run_experiment_checks(build, pid, check, figures):
    tracefs = prepare_tracing(figures)
    ensure_on_node0(build, pid)

    # ---- the migrate-pingpong experiment, the host's view read around it
    nodes0, total0, ram0 = numa_maps(pid)
    pg0 = vmstat("pgmigrate_success")
    t0 = time.monotonic()
    final, streamed = run_experiment(build, definition(
        "pingpong-firmware", "migrate-pingpong",
        "firmware-only inner guest: no agent, no memvisor-touch (When=none)"))
    secs = time.monotonic() - t0
    pg1 = vmstat("pgmigrate_success")
    nodes1, total1, ram1 = numa_maps(pid)
    xid = final.get("id")
    rows = results(xid) if xid else []
    counters = [r.get("counters", {}) for r in rows]
    figures["experiment"] = {"id": xid, "state": final.get("state"), "reason": final.get("reason"),
                             "seconds": round(secs, 1), "iterations": len(rows),
                             "counters": [{k: v for k, v in sorted(c.items()) if not k.startswith("host.vmstat.numa")}
                                          for c in counters],
                             "unavailable": rows[0].get("unavailable") if rows else None}
    check("experiment migrate-pingpong Between=0,1 Moves=2 x5 on the firmware-only inner guest (When=none: no "
          "agent, no memvisor-touch) completed with 5 records, streamed = stored",
          final.get("state") == "completed" and [r.get("iteration") for r in rows] == list(range(1, ITERATIONS + 1))
          and streamed == rows, {"final": final, "streamed": len(streamed), "stored": len(rows)})
    if not rows:
        return
    check("every iteration: host.migrate.moved_pages > 0, host.migrate.moves = 2, time.provoke_usec > 0",
          all(c.get("host.migrate.moved_pages", 0) > 0 and c.get("host.migrate.moves") == MOVES and
              c.get("time.provoke_usec", 0) > 0 for c in counters),
          [{k: c.get(k) for k in ("host.migrate.moved_pages", "host.migrate.moves", "time.provoke_usec")}
           for c in counters])

    # ---- pgmigrate_success: the host's delta over the whole run against the iterations' sum
    whole = pg1 - pg0
    summed = sum(c.get("host.vmstat.pgmigrate_success", 0) for c in counters)
    tol = max(BACKGROUND_PAGES, int(BACKGROUND_FRACTION * summed))
    pgm = {"wholeRun": whole, "sumOfIterations": summed, "difference": whole - summed, "tolerancePages": tol,
           "perIteration": [c.get("host.vmstat.pgmigrate_success") for c in counters],
           "tolerance": "background migration outside the iterations: max(%d pages, %g%% of the sum)"
                        % (BACKGROUND_PAGES, 100 * BACKGROUND_FRACTION)}
    figures["experimentPgmigrate"] = pgm
    check("host /proc/vmstat pgmigrate_success over the whole run = sum of the iterations' deltas (whole %d, sum %d, "
          "tolerance +%d/-0 pages for background migration)" % (whole, summed, tol),
          summed > 0 and 0 <= whole - summed <= tol, pgm)
    # The daemon's moved pages are what the kernel counts as migrated (base pages; a THP counts 512).
    check("each iteration's pgmigrate_success delta >= its host.migrate.moved_pages - 256 (the moves are in the host's "
          "count; the daemon's figure is a residency difference, which pages QEMU freed meanwhile can add to)",
          all(c.get("host.vmstat.pgmigrate_success", 0) >= c.get("host.migrate.moved_pages", 1 << 40) - 256
              for c in counters),
          pgm["perIteration"])

    # ---- pages moved against the residency change
    # Every iteration moves 0 → 1 → 0: each move carries what the process has on the source node, so the moved bytes
    # are Moves x the node-0 residency (at least the guest RAM our numa_maps reader saw there, at most the whole
    # process's node-0 bytes: pages shared with other processes stay), and the net change per node is about 0.
    lo, hi = MOVES * 0.95 * ram0.get(0, 0), MOVES * (1.02 * nodes0.get(0, 0) + 4 * MIB)
    per = []
    for c in counters:
        d0, d1 = c.get("host.residency.node0.delta_bytes"), c.get("host.residency.node1.delta_bytes")
        per.append({"movedBytes": c.get("host.migrate.moved_bytes"), "movedPages": c.get("host.migrate.moved_pages"),
                    "node0Delta": d0, "node1Delta": d1})
    agree = {"numaMapsBefore": {"node0": nodes0.get(0, 0), "node1": nodes0.get(1, 0), "guestRamNode0": ram0.get(0, 0)},
             "numaMapsAfter": {"node0": nodes1.get(0, 0), "node1": nodes1.get(1, 0), "guestRamNode0": ram1.get(0, 0)},
             "movedBytesRange": [int(lo), int(hi)], "iterations": per}
    figures["experimentResidency"] = agree
    check("every iteration: moved_bytes = moved_pages x 4096 and %d x the node-0 residency (numa_maps: >= 95%% of the "
          "guest RAM there, <= the whole process there + 2%%)" % MOVES,
          all(p["movedBytes"] == p["movedPages"] * PAGE and lo <= p["movedBytes"] <= hi for p in per), agree)
    net_tol = 0.05 * lo / MOVES
    check("every iteration: host.residency.node0/node1.delta_bytes near 0 (|delta| <= 5% of one move: the even "
          "ping-pong brings the memory back), and they sum to about 0 (moved, not lost)",
          all(p["node0Delta"] is not None and p["node1Delta"] is not None and abs(p["node0Delta"]) <= net_tol and
              abs(p["node1Delta"]) <= net_tol and abs(p["node0Delta"] + p["node1Delta"]) <= 4 * MIB for p in per),
          dict(agree, netTolerance=int(net_tol)))
    s0 = sum(p["node0Delta"] or 0 for p in per)
    check("the residency deltas summed over the run agree with our numa_maps before/after (node 0 within 4 MiB)",
          abs(s0 - (nodes1.get(0, 0) - nodes0.get(0, 0))) <= 4 * MIB and ram1.get(0, 0) >= 0.95 * sum(ram1.values()),
          {"sumNode0Delta": s0, "numaMapsNode0Change": nodes1.get(0, 0) - nodes0.get(0, 0), "guestRamAfter": ram1})

    # ---- tracepoints and the KVM sets
    tp = [{k: c.get(k) for k in ("host.tlb_flush.host", "host.tlb_flush.qemu", "host.mm_migrate_pages.host",
                                 "host.mm_migrate_pages.qemu")} for c in counters]
    figures["experimentTracepoints"] = tp
    check("tlb:tlb_flush and migrate:mm_migrate_pages counted system-wide in every iteration (> 0; tracefs %s); the "
          ".qemu counts are recorded as seen (the daemon's worker thread calls migrate_pages)"
          % ("mounted" if tracefs else "MISSING"),
          tracefs and all((t["host.tlb_flush.host"] or 0) > 0 and (t["host.mm_migrate_pages.host"] or 0) > 0
                          for t in tp), {"counters": tp, "unavailable": rows[0].get("unavailable")})
    kvm = [kvm_unavailable(r) for r in rows]
    check("host-kvm-exits and host-kvm-stats unavailable in every iteration with a reason naming TCG or /dev/kvm, "
          "never 0", all(k[0] for k in kvm), [k[1:] for k in kvm][:2])

    # ---- show and export
    rc, out, err = ctl_text(build, "experiment", "show", xid)
    with open(os.path.join(OUT, "experiment-show.txt"), "w") as f:
        f.write("$ memvisorctl experiment show %s\n%s%s" % (xid, out, err))
    check("memvisorctl experiment show exits 0 and its table has host.migrate.moved_bytes (saved to "
          "experiment-show.txt)", rc == 0 and any(l.split()[:1] == ["host.migrate.moved_bytes"]
                                                   for l in out.splitlines()), {"rc": rc, "stderr": err[-500:]})
    rc, out, err = ctl_text(build, "experiment", "export", xid, "--format=csv")
    try:
        table = list(csv.DictReader(io.StringIO(out)))
    except csv.Error as e:
        table, err = [], err + repr(e)
    moved = [r for r in table if r.get("counter") == "host.migrate.moved_bytes"]
    check("experiment export --format=csv parses: a row per iteration x counter, moved_bytes as recorded",
          rc == 0 and len(table) >= ITERATIONS * 5 and
          [(int(r["iteration"]), int(float(r["value"]))) for r in moved] ==
          [(r["iteration"], c["host.migrate.moved_bytes"]) for r, c in zip(rows, counters)] and
          all(r["experiment"] == xid and r["guest"] == "inner" for r in table),
          {"rc": rc, "rows": len(table), "moved": moved[:5], "stderr": err[-500:]})

    # ---- the baseline on the same guest
    bfinal, _ = run_experiment(build, definition("baseline-firmware", "none", "baseline: nothing provoked"))
    brows = results(bfinal["id"]) if bfinal.get("id") else []
    bpg = [r.get("counters", {}).get("host.vmstat.pgmigrate_success", 0) for r in brows]
    mpg = [c.get("host.vmstat.pgmigrate_success", 0) for c in counters]
    figures["baseline"] = {"id": bfinal.get("id"), "state": bfinal.get("state"), "pgmigrateSuccess": bpg,
                           "medianBaseline": statistics.median(bpg) if bpg else None,
                           "medianMigrate": statistics.median(mpg)}
    check("baseline (Operation=none, same counters, 5 iterations): median host.vmstat.pgmigrate_success below the "
          "migrate experiment's", bfinal.get("state") == "completed" and len(brows) == ITERATIONS and
          statistics.median(bpg) < statistics.median(mpg) and
          all("host.migrate.moved_pages" not in r.get("counters", {}) for r in brows), figures["baseline"])

    # ---- a matrix run over two variants, and the comparisons (issue 16)
    if xid and bfinal.get("id"):
        run_matrix_checks(build, check, figures, results, xid, bfinal["id"])
