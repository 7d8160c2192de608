#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run.sh BUILDDIR [--package DEB]
#
# The real-systemd harness: boots the test guest (tests/guest, memvisor.mode=systemd: the host root over
# 9p under a tmpfs overlay, systemd 252 as PID 1) and runs a script in it as a oneshot unit:
#   - guest-test.sh (the default): installs the build tree's units (BUILDDIR/units/memvisord.service.test,
#     units/*.socket, the D-Bus policy, sysusers.d) into the overlay and asserts on
#     systemctl/journalctl/busctl;
#   - guest-package.sh (--package DEB, run by tests/package/run.sh): installs the Debian package DEB with
#     dpkg, as on a real Debian 12 system, and checks that its units run under systemd, then purges it.
# Results come back in a writable 9p export (BUILDDIR/systemd-harness/out). Exit 0 / 1, or 77 (skip) with a
# reason when the guest cannot be built or booted here.
set -uo pipefail

build=$(readlink -f "${1:?usage: run.sh BUILDDIR [--package DEB]}")
src=$(readlink -f "$(dirname "$0")/../../..")
here=$src/tests/harness/systemd
script=$here/guest-test.sh
deb=
limit=300
if [ "${2:-}" = --package ]; then
    deb=$(readlink -f "${3:?--package needs the .deb}")
    [ -f "$deb" ] || { echo "$deb: no such package"; exit 1; }
    script=$here/guest-package.sh
    limit=600
fi

skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (QEMU's 9p export of / with security_model=none)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
[ -x /lib/systemd/systemd ] || skip "systemd not installed on the host (the guest boots the host root)"
[ -x "$build/memvisord" ] && [ -x "$build/memvisorctl" ] || { echo "memvisord/memvisorctl not built in $build"; exit 1; }
[ -f "$build/units/memvisord.service.test" ] || { echo "$build/units/memvisord.service.test missing"; exit 1; }
case "$build" in /tmp/*|/run/*) skip "the build tree $build is under /tmp or /run, which the guest hides" ;; esac

guest=$build/test-guest
if ! "$src/tests/guest/build-guest.sh" --touch "$build/src/touch/memvisor-touch" "$guest" \
    >"$build/systemd-harness-guest.log" 2>&1; then
    tail -n 20 "$build/systemd-harness-guest.log"
    skip "the test guest could not be built (see above)"
fi

work=$build/systemd-harness${deb:+-package}
rm -rf "$work"
mkdir -p "$work/out"
chmod 0777 "$work/out"
printf 'BUILD=%q\nSRC=%q\n' "$build" "$src" > "$work/out/params"
if [ -n "$deb" ]; then
    # into the writable export: the guest sees it at /run/memvisor-out
    cp "$deb" "$work/out/" || exit 1
    printf 'DEB=%q\n' "/run/memvisor-out/$(basename "$deb")" >> "$work/out/params"
fi

console=$work/console.log
start=$(date +%s)
timeout $limit qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -cpu max \
    -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$work/out",mount_tag=out,security_model=none,multidevs=remap \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
    -append "console=ttyS0 quiet memvisor.mode=systemd memvisor.script=$script memvisor.outtag=out systemd.show_status=0 systemd.log_level=warning" \
    -display none -serial file:"$console" -monitor none -no-reboot </dev/null
rc=$?
end=$(date +%s)

echo "== guest console (QEMU exit status $rc, $((end - start)) s)"
grep -v '^\s*$' "$console" | tail -n 120
echo "== results"
cat "$work/out/results" 2>/dev/null || echo "(no results file)"

if [ $rc -eq 124 ]; then
    echo "FAIL: the guest did not finish within $limit s"
    exit 1
fi
if grep -q '^SKIP-ALL' "$work/out/results" 2>/dev/null; then
    skip "$(sed -n 's/^SKIP-ALL //p' "$work/out/results")"
fi
exitline=$(grep -a -o 'MEMVISOR-SCRIPT-EXIT=[0-9]*' "$console" | tail -n1)
[ -n "$exitline" ] || { echo "FAIL: the test script never finished (no MEMVISOR-SCRIPT-EXIT line)"; exit 1; }
if grep -q '^not ok' "$work/out/results" || [ "${exitline#*=}" != 0 ]; then
    echo "FAIL: $(grep -c '^not ok' "$work/out/results") check(s) failed, script $exitline"
    exit 1
fi
echo "PASS: $(grep -c '^ok' "$work/out/results") checks"
exit 0
