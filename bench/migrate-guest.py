# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench/migrate, guest side (run by tests/harness/numa/run.sh BUILDDIR bench inside the 2-node test guest).

The same inner-guest memory (memory_mib, default 384 MiB, preallocated, first bound to node 0) is moved back
and forth between the two nodes, alternately by memvisord (`memvisorctl migrate --settle=0`) and by numactl's
`migratepages PID FROM TO`, rounds times each; in each round both tools move it once, the order flips every
round so that each tool moves in both directions equally often. Bytes moved are taken from our own reading
of /proc/PID/numa_maps before and after each move. Meanwhile a thread calls GetDaemonStatus in a loop.

With scopes=process,guest-ram (the default) a third tool, memvisord-guest-ram (`memvisorctl migrate
--scope=guest-ram`: move_pages(2) of the guest RAM mapping alone, in batches of 4096 pages), takes its turn in
every round too (its bytes moved are the report's pagesMoved, not the numa_maps difference), and the ratio
guest-ram / process (memvisord's whole-process migrate_pages) is printed, over the report's durationUSec
(finding the ranges, querying and moving) and over the time in the move_pages calls alone (guestRam.moveUSec);
scopes=process leaves the bench as it was.

Printed (and written to OUT/results.json): per tool the median throughput over its moves, the ratio
memvisord / migratepages (target >= 0.95) both for the kernel call alone (the daemon's durationUSec against
migratepages' wall time, which includes its exec) and end to end (memvisorctl's wall time), and the p50/p99/max
latency of the GetDaemonStatus calls made during memvisord's moves (target p99 < 10 ms), next to the same
figures with the daemon idle. Nothing is asserted: these are figures."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness", "numa"))
from numa_harness import (Varlink, ctl, log, numa_maps, params, start_daemon, start_inner,  # noqa: E402
                          stop_daemon, write_inner_vm, write_result)

MIB = 1 << 20
P = params()
BUILD = P["build"]
MEMORY_MIB = int(P.get("memory_mib", 384))
ROUNDS = int(P.get("rounds", 5))
GUEST_RAM = "guest-ram" in P.get("scopes", "process,guest-ram").split(",")
TOOLS = ("memvisord", "migratepages") + (("memvisord-guest-ram",) if GUEST_RAM else ())
summary = []
figures = {"memoryMiB": MEMORY_MIB, "rounds": ROUNDS}


def say(line):
    summary.append(line)
    log(line)


class Prober(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []       # (monotonic start, latency)
        self.stop = threading.Event()
        self.errors = 0

    def run(self):
        c = Varlink(timeout=30)
        while not self.stop.is_set():
            t0 = time.monotonic()
            r = c.call("GetDaemonStatus")
            t1 = time.monotonic()
            if "error" in r:
                self.errors += 1
            self.samples.append((t0, t1 - t0))
            time.sleep(0.002)
        c.close()

    def between(self, a, b):
        return [lat for (t, lat) in self.samples if a <= t and t + lat <= b]


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def median(xs):
    return pct(xs, 50)


def ms(x):
    return None if x is None else round(x * 1000, 2)


def where(pid):
    nodes, _, ram = numa_maps(pid)
    return nodes, ram


def move(tool, pid, src, dst):
    nodes0, _ = where(pid)
    t0 = time.monotonic()
    calls_s = guest_ram_bytes = None
    if tool.startswith("memvisord"):
        scope = ["--scope=guest-ram"] if tool == "memvisord-guest-ram" else []
        docs = ctl(BUILD, "migrate", "inner", "--from", str(src), "--to", str(dst), "--settle=0", *scope, timeout=600)
        t1 = time.monotonic()
        rep = [d for d in docs if d.get("phase") == "done"][-1]["report"]
        kernel_s = rep["durationUSec"] / 1e6
        if "guestRam" in rep:
            g = rep["guestRam"]
            calls_s = g["moveUSec"] / 1e6
            guest_ram_bytes = g["pagesMoved"] * g["ranges"][0]["pageSize"]
    else:
        p = subprocess.run(["migratepages", str(pid), str(src), str(dst)], capture_output=True, text=True, timeout=600)
        t1 = time.monotonic()
        if p.returncode != 0:
            raise RuntimeError("migratepages failed (%d): %s" % (p.returncode, p.stderr))
        kernel_s = t1 - t0
    nodes1, _ = where(pid)
    moved = max(0, nodes0.get(src, 0) - nodes1.get(src, 0))
    # guest-ram: the pages move_pages reported moved (the process's numa_maps also sees QEMU's own pages come
    # and go meanwhile)
    return {"tool": tool, "from": src, "to": dst, "bytesMoved": guest_ram_bytes if guest_ram_bytes is not None else moved,
            "bytesMovedNumaMaps": moved, "kernelSeconds": kernel_s,
            "movePagesSeconds": calls_s,
            "wallSeconds": t1 - t0, "t0": t0, "t1": t1,
            "fractionOnTarget": nodes1.get(dst, 0) / max(1, sum(nodes1.values()))}


def main():
    write_inner_vm("%dM" % MEMORY_MIB)     # the daemon reads its --vm-dir at start
    daemon = start_daemon(BUILD, log_level="notice")
    try:
        run()
    finally:
        stop_daemon(BUILD, daemon)
        write_result("results.json", {"summary": summary, "figures": figures})
    return 0


def run():
    vm, secs = start_inner(BUILD, timeout=600)
    pid = vm["pid"]
    nodes, ram = where(pid)
    say("inner guest: %d MiB preallocated in %.1f s; resident %s MiB by node (guest RAM %s)" % (
        MEMORY_MIB, secs, {n: b // MIB for n, b in nodes.items()}, {n: b // MIB for n, b in ram.items()}))

    prober = Prober()
    prober.start()
    time.sleep(2.0)
    idle_t1 = time.monotonic()
    idle = prober.between(0, idle_t1)

    moves = []
    node = 0
    for rnd in range(ROUNDS):
        order = TOOLS[rnd % len(TOOLS):] + TOOLS[:rnd % len(TOOLS)]
        if rnd % 2 == 1:
            order = tuple(reversed(order))
        for tool in order:
            m = move(tool, pid, node, 1 - node)
            node = 1 - node
            m["round"] = rnd + 1
            moves.append(m)
            say("round %d %-12s %d → %d: %6.1f MiB in %.3f s (kernel call) / %.3f s (wall), %.1f%% on target" % (
                rnd + 1, tool, m["from"], m["to"], m["bytesMoved"] / MIB, m["kernelSeconds"], m["wallSeconds"],
                100 * m["fractionOnTarget"]))
            time.sleep(0.3)
    prober.stop.set()
    prober.join(30)

    def tput(tool, key):
        xs = [m["bytesMoved"] / m[key] for m in moves if m["tool"] == tool and m.get(key)]
        return median(xs)

    res = {}
    for tool in TOOLS:
        res[tool] = {"kernelMiBps": (tput(tool, "kernelSeconds") or 0) / MIB, "wallMiBps": (tput(tool, "wallSeconds") or 0) / MIB,
                     "movePagesMiBps": (tput(tool, "movePagesSeconds") or 0) / MIB}
    r_kernel = res["memvisord"]["kernelMiBps"] / res["migratepages"]["kernelMiBps"] if res["migratepages"]["kernelMiBps"] else None
    r_wall = res["memvisord"]["wallMiBps"] / res["migratepages"]["wallMiBps"] if res["migratepages"]["wallMiBps"] else None
    during = []
    for m in moves:
        if m["tool"].startswith("memvisord"):
            during += prober.between(m["t0"], m["t1"])
    during_mp = []
    for m in moves:
        if m["tool"] == "migratepages":
            during_mp += prober.between(m["t0"], m["t1"])
    figures.update({"moves": moves, "throughputMiBps": res, "ratioKernel": r_kernel, "ratioWall": r_wall,
                    "latencyDuringMemvisordMoveMs": {"n": len(during), "p50": ms(median(during)), "p99": ms(pct(during, 99)),
                                                     "max": ms(max(during) if during else None)},
                    "latencyDuringMigratepagesMs": {"n": len(during_mp), "p50": ms(median(during_mp)),
                                                    "p99": ms(pct(during_mp, 99))},
                    "latencyIdleMs": {"n": len(idle), "p50": ms(median(idle)), "p99": ms(pct(idle, 99))},
                    "probeErrors": prober.errors})
    say("throughput (median of %d moves each), kernel call: memvisord %.1f MiB/s, migratepages %.1f MiB/s → ratio %.3f "
        "(target >= 0.95)" % (ROUNDS, res["memvisord"]["kernelMiBps"], res["migratepages"]["kernelMiBps"], r_kernel or 0))
    say("throughput end to end (memvisorctl vs migratepages wall time): %.1f vs %.1f MiB/s → ratio %.3f" % (
        res["memvisord"]["wallMiBps"], res["migratepages"]["wallMiBps"], r_wall or 0))
    if GUEST_RAM:
        g, pr, mp = res["memvisord-guest-ram"], res["memvisord"], res["migratepages"]
        r_scope = g["kernelMiBps"] / pr["kernelMiBps"] if pr["kernelMiBps"] else None
        r_calls = g["movePagesMiBps"] / pr["kernelMiBps"] if pr["kernelMiBps"] else None
        r_mp = g["kernelMiBps"] / mp["kernelMiBps"] if mp["kernelMiBps"] else None
        figures.update({"ratioGuestRamProcess": r_scope, "ratioGuestRamCallsProcess": r_calls,
                        "ratioGuestRamMigratepages": r_mp})
        say("guest-ram scope (move_pages, batches of 4096): %.1f MiB/s over durationUSec (%.1f MiB/s in the calls "
            "alone); process scope (migrate_pages) %.1f MiB/s; migratepages %.1f MiB/s → ratio guest-ram/process "
            "%.3f (calls alone %.3f), guest-ram/migratepages %.3f" % (
                g["kernelMiBps"], g["movePagesMiBps"], pr["kernelMiBps"], mp["kernelMiBps"], r_scope or 0,
                r_calls or 0, r_mp or 0))
    lat = figures["latencyDuringMemvisordMoveMs"]
    say("GetDaemonStatus during memvisord's moves: %d calls, p50 %s ms, p99 %s ms (target < 10 ms), max %s ms; "
        "idle: p50 %s ms, p99 %s ms; during migratepages: p99 %s ms; errors %d" % (
            lat["n"], lat["p50"], lat["p99"], lat["max"], figures["latencyIdleMs"]["p50"], figures["latencyIdleMs"]["p99"],
            figures["latencyDuringMigratepagesMs"]["p99"], prober.errors))


if __name__ == "__main__":
    try:
        rc = main()
    except Exception as e:  # noqa: BLE001 - reported to the host
        import traceback
        traceback.print_exc()
        write_result("results.json", {"summary": summary, "figures": figures, "error": repr(e)})
        rc = 1
    sys.exit(rc)
