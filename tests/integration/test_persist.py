# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guests' records over restarts of memvisord (STATE_DIR/guests/NAME/balloon.json and migrations.json),
with memvisord killed by SIGKILL in the middle of things: a balloon target, a running balloon schedule, a
page migration, DefineVM --replace in a loop; and a state directory that fills up while a schedule records
steps. After each: no guest lost or doubled, nothing acknowledged lost, every client got an answer or a
closed connection, and the daemon serves.

Firmware-only guests (SeaBIOS waits on a blank disk) have QMP and the virtio-balloon device but no balloon
driver: the balloon never moves, so targets and steps are what the daemon recorded, not what the guest did.
The migration test gives the daemon a two-node view of this one-node host (a private mount namespace with a
made-up /sys/devices/system/node): each move then runs migrate_pages(2) for real on the guest's QEMU, which
the kernel refuses (node 1 has no memory), and the move's report (result "failed") is recorded as any other."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from memvisor_it import wait_for
from test_faults import AsyncCall, answered_quickly, fill, small_state_dir  # noqa: F401 - a fixture
from test_vms import Events, alive, describe, firmware_vm, ok, state_event, write_vm

M = "io.memvisor.Manager."
MiB = 1 << 20


def kill9(d):
    os.kill(d.pid, signal.SIGKILL)
    d.wait_exit()


def balloon(d, name):
    return ok(d, "GetBalloon", {"name": name})["balloon"]


def steps(d, name):
    return ok(d, "GetBalloonSteps", {"name": name})["steps"]


def record(d, name, file="balloon.json"):
    return json.loads((d.state_dir / "guests" / name / file).read_text())


def qemus_named(name):
    """Pids of processes whose command line has -name NAME (or guest=NAME)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        for i, a in enumerate(argv[:-1]):
            if a == b"-name" and argv[i + 1].split(b",")[0] in (name.encode(), b"guest=" + name.encode()):
                if alive(int(p)):
                    found.append(int(p))
    return found


def start_guest(d, ev, name):
    ok(d, "StartVM", {"name": name})
    ev.wait(state_event(name, "running"))
    return describe(d, name)["pid"]


def test_balloon_target_survives_kill_9(daemons, workdir):
    """The issue's case: a target set, then SIGKILL: after the restart the target is the one set (not the boot
    memory), the balloon's actual size is asked of QEMU again, and nothing is sent to QEMU on the way."""
    d = daemons(name="ptarget", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    pid = start_guest(d, ev, "fw")
    ok(d, "SetBalloon", {"name": "fw", "targetBytes": 40 * MiB})
    assert balloon(d, "fw")["targetBytes"] == 40 * MiB
    assert record(d, "fw")["targetBytes"] == 40 * MiB, "saved before SetBalloon was answered"
    ev.close()
    kill9(d)
    assert alive(pid)

    d.start()
    b = balloon(d, "fw")
    assert b["tracking"] and b["targetBytes"] == 40 * MiB, b
    assert "restored from its record" in d.log_text()
    wait_for(lambda: "actualBytes" in balloon(d, "fw"), timeout=30, what="the actual size known again")
    assert balloon(d, "fw")["actualBytes"] == 64 * MiB          # no driver: it never moved
    assert describe(d, "fw")["pid"] == pid and qemus_named("fw") == [pid]
    ok(d, "StopVM", {"name": "fw"})
    wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=30, what="stopped")


def test_schedule_resumes_after_kill_9(daemons, workdir):
    """SIGKILL while a schedule runs: after the restart the schedule runs on from the step due (same QEMU),
    the steps recorded before are all there, the one cut short says so, and new steps follow."""
    d = daemons(name="psched", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    pid = start_guest(d, ev, "fw")
    sched = {"name": "fw", "mode": "oscillate", "fromBytes": 40 * MiB, "toBytes": 56 * MiB,
             "everyUSec": 700000, "count": 1000}
    ok(d, "SetBalloonSchedule", sched)
    assert record(d, "fw")["schedule"]["count"] == 1000, "saved before SetBalloonSchedule was answered"
    # steps are saved in the background as they happen (no client waits for them): wait until some are
    wait_for(lambda: len(record(d, "fw")["steps"]) >= 4, timeout=30, what="4 steps saved")
    ev.close()
    kill9(d)
    before = record(d, "fw")["steps"]           # what the dead daemon had saved
    assert len(before) >= 4

    d.start()
    b = balloon(d, "fw")
    assert b["schedule"]["origin"] == "api" and b["schedule"]["count"] == 1000, b
    assert b["schedule"]["nextStep"] >= before[-1]["index"] + 1, (b, before[-1])
    assert b["targetBytes"] in (40 * MiB, 56 * MiB)
    assert "resumed at step" in d.log_text()
    after = steps(d, "fw")
    assert [(s["index"], s["realtimeUSec"], s["targetBytes"]) for s in after[:len(before)]] == \
        [(s["index"], s["realtimeUSec"], s["targetBytes"]) for s in before]
    assert all(s["finished"] for s in after[:len(before)])
    if not before[-1]["finished"]:
        assert "memvisord restarted" in after[len(before) - 1]["error"], after[len(before) - 1]
    wait_for(lambda: len(steps(d, "fw")) >= len(before) + 2, timeout=30, what="new steps after the restart")
    new = steps(d, "fw")[len(before):]
    assert new[0]["index"] > before[-1]["index"]
    assert describe(d, "fw")["pid"] == pid and qemus_named("fw") == [pid]
    ok(d, "CancelBalloonSchedule", {"name": "fw"})
    assert "schedule" not in record(d, "fw")
    ok(d, "StopVM", {"name": "fw"})
    wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=30, what="stopped")


def test_schedule_of_a_guest_that_stopped_meanwhile_is_interrupted(daemons, workdir):
    """SIGKILL of memvisord, then the guest's QEMU ends before memvisord is back: the steps and the target are
    back as records, the schedule is shown as interrupted with when and why, and nothing resumes."""
    d = daemons(name="pintr", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    pid = start_guest(d, ev, "fw")
    ok(d, "SetBalloonSchedule", {"name": "fw", "mode": "ramp", "fromBytes": 56 * MiB, "toBytes": 40 * MiB,
                                 "everyUSec": 500000, "count": 500})
    wait_for(lambda: len(record(d, "fw")["steps"]) >= 3, timeout=30, what="3 steps saved")
    ev.close()
    kill9(d)
    n = len(record(d, "fw")["steps"])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), timeout=10, what="QEMU gone")

    d.start()
    assert describe(d, "fw")["state"] != "running"
    b = balloon(d, "fw")
    assert "schedule" not in b
    i = b["scheduleInterrupted"]
    assert i["mode"] == "ramp" and i["count"] == 500 and i["origin"] == "api", i
    assert "stopped while memvisord was not running" in i["interruptedReason"], i
    assert i["interruptedRealtimeUSec"] > 0
    assert len(steps(d, "fw")) == n
    assert "was interrupted before step" in d.log_text()
    # the interruption itself is kept: it is still shown after another restart
    d.stop()
    d.start()
    assert balloon(d, "fw")["scheduleInterrupted"]["interruptedReason"] == i["interruptedReason"]


def test_undefine_removes_records(daemons, workdir):
    d = daemons(name="pundef")
    ok(d, "DefineVM", {"name": "gone", "ini": firmware_vm(workdir)})
    ev = Events(d)
    start_guest(d, ev, "gone")
    ok(d, "SetBalloon", {"name": "gone", "targetBytes": 48 * MiB})
    wait_for(lambda: (d.state_dir / "guests" / "gone" / "balloon.json").exists(), timeout=10, what="saved")
    ok(d, "StopVM", {"name": "gone"})
    ev.wait(state_event("gone", "stopped"), timeout=30)
    ev.close()
    ok(d, "UndefineVM", {"name": "gone"})
    assert not (d.state_dir / "guests" / "gone").exists()
    # a new guest of the name starts without them
    ok(d, "DefineVM", {"name": "gone", "ini": firmware_vm(workdir)})
    assert ok(d, "GetBalloonSteps", {"name": "gone"})["steps"] == []


def test_corrupt_record_is_set_aside(daemons, workdir):
    """A damaged balloon.json: logged with its path and the reason, moved aside to balloon.json.corrupt, the
    guest still loads and its migration record is not affected; a temporary file of a save that was killed
    half way is removed."""
    d = daemons(name="pcorrupt", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    gdir = d.state_dir / "guests" / "fw"
    gdir.mkdir(parents=True)
    (gdir / "balloon.json").write_text('{"version": 1, "name": "fw", "steps": [')
    (gdir / ".balloon.json.tmp.999").write_text('{"version": 1, "na')     # a save killed half way
    (gdir / "migrations.json").write_text(json.dumps({
        "version": 1, "name": "fw", "nextId": 3,
        "totals": {"migrations": 2, "failures": 0, "pagesMoved": 10, "bytesMoved": 40960, "migrateUSec": 5},
        "reports": [{"id": 2, "name": "fw", "result": "done"}]}))
    d.start()
    assert describe(d, "fw")["name"] == "fw"
    log = d.log_text()
    assert "balloon.json, loading the guest without it: not valid JSON" in log, log
    assert str(gdir / "balloon.json") in log
    assert (gdir / "balloon.json.corrupt").exists() and not (gdir / "balloon.json").exists()
    assert not (gdir / ".balloon.json.tmp.999").exists()
    assert ok(d, "ListMigrations", {"name": "fw"})["migrations"] == [{"id": 2, "name": "fw", "result": "done"}]


# ---- migrations ------------------------------------------------------------------------------------

def fake_two_nodes(workdir):
    """A copy of /sys/devices/system/node with a node 1 (no CPUs, no memory the kernel knows of)."""
    src = "/sys/devices/system/node"
    if sorted(n for n in os.listdir(src) if n.startswith("node")) != ["node0"]:
        pytest.skip("made for a one-node host")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    fake = workdir / "fake-node"
    for n in ("node0", "node1"):
        (fake / n).mkdir(parents=True)
    with open(src + "/node0/meminfo") as f:
        meminfo = f.read()
    with open(src + "/node0/cpulist") as f:
        (fake / "node0" / "cpulist").write_text(f.read())
    (fake / "node1" / "cpulist").write_text("\n")
    (fake / "node0" / "meminfo").write_text(meminfo)
    (fake / "node1" / "meminfo").write_text(meminfo.replace("Node 0", "Node 1"))
    (fake / "node0" / "distance").write_text("10 20\n")
    (fake / "node1" / "distance").write_text("20 10\n")
    for f in ("online", "possible", "has_memory", "has_normal_memory", "has_cpu"):
        (fake / f).write_text("0-1\n")
    return fake


def in_two_nodes(fake):
    return lambda argv: ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                         'mount --bind "$0" /sys/devices/system/node && exec "$@"', str(fake)] + argv


def test_kill_9_during_a_migration(daemons, workdir):
    """A ping-pong of page migrations on a real guest, SIGKILL after some moves were reported: after the
    restart the reports the client was told of are there (ListMigrations), ids go on from there, the guest is
    adopted once, and the daemon serves. The client saw its connection close."""
    fake = fake_two_nodes(workdir)
    d = daemons(name="pmig", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start(wrapper=in_two_nodes(fake))
    assert len(ok(d, "GetTopology")["nodes"]) == 2
    ev = Events(d)
    pid = start_guest(d, ev, "fw")
    ev.close()

    conn = d.connect(timeout=60)
    conn.send(M + "MigratePages", {"name": "fw", "between": "0,1", "count": 1000, "everyUSec": 300000,
                                   "settleUSec": 0}, more=True)
    told = []
    while len(told) < 3:
        msg = conn.receive(timeout=60)
        assert "error" not in msg, msg
        p = msg["parameters"]
        if p.get("phase") == "moved":
            told.append(p["report"])
    kill9(d)
    conn.assert_closed(timeout=10)
    assert alive(pid)

    d.start(wrapper=in_two_nodes(fake))
    kept = ok(d, "ListMigrations", {"name": "fw"})
    assert not kept["inProgress"]
    ids = [r["id"] for r in kept["migrations"]]
    for r in told:
        assert r in kept["migrations"], (r, ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert describe(d, "fw")["pid"] == pid and qemus_named("fw") == [pid]
    answered_quickly(d, "ListVMs")

    # ids go on after the restart (the kernel refuses the move: the error carries the report)
    reply = d.call(M + "MigratePages", {"name": "fw", "from": "0", "to": "1", "settleUSec": 0})
    assert reply.get("error") == M + "MigrationFailed", reply
    rid = reply["parameters"]["report"]["id"]
    assert rid > max(ids), reply
    assert ok(d, "ListMigrations", {"name": "fw"})["migrations"][-1]["id"] == rid
    assert record(d, "fw", "migrations.json")["reports"][-1]["id"] == rid
    ok(d, "StopVM", {"name": "fw"})
    wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=30, what="stopped")


# ---- DefineVM --replace ------------------------------------------------------------------------------

def test_kill_9_during_define_replace(daemons, workdir):
    """A client replaces a running guest's definition in a loop (two definitions taking turns); SIGKILL in the
    middle. After the restart the guest exists once, with one of the two definitions whole (the last one
    acknowledged, or the one after it), its QEMU is re-adopted and not started a second time."""
    d = daemons(name="prepl")
    a = firmware_vm(workdir, "[Balloon]\nFloor=16M\n")
    b = a.replace("Floor=16M", "Floor=24M")
    ok(d, "DefineVM", {"name": "rep", "ini": a})
    ev = Events(d)
    pid = start_guest(d, ev, "rep")
    ev.close()

    acked = []
    stop = threading.Event()

    def loop():
        i = 0
        try:
            with d.connect(timeout=10) as c:
                while not stop.is_set():
                    floor = "16M" if i % 2 == 0 else "24M"
                    reply = c.call(M + "DefineVM", {"name": "rep", "ini": a if floor == "16M" else b,
                                                    "replace": True})
                    if "error" in reply:
                        break
                    acked.append(floor)
                    i += 1
        except Exception:       # noqa: BLE001 - the connection ends with the daemon
            pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    wait_for(lambda: len(acked) >= 50, timeout=30, what="50 replaces")
    kill9(d)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert alive(pid)
    # A save the kill cut short may have left its temporary file; the next start removes it.
    leftover = d.state_dir / "vms" / "rep.vm.tmp.999999"
    leftover.write_text("[VM]\n")

    d.start()
    vms = [v["name"] for v in ok(d, "ListVMs")["vms"]]
    assert vms.count("rep") == 1, vms
    assert not leftover.exists() and not list((d.state_dir / "vms").glob("*.tmp.*"))
    d.wait_for_log("Removed %s, left over from a save that was interrupted." % leftover)
    floor = describe(d, "rep")["definition"]["Balloon"]["Floor"]
    size = {"16M": 16 * MiB, "24M": 24 * MiB}
    last = acked[-1]
    nxt = "24M" if last == "16M" else "16M"
    assert floor in (size[last], size[nxt]), (floor, last)
    assert describe(d, "rep")["pid"] == pid and qemus_named("rep") == [pid]
    ok(d, "StartVM", {"name": "rep"})          # running already: nothing to do, no second QEMU
    assert describe(d, "rep")["pid"] == pid and qemus_named("rep") == [pid]
    ok(d, "StopVM", {"name": "rep"})
    wait_for(lambda: describe(d, "rep")["state"] == "stopped", timeout=30, what="stopped")


# ---- a full state directory ---------------------------------------------------------------------------

def test_full_state_directory_while_a_schedule_records(daemons, workdir, small_state_dir):  # noqa: F811
    """The state directory fills up while a schedule records steps: the failure is logged and shown
    (recordError), the schedule runs on, the daemon serves, the file on disk stays whole (the last one
    written) and no temporary file is left; with room again the record is saved again."""
    d = daemons(name="pfull", start=False)
    d.state_dir = small_state_dir
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ev = Events(d)
    start_guest(d, ev, "fw")
    ok(d, "SetBalloonSchedule", {"name": "fw", "mode": "oscillate", "fromBytes": 40 * MiB, "toBytes": 56 * MiB,
                                 "everyUSec": 200000, "count": 100000})
    gdir = small_state_dir / "guests" / "fw"
    wait_for(lambda: len(steps(d, "fw")) >= 3, timeout=30, what="3 steps")
    filler = fill(small_state_dir)
    d.wait_for_log("keeping it in memory only: No space left on device", timeout=20)
    wait_for(lambda: "recordError" in balloon(d, "fw"), timeout=10, what="recordError shown")
    assert "No space left on device" in balloon(d, "fw")["recordError"]
    n = len(steps(d, "fw"))
    wait_for(lambda: len(steps(d, "fw")) >= n + 3, timeout=30, what="the schedule goes on")
    answered_quickly(d, "ListVMs")
    on_disk = json.loads((gdir / "balloon.json").read_text())      # whole, the last one that fit
    assert on_disk["name"] == "fw" and on_disk["schedule"]["count"] == 100000
    assert [p.name for p in gdir.iterdir() if p.name.startswith(".")] == []
    assert d.running

    filler.unlink()
    wait_for(lambda: "recordError" not in balloon(d, "fw"), timeout=20, what="saved again")
    assert "is saved again" in d.log_text()
    assert len(json.loads((gdir / "balloon.json").read_text())["steps"]) > len(on_disk["steps"])
    ok(d, "CancelBalloonSchedule", {"name": "fw"})
    ok(d, "StopVM", {"name": "fw"})
    ev.wait(state_event("fw", "stopped"), timeout=30)
    ev.close()


# ---- policy decisions ----------------------------------------------------------------------------------

def test_policy_decisions_survive_kill_9(daemons, workdir):
    """The host-pressure policy's decisions (from an injected host meminfo under pressure) are saved in the
    background as they are made; after SIGKILL and a restart the saved ones are all there, in order, and new
    ones follow."""
    from test_balloon import write_meminfo
    meminfo = workdir / "meminfo-pdec"
    write_meminfo(meminfo, 1, 10)       # MemAvailable 1G of 16G: pressure
    conf = ("[Balloon]\nStatsIntervalSec=1s\nPolicy=yes\nPolicyIntervalSec=1s\nMaxStep=4M\nGuestReserve=0\n"
            "HostMeminfoPath=%s\n" % meminfo)
    d = daemons(name="pdec", start=False)
    write_vm(d, "fw", firmware_vm(workdir, "[Balloon]\nFloor=16M\n"))
    d.start(config=conf)
    ev = Events(d)
    pid = start_guest(d, ev, "fw")
    ev.close()
    def n_saved():
        try:
            return len(record(d, "fw")["decisions"])
        except FileNotFoundError:
            return 0
    wait_for(lambda: n_saved() >= 3, timeout=40, what="3 decisions saved")
    kill9(d)
    saved = record(d, "fw")["decisions"]

    d.start(config=conf)
    key = [(x["realtimeUSec"], x["action"], x["reason"], x["targetBytes"]) for x in saved]
    got = ok(d, "GetBalloonDecisions", {"name": "fw"})["decisions"]
    assert [(x["realtimeUSec"], x["action"], x["reason"], x["targetBytes"]) for x in got[:len(saved)]] == key
    assert all(x["host"]["memAvailableBytes"] == 1 << 30 and x["host"]["availableLow"] for x in got[:len(saved)])
    wait_for(lambda: len(ok(d, "GetBalloonDecisions", {"name": "fw"})["decisions"]) > len(saved), timeout=20,
             what="new decisions after the restart")
    assert describe(d, "fw")["pid"] == pid and qemus_named("fw") == [pid]
    ok(d, "StopVM", {"name": "fw"})
    wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=30, what="stopped")
