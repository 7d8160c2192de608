#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run.sh BUILDDIR [test|linux|bench|bench-experiment] [KEY=VALUE...]
#
# The multi-node NUMA harness: boots the test guest (tests/guest, memvisor.mode=9p: the host root over 9p,
# read-only) with 2 virtual NUMA nodes of 1 GiB each, and runs a guest-side script there:
#   test   tests/harness/numa/guest-test.py — memvisord supervises a tiny inner guest and the script checks
#          affinity, residency, a migration 0 → 1 with its report, a ping-pong and varlink during a move;
#   linux  tests/harness/numa/linux-inner-test.py — the inner guest is the Linux test guest itself (TCG inside TCG,
#          its agent and memvisor-touch): a migrate-pingpong experiment with the workload and guest counters;
#   bench  bench/migrate-guest.py — memvisord against numactl's migratepages (bench/README.md);
#   bench-experiment  bench/experiment-overhead-guest.py — what measuring costs an experiment (bench/README.md).
# KEY=VALUE pairs go to the guest script (params.json; numbers stay numbers), e.g. rounds=5 memory_mib=384.
# Results come back in a writable 9p export (BUILDDIR/numa-harness-MODE/out: results.json, daemon.log).
# A build with -Dsanitize=true (ASan + UBSan) runs the same way: memvisord and memvisorctl write their sanitizer
# reports (LeakSanitizer's when memvisord exits on SIGTERM) to out/asan.PID (memvisorctl: out/asan-ctl.PID); any such file
# fails the run and is printed. E.g. meson test -C build-check-asan --suite numa.
# Exit 0 / 1, or 77 (skip) with a reason when the guest cannot be built or booted here.
set -uo pipefail

build=$(readlink -f "${1:?usage: run.sh BUILDDIR [test|linux|bench|bench-experiment] [KEY=VALUE...]}")
mode=${2:-test}
shift $(( $# >= 2 ? 2 : 1 ))
src=$(readlink -f "$(dirname "$0")/../../..")
PY=/usr/bin/python3

skip() { echo "SKIP: $*"; exit 77; }

case "$mode" in
test)  script=$src/tests/harness/numa/guest-test.py; timeout=1100 ;;
bench) script=$src/bench/migrate-guest.py; timeout=1500 ;;
bench-experiment) script=$src/bench/experiment-overhead-guest.py; timeout=2400 ;;
linux) script=$src/tests/harness/numa/linux-inner-test.py; timeout=3000 ;;
*) echo "unknown mode $mode (test, linux, bench or bench-experiment)"; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || skip "needs root (QEMU's 9p export of / with security_model=none)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
[ -x "$PY" ] || skip "$PY missing (the guest runs the harness script with the host's python3)"
[ -x "$build/memvisord" ] && [ -x "$build/memvisorctl" ] || { echo "memvisord/memvisorctl not built in $build"; exit 1; }
case "$build$src" in /tmp/*|/run/*) skip "the build or source tree is under /tmp or /run, which the guest hides" ;; esac
if [ "$mode" = bench ] && ! command -v migratepages >/dev/null; then
    skip "numactl's migratepages is not installed (tools/deps.sh installs numactl)"
fi

guest=$build/test-guest
if ! "$src/tests/guest/build-guest.sh" --touch "$build/src/touch/memvisor-touch" "$guest" \
    >"$build/numa-harness-guest.log" 2>&1; then
    tail -n 20 "$build/numa-harness-guest.log"
    skip "the test guest could not be built (see above)"
fi

work=$build/numa-harness-$mode
rm -rf "$work"
mkdir -p "$work/out"
chmod 0777 "$work/out"
# The guest runs memvisor.script directly: a wrapper with the exec bit, in the build tree (not on tmpfs).
printf '#!/bin/sh\nexec %s %q\n' "$PY" "$script" >"$work/guest.sh"
chmod 0755 "$work/guest.sh"
"$PY" - "$work/out/params.json" "$build" "$src" "$@" <<'PYEOF' || exit 1
import json, os, sys
out, build, src, *kv = sys.argv[1:]
p = {"build": build, "src": src, "sanitize": False}
try:
    opts = json.load(open(os.path.join(build, "meson-info", "intro-buildoptions.json")))
    p["sanitize"] = any(o.get("name") == "sanitize" and o.get("value") is True for o in opts)
except (OSError, ValueError):
    pass
for a in kv:
    k, _, v = a.partition("=")
    try:
        v = int(v)
    except ValueError:
        pass
    p[k] = v
json.dump(p, open(out, "w"))
PYEOF

console=$work/console.log
start=$(date +%s.%N)
timeout "$timeout" qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -cpu max \
    -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
    -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
    -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$work/out",mount_tag=out,security_model=none,multidevs=remap \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
    -append "console=ttyS0 quiet memvisor.mode=9p memvisor.script=$work/guest.sh memvisor.outtag=out" \
    -display none -serial file:"$console" -monitor none -no-reboot </dev/null
rc=$?
secs=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
echo "== outer guest: QEMU exit status $rc after ${secs} s (console: $console)"

exec "$PY" - "$work" "$rc" "$mode" <<'PYEOF'
import json, os, re, sys
work, rc, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = os.path.join(work, "out")

def dump(name, path, tail=150):
    print("== %s (%s)" % (name, path))
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        print("(missing: %s)" % e)
        return
    for l in lines[-tail:]:
        if l.strip():
            print(l)

console = open(os.path.join(work, "console.log"), errors="replace").read() if os.path.exists(os.path.join(work, "console.log")) else ""
m = re.findall(r"MEMVISOR-SCRIPT-EXIT=(\d+)", console)
try:
    res = json.load(open(os.path.join(out, "results.json")))
except (OSError, ValueError) as e:
    res = None
    err = str(e)

problems = []
if rc == 124:
    problems.append("the outer guest did not finish in time")
if not m:
    problems.append("the guest script never finished (no MEMVISOR-SCRIPT-EXIT line)")
elif m[-1] != "0":
    problems.append("guest script exit status %s" % m[-1])
if res is None:
    problems.append("no results.json (%s)" % err)

if mode in ("test", "linux") and res is not None:
    checks = res.get("checks", [])
    for c in checks:
        print("%s - %s" % ("ok" if c["ok"] else "not ok", c["name"]))
    bad = [c for c in checks if not c["ok"]]
    if not checks:
        problems.append("no checks ran")
    if bad:
        problems.append("%d of %d checks failed" % (len(bad), len(checks)))
        for c in bad:
            print("-- failed: %s\n   %s" % (c["name"], json.dumps(c.get("detail"))[:3000]))
    print("== figures")
    print(json.dumps(res.get("figures", {}), indent=1, sort_keys=True))
elif res is not None:
    for line in res.get("summary", []):
        print(line)
    if res.get("error"):
        problems.append(res["error"])

san = sorted(f for f in os.listdir(out) if f.startswith(("asan", "ubsan"))) if os.path.isdir(out) else []
for f in san:
    dump("sanitizer report", os.path.join(out, f), 400)
if san:
    problems.append("%d sanitizer report(s): %s" % (len(san), ", ".join(san)))

if problems:
    dump("guest console", os.path.join(work, "console.log"))
    dump("memvisord log", os.path.join(out, "daemon.log"), 200)
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
print("PASS" if mode in ("test", "linux") else "done")
PYEOF
