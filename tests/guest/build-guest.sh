#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-guest.sh [-f|--force] [--touch PATH] OUTDIR
#
# Builds the memvisor test guest (a Debian kernel + a busybox initramfs with qemu-ga) into OUTDIR:
#   OUTDIR/vmlinuz      the Debian linux-image-6.1.0-*-amd64 kernel
#   OUTDIR/initrd.gz    newc cpio + gzip: /bin/busybox, modules, /init, qemu-ga and its libraries,
#                       /usr/bin/memvisor-touch (with --touch)
#   OUTDIR/recipe.hash  sha256 of (this script, kernel package and version, busybox version,
#                       qemu-guest-agent version, sha256 of the memvisor-touch binary)
#   OUTDIR/recipe.txt   the same facts in readable form (kernel release etc.)
#
# --touch PATH: the static memvisor-touch of a build tree (BUILDDIR/src/touch/memvisor-touch);
# without it the image has no memvisor-touch ("memvisor-touch none" in the recipe).
#
# Idempotent and cached: when OUTDIR already holds a complete image whose recipe.hash matches,
# nothing is done.  See tests/guest/README.md for the guest's kernel command line options.
#
# Environment:
#   MEMVISOR_TOUCH             the default of --touch
#   MEMVISOR_GUEST_KERNEL_DEB  use this linux-image-*.deb instead of downloading one
#   TMPDIR                     where the kernel package is unpacked (about 450 MiB, removed after)

set -euo pipefail

PROG=${0##*/}
SELF=$(readlink -f "$0")

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

force=0
outdir=
touch_bin=${MEMVISOR_TOUCH:-}
while [ $# -gt 0 ]; do
    case "$1" in
        -f|--force) force=1 ;;
        --touch) [ $# -ge 2 ] || die "--touch needs a path"; touch_bin=$2; shift ;;
        --touch=*) touch_bin=${1#--touch=} ;;
        -h|--help) sed -n '3,24s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) [ -z "$outdir" ] || die "only one OUTDIR"; outdir=$1 ;;
    esac
    shift
done
[ -n "$outdir" ] || die "usage: $PROG [--force] [--touch PATH] OUTDIR"
if [ -n "$touch_bin" ]; then
    [ -f "$touch_bin" ] && [ -x "$touch_bin" ] || die "--touch $touch_bin: no such executable (build memvisor first)"
    # a static binary has no ELF interpreter: it runs in the guest without libraries
    if LC_ALL=C readelf -l "$touch_bin" 2>/dev/null | grep -q 'program interpreter'; then
        die "--touch $touch_bin is dynamically linked (memvisor-touch must be static)"
    fi
fi

# Modules, in insmod order.  Each list must be closed under "depends=" of earlier entries (checked
# at build time).
BASE_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem"
AGENT_MODULES="virtio_console"
P9_MODULES="9pnet 9pnet_virtio netfs fscache 9p"
EXTRA_MODULES="overlay evdev button pvpanic pvpanic-mmio pvpanic-pci"
ALL_MODULES="$BASE_MODULES $AGENT_MODULES $P9_MODULES $EXTRA_MODULES"
QEMU_GA=/usr/sbin/qemu-ga

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@"
}

ensure_packages() {
    local missing="" p
    for p in "$@"; do
        pkg_installed "$p" || missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    log "installing:$missing"
    # shellcheck disable=SC2086
    if ! apt_get install -y --no-install-recommends $missing >&2; then
        apt_get update >&2
        # shellcheck disable=SC2086
        apt_get install -y --no-install-recommends $missing >&2
    fi
}

# Prints "PACKAGE VERSION" of the kernel package; with MEMVISOR_GUEST_KERNEL_DEB, of that file.
# linux-image-amd64 depends on exactly one version of the versioned package, e.g.
# "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
resolve_kernel() {
    if [ -n "${MEMVISOR_GUEST_KERNEL_DEB:-}" ]; then
        [ -f "$MEMVISOR_GUEST_KERNEL_DEB" ] || die "MEMVISOR_GUEST_KERNEL_DEB: no such file"
        dpkg-deb -f "$MEMVISOR_GUEST_KERNEL_DEB" Package Version | awk '{printf "%s ", $2} END {print ""}'
        return 0
    fi
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
        sed -n 's/^Depends:.*\(linux-image-6\.1\.0-[0-9][0-9]*-amd64\) (= \([^)]*\)).*/\1 \2/p' |
        head -n1 | grep .
}

# resolve_kernel, memoized in OUTDIR/.kernel-cache while the apt lists stay unchanged (apt-cache
# takes ~0.6 s where Debian's docker images disable apt's binary cache).
resolve_kernel_cached() {
    local key cache=$outdir/.kernel-cache line
    if [ -n "${MEMVISOR_GUEST_KERNEL_DEB:-}" ]; then
        resolve_kernel
        return
    fi
    key=$(stat -c '%n %Y %s' /var/lib/apt/lists/*_Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ -f "$cache" ] && read -r k p v < "$cache" && [ "$k" = "$key" ] && [ -n "$v" ]; then
        echo "$p $v"
        return 0
    fi
    line=$(resolve_kernel) || return 1
    if [ -d "$outdir" ]; then
        if echo "$key $line" > "$cache.$$"; then mv -f "$cache.$$" "$cache"; else rm -f "$cache.$$"; fi
    fi
    echo "$line"
}

touch_sum() {
    if [ -n "$touch_bin" ]; then sha256sum < "$touch_bin" | cut -d' ' -f1; else echo none; fi
}

recipe_of() { # KPKG KVER
    local p v bb=none ga=none
    # one dpkg-query for both packages (it is the slowest step of the fast path); "none" when absent
    while read -r p v; do
        case "$p" in
            busybox-static) bb=${v:-none} ;;
            qemu-guest-agent) ga=${v:-none} ;;
        esac
    done < <(dpkg-query -W -f='${Package} ${Version}\n' busybox-static qemu-guest-agent 2>/dev/null || true)
    printf 'script %s\nkernel %s %s\nbusybox-static %s\nqemu-guest-agent %s\nmemvisor-touch %s\n' \
        "$(sha256sum < "$SELF" | cut -d' ' -f1)" "$1" "$2" "$bb" "$ga" "$(touch_sum)"
}

image_complete() { # HASH
    [ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.gz" ] && [ -s "$outdir/recipe.hash" ] &&
        [ "$(cat "$outdir/recipe.hash")" = "$1" ]
}

# ---------------------------------------------------------------------------- fast path ---

kernel=$(resolve_kernel_cached) || {
    log "package lists missing or stale, running apt-get update"
    apt_get update >&2
    kernel=$(resolve_kernel_cached) || die "cannot find the kernel package linux-image-amd64 depends on"
}
read -r kpkg kver <<< "$kernel"
recipe=$(recipe_of "$kpkg" "$kver")
hash=$(printf '%s\n' "$recipe" | sha256sum | cut -d' ' -f1)

if [ "$force" = 0 ] && image_complete "$hash"; then
    exit 0
fi

# ---------------------------------------------------------------------------- slow path ---

mkdir -p "$outdir"
exec 9>"$outdir/.build.lock"
flock 9
if [ "$force" = 0 ] && image_complete "$hash"; then   # built by a concurrent caller
    exit 0
fi

ensure_packages busybox-static cpio xz-utils qemu-system-x86 qemu-guest-agent
# busybox-static and qemu-guest-agent may just have been installed: their versions are part of the recipe.
recipe=$(recipe_of "$kpkg" "$kver")
hash=$(printf '%s\n' "$recipe" | sha256sum | cut -d' ' -f1)

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (busybox-static)"
file_out=$("$BUSYBOX" 2>&1 | head -n1 || true)
case "$file_out" in BusyBox*) ;; *) die "$BUSYBOX does not run" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memvisor-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- the kernel package
deb=
if [ -n "${MEMVISOR_GUEST_KERNEL_DEB:-}" ]; then
    deb=$MEMVISOR_GUEST_KERNEL_DEB
else
    f=/var/cache/apt/archives/${kpkg}_${kver//:/%3a}_amd64.deb
    [ -f "$f" ] && deb=$f
    if [ -z "$deb" ]; then
        log "downloading $kpkg $kver"
        if ! (cd "$tmp" && apt-get -q download "$kpkg=$kver" >&2); then
            log "download failed, running apt-get update and retrying"
            apt_get update >&2
            (cd "$tmp" && apt-get -q download "$kpkg=$kver" >&2) || die "apt-get download $kpkg failed"
        fi
        deb=$(find "$tmp" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
    fi
fi
log "unpacking $deb"
dpkg -x "$deb" "$tmp/k"

vmlinuz=$(find "$tmp/k/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $deb"
krel=${vmlinuz##*/vmlinuz-}
moddir=$tmp/k/lib/modules/$krel
[ -d "$moddir" ] || die "no lib/modules/$krel in $deb"

# --- the initramfs tree
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,newroot,lower,etc/acpi/PWRF,lib/modules/memvisor}
cp "$BUSYBOX" "$root/bin/busybox"

# qemu-ga with the libraries ldd names and the ELF interpreter, at the same paths as on the host
[ -x "$QEMU_GA" ] || die "$QEMU_GA missing (qemu-guest-agent)"
install -D -m 755 "$QEMU_GA" "$root$QEMU_GA"
libs=$(ldd "$QEMU_GA" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') ||
    die "ldd $QEMU_GA failed"
grep -qx '/lib64/ld-linux-x86-64.so.2' <<< "$libs" || die "ldd $QEMU_GA names no /lib64/ld-linux-x86-64.so.2"
for l in $libs; do
    mkdir -p "$root$(dirname "$l")"
    cp -L "$l" "$root$l"
done
# guest-get-osinfo reads os-release
cat > "$root/etc/os-release" <<'EOF'
NAME="memvisor test guest"
ID=memvisor-test-guest
PRETTY_NAME="memvisor test guest (busybox initramfs)"
VERSION_ID=1
EOF

# memvisor-touch, stripped (the build tree's binary has debug info)
if [ -n "$touch_bin" ]; then
    if command -v strip >/dev/null; then
        strip -o "$root/usr/bin/memvisor-touch" "$touch_bin"
    else
        cp "$touch_bin" "$root/usr/bin/memvisor-touch"
    fi
    chmod 755 "$root/usr/bin/memvisor-touch"
fi
if [ "$(id -u)" = 0 ]; then
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
fi

have=" "
for m in $ALL_MODULES; do
    f=$(find "$moddir/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) | head -n1)
    [ -n "$f" ] || die "module $m not found in $krel (built in? update the module lists)"
    dst=$root/lib/modules/memvisor/$m.ko
    case "$f" in
        *.ko) cp "$f" "$dst" ;;
        *.xz) xz -dc "$f" > "$dst" ;;
        *.gz) gzip -dc "$f" > "$dst" ;;
        *.zst) zstd -qdc "$f" > "$dst" ;;
    esac
    deps=$(tr '\0' '\n' < "$dst" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')
    for d in $deps; do
        case "$have" in *" $d "*) ;; *) die "module $m needs $d, which is not loaded before it" ;; esac
    done
    have="$have$m "
done

# busybox acpid: the power button (KEY_POWER via evdev) maps to "PWRF" → /etc/acpi/PWRF/00000080
printf 'PWRF PWRF/00000080\nPWRB PWRF/00000080\n' > "$root/etc/acpid.conf"
cat > "$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
echo "MEMVISOR-GUEST-POWERBUTTON" > /dev/console
kill -USR2 1
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"

cat > "$root/init" <<'EOF'
#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# memvisor test guest init (generated by tests/guest/build-guest.sh)
set -f  # no globbing: the kernel command line is split into words below
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -e /proc/self/fd/1 ] || exec </dev/console >/dev/console 2>&1

MODDIR=/lib/modules/memvisor
say() { echo "memvisor-guest: $*"; }
arg() { # NAME → value of NAME=value on the kernel command line
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1="*) echo "${w#*=}"; return 0 ;; esac
    done
    return 1
}
load() {
    for m in "$@"; do
        insmod "$MODDIR/$m.ko" || say "insmod $m failed"
    done
}
halt_now() { # never returns
    sync
    poweroff -f
    while :; do sleep 3600; done
}
# qemu-ga on the virtio-serial port named org.qemu.guest_agent.0, when the guest has one. Without udev
# there is no /dev/virtio-ports/ symlink: the port is the /sys/class/virtio-ports/vport* whose name matches.
start_agent() {
    local n=0 p port= dev have_serial=0 d
    load virtio_console
    set +f  # globs below (the command line was split with globbing off)
    for d in /sys/bus/virtio/devices/*; do
        # virtio device id 3: a console (virtio-serial) device
        [ "$(cat "$d/device" 2>/dev/null)" = 0x0003 ] && have_serial=1
    done
    if [ $have_serial = 1 ]; then
        # the host announces ports (and their names) after the driver is up: wait up to 5 s
        while [ -z "$port" ] && [ $n -lt 500 ]; do
            for p in /sys/class/virtio-ports/vport*; do
                [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=${p##*/}
            done
            [ -n "$port" ] && break
            n=$((n + 1))
            usleep 10000
        done
    fi
    set -f
    if [ -z "$port" ]; then
        echo "MEMVISOR-GUEST-AGENT absent (no org.qemu.guest_agent.0 port)"
        return 0
    fi
    dev=/dev/$port
    if [ ! -c "$dev" ]; then
        d=$(cat "/sys/class/virtio-ports/$port/dev")
        mknod "$dev" c "${d%%:*}" "${d##*:}" || { say "cannot create $dev"; return 0; }
    fi
    mkdir -p /var/run/qga /var/log
    # Supervised as a service manager would (Restart=always): an agent that dies (the tests kill it) is back
    # a second later, and the host sees the port close and open again.
    (
        while :; do
            qemu-ga -m virtio-serial -p "$dev" -t /var/run/qga -l /var/log/qemu-ga.log
            echo "MEMVISOR-GUEST-AGENT exited with status $?, restarting"
            sleep 1
        done
    ) </dev/null >/dev/console 2>&1 &
    n=0
    until pidof qemu-ga >/dev/null || [ $n -ge 200 ]; do n=$((n + 1)); usleep 10000; done
    if ! pidof qemu-ga >/dev/null; then
        echo "MEMVISOR-GUEST-AGENT failed (see /var/log/qemu-ga.log)"
        return 0
    fi
    echo "MEMVISOR-GUEST-AGENT started on $dev (pid $(pidof qemu-ga))"
}
idle() { # never returns; `poweroff`/`reboot`/`halt` in the guest signal PID 1
    trap 'echo MEMVISOR-GUEST-POWEROFF; halt_now' USR2 USR1
    trap 'echo MEMVISOR-GUEST-REBOOT; sync; reboot -f' TERM
    while :; do
        sleep 3600 &
        wait $!
    done
}

mode=$(arg memvisor.mode || echo idle)

# virtio-mem (memvisor.vm(5) HotplugSize=): the Debian kernel leaves hotplugged memory offline
# (CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE is not set); online_movable lets the device unplug it again.
echo online_movable > /sys/devices/system/memory/auto_online_blocks 2>/dev/null ||
    say "cannot set auto_online_blocks"
load virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem

if [ "$mode" = idle ]; then
    # ACPI power button → busybox acpid → /etc/acpi/PWRF/00000080 → SIGUSR2 to PID 1.
    load evdev button
    mkdir -p /var/log /var/run
    # Foreground mode in the background, so that READY is only printed once acpid holds the
    # input devices open (a power button press before that would be lost).
    acpid -f -c /etc/acpi -a /etc/acpid.conf -l /dev/null &
    acpid_pid=$!
    n=0
    until ls -l /proc/$acpid_pid/fd 2>/dev/null | grep -q /dev/input/event; do
        n=$((n + 1))
        [ $n -lt 300 ] || { say "acpid did not start"; break; }
        usleep 10000
    done
    if [ "$(arg memvisor.agent || echo 1)" = 0 ]; then
        echo "MEMVISOR-GUEST-AGENT absent (memvisor.agent=0)"
    else
        start_agent
    fi
fi

echo MEMVISOR-GUEST-READY
grep '^MemTotal:' /proc/meminfo
echo "MEMVISOR-GUEST-KERNEL $(uname -r)"

case "$mode" in
idle)
    idle
    ;;
crash)
    halt_now
    ;;
panic)
    # pvpanic (-device pvpanic or pvpanic-pci) turns this into a GUEST_PANICKED event; add panic=-1
    # to the command line to make QEMU exit (with -no-reboot) instead of the guest hanging.
    load pvpanic pvpanic-mmio pvpanic-pci
    echo MEMVISOR-GUEST-PANIC
    echo c > /proc/sysrq-trigger
    idle
    ;;
shell)
    while :; do setsid cttyhack sh -l; done
    ;;
9p|systemd)
    load 9pnet 9pnet_virtio netfs fscache 9p
    tag=$(arg memvisor.tag || echo root)
    opts=trans=virtio,version=9p2000.L,ro,cache=loose
    if [ "$mode" = 9p ]; then
        mount -t 9p -o "$opts" "$tag" /newroot || { say "cannot mount 9p tag $tag"; halt_now; }
    else
        load overlay
        mount -t 9p -o "$opts" "$tag" /lower || { say "cannot mount 9p tag $tag"; halt_now; }
        mount -t tmpfs -o mode=0755 tmpfs /run
        mkdir -p /run/upper /run/work
        mount -t overlay -o lowerdir=/lower,upperdir=/run/upper,workdir=/run/work overlay /newroot ||
            { say "cannot mount overlay"; halt_now; }
        # With /.dockerenv visible, systemd thinks it is in a container and ignores the cmdline.
        rm -f /newroot/.dockerenv
    fi
    script=$(arg memvisor.script || true)
    if [ -n "$script" ] && [ ! -e "/newroot$script" ]; then
        say "memvisor.script=$script not found on the 9p root"
    fi
    mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
    mount -t tmpfs -o mode=0755 tmpfs /newroot/run
    case "$script" in /tmp/*|/run/*)
        say "memvisor.script=$script is hidden by the guest's tmpfs on /tmp and /run" ;;
    esac
    if out=$(arg memvisor.outtag); then
        mkdir -p /newroot/run/memvisor-out
        mount -t 9p -o trans=virtio,version=9p2000.L "$out" /newroot/run/memvisor-out ||
            say "cannot mount 9p tag $out"
    fi
    if [ "$mode" = systemd ]; then
        u=/newroot/etc/systemd/system/memvisor-test.service
        {
            echo "[Unit]"
            echo "Description=memvisor test script"
            echo "After=basic.target"
            echo "SuccessAction=poweroff-force"
            echo "FailureAction=poweroff-force"
            echo "[Service]"
            echo "Type=oneshot"
            echo "ExecStart=/bin/sh -c 'echo MEMVISOR-SCRIPT-START; $script; echo MEMVISOR-SCRIPT-EXIT=\$\$?'"
            echo "StandardOutput=tty"
            echo "StandardError=tty"
            echo "TTYPath=/dev/ttyS0"
        } > "$u"
        umount /proc /sys /dev
        exec switch_root /newroot /lib/systemd/systemd --unit=memvisor-test.service --show-status=0
    fi
    g=/newroot/run/memvisor-guest
    mkdir -p "$g"
    cp /bin/busybox /stage2 "$g/"
    umount /proc /sys /dev
    exec switch_root /newroot /run/memvisor-guest/busybox sh /run/memvisor-guest/stage2 "$script"
    ;;
*)
    say "unknown memvisor.mode=$mode, staying up"
    idle
    ;;
esac
EOF
chmod 755 "$root/init"

cat > "$root/stage2" <<'EOF'
# SPDX-License-Identifier: LGPL-2.1-or-later
# memvisor test guest, 9p mode, after switch_root (run by /run/memvisor-guest/busybox sh)
bb=/run/memvisor-guest/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp
cd /tmp || exit 1
if [ -n "$1" ]; then
    echo "MEMVISOR-SCRIPT-START $1"
    "$1" </dev/null
    echo "MEMVISOR-SCRIPT-EXIT=$?"
else
    echo "memvisor-guest: no memvisor.script= given"
fi
$bb sync
$bb poweroff -f
EOF

# --- pack (reproducibly: same recipe, same bytes)
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc --owner=0:0 --reproducible) | gzip -9n > "$tmp/initrd.gz"

cp "$vmlinuz" "$tmp/vmlinuz"
printf '%s\nkernel-release %s\nhash %s\n' "$recipe" "$krel" "$hash" > "$tmp/recipe.txt"
printf '%s\n' "$hash" > "$tmp/recipe.hash"

rm -f "$outdir/recipe.hash"
mv -f "$tmp/vmlinuz" "$outdir/vmlinuz"
mv -f "$tmp/initrd.gz" "$outdir/initrd.gz"
mv -f "$tmp/recipe.txt" "$outdir/recipe.txt"
mv -f "$tmp/recipe.hash" "$outdir/recipe.hash"
log "built $outdir ($kpkg $kver, $krel)"
