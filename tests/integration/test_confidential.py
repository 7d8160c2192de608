# SPDX-License-Identifier: LGPL-2.1-or-later
"""Confidential guests ([VM] Confidential=, issue 17) with the real daemon: GetHostInfo (varlink and memvisorctl
host) reports what this host and its QEMU support, with the reason for each "no"; a confidential guest is refused
at DefineVM and at start with the host's reason (this machine has no /dev/kvm, no SEV, no TDX: the refusal is
the test; on a host with the support the reason is this build's), nothing spawned; and balloon, page migration
and virtio-mem refuse such a guest with ConfidentialGuest and the reason, whatever its state."""

import json
import os
import shutil
import subprocess

import pytest


M = "io.memvisor.Manager."
MiB = 1 << 20
KINDS = ["sev", "sev-es", "sev-snp", "tdx"]
OBJECTS = {"sev": "sev-guest", "sev-es": "sev-guest", "sev-snp": "sev-snp-guest", "tdx": "tdx-guest"}


def ok(d, method, params=None):
    reply = d.call(M + method, params)
    assert "error" not in reply, reply
    return reply["parameters"]


def qemu_objects():
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        return None
    out = subprocess.run([qemu, "-object", "help"], capture_output=True, text=True, timeout=30).stdout
    return {line.strip() for line in out.splitlines()}


def host_has(kind):
    param = {"sev": "kvm_amd/parameters/sev", "sev-es": "kvm_amd/parameters/sev_es",
             "sev-snp": "kvm_amd/parameters/sev_snp", "tdx": "kvm_intel/parameters/tdx"}[kind]
    try:
        value = open("/sys/module/" + param).read().strip()
    except OSError:
        return False
    return value in ("Y", "1") and os.path.exists("/dev/kvm") and (kind == "tdx" or os.path.exists("/dev/sev"))


def test_get_host_info(daemons, ctl):
    d = daemons(name="hi")
    info = ok(d, "GetHostInfo")
    assert info["kvm"] is os.access("/dev/kvm", os.R_OK | os.W_OK), info
    assert info["kvm"] or "/dev/kvm" in info["kvmReason"], info
    assert [c["kind"] for c in info["confidential"]] == KINDS, info
    objects = qemu_objects()
    for c in info["confidential"]:
        assert c["qemuObject"] == OBJECTS[c["kind"]], c
        assert c["host"] is host_has(c["kind"]), c
        assert c["usable"] is False and c["reason"], c
        if not c["host"]:
            assert c["hostReason"] and c["reason"] == c["hostReason"], c
            if not os.path.exists("/dev/kvm"):
                assert c["hostReason"].startswith("no /dev/kvm"), c
        if objects is None:
            assert "qemu" not in c and "not in PATH" in c["qemuReason"], c
        else:
            assert c["qemu"] is (c["qemuObject"] in objects), (c, objects)
            assert c["qemu"] or ("does not list " + c["qemuObject"]) in c["qemuReason"], c
    print(json.dumps(info, indent=1))

    r = ctl("host", address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "Committed_AS:" in r.stdout and "Confidential:" in r.stdout, r.stdout
    for kind in ("SEV", "SEV-ES", "SEV-SNP", "TDX"):
        assert (" %s: " % kind) in r.stdout, r.stdout
    r = ctl("--json", "host", address=d.socket)
    host = json.loads(r.stdout)
    assert "commitLimitBytes" in host["sample"] and host["info"]["confidential"] == info["confidential"], host


def vm_text(kind, extra=""):
    return ("[VM]\nMemory=128M\nConfidential=%s\nKernel=/nonexistent/vmlinuz\nStopTimeoutSec=1s\n%s" % (kind, extra))


def test_confidential_guest_refused(daemons):
    d = daemons(name="cg")
    kinds = [k for k in ("sev", "sev-snp", "tdx")]

    # at definition: the host's reason (or this build's), under VM.Confidential; nothing defined
    for kind in kinds:
        reply = d.call(M + "DefineVM", {"name": "c-" + kind, "ini": vm_text(kind)})
        assert reply.get("error") == M + "InvalidDefinition", reply
        text = json.dumps(reply)
        assert "VM.Confidential" in text and ("Confidential=%s: " % kind) in text, reply
        assert ("this host cannot run" in text) is not host_has(kind), reply
        assert "not supported by this memvisor build on this host" in text or not host_has(kind), reply
    names = [v["name"] for v in ok(d, "ListVMs")["vms"]]
    assert not any(n.startswith("c-") for n in names), names
    # rules between keys
    reply = d.call(M + "DefineVM", {"name": "t", "ini": vm_text("sev", "Accelerator=tcg\n")})
    assert reply.get("error") == M + "InvalidDefinition" and "needs KVM" in json.dumps(reply), reply

    # a definition file (not checked against the host when loaded): start refused with the reason, no QEMU
    d.vm_dir.mkdir(exist_ok=True)
    (d.vm_dir / "secret.vm").write_text(vm_text("tdx", "Balloon=yes\n"))
    ok(d, "Reload")
    r = d.call(M + "StartVM", {"name": "secret"})
    assert r.get("error") == M + "StartFailed", r
    reason = r["parameters"]["reason"]
    if host_has("tdx"):
        assert reason.startswith("Confidential=tdx: not supported by this memvisor build on this host"), reason
    else:
        assert reason.startswith("Confidential=tdx: this host cannot run TDX guests: "), reason
    vm = ok(d, "DescribeVM", {"name": "secret"})["vm"]
    assert vm["state"] in ("defined", "failed") and not vm.get("pid"), vm
    assert reason in d.log_text()

    # the operations on its private memory: ConfidentialGuest, whatever the state (here: never started)
    for method, params, operation, words in (
            ("SetBalloon", {"name": "secret", "targetBytes": 64 * MiB}, "balloon", "through the balloon"),
            ("SetBalloonSchedule", {"name": "secret", "mode": "oscillate", "fromBytes": 64 * MiB,
                                    "toBytes": 128 * MiB, "everyUSec": 1000000, "count": 2}, "balloon", "through the balloon"),
            ("MigratePages", {"name": "secret", "from": "0", "to": "1"}, "page-migration",
             "cannot be moved between host nodes"),
            ("MigratePages", {"name": "secret", "from": "0", "to": "1", "scope": "guest-ram"}, "page-migration",
             "cannot be moved between host nodes"),
            ("SetHotplugMemory", {"name": "secret", "sizeBytes": 0}, "virtio-mem", "cannot plug or unplug")):
        reply = d.call(M + method, params)
        assert reply.get("error") == M + "ConfidentialGuest", (method, reply)
        p = reply["parameters"]
        assert p["name"] == "secret" and p["confidential"] == "tdx" and p["operation"] == operation, reply
        assert p["reason"].startswith("Confidential=tdx: ") and words in p["reason"], reply
