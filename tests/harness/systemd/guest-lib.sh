# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the scripts that run inside the systemd test guest (guest-test.sh, guest-package.sh): the
# parameters run.sh wrote, and check helpers. Each check prints "ok - …" or "not ok - …" to the console and to
# /run/memvisor-out/results; detail.log there gets every command's output.
set -u
OUT=/run/memvisor-out
. "$OUT/params"
RES=$OUT/results
: > "$RES"
fails=0
export SYSTEMD_PAGER= SYSTEMD_COLORS=0 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ok() { echo "ok - $*" | tee -a "$RES"; }
nok() { echo "not ok - $*" | tee -a "$RES"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
    local d=$1; shift
    echo "== $d: $*" >>"$OUT/detail.log"
    local t=(timeout "${CHECK_TIMEOUT:-120}")
    [ "$(type -t "$1")" = function ] && t=()   # wait_for, alive: bounded by themselves
    if "${t[@]}" "$@" >>"$OUT/detail.log" 2>&1; then ok "$d"; else nok "$d"; fi
}
prop() { systemctl show -P "$2" "$1"; }
wait_for() { # wait_for SECONDS COMMAND... (by the clock: under TCG one try may take a second)
    local end=$((SECONDS + $1)); shift
    while :; do
        if [ "$(type -t "$1")" = function ]; then "$@"; else timeout 20 "$@"; fi >/dev/null 2>&1 && return 0
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
alive() { [ -n "$1" ] && [ "$1" != 0 ] && kill -0 "$1" 2>/dev/null; }
finish() {
    echo "== journal of memvisord" >>"$OUT/detail.log"
    journalctl -u memvisord --no-pager -o short-monotonic >>"$OUT/detail.log" 2>&1
    echo "$fails failed" | tee -a "$RES"
    exit $(( fails > 0 ))
}

