# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by tools/demo and tools/check: installs the Debian packages that are missing.

# Build and runtime dependencies.
MEMVISOR_BUILD_DEPS=(
    meson ninja-build pkg-config gcc clang
    libsystemd-dev libjson-c-dev libnuma-dev libcap-dev
)
MEMVISOR_RUNTIME_DEPS=(
    qemu-system-x86 numactl
)
# What the test suites and benchmarks use.
MEMVISOR_TEST_DEPS=(
    libcmocka-dev python3 python3-pytest varlink-go mandoc systemd busybox-static cpio xz-utils dbus
    prometheus prometheus-node-exporter curl
)

memvisor_install_deps() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    echo "Installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: these packages are missing and installing them needs root: ${missing[*]}" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
