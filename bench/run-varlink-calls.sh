#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build and run bench/varlink-calls; with --perf, profile memvisord while it serves calls.
#
#   bench/run-varlink-calls.sh [--perf] [BUILDDIR] [-- ARGS FOR varlink-calls...]
#
# BUILDDIR defaults to ./build (configured with `meson setup build` if missing). With --perf, the
# whole system is recorded (perf record -a -g) while only memvisord is measured, and the report is
# filtered to this memvisord's samples: profile data in BUILDDIR/bench/varlink-calls.perf.data.

set -eu

perf=0
builddir=
while [ $# -gt 0 ]; do
        case "$1" in
        --perf) perf=1; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) if [ -z "$builddir" ]; then builddir=$1; shift; else break; fi ;;
        esac
done
builddir=${builddir:-build}
srcdir=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -f "$builddir/build.ninja" ]; then
        meson setup "$builddir" "$srcdir"
fi
ninja -C "$builddir" bench/varlink-calls memvisord

bench="$builddir/bench/varlink-calls"
if [ "$perf" = 0 ]; then
        exec "$bench" "$@"
fi

command -v perf >/dev/null || { echo "perf not found (Debian: linux-perf)" >&2; exit 1; }
data="$builddir/bench/varlink-calls.perf.data"
for mode in sequential pipelined; do
        echo "== perf: memvisord, $mode =="
        perf record -q -a -g -o "$data.$mode" -- "$bench" --only=memvisord --mode=$mode --rounds=1 --duration=5s "$@" |
                tee "$data.$mode.txt"
        # Only this run's daemon, not other memvisord processes on the machine.
        pid=$(awk '$1 == "memvisord" && $2 == "pid" { print $3; exit }' "$data.$mode.txt")
        # perf script + awk rather than `perf report --sort dso`, which drops some DSOs with --comm.
        echo "-- memvisord's samples by object --"
        perf script -i "$data.$mode" --pid="$pid" -F ip,sym,dso -G 2>/dev/null |
                awk '{ c[$NF]++; n++ } END { for (k in c) printf "%6.2f%%  %s\n", 100 * c[k] / n, k }' |
                sort -rn | head -n 10
        echo "-- memvisord's samples by symbol --"
        perf script -i "$data.$mode" --pid="$pid" -F ip,sym,dso -G 2>/dev/null |
                awk '{ c[$2 " " $NF]++; n++ } END { for (k in c) printf "%6.2f%%  %s\n", 100 * c[k] / n, k }' |
                sort -rn | head -n 30
done
