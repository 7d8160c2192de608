#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/experiment-overhead.sh [BUILDDIR] [iterations=N] [memory_mib=M]
#
# What measuring costs an experiment: the same migrate ping-pong with every counter set on and with Counters=time,
# interleaved, inside the multi-node test guest (tests/harness/numa/run.sh BUILDDIR bench-experiment; the guest side
# is bench/experiment-overhead-guest.py). See bench/README.md. Prints figures; never asserts them. Exit 77 when the
# guest cannot run here.
set -uo pipefail
src=$(readlink -f "$(dirname "$0")/..")
build=$src/build
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then build=$1; shift; fi
exec bash "$src/tests/harness/numa/run.sh" "$build" bench-experiment "$@"
