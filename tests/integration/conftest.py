# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for the memvisord integration tests.

The build directory comes from MEMVISOR_BUILD_DIR (absolute, or relative to the current directory or
to the repository root); without it, <repo>/build is used. Every test gets a fresh directory under
/tmp (mode 0755, so processes running under other uids can reach the socket), and every daemon a test
starts is stopped with SIGTERM at teardown, which must make it exit 0 within a few seconds. On a
failure, the output of each daemon the test started is attached to the report.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from memvisor_it import Build, Daemon, NotifySocket, find_build_dir, run_as_kwargs


@pytest.fixture(scope="session")
def build():
    return Build(find_build_dir())


def kill_processes_mentioning(text):
    """SIGKILLs every process whose command line mentions text (the guests a test left behind: they
    outlive memvisord by design). Returns how many there were."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and "memvisord" not in cmdline.split("\0")[0]:
            try:
                os.kill(int(pid), 9)
                n += 1
            except OSError:
                pass
    return n


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="memvisor-it-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    kill_processes_mentioning(str(d))
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons(request, build, workdir):
    """Factory: daemons(name=..., **start_kwargs) starts a memvisord. Each one still running at the end
    of the test is sent SIGTERM and must exit 0 within STOP_TIMEOUT."""
    started = []
    request.node._memvisord = started

    def spawn(name=None, start=True, **kwargs):
        d = Daemon(build, workdir, name or "d%d" % len(started))
        started.append(d)
        if start:
            d.start(**kwargs)
        return d

    yield spawn

    problems = []
    for d in started:
        if d.proc is None or d.proc.returncode is not None:
            continue
        if d.proc.poll() is not None:
            d._finish()
            problems.append("memvisord %s died during the test with status %d" % (d.name, d.proc.returncode))
            continue
        try:
            rc = d.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0:
            problems.append("memvisord %s exited with %d on SIGTERM (expected 0)" % (d.name, rc))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(daemons):
    """A memvisord with a config file setting nothing but a log level, started with --log-level=debug."""
    return daemons(name="main", config="[Daemon]\nLogLevel=info\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for d in getattr(item, "_memvisord", []):
            report.sections.append(("memvisord %s output (%s)" % (d.name, d.log_path), d.log_text()))


@pytest.fixture
def ctl(build):
    """ctl(*args, address=PATH, uid=, gid=, groups=, env=) runs memvisorctl and returns the
    CompletedProcess (text mode)."""

    def run(*args, address=None, uid=None, gid=None, groups=None, env=None, timeout=10):
        argv = [str(build.memvisorctl)]
        if address is not None:
            argv += ["-A", str(address)]
        argv += [str(a) for a in args]
        full_env = dict(os.environ)
        full_env.pop("MEMVISOR_ADDRESS", None)
        full_env.update(env or {})
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=full_env,
                              timeout=timeout, **run_as_kwargs(uid, gid, groups))

    return run


@pytest.fixture
def notify_socket(workdir):
    n = NotifySocket(workdir / "notify.sock")
    yield n
    n.close()
