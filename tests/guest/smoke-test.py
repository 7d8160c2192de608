#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Smoke test of the memvisor test guest (standard library only).

    tests/guest/smoke-test.py [--touch PATH] OUTDIR

Builds the guest into OUTDIR if needed (tests/guest/build-guest.sh [--touch PATH]: the build tree's
memvisor-touch, as the other callers pass it, so that they share one image), boots it under TCG with a
virtio balloon and QMP, waits for MEMVISOR-GUEST-READY, balloons to 256 MiB, checks
query-balloon, then presses the ACPI power button (system_powerdown) and expects a guest
shutdown.  Prints the timings.  Exit status 0 = pass, 1 = fail, 77 = skipped (no QEMU).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024


def main():
    args = sys.argv[1:]
    touch = []
    if len(args) == 3 and args[0] == "--touch":
        touch, args = args[:2], args[2:]
    if len(args) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    outdir = args[0]
    if not shutil.which("qemu-system-x86_64") and os.geteuid() != 0:
        print("SKIP: qemu-system-x86_64 not installed (build-guest.sh installs it as root)")
        return 77
    subprocess.run([os.path.join(HERE, "build-guest.sh")] + touch + [outdir], check=True)

    tmp = tempfile.mkdtemp(prefix="memvisor-smoke-")
    sock_path = os.path.join(tmp, "q.sock")
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "2",
            "-kernel", os.path.join(outdir, "vmlinuz"), "-initrd", os.path.join(outdir, "initrd.gz"),
            "-append", "console=ttyS0 quiet", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-qmp", "unix:%s,server=on,wait=off" % sock_path]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    console = []
    ready = threading.Event()
    ready_at = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            console.append(line)
            if "MEMVISOR-GUEST-READY" in line and not ready.is_set():
                ready_at.append(time.monotonic() - t0)
                ready.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("no MEMVISOR-GUEST-READY within 120 s")
        print("boot to MEMVISOR-GUEST-READY: %.2f s" % ready_at[0])

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.settimeout(30)
        f = s.makefile("rwb")

        def cmd(execute, **args):
            msg = {"execute": execute}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "event" in r:
                    continue
                if "error" in r:
                    raise RuntimeError("%s: %s" % (execute, r["error"]))
                return r["return"]

        json.loads(f.readline())  # greeting
        cmd("qmp_capabilities")
        t1 = time.monotonic()
        cmd("balloon", value=256 * MiB)
        while True:
            actual = cmd("query-balloon")["actual"]
            if actual == 256 * MiB:
                break
            if time.monotonic() - t1 > 30:
                raise RuntimeError("balloon stuck at %d" % actual)
            time.sleep(0.05)
        print("balloon 512 -> 256 MiB: %.2f s (query-balloon actual=%d)"
              % (time.monotonic() - t1, actual))

        t2 = time.monotonic()
        f.write(b'{"execute": "system_powerdown"}')  # no trailing newline: clean EOF at exit
        f.flush()
        rc = proc.wait(30)
        print("system_powerdown -> QEMU exit %d: %.2f s" % (rc, time.monotonic() - t2))
        th.join(5)
        if "MEMVISOR-GUEST-POWERBUTTON" not in console:
            raise RuntimeError("guest did not see the power button")
        print("PASS")
        return 0
    except Exception as e:  # noqa: BLE001
        print("FAIL: %s\nconsole:\n%s" % (e, "\n".join(console[-40:])))
        return 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
