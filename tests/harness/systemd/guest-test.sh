#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the systemd test guest (see run.sh) as root, under systemd 252 as PID 1, on an overlay of the
# host root. Installs the build tree's units and checks what a user of `systemctl` would see. Each check
# prints "ok - …" or "not ok - …" to the console and to /run/memvisor-out/results.
. "$(dirname "$0")/guest-lib.sh"
ctl() { "$BUILD/memvisorctl" "$@"; }

echo "harness: systemd $(systemctl --version | head -n1), build $BUILD"

# ---- install -----------------------------------------------------------------------------------------
U=/run/systemd/system
mkdir -p $U/memvisord.service.d /etc/memvisor/vms /etc/dbus-1/system.d
cp "$BUILD/units/memvisord.service.test" $U/memvisord.service
cp "$SRC/units/memvisord.socket" "$SRC/units/memvisord-exporter.socket" $U/
# A short watchdog so that the SIGSTOP check takes seconds, not the shipped 30 s (not shorter: under TCG
# the first scrape has been seen to keep the loop busy for over 4 s).
printf '[Service]\nWatchdogSec=10s\n' > $U/memvisord.service.d/harness.conf
cp "$SRC/units/io.memvisor.Manager1.conf" /etc/dbus-1/system.d/
systemd-sysusers "$SRC/units/memvisor.sysusers"
systemd-tmpfiles --create "$SRC/units/memvisor.tmpfiles"
printf '[Daemon]\nAdminGroup=memvisor\n' > /etc/memvisor/memvisord.conf
truncate -s 1M /var/lib/memvisor/fw.img
printf '[VM]\nName=fw\nMemory=32M\nAccelerator=tcg\nDisk=/var/lib/memvisor/fw.img\nStopTimeoutSec=1s\n' \
    > /etc/memvisor/vms/fw.vm
systemctl daemon-reload
# The test unit only pulls in sysinit.target: start the system bus as basic.target would (it reads the
# policy installed above).
check "system bus up" systemctl start dbus.socket dbus.service

check "systemd loads memvisord.service without errors" test "$(prop memvisord.service LoadState)" = loaded
check "sockets start" systemctl start memvisord.socket memvisord-exporter.socket
check "the service is not running before the first call" test "$(prop memvisord.service ActiveState)" = inactive

# ---- socket activation on the first varlink call ------------------------------------------------------
if ctl status >"$OUT/status1.txt" 2>&1; then ok "first varlink call answered (memvisorctl status)"; else nok "first varlink call answered"; cat "$OUT/status1.txt"; fi
check "the first varlink call started memvisord.service" test "$(prop memvisord.service ActiveState)" = active
check "varlink socket was passed in (socket-activated)" grep -q "socket-activated" "$OUT/status1.txt"
check "READY: systemctl show says active/running" test "$(prop memvisord.service SubState)" = running
status=$(prop memvisord.service StatusText)
echo "StatusText=$status" >>"$OUT/detail.log"
check "STATUS= visible in systemctl show ($status)" bash -c "[[ '$status' == *'guests running'* ]]"
pid1=$(prop memvisord.service MainPID)

# ---- D-Bus on the system bus -------------------------------------------------------------------------
check "io.memvisor.Manager1 owned on the system bus" wait_for 10 busctl status io.memvisor.Manager1
check "busctl introspect reads cleanly" busctl introspect io.memvisor.Manager1 /io/memvisor/Manager1
check "guest object listed by busctl tree" bash -c "busctl tree --list io.memvisor.Manager1 | grep -qx /io/memvisor/Manager1/vm/fw"
check "unprivileged caller refused by the policy" bash -c \
    "! setpriv --reuid=65534 --regid=65534 --clear-groups busctl call io.memvisor.Manager1 /io/memvisor/Manager1 io.memvisor.Manager1 StartVM s fw"
check "unprivileged caller may read" setpriv --reuid=65534 --regid=65534 --clear-groups \
    busctl get-property io.memvisor.Manager1 /io/memvisor/Manager1/vm/fw io.memvisor.VM1 State

# ---- a guest, started over D-Bus ---------------------------------------------------------------------
check "StartVM over the system bus" busctl call io.memvisor.Manager1 /io/memvisor/Manager1 io.memvisor.Manager1 StartVM s fw
check "guest fw running" wait_for 60 bash -c "[ \"\$(busctl get-property io.memvisor.Manager1 /io/memvisor/Manager1/vm/fw io.memvisor.VM1 State)\" = 's \"running\"' ]"
gpid=$(busctl get-property io.memvisor.Manager1 /io/memvisor/Manager1/vm/fw io.memvisor.VM1 Pid | awk '{print $2}')
echo "guest pid $gpid" >>"$OUT/detail.log"
check "guest has a pid" alive "$gpid"
check "GetHostMemory for an unprivileged caller" setpriv --reuid=65534 --regid=65534 --clear-groups \
    busctl call io.memvisor.Manager1 /io/memvisor/Manager1 io.memvisor.Manager1 GetHostMemory
check "SetBalloon refused to an unprivileged caller" bash -c \
    "! setpriv --reuid=65534 --regid=65534 --clear-groups busctl call io.memvisor.Manager1 /io/memvisor/Manager1 io.memvisor.Manager1 SetBalloon st fw 25165824"
check "SetBalloon over the system bus" busctl call io.memvisor.Manager1 /io/memvisor/Manager1 io.memvisor.Manager1 SetBalloon st fw 25165824
check "BalloonTarget follows" wait_for 10 bash -c "[ \"\$(busctl get-property io.memvisor.Manager1 /io/memvisor/Manager1/vm/fw io.memvisor.VM1 BalloonTarget)\" = 't 25165824' ]"

# ---- journal fields ----------------------------------------------------------------------------------
check "journalctl -u memvisord VM=fw shows the guest's messages" wait_for 10 bash -c \
    "journalctl -u memvisord VM=fw -o cat --no-pager | grep -q ."
check "journal entries carry MESSAGE_ID" bash -c "journalctl -u memvisord VM=fw -o export --no-pager | grep -q '^MESSAGE_ID='"

# ---- reload ------------------------------------------------------------------------------------------
check "systemctl reload memvisord" systemctl reload memvisord
check "reload logged" wait_for 10 bash -c "journalctl -u memvisord -o cat --no-pager | grep -q 'Reloaded configuration'"
check "same main pid after reload" test "$(prop memvisord.service MainPID)" = "$pid1"

# ---- restart: the guest survives ---------------------------------------------------------------------
check "systemctl restart memvisord" systemctl restart memvisord
pid2=$(prop memvisord.service MainPID)
check "new main pid after restart ($pid1 → $pid2)" test "$pid2" != "$pid1"
check "guest survived the restart" alive "$gpid"
readopted() { # the new memvisord describes fw as running, with the old pid, re-adopted
    [ "$(ctl --json status fw | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["state"], v.get("pid"), v.get("adopted"))')" = "running $gpid True" ]
}
check "guest re-adopted with the same pid" wait_for 10 readopted

# ---- watchdog: a stopped daemon is restarted ---------------------------------------------------------
kill -STOP "$pid2"
check "SIGSTOPped daemon restarted by the watchdog" wait_for 60 bash -c \
    "p=\$(systemctl show -P MainPID memvisord); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid2 ] && [ \"\$(systemctl show -P SubState memvisord)\" = running ]"
check "the watchdog timeout was recorded" bash -c "journalctl -b --no-pager -o cat | grep -qi 'watchdog timeout'"
check "NRestarts counts it" test "$(prop memvisord.service NRestarts)" -ge 1
check "guest survived the watchdog restart" alive "$gpid"

# ---- exporter socket: the first scrape starts the daemon ---------------------------------------------
systemctl stop memvisord.service
check "daemon stopped (sockets stay)" test "$(prop memvisord.service ActiveState)" = inactive
check "guest survives systemctl stop (StopGuestsOnExit=no)" alive "$gpid"
python3 - <<'PY' >"$OUT/scrape.txt" 2>&1
import socket
s = socket.create_connection(("127.0.0.1", 9098), timeout=30)
s.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
s.settimeout(30)
try:
    print(s.recv(200).decode(errors="replace").splitlines()[0])
except Exception as e:
    print("no HTTP answer:", e)
PY
check "a connection to the exporter socket started memvisord.service" wait_for 10 test "$(prop memvisord.service ActiveState)" = active
check "the first scrape is answered over HTTP ($(head -c 60 "$OUT/scrape.txt"))" grep -q '^HTTP/1\.[01] 200' "$OUT/scrape.txt"

# ---- StopGuestsOnExit=yes: systemctl stop stops the guests first -------------------------------------
printf '[Daemon]\nAdminGroup=memvisor\nStopGuestsOnExit=yes\n' > /etc/memvisor/memvisord.conf
systemctl reload memvisord
check "guest still running before stop" alive "$gpid"
check "systemctl stop memvisord with StopGuestsOnExit=yes" systemctl stop memvisord
check "guest stopped by systemctl stop" wait_for 15 bash -c "! kill -0 $gpid"
check "journal says the guests were stopped before exit" bash -c \
    "journalctl -u memvisord -o cat --no-pager | grep -q 'before shutting down (StopGuestsOnExit=yes)'"

finish
