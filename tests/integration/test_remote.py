# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisorctl -H: another host through ssh and "memvisorctl bridge" there.

A private sshd (Debian: openssh-server; ssh and ssh-keygen from openssh-client) listens on a free port of
127.0.0.1 with a throwaway host key, and lets root in with a throwaway user key; both keys and every file it
reads are in a temporary directory. The "remote" host is this one: the bridge is the build's memvisorctl (named
with $MEMVISOR_BRIDGE_COMMAND, since sshd's PATH does not find it), and -A names the test daemon's socket there.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from memvisor_it import wait_for

SSHD = "/usr/sbin/sshd"
M = "io.memvisor.Manager."


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port nothing listens on (bound, never listening, so nothing else takes it meanwhile)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


class Sshd:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.host_key = tmp / "host_ed25519"
        self.user_key = tmp / "user_ed25519"
        for key in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "memvisor-test", "-f", str(key)],
                           check=True, capture_output=True)
        (tmp / "authorized_keys").write_text(Path(str(self.user_key) + ".pub").read_text())
        host_pub = Path(str(self.host_key) + ".pub").read_text().split()
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text("[127.0.0.1]:%d %s %s\n" % (self.port, host_pub[0], host_pub[1]))
        self.config = tmp / "sshd_config"
        self.config.write_text("\n".join([
            "ListenAddress 127.0.0.1:%d" % self.port,
            "HostKey %s" % self.host_key,
            "PidFile none",
            "AuthorizedKeysFile %s" % (tmp / "authorized_keys"),
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
            "",
        ]))
        # sshd insists on its privilege separation directory (the Debian service makes it at start).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(tmp / "sshd.log", "w+")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or "Server listening" in self.log_text(), timeout=10,
                 what="sshd to listen")
        assert self.proc.poll() is None, "sshd exited:\n" + self.log_text()

    def log_text(self):
        return (self.tmp / "sshd.log").read_text()

    def ssh_command(self, port=True):
        """$MEMVISOR_SSH: ssh with this test's keys and nothing from ~/.ssh or /etc/ssh."""
        words = ["ssh", "-F", "none", "-o", "UserKnownHostsFile=%s" % self.known_hosts,
                 "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentityFile=%s" % self.user_key,
                 "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if port:
            words += ["-p", str(self.port)]
        return " ".join(words)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def sshd():
    missing = [name for name, ok in ((SSHD, os.access(SSHD, os.X_OK)), ("ssh-keygen", shutil.which("ssh-keygen")),
                                     ("ssh", shutil.which("ssh"))) if not ok]
    if missing:
        pytest.skip("%s missing (Debian: openssh-server, openssh-client)" % ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("the private sshd logs in as root: run as root")
    tmp = Path(tempfile.mkdtemp(prefix="memvisor-sshd-", dir="/tmp"))
    d = Sshd(tmp)
    yield d
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def rctl(build, sshd):
    """rctl(*args, host=, env=, input=, timeout=) runs memvisorctl -H HOST ARGS... through the private sshd."""

    def run(*args, host="root@127.0.0.1", env=None, input=None, timeout=30):
        full_env = dict(os.environ)
        full_env.pop("MEMVISOR_ADDRESS", None)
        full_env["MEMVISOR_SSH"] = sshd.ssh_command()
        full_env["MEMVISOR_BRIDGE_COMMAND"] = str(build.memvisorctl)
        full_env.update(env or {})
        argv = [str(build.memvisorctl), "-H", host] + [str(a) for a in args]
        p = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, env=full_env, timeout=timeout)
        # On a -Dsanitize=true build, both memvisorctl processes (here and the bridge, whose stderr ssh
        # forwards) report memory errors and leaks on stderr, on the failure paths too.
        assert "Sanitizer" not in p.stderr, p.stderr
        return p

    return run


def without(obj, *keys):
    return {k: v for k, v in obj.items() if k not in keys}


def ghost(workdir):
    """A guest whose start fails at once (no such emulator): a state change without QEMU."""
    disk = workdir / "blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    return "[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\nEmulator=/nonexistent/qemu-system-x86_64\n" % disk


# ---- the bridge on its own (no ssh) -----------------------------------------------------------------

def test_bridge_copies_both_ways(build, daemon):
    """Calls on standard input, replies on standard output; EOF on input ends it once the replies are out."""
    calls = (json.dumps({"method": "org.varlink.service.GetInfo"}) + "\0" +
             json.dumps({"method": M + "GetDaemonStatus"}) + "\0").encode()
    p = subprocess.run([str(build.memvisorctl), "-A", str(daemon.socket), "bridge"], input=calls,
                       capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    replies = p.stdout.split(b"\0")
    assert replies[-1] == b"" and len(replies) == 3, p.stdout
    assert json.loads(replies[0])["parameters"]["product"] == "memvisord"
    assert json.loads(replies[1])["parameters"]["pid"] == daemon.pid


def test_bridge_large_reply_and_no_daemon(build, daemon, workdir):
    # A reply larger than the bridge's buffers (the IDL, 64 KiB buffers) passes whole, in order.
    calls = b"".join((json.dumps({"method": "org.varlink.service.GetInterfaceDescription",
                                  "parameters": {"interface": "io.memvisor.Manager"}}) + "\0").encode()
                     for _ in range(20))
    p = subprocess.run([str(build.memvisorctl), "-A", str(daemon.socket), "bridge"], input=calls,
                       capture_output=True, timeout=20)
    assert p.returncode == 0, p.stderr
    replies = p.stdout.split(b"\0")[:-1]
    assert len(replies) == 20
    assert len({r for r in replies}) == 1 and len(replies[0]) > 1000

    missing = workdir / "nothing-here"
    p = subprocess.run([str(build.memvisorctl), "-A", str(missing), "bridge"], input="", capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 3
    assert "Failed to connect to %s" % missing in p.stderr
    p = subprocess.run([str(build.memvisorctl), "-H", "somewhere", "bridge"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and "does not take -H" in p.stderr


# ---- through ssh -----------------------------------------------------------------------------------

def test_remote_output_matches_local(daemon, workdir, ctl, rctl):
    r = rctl("-A", daemon.socket, "define", "--name=ghost", "-", input=ghost(workdir))
    assert (r.returncode, r.stdout, r.stderr) == (0, "ghost: defined\n", "")

    local = json.loads(ctl("--json", "status", address=daemon.socket).stdout)
    r = rctl("-A", daemon.socket, "--json", "status")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    remote = json.loads(r.stdout)
    assert without(remote, "uptimeUSec", "counters") == without(local, "uptimeUSec", "counters")

    for args in (("--json", "list"), ("--json", "info"), ("info",), ("--json", "status", "ghost"), ("introspect",),
                 ("--json=pretty", "list"), ("--no-legend", "list")):
        want = ctl(*args, address=daemon.socket)
        got = rctl("-A", daemon.socket, *args)
        assert (got.returncode, got.stderr) == (0, ""), (args, got.stderr)
        assert got.stdout == want.stdout, args
    assert rctl("-A", daemon.socket, "--no-legend", "list").stdout.startswith("ghost ")

    # "status NAME" makes two calls, so two ssh connections, one after the other.
    got = rctl("-A", daemon.socket, "status", "ghost")
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("ghost - defined\n")

    # A varlink error from the remote daemon: exit status 1, its name on stderr.
    got = rctl("-A", daemon.socket, "status", "nope")
    assert got.returncode == 1
    assert got.stderr.splitlines()[0] == M + "NoSuchVM"


def test_port_in_host(daemon, sshd, rctl):
    # The port from -H, not from $MEMVISOR_SSH.
    r = rctl("-A", daemon.socket, "--json", "info", host="root@127.0.0.1:%d" % sshd.port,
             env={"MEMVISOR_SSH": sshd.ssh_command(port=False)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["product"] == "memvisord"


def test_bridge_command_option_wins_over_environment(build, daemon, rctl):
    r = rctl("-A", daemon.socket, "--bridge-command=%s" % build.memvisorctl, "--json", "info",
             env={"MEMVISOR_BRIDGE_COMMAND": "/nonexistent/memvisorctl"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["product"] == "memvisord"


def test_events_and_streams_through_ssh(build, daemon, workdir, ctl, rctl, sshd):
    env = dict(os.environ, MEMVISOR_SSH=sshd.ssh_command(), MEMVISOR_BRIDGE_COMMAND=str(build.memvisorctl))
    env.pop("MEMVISOR_ADDRESS", None)
    p = subprocess.Popen([str(build.memvisorctl), "-H", "root@127.0.0.1", "-A", str(daemon.socket), "--json",
                          "events"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        first = json.loads(p.stdout.readline())
        assert first["event"] == "subscribed" and first["vms"] == []
        r = subprocess.run([str(build.memvisorctl), "-A", str(daemon.socket), "define", "--name=ghost", "-"],
                           input=ghost(workdir), capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        e = json.loads(p.stdout.readline())
        assert (e["event"], e["vm"]) == ("defined", "ghost")
        # A state change: the start fails (no such emulator), defined → failed.
        r = ctl("start", "ghost", address=daemon.socket)
        assert r.returncode == 1 and M + "StartFailed" in r.stderr
        while True:
            e = json.loads(p.stdout.readline())
            if e["event"] == "state":
                break
        assert (e["vm"], e["previousState"], e["state"]) == ("ghost", "defined", "failed")
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()

    # balloon --wait and migrate --between take the same streaming path; without a running guest the
    # remote daemon refuses them, and its error arrives as a local one would (exit status 1).
    r = rctl("-A", daemon.socket, "balloon", "ghost", "32M", "--wait")
    assert r.returncode == 1 and r.stderr.startswith(M + "InvalidState\n"), r.stderr
    r = rctl("-A", daemon.socket, "migrate", "ghost", "--between=0,1", "--count=2", "--every=1s")
    assert r.returncode == 1 and r.stderr.split("\n")[0] in (M + "InvalidState", M + "SingleNUMANode"), r.stderr

    # call --more and watch stream through the bridge too.
    r = rctl("-A", daemon.socket, "--json", "call", "--more", M + "GetDaemonStatus")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == daemon.pid
    p = subprocess.Popen([str(build.memvisorctl), "-H", "root@127.0.0.1", "-A", str(daemon.socket), "--json",
                          "watch", "--interval=100ms"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        samples = [json.loads(p.stdout.readline()) for _ in range(3)]
        assert all(s["sample"]["memTotalBytes"] > 0 for s in samples)
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()


def test_remote_daemon_exit_ends_events(build, daemons, rctl, sshd):
    d = daemons(name="short")
    env = dict(os.environ, MEMVISOR_SSH=sshd.ssh_command(), MEMVISOR_BRIDGE_COMMAND=str(build.memvisorctl))
    p = subprocess.Popen([str(build.memvisorctl), "-H", "root@127.0.0.1", "-A", str(d.socket), "events"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "subscribed" in p.stdout.readline()
    assert d.stop() == 0
    out, err = p.communicate(timeout=15)
    assert p.returncode == 3
    assert err == "Event stream ended: connection closed by the daemon\n"


def test_remote_errors_say_which_side_failed(workdir, daemon, sshd, rctl):
    # ssh cannot connect: nothing listens on the port.
    s, port = closed_port()
    with s:
        r = rctl("-A", daemon.socket, "status", host="root@127.0.0.1:%d" % port,
                 env={"MEMVISOR_SSH": sshd.ssh_command(port=False)})
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert "Connection refused" in r.stderr                                  # ssh's own message
    assert "Failed to reach 127.0.0.1 with ssh" in r.stderr
    assert "status 255" in r.stderr

    # ssh cannot authenticate: a key the server does not know.
    other = workdir / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    r = rctl("-A", daemon.socket, "status",
             env={"MEMVISOR_SSH": sshd.ssh_command().replace(str(sshd.user_key), str(other))})
    assert r.returncode == 3
    assert "Permission denied" in r.stderr and "Failed to reach 127.0.0.1 with ssh" in r.stderr

    # No memvisorctl on the remote side: the remote shell exits 127.
    r = rctl("-A", daemon.socket, "status", env={"MEMVISOR_BRIDGE_COMMAND": "/nonexistent/memvisorctl"})
    assert r.returncode == 3
    assert "memvisorctl not found on 127.0.0.1" in r.stderr
    assert "Failed to reach" not in r.stderr

    # The remote daemon does not run: the bridge says why and exits 3.
    missing = workdir / "nothing-here"
    for args in (("status",), ("events",), ("list",)):
        r = rctl("-A", missing, *args)
        assert r.returncode == 3, (args, r.stderr)
        assert r.stdout == ""
        assert "Failed to connect to %s: No such file or directory" % missing in r.stderr   # the bridge
        assert "Failed to connect to memvisord on 127.0.0.1" in r.stderr
        assert "not found" not in r.stderr.replace("No such file", "")

    # No ssh at all.
    r = rctl("status", env={"MEMVISOR_SSH": "/nonexistent/ssh"})
    assert r.returncode == 3 and "Failed to run /nonexistent/ssh" in r.stderr

    # Invalid host specifications are usage errors, found before ssh runs.
    for host in ("", "root@", "host:0", "host:99999", "host:x", "-oProxyCommand=x", "[::1"):
        r = rctl("status", host=host)
        assert r.returncode == 2, (host, r.stderr)
        assert "Invalid host" in r.stderr


def test_remote_commands_are_authorized_by_the_remote_daemon(daemon, rctl):
    # As root on the remote side, the bridge connects as root: changes are allowed.
    r = rctl("-A", daemon.socket, "log-level", "notice")
    assert (r.returncode, r.stderr) == (0, "")
    assert daemon.status()["logLevel"] == "notice"


def test_remote_console(daemon, rctl, workdir):
    """memvisorctl -H HOST console: the console history over the bridge, a boot not kept named as locally."""
    disk = workdir / "blank-console.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    d = daemon
    for method, params in (("DefineVM", {"name": "fw", "ini": "[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\n" % disk}),
                           ("StartVM", {"name": "fw"}), ("KillVM", {"name": "fw"})):
        assert "error" not in d.call(M + method, params)
    wait_for(lambda: d.call(M + "DescribeVM", {"name": "fw"})["parameters"]["vm"]["state"] == "stopped",
             timeout=20, what="stopped")
    assert "error" not in d.call(M + "StartVM", {"name": "fw"})
    r = rctl("-A", d.socket, "console", "fw", "--boot=-1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("-- memvisor: guest fw, boot 1, "), r.stdout
    r = rctl("-A", d.socket, "console", "fw", "--boot=-2")
    assert r.returncode == 1 and "kept are boots 1 to 2" in r.stderr, r.stderr
    assert "error" not in d.call(M + "KillVM", {"name": "fw"})
