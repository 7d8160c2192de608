#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tests/bareroot/run.sh [--keep] [--rev REV]
#
# The README's Quick start as a new user meets it: runs tools/demo in a bare Debian 12 root (mmdebstrap
# --variant=apt bookworm: Essential packages and apt, no package lists) with chroot, waits until the demo
# guest runs, presses Ctrl-C (SIGINT to the demo's process group) and checks that the guest and memvisord
# stopped and that nothing of the demo is left running.
#
#   --keep      keep the root (unmounted) after the run, for a look inside; its path is printed
#   --rev REV   test the committed tree REV (git archive) instead of the working tree
#
# The tree copied into ROOT/src/memvisor is the working tree as it is now: git-tracked files (with their
# uncommitted changes) and untracked files that are not ignored; no build directories.
#
# Exit status: 0 PASS, 1 FAIL, 77 SKIP (not root, mmdebstrap missing and not installable, or the root cannot
# be built, e.g. no access to the Debian archive). The last line says PASS/FAIL/SKIP with timings.
#
# Cache (MEMVISOR_BAREROOT_CACHE, default /var/cache/memvisor-bareroot):
#   root.tar, root.recipe   the mmdebstrap tarball and the hash of its recipe (mmdebstrap version, options,
#                           the host's apt configuration and sources); rebuilt when the hash changes or when
#                           older than MEMVISOR_BAREROOT_MAX_AGE_DAYS (default 7)
#   archives/               apt's package cache, bind-mounted on ROOT/var/cache/apt/archives
#   run.XXXXXX/root         each run's root: a fresh extraction of root.tar, removed afterwards
#   last-demo.log           tools/demo's output in the last run
#   lock                    one run at a time (they share archives/)
#
# Environment: MEMVISOR_BAREROOT_START_TIMEOUT (s, default 600: apt, build, guest image, boot until the
# guest runs), MEMVISOR_BAREROOT_STOP_TIMEOUT (s, default 90: from Ctrl-C until tools/demo exited).

set -uo pipefail

PROG=bareroot
SELF=$(readlink -f "$0")
SRC=$(cd "$(dirname "$SELF")/../.." && pwd)
# shellcheck source=tests/lib/bareroot.sh
. "$SRC/tests/lib/bareroot.sh"
CACHE=${MEMVISOR_BAREROOT_CACHE:-/var/cache/memvisor-bareroot}
MAX_AGE_DAYS=${MEMVISOR_BAREROOT_MAX_AGE_DAYS:-7}
START_TIMEOUT=${MEMVISOR_BAREROOT_START_TIMEOUT:-600}
STOP_TIMEOUT=${MEMVISOR_BAREROOT_STOP_TIMEOUT:-90}
GUEST=demo

keep=0
rev=
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) keep=1 ;;
    --rev) [ $# -ge 2 ] || { echo "$PROG: --rev needs an argument" >&2; exit 2; }; rev=$2; shift ;;
    --rev=*) rev=${1#*=} ;;
    -h | --help) sed -n '3,29s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
    *) echo "$PROG: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

T0=$SECONDS
FINAL= # the last line, printed by cleanup after everything is unmounted
ps_state() { sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null; }
demo_running() { [ -e "/proc/$DEMO_PID" ] && [ "$(ps_state "$DEMO_PID")" != Z ]; }

WORK=
ROOT=
DEMO_PID=
LOG=
timings=
t_start=
t_running=
t_stop=
declare -A seen=()

# ----------------------------------------------------------------------------------------------- clean-up ---

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$DEMO_PID" ] && demo_running; then
        # Interrupted: Ctrl-C to the demo, again every 5 s (a Ctrl-C during apt or a build may not end it; a
        # second one kills the guest at once), for up to STOP_TIMEOUT s; what is left then is killed below.
        echo "$PROG: stopping tools/demo in the root (Ctrl-C every 5 s, up to $STOP_TIMEOUT s)" >&2
        for i in $(seq 0 $((STOP_TIMEOUT * 2))); do
            demo_running || break
            [ $((i % 10)) -eq 0 ] && kill -INT -- "-$DEMO_PID" 2>/dev/null
            sleep 0.5
        done
    fi
    bareroot_kill_root_procs --list-left || { [ $rc -eq 0 ] && rc=1; }
    wait 2>/dev/null
    [ -n "$LOG" ] && [ -f "$LOG" ] && cp -f "$LOG" "$CACHE/last-demo.log" 2>/dev/null
    bareroot_unmount_and_remove "the root is kept in $ROOT" || { [ $rc -eq 0 ] && rc=1; }
    bareroot_final_line $rc "FAIL $PROG: the demo passed but the clean-up failed (see above) (${FINAL#PASS "$PROG": }"
    exit $rc
}
trap cleanup EXIT
trap 'FINAL="FAIL $PROG: interrupted ($timings$(phase_timings)"; exit 1' INT TERM HUP

# ----------------------------------------------------------------------------------------- preconditions ---

[ "$(id -u)" -eq 0 ] || bareroot_skip "needs root (mmdebstrap, chroot, mounts)"
if [ -z "$rev" ]; then
    git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1 || bareroot_skip "$SRC is not a git work tree"
else
    git -C "$SRC" rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "$PROG: no commit $rev" >&2; exit 2; }
fi
if ! command -v mmdebstrap >/dev/null; then
    bareroot_log "installing mmdebstrap"
    bareroot_apt_install mmdebstrap || bareroot_skip "mmdebstrap is missing and apt-get cannot install it"
fi
bareroot_need_tools chroot mount umount findmnt setsid tar flock

bareroot_lock_cache || { FINAL="FAIL $PROG: another run held $CACHE/lock for 30 min (waited"; exit 1; }

# -------------------------------------------------------------------------------------------- the root ---

# What the root is made of; its hash decides when the cached tarball is rebuilt. The host's apt configuration
# (apt.conf.d: proxies, snapshot settings such as Check-Valid-Until) is given to apt inside the root, and the
# host's sources become the root's (tests/lib/bareroot.sh). The recipe is the same text as when this was
# written out here, so moving it there did not change the hash.
bareroot_mmdebstrap_setup tar
APT_CONF_FILES=("${BAREROOT_APT_CONF_FILES[@]}")
SOURCES=("${BAREROOT_SOURCES[@]}")
MMDEBSTRAP_ARGS=("${BAREROOT_MMDEBSTRAP_ARGS[@]}")
[ ${#SOURCES[@]} -gt 0 ] || bareroot_skip "the host has no apt sources"

recipe() {
    echo "recipe 1"
    mmdebstrap --version 2>&1
    echo "mmdebstrap ${MMDEBSTRAP_ARGS[*]} bookworm TARGET ${SOURCES[*]}"
    for f in "${APT_CONF_FILES[@]}" "${SOURCES[@]}"; do
        echo "== $f"
        cat "$f"
    done
}
hash=$(recipe | sha256sum | cut -d' ' -f1)

t=$SECONDS
root_how=cached
if [ -s "$CACHE/root.tar" ] && [ "$(cat "$CACHE/root.recipe" 2>/dev/null)" = "$hash" ] &&
    [ $(( $(date +%s) - $(stat -c %Y "$CACHE/root.tar") )) -lt $((MAX_AGE_DAYS * 86400)) ]; then
    bareroot_log "using the cached root $CACHE/root.tar"
else
    root_how=built
    bareroot_log "building the root: mmdebstrap ${MMDEBSTRAP_ARGS[*]} bookworm (sources: ${SOURCES[*]})"
    rm -f "$CACHE/root.tar" "$CACHE/root.recipe" "$CACHE/root.tar.new"
    if ! mmdebstrap "${MMDEBSTRAP_ARGS[@]}" bookworm "$CACHE/root.tar.new" "${SOURCES[@]}" \
        >"$CACHE/mmdebstrap.log" 2>&1 </dev/null; then
        tail -n 30 "$CACHE/mmdebstrap.log"
        rm -f "$CACHE/root.tar.new"
        bareroot_skip "mmdebstrap could not build the root (no access to the Debian archive?); log: $CACHE/mmdebstrap.log"
    fi
    mv -f "$CACHE/root.tar.new" "$CACHE/root.tar"
    echo "$hash" >"$CACHE/root.recipe"
fi
t_root=$((SECONDS - t))
timings="root $t_root s ($root_how)"

# "apt 62 s, build 12 s, …" from the times the phases of tools/demo were first seen; "(unfinished)" for one
# that was still going.
phase_timings() {
    local i end out=
    [ -n "${t_start:-}" ] || return 0
    for i in 0 1 2 3; do
        [ -n "${seen[$i]:-}" ] || continue
        if [ $i -lt 3 ] && [ -n "${seen[$((i + 1))]:-}" ]; then
            end=${seen[$((i + 1))]}
        elif [ $i -eq 3 ] && [ -n "${t_running:-}" ]; then
            end=$t_running
        else
            out="$out, ${PNAMES[$i]} $((SECONDS - seen[$i])) s (unfinished)"
            continue
        fi
        out="$out, ${PNAMES[$i]} $((end - seen[$i])) s"
    done
    echo "$out"
}

finish() { # PASS | FAIL MESSAGE
    timings="$timings$(phase_timings)${t_stop:+, stop $t_stop s}"
    if [ "$1" = PASS ]; then
        FINAL="PASS $PROG: $timings"
        exit 0
    fi
    FINAL="FAIL $PROG: $2 ($timings"
    exit 1
}

fail_with_log() { # MESSAGE
    if [ -n "$LOG" ] && [ -f "$LOG" ]; then
        echo "---- last 60 lines of tools/demo's output (all of it: $CACHE/last-demo.log)"
        tail -n 60 "$LOG"
        echo "----"
        cp -f "$LOG" "$CACHE/last-demo.log" 2>/dev/null
    fi
    finish FAIL "$1"
}

# ---------------------------------------------------------------------------------------------- the run ---

WORK=$(mktemp -d "$CACHE/run.XXXXXX") || finish FAIL "cannot create a work directory in $CACHE"
ROOT=$WORK/root
mkdir "$ROOT"
t=$SECONDS
bareroot_extract || finish FAIL "cannot extract $CACHE/root.tar"
bareroot_copy_network

mkdir -p "$ROOT/src/memvisor"
if [ -n "$rev" ]; then
    git -C "$SRC" archive "$rev" | tar -x -C "$ROOT/src/memvisor" || finish FAIL "cannot copy $rev"
    what="$rev ($(git -C "$SRC" rev-parse --short "$rev"))"
else
    # Tracked files as they are in the working tree (deleted ones skipped) and new files that are not ignored.
    bareroot_copy_worktree "$ROOT/src/memvisor" || finish FAIL "cannot copy the working tree"
    what="the working tree of $SRC ($(git -C "$SRC" describe --always --dirty 2>/dev/null))"
fi
bareroot_phase extract+copy $t

bareroot_mount || bareroot_skip "cannot mount proc, sys, dev, tmpfs or the apt cache in the root"

# As a new user: a root login shell's environment (nothing of ours), in the top of the tree, typing tools/demo.
# setsid: the demo leads a process group of its own, so `kill -INT -- -PGID` is exactly what Ctrl-C in its
# terminal does; env --default-signal: a background job of a script starts with SIGINT ignored, and bash
# cannot trap a signal that was ignored when it started. (setsid does not fork here, so $! is the demo.)
LOG=$WORK/demo.log
bareroot_log "running tools/demo in the bare root $ROOT ($what)"
setsid env --default-signal=INT,QUIT chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root \
    SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'cd /src/memvisor && exec tools/demo' >"$LOG" 2>&1 </dev/null &
DEMO_PID=$!

guest_state() {
    [ -x "$ROOT/src/memvisor/build/memvisorctl" ] || return 0
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /src/memvisor/build/memvisorctl list \
        2>/dev/null | awk -v g="$GUEST" '$1 == g { print $2 }'
}

sleep 0.5
[ "$(sed -n 's/^[0-9]* (.*) . [0-9]* [0-9]* \([0-9]*\) .*/\1/p' "/proc/$DEMO_PID/stat" 2>/dev/null)" = "$DEMO_PID" ] ||
    ! demo_running || finish FAIL "the demo does not lead a session of its own (setsid forked?)"

# Phases, from the lines tools/demo prints ("==> …"); the times are when each was first seen.
PHASES=("Checking the Debian packages" "Building memvisor" "Building the demo guest" "Starting memvisord")
PNAMES=(apt build "guest image" "boot to running")
phase=start
t_start=$SECONDS
deadline=$((SECONDS + START_TIMEOUT))
state=
while :; do
    for i in "${!PHASES[@]}"; do
        if [ -z "${seen[$i]:-}" ] && grep -q "^==> ${PHASES[$i]}" "$LOG" 2>/dev/null; then
            seen[$i]=$SECONDS
            phase=${PNAMES[$i]}
            [ "$i" -gt 0 ] && bareroot_log "${PNAMES[$((i - 1))]} done"
        fi
    done
    state=$(guest_state) # not only after "Starting memvisord": an older tools/demo does not print the phases
    [ "$state" = running ] && break
    if ! demo_running; then
        wait "$DEMO_PID"
        rc=$?
        DEMO_PID=
        fail_with_log "tools/demo exited with status $rc before the guest ran (phase: $phase)"
    fi
    if [ $SECONDS -ge $deadline ]; then
        fail_with_log "the guest was not running after $START_TIMEOUT s: stalled in phase '$phase'${state:+ (guest state: $state)}"
    fi
    sleep 1
done
t_running=$SECONDS
bareroot_log "the guest $GUEST is running"

# Ctrl-C, and wait for the demo to stop the guest and memvisord.
bareroot_log "Ctrl-C: SIGINT to the demo's process group $DEMO_PID"
t=$SECONDS
kill -INT -- "-$DEMO_PID"
deadline=$((SECONDS + STOP_TIMEOUT))
while demo_running && [ $SECONDS -lt $deadline ]; do
    sleep 0.5
done
if demo_running; then
    leftovers=$(bareroot_proc_in_root)
    echo "$PROG: tools/demo still runs $STOP_TIMEOUT s after SIGINT; processes in the root:"
    # shellcheck disable=SC2086
    bareroot_show_procs $leftovers
    bareroot_kill_root_procs --list-left
    fail_with_log "tools/demo did not exit within $STOP_TIMEOUT s of Ctrl-C"
fi
wait "$DEMO_PID"
rc=$?
DEMO_PID=
t_stop=$((SECONDS - t))
bareroot_log "tools/demo exited with status $rc after $t_stop s"
cp -f "$LOG" "$CACHE/last-demo.log" 2>/dev/null

sleep 0.5 # QEMU reparented to init and being reaped
leftovers=$(bareroot_proc_in_root)
if [ -n "$leftovers" ]; then
    echo "$PROG: left running in the root after tools/demo exited:"
    # shellcheck disable=SC2086
    bareroot_show_procs $leftovers
    bareroot_kill_root_procs --list-left
    fail_with_log "processes of the demo were left running after Ctrl-C"
fi
[ "$rc" -eq 0 ] || fail_with_log "tools/demo exited with status $rc after Ctrl-C"
grep -q "Stopping the demo guest\|stopping the demo guest" "$LOG" && grep -q "memvisord stopped" "$LOG" ||
    fail_with_log "tools/demo's output does not show the guest and memvisord being stopped"
finish PASS
