# SPDX-License-Identifier: LGPL-2.1-or-later
"""[Memory] backends and page sizes with the real QEMU under TCG, seen from the QEMU process's smaps: a shared
or a private memfd (Share=), 2 MiB hugetlb pages (HugePages=yes, HugePageSize=2M) when the host can reserve
them, the refusal with the figures when none are free, a page size the host does not offer refused at
definition; and the commit charge of a start (Committed_AS before the spawn and once running) for Share=no
and Share=yes, with and without Prealloc=, in DescribeVM and the metric series."""

import os
import re
import statistics
import subprocess

import pytest

from memvisor_it import wait_for

from test_vms import M, call, describe, firmware_vm, ok, wait_state, write_vm

MB = 1 << 20
HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HUGEPAGES_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB"


def memory_vm(workdir, size_mb, memory):
    """A firmware guest of size_mb with a [Memory] section (firmware_vm's own Memory=64M is replaced)."""
    return firmware_vm(workdir).replace("Memory=64M\n", "Memory=%dM\n" % size_mb) + "[Memory]\n" + memory


def guest_mapping(pid, size_mb):
    """The smaps entry of the guest RAM: the one mapping of exactly the guest's size, as a dict of its fields,
    with 'header' (the maps line) and 'flags' (VmFlags as a set)."""
    found = []
    with open("/proc/%d/smaps" % pid) as f:
        entry = None
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                entry = {"header": line.strip()}
                found.append(entry)
            elif line.startswith("VmFlags:"):
                entry["flags"] = set(line.split(":", 1)[1].split())
            else:
                k, _, v = line.partition(":")
                entry[k] = v.strip()
    ram = [e for e in found if e.get("Size") == "%d kB" % (size_mb * 1024)]
    assert len(ram) == 1, "expected one mapping of %d MiB in QEMU's smaps, found %s" % (size_mb, ram)
    return ram[0]


def kb(entry, field):
    return int(entry[field].split()[0])


def start_and_describe(d, name):
    ok(d, "StartVM", {"name": name})
    return wait_state(d, name, "running", timeout=60)


def kill(d, name):
    ok(d, "KillVM", {"name": name})
    wait_state(d, name, "stopped", timeout=20)


def test_share_seen_in_smaps(daemons, workdir, ctl):
    d = daemons(name="share", start=False)
    write_vm(d, "shared", memory_vm(workdir, 128, "Backend=memfd\nShare=yes\nPrealloc=yes\nPreallocThreads=2\n"))
    write_vm(d, "private", memory_vm(workdir, 128, "Backend=memfd\nShare=no\nPrealloc=yes\nMerge=no\nDump=no\n"))
    write_vm(d, "ramshared", memory_vm(workdir, 128, "Share=yes\n"))
    d.start()

    vm = start_and_describe(d, "shared")
    assert "share=on" in vm["commandLine"] and "prealloc-threads=2" in vm["commandLine"]
    m = guest_mapping(vm["pid"], 128)
    assert "memfd:" in m["header"], m
    assert "sh" in m["flags"] and "ht" not in m["flags"], m
    assert kb(m, "Anonymous") == 0, m                   # a shared mapping has no anonymous (COW) pages
    assert kb(m, "Rss") == 128 * 1024, m                # preallocated: every page is there
    r = ctl("status", "shared", address=d.socket)
    assert r.returncode == 0 and re.search(r"Commit charge: [+-][0-9.]+[KMG]? at start \(host Committed_AS ", r.stdout), \
        r.stdout
    kill(d, "shared")

    vm = start_and_describe(d, "private")
    assert "share=off,merge=off,dump=off" in vm["commandLine"]
    m = guest_mapping(vm["pid"], 128)
    assert "memfd:" in m["header"], m
    assert "sh" not in m["flags"], m
    assert "dd" in m["flags"], m                        # Dump=no: MADV_DONTDUMP
    assert "mg" not in m["flags"], m                    # Merge=no: never MADV_MERGEABLE
    assert kb(m, "Anonymous") == 128 * 1024, m          # prealloc wrote every page: private copies
    kill(d, "private")

    # Backend=ram with Share=yes: a shared anonymous mapping (shmem), not a memfd.
    vm = start_and_describe(d, "ramshared")
    m = guest_mapping(vm["pid"], 128)
    assert "sh" in m["flags"] and "memfd:" not in m["header"], m
    kill(d, "ramshared")


@pytest.fixture
def hugepages_2m():
    """Lets the test set the number of 2 MiB huge pages; restores the host's number afterwards."""
    if os.geteuid() != 0:
        pytest.skip("reserving huge pages needs root (/proc/sys/vm/nr_hugepages)")
    if not os.path.isdir(HUGEPAGES_2M):
        pytest.skip("the host has no 2 MiB huge pages (%s)" % HUGEPAGES_2M)
    with open(HUGEPAGES_2M + "/nr_hugepages") as f:
        saved = int(f.read())

    def reserve(n):
        with open(HUGEPAGES_2M + "/nr_hugepages", "w") as f:
            f.write("%d\n" % n)
        with open(HUGEPAGES_2M + "/nr_hugepages") as f:
            return int(f.read())

    yield reserve
    reserve(saved)


def free_2m():
    with open(HUGEPAGES_2M + "/free_hugepages") as f:
        free = int(f.read())
    with open(HUGEPAGES_2M + "/resv_hugepages") as f:
        return free - int(f.read())


def test_hugetlb_2m(daemons, workdir, hugepages_2m):
    d = daemons(name="huge", start=False)
    write_vm(d, "huge", memory_vm(workdir, 64, "Backend=memfd\nHugePages=yes\nHugePageSize=2M\nPrealloc=yes\n"))
    d.start()

    # Room for this guest (32 pages) besides what others on the host hold.
    have = hugepages_2m(32 + (int(open(HUGEPAGES_2M + "/nr_hugepages").read()) - free_2m()))
    if free_2m() < 32:
        pytest.skip("could not reserve 32 free 2 MiB pages (nr_hugepages is %d, %d free)" % (have, free_2m()))
    vm = start_and_describe(d, "huge")
    assert "hugetlb=on,hugetlbsize=2097152" in vm["commandLine"]
    m = guest_mapping(vm["pid"], 64)
    assert m["KernelPageSize"] == "2048 kB" and "ht" in m["flags"], m
    assert kb(m, "Shared_Hugetlb") + kb(m, "Private_Hugetlb") == 64 * 1024, m
    assert kb(m, "Anonymous") == 0, m
    kill(d, "huge")

    # None free: refused before QEMU is spawned, with the figures, in the reply, the state and the log.
    hugepages_2m(int(open(HUGEPAGES_2M + "/nr_hugepages").read()) - free_2m())
    free = free_2m()
    assert free < 32
    r = call(d, "StartVM", {"name": "huge"})
    assert r.get("error") == M + "StartFailed", r
    reason = r["parameters"]["reason"]
    assert reason.startswith("HugePageSize=2M: the guest needs 32 huge pages of 2M (64M); the host has %d free, "
                             "not reserved" % free), reason
    vm = describe(d, "huge")
    assert vm["state"] == "failed" and vm["stateReason"] == reason and vm.get("pid") is None, vm
    d.wait_for_log("needs 32 huge pages of 2M")


@pytest.fixture
def hugetlbfs_2m(workdir):
    """A hugetlbfs mount with 2 MiB pages in the test's directory, unmounted afterwards."""
    mnt = workdir / "hugetlbfs-2m"
    mnt.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount hugetlbfs: %s" % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "--lazy", str(mnt)], check=True)   # lazy: a QEMU left by a failed test may hold it


def test_hugetlbfs_file(daemons, workdir, hugepages_2m, hugetlbfs_2m):
    """Backend=file on a hugetlbfs mount of that size: the page size of the mount must match HugePageSize=, a Path=
    not on hugetlbfs is refused with HugePages=yes, and the free pages are checked as for a memfd."""
    plain = workdir / "plain"
    plain.mkdir(exist_ok=True)
    d = daemons(name="hfile", start=False)
    base = "Backend=file\nHugePages=yes\nPrealloc=yes\nPath=%s\n"
    write_vm(d, "hf", memory_vm(workdir, 64, base % hugetlbfs_2m + "HugePageSize=2M\n"))
    write_vm(d, "hf1g", memory_vm(workdir, 1024, base % hugetlbfs_2m + "HugePageSize=1G\n"))
    write_vm(d, "notfs", memory_vm(workdir, 64, base % plain))
    d.start()

    hugepages_2m(32 + (int(open(HUGEPAGES_2M + "/nr_hugepages").read()) - free_2m()))
    if free_2m() < 32:
        pytest.skip("could not reserve 32 free 2 MiB pages")
    vm = start_and_describe(d, "hf")
    m = guest_mapping(vm["pid"], 64)
    assert str(hugetlbfs_2m) in m["header"] and m["KernelPageSize"] == "2048 kB" and "ht" in m["flags"], m
    kill(d, "hf")

    for name, reason in (
            ("hf1g", "HugePageSize=1G: Path=%s is on a hugetlbfs mount of 2M pages (mount one with -o pagesize=1G)"
             % hugetlbfs_2m),
            ("notfs", "HugePages=yes: Path=%s is not on a hugetlbfs mount" % plain)):
        r = call(d, "StartVM", {"name": name})
        assert r.get("error") == M + "StartFailed" and r["parameters"]["reason"] == reason, r

    hugepages_2m(int(open(HUGEPAGES_2M + "/nr_hugepages").read()) - free_2m())
    r = call(d, "StartVM", {"name": "hf"})
    assert r.get("error") == M + "StartFailed", r
    assert r["parameters"]["reason"].startswith("Path=%s: the guest needs 32 huge pages of 2M (64M); the host has "
                                                "%d free" % (hugetlbfs_2m, free_2m())), r


def test_unoffered_size_refused_at_definition(daemon):
    offered = os.listdir("/sys/kernel/mm/hugepages") if os.path.isdir("/sys/kernel/mm/hugepages") else []
    if "hugepages-1048576kB" in offered:
        pytest.skip("this host offers 1 GiB pages")
    sizes = sorted(int(s[len("hugepages-"):-2]) for s in offered)
    text = ", ".join("%dM" % (s >> 10) if s < 1 << 20 else "%dG" % (s >> 20) for s in sizes) or "none"
    r = call(daemon, "DefineVM", {"definition": {
        "VM": {"Name": "big", "Memory": "2G", "Kernel": "/boot/vmlinuz"},
        "Memory": {"Backend": "memfd", "HugePages": True, "HugePageSize": "1G"}}})
    assert r.get("error") == M + "InvalidDefinition", r
    assert r["parameters"] == {"field": "Memory.HugePageSize",
                               "reason": "HugePageSize=1G: the host offers no huge pages of 1G (it offers: %s)" % text}
    assert call(daemon, "DescribeVM", {"name": "big"})["error"] == M + "NoSuchVM"
    # Bad values are refused with the key, in the JSON form as in .vm files.
    for memory, field in (({"HugePageSize": "3M"}, "Memory.HugePageSize"), ({"Share": "private"}, "Memory.Share"),
                          ({"Reserve": "swap"}, "Memory.Reserve"),
                          ({"Prealloc": True, "Reserve": False}, "Memory.Reserve")):
        r = call(daemon, "DefineVM", {"definition": {"VM": {"Name": "bad", "Kernel": "/boot/vmlinuz"},
                                                      "Memory": memory}})
        assert r.get("error") == M + "InvalidDefinition" and r["parameters"]["field"] == field, r


def commit_series(d, name):
    return [smp["value"] for m in ok(d, "GetMetrics", {})["metrics"]
            if m["name"] == "memvisor_guest_commit_charge_bytes"
            for smp in m["samples"] if (smp.get("labels") or {}).get("vm") == name]


# Processes whose start or end moves Committed_AS by a GiB: other QEMUs (their TCG translation cache), which
# the other work on a shared test host starts and stops. Smaller noise (compilers: some 100 MiB) is left to the
# medians and margins.
BIG = re.compile(r"^qemu-system-")


def big_processes():
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if BIG.match(comm):
                out.add(int(pid))
    return out


def commit_charge(d, name, check_metric=False):
    """The commit charge of one start, or None when another QEMU started or ended meanwhile (the sample is
    then worthless: see BIG)."""
    before = big_processes()
    vm = start_and_describe(d, name)
    after = big_processes() - {vm["pid"]}
    c = vm["commitCharge"]
    assert c["differenceBytes"] == c["afterBytes"] - c["beforeBytes"]
    if check_metric:
        # The same figure as a metric series while the guest runs (from the sampler's next round).
        wait_for(lambda: commit_series(d, name) == [c["differenceBytes"]], timeout=15,
                 what="memvisor_guest_commit_charge_bytes{vm=%s} = %d" % (name, c["differenceBytes"]))
    kill(d, name)
    if check_metric:
        wait_for(lambda: commit_series(d, name) == [], timeout=15, what="the series gone with the guest")
    return c["differenceBytes"] if before == after else None


SIZE_MB = 1024
REPEATS = 3
MAX_TRIES = 20


def test_commit_charge_share(daemons, workdir, record_property):
    """Committed_AS is host-wide: other work on the host adds noise, so a start during which another QEMU
    started or ended is not counted, each configuration is measured REPEATS times, and the medians
    are compared, with margins of a quarter of the guest's size."""
    d = daemons(name="commit", start=False)
    configs = {}
    for share in ("no", "yes"):
        for prealloc in ("no", "yes"):
            name = "s%s-p%s" % (share, prealloc)
            configs[name] = (share, prealloc)
            write_vm(d, name, memory_vm(workdir, SIZE_MB, "Backend=memfd\nShare=%s\nPrealloc=%s\n" % (share, prealloc)))
    # Backend=ram for comparison: private anonymous memory, touched or not, and without reservation.
    write_vm(d, "ram", memory_vm(workdir, SIZE_MB, "Prealloc=yes\n"))
    configs["ram"] = ("(ram)", "yes")
    write_vm(d, "ram-pno", memory_vm(workdir, SIZE_MB, ""))
    configs["ram-pno"] = ("(ram)", "no")
    write_vm(d, "ram-noreserve", memory_vm(workdir, SIZE_MB, "Reserve=no\n"))
    configs["ram-noreserve"] = ("(ram) Reserve=no", "no")
    d.start()

    charge, tried = {}, {}
    for name in configs:
        samples, tries = [], 0
        while len(samples) < REPEATS:
            tries += 1
            if tries > MAX_TRIES:
                pytest.skip("the host is too busy to measure: other QEMUs started or ended during "
                            "%d of %d starts of %s" % (tries - 1 - len(samples), tries - 1, name))
            diff = commit_charge(d, name, check_metric=name == "ram" and tries == 1)
            if diff is not None:
                samples.append(diff)
        charge[name] = statistics.median(samples)
        tried[name] = (tries, [x // MB for x in samples])
    table = "\n".join("Share=%-18s Prealloc=%-3s  %+6d MiB   (MiB: %s; %d starts)" %
                      (s, p, charge[n] // MB, tried[n][1], tried[n][0]) for n, (s, p) in configs.items())
    print("\ncommit charge of a %d MiB guest (TCG; median of %d):\n%s" % (SIZE_MB, REPEATS, table))
    record_property("commit_charge_table", table)

    size = SIZE_MB * MB
    margin = size // 4
    # Without prealloc: a MAP_PRIVATE memfd is charged in full when QEMU maps it (a private writable mapping),
    # a MAP_SHARED one not at all (memfd files are created VM_NORESERVE: pages are charged as they are
    # allocated).
    assert abs((charge["sno-pno"] - charge["syes-pno"]) - size) < margin, charge
    # With prealloc: the shared memfd's pages are now allocated, each charged once (shmem_acct_block) — about
    # the size, as anonymous memory is.
    assert abs((charge["syes-pyes"] - charge["syes-pno"]) - size) < margin, charge
    assert abs(charge["syes-pyes"] - charge["ram"]) < margin, charge
    # Anonymous private memory is charged in full whether touched or not; with Reserve=no (MAP_NORESERVE) not
    # at all.
    assert abs(charge["ram-pno"] - charge["ram"]) < margin, charge
    assert abs(charge["ram-noreserve"] - charge["syes-pno"]) < margin, charge
    # The private mapping of a memfd, preallocated, is charged twice over: the private writable mapping (at
    # mmap) and the memfd's own page cache pages that each copy-on-write fault read in (shmem_fault allocates
    # the hole's page before it is copied).
    assert abs((charge["sno-pyes"] - charge["syes-pyes"]) - size) < margin, charge
