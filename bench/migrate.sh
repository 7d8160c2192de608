#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/migrate.sh [BUILDDIR] [rounds=N] [memory_mib=M]
#
# memvisord's page migration against numactl's migratepages, inside the multi-node test guest
# (tests/harness/numa/run.sh BUILDDIR bench; the guest side is bench/migrate-guest.py). See bench/README.md.
# Prints figures; never asserts them. Exit 77 when the guest cannot run here.
set -uo pipefail
src=$(readlink -f "$(dirname "$0")/..")
build=$src/build
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then build=$1; shift; fi
exec bash "$src/tests/harness/numa/run.sh" "$build" bench "$@"
