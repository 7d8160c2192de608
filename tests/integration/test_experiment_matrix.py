# SPDX-License-Identifier: LGPL-2.1-or-later
"""Matrix runs (issue 16) against the real daemon and the Linux test guest under TCG: two variants of Append=
interleaved in blocks, the guest restarted for every block and given its own definition back at the end, each
variant's provenance from its own boot, per-variant statistics, a variant compared against the other, the CSV's
variant column; a variant whose kernel is missing refused before anything runs; a variant whose kernel panics at
boot ends the run with its console's last lines, keeping what the other variant recorded."""

import csv
import io

from memvisor_it import wait_for
from test_experiment import M, TOUCH, err, ok, real_guest, results, run_more, test_guest  # noqa: F401 (fixture)


def matrix_definition(guest, appends, iterations=2, block=1, extra=None):
    d = {"Experiment": {"Guest": guest, "Iterations": iterations, "Settle": "100ms"},
         "Provoke": {"Operation": "none"},
         "Workload": {"When": "after", "Program": TOUCH, "Arguments": ["--mib=8", "--write"]},
         "Measure": {"Counters": ["workload", "time", "guest-vmstat"]},
         "Matrix": {"Append": appends, "Block": block, "BootTimeout": "3min"}}
    for section, keys in (extra or {}).items():
        d.setdefault(section, {}).update(keys)
    return d


def qemu_append(d, name):
    argv = ok(d, "DescribeVM", {"name": name})["vm"]["argv"]
    return argv[argv.index("-append") + 1]


def test_experiment_matrix_interleaved(daemons, ctl, test_guest):
    d = daemons(name="mx")
    real_guest(d, test_guest, name="mg")
    own = qemu_append(d, "mg")
    a, b = "console=ttyS0 quiet memvisor.variant=a", "console=ttyS0 quiet memvisor.variant=b"

    replies, final = run_more(d, {"definition": matrix_definition("mg", [a, b])}, timeout=900)
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "completed", p
    assert p["iterationsDone"] == p["iterationsPlanned"] == 4
    xid = p["id"]

    recs = results(d, xid)
    assert [(r["variant"], r["block"], r["iteration"]) for r in recs] == [("A", 1, 1), ("B", 2, 2), ("A", 3, 3),
                                                                         ("B", 4, 4)]
    assert all(not r["warmUp"] and r["counters"]["time.workload_usec"] > 0 for r in recs)

    x = ok(d, "DescribeExperiment", {"id": xid})
    m = x["provenance"]["matrix"]
    assert m["order"] == "interleaved" and m["schedule"] == ["A", "B", "A", "B"] and m["block"] == 1
    for v, value in zip(m["variants"], (a, b)):
        assert v["settings"] == {"VM.Append": value}
        guest = v["guest"]
        argv = guest["qemuArgv"]
        assert argv[argv.index("-append") + 1] == value         # the QEMU that ran it, from its own boot
        assert isinstance(guest["kernelRelease"], str) and guest["kernelRelease"]
    assert x["statistics"] == [] and x["unavailable"] == []    # the variants are never pooled
    variants = {v["variant"]: v for v in x["variants"]}
    assert set(variants) == {"A", "B"}
    for v in variants.values():
        assert v["iterations"] == 2 and v["warmUp"] == 0
        st = {s["counter"]: s for s in v["statistics"]}
        assert st["time.workload_usec"]["n"] == 2

    # A variant against the other; the whole run is refused, naming how to name a variant.
    c = ok(d, "CompareExperiments", {"a": xid + ":A", "b": xid + ":B", "resamples": 200})["comparison"]
    assert c["a"]["id"] == xid + ":A" and c["a"]["iterations"] == 2 and c["b"]["iterations"] == 2
    keys = {x["key"] for x in c["provenanceDifferences"]}
    assert "variant.VM.Append" in keys and any(k.startswith("guest.qemuArgv") for k in keys), keys
    e, params = err(d, "CompareExperiments", {"a": xid, "b": xid + ":B"})
    assert e == M + "InvalidExperiment" and params["field"] == "a" and xid + ":A" in params["reason"]
    e, params = err(d, "CompareExperiments", {"a": xid + ":A", "b": xid + ":Z"})
    assert e == M + "InvalidExperiment" and params["field"] == "b" and "it has A, B" in params["reason"]

    # The CSV: one tidy table with the variant column.
    r = ctl("experiment", "export", xid, "--format=csv", address=d.socket, timeout=30)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {(row["iteration"], row["variant"]) for row in rows} == {("1", "A"), ("2", "B"), ("3", "A"), ("4", "B")}

    # The guest gets its own definition back.
    def own_again():
        vm = ok(d, "DescribeVM", {"name": "mg"})["vm"]
        return vm["state"] == "running" and "runningVariant" not in vm and qemu_append(d, "mg") == own

    wait_for(own_again, timeout=120, what="the guest running its own definition again")


def test_experiment_matrix_bad_variants(daemons, test_guest):
    d = daemons(name="mb")
    real_guest(d, test_guest, name="mh")
    pid = ok(d, "DescribeVM", {"name": "mh"})["vm"]["pid"]

    # A kernel that is not there: refused before anything runs, the guest untouched.
    bad = matrix_definition("mh", ["console=ttyS0"])
    bad["Matrix"]["Kernel"] = [str(test_guest / "vmlinuz"), "/nonexistent/vmlinuz"]
    e, params = err(d, "StartExperiment", {"definition": bad})
    assert e == M + "InvalidExperiment" and params["field"] == "Matrix", params
    assert "variant B" in params["reason"] and "/nonexistent/vmlinuz" in params["reason"], params
    assert ok(d, "DescribeVM", {"name": "mh"})["vm"]["pid"] == pid
    # The iterations override is checked against the whole run: 2 variants x 6000 is over 10000 records.
    e, params = err(d, "StartExperiment", {"definition": matrix_definition("mh", ["a=1", "a=2"]), "iterations": 6000})
    assert e == M + "InvalidExperiment" and params["field"] == "iterations" and "10000" in params["reason"], params
    assert ok(d, "ListExperiments")["experiments"] == []

    # A variant whose kernel panics at boot: the run fails with its console's last lines, A's records are kept.
    panic = matrix_definition("mh", ["console=ttyS0 quiet", "console=ttyS0 memvisor.mode=panic"], iterations=1,
                              extra={"Matrix": {"Append": ["console=ttyS0 quiet", "console=ttyS0 memvisor.mode=panic"],
                                                "BootTimeout": "25s"}})
    replies, final = run_more(d, {"definition": panic}, timeout=600)
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "failed" and p["iterationsDone"] == 1, p
    assert "variant B" in p["reason"] and "Kernel panic" in p["reason"], p["reason"]
    recs = results(d, p["id"])
    assert [r["variant"] for r in recs] == ["A"]
    x = ok(d, "DescribeExperiment", {"id": p["id"]})
    assert x["experiment"]["state"] == "failed"
    assert x["provenance"]["matrix"]["variants"][1]["guest"] is None       # B never came up

    def own_again():
        vm = ok(d, "DescribeVM", {"name": "mh"})["vm"]
        return vm["state"] == "running" and "runningVariant" not in vm and "panic" not in qemu_append(d, "mh")

    wait_for(own_again, timeout=120, what="the guest running its own definition again")
