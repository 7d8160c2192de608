#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the systemd test guest (see run.sh --package) as root, under systemd 252 as PID 1, on an overlay
# of the host root: installs the Debian package $DEB with dpkg as an administrator would, and checks that its
# maintainer scripts and units work under a real systemd — the sockets enabled and listening, the first
# `memvisorctl status` starting memvisord.service (socket activation, READY, the shipped unit unchanged), the
# D-Bus name on the system bus, a guest run by the packaged daemon — then purges it: the service stopped, the
# units gone from systemd.
. "$(dirname "$0")/guest-lib.sh"

echo "harness: systemd $(systemctl --version | head -n1), package $DEB"
check "the host root has no memvisor installed (the overlay starts clean)" bash -c \
    "! dpkg-query -W -f '\${db:Status-Status}' memvisor 2>/dev/null | grep -qx installed"
# dbus.socket is not up under the test unit's sysinit.target: start the bus as basic.target would.
check "system bus up" systemctl start dbus.socket dbus.service

# ---- install -----------------------------------------------------------------------------------------
# The host root this guest boots is a container image's: its /usr/sbin/policy-rc.d (exit 101) forbids
# maintainer scripts to start services, which no Debian system installed for real has; and man-db's trigger
# re-indexes every man page, minutes under TCG. Neither is the package's business.
rm -f /usr/sbin/policy-rc.d /var/lib/man-db/auto-update
CHECK_TIMEOUT=400 check "dpkg -i $(basename "$DEB")" dpkg -i "$DEB"
check "the package is installed" bash -c "dpkg-query -W -f '\${db:Status-Status}' memvisor | grep -qx installed"
check "postinst enabled the sockets" systemctl is-enabled memvisord.socket memvisord-exporter.socket
check "postinst started the varlink socket" wait_for 30 bash -c '[ "$(systemctl show -P ActiveState memvisord.socket)" = active ]'
check "postinst started the exporter socket" wait_for 30 bash -c '[ "$(systemctl show -P ActiveState memvisord-exporter.socket)" = active ]'
check "systemd loads the installed memvisord.service" test "$(prop memvisord.service LoadState)" = loaded
check "its ExecStart is the packaged daemon" bash -c "systemctl show -P ExecStart memvisord.service | grep -q 'path=/usr/sbin/memvisord'"
check "the group memvisor exists (sysusers.d)" getent group memvisor
check "/var/lib/memvisor exists (tmpfiles.d)" test -d /var/lib/memvisor

# ---- socket activation and the daemon ----------------------------------------------------------------
systemctl stop memvisord.service 2>/dev/null   # postinst may have started it; activation is checked from here
if timeout 120 memvisorctl status >"$OUT/status.txt" 2>&1; then ok "memvisorctl status answered by the packaged daemon"
else nok "memvisorctl status answered by the packaged daemon"; cat "$OUT/status.txt"; fi
check "the call started memvisord.service" wait_for 30 bash -c '[ "$(systemctl show -P SubState memvisord.service)" = running ]'
check "it says it was socket-activated" grep -q socket-activated "$OUT/status.txt"
check "its main pid is /usr/sbin/memvisord" bash -c \
    'p=$(systemctl show -P MainPID memvisord.service); [ "$(readlink /proc/$p/exe)" = /usr/sbin/memvisord ]'
check "io.memvisor.Manager1 owned on the system bus (the packaged policy)" wait_for 30 busctl status io.memvisor.Manager1
truncate -s 1M /var/lib/memvisor/fw.img
printf '[VM]\nMemory=32M\nAccelerator=tcg\nDisk=/var/lib/memvisor/fw.img\nStopTimeoutSec=1s\n' > /etc/memvisor/vms/fw.vm
check "systemctl reload memvisord picks up a .vm file" systemctl reload memvisord
check "memvisorctl start fw" memvisorctl start fw
state_is() { [ "$(memvisorctl --json status fw | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = "$1" ]; }
check "guest fw running under the packaged daemon" wait_for 60 state_is running
check "memvisorctl stop fw" memvisorctl stop fw
check "guest fw stopped" wait_for 60 state_is stopped
rm -f /etc/memvisor/vms/fw.vm /var/lib/memvisor/fw.img

# ---- purge -------------------------------------------------------------------------------------------
check "dpkg --purge memvisor" dpkg --purge memvisor
check "the service is stopped" wait_for 30 bash -c '[ "$(systemctl show -P ActiveState memvisord.service)" != active ]'
check "no memvisord process is left" bash -c '! pgrep -x memvisord'
check "systemd no longer knows the units" bash -c \
    '[ "$(systemctl show -P LoadState memvisord.service)" = not-found ] && [ "$(systemctl show -P LoadState memvisord.socket)" = not-found ]'
check "the varlink socket is gone" test ! -e /run/memvisor/io.memvisor.Manager
check "/usr/sbin/memvisord is gone" test ! -e /usr/sbin/memvisord

finish
