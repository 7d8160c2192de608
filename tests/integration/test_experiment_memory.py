# SPDX-License-Identifier: LGPL-2.1-or-later
"""The memory operations of issues 17 and 18 in experiments, with the real daemon and real QEMU under TCG:
Operation=hotplug grows the Linux test guest's virtio-mem device to Target= and back, its records give the time to
Target= and the sizes reached; Scope=guest-ram migrations record what move_pages(2) reported (on a one-node host
every page is asked to move to node 0, where it is: a valid, measured call, as for MigratePages); the dirty-rate
counter set gives a rate in MB/s per iteration (page-sampling works under TCG) and says why not when the mode
cannot (dirty-ring needs KVM). And the refusals at StartExperiment, each naming the field."""

import time

import pytest

from memvisor_it import wait_for
from test_experiment import err, ok, results, run_more
from test_memory import memory_vm
from test_vms import firmware_vm, wait_state, write_vm

M = "io.memvisor.Manager."
MiB = 1 << 20


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def plain(guest, op, iterations=2, settle="100ms", provoke=None, measure=None):
    d = {"Experiment": {"Guest": guest, "Iterations": iterations, "WarmUp": 0, "Settle": settle},
         "Provoke": dict({"Operation": op}, **(provoke or {})),
         "Workload": {"When": "none"},
         "Measure": dict({"Counters": ["time"]}, **(measure or {}))}
    return d


def run_ok(d, definition, iterations):
    _, final = run_more(d, {"definition": definition})
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "completed" and p["iterationsDone"] == iterations, p
    rows = results(d, p["id"])
    assert [r["iteration"] for r in rows] == list(range(1, iterations + 1)), rows
    return p["id"], rows


def test_experiment_hotplug(daemons, ctl, test_guest):
    d = daemons(name="xh")
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "vm.vm").write_text(
        "[VM]\nMemory=512M\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
        "Append=console=ttyS0 quiet\nStopTimeoutSec=3s\n[Memory]\nHotplugSize=256M\nMaxMemory=1G\n"
        % (test_guest, test_guest))
    ok(d, "Reload")
    ok(d, "StartVM", {"name": "vm"})
    wait_for(lambda: (ok(d, "DescribeVM", {"name": "vm"})["vm"].get("agent") or {}).get("state") == "ready",
             timeout=180, what="the guest agent (virtio_mem loaded)")

    # Sizes the device cannot take are refused before anything runs, naming the key.
    for provoke, field, words in (({"Target": "300M"}, "Provoke.Target", "HotplugSize="),
                                  ({"Target": "3M"}, "Provoke.Target", "block size"),
                                  ({"Target": "64M", "Return": "258M"}, "Provoke.Return", "HotplugSize=")):
        e, p = err(d, "StartExperiment", {"definition": plain("vm", "hotplug", provoke=provoke)})
        assert e == M + "InvalidExperiment" and p["field"] == field and words in p["reason"], (provoke, e, p)

    xid, rows = run_ok(d, plain("vm", "hotplug", provoke={"Target": "64M", "Timeout": "60s"}), 2)
    for it in rows:
        c = it["counters"]
        assert c["host.hotplug.reached_bytes"] == 64 * MiB, c
        assert c["host.hotplug.returned_bytes"] == 0, c
        assert 0 < c["time.hotplug_target_usec"] <= c["time.provoke_usec"] < 120 * 10 ** 6, c
    # the device is back where it was, and not busy: SetHotplugMemory works again
    reply = ok(d, "SetHotplugMemory", {"name": "vm", "sizeBytes": 0})
    assert reply["hotplug"]["sizeBytes"] == 0, reply

    # memvisorctl experiment show has the new counters with their units
    r = ctl("experiment", "show", xid, address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "time.hotplug_target_usec" in r.stdout and "host.hotplug.reached_bytes" in r.stdout, r.stdout


def test_experiment_guest_ram_and_dirty_rate(daemons, workdir, ctl):
    d = daemons(name="xgd", start=False)
    write_vm(d, "fw", memory_vm(workdir, 64, "Backend=memfd\n"))
    write_vm(d, "novmem", firmware_vm(workdir))
    d.start()
    for name in ("fw", "novmem"):
        ok(d, "StartVM", {"name": name})
        wait_state(d, name, "running", timeout=60)

    # a guest without a virtio-mem device: refused naming the operation
    e, p = err(d, "StartExperiment", {"definition": plain("novmem", "hotplug", provoke={"Target": "64M"})})
    assert e == M + "InvalidExperiment" and p["field"] == "Provoke.Operation", (e, p)
    assert "HotplugSize=" in p["reason"], p
    # dirty-rate needs a settle phase of 1s at least (QEMU's shortest period)
    e, p = err(d, "StartExperiment", {"definition": plain("fw", "none", settle="500ms",
                                                          measure={"Counters": ["dirty-rate"]})})
    assert e == M + "InvalidExperiment" and p["field"] == "Experiment.Settle", (e, p)

    # Scope=guest-ram: move_pages(2) of the guest RAM alone, its figures per iteration
    _, rows = run_ok(d, plain("fw", "migrate", provoke={"From": "0", "To": "0", "Scope": "guest-ram"},
                              measure={"Counters": ["time", "host-migrate"]}), 2)
    pages = 64 * MiB // 4096
    for it in rows:
        c = it["counters"]
        asked = c["host.migrate.guest_ram.asked_pages"]
        assert 0 < asked <= pages, c
        assert c["host.migrate.guest_ram.moved_pages"] + c["host.migrate.guest_ram.failed_pages"] == asked, c
        assert c["host.migrate.guest_ram.moved_pages"] == asked, c   # to node 0, where every page is
        assert c["host.migrate.moves"] == 1, c
        assert "host.migrate.guest_ram" not in it["unavailable"], it["unavailable"]
    # the same with Scope=process is refused on one node (To= = From=)
    e, p = err(d, "StartExperiment", {"definition": plain("fw", "migrate", provoke={"From": "0", "To": "0"})})
    assert e == M + "InvalidExperiment" and p["field"] == "Provoke.To", (e, p)

    # dirty-rate, page-sampling: a rate in MB/s per iteration, measured for the 1s of Settle=
    xid, rows = run_ok(d, plain("fw", "none", settle="1s", measure={"Counters": ["time", "dirty-rate"]}), 2)
    for it in rows:
        c, u = it["counters"], it["unavailable"]
        assert isinstance(c["host.dirty_rate_mb_per_sec"], int) and c["host.dirty_rate_mb_per_sec"] >= 0, it
        assert c["host.dirty_rate.period_usec"] == 10 ** 6, c
        assert "host.dirty_rate" not in u and "dirty-ring" in u["host.dirty_rate.per_vcpu"], u
        # the measurement is in the settle phase, not in the iteration's own duration
        assert it["durationUSec"] < 10 ** 6, it
    desc = ok(d, "DescribeExperiment", {"id": xid})
    stat = [s for s in desc["statistics"] if s["counter"] == "host.dirty_rate_mb_per_sec"]
    assert len(stat) == 1 and stat[0]["n"] == 2 and stat[0]["unit"] == "MB/s", desc["statistics"]
    r = ctl("experiment", "show", xid, address=d.socket)
    assert r.returncode == 0 and "host.dirty_rate_mb_per_sec" in r.stdout and "MB/s" in r.stdout, r.stdout
    r = ctl("experiment", "export", xid, "--format=csv", address=d.socket)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if ",host.dirty_rate_mb_per_sec," in x]
    assert len(lines) == 2 and all(x.split(",")[-2] == "MB/s" for x in lines), r.stdout

    # dirty-ring needs KVM: with Require=, refused before it starts; without, unavailable with the reason, never 0
    e, p = err(d, "StartExperiment", {"definition": plain("fw", "none", settle="1s", measure={
        "Counters": ["time", "dirty-rate"], "DirtyRateMode": "dirty-ring", "Require": ["dirty-rate"]})})
    assert e == M + "CounterUnavailable" and p["counter"] == "dirty-rate" and "TCG" in p["reason"], (e, p)
    _, rows = run_ok(d, plain("fw", "none", iterations=1, settle="1s",
                              measure={"Counters": ["time", "dirty-rate"], "DirtyRateMode": "dirty-ring"}), 1)
    c, u = rows[0]["counters"], rows[0]["unavailable"]
    assert "host.dirty_rate_mb_per_sec" not in c and "KVM" in u["host.dirty_rate"], (c, u)

    # the daemon stopping during a measurement in the settle phase: it is ended, the experiment left as
    # interrupted, and memvisord exits cleanly (a sanitizer build would report a leak as a failed exit)
    first = ok(d, "StartExperiment", {"definition": plain("fw", "none", iterations=3, settle="5s",
                                                          measure={"Counters": ["time", "dirty-rate"]})})
    assert first["state"] == "running", first
    time.sleep(2)       # iteration 1's readings are quick: its measurement of 5s is in flight now
    assert d.stop() == 0, d.log_text()[-3000:]
    # 0 iterations: iteration 1's record waits for its measurement, which was in flight
    assert "interrupted: the daemon stops after 0 iterations" in d.log_text(), d.log_text()[-3000:]


def test_experiment_hotplug_guest_never_follows(daemons, workdir):
    """A firmware-only guest has the virtio-mem device but no driver: its size never follows. The step times out,
    the experiment fails saying so and the device is asked back to Return=; a step in flight when the daemon stops
    ends with it, cleanly."""
    d = daemons(name="xhn", start=False)
    write_vm(d, "fw", memory_vm(workdir, 64, "HotplugSize=64M\nMaxMemory=256M\n"))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running", timeout=60)

    _, final = run_more(d, {"definition": plain("fw", "hotplug", provoke={"Target": "32M", "Timeout": "2s"})})
    assert "error" not in final, final
    p = final["parameters"]
    assert p["state"] == "failed" and p["iterationsDone"] == 0, p
    assert "did not reach 33554432 bytes" in p["reason"] and "virtio_mem driver" in p["reason"], p

    def requested():
        reply = ok(d, "ExecuteMonitorCommand", {"name": "fw", "command": "query-memory-devices"})
        return [x["data"]["requested-size"] for x in reply["reply"] if x["type"] == "virtio-mem"]
    wait_for(lambda: requested() == [0], timeout=10, what="requested-size back to 0")

    first = ok(d, "StartExperiment", {"definition": plain("fw", "hotplug", provoke={"Target": "32M",
                                                                                   "Timeout": "60s"})})
    assert first["state"] == "running", first
    wait_for(lambda: requested() == [32 * MiB], timeout=10, what="the step in flight")
    assert d.stop() == 0, d.log_text()[-3000:]
    assert "interrupted: the daemon stops after 0 iterations" in d.log_text(), d.log_text()[-3000:]
