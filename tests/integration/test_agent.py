# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest agent (issue 14): memvisord's agent channel ([VM] GuestAgent=yes), the GuestInfo, GuestCounters,
GuestExec and GuestCopy methods and memvisorctl guest, against

- a hostile agent behind a fake QEMU (fake-qemu-agent.py: garbage, a 100 MiB reply, deep JSON, silence, stale
  replies): each is bounded, resets the channel and leaves the daemon and the guest's supervision alone;
- the real qemu-ga in the Linux test guest under TCG: readings checked against what the guest says itself, a
  program run around two snapshots, exec's exit code, signal, timeout and truncation, the agent killed mid-call,
  a guest without an agent."""

import base64
import json
import time

import pytest

from memvisor_it import REPO, rss_kib, wait_for

M = "io.memvisor.Manager."
FAKE = REPO / "tests/integration/fake-qemu-agent.py"


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def err(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" in reply, reply
    return reply["error"], reply.get("parameters", {})


def agent(d, name):
    return ok(d, "DescribeVM", {"name": name})["vm"].get("agent")


def wait_agent(d, name, state, timeout=20.0):
    last = {}

    def check():
        nonlocal last
        last = agent(d, name) or {}
        return last.get("state") == state

    wait_for(check, timeout=timeout, what="agent of %s %s (last: %s)" % (name, state, last))
    return last


def fake_guest(d, name, mode, extra=""):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text("[VM]\nMemory=128M\nEmulator=%s\nAccelerator=tcg\nDisk=/dev/null\nStopTimeoutSec=2s\n%s"
                                           % (FAKE, extra))
    ok(d, "Reload")


# ---- a fake QEMU with a good or hostile agent --------------------------------------------------------------


def test_fake_agent_ready_and_describe(daemons, ctl, workdir):
    d = daemons(name="ag", env={"FAKE_AGENT_MODE": "good"})
    fake_guest(d, "g", "good")
    ok(d, "StartVM", {"name": "g"})
    a = wait_agent(d, "g", "ready")
    assert a["version"] == "7.2.99-fake"
    assert "guest-info" in a["commands"] and a["socket"].endswith("/g/qga.sock")
    vm = ok(d, "DescribeVM", {"name": "g"})["vm"]
    assert any("name=org.qemu.guest_agent.0" in x for x in vm["argv"])
    # The metric series (rendered at the next guest sampler tick).
    def agent_series():
        for f in ok(d, "GetMetrics")["metrics"]:
            if f["name"] == "memvisor_guest_agent_state":
                return {s["labels"]["state"]: s["value"] for s in f["samples"] if s["labels"]["vm"] == "g"}
        return None

    wait_for(lambda: agent_series() == {"absent": 0, "connecting": 0, "ready": 1}, timeout=15,
             what="memvisor_guest_agent_state")
    r = ctl("status", "g", address=d.socket)
    assert r.returncode == 0 and "ready" in r.stdout, r.stdout + r.stderr


def test_guest_agent_no_port(daemons, ctl):
    d = daemons(name="ag0")
    fake_guest(d, "g", "good", "GuestAgent=no\n")
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", what="running")
    vm = ok(d, "DescribeVM", {"name": "g"})["vm"]
    assert "agent" not in vm and not any("guest_agent" in x for x in vm["argv"])
    e, p = err(d, "GuestInfo", {"name": "g"})
    assert e == M + "AgentNotConnected" and "GuestAgent=no" in p["reason"], p
    # Not running, unknown guest.
    e, _ = err(d, "GuestCounters", {"name": "nope"})
    assert e == M + "NoSuchVM"


@pytest.mark.parametrize("mode", ["garbage", "huge", "deep", "silent", "stale"])
def test_hostile_agent_is_bounded(daemons, ctl, workdir, mode):
    log = workdir / ("agent-%s.log" % mode)
    d = daemons(name="h" + mode[:3], env={"FAKE_AGENT_MODE": mode, "FAKE_AGENT_LOG": str(log)})
    fake_guest(d, "g", mode)
    ok(d, "StartVM", {"name": "g"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "running", what="running")
    rss_before = rss_kib(d.pid)

    t0 = time.monotonic()
    reply = d.call(M + "GuestInfo", {"name": "g"})
    took = time.monotonic() - t0
    if mode == "stale":
        # Stale replies (another sync id, an old answer) are dropped: the right reply is the one used.
        assert "error" not in reply, reply
        info = reply["parameters"]["info"]
        assert info["agentVersion"] == "7.2.99-fake" and info["kernelRelease"] == "6.1.0-fake", info
        assert info["vcpus"] == 1 and {u["name"] for u in info["unavailable"]} >= {"guest-get-memory-blocks", "nodes"}, info
        return
    assert reply.get("error") in (M + "AgentNotConnected", M + "AgentTimeout", M + "AgentCommandFailed"), reply
    assert took < 15, took
    a = agent(d, "g")
    assert a["state"] in ("absent", "connecting"), a
    if mode == "huge":
        assert "larger than 1048576 bytes" in (a.get("reason") or ""), a
    # The daemon still serves, the guest is still supervised, memory stayed bounded.
    assert ok(d, "ListVMs")["vms"][0]["state"] == "running"
    assert rss_kib(d.pid) - rss_before < 32 * 1024, (rss_before, rss_kib(d.pid))
    # A second call fails fast or the same way; nothing hangs.
    t0 = time.monotonic()
    reply = d.call(M + "GuestCounters", {"name": "g"})
    assert "error" in reply and time.monotonic() - t0 < 15, reply
    r = ctl("stop", "g", address=d.socket)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: ok(d, "DescribeVM", {"name": "g"})["vm"]["state"] == "stopped", what="stopped")


# ---- the real qemu-ga in the Linux test guest (TCG) --------------------------------------------------------


@pytest.fixture(scope="session")
def test_guest(build):
    return build.test_guest()


def real_guest(d, test_guest, name="ga", append="", vcpus=2):
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / (name + ".vm")).write_text(
        "[VM]\nMemory=512M\nVCPUs=%d\nAccelerator=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd.gz\n"
        "Append=console=ttyS0 quiet %s\nStopTimeoutSec=3s\n" % (vcpus, test_guest, test_guest, append))
    ok(d, "Reload")
    ok(d, "StartVM", {"name": name})
    console = ok(d, "DescribeVM", {"name": name})["vm"]["consoleLog"]

    def ready():
        try:
            with open(console, "rb") as f:
                return b"MEMVISOR-GUEST-READY" in f.read()
        except FileNotFoundError:
            return False

    wait_for(ready, timeout=120, what="the guest's ready line")
    return console


def exec_(d, name, argv, **kw):
    p = {"name": name, "argv": argv}
    p.update(kw)
    reply = d.call(M + "GuestExec", p)
    return reply


def test_real_agent(daemons, ctl, test_guest, build):
    d = daemons(name="ra", config="[Metrics]\nGuestCountersIntervalSec=1s\nGuestSampleIntervalSec=1s\n")
    console = real_guest(d, test_guest)
    a = wait_agent(d, "ga", "ready", timeout=60)
    assert "guest-exec" in a["commands"] and "guest-file-read" in a["commands"], a

    # GuestInfo: the kernel release the guest prints on its console (uname -r), the vCPUs QEMU was given.
    info = ok(d, "GuestInfo", {"name": "ga"})["info"]
    wait_for(lambda: b"MEMVISOR-GUEST-KERNEL " in open(console, "rb").read(), timeout=10, what="the kernel line")
    printed = [l.split(b" ", 1)[1].strip().decode() for l in open(console, "rb").read().splitlines()
               if l.startswith(b"MEMVISOR-GUEST-KERNEL ")][0]
    assert info["kernelRelease"] == printed, (info, printed)
    assert info["vcpus"] == 2 and info["vcpusOnline"] == 2, info
    assert info["agentVersion"] == a["version"]

    # counters --around memvisor-touch: the guest's page faults cover the touched pages; TLB: one number per
    # CPU; the nr_tlb_* counters of a kernel without CONFIG_DEBUG_TLBFLUSH say so.
    r = ctl("--json", "guest", "ga", "counters", "--around", "--", "/usr/bin/memvisor-touch", "--mib=64", "--write",
            address=d.socket, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    around = json.loads(r.stdout)
    before, after, ex = around["before"], around["after"], around["exec"]
    touch = json.loads(base64.b64decode(ex["stdout"]))
    pages = (64 << 20) // 4096
    assert touch["pages_touched"] >= pages, touch
    assert after["vmstat"]["pgfault"] - before["vmstat"]["pgfault"] >= pages, (before["vmstat"]["pgfault"],
                                                                               after["vmstat"]["pgfault"])
    assert len(after["tlb"]) == 2 and len(after["cal"]) == 2, after.get("tlb")
    assert after["interruptCPUs"] == 2
    unav = {u["name"]: u["reason"] for u in after["unavailable"]}
    if "nr_tlb_remote_flush" not in after["vmstat"]:
        assert "CONFIG_DEBUG_TLBFLUSH" in unav["nr_tlb_remote_flush"], unav
    assert after["meminfoBytes"]["MemTotal"] > 256 << 20
    # The readable form.
    r = ctl("guest", "ga", "counters", address=d.socket, timeout=60)
    assert r.returncode == 0 and "TLB shootdowns" in r.stdout and "pgfault" in r.stdout, r.stdout + r.stderr

    # The exporter's series of the guest's own counters (GuestCountersIntervalSec=1s): per CPU, and pgfault.
    def guest_series():
        got = {}
        for f in ok(d, "GetMetrics")["metrics"]:
            for smp in f["samples"]:
                if smp["labels"].get("vm") == "ga":
                    got[(f["name"], smp["labels"].get("cpu") or smp["labels"].get("counter"))] = smp["value"]
        return got

    # A reading taken after the touch (every second) shows its faults.
    wait_for(lambda: guest_series().get(("memvisor_guest_vmstat_events_total", "pgfault"), 0) >=
             after["vmstat"]["pgfault"], timeout=20, what="the guest counter series after the touch")
    series = guest_series()
    assert ("memvisor_guest_tlb_shootdowns_total", "1") in series, series
    assert ("memvisor_guest_vmstat_events_total", "nr_tlb_remote_flush") not in series  # unavailable: no series
    assert ("memvisor_guest_function_call_interrupts_total", "0") in series

    # GuestExec: exit code, signal, timeout, truncation, a missing program; memvisorctl's exit status.
    x = exec_(d, "ga", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])["parameters"]["result"]
    assert x["exited"] and x["exitCode"] == 3, x
    assert base64.b64decode(x["stdout"]) == b"out\n" and base64.b64decode(x["stderr"]) == b"err\n"
    r = ctl("guest", "ga", "exec", "--", "/bin/sh", "-c", "exit 3", address=d.socket, timeout=60)
    assert r.returncode == 3, r.stderr
    x = exec_(d, "ga", ["/bin/sh", "-c", "kill -9 $$"])["parameters"]["result"]
    assert x["signal"] == 9, x
    r = ctl("guest", "ga", "exec", "--", "/bin/sh", "-c", "kill -9 $$", address=d.socket, timeout=60)
    assert r.returncode == 137, r.stderr
    t0 = time.monotonic()
    x = exec_(d, "ga", ["/bin/sleep", "60"], timeoutUSec=2_000_000)["parameters"]["result"]
    assert x["timedOut"] and time.monotonic() - t0 < 30, x
    assert x["killed"] or x.get("killError"), x
    x = exec_(d, "ga", ["/bin/sh", "-c", "head -c 100000 /dev/zero"], maxOutputBytes=1000)["parameters"]["result"]
    assert x["stdoutTruncated"] and x["stdoutBytes"] == 1000 and len(base64.b64decode(x["stdout"])) == 1000, x
    reply = exec_(d, "ga", ["/nonexistent/program"])
    assert reply["error"] == M + "AgentCommandFailed", reply
    assert reply["parameters"]["command"] == "guest-exec", reply

    # GuestCopy, then run what was copied.
    script = build.path / "agent-copy-test.sh"
    script.write_text("#!/bin/sh\necho copied-ok \"$@\"\n")
    r = ctl("guest", "ga", "copy", "--mode=0755", str(script), "/tmp/copied.sh", address=d.socket, timeout=60)
    assert r.returncode == 0, r.stderr
    r = ctl("guest", "ga", "exec", "--", "/tmp/copied.sh", "x", address=d.socket, timeout=60)
    assert r.returncode == 0 and r.stdout == "copied-ok x\n", (r.stdout, r.stderr)

    # Exec and copy are privileged; readings are not.
    r = ctl("guest", "ga", "exec", "--", "/bin/true", address=d.socket, uid=65534, gid=65534)
    assert r.returncode == 255 and "PermissionDenied" in r.stderr, r.stderr
    r = ctl("guest", "ga", "info", address=d.socket, uid=65534, gid=65534, timeout=60)
    assert r.returncode == 0, r.stderr
    log = d.log_text()
    assert "guest-exec of \"/bin/sh -c exit 3\" by varlink uid 0" in log

    # The agent killed mid-call: the caller gets an answer, the agent comes back (the test image restarts it),
    # and the next call resynchronises. Supervision never noticed.
    reply = exec_(d, "ga", ["/bin/sh", "-c", "sleep 1; kill -9 $(pidof qemu-ga)"], timeoutUSec=20_000_000)
    assert reply.get("error") in (M + "AgentNotConnected", M + "AgentTimeout") or \
        "result" in reply.get("parameters", {}), reply
    wait_agent(d, "ga", "ready", timeout=60)
    assert ok(d, "GuestInfo", {"name": "ga"})["info"]["vcpus"] == 2
    vm = ok(d, "DescribeVM", {"name": "ga"})["vm"]
    assert vm["state"] == "running" and vm["restarts"] == 0, vm
    assert b"MEMVISOR-GUEST-AGENT" in open(console, "rb").read()


def test_guest_without_agent(daemons, test_guest):
    d = daemons(name="na")
    real_guest(d, test_guest, name="noga", append="memvisor.agent=0", vcpus=1)
    # Nothing answers: the first call waits for the sync to time out, the next ones fail at once.
    t0 = time.monotonic()
    e, p = err(d, "GuestInfo", {"name": "noga"})
    assert e == M + "AgentNotConnected" and time.monotonic() - t0 < 20, (e, p)
    assert p["state"] == "absent" and p["reason"], p
    t0 = time.monotonic()
    e, _ = err(d, "GuestCounters", {"name": "noga"})
    assert e == M + "AgentNotConnected" and time.monotonic() - t0 < 1.0
    vm = ok(d, "DescribeVM", {"name": "noga"})["vm"]
    assert vm["state"] == "running" and vm["agent"]["state"] == "absent", vm
    ok(d, "StopVM", {"name": "noga"})
    wait_for(lambda: ok(d, "DescribeVM", {"name": "noga"})["vm"]["state"] == "stopped", timeout=20, what="stopped")
