# SPDX-License-Identifier: LGPL-2.1-or-later
"""The matrix run of the multi-node harness (issue 16), after the experiment checks: migrate-pingpong on the
inner guest over two variants of a harmless key, 4 iterations per variant in blocks of 1, interleaved, the guest
restarted for every block. The inner guest is firmware-only (Disk=, no kernel), so the varied key is
VM.StopTimeoutSec= (1s, 2s), which changes nothing the counters see, rather than Append= (which needs Kernel=).
Checked: two variants of 4 records each, the order recorded interleaved (A B A B …), each variant's provenance from
its own boot; `compare ID:A ID:B` finds no significant difference on the host migration counters while
`compare BASELINE MIGRATE` (the experiment checks' two runs) finds one; `experiment plot ID` draws one box per
variant. The compare tables, `show` and the plot are saved to the harness's out/ for the closing notes."""

import os
import subprocess

from numa_harness import CTL_SAN_ENV, OUT, SOCKET, WORK, Varlink, ctl

ITERATIONS = 4
GLOBS = ["host.migrate.moved_pages", "host.vmstat.pgmigrate_success"]


def call(method, params):
    c = Varlink(timeout=300)
    try:
        c.send(method, params)
        return c.receive()
    finally:
        c.close()


def ctl_text(build, *args, timeout=300):
    argv = [os.path.join(build, "memvisorctl"), "--address=" + SOCKET] + list(args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **CTL_SAN_ENV))
    return p.returncode, p.stdout, p.stderr


def save(name, command, rc, out, err):
    with open(os.path.join(OUT, name), "w") as f:
        f.write("$ memvisorctl %s\n%s%s(exit status %d)\n" % (command, out, err, rc))


def run_matrix_checks(build, check, figures, results, migrate_id, baseline_id):
    text = ("[Experiment]\nName=matrix-stoptimeout\nDescription=two variants of a key the counters do not see\n"
            "Guest=inner\nIterations=%d\nSettle=200ms\n[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\n"
            "Moves=2\n[Workload]\nWhen=none\n[Measure]\nCounters=time host-vmstat host-migrate\n"
            "[Matrix]\nVM.StopTimeoutSec=1s 2s\nBlock=1\nOrder=interleaved\nBootTimeout=2min\n" % ITERATIONS)
    path = os.path.join(WORK, "matrix.experiment")
    with open(path, "w") as f:
        f.write(text)
    docs = ctl(build, "experiment", "run", path, check=False, timeout=1200)
    final = docs[-1] if docs else {}
    xid = final.get("id")
    rows = results(xid) if xid else []
    order = [r.get("variant") for r in rows]
    figures["matrix"] = {"id": xid, "state": final.get("state"), "reason": final.get("reason"), "order": order}
    check("matrix run (2 variants x 4 iterations, blocks of 1, interleaved): completed, 8 records, order "
          "A B A B A B A B, each variant 4 measured", final.get("state") == "completed" and
          order == ["A", "B"] * ITERATIONS and all(not r.get("warmUp") for r in rows), figures["matrix"])

    x = call("io.memvisor.Manager.DescribeExperiment", {"id": xid}).get("parameters", {}) if xid else {}
    m = x.get("provenance", {}).get("matrix", {})
    variants = m.get("variants", [])
    pids = [(v.get("guest") or {}).get("qemuPid") for v in variants]
    check("the provenance records the schedule and each variant's own boot (its QEMU pid and argv)",
          m.get("schedule") == ["A", "B"] * ITERATIONS and len(variants) == 2 and all(pids) and
          pids[0] != pids[1] and [v.get("settings") for v in variants] ==
          [{"VM.StopTimeoutSec": "1s"}, {"VM.StopTimeoutSec": "2s"}],
          {"schedule": m.get("schedule"), "pids": pids, "settings": [v.get("settings") for v in variants]})
    check("DescribeExperiment gives the statistics per variant (4 iterations each), none pooled",
          x.get("statistics") == [] and [v.get("iterations") for v in x.get("variants", [])] == [4, 4],
          [(v.get("variant"), v.get("iterations")) for v in x.get("variants", [])])

    ab = call("io.memvisor.Manager.CompareExperiments", {"a": "%s:A" % xid, "b": "%s:B" % xid, "counters": GLOBS})
    comps = ab.get("parameters", {}).get("comparison", {}).get("comparisons", [])
    figures["matrixCompare"] = [{k: c.get(k) for k in ("counter", "medianA", "medianB", "ratio", "p", "pHolm",
                                                        "significant")} for c in comps]
    check("compare ID:A ID:B: no significant difference on the host migration counters",
          len(comps) >= 1 and not any(c.get("significant") for c in comps), figures["matrixCompare"] or ab)
    bm = call("io.memvisor.Manager.CompareExperiments", {"a": baseline_id, "b": migrate_id, "counters": GLOBS})
    bcomps = bm.get("parameters", {}).get("comparison", {}).get("comparisons", [])
    figures["baselineCompare"] = [{k: c.get(k) for k in ("counter", "medianA", "medianB", "p", "pHolm",
                                                          "significant")} for c in bcomps]
    check("compare BASELINE MIGRATE (Operation=none is the control): host.vmstat.pgmigrate_success significant",
          any(c.get("counter") == "host.vmstat.pgmigrate_success" and c.get("significant") for c in bcomps),
          figures["baselineCompare"] or bm)

    for name, args in (("matrix-compare.txt", ["experiment", "compare", "%s:A" % xid, "%s:B" % xid]),
                       ("baseline-compare.txt", ["experiment", "compare", baseline_id, migrate_id] +
                        ["--counter=" + g for g in GLOBS]),
                       ("matrix-show.txt", ["experiment", "show", xid])):
        rc, out, err = ctl_text(build, *args)
        save(name, " ".join(args), rc, out, err)
        check("memvisorctl %s exits 0 (saved to %s)" % (args[0] + " " + args[1], name), rc == 0, err[-300:])

    png = os.path.join(OUT, "matrix-plot.png")
    rc, out, err = ctl_text(build, "experiment", "plot", xid, "--counter=host.vmstat.pgmigrate_success",
                            "--counter=time.provoke_usec", "--counter=host.migrate.moved_pages", "-o", png)
    size = os.path.getsize(png) if os.path.exists(png) else 0
    with open(png, "rb") if size else open(os.devnull, "rb") as f:
        magic = f.read(8)
    check("memvisorctl experiment plot ID draws one box per variant into a PNG (saved to matrix-plot.png)",
          rc == 0 and magic == b"\x89PNG\r\n\x1a\n", {"rc": rc, "bytes": size, "stderr": err[-300:]})

    # The guest runs its own definition again.
    vm = call("io.memvisor.Manager.DescribeVM", {"name": "inner"}).get("parameters", {}).get("vm", {})
    check("after the run the inner guest is back on its own definition", "runningVariant" not in vm,
          {"state": vm.get("state"), "runningVariant": vm.get("runningVariant")})
