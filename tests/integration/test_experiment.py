# SPDX-License-Identifier: LGPL-2.1-or-later
"""Experiments (issue 15) against the real daemon: bad input named by field; the Linux test guest under TCG with
its real qemu-ga running memvisor-touch around a baseline and a balloon provocation, every iteration recorded with
the guest's own counters, the KVM sets unavailable with the reason; GuestBusy while one runs; cancel; the guest
killed mid-experiment; kill -9 of memvisord mid-experiment (interrupted, completed iterations intact); a full
state directory. The two-node migration experiment runs in the NUMA harness (tests/harness/numa)."""

import json
import os
import signal
import subprocess
import time

import pytest

from memvisor_it import VarlinkConnection, calls_as, wait_for
from test_metrics import free_port, promtool_clean, scrape, series, varlink_series
from test_numa_kvm import kvm_usable

M = "io.memvisor.Manager."
TOUCH = "/usr/bin/memvisor-touch"


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def err(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" in reply, reply
    return reply["error"], reply.get("parameters", {})


def results(d, id_):
    """GetExperimentResults with more: every batch."""
    out = []
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "GetExperimentResults", {"id": id_}, more=True)
        while True:
            r = c.receive()
            assert "error" not in r, r
            out += r["parameters"]["iterations"]
            if not r.get("continues"):
                return out


def fake_guest(d, name="g"):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text("[VM]\nMemory=128M\nAccelerator=tcg\nDisk=/dev/null\nStopTimeoutSec=2s\n"
                                           "GuestAgent=no\n")
    ok(d, "Reload")


def definition(guest, iterations=3, op="none", when="after", args=("--mib=16", "--write"), extra=None):
    d = {"Experiment": {"Guest": guest, "Iterations": iterations, "Settle": "100ms"},
         "Provoke": {"Operation": op},
         "Workload": {"When": when}}
    if when != "none":
        d["Workload"].update({"Program": TOUCH, "Arguments": list(args)})
    for section, keys in (extra or {}).items():
        d.setdefault(section, {}).update(keys)
    return d


# ---- bad input: every refusal names what was wrong ------------------------------------------------------------


def test_experiment_bad_input(daemons, ctl):
    d = daemons(name="xb")
    fake_guest(d)
    e, p = err(d, "StartExperiment", {"definition": definition("g", extra={"Measure": {"Counters": ["nope"]}})})
    assert e == M + "InvalidExperiment" and p["field"] == "Measure.Counters", p
    assert "host-kvm-exits" in p["reason"] and "guest-vmstat" in p["reason"], p  # the available ones
    for n in (0, 10 ** 9):
        e, p = err(d, "StartExperiment", {"definition": definition("g", iterations=n)})
        assert e == M + "InvalidExperiment" and p["field"] == "Experiment.Iterations", p
    e, p = err(d, "StartExperiment", {"definition": definition("g"), "iterations": 0})
    assert e == "org.varlink.service.InvalidParameter" and p["parameter"] == "iterations", p
    e, p = err(d, "StartExperiment", {"definition": definition("g"), "text": "[Experiment]\nGuest=g\n"})
    assert e == M + "InvalidExperiment" and "exactly one" in p["reason"], p
    e, p = err(d, "StartExperiment", {"text": "[Experiment]\nGuest=g\nIterations=x\n"})
    assert e == M + "InvalidExperiment" and p["field"] == "Experiment.Iterations" and "definition:3" in p["reason"], p
    e, p = err(d, "StartExperiment", {"text": "[Experiment]\nGuest=nosuch\n"})
    assert e == M + "NoSuchVM", (e, p)
    e, p = err(d, "StartExperiment", {"text": "[Experiment]\nGuest=g\n[Workload]\nWhen=none\n"})
    assert e == M + "InvalidState" and p["name"] == "g", (e, p)      # the guest does not run
    for method in ("DescribeExperiment", "CancelExperiment", "DeleteExperiment"):
        e, p = err(d, method, {"id": "20260101-000000-abcdef"})
        assert e == M + "NoSuchExperiment", (method, e)
    e, _ = err(d, "GetExperimentResults", {"id": "x"})
    assert e == "org.varlink.service.ExpectedMore", e
    # Only the privileged may start or cancel; everybody may list.
    replies = calls_as(d.socket, [(M + "StartExperiment", {"text": "[Experiment]\nGuest=g\n"}),
                                  (M + "ListExperiments", {})], uid=65534)
    assert replies[0]["error"] == "org.varlink.service.PermissionDenied", replies[0]
    assert replies[1]["parameters"]["experiments"] == [], replies[1]
    # Refused starts are not ends: the experiment series stay at 0.
    v = varlink_series(d)
    assert v["memvisor_experiments_running"] == 0 and v["memvisor_experiments_stored"] == 0, v
    assert all(v['memvisor_experiments_ended_total{state="%s"}' % st] == 0
               for st in ("completed", "failed", "cancelled")), v
    assert v['memvisor_experiment_iterations_total{vm="g"}'] == 0, v
    assert d.running()


# ---- the exporter's experiment series -------------------------------------------------------------------------


def test_experiment_series(daemons, workdir):
    """memvisor_experiment*: a firmware-only guest (no agent, nothing to run in it) does an Operation=none
    experiment of 2 iterations taking only the time and host-vmstat sets; GetMetrics and the exporter then show
    2 iterations for it and one completed end; a cancelled one counts as cancelled, its iterations too; the store
    gauges follow DeleteExperiment. The scrape passes promtool."""
    port = free_port()
    d = daemons(name="xm", config="[Exporter]\nListenAddress=127.0.0.1:%d\n" % port)
    d.exporter_port = port
    d.wait_for_log("Prometheus exporter listening on http://127.0.0.1:%d/metrics" % port)
    disk = workdir / "xm-blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "m.vm").write_text("[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\nStopTimeoutSec=1s\n"
                                   "GuestAgent=no\n" % disk)
    ok(d, "Reload")
    s = series(scrape(d)[2])
    assert s['memvisor_experiment_iterations_total{vm="m"}'] == 0, s      # 0 before the first: rate() sees it
    assert s["memvisor_experiments_running"] == 0 and s["memvisor_experiments_stored"] == 0, s
    assert s["memvisor_experiments_stored_bytes"] == 0, s
    ok(d, "StartVM", {"name": "m"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "m"})["vm"]["state"] == "running", timeout=60, what="running")

    measure = {"Measure": {"Counters": ["time", "host-vmstat"]}}
    _, final = run_more(d, {"definition": definition("m", iterations=2, when="none", extra=measure)})
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "completed" and p["iterationsDone"] == 2, p
    xid = p["id"]
    files = sum(f.stat().st_size for f in (d.state_dir / "experiments" / xid).iterdir() if f.is_file())
    # Read per request: no sampler tick to wait for.
    v = varlink_series(d)
    body = scrape(d)[2]
    for s in (v, series(body)):
        assert s['memvisor_experiment_iterations_total{vm="m"}'] == 2, s
        assert s['memvisor_experiments_ended_total{state="completed"}'] == 1, s
        assert s['memvisor_experiments_ended_total{state="failed"}'] == 0, s
        assert s['memvisor_experiments_ended_total{state="cancelled"}'] == 0, s
        assert s["memvisor_experiments_running"] == 0, s
        assert s["memvisor_experiments_stored"] == 1, s
        assert s["memvisor_experiments_stored_bytes"] == files > 0, (s, files)
    assert "# TYPE memvisor_experiment_iterations_total counter" in body
    assert "# TYPE memvisor_experiments_running gauge" in body
    promtool_clean(body)

    # Running, then cancelled: the gauge while it runs, the end by its state, its iterations counted.
    slow = definition("m", iterations=50, when="none", extra=measure)
    slow["Experiment"]["Settle"] = "1s"
    busy = ok(d, "StartExperiment", {"definition": slow})["id"]
    assert varlink_series(d)["memvisor_experiments_running"] == 1
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": busy})["experiment"]["iterationsDone"] >= 1, timeout=60,
             what="an iteration of the slow experiment")
    ok(d, "CancelExperiment", {"id": busy})
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": busy})["experiment"]["state"] == "cancelled", timeout=60,
             what="cancelled")
    done = ok(d, "DescribeExperiment", {"id": busy})["experiment"]["iterationsDone"]
    s = series(scrape(d)[2])
    assert s['memvisor_experiment_iterations_total{vm="m"}'] == 2 + done, (s, done)
    assert s['memvisor_experiments_ended_total{state="cancelled"}'] == 1, s
    assert s['memvisor_experiments_ended_total{state="completed"}'] == 1, s
    assert s["memvisor_experiments_running"] == 0 and s["memvisor_experiments_stored"] == 2, s

    # The store gauges follow a deletion; the counters do not go back.
    ok(d, "DeleteExperiment", {"id": xid})
    ok(d, "DeleteExperiment", {"id": busy})
    s = series(scrape(d)[2])
    assert s["memvisor_experiments_stored"] == 0 and s["memvisor_experiments_stored_bytes"] == 0, s
    assert s['memvisor_experiment_iterations_total{vm="m"}'] == 2 + done, s
    assert s['memvisor_experiments_ended_total{state="completed"}'] == 1, s
    promtool_clean(scrape(d)[2])
    assert d.running()


# ---- the Linux test guest under TCG with its real agent -------------------------------------------------------


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def real_guest(d, test_guest, name="xg", accel="tcg"):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text(
        "[VM]\nMemory=512M\nVCPUs=2\nAccelerator=%s\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
        "Append=console=ttyS0 quiet\nStopTimeoutSec=3s\nBalloon=yes\n" % (accel, test_guest, test_guest))
    ok(d, "Reload")
    ok(d, "StartVM", {"name": name})

    def agent_ready():
        a = ok(d, "DescribeVM", {"name": name})["vm"].get("agent") or {}
        return a.get("state") == "ready"

    wait_for(agent_ready, timeout=180, what="the guest agent")


def run_more(d, params, on_iteration=None, timeout=300):
    """StartExperiment with more: (the replies, the final reply)."""
    replies = []
    with VarlinkConnection(str(d.socket), timeout=timeout) as c:
        c.send(M + "StartExperiment", params, more=True)
        while True:
            r = c.receive()
            replies.append(r)
            if "error" in r or not r.get("continues"):
                return replies, r
            if on_iteration and r["parameters"].get("iteration"):
                on_iteration(r["parameters"])


def tracefs_mounted():
    return os.path.isdir("/sys/kernel/tracing/events") or os.path.isdir("/sys/kernel/debug/tracing/events")


@pytest.fixture(scope="module")
def tracefs():
    """tracefs at /sys/kernel/tracing, as systemd mounts it on a host; mounted here when it is not (root)."""
    if not tracefs_mounted() and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)
    return tracefs_mounted()


def test_experiment_real_guest(daemons, ctl, test_guest, tracefs):
    d = daemons(name="xr")
    real_guest(d, test_guest)

    # The baseline: nothing provoked, memvisor-touch after it, 3 iterations, one of them warm-up.
    params = {"definition": definition("xg", iterations=3, extra={"Experiment": {"WarmUp": 1}})}
    replies, final = run_more(d, params)
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "completed" and p["iterationsDone"] == 3 and p["iterationsPlanned"] == 3, p
    xid = p["id"]
    streamed = [r["parameters"]["iteration"] for r in replies if r["parameters"].get("iteration")]
    assert [it["iteration"] for it in streamed] == [1, 2, 3]
    assert [it["warmUp"] for it in streamed] == [True, False, False]

    rows = results(d, xid)
    assert rows == streamed
    pages = (16 << 20) // 4096
    for it in rows:
        c, u = it["counters"], it["unavailable"]
        assert c["time.iteration_usec"] > 0 and c["time.workload_usec"] > 0 and c["time.provoke_usec"] >= 0, c
        assert c["workload.pages_touched"] == pages, c
        assert c["guest.vmstat.pgfault"] >= pages, c        # the guest's own view of the touch
        assert "guest.tlb_shootdowns" in c or "guest.tlb_shootdowns" in u
        assert it["workload"]["pages_touched"] == pages
        assert it["seed"] == it["iteration"] and it["workload"]["parameters"]["seed"] == it["seed"], it["workload"]
        # Under TCG there are no KVM exits or statistics: unavailable with the reason, never 0.
        assert "host.kvm_exit.total" not in c and "TCG" in u["host.kvm_exit"], u
        assert "TCG" in u["host.kvm_stats"], u
        assert "host.vmstat.pgmigrate_success" in c, sorted(c)
        if tracefs:
            assert c["host.tlb_flush.host"] > 0, c
        else:
            assert "host.tlb_flush" in u, u

    x = ok(d, "DescribeExperiment", {"id": xid})
    assert x["experiment"]["state"] == "completed" and x["experiment"]["guest"] == "xg", x["experiment"]
    assert x["experiment"]["operation"] == "none" and x["experiment"]["warmUp"] == 1
    stats = {s["counter"]: s for s in x["statistics"]}
    s = stats["workload.pages_touched"]
    assert s["n"] == 2 and s["median"] == pages and s["unit"] == "pages", s
    assert stats["workload.bytes_touched"]["unit"] == "bytes"
    assert stats["time.workload_usec"]["unit"] == "us"
    assert x["provenance"]["guest"]["name"] == "xg" and x["provenance"]["guest"]["accelerator"] == "tcg"
    assert x["provenance"]["guest"]["kernelRelease"], x["provenance"]["guest"]
    assert x["provenance"]["kernel"]["release"], x["provenance"]["kernel"]
    assert x["definition"]["Experiment"]["Guest"] == "xg"
    assert {u["counter"] for u in x["unavailable"]} >= {"host.kvm_exit", "host.kvm_stats"}, x["unavailable"]
    # Files: definition, provenance, 3 lines, the summary.
    xdir = d.state_dir / "experiments" / xid
    assert len((xdir / "iterations.jsonl").read_text().splitlines()) == 3
    assert json.loads((xdir / "summary.json").read_text())["statistics"]

    # The same through memvisorctl: a file, plain progress lines off a terminal, then show and export.
    xfile = d.workdir / "baseline.experiment"
    xfile.write_text("[Experiment]\nGuest=xg\nIterations=2\nSettle=100ms\n[Workload]\nWhen=after\n"
                     "Program=%s\nArguments=--mib=8 --write\n" % TOUCH)
    r = ctl("experiment", "run", str(xfile), address=d.socket, timeout=300)
    assert r.returncode == 0 and "completed" in r.stdout, r.stdout + r.stderr
    cid = [x["id"] for x in ok(d, "ListExperiments", {"guest": "xg"})["experiments"]][-1]
    r = ctl("experiment", "show", cid, address=d.socket, timeout=60)
    assert r.returncode == 0 and "workload.pages_touched" in r.stdout and "TCG" in r.stdout, r.stdout + r.stderr
    r = ctl("experiment", "export", cid, "--format=csv", address=d.socket, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].startswith("experiment,guest,variant,iteration"), r.stderr
    assert any(",workload.pages_touched,2048," in l for l in lines), lines[:5]

    # A balloon provocation: inflate to 384M and back, the workload during it.
    params = {"definition": definition("xg", iterations=2, op="balloon", when="during",
                                       extra={"Provoke": {"Target": "384M", "Return": "512M", "Timeout": "60s"}})}
    _, final = run_more(d, params)
    assert "error" not in final and final["parameters"]["state"] == "completed", final
    rows = results(d, final["parameters"]["id"])
    for it in rows:
        assert it["counters"]["time.balloon_target_usec"] > 0, it["counters"]
        assert it["counters"]["host.balloon.moved_bytes"] >= 100 << 20, it["counters"]
        assert it["counters"]["time.provoke_usec"] >= it["counters"]["time.balloon_target_usec"]

    # While one runs: GuestBusy for the other state-changing calls on that guest; cancel keeps what was recorded.
    slow = definition("xg", iterations=50, when="none")
    slow["Experiment"]["Settle"] = "2s"
    started = ok(d, "StartExperiment", {"definition": slow})
    assert started["state"] == "running", started
    busy = started["id"]
    for method, params in (("StopVM", {"name": "xg"}), ("SetBalloon", {"name": "xg", "targetBytes": 256 << 20}),
                           ("StartExperiment", {"definition": definition("xg")}),
                           ("GuestExec", {"name": "xg", "argv": ["/bin/true"]})):
        e, p = err(d, method, params)
        assert e == M + "GuestBusy" and p == {"name": "xg", "experiment": busy}, (method, e, p)
    r = ctl("stop", "xg", address=d.socket)
    assert r.returncode != 0 and busy in r.stderr, r.stderr
    assert ok(d, "GuestCounters", {"name": "xg"})        # readings stay allowed
    e, _ = err(d, "DeleteExperiment", {"id": busy})
    assert e == M + "ExperimentRunning"
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": busy})["experiment"]["iterationsDone"] >= 1, timeout=60,
             what="an iteration of the slow experiment")
    ok(d, "CancelExperiment", {"id": busy})
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": busy})["experiment"]["state"] == "cancelled", timeout=60,
             what="cancelled")
    info = ok(d, "DescribeExperiment", {"id": busy})["experiment"]
    assert info["iterationsDone"] >= 1 and len(results(d, busy)) == info["iterationsDone"], info
    e, p = err(d, "CancelExperiment", {"id": busy})
    assert e == M + "ExperimentNotRunning" and p["state"] == "cancelled", p

    # kill -9 of memvisord at iteration 3 of 5: after the restart the experiment reads interrupted, its completed
    # iterations intact and exportable; the guest is re-adopted.
    long = definition("xg", iterations=5, when="none")
    long["Experiment"]["Settle"] = "1s"
    seen = []

    def on_iteration(p):
        seen.append(p["iterationsDone"])
        if p["iterationsDone"] == 2:
            os.kill(d.pid, signal.SIGKILL)

    try:
        run_more(d, {"definition": long}, on_iteration=on_iteration)
    except Exception:
        pass                    # the connection dies with the daemon
    d.wait_exit()
    d.start()
    xs = [x for x in ok(d, "ListExperiments", {"guest": "xg"})["experiments"] if x["iterationsPlanned"] == 5]
    assert len(xs) == 1, xs
    x = xs[0]
    assert x["state"] == "interrupted" and x["iterationsDone"] in (2, 3), x
    assert "daemon stopped" in x["reason"], x
    rows = results(d, x["id"])
    assert [it["iteration"] for it in rows] == list(range(1, x["iterationsDone"] + 1))
    r = ctl("experiment", "export", x["id"], "--format=csv", address=d.socket, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("experiment,"), r.stderr
    wait_for(lambda: (ok(d, "DescribeVM", {"name": "xg"})["vm"].get("agent") or {}).get("state") == "ready",
             timeout=60, what="the agent after re-adoption")

    # The guest killed mid-experiment: the experiment fails with the reason and keeps its iterations.
    long = definition("xg", iterations=20, when="none")
    long["Experiment"]["Settle"] = "1s"
    started = ok(d, "StartExperiment", {"definition": long})
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": started["id"]})["experiment"]["iterationsDone"] >= 1,
             timeout=60, what="an iteration")
    os.kill(ok(d, "DescribeVM", {"name": "xg"})["vm"]["pid"], signal.SIGKILL)
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": started["id"]})["experiment"]["state"] == "failed",
             timeout=60, what="failed")
    x = ok(d, "DescribeExperiment", {"id": started["id"]})["experiment"]
    assert "xg" in x["reason"] and x["iterationsDone"] >= 1, x
    assert d.running()


def test_experiment_full_state_directory(daemons, workdir, test_guest):
    """A state directory on a 1 MiB tmpfs: an experiment whose records do not fit fails cleanly with the reason;
    what is on disk reads back (no torn line)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    d = daemons(name="xf", start=False)
    d.state_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d.state_dir)], check=True)
    try:
        d.start()
        real_guest(d, test_guest, name="xf")
        # Fill the tmpfs but for a little.
        filler = d.state_dir / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"x" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(filler, max(0, os.path.getsize(filler) - 160 * 1024))
        reply = d.call(M + "StartExperiment", {"definition": definition("xf", iterations=200, when="none")})
        if "error" in reply:
            assert reply["error"] in (M + "ExperimentFailed", M + "ExperimentStoreFailed"), reply
        else:
            xid = reply["parameters"]["id"]
            wait_for(lambda: ok(d, "DescribeExperiment", {"id": xid})["experiment"]["state"] != "running",
                     timeout=240, what="the experiment to end")
            x = ok(d, "DescribeExperiment", {"id": xid})["experiment"]
            assert x["state"] == "failed" and "space" in x["reason"], x
            assert len(results(d, xid)) == x["iterationsDone"]
        assert d.running()
        ok(d, "StopVM", {"name": "xf"})
        wait_for(lambda: ok(d, "DescribeVM", {"name": "xf"})["vm"]["state"] == "stopped", timeout=30, what="stop")
        d.stop()
    finally:
        if d.running():
            d.stop()
        subprocess.run(["umount", "-l", str(d.state_dir)], check=False)


def test_experiment_daemon_stops_mid_run(daemons):
    """SIGTERM while an experiment runs (a firmware-only guest: no agent, host counters only): memvisord exits 0
    (under the sanitizer build, with no leak report) and the next start reads the experiment interrupted, its
    iterations intact; a second daemon start keeps it so."""
    d = daemons(name="xs")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    # Require= a set this guest cannot give (TCG: no KVM exits); Tracepoints= the kernel does not have; a workload
    # with no agent: refused before anything runs, naming what was wrong.
    e, p = err(d, "StartExperiment", {"definition": definition("g", when="none", extra={
        "Measure": {"Counters": ["time", "host-kvm-exits"], "Require": ["host-kvm-exits"]}})})
    assert e == M + "CounterUnavailable" and p["counter"] == "host-kvm-exits" and "TCG" in p["reason"], (e, p)
    if os.path.isdir("/sys/kernel/tracing/events/tlb"):
        e, p = err(d, "StartExperiment", {"definition": definition("g", when="none", extra={
            "Measure": {"Counters": ["time"], "Tracepoints": ["tlb:no_such_event"]}})})
        assert e == M + "InvalidExperiment" and p["field"] == "Measure.Tracepoints", (e, p)
        assert "tlb:tlb_flush" in p["reason"], p        # what the system has
    e, p = err(d, "StartExperiment", {"definition": definition("g")})
    assert e == M + "InvalidExperiment" and p["field"] == "Workload.When" and "agent" in p["reason"], (e, p)
    assert ok(d, "ListExperiments", {})["experiments"] == []     # nothing was created

    spec = definition("g", iterations=100, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
    spec["Experiment"]["Settle"] = "300ms"
    xid = ok(d, "StartExperiment", {"definition": spec})["id"]
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": xid})["experiment"]["iterationsDone"] >= 2, timeout=30,
             what="two iterations")
    assert d.stop() == 0
    d.start()
    x = ok(d, "DescribeExperiment", {"id": xid})
    info = x["experiment"]
    assert info["state"] == "interrupted" and info["iterationsDone"] >= 2, info
    assert len(results(d, xid)) == info["iterationsDone"]
    stats = {s["counter"]: s for s in x["statistics"]}
    assert stats["time.iteration_usec"]["n"] == info["iterationsDone"], stats["time.iteration_usec"]
    assert "host.vmstat.pgmigrate_success" in stats
    assert d.stop() == 0
    d.start()
    assert ok(d, "DescribeExperiment", {"id": xid})["experiment"]["state"] == "interrupted"


def test_experiment_results_stream_in_batches(daemons):
    """300 iterations of a baseline on a firmware-only guest: GetExperimentResults streams them in batches of at
    most 64, in order, the last in the final reply; the statistics count all 300."""
    d = daemons(name="xm")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    spec = definition("g", iterations=300, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
    spec["Experiment"]["Settle"] = "0"
    _, final = run_more(d, {"definition": spec})
    assert final["parameters"]["state"] == "completed", final
    xid = final["parameters"]["id"]
    sizes = []
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "GetExperimentResults", {"id": xid}, more=True)
        seen = []
        while True:
            r = c.receive()
            batch = r["parameters"]["iterations"]
            sizes.append(len(batch))
            seen += [it["iteration"] for it in batch]
            if not r.get("continues"):
                break
    assert seen == list(range(1, 301)), seen[:5]
    assert max(sizes) <= 64 and len(sizes) >= 5, sizes
    stats = {s["counter"]: s for s in ok(d, "DescribeExperiment", {"id": xid})["statistics"]}
    assert stats["time.iteration_usec"]["n"] == 300


# ---- under KVM: exits by reason and KVM statistics -------------------------------------------------------------


def host_nodes():
    return sorted(int(n[4:]) for n in os.listdir("/sys/devices/system/node") if n.startswith("node") and n[4:].isdigit())


def test_experiment_kvm_exits(daemons, test_guest, tracefs):
    """Where /dev/kvm exists: the Linux test guest under KVM, memvisor-touch faults its memory in first; then one
    iteration that breaks the mappings again and touches the memory (two host nodes: a migration From=0 To=1, the
    touch after it; one node: nothing provoked, a fresh touch during it, first touches of guest pages are EPT
    violations too). EPT_VIOLATION (VMX) or npf (SVM) exits are counted on its vCPUs, the total is at least the
    named reasons, and pf_taken rises. Require= makes a missing counter fail the start: it cannot pass without
    KVM. Elsewhere it is skipped with the reason."""
    why = kvm_usable()
    if why:
        pytest.skip("KVM exits and statistics need KVM: %s" % why)
    if not tracefs:
        pytest.skip("tracefs is not mounted at /sys/kernel/tracing: kvm:kvm_exit cannot be counted")
    d = daemons(name="xk")
    real_guest(d, test_guest, name="xk", accel="kvm")
    assert ok(d, "DescribeVM", {"name": "xk"})["vm"].get("accelerator") == "kvm"
    r = ok(d, "GuestExec", {"name": "xk", "argv": [TOUCH, "--mib=128", "--write"],
                            "timeoutUSec": 120 * 1000000})["result"]
    assert r["exited"] and r["exitCode"] == 0, r

    nodes = host_nodes()
    if len(nodes) >= 2:
        x = definition("xk", iterations=1, op="migrate", when="after", args=("--mib=128", "--write"),
                       extra={"Provoke": {"From": str(nodes[0]), "To": str(nodes[1])}})
    else:
        x = definition("xk", iterations=1, op="none", when="during", args=("--mib=256", "--write"))
    x["Measure"] = {"Counters": ["host-kvm-exits", "host-kvm-stats", "workload", "time"],
                    "Require": ["host-kvm-exits", "host-kvm-stats"]}
    _, final = run_more(d, {"definition": x}, timeout=600)
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "completed" and p["iterationsDone"] == 1, p
    [it] = results(d, p["id"])
    c, u = it["counters"], it["unavailable"]
    assert "host.kvm_exit" not in u and "host.kvm_stats" not in u, u
    reason = "EPT_VIOLATION" if "host.kvm_exit.EPT_VIOLATION" in c else "npf"
    assert c.get("host.kvm_exit." + reason, 0) > 0, sorted(k for k in c if k.startswith("host.kvm_exit"))
    per_vcpu = [v for k, v in c.items() if k.startswith("host.kvm_exit.%s.vcpu" % reason)]
    assert len(per_vcpu) == 2 and sum(per_vcpu) == c["host.kvm_exit." + reason], per_vcpu
    named = sum(v for k, v in c.items()
                if k.startswith("host.kvm_exit.") and k.count(".") == 2
                and k not in ("host.kvm_exit.total", "host.kvm_exit.other"))
    assert c["host.kvm_exit.total"] >= named, (c["host.kvm_exit.total"], named)
    assert c["host.kvm_stats.vcpu.pf_taken"] > 0, sorted(k for k in c if k.startswith("host.kvm_stats.vcpu."))
    assert d.running()


def test_experiment_results_over_output_bound(daemons):
    """A batch of records larger than [Varlink] MaxOutputSize= closes that client's connection (its output bound),
    and nothing else: the daemon goes on (a regression: the stream was freed twice)."""
    d = daemons(name="xo", config="[Varlink]\nMaxOutputSize=16K\n")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    spec = definition("g", iterations=100, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
    spec["Experiment"]["Settle"] = "0"
    xid = ok(d, "StartExperiment", {"definition": spec})["id"]
    wait_for(lambda: ok(d, "DescribeExperiment", {"id": xid})["experiment"]["state"] == "completed", timeout=60,
             what="completed")
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "GetExperimentResults", {"id": xid}, more=True)
        c.assert_closed(timeout=10)
    assert d.running()
    assert ok(d, "DescribeExperiment", {"id": xid})["experiment"]["iterationsDone"] == 100


def test_experiment_compare(daemons, ctl):
    """Two baselines on a firmware-only guest (host counters only), compared: CompareExperiments states its seed
    and resamples, gives every counter measured in both a ratio, a p-value adjusted by Holm and Cliff's delta, is
    reproducible for a seed, takes counter globs; memvisorctl experiment compare prints the table (and --json the
    object); experiments of different operations (one re-labelled on disk while the daemon is stopped) are
    refused, as are bad resamples and unknown ids."""
    d = daemons(name="xc")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    ids = []
    for _ in range(2):
        spec = definition("g", iterations=7, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
        spec["Experiment"]["Settle"] = "0"
        spec["Experiment"]["WarmUp"] = 1
        _, final = run_more(d, {"definition": spec})
        assert final["parameters"]["state"] == "completed", final
        ids.append(final["parameters"]["id"])
    a, b = ids

    cmp = ok(d, "CompareExperiments", {"a": a, "b": b})["comparison"]
    assert cmp["a"] == {"id": a, "iterations": 7, "warmUp": 1} and cmp["b"]["id"] == b, cmp
    assert cmp["operation"] == "none" and cmp["seed"] == 1 and cmp["resamples"] == 10000, cmp
    assert cmp["level"] == 0.95 and cmp["alpha"] == 0.05 and cmp["counterGlobs"] is None, cmp
    assert isinstance(cmp["provenanceDifferences"], list), cmp
    assert not [x for x in cmp["provenanceDifferences"] if x["key"] in ("collectedAt", "collectedRealtimeUSec")]
    rows = {c["counter"]: c for c in cmp["comparisons"]}
    it = rows["time.iteration_usec"]
    assert it["nA"] == 6 and it["nB"] == 6 and it["unit"] == "us", it
    assert it["ratio"] == it["medianB"] / it["medianA"] and it["ratioCILow"] <= it["ratioCIHigh"], it
    assert -1 <= it["cliffsDelta"] <= 1 and 0 <= it["p"] <= it["pHolm"] <= 1, it
    assert all(c["significant"] == (c["pHolm"] < 0.05) for c in rows.values()), rows
    assert any(k.startswith("host.vmstat.") for k in rows), sorted(rows)

    again = ok(d, "CompareExperiments", {"a": a, "b": b, "seed": 9, "resamples": 500, "counters": ["time.*"]})
    again2 = ok(d, "CompareExperiments", {"a": a, "b": b, "seed": 9, "resamples": 500, "counters": ["time.*"]})
    assert again == again2, (again, again2)
    g = again["comparison"]
    assert g["seed"] == 9 and g["resamples"] == 500 and g["counterGlobs"] == ["time.*"], g
    assert g["comparisons"] and all(c["counter"].startswith("time.") for c in g["comparisons"]), g

    e, p = err(d, "CompareExperiments", {"a": a, "b": b, "resamples": 0})
    assert e == M + "InvalidExperiment" and p["field"] == "resamples", (e, p)
    e, p = err(d, "CompareExperiments", {"a": a, "b": "20260101-000000-abcdef"})
    assert e == M + "NoSuchExperiment" and p["id"] == "20260101-000000-abcdef", (e, p)

    r = ctl("experiment", "compare", a, b, address=d.socket, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "COUNTER" in r.stdout and "RATIO [95% CI]" in r.stdout and "P (HOLM)" in r.stdout, r.stdout
    assert "time.iteration_usec" in r.stdout and "seed 1, 10000 resamples" in r.stdout, r.stdout
    r = ctl("experiment", "compare", a, b, "--counter=time.*", "--seed=3", "--resamples=200", "--json",
            address=d.socket, timeout=60)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)["comparison"]
    assert j["seed"] == 3 and j["resamples"] == 200 and all(c["counter"].startswith("time.") for c in j["comparisons"])
    r = ctl("experiment", "compare", a, address=d.socket)
    assert r.returncode == 2, r
    r = ctl("experiment", "show", a, "--seed=3", address=d.socket)
    assert r.returncode == 2 and "--seed=" in r.stderr, r

    # A caller that hangs up while the worker computes: the comparison is dropped, the daemon goes on.
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "CompareExperiments", {"a": a, "b": b, "resamples": 100000})
    assert ok(d, "CompareExperiments", {"a": a, "b": b, "counters": ["time.iteration_usec"]})["comparison"]

    # The same experiment labelled as a migration (on disk, the daemon stopped): refused with the reason. The
    # daemon stops while a comparison is computed: it waits for the counter in flight and exits cleanly.
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "CompareExperiments", {"a": a, "b": b, "resamples": 100000})
        time.sleep(0.2)
        assert d.stop() == 0
    src = d.state_dir / "experiments" / b
    other = "20260101-000000-c0ffee"
    dst = d.state_dir / "experiments" / other
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    definition_json = json.loads((dst / "definition.json").read_text())
    definition_json.setdefault("Provoke", {})["Operation"] = "migrate"
    (dst / "definition.json").write_text(json.dumps(definition_json))
    state = json.loads((dst / "state.json").read_text())
    state["id"] = other
    (dst / "state.json").write_text(json.dumps(state))
    # … and once as a balloon inflation: two different operations.
    other2 = "20260101-000000-c0ffe2"
    dst2 = d.state_dir / "experiments" / other2
    subprocess.run(["cp", "-a", str(dst), str(dst2)], check=True)
    definition_json["Provoke"]["Operation"] = "balloon"
    (dst2 / "definition.json").write_text(json.dumps(definition_json))
    state["id"] = other2
    (dst2 / "state.json").write_text(json.dumps(state))
    d.start()
    e, p = err(d, "CompareExperiments", {"a": other2, "b": other})
    assert e == M + "InvalidExperiment" and p.get("field") is None, (e, p)
    assert "migrate" in p["reason"] and "balloon" in p["reason"], p
    r = ctl("experiment", "compare", other2, other, address=d.socket, timeout=60)
    assert r.returncode == 1 and "same operation" in r.stderr, (r.returncode, r.stderr)
    # A baseline (Operation=none) against an operation is its control: compared.
    c = ok(d, "CompareExperiments", {"a": a, "b": other, "resamples": 100})["comparison"]
    assert c["operation"] == "migrate" and c["baseline"] == "a", c


# ---- memvisorctl experiment plot (issue 16) --------------------------------------------------------------------


def test_experiment_plot(daemons, ctl, workdir):
    """Two baselines on a firmware-only guest (one warm-up iteration each) plotted by memvisorctl: an SVG that
    xml.etree parses, of the size asked and with one box per experiment and counter, a PNG of the size asked in its
    IHDR, the lines over the iterations; the default selection of counters refused when it is too large. With
    MEMVISOR_KEEP_PLOTS=DIR the plots are copied there to look at."""
    import shutil
    import struct
    import xml.etree.ElementTree as ET

    r = ctl("experiment", "plot", "x", "-o", workdir / "probe.svg", address="unix:/nonexistent")
    if "built without plotting" in r.stderr:
        assert r.returncode == 1, r
        pytest.skip("memvisorctl was built without cairo (-Dplot=disabled)")

    d = daemons(name="xp")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    ids = []
    for name in ("baseline-a", "baseline-b"):
        spec = definition("g", iterations=6, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
        spec["Experiment"].update({"Settle": "0", "WarmUp": 1, "Name": name})
        _, final = run_more(d, {"definition": spec})
        assert final["parameters"]["state"] == "completed", final
        ids.append(final["parameters"]["id"])
    stats = ok(d, "DescribeExperiment", {"id": ids[0]})["statistics"]
    time_counters = [s["counter"] for s in stats if s["counter"].startswith("time.") and s["n"] > 0]
    assert "time.iteration_usec" in time_counters, stats

    def plot(*args):
        return ctl("experiment", "plot", *args, address="unix:%s" % d.socket, timeout=60)

    svg, png, lines = workdir / "plot.svg", workdir / "plot.png", workdir / "lines.png"
    r = plot(*ids, "--counter=time.*", "-o", svg, "--width=900", "--height=600")
    assert r.returncode == 0, r
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    assert (root.get("width"), root.get("height")) == ("900px", "600px"), root.attrib
    # The boxes are the only shapes filled at PLOT_BOX_OPACITY (src/ctl/ctl-plot.h).
    assert svg.read_text().count("fill-opacity:0.35;") == 2 * len(time_counters), time_counters

    r = plot(*ids, "--counter=time.*", "--counter=host.vmstat.pgfault", "-o", png, "--width=1000",
             "--height=700")
    assert r.returncode == 0, r
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", head
    assert struct.unpack(">II", head[16:24]) == (1000, 700), head

    r = plot(*ids, "--counter=time.iteration_usec", "--counter=time.provoke_usec", "--over-time", "-o", lines)
    assert r.returncode == 0, r
    assert struct.unpack(">II", lines.read_bytes()[16:24]) == (840, 320)     # two panels side by side

    # Without --counter= the first experiment's statistics: refused with the reason when more than 12.
    r = plot(ids[0], "-o", workdir / "all.svg")
    if len(stats) > 12:
        assert r.returncode == 2 and "at most 12 panels" in r.stderr, r
        assert not (workdir / "all.svg").exists()
    else:
        assert r.returncode == 0, r
    r = plot(ids[0], "--counter=nosuch.*", "-o", workdir / "none.svg")
    assert r.returncode == 2 and "No counter" in r.stderr, r
    r = plot(ids[0], "-o", workdir / "plot.pdf")
    assert r.returncode == 2 and ".svg" in r.stderr, r
    r = plot("20260101-000000-abcdef", "-o", workdir / "x.svg")
    assert r.returncode == 1 and "NoSuchExperiment" in r.stderr, r

    keep = os.environ.get("MEMVISOR_KEEP_PLOTS")
    if keep:
        for f in (svg, png, lines):
            shutil.copy(f, keep)


def test_experiment_compare_over_output_bound(daemons):
    """A CompareExperiments reply larger than [Varlink] MaxOutputSize= closes that client's connection and nothing
    else (a regression: the comparison was freed twice); a oneway call costs nothing and ends the call."""
    d = daemons(name="xq", config="[Varlink]\nMaxOutputSize=4K\n")
    fake_guest(d)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", timeout=30, what="running")
    ids = []
    for _ in range(2):
        spec = definition("g", iterations=5, when="none", extra={"Measure": {"Counters": ["time", "host-vmstat"]}})
        spec["Experiment"]["Settle"] = "0"
        ids.append(ok(d, "StartExperiment", {"definition": spec})["id"])
        wait_for(lambda: [x["state"] for x in ok(d, "ListExperiments", {})["experiments"]][-1] == "completed",
                 timeout=60, what="completed")   # (DescribeExperiment's provenance alone is over 4K)
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "CompareExperiments", {"a": ids[0], "b": ids[1], "resamples": 100})
        c.assert_closed(timeout=30)
    with VarlinkConnection(str(d.socket), timeout=30) as c:
        c.send(M + "CompareExperiments", {"a": ids[0], "b": ids[1]}, oneway=True)
        c.send(M + "ListExperiments", {})
        assert len(c.receive()["parameters"]["experiments"]) == 2
    assert d.running()
