# SPDX-License-Identifier: LGPL-2.1-or-later
"""MigratePages with scope guest-ram on the real QEMU under TCG: only the guest RAM mapping (found in the QEMU
process's smaps by the backend's size) is passed to move_pages(2), so the pages asked are the backend's
resident pages, not QEMU's heap; the report gives pages asked, moved and failed by errno and the guest RAM's
residency per node before and after. On a one-node host every page is asked to move to node 0, where it is:
move_pages and the report are exercised all the same. A scope that does not exist is refused."""

import os

import pytest

from test_memory import MB, guest_mapping, kb, memory_vm
from test_numa import err, host_nodes
from test_vms import M, call, firmware_vm, ok, wait_state, write_vm

SIZE_MB = 64


def nodes_list():
    n = len(host_nodes())
    return "0" if n == 1 else "0-%d" % (n - 1)


def residency_pages(a):
    return sum(x["pages"] for x in a)


@pytest.mark.parametrize("backend", ["ram", "memfd"])
def test_guest_ram_scope_moves_only_guest_ram(daemons, workdir, ctl, backend):
    d = daemons(name="gram-" + backend, start=False)
    write_vm(d, "fw", memory_vm(workdir, SIZE_MB, "Backend=%s\n" % backend))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    pid = wait_state(d, "fw", "running", timeout=60)["pid"]
    ram = guest_mapping(pid, SIZE_MB)
    start = int(ram["header"].split("-")[0], 16)
    rss_kb = kb(ram, "Rss")
    assert rss_kb > 0

    rep = ok(d, "MigratePages", {"name": "fw", "from": nodes_list(), "to": "0", "scope": "guest-ram",
                                 "settleUSec": 0})["report"]
    assert rep["result"] == "done" and rep["scope"] == "guest-ram", rep
    g = rep["guestRam"]
    assert len(g["ranges"]) == 1, g
    rg = g["ranges"][0]
    assert rg["start"] == start and rg["size"] == SIZE_MB * MB and rg["pageSize"] == 4096, rg
    assert ("memfd:" in rg.get("path", "")) == (backend == "memfd"), rg
    assert g["pagesTotal"] == SIZE_MB * MB // 4096
    # the pages asked are the guest RAM's resident pages: between its smaps Rss before the call and after it (a
    # booting firmware only ever touches more of its RAM), never more than the range holds
    rss_after_kb = kb(guest_mapping(pid, SIZE_MB), "Rss")
    asked = g["pagesAsked"]
    assert asked == residency_pages(g["residencyBefore"]) or len(host_nodes()) > 1
    assert rss_kb // 4 <= asked <= rss_after_kb // 4 <= g["pagesTotal"], (rss_kb, asked, rss_after_kb)
    assert asked + g["notPresentBefore"] == g["pagesTotal"]
    # QEMU's own memory (heap, code, TCG buffer) is resident too but was not asked
    process_pages = sum(x["pages"] for x in rep["residencyBefore"])
    assert process_pages > asked + 1024, (process_pages, asked)
    # moved to node 0, where every page of a one-node host already is
    assert g["pagesMoved"] + g["pagesFailed"] == asked
    assert g["pagesFailed"] == sum(f["pages"] for f in g["failed"])
    if len(host_nodes()) == 1:
        assert g["pagesMoved"] == asked and g["failed"] == [], g
        assert [x["node"] for x in g["residencyAfter"]] == [0]
    assert residency_pages(g["residencyAfter"]) == g["pagesTotal"] - g["notPresentAfter"]
    assert g["calls"] >= (asked + 4095) // 4096

    # recorded with its scope, and memvisorctl shows the move_pages figures
    recs = ok(d, "ListMigrations", {"name": "fw"})["migrations"]
    assert recs[-1]["scope"] == "guest-ram" and recs[-1]["guestRam"]["pagesAsked"] == asked
    r = ctl("migrate", "fw", "--from", nodes_list(), "--to", "0", "--scope=guest-ram", "--settle=0",
            address=d.socket)
    assert r.returncode == 0, r.stderr
    assert "move_pages:" in r.stdout and "pages asked" in r.stdout and "guest RAM before:" in r.stdout, r.stdout

    ok(d, "KillVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)


def test_guest_ram_scope_refusals(daemons, workdir, ctl):
    d = daemons(name="gram-bad", start=False)
    write_vm(d, "fw", firmware_vm(workdir))
    d.start()
    ok(d, "StartVM", {"name": "fw"})
    wait_state(d, "fw", "running", timeout=60)

    for scope in ("bogus", "", 3):
        assert err(call(d, "MigratePages", {"name": "fw", "from": "0", "to": "0", "scope": scope})) == \
            ("org.varlink.service.InvalidParameter", {"parameter": "scope"}), scope
    r = ctl("migrate", "fw", "--from", "0", "--to", "0", "--scope=whole", address=d.socket)
    assert r.returncode == 1 and "scope" in r.stderr, (r.returncode, r.stderr)
    # the default scope is the process's, which a one-node host refuses as before
    if len(host_nodes()) == 1:
        e, _ = err(call(d, "MigratePages", {"name": "fw", "from": "0", "to": "0", "scope": "process"}))
        assert e == M + "SingleNUMANode"
    assert ok(d, "ListMigrations", {"name": "fw"})["migrations"] == []
    ok(d, "KillVM", {"name": "fw"})
    wait_state(d, "fw", "stopped", timeout=20)
