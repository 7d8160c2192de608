# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by tools/demo and tools/check: installs the Debian packages that are missing.

# Build and runtime dependencies (one compiler: gcc, Debian's default cc).
MEMVISOR_BUILD_DEPS=(
    meson ninja-build pkg-config gcc libc6-dev
    libsystemd-dev libjson-c-dev libnuma-dev libcap-dev libtracefs-dev libtraceevent-dev
    libcairo2-dev
)
MEMVISOR_RUNTIME_DEPS=(
    qemu-system-x86 numactl
)
# What tools/demo adds: the demo guest's builder (tests/guest/build-guest.sh) and curl for the exporter
# command it prints.
MEMVISOR_DEMO_DEPS=(
    busybox-static cpio xz-utils qemu-guest-agent curl
)
# What the test suites and benchmarks use (clang: the second, sanitized build of tools/check).
MEMVISOR_TEST_DEPS=(
    clang libcmocka-dev python3 python3-pytest varlink-go mandoc systemd busybox-static cpio xz-utils qemu-guest-agent dbus
    python3-numpy python3-scipy python3-pandas
    prometheus prometheus-node-exporter curl bash-completion zsh mmdebstrap
    openssh-server openssh-client debhelper dpkg-dev build-essential lintian
)

# memvisor_install_deps PACKAGE...: installs those that are missing (apt-get update first). On failure, apt's
# output is shown and the status is non-zero.
memvisor_install_deps() {
    local missing=() p log rc
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            case " ${missing[*]} " in *" $p "*) ;; *) missing+=("$p") ;; esac
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    echo "Installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: these packages are missing and installing them needs root: ${missing[*]}" >&2
        return 1
    fi
    log=$(mktemp "${TMPDIR:-/tmp}/memvisor-apt.XXXXXX") || return 1
    rc=0
    (
        export DEBIAN_FRONTEND=noninteractive
        apt-get -q -o DPkg::Lock::Timeout=600 update || exit 1
        apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" || exit 2
    ) >"$log" 2>&1 </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$log" >&2
        if [ "$rc" -eq 1 ]; then
            echo "error: apt-get update failed (see above): cannot reach the Debian archive?" >&2
        else
            echo "error: apt-get install failed (see above): ${missing[*]}" >&2
        fi
    fi
    rm -f "$log"
    return "$rc"
}
