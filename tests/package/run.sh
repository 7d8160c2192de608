#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tests/package/run.sh [--keep] [--systemd BUILDDIR]
#
# The Debian package: builds it with `dpkg-buildpackage -us -uc -b` from a copy of the tree, runs lintian
# on the .changes (errors fail, warnings are listed), installs it with `apt-get install ./memvisor_*.deb`
# in a fresh bare Debian 12 root (chroot), checks what postinst did, starts memvisord there as the unit's
# ExecStart= would (PID 1 is not systemd here), checks that `memvisorctl status` answers and that a guest
# can be defined, stops it, purges the package and checks that what it installed is gone and that
# /var/lib/memvisor follows debian/memvisor.postrm: the guest definitions memvisord saved go, other files
# there (disk images) are kept; an empty /var/lib/memvisor is removed (checked by a second install+purge).
#
#   --keep      keep the work directory (build tree, .debs, lintian output, the unmounted root); its path
#               is printed
#   --systemd BUILDDIR
#               then install the .deb in the real-systemd test guest (tests/harness/systemd/run.sh --package,
#               which boots BUILDDIR's test guest with systemd 252 as PID 1) and check the units there:
#               socket activation of the packaged daemon, a guest, purge stopping it; tools/check passes it
#
# The tree copied is the working tree as it is now: git-tracked files (with their uncommitted changes) and
# untracked files that are not ignored; no build directories.
#
# Exit status: 0 PASS, 1 FAIL, 77 SKIP (not root, the build dependencies or mmdebstrap missing and not
# installable, no bare root and none can be built). The last line says PASS/FAIL/SKIP with timings.
#
# The bare root is tests/bareroot's cached mmdebstrap tarball (MEMVISOR_BAREROOT_CACHE, default
# /var/cache/memvisor-bareroot: root.tar, and archives/ as apt's package cache, under its lock); when it is
# missing, one is built the same way (mmdebstrap --variant=apt bookworm) in the work directory, not cached.
# Work directory: a new directory under MEMVISOR_PACKAGE_TMPDIR (default /var/tmp), removed afterwards.
# MEMVISOR_PACKAGE_START_TIMEOUT (s, default 30): from starting memvisord until `memvisorctl status` answers.

set -uo pipefail

PROG=package
SELF=$(readlink -f "$0")
SRC=$(cd "$(dirname "$SELF")/../.." && pwd)
# shellcheck source=tests/lib/bareroot.sh
. "$SRC/tests/lib/bareroot.sh"
CACHE=${MEMVISOR_BAREROOT_CACHE:-/var/cache/memvisor-bareroot}
TMPBASE=${MEMVISOR_PACKAGE_TMPDIR:-/var/tmp}
START_TIMEOUT=${MEMVISOR_PACKAGE_START_TIMEOUT:-30}
# What debian/control's Build-Depends name (systemd: bookworm's systemd.pc), and the tools of the build.
BUILD_PKGS=(meson ninja-build pkg-config python3 libsystemd-dev libjson-c-dev libnuma-dev libcap-dev
    libtracefs-dev libtraceevent-dev libcairo2-dev systemd debhelper dpkg-dev build-essential lintian)

keep=0
systemd_build=
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) keep=1 ;;
    --systemd) systemd_build=$(readlink -f "${2:?--systemd needs a build directory}"); shift ;;
    -h | --help) sed -n '3,31s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
    *) echo "$PROG: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

T0=$SECONDS
FINAL=
timings=
fail() { FINAL="FAIL $PROG: $* (${timings#, }"; exit 1; }

WORK=
ROOT=
DAEMON_PID=

# ----------------------------------------------------------------------------------------------- clean-up ---

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        sleep 1
    fi
    bareroot_kill_root_procs --announce || { [ $rc -eq 0 ] && rc=1; }
    wait 2>/dev/null
    bareroot_unmount_and_remove "kept $WORK" || { [ $rc -eq 0 ] && rc=1; }
    bareroot_final_line $rc "FAIL $PROG: passed but the clean-up failed (see above) (${timings#, }"
    exit $rc
}
trap cleanup EXIT
trap 'FINAL="FAIL $PROG: interrupted (${timings#, }"; exit 1' INT TERM HUP

# ----------------------------------------------------------------------------------------- preconditions ---

[ "$(id -u)" -eq 0 ] || bareroot_skip "needs root (apt-get, chroot, mounts)"
git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1 || bareroot_skip "$SRC is not a git work tree"
[ -f "$SRC/debian/control" ] || fail "no debian/control in $SRC"
bareroot_need_tools chroot mount umount findmnt tar flock setsid

t=$SECONDS
missing=()
for p in "${BUILD_PKGS[@]}"; do
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    bareroot_log "installing ${missing[*]}"
    bareroot_apt_install "${missing[@]}" || bareroot_skip "missing and apt-get cannot install: ${missing[*]}"
fi
bareroot_phase "build deps" $t

mkdir -p "$TMPBASE" || bareroot_skip "cannot create $TMPBASE"
WORK=$(mktemp -d "$(readlink -f "$TMPBASE")/memvisor-package.XXXXXX") || bareroot_skip "cannot create a work directory in $TMPBASE"

# ------------------------------------------------------------------------------------------- the build ---

VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version) || fail "cannot read debian/changelog"
UPSTREAM=${VERSION%-*}
ARCH=$(dpkg --print-architecture)
TREE=$WORK/build/memvisor-$UPSTREAM
mkdir -p "$TREE"
t=$SECONDS
bareroot_copy_worktree "$TREE" || fail "cannot copy the working tree"
bareroot_log "building memvisor $VERSION: dpkg-buildpackage -us -uc -b in $TREE ($(git -C "$SRC" describe --always --dirty 2>/dev/null))"
(cd "$TREE" && nice -n 10 dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1 </dev/null || {
    tail -n 40 "$WORK/build.log"
    fail "dpkg-buildpackage failed (the last 40 lines are above)"
}
bareroot_phase build $t
DEB=$WORK/build/memvisor_${VERSION}_$ARCH.deb
CHANGES=$WORK/build/memvisor_${VERSION}_$ARCH.changes
BUILDINFO=$WORK/build/memvisor_${VERSION}_$ARCH.buildinfo
for f in "$DEB" "$CHANGES" "$BUILDINFO"; do [ -f "$f" ] || fail "dpkg-buildpackage did not make $f"; done

t=$SECONDS
lintian --display-info --pedantic "$CHANGES" "$BUILDINFO" >"$WORK/lintian.log" 2>&1
lintian_rc=$?
grep -E '^[EWIPX]: ' "$WORK/lintian.log" | sort -u | sed 's/^/  /'
n_e=$(grep -c '^E: ' "$WORK/lintian.log")
n_w=$(grep -c '^W: ' "$WORK/lintian.log")
bareroot_log "lintian: $n_e errors, $n_w warnings"
[ "$n_e" -eq 0 ] || fail "lintian reports $n_e errors"
[ $lintian_rc -eq 0 ] || [ $lintian_rc -eq 2 ] || { cat "$WORK/lintian.log"; fail "lintian exited with status $lintian_rc"; }
bareroot_phase lintian $t

# -------------------------------------------------------------------------------------------- the root ---

ROOT=$WORK/root
mkdir "$ROOT"
t=$SECONDS
# apt's package cache there is shared with tests/bareroot, hence its lock
bareroot_lock_cache || fail "another run held $CACHE/lock for 30 min"
if [ "$bareroot_lock_waited" = 1 ]; then
    bareroot_phase "lock wait" $t
    t=$SECONDS
fi
if [ -s "$CACHE/root.tar" ]; then
    root_how=cached
    bareroot_extract || fail "cannot extract $CACHE/root.tar"
else
    root_how=built
    command -v mmdebstrap >/dev/null || bareroot_apt_install mmdebstrap || bareroot_skip "no $CACHE/root.tar and mmdebstrap cannot be installed"
    bareroot_mmdebstrap_setup directory
    args=("${BAREROOT_MMDEBSTRAP_ARGS[@]}")
    sources=("${BAREROOT_SOURCES[@]}")
    [ ${#sources[@]} -gt 0 ] || bareroot_skip "no $CACHE/root.tar and the host has no apt sources"
    bareroot_log "no $CACHE/root.tar (tests/bareroot/run.sh makes it): building a root with mmdebstrap ${args[*]} bookworm"
    rmdir "$ROOT"
    mmdebstrap "${args[@]}" bookworm "$ROOT" "${sources[@]}" >"$WORK/mmdebstrap.log" 2>&1 </dev/null || {
        tail -n 30 "$WORK/mmdebstrap.log"
        bareroot_skip "mmdebstrap could not build a root (no access to the Debian archive?)"
    }
fi
bareroot_copy_network
bareroot_mount || fail "cannot mount proc, sys, dev, tmpfs or the apt cache in the root"
bareroot_phase "root ($root_how)" $t

# In the root, with a clean environment; output to $WORK/root.log, shown when a step fails.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
step() { # DESCRIPTION COMMAND...: runs it in the root, fails with its output if it fails
    local what=$1
    shift
    echo "# $what: $*" >>"$WORK/root.log"
    if ! in_root "$@" >"$WORK/step.log" 2>&1 </dev/null; then
        cat "$WORK/step.log" >>"$WORK/root.log"
        tail -n 30 "$WORK/step.log"
        fail "$what failed: $*"
    fi
    cat "$WORK/step.log" >>"$WORK/root.log"
}
check() { # DESCRIPTION SHELL-CONDITION (run in the root)
    in_root /bin/sh -c "$2" >>"$WORK/root.log" 2>&1 </dev/null || fail "after $phase_name: $1 (checked: $2)"
}

mkdir -p "$ROOT/tmp/pkg"
cp "$DEB" "$ROOT/tmp/pkg/" || fail "cannot copy the .deb into the root"
DEB_IN_ROOT=/tmp/pkg/$(basename "$DEB")

# ---------------------------------------------------------------------------------------- install ---

t=$SECONDS
phase_name=install
bareroot_log "apt-get install ./$(basename "$DEB") in the bare root"
step "apt-get update" apt-get -q update
step "apt-get install" apt-get -q -o DPkg::Lock::Timeout=600 install -y "$DEB_IN_ROOT"
bareroot_phase install $t
in_root dpkg -L memvisor >"$WORK/installed.list" 2>/dev/null || fail "dpkg -L memvisor failed after the install"

check "the group memvisor (sysusers.d) exists" 'getent group memvisor'
check "/etc/memvisor/memvisord.conf is a conffile" 'dpkg-query -W -f "\${Conffiles}" memvisor | grep -q "^ /etc/memvisor/memvisord.conf "'
check "/var/lib/memvisor (tmpfiles.d) exists with mode 0700" '[ "$(stat -c %a /var/lib/memvisor)" = 700 ]'
check "/etc/memvisor/vms exists" '[ -d /etc/memvisor/vms ]'
check "the daemon, the client and the unit files are installed" \
    '[ -x /usr/sbin/memvisord ] && [ -x /usr/bin/memvisorctl ] && [ -f /lib/systemd/system/memvisord.service ] &&
     [ -f /lib/systemd/system/memvisord.socket ] && [ -f /lib/systemd/system/memvisord-exporter.socket ]'
check "the units are enabled (deb-systemd-helper)" \
    '[ -L /etc/systemd/system/sockets.target.wants/memvisord.socket ] &&
     [ -L /etc/systemd/system/sockets.target.wants/memvisord-exporter.socket ] &&
     [ -L /etc/systemd/system/multi-user.target.wants/memvisord.service ]'
check "the shipped memvisord.conf is accepted (memvisord --check-config)" 'memvisord --check-config'
check "the man pages are there" 'for p in memvisord.8 memvisorctl.1 memvisord.conf.5 memvisor.vm.5; do
     [ -f /usr/share/man/man${p##*.}/$p.gz ] || exit 1; done'

# systemd-analyze verify of the installed units (systemd came in as a dependency: sysusers); the bare root
# has no man-db, hence --man=no
t=$SECONDS
step "systemd-analyze verify" systemd-analyze verify --man=no /lib/systemd/system/memvisord.service \
    /lib/systemd/system/memvisord.socket /lib/systemd/system/memvisord-exporter.socket
bareroot_phase verify $t

# ---------------------------------------------------------------------------------------- the daemon ---

t=$SECONDS
phase_name="starting memvisord"
bareroot_log "starting /usr/sbin/memvisord --log-target=console in the root (as ExecStart=, without systemd)"
setsid chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    /usr/sbin/memvisord --log-target=console >"$WORK/memvisord.log" 2>&1 </dev/null &
DAEMON_PID=$!
deadline=$((SECONDS + START_TIMEOUT))
until in_root memvisorctl status >"$WORK/status.log" 2>&1 </dev/null; do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        cat "$WORK/memvisord.log"
        fail "memvisord exited before answering"
    fi
    if [ $SECONDS -ge $deadline ]; then
        cat "$WORK/status.log" "$WORK/memvisord.log"
        fail "memvisorctl status did not answer within $START_TIMEOUT s"
    fi
    sleep 0.2
done
sed 's/^/  /' "$WORK/status.log"
bareroot_phase "start+status" $t
grep -q "Version: ${UPSTREAM}" "$WORK/status.log" || fail "memvisorctl status does not show version $UPSTREAM"

# A guest defined over varlink is saved in /var/lib/memvisor/vms (removed on purge), and an administrator's
# file there (a disk image) is kept on purge.
step "memvisorctl define" /bin/sh -c 'printf "[VM]\nMemory=64M\nKernel=/boot/vmlinuz-pkgtest\n" | memvisorctl define --name=pkgtest -'
check "the definition is saved in /var/lib/memvisor/vms" '[ -f /var/lib/memvisor/vms/pkgtest.vm ]'
echo "not a disk" >"$ROOT/var/lib/memvisor/disk.img"

t=$SECONDS
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
    cat "$WORK/memvisord.log"
    fail "memvisord did not exit within 10 s of SIGTERM"
fi
wait "$DAEMON_PID"
rc=$?
DAEMON_PID=
[ $rc -eq 0 ] || { cat "$WORK/memvisord.log"; fail "memvisord exited with status $rc after SIGTERM"; }
bareroot_phase stop $t

# ---------------------------------------------------------------------------------------- purge ---

# Every path of `dpkg -L` (files and directories) must be gone after purge, except directories that other
# packages or the base system have too (/etc, /usr/share/man/man1, ...; /lib, merged /usr's link).
gone_check() {
    local p left=()
    while IFS= read -r p; do
        case "$p" in /.) continue ;; esac
        [ -e "$ROOT$p" ] || [ -L "$ROOT$p" ] || continue
        if [ -L "$ROOT$p" ] && [ -d "$ROOT$p" ] && [ "${p%/*}" = "" ]; then
            continue # /lib: merged /usr's link to usr/lib
        fi
        if [ -d "$ROOT$p" ] && [ ! -L "$ROOT$p" ] && in_root dpkg-query -S "$p" >/dev/null 2>&1; then
            continue # still owned by another package
        fi
        left+=("$p")
    done <"$WORK/installed.list"
    if [ ${#left[@]} -gt 0 ]; then
        printf '  left after purge: %s\n' "${left[@]}"
        fail "${#left[@]} paths installed by the package are still there after purge"
    fi
}

t=$SECONDS
phase_name="purge (with a saved guest and a disk image)"
bareroot_log "apt-get purge memvisor (a guest definition and an administrator's file in /var/lib/memvisor)"
step "apt-get purge" apt-get -q purge -y memvisor
gone_check
check "memvisor is not installed any more" '! dpkg-query -W -f "\${db:Status-Status}" memvisor 2>/dev/null | grep -qx installed'
check "/etc/memvisor is gone" '[ ! -e /etc/memvisor ]'
check "the saved guest definition is gone" '[ ! -e /var/lib/memvisor/vms ]'
check "the administrator's file in /var/lib/memvisor is kept, and nothing else" \
    '[ "$(ls -A /var/lib/memvisor)" = disk.img ]'
check "no systemd enablement links are left" \
    '! ls /etc/systemd/system/*.wants/ 2>/dev/null | grep -q memvisord'
bareroot_phase purge $t

t=$SECONDS
phase_name="the second install and purge"
rm -f "$ROOT/var/lib/memvisor/disk.img"
bareroot_log "apt-get install and purge again: an empty /var/lib/memvisor goes"
step "apt-get install (again)" apt-get -q install -y "$DEB_IN_ROOT"
check "/var/lib/memvisor is there again" '[ -d /var/lib/memvisor/vms ]'
step "apt-get purge (again)" apt-get -q purge -y memvisor
gone_check
check "/var/lib/memvisor is gone" '[ ! -e /var/lib/memvisor ]'
bareroot_phase "reinstall+purge" $t

# ---------------------------------------------------------------------------------- under systemd ---

systemd_result=
if [ -n "$systemd_build" ]; then
    t=$SECONDS
    phase_name="the package under systemd (tests/harness/systemd/run.sh --package)"
    bareroot_log "installing the .deb in the real-systemd test guest ($systemd_build)"
    "$SRC/tests/harness/systemd/run.sh" "$systemd_build" --package "$DEB" >"$WORK/systemd.log" 2>&1
    rc=$?
    sed -n '/^== results/,$p' "$WORK/systemd.log" | sed 's/^/  /'
    case $rc in
    0) systemd_result="; under systemd: $(tail -n1 "$WORK/systemd.log")" ;;
    77) systemd_result="; under systemd: $(tail -n1 "$WORK/systemd.log")" ;;
    *) tail -n 60 "$WORK/systemd.log"; fail "the package under systemd failed (above)" ;;
    esac
    bareroot_phase "under systemd" $t
fi

FINAL="PASS $PROG: ${timings#, }; lintian $n_e errors, $n_w warnings$systemd_result"
exit 0
