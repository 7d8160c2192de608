# SPDX-License-Identifier: LGPL-2.1-or-later
"""Console history with the real daemon and real QEMU (TCG): every boot's console is kept in its own file under
STATE/consoles/NAME with a header line; a panic (pvpanic's GUEST_PANICKED, the kernel's panic line) goes to the
log with the last lines; DescribeVM's lastExit points at the boot; memvisorctl console reads any kept boot
(--boot=-1), refuses one not kept naming what is, and escapes what the guest writes unless --raw."""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from memvisor_it import wait_for

M = "io.memvisor.Manager."


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def describe(d, name):
    return ok(d, "DescribeVM", {"name": name})["vm"]


def linux_vm(test_guest, mode, extra=""):
    return ("[VM]\nMemory=256M\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
            "Append=console=ttyS0 quiet memvisor.mode=%s\nStopTimeoutSec=3s\n%s"
            "[Restart]\nPolicy=always\nRestartSec=1s\nStartLimitBurst=10\n" % (test_guest, test_guest, mode, extra))


def test_panic_boot_is_kept_and_read_back(daemons, ctl, build, test_guest):
    d = daemons(name="con", config="[Console]\nKeepBoots=3\nMaxBootSize=1M\n")
    # The first boot panics (pvpanic: QEMU reports GUEST_PANICKED and shuts down); the restart by policy takes
    # the definition given meanwhile, which idles.
    panic_def = linux_vm(test_guest, "panic", "ExtraArgs=-device pvpanic\n")
    idle_def = linux_vm(test_guest, "idle", "ExtraArgs=-device pvpanic\n")
    ok(d, "DefineVM", {"name": "crash", "ini": panic_def})
    ok(d, "StartVM", {"name": "crash"})
    vm = describe(d, "crash")
    first_pid = vm["pid"]
    assert vm["consoleBoot"] == 1
    console_dir = d.state_dir / "consoles" / "crash"
    assert vm["consoleDirectory"] == str(console_dir)
    assert vm["consoleLog"] == str(console_dir / "boot-1.log")
    ok(d, "DefineVM", {"name": "crash", "ini": idle_def, "replace": True})

    wait_for(lambda: describe(d, "crash").get("consoleBoot") == 2, timeout=180, what="the restart after the panic")
    vm = describe(d, "crash")
    last = vm["lastExit"]
    assert last["consoleBoot"] == 1 and last["panicked"] is True, last
    assert any("Kernel panic - not syncing" in l for l in last["panicLines"]), last
    assert all("\x1b" not in l for l in last["panicLines"])

    r = ctl("status", "crash", address=d.socket)
    assert "the guest panicked; its console: memvisorctl console crash --boot=1" in r.stdout, r.stdout
    assert any(l.startswith("        Panic: ") and "Kernel panic - not syncing" in l for l in r.stdout.splitlines())

    # The journal (here the daemon's log) has the panic with the boot's last lines.
    d.wait_for_log("Guest crash panicked", timeout=10)
    assert "Kernel panic - not syncing" in d.log_text()

    # Boot 1's file, whole: the header, the guest's panic marker and the kernel's panic line.
    boot1 = (console_dir / "boot-1.log").read_bytes()
    assert re.match(rb"-- memvisor: guest crash, boot 1, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, QEMU pid %d; "
                    rb"previous boot ended: not known --\n" % first_pid, boot1), boot1[:200]
    assert b"MEMVISOR-GUEST-PANIC" in boot1 and b"Kernel panic - not syncing" in boot1
    boot2 = (console_dir / "boot-2.log").read_bytes()
    assert re.match(rb"-- memvisor: guest crash, boot 2, .*; previous boot ended: exited with status 0 "
                    rb"\(guest-panic\) --\n", boot2), boot2[:200]
    assert (console_dir / "boot-1.log").stat().st_mode & 0o777 == 0o600

    # memvisorctl console --boot=-1: the panic boot.
    r = ctl("console", "crash", "--boot=-1", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("-- memvisor: guest crash, boot 1,")
    assert "MEMVISOR-GUEST-PANIC" in r.stdout and "Kernel panic - not syncing" in r.stdout
    r2 = ctl("console", "crash", "--boot=1", "--lines=3", address=d.socket)
    assert r2.returncode == 0 and len(r2.stdout.splitlines()) == 3, r2.stdout
    assert r.stdout.endswith(r2.stdout)

    # A boot not kept: the error names what is.
    r = ctl("console", "crash", "--boot=-5", address=d.socket)
    assert r.returncode == 1
    assert "Boot -5 of guest crash is not kept: kept are boots 1 to 2 (2 boots: --boot=-1 to 0" in r.stderr, r.stderr
    assert "io.memvisor.Manager.NoSuchBoot" in r.stderr
    reply = d.call(M + "GetConsole", {"name": "crash", "boot": 7})
    assert reply["error"] == M + "NoSuchBoot" and reply["parameters"] == {
        "name": "crash", "boot": 7, "first": 1, "last": 2, "kept": 2}, reply

    # Boot 2 idles: what the guest writes on its console reaches memvisorctl escaped, or raw with --raw.
    wait_for(lambda: b"MEMVISOR-GUEST-READY" in (console_dir / "boot-2.log").read_bytes(), timeout=180,
             what="boot 2's ready line")
    wait_for(lambda: (describe(d, "crash").get("agent") or {}).get("state") == "ready", timeout=60,
             what="the guest agent")
    reply = d.call(M + "GuestExec", {"name": "crash", "argv": [
        "/bin/sh", "-c", r"printf 'EVIL \033[2J\033]0;owned\007 \302\233 \377 END\n' > /dev/ttyS0"]})
    assert "error" not in reply, reply
    wait_for(lambda: b"EVIL" in (console_dir / "boot-2.log").read_bytes(), timeout=20, what="the bytes")
    r = ctl("console", "crash", address=d.socket)
    assert r.returncode == 0
    line = [l for l in r.stdout.splitlines() if l.startswith("EVIL")][0]
    assert line == r"EVIL \x1b[2J\x1b]0;owned\x07 \u009b \xff END", line
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    raw = subprocess.run([str(build.memvisorctl), "-A", str(d.socket), "console", "crash", "--raw", "--lines=20"],
                         capture_output=True, timeout=10).stdout
    assert b"EVIL \x1b[2J\x1b]0;owned\x07 \xc2\x9b \xff END\r\n" in raw, raw

    # --json: the reply as it is (data in base64).
    r = ctl("--json", "console", "crash", "--lines=1", address=d.socket)
    p = json.loads(r.stdout)
    assert p["boot"] == 2 and p["first"] == 1 and p["last"] == 2 and p["active"] is True and p["truncated"] is True

    ok(d, "KillVM", {"name": "crash"})
    wait_for(lambda: describe(d, "crash")["state"] == "stopped", timeout=20, what="stopped")


def test_follow_and_rotation(daemons, ctl, build, workdir):
    """Firmware-only guests: --follow goes on into the next boot; KeepBoots= removes the oldest boots first;
    undefining a guest removes its history."""

    d = daemons(name="rot", config="[Console]\nKeepBoots=2\n")
    disk = workdir / "blank-con.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    ok(d, "DefineVM", {"name": "fw", "ini": "[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\nStopTimeoutSec=1s\n" % disk})
    ok(d, "StartVM", {"name": "fw"})
    out_path = workdir / "follow.out"
    with open(out_path, "wb") as out:
        follow = subprocess.Popen([str(build.memvisorctl), "-A", str(d.socket), "console", "fw", "--follow"],
                                  stdout=out, stderr=subprocess.PIPE)
    try:
        # The follower prints each boot from its header on, as it comes.
        wait_for(lambda: b"-- memvisor: guest fw, boot 1," in out_path.read_bytes(), timeout=10, what="boot 1")
        for boot in (2, 3, 4):
            ok(d, "KillVM", {"name": "fw"})
            wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=20, what="stopped")
            ok(d, "StartVM", {"name": "fw"})
            assert describe(d, "fw")["consoleBoot"] == boot
            wait_for(lambda: b"-- memvisor: guest fw, boot %d," % boot in out_path.read_bytes(), timeout=10,
                     what="boot %d followed" % boot)
        consoles = d.state_dir / "consoles" / "fw"
        assert sorted(p.name for p in consoles.iterdir()) == ["boot-3.log", "boot-4.log"]
        r = ctl("console", "fw", "--boot=-2", address=d.socket)
        assert r.returncode == 1 and "kept are boots 3 to 4" in r.stderr, r.stderr
    finally:
        follow.terminate()
        _, err = follow.communicate(timeout=10)
    out = out_path.read_bytes()
    for boot in (1, 2, 3, 4):
        assert out.count(b"-- memvisor: guest fw, boot %d," % boot) == 1, (out, err)
    assert b"previous boot ended: killed by signal KILL --" in out

    ok(d, "KillVM", {"name": "fw"})
    wait_for(lambda: describe(d, "fw")["state"] == "stopped", timeout=20, what="stopped")
    ok(d, "UndefineVM", {"name": "fw"})
    assert not (d.state_dir / "consoles" / "fw").exists()


def test_console_survives_a_daemon_restart(daemons, build, test_guest):
    """memvisord killed with -9 while a guest runs: the restarted daemon reopens the guest's console pipe (QEMU
    keeps a copy of its read end) and appends to the same boot; what the guest wrote meanwhile is not lost."""
    d = daemons(name="conad", start=False)
    d.start()
    ok(d, "DefineVM", {"name": "g", "ini": linux_vm(test_guest, "idle")})
    ok(d, "StartVM", {"name": "g"})
    boot1 = d.state_dir / "consoles" / "g" / "boot-1.log"
    wait_for(lambda: b"MEMVISOR-GUEST-READY" in boot1.read_bytes(), timeout=180, what="the ready line")
    wait_for(lambda: (describe(d, "g").get("agent") or {}).get("state") == "ready", timeout=60, what="the agent")
    pid = describe(d, "g")["pid"]
    # The guest writes after a delay, while the daemon is down.
    reply = d.call(M + "GuestExec", {"name": "g", "argv": [
        "/bin/sh", "-c", "(sleep 3; echo WHILE-DOWN > /dev/ttyS0) >/dev/null 2>&1 </dev/null &"]})
    assert "error" not in reply, reply

    d.proc.kill()
    d.proc.wait()
    time.sleep(4)
    d.start()
    wait_for(lambda: describe(d, "g").get("adopted") is True, timeout=20, what="re-adoption")
    vm = describe(d, "g")
    assert vm["pid"] == pid and vm["consoleBoot"] == 1 and vm["consoleLog"] == str(boot1)
    wait_for(lambda: b"WHILE-DOWN" in boot1.read_bytes(), timeout=10, what="the output written while down")
    wait_for(lambda: (describe(d, "g").get("agent") or {}).get("state") == "ready", timeout=60, what="the agent")
    reply = d.call(M + "GuestExec", {"name": "g", "argv": ["/bin/sh", "-c", "echo AFTER-RESTART > /dev/ttyS0"]})
    assert "error" not in reply, reply
    wait_for(lambda: b"AFTER-RESTART" in boot1.read_bytes(), timeout=10, what="the output after the restart")
    assert sorted(p.name for p in boot1.parent.iterdir()) == ["boot-1.log"]
    ok(d, "KillVM", {"name": "g"})
    wait_for(lambda: describe(d, "g")["state"] == "stopped", timeout=20, what="stopped")
