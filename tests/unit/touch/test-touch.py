#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisor-touch on the host: its JSON for every pattern in read and write mode, determinism for a seed, the
usage errors (exit 2), a runtime failure (exit 1) and that the binary is static (no ELF interpreter).

    test-touch.py PATH-TO-memvisor-touch
"""

import json
import os
import struct
import subprocess
import sys

MiB = 1 << 20
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(touch, *args):
    return subprocess.run([touch] + list(args), capture_output=True, text=True, timeout=120)


def result(touch, *args):
    r = run(touch, *args)
    if r.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(args), r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    if len(lines) != 1:
        raise AssertionError("%s: expected one line of JSON, got %r" % (" ".join(args), r.stdout))
    return json.loads(lines[0])


def is_static(path):
    """True when the ELF file has no PT_INTERP program header (nothing loads it: statically linked)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF" or ident[4] != 2:
            raise AssertionError("%s: not a 64-bit ELF file" % path)
        end = "<" if ident[5] == 1 else ">"
        phoff, = struct.unpack_from(end + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(end + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


def main():
    touch = sys.argv[1]
    page = os.sysconf("SC_PAGE_SIZE")
    pages = 8 * MiB // page

    check(is_static(touch), "memvisor-touch is not statically linked")

    # Every pattern, read and write, two threads, two passes.
    for pattern, extra, units, pages_per_pass in (
            ("sequential", [], pages, pages),
            ("random", [], pages, pages),
            ("stride", ["--stride=%d" % (2 * page)], pages // 2, pages // 2),
            ("stride", ["--stride=512"], 8 * MiB // 512, pages)):
        for mode in ("--write", "--read"):
            what = "%s %s %s" % (pattern, " ".join(extra), mode)
            j = result(touch, "--mib=8", "--threads=2", "--passes=2", "--pattern=" + pattern, mode, *extra)
            p = j["parameters"]
            check(p["mib"] == 8 and p["threads"] == 2 and p["pattern"] == pattern and p["passes"] == 2 and
                  p["mode"] == mode[2:] and p["page_size"] == page, what + ": parameters %r" % p)
            check(j["passes"] == 2 and len(j["pass_ns"]) == 2 and all(t > 0 for t in j["pass_ns"]),
                  what + ": passes %r %r" % (j["passes"], j["pass_ns"]))
            check(j["pages_touched"] == pages_per_pass * 2, what + ": pages_touched %d, expected %d"
                  % (j["pages_touched"], pages_per_pass * 2))
            check(j["accesses"] == units * 2, what + ": accesses %d, expected %d" % (j["accesses"], units * 2))
            check(j["bytes_touched"] == 2 * 8 * MiB, what + ": bytes_touched %d" % j["bytes_touched"])
            th = j["per_thread"]
            check(len(th) == 2 and sum(t["bytes"] for t in th) == j["bytes_touched"] and
                  all(t["ns"] > 0 and t["throughput_mib_s"] > 0 for t in th), what + ": per_thread %r" % th)
            check(j["elapsed_ns"] >= sum(j["pass_ns"]), what + ": elapsed_ns below the sum of the passes")
            # One fault per page in the first pass (no THP without --hugepages; reads map the zero page).
            check(j["minflt_first_pass"] >= pages_per_pass,
                  what + ": minflt_first_pass %d < %d pages" % (j["minflt_first_pass"], pages_per_pass))
            check(j["rusage"]["minflt"] >= j["minflt_first_pass"] and j["rusage"]["majflt"] >= 0,
                  what + ": rusage %r" % j["rusage"])
            check(len(j["checksum"]) == 16 and len(j["first_units"]) == 8, what + ": checksum/first_units")
            if pattern != "random":
                check(j["first_units"] == list(range(8)), what + ": first_units %r" % j["first_units"])

    # Determinism: the same seed gives the same order and checksum, another seed another order.
    a = result(touch, "--mib=8", "--threads=2", "--pattern=random", "--seed=7")
    b = result(touch, "--mib=8", "--threads=2", "--pattern=random", "--seed=7")
    c = result(touch, "--mib=8", "--threads=2", "--pattern=random", "--seed=8")
    check(a["checksum"] == b["checksum"] and a["order_hash"] == b["order_hash"] and
          a["first_units"] == b["first_units"], "same seed, different result")
    check(a["order_hash"] != c["order_hash"] and a["first_units"] != c["first_units"],
          "another seed, same random order")
    check(a["checksum"] != c["checksum"], "another seed, same checksum")
    check(sorted(a["first_units"]) != a["first_units"], "random order starts sorted: %r" % a["first_units"])
    r1 = result(touch, "--mib=8", "--pattern=random", "--read", "--seed=3")
    r2 = result(touch, "--mib=8", "--pattern=random", "--read", "--seed=3")
    r3 = result(touch, "--mib=8", "--pattern=random", "--read", "--seed=4")
    check(r1["checksum"] == r2["checksum"] and r1["checksum"] != r3["checksum"],
          "read checksums do not follow the seed")
    s1 = result(touch, "--mib=8", "--seed=1")
    s2 = result(touch, "--mib=8", "--seed=2")
    check(s1["order_hash"] == s2["order_hash"] and s1["checksum"] != s2["checksum"],
          "sequential: the order must not depend on the seed, the values written must")

    # A duration instead of passes; explicit CPUs; huge pages.
    d = result(touch, "--mib=4", "--duration=0.3")
    check(d["passes"] >= 1 and len(d["pass_ns"]) == d["passes"] and d["elapsed_ns"] >= 300e6 and
          d["parameters"]["passes"] is None and d["parameters"]["duration_s"] == 0.3,
          "duration: %r" % {k: d[k] for k in ("passes", "elapsed_ns")})
    e = result(touch, "--mib=4", "--threads=2", "--cpus=0,0")
    check([t["cpu"] for t in e["per_thread"]] == [0, 0] and e["parameters"]["cpus"] == [0, 0],
          "--cpus=0,0: %r" % e["per_thread"])
    h = result(touch, "--mib=8", "--hugepages")
    check(h["parameters"]["hugepages"] is True and h["pages_touched"] == pages, "--hugepages: %r" % h["parameters"])

    # Usage errors: exit 2, a message on stderr, nothing on stdout.
    for args in ([], ["--mib=0"], ["--mib=x"], ["--mib=8", "--pattern=zigzag"], ["--mib=8", "--read", "--write"],
                 ["--mib=8", "--passes=2", "--duration=1"], ["--mib=8", "--stride=64"],
                 ["--mib=8", "--pattern=stride", "--stride=12"], ["--mib=8", "--threads=0"],
                 ["--mib=8", "--threads=2", "--cpus=0"], ["--mib=8", "--cpus=a"], ["--mib=8", "--page-size=3000"],
                 ["--mib=8", "--passes=0"], ["--mib=8", "--duration=-1"], ["--mib=8", "--bogus"], ["--mib=8", "extra"],
                 ["--mib=1073741824"], ["--mib=8", "--seed"]):
        r = run(touch, *args)
        check(r.returncode == 2 and r.stderr.startswith("memvisor-touch: ") and r.stdout == "",
              "%r: exit %d, stderr %r, stdout %r (expected exit 2)" % (args, r.returncode, r.stderr, r.stdout))
    r = run(touch, "--mib=4")
    check(r.returncode == 0, "--mib=4 failed")
    r = run(touch, "--mib=8", "--cpus=1023")
    check(r.returncode == 1 and "cannot pin" in r.stderr, "a CPU that does not exist: exit %d, %r"
          % (r.returncode, r.stderr))
    r = run(touch, "--help")
    check(r.returncode == 0 and "--mib=N" in r.stdout, "--help")
    r = run(touch, "--version")
    check(r.returncode == 0 and r.stdout.startswith("memvisor-touch "), "--version")

    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
