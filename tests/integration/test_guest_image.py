# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test guest itself (tests/guest), without memvisord: its qemu-ga answers on the org.qemu.guest_agent.0
port (sync, info, osinfo, vCPUs, file reads of /proc, guest-exec of this build tree's memvisor-touch), QMP
reports the port opening and closing, and a guest booted with memvisor.agent=0 or without the port still
comes up. tests/guest/agent-smoke.py does the work (three TCG boots); its report is printed."""

import shutil
import subprocess
import sys

import pytest

from memvisor_it import REPO


def test_guest_agent_and_workload(build):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    r = subprocess.run([sys.executable, str(REPO / "tests/guest/agent-smoke.py"), "--touch", str(build.memvisor_touch),
                        str(build.path / "test-guest")], capture_output=True, text=True, timeout=600)
    print(r.stdout)
    assert r.returncode == 0, "agent-smoke.py exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr)
    assert r.stdout.rstrip().endswith("PASS")
