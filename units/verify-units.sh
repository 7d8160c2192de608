#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# verify-units.sh SRCDIR TEST-SERVICE MEMVISORD
# Runs `systemd-analyze verify` on every unit (the service with ExecStart= pointing at the build tree's
# memvisord), checks the tmpfiles.d snippet with systemd-tmpfiles and the D-Bus policy with xmllint when
# available. Any output from systemd-analyze is a failure. Exit 77 without systemd-analyze.
set -u
src=$1 service=$2 memvisord=$3
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed (apt-get install systemd)"; exit 77; }
[ -x "$memvisord" ] || { echo "$memvisord not built"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/memvisor-units.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cp "$service" "$dir/memvisord.service"
cp "$src/memvisord.socket" "$src/memvisord-exporter.socket" "$dir/"

status=0
out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
        memvisord.service memvisord.socket memvisord-exporter.socket 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out"
    echo "systemd-analyze verify failed (exit status $rc)"
    status=1
else
    echo "systemd-analyze verify: memvisord.service memvisord.socket memvisord-exporter.socket OK"
fi

# The service must keep exactly the capabilities src/daemon/caps.c keeps.
caps_c=$(sed -n 's/^ *{ \(CAP_[A-Z_]*\),.*/\1/p' "$src/../src/daemon/caps.c" | sort | tr '\n' ' ')
caps_unit=$(sed -n 's/^CapabilityBoundingSet=//p' "$service" | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
if [ "$caps_c" != "$caps_unit" ]; then
    echo "CapabilityBoundingSet= ($caps_unit) differs from caps_needed[] in src/daemon/caps.c ($caps_c)"
    status=1
fi

# tmpfiles.d and sysusers.d snippets, applied to an empty root: any message is a problem.
mkdir -p "$dir/root"
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    out=$(systemd-tmpfiles --root="$dir/root" --create "$src/memvisor.tmpfiles" 2>&1); rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ] || [ ! -d "$dir/root/run/memvisor/vms" ]; then
        printf '%s\n' "$out"; echo "systemd-tmpfiles failed on memvisor.tmpfiles (exit status $rc)"; status=1
    fi
fi
if command -v systemd-sysusers >/dev/null 2>&1; then
    out=$(systemd-sysusers --root="$dir/root" "$src/memvisor.sysusers" 2>&1); rc=$?
    if [ $rc -ne 0 ] || ! grep -q '^memvisor:' "$dir/root/etc/group"; then
        printf '%s\n' "$out"; echo "systemd-sysusers failed on memvisor.sysusers (exit status $rc)"; status=1
    fi
fi
if command -v xmllint >/dev/null 2>&1; then
    xmllint --noout "$src/io.memvisor.Manager1.conf" || { echo "D-Bus policy is not well-formed XML"; status=1; }
fi
exit $status
