# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tests/lib/bareroot.sh: what tests/bareroot/run.sh and tests/package/run.sh share to run things in a bare
# Debian 12 root (mmdebstrap --variant=apt bookworm) with chroot. Sourced (bash), not run; it defines
# functions only and runs nothing.
#
# The sourcing script sets these globals, which the functions read:
#   PROG    its name, the prefix of its messages     T0      $SECONDS at its start
#   SRC     the top of the source tree               CACHE   MEMVISOR_BAREROOT_CACHE (default
#   ROOT    the root ("" while there is none)                /var/cache/memvisor-bareroot)
#   WORK    the directory to remove at the end        keep    1: keep WORK (--keep)
#   FINAL   the last line, printed by bareroot_final_line after everything is unmounted
#   timings ", NAME N s" pieces (bareroot_phase)
#
# Messages and the last line:
#   bareroot_log MESSAGE...             "PROG: [  Ns] MESSAGE"
#   bareroot_skip MESSAGE...            FINAL="SKIP PROG: MESSAGE", exit 77
#   bareroot_phase NAME T               appends ", NAME (SECONDS - T) s" to timings
#   bareroot_final_line RC CLEANUP-FAIL prints FINAL with the total time ("PASS …; total N s", "FAIL …; total
#                                       N s)", "SKIP …"); a PASS with RC != 0 prints "CLEANUP-FAIL; total N s)"
# Preconditions:
#   bareroot_need_tools TOOL...         skips when one is missing
#   bareroot_apt_install PACKAGE...     apt-get install, quietly; again after an apt-get update if it fails
#   bareroot_lock_cache                 creates CACHE/archives/partial (skips if it cannot), makes CACHE absolute,
#                                       takes CACHE/lock on fd 8 (one run at a time: they share archives/),
#                                       waiting up to 30 min; returns 1 when it did not get it. Sets
#                                       bareroot_lock_waited to 1 when it had to wait, else 0.
# The root:
#   bareroot_mmdebstrap_setup FORMAT    sets BAREROOT_APT_CONF_FILES (the host's apt.conf, apt.conf.d/*: given to
#                                       apt in the root), BAREROOT_SOURCES (the host's sources, the root's) and
#                                       BAREROOT_MMDEBSTRAP_ARGS (--variant=apt --mode=root --format=FORMAT
#                                       --aptopt=…); tests/bareroot/run.sh's recipe hash is made of these
#   bareroot_extract                    extracts CACHE/root.tar into ROOT
#   bareroot_copy_network               the host's resolv.conf and hosts into ROOT/etc
#   bareroot_copy_worktree DEST         the working tree of SRC into DEST: git-tracked files (with their
#                                       uncommitted changes, deleted ones skipped) and untracked, not ignored ones
#   bareroot_mount                      proc, sys and dev (rbind, rslave), tmpfs on run and tmp, CACHE/archives
#                                       on var/cache/apt/archives; returns 1 when a mount fails
# Clean-up:
#   bareroot_proc_in_root               the pids of the processes whose root directory is ROOT or below
#   bareroot_show_procs PID...          "  pid PID: COMMAND LINE" each
#   bareroot_kill_root_procs [--announce|--list-left]
#                                       SIGKILLs everything in ROOT and waits up to 5 s for it; returns 1 when
#                                       something was left. --announce: names the pids before (stderr);
#                                       --list-left: lists what is left after (stderr)
#   bareroot_mounts_in_root             the mounts below ROOT, deepest first
#   bareroot_unmount_and_remove KEPT    unmounts everything below ROOT (lazily when busy), then removes WORK, or
#                                       with keep=1 prints "PROG: KEPT (remove it with: …)"; returns 1 (WORK left
#                                       in place) when something stays mounted

# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # globals set here are read by the sourcing script, and the other way round

# ------------------------------------------------------------------------------ messages, the last line ---

bareroot_log() { printf '%s: [%3ds] %s\n' "$PROG" $((SECONDS - T0)) "$*"; }
bareroot_skip() { FINAL="SKIP $PROG: $*"; exit 77; }
bareroot_phase() { timings="$timings, $1 $((SECONDS - $2)) s"; }

bareroot_final_line() { # RC CLEANUP-FAIL
    case "$FINAL" in
    PASS*) if [ "$1" -eq 0 ]; then echo "$FINAL; total $((SECONDS - T0)) s"; else
        echo "$2; total $((SECONDS - T0)) s)"; fi ;;
    FAIL*) echo "$FINAL; total $((SECONDS - T0)) s)" ;;
    SKIP*) echo "$FINAL" ;;
    *) ;; # usage error (2)
    esac
}

# ---------------------------------------------------------------------------------------- preconditions ---

bareroot_need_tools() { # TOOL...
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || bareroot_skip "$t is missing"
    done
}

bareroot_apt_install() { # PACKAGE...: quietly, with an apt-get update when the first attempt fails
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
        "$@" >/dev/null 2>&1 ||
        { DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y \
              --no-install-recommends "$@" >/dev/null 2>&1; }
}

bareroot_lock_cache() {
    bareroot_lock_waited=0
    mkdir -p "$CACHE/archives/partial" || bareroot_skip "cannot create $CACHE"
    CACHE=$(readlink -f "$CACHE")
    exec 8>"$CACHE/lock"
    if ! flock -n 8; then
        bareroot_lock_waited=1
        bareroot_log "waiting for another bare-root run (lock $CACHE/lock)"
        flock -w 1800 8 || return 1
    fi
    return 0
}

# --------------------------------------------------------------------------------------------- the root ---

bareroot_mmdebstrap_setup() { # FORMAT
    local f
    BAREROOT_APT_CONF_FILES=()
    for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] && [ -r "$f" ] && BAREROOT_APT_CONF_FILES+=("$f")
    done
    BAREROOT_SOURCES=()
    [ -f /etc/apt/sources.list ] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list &&
        BAREROOT_SOURCES+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && BAREROOT_SOURCES+=("$f")
    done
    BAREROOT_MMDEBSTRAP_ARGS=(--variant=apt --mode=root "--format=$1")
    for f in "${BAREROOT_APT_CONF_FILES[@]}"; do BAREROOT_MMDEBSTRAP_ARGS+=("--aptopt=$f"); done
}

bareroot_extract() { tar --numeric-owner -xpf "$CACHE/root.tar" -C "$ROOT"; }

bareroot_copy_network() { # the network as the host has it (a new machine's resolver and hosts file)
    cp -f /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
    cp -f /etc/hosts "$ROOT/etc/hosts" 2>/dev/null
}

bareroot_copy_worktree() { # DEST
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -c) | tar -x -C "$1"
}

bareroot_mount() {
    mount -t proc proc "$ROOT/proc" &&
        mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys" &&
        mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" &&
        mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$ROOT/run" &&
        mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/tmp" &&
        mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives"
}

# --------------------------------------------------------------------------------------------- clean-up ---

bareroot_proc_in_root() {
    local p r
    [ -n "$ROOT" ] || return 0
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case "$r" in "$ROOT" | "$ROOT"/*) echo "${p#/proc/}" ;; esac
    done
}

bareroot_show_procs() { # PID...
    local p
    for p in "$@"; do
        printf '  pid %s: %s\n' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
}

bareroot_kill_root_procs() { # [--announce|--list-left]
    local pids
    pids=$(bareroot_proc_in_root)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086,SC2116
    [ "${1:-}" = --announce ] && echo "$PROG: killing what still runs in the root: $(echo $pids)" >&2
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    for _ in $(seq 1 50); do
        [ -n "$(bareroot_proc_in_root)" ] || return 0
        sleep 0.1
    done
    [ "${1:-}" = --list-left ] || return 1
    pids=$(bareroot_proc_in_root)
    [ -n "$pids" ] || return 0
    echo "$PROG: still running in the root after SIGKILL:" >&2
    # shellcheck disable=SC2086
    bareroot_show_procs $pids >&2
    return 1
}

bareroot_mounts_in_root() { # deepest first
    [ -n "$ROOT" ] || return 0
    findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r "/") == 1' | sort -r
}

bareroot_unmount_and_remove() { # KEPT
    local m
    for _ in 1 2 3; do
        for m in $(bareroot_mounts_in_root); do
            umount "$m" 2>/dev/null || umount -R "$m" 2>/dev/null
        done
        [ -z "$(bareroot_mounts_in_root)" ] && break
        sleep 1
    done
    for m in $(bareroot_mounts_in_root); do # busy: detach at least
        umount -l "$m" 2>/dev/null
    done
    if [ -n "$(bareroot_mounts_in_root)" ]; then
        echo "$PROG: could not unmount, $WORK left in place:" >&2
        bareroot_mounts_in_root >&2
        return 1
    elif [ -n "$WORK" ]; then
        if [ "$keep" = 1 ]; then
            echo "$PROG: $1 (remove it with: rm -rf --one-file-system $WORK)"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    return 0
}
