# SPDX-License-Identifier: LGPL-2.1-or-later
"""MeasureDirtyRate (issue 18) against the real daemon and the Linux test guest under TCG with its agent: the
page-sampling rate while memvisor-touch writes in the guest rises above the idle guest's; parameters outside
QEMU's limits refused naming the parameter and the limits; dirty-bitmap refused typed (QEMU 7.2 crashes on it under
TCG, so the daemon must not send it) with the guest still running; one measurement per guest at a time; the
memvisorctl verb; the metric series of the last measurement."""

import json
import threading
import time

from memvisor_it import NOBODY_UID, VarlinkConnection, calls_as, wait_for
from test_experiment import M, TOUCH, err, ok, real_guest, test_guest  # noqa: F401 (fixture)
from test_metrics import varlink_series


def measure(d, name, **params):
    """MeasureDirtyRate with more: (progress notifications, the final reply)."""
    notes = []
    with VarlinkConnection(str(d.socket), timeout=120) as c:
        c.send(M + "MeasureDirtyRate", dict(name=name, **params), more=True)
        while True:
            r = c.receive()
            if "error" in r or not r.get("continues"):
                return notes, r
            notes.append(r["parameters"])


def test_dirty_rate_real_guest(daemons, ctl, test_guest):  # noqa: F811
    d = daemons(name="dr")
    real_guest(d, test_guest, name="dg")

    # Privileged: it starts a measurement in QEMU.
    replies = calls_as(d.socket, [[M + "MeasureDirtyRate", {"name": "dg"}]], uid=NOBODY_UID)
    assert replies[0].get("error") == "org.varlink.service.PermissionDenied", replies

    # Bad parameters, refused before QEMU sees them.
    for params, parameter, lo, hi in (({"periodSec": 0}, "periodSec", 1, 60),
                                      ({"periodSec": 61}, "periodSec", 1, 60),
                                      ({"samplePages": 127}, "samplePages", 128, 16384),
                                      ({"samplePages": 0}, "samplePages", 128, 16384),
                                      ({"samplePages": 16385}, "samplePages", 128, 16384)):
        e, p = err(d, "MeasureDirtyRate", dict(name="dg", **params))
        assert e == M + "DirtyRateOutOfRange", (params, e, p)
        assert (p["parameter"], p["minimum"], p["maximum"]) == (parameter, lo, hi), p
        assert p["value"] == list(params.values())[0], p
    e, p = err(d, "MeasureDirtyRate", {"name": "dg", "mode": "sideways"})
    assert e == "org.varlink.service.InvalidParameter" and p["parameter"] == "mode", (e, p)
    e, p = err(d, "MeasureDirtyRate", {"name": "dg", "mode": "dirty-ring", "samplePages": 512})
    assert e == "org.varlink.service.InvalidParameter" and p["parameter"] == "samplePages", (e, p)
    e, p = err(d, "MeasureDirtyRate", {"name": "nosuch"})
    assert e == M + "NoSuchVM", e

    # dirty-bitmap and dirty-ring under TCG: refused typed, and the guest is still running.
    for mode in ("dirty-bitmap", "dirty-ring"):
        e, p = err(d, "MeasureDirtyRate", {"name": "dg", "mode": mode})
        assert e == M + "DirtyRateFailed" and "TCG" in p["reason"] and p["command"] == "calc-dirty-rate", (e, p)
    assert ok(d, "DescribeVM", {"name": "dg"})["vm"]["state"] == "running"

    # The idle guest.
    notes, r = measure(d, "dg", periodSec=3)
    assert "error" not in r, r
    idle = r["parameters"]["dirtyRate"]
    assert idle["mode"] == "page-sampling" and idle["periodSec"] == 3 and idle["samplePages"] == 512, idle
    assert notes and all(n["state"] == "measuring" and n["periodUSec"] == 3000000 for n in notes), notes

    # memvisor-touch writing 256 MiB over and over in the guest while the rate is measured.
    done = {}

    def touch():
        with VarlinkConnection(str(d.socket), timeout=150) as c:
            done["reply"] = c.call(M + "GuestExec", {"name": "dg", "timeoutUSec": 120000000,
                                                     "argv": [TOUCH, "--mib=256", "--write", "--duration=15"]})

    t = threading.Thread(target=touch)
    t.start()
    try:
        time.sleep(6)   # the mapping faulted in; now it is rewritten pass after pass
        # A second measurement meanwhile: Busy.
        results = {}

        def second():
            time.sleep(1)
            results["busy"] = d.call(M + "MeasureDirtyRate", {"name": "dg"})

        s = threading.Thread(target=second)
        s.start()
        _, r = measure(d, "dg", periodSec=3)
        s.join()
        assert "error" not in r, r
        busy = r["parameters"]["dirtyRate"]
        assert results["busy"].get("error") == M + "Busy", results["busy"]
    finally:
        t.join(timeout=150)
    assert "error" not in done["reply"], done["reply"]
    print("dirty rate idle %d MB/s, busy %d MB/s" % (idle["rateMBPerSec"], busy["rateMBPerSec"]))
    assert busy["rateMBPerSec"] > idle["rateMBPerSec"], (idle, busy)
    assert busy["rateMBPerSec"] >= 8, busy

    # The metric: the last measurement, in bytes per second.
    key = 'memvisor_guest_dirty_rate_bytes_per_second{vm="dg"}'
    wait_for(lambda: key in varlink_series(d), timeout=30, what="the dirty rate series")
    assert varlink_series(d)[key] == busy["rateMBPerSec"] * 1048576

    # memvisorctl: the result line (off a terminal: no progress line); a bad period names the parameter.
    r = ctl("memory", "dg", "dirty-rate", "--period=1", address=d.socket, timeout=60)
    assert r.returncode == 0 and "dg: dirty rate " in r.stdout and "page-sampling, 1 s" in r.stdout, r.stdout + r.stderr
    assert "\r" not in r.stdout, r.stdout
    r = ctl("memory", "dg", "dirty-rate", "--period=90", address=d.socket, timeout=60)
    assert r.returncode == 1 and "DirtyRateOutOfRange" in r.stderr and "periodSec" in r.stderr, r.stderr
    r = ctl("memory", "dg", "sideways", address=d.socket)
    assert r.returncode == 2 and "dirty-rate" in r.stderr, r.stderr
    r = ctl("memory", "dg", "dirty-rate", "--period=soon", address=d.socket)
    assert r.returncode == 2 and "--period=" in r.stderr, r.stderr
    r = ctl("memory", "dg", "dirty-rate", address=d.workdir / "nothing-here")
    assert r.returncode == 3, r.stderr
    r = ctl("--json", "memory", "dg", "dirty-rate", "--sample-pages=1024", address=d.socket, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["dirtyRate"]["samplePages"] == 1024, r.stdout

    # A guest that stops during a measurement ends it with an error.
    result = {}

    def long():
        result["r"] = measure(d, "dg", periodSec=20)[1]

    t = threading.Thread(target=long)
    t.start()
    time.sleep(2)
    ok(d, "KillVM", {"name": "dg"})
    t.join(timeout=60)
    assert result["r"].get("error") == M + "DirtyRateFailed", result["r"]
    assert "running" in result["r"]["parameters"]["reason"], result["r"]
