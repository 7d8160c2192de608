# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisord as a service: lifecycle, permissions, configuration and reloads, the socket file,
socket activation, sd_notify and the watchdog."""

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from memvisor_it import (NOBODY_UID, NOGROUP_GID, ConnectionClosed, VarlinkConnection, calls_as, get_info_ok,
                         parse_notify)

# ---- lifecycle --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_exit_signal_stops_cleanly(daemons, sig):
    d = daemons(config="")
    assert stat.S_IMODE(os.stat(d.runtime_dir).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(d.state_dir).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(d.socket).st_mode)
    assert d.stop(sig) == 0
    assert not d.socket.exists(), "the socket file must be removed on a clean shutdown"
    log = d.log_text()
    assert "memvisord: Received %s, shutting down." % ("Terminated" if sig == signal.SIGTERM else "Interrupt") in log
    assert log.rstrip().endswith("memvisord: memvisord stopped.")


def test_sigterm_with_clients_connected(daemons):
    d = daemons(config="")
    idle = d.connect()
    partial = d.connect()
    partial.send_raw(b'{"method":"org.varlink.service.Get')
    busy = d.connect()
    busy.send_raw(VarlinkConnection.encode("org.varlink.service.GetInfo") * 100)
    try:
        t = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t < 2.0
        for c in (idle, partial):
            assert c.assert_closed() == b""
        # The busy client sees whole replies, then the end of the connection.
        got = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                assert busy.receive()["parameters"]["product"] == "memvisord"
                got += 1
        assert closed.value.partial == 0
        assert got <= 100
    finally:
        for c in (idle, partial, busy):
            c.close()


def test_command_line_errors(build, workdir):
    cases = [
        (["--runtime-dir=relative"], "runtime-dir needs an absolute path, got 'relative'"),
        (["--state-dir=relative"], "state-dir needs an absolute path"),
        (["--log-level=chatty"], "Invalid --log-level=chatty."),
        (["--log-target=syslog"], "Invalid --log-target=syslog: expected auto, journal or console."),
        (["unexpected"], "Unexpected argument 'unexpected'."),
        (["--no-such-option"], "unrecognized option"),
    ]
    for args, message in cases:
        p = subprocess.run([str(build.memvisord), "--config=%s" % (workdir / "none.conf"),
                            "--runtime-dir=%s" % (workdir / "run"), "--log-target=console"] + args,
                           capture_output=True, text=True, timeout=5)
        assert p.returncode != 0, args
        assert message in p.stderr, (args, p.stderr)
        assert not (workdir / "run").exists(), args

    p = subprocess.run([str(build.memvisord), "--help"], capture_output=True, text=True, timeout=5)
    assert p.returncode == 0 and "--check-config" in p.stdout


def test_varlink_address_forms(daemons, ctl, workdir):
    """--varlink-address=, [Varlink] Address= and memvisorctl -A take the varlink address forms every
    varlink tool writes: unix:/path and unix:@name, and the bare /path and @name."""
    path = workdir / "forms.sock"
    d = daemons(name="path", start=False)
    d.start(config="", extra_args=["--varlink-address=unix:%s" % path], probe_address=path)
    for a in ("unix:%s" % path, str(path)):
        p = ctl("status", address=a)
        assert p.returncode == 0 and "listening on unix:%s" % path in p.stdout, (a, p.stdout, p.stderr)
    d.stop()
    assert not path.exists()

    name = "memvisor-it-%d" % os.getpid()
    d = daemons(name="abstract", start=False)
    d.start(config="[Varlink]\nAddress=unix:@%s\n" % name, probe_address="\0" + name)
    for a in ("unix:@" + name, "@" + name):
        p = ctl("info", address=a)
        assert p.returncode == 0 and "memvisord" in p.stdout, (a, p.stdout, p.stderr)
    # Two daemons cannot have the same abstract name.
    other = daemons(name="abstract2", start=False)
    other.start(config="", extra_args=["--varlink-address=@" + name], wait=False)
    assert other.wait_exit() != 0
    assert "Another memvisord is already listening on @%s" % name in other.log_text()

    for bad, why in (("tcp:127.0.0.1:1", "only unix: addresses are supported"),
                     ("unix:relative", "expected an absolute path (unix:/path) or an abstract name (unix:@name)"),
                     ("unix:/x;mode=0666", "address parameters (;…) are not supported")):
        p = subprocess.run([str(d.build.memvisord), "--config=/dev/null", "--log-target=console",
                            "--varlink-address=" + bad], capture_output=True, text=True, timeout=5)
        assert p.returncode != 0 and ("Invalid --varlink-address=%s: %s" % (bad, why)) in p.stderr, p.stderr
        p = ctl("status", address=bad)
        assert p.returncode == 2 and ("Invalid address '%s': %s" % (bad, why)) in p.stderr, p.stderr


# ---- permissions ------------------------------------------------------------------------------------

def test_unprivileged_user_gets_permission_denied(daemon, ctl):
    for args in (("log-level", "err"), ("reload",), ("call", "io.memvisor.Manager.SetLogLevel", '{"level": 5}')):
        p = ctl(*args, address=daemon.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert p.stderr.splitlines() == ["org.varlink.service.PermissionDenied"], args

    # Reading is open to anyone.
    p = ctl("--json", "status", address=daemon.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["pid"] == daemon.pid
    p = ctl("info", address=daemon.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert p.returncode == 0, p.stderr

    replies = calls_as(daemon.socket, [["io.memvisor.Manager.SetLogLevel", {"level": "err"}],
                                       ["io.memvisor.Manager.Reload", None],
                                       ["io.memvisor.Manager.GetDaemonStatus", None]], uid=NOBODY_UID)
    assert replies[0] == {"error": "org.varlink.service.PermissionDenied", "parameters": {}}
    assert replies[1] == {"error": "org.varlink.service.PermissionDenied", "parameters": {}}
    assert replies[2]["parameters"]["pid"] == daemon.pid
    assert daemon.status()["logLevel"] == "debug"  # unchanged


def test_admin_group_as_primary_group(daemons, ctl):
    d = daemons(config="[Daemon]\nAdminGroup=nogroup\n")
    st = d.status()
    assert st["adminGroup"] == "nogroup"
    assert os.stat(d.socket).st_gid == NOGROUP_GID  # the socket is given to the group
    p = ctl("status", address=d.socket)
    assert " Admin group: nogroup\n" in p.stdout

    p = ctl("log-level", "err", address=d.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert (p.returncode, p.stderr) == (0, "")
    assert d.status()["logLevel"] == "err"
    replies = calls_as(d.socket, [["io.memvisor.Manager.SetLogLevel", {"level": "notice"}]], uid=NOBODY_UID,
                       gid=NOGROUP_GID)
    assert replies == [{"parameters": {}}]
    assert d.status()["logLevel"] == "notice"
    p = ctl("reload", address=d.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert (p.returncode, p.stderr) == (0, "")

    # Someone outside the group is still refused.
    p = ctl("log-level", "err", address=d.socket, uid=4242, gid=4242)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["org.varlink.service.PermissionDenied"]


def test_admin_group_as_supplementary_group(daemons, ctl):
    try:
        users = grp.getgrnam("users")
    except KeyError:
        pytest.skip("no group 'users' on this host")
    d = daemons(config="[Daemon]\nAdminGroup=users\n")
    p = ctl("log-level", "warning", address=d.socket, uid=4242, gid=4242)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["org.varlink.service.PermissionDenied"]
    p = ctl("log-level", "warning", address=d.socket, uid=4242, gid=4242, groups=[users.gr_gid])
    assert (p.returncode, p.stderr) == (0, "")
    assert d.status()["logLevel"] == "warning"


def test_admin_group_change_applies_on_reload(daemons, ctl):
    d = daemons(config="[Daemon]\nLogLevel=info\n")
    p = ctl("log-level", "err", address=d.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert p.stderr.splitlines() == ["org.varlink.service.PermissionDenied"]
    d.config.write_text("[Daemon]\nLogLevel=info\nAdminGroup=nogroup\n")
    p = ctl("reload", address=d.socket)
    assert (p.returncode, p.stderr) == (0, "")
    assert d.status()["adminGroup"] == "nogroup"
    p = ctl("log-level", "err", address=d.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert (p.returncode, p.stderr) == (0, "")
    assert d.status()["logLevel"] == "err"


def test_unknown_admin_group_at_start(daemons):
    d = daemons(start=False)
    d.start(config="[Daemon]\nAdminGroup=no-such-group-memvisor\n", wait=False)
    assert d.wait_exit() != 0
    assert "AdminGroup=no-such-group-memvisor: no such group" in d.log_text()
    assert not d.socket.exists()


def test_socket_mode(daemons, ctl):
    d = daemons(config="")
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o666
    d2 = daemons(config="[Varlink]\nSocketMode=0600\n")
    assert stat.S_IMODE(os.stat(d2.socket).st_mode) == 0o600
    p = ctl("info", address=d2.socket, uid=NOBODY_UID, gid=NOGROUP_GID)
    assert p.returncode == 3
    assert "Permission denied" in p.stderr


# ---- configuration ----------------------------------------------------------------------------------

BAD_CONFIGS = {
    "bad-log-level": ("[Daemon]\nLogLevel=loud\n", 2, "LogLevel"),
    "unknown-key": ("# memvisord.conf\n[Daemon]\nLogLevel=info\nBogusKey=1\n", 4, "Unknown key 'BogusKey' in section [Daemon]"),
    "unknown-section": ("[Daemon]\n\n[Nope]\nX=1\n", 3, "Unknown section [Nope]"),
    "outside-section": ("LogLevel=info\n", 1, "LogLevel"),
    "not-an-assignment": ("[Daemon]\nLogLevel\n", 2, "Expected 'Key=Value'"),
    "depth-out-of-range": ("[Varlink]\nMaxJSONDepth=1\n", 2, "MaxJSONDepth"),
    "bad-size": ("[Varlink]\nMaxMessageSize=lots\n", 2, "MaxMessageSize"),
    "size-too-small": ("[Varlink]\nMaxOutputSize=1K\n", 2, "MaxOutputSize"),
    "bad-mode": ("[Varlink]\nSocketMode=999\n", 2, "SocketMode"),
    "zero-connections": ("[Varlink]\nMaxConnections=0\n", 2, "MaxConnections"),
    "bad-log-target": ("[Daemon]\nLogTarget=syslog\n", 2, "LogTarget"),
    "bad-group-name": ("[Daemon]\nAdminGroup=bad name!\n", 2, "AdminGroup"),
    "relative-path": ("[Varlink]\nAddress=relative/socket\n", 2, "Address"),
}


@pytest.mark.parametrize("text,line,what", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_invalid_config_at_start(daemons, text, line, what):
    d = daemons(start=False)
    d.start(config=text, wait=False)
    assert d.wait_exit() != 0
    log = d.log_text()
    assert "%s:%d: " % (d.config, line) in log, log
    assert what in log.split("%s:%d: " % (d.config, line), 1)[1].splitlines()[0], log
    assert not d.socket.exists()


def test_check_config(build, workdir):
    conf = workdir / "check.conf"
    conf.write_text("[Daemon]\nLogLevel=debug\n[Varlink]\nMaxConnections=10\n")
    p = subprocess.run([str(build.memvisord), "--config=%s" % conf, "--check-config", "--log-target=console"],
                       capture_output=True, text=True, timeout=5)
    assert (p.returncode, p.stdout) == (0, "%s: OK\n" % conf)
    conf.write_text("[Daemon]\nLogLevel=debug\n[Varlink]\nMaxConnections=ten\n")
    p = subprocess.run([str(build.memvisord), "--config=%s" % conf, "--check-config", "--log-target=console"],
                       capture_output=True, text=True, timeout=5)
    assert p.returncode != 0
    assert "%s:4: " % conf in p.stderr and "MaxConnections" in p.stderr


def send_sighup(d):
    offset = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    return offset


def test_sighup_with_broken_config_keeps_the_old_one(daemons):
    d = daemons(config="[Daemon]\nLogLevel=notice\n[Varlink]\nMaxConnectionsPerUID=8\n", log_level=None)
    st = d.status()
    assert (st["logLevel"], st["limits"]["maxConnectionsPerUid"]) == ("notice", 8)

    # The valid lines before the error must not be applied either.
    d.config.write_text("[Daemon]\nLogLevel=debug\n[Varlink]\nMaxConnectionsPerUID=64\nMaxJSONDepth=-3\n")
    offset = send_sighup(d)
    d.wait_for_log("error: Failed to reload configuration, keeping the old one: %s:5: " % d.config, start=offset)
    assert "MaxJSONDepth" in d.log_text()[offset:]
    assert d.running()
    st = d.status()
    assert st["logLevel"] == "notice"
    assert st["limits"]["maxConnectionsPerUid"] == 8
    assert st["status"] == "Configuration reload failed, running with the previous one"
    assert st["pid"] == d.pid

    # A later good reload works again.
    d.config.write_text("[Daemon]\nLogLevel=info\n")
    send_sighup(d)
    d.wait_status(lambda s: s["logLevel"] == "info")
    assert d.status()["status"] == "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket


def test_sighup_with_valid_config_applies_it(daemons):
    d = daemons(config="[Daemon]\nLogLevel=notice\n", log_level=None)
    assert d.status()["logLevel"] == "notice"
    d.config.write_text("[Daemon]\nLogLevel=debug\n[Varlink]\nMaxJSONDepth=8\nMaxConnectionsPerUID=5\n")
    offset = send_sighup(d)
    st = d.wait_status(lambda s: s["logLevel"] == "debug")
    assert st["limits"]["maxJsonDepth"] == 8
    assert st["limits"]["maxConnectionsPerUid"] == 5
    d.wait_for_log("Reloaded configuration from %s." % d.config, start=offset)
    # The new depth limit is enforced.
    with d.connect() as c:
        c.send_raw(b'{"method":"org.varlink.service.GetInfo","parameters":{"a":' + b"[" * 7 + b"]" * 7 + b"}}\0")
        assert c.assert_closed() == b""


def test_command_line_wins_over_config_on_reload(daemons):
    d = daemons(config="[Daemon]\nLogLevel=notice\n", log_level="warning")
    assert d.status()["logLevel"] == "warning"
    d.config.write_text("[Daemon]\nLogLevel=debug\n")
    with d.connect() as c:
        assert c.call("io.memvisor.Manager.Reload") == {"parameters": {}}
    assert d.status()["logLevel"] == "warning"


def test_reload_of_restart_only_settings_says_so(daemons, workdir):
    d = daemons(config="[Daemon]\nLogLevel=info\n", log_level=None)
    other = workdir / "other.sock"
    d.config.write_text("[Daemon]\nLogLevel=info\n[Varlink]\nAddress=%s\nSocketMode=0600\n" % other)
    offset = send_sighup(d)
    d.wait_for_log("Socket address, mode, RuntimeDirectory= and StateDirectory= changes take effect after a restart.",
                   start=offset)
    st = d.status()
    assert st["varlinkAddress"] == str(d.socket)
    assert not other.exists()
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o666


def test_varlink_reload_with_broken_config(daemons, ctl):
    d = daemons(config="[Daemon]\nLogLevel=notice\n", log_level=None)
    d.config.write_text("[Daemon]\nLogLevel=debug\nLogLevel=verbose\n")
    with d.connect() as c:
        r = c.call("io.memvisor.Manager.Reload")
    assert r["error"] == "io.memvisor.Manager.ConfigInvalid"
    msg = r["parameters"]["message"]
    assert msg.startswith("%s:3: " % d.config), msg
    assert "LogLevel" in msg and "verbose" in msg

    p = ctl("reload", address=d.socket)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[0] == "io.memvisor.Manager.ConfigInvalid"
    assert json.loads(lines[1]) == {"message": msg}

    assert d.running()
    assert d.status()["logLevel"] == "notice"
    assert "keeping the old one: %s:3: " % d.config in d.log_text()


def test_varlink_reload_with_valid_config(daemons):
    d = daemons(config="[Daemon]\nLogLevel=notice\n", log_level=None)
    d.config.write_text("[Daemon]\nLogLevel=err\n")
    with d.connect() as c:
        assert c.call("io.memvisor.Manager.Reload") == {"parameters": {}}
        assert c.call("io.memvisor.Manager.GetDaemonStatus")["parameters"]["logLevel"] == "err"
        # SetLogLevel lasts until the next reload.
        assert c.call("io.memvisor.Manager.SetLogLevel", {"level": "debug"}) == {"parameters": {}}
        assert c.call("io.memvisor.Manager.GetDaemonStatus")["parameters"]["logLevel"] == "debug"
        assert c.call("io.memvisor.Manager.Reload") == {"parameters": {}}
        assert c.call("io.memvisor.Manager.GetDaemonStatus")["parameters"]["logLevel"] == "err"
    # A removed file means built-in defaults.
    d.config.unlink()
    with d.connect() as c:
        assert c.call("io.memvisor.Manager.Reload") == {"parameters": {}}
        st = c.call("io.memvisor.Manager.GetDaemonStatus")["parameters"]
    assert st["configFileFound"] is False
    assert st["logLevel"] == "info"


# ---- the socket file --------------------------------------------------------------------------------

def test_stale_socket_is_replaced(daemons):
    d = daemons(start=False)
    d.runtime_dir.mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(d.socket))
    s.close()  # the file stays, nobody listens
    assert stat.S_ISSOCK(os.stat(d.socket).st_mode)
    d.start(config="")
    assert "Replacing stale socket %s." % d.socket in d.log_text()
    assert d.status()["pid"] == d.pid


def test_second_daemon_refuses_to_start(daemons):
    first = daemons(name="first", config="")
    inode = os.stat(first.socket).st_ino
    second = daemons(name="second", start=False)
    second.start(config="", extra_args=["--varlink-address=%s" % first.socket], wait=False)
    assert second.wait_exit() != 0
    assert "Another memvisord is already listening on %s, refusing to start." % first.socket in second.log_text()
    # The first one keeps its socket and keeps serving.
    assert os.stat(first.socket).st_ino == inode
    st = first.status()
    assert st["pid"] == first.pid
    with first.connect() as c:
        get_info_ok(c)


@pytest.mark.parametrize("shared", ["runtime", "state"])
def test_one_daemon_per_directory(daemons, shared):
    """A second memvisord on the same runtime or state directory (even listening elsewhere) would re-adopt
    the first one's guests: it refuses, naming the holder's pid, and the first one serves on."""
    first = daemons(name="first", config="")
    second = daemons(name="second", start=False)
    if shared == "runtime":
        second.runtime_dir = first.runtime_dir
        second.socket = second.workdir / "second.sock"
    else:
        second.state_dir = first.state_dir
    second.start(config="", extra_args=["--varlink-address=unix:%s" % second.socket], wait=False)
    assert second.wait_exit() != 0
    d = first.runtime_dir if shared == "runtime" else first.state_dir
    assert "%s is in use by another memvisord (pid %d), refusing to start." % (d, first.pid) in second.log_text()
    assert (d / "memvisord.lock").read_text() == "%d\n" % first.pid
    assert first.status()["pid"] == first.pid
    # Once the first one is gone (even by SIGKILL), the lock goes with it.
    first.proc.kill()
    first.proc.wait()
    first._finish()
    second.start(config="", extra_args=["--varlink-address=unix:%s" % second.socket], wait=True,
                 probe_address=second.socket)
    assert second.status()["pid"] == second.pid


def test_non_socket_file_is_not_replaced(daemons):
    d = daemons(start=False)
    d.runtime_dir.mkdir()
    d.socket.write_text("precious\n")
    d.start(config="", wait=False)
    assert d.wait_exit() != 0
    assert "%s exists and is not a socket, refusing to replace it." % d.socket in d.log_text()
    assert d.socket.read_text() == "precious\n"


# ---- socket activation ------------------------------------------------------------------------------

def socket_activate():
    for p in (shutil.which("systemd-socket-activate"), "/usr/bin/systemd-socket-activate",
              "/lib/systemd/systemd-socket-activate"):
        if p and os.access(p, os.X_OK):
            return p
    pytest.skip("systemd-socket-activate not installed")


@pytest.mark.parametrize("fdname", ["varlink", None], ids=["named", "unnamed"])
def test_socket_activation(daemons, workdir, ctl, fdname):
    sa = socket_activate()
    sock = workdir / "activated.sock"
    opts = ["-l", str(sock)] + (["--fdname=%s" % fdname] if fdname else [])
    d = daemons(start=False)
    d.start(config="", wrapper=lambda argv: [sa] + opts + argv, probe_address=sock)
    with VarlinkConnection(sock) as c:
        st = c.call("io.memvisor.Manager.GetDaemonStatus")["parameters"]
    assert st["varlinkAddress"] == "socket-activated"
    assert st["pid"] == d.pid  # systemd-socket-activate execs the daemon in place
    assert st["status"] == "0 guests running, 0 failed, 0 defined; listening on socket-activated"
    assert not d.socket.exists(), "with a socket passed in, the daemon must not bind its own"
    p = ctl("--json", "status", address=sock)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["varlinkAddress"] == "socket-activated"


def test_socket_activation_ignores_unknown_fd_names(daemons, workdir):
    sa = socket_activate()
    sock = workdir / "bogus.sock"
    d = daemons(start=False)
    d.start(config="", wrapper=lambda argv: [sa, "-l", str(sock), "--fdname=bogus"] + argv, wait=False)
    # systemd-socket-activate starts the daemon on the first connection.
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(str(sock))
            break
        except OSError:
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen on %s" % sock
            time.sleep(0.02)
    d.wait_ready()
    st = d.status()
    assert st["varlinkAddress"] == str(d.socket)
    assert "Ignoring socket 'bogus' passed in by the service manager." in d.log_text()


def test_socket_activated_exporter_never_blocks(daemons, workdir):
    """The exporter socket handed over by systemd is blocking; a client that connects and sends nothing
    (the one that triggered the activation) must not stall the daemon."""
    sa = socket_activate()
    sock = workdir / "exporter.sock"
    d = daemons(start=False)
    d.start(config="", wrapper=lambda argv: [sa, "-l", str(sock), "--fdname=exporter"] + argv, wait=False)
    deadline = time.monotonic() + 5
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            idle.connect(str(sock))
            break
        except OSError:
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen on %s" % sock
            time.sleep(0.02)
    d.wait_ready()
    for _ in range(3):
        assert d.status()["pid"] == d.pid
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(sock))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert b"memvisor_host_" in data
    idle.close()
    s.close()


# ---- sd_notify and the watchdog ---------------------------------------------------------------------

def notes_after(notify, mark):
    return [parse_notify(m) for m in notify.messages[mark:]]


def index_of(notes, key, value=None):
    for i, n in enumerate(notes):
        if key in n and (value is None or n[key] == value):
            return i
    raise AssertionError("no %s=%s in %r" % (key, value, notes))


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_notify_ready_status_reload_stopping(daemons, notify_socket):
    d = daemons(start=False)
    d.start(config="[Daemon]\nLogLevel=info\n", env={"NOTIFY_SOCKET": notify_socket.path})
    notify_socket.wait_for(lambda n: n.get("STATUS") == "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket)
    notes = notes_after(notify_socket, 0)
    ready = index_of(notes, "READY", "1")
    assert index_of(notes, "STATUS", "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket) > ready
    assert d.status()["status"] == "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket
    assert not any("WATCHDOG" in n for n in notes), "no watchdog pings unless asked for"

    # SIGHUP: RELOADING=1 with MONOTONIC_USEC (as Type=notify-reload wants), then READY=1.
    mark = len(notify_socket.messages)
    d.proc.send_signal(signal.SIGHUP)
    notify_socket.wait_for(lambda n: n.get("READY") == "1")
    notes = notes_after(notify_socket, mark)
    reloading = index_of(notes, "RELOADING", "1")
    assert reloading < index_of(notes, "READY", "1")
    assert abs(int(notes[reloading]["MONOTONIC_USEC"]) - monotonic_usec()) < 5_000_000
    notify_socket.wait_for(lambda n: n.get("STATUS") == "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket)

    # A failed reload also ends with READY=1, and says so in STATUS=.
    d.config.write_text("[Daemon]\nLogLevel=bogus\n")
    mark = len(notify_socket.messages)
    d.proc.send_signal(signal.SIGHUP)
    notify_socket.wait_for(lambda n: n.get("STATUS") == "Configuration reload failed, running with the previous one")
    notes = notes_after(notify_socket, mark)
    assert index_of(notes, "RELOADING", "1") < index_of(notes, "READY", "1")

    # Reload over varlink does the same dance.
    d.config.write_text("[Daemon]\nLogLevel=info\n")
    mark = len(notify_socket.messages)
    with d.connect() as c:
        assert c.call("io.memvisor.Manager.Reload") == {"parameters": {}}
    notify_socket.wait_for(lambda n: n.get("STATUS") == "0 guests running, 0 failed, 0 defined; listening on %s" % d.socket)
    notes = notes_after(notify_socket, mark)
    assert index_of(notes, "RELOADING", "1") < index_of(notes, "READY", "1")

    # SIGTERM: STOPPING=1, then exit 0.
    mark = len(notify_socket.messages)
    assert d.stop() == 0
    notify_socket.drain(0.1)
    notes = notes_after(notify_socket, mark)
    assert index_of(notes, "STOPPING", "1") is not None


def with_watchdog_pid_of_daemon(argv):
    return ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh"] + argv


def test_watchdog_pings(daemons, notify_socket):
    d = daemons(start=False)
    # sd-event pings between 1/2 and 3/4 of WATCHDOG_USEC. A 1 s period keeps this test's own polling (50 ms)
    # and a loaded machine (the sanitizer build runs these tests too) well inside the margin.
    d.start(config="", env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"},
            wrapper=with_watchdog_pid_of_daemon)
    notify_socket.wait_for(lambda n: n.get("READY") == "1")
    times = []
    start = time.monotonic()
    while time.monotonic() - start < 4.0:
        for msg in notify_socket.drain(0.05):
            if parse_notify(msg).get("WATCHDOG") == "1":
                times.append(time.monotonic())
    assert len(times) >= 5, "only %d WATCHDOG=1 in 4s" % len(times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 1.0, "a gap of %.3fs between pings exceeds WATCHDOG_USEC=1s" % max(gaps)
    assert d.status()["pid"] == d.pid


def test_watchdog_for_another_pid_is_ignored(daemons, notify_socket):
    d = daemons(start=False)
    d.start(config="", env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    notify_socket.wait_for(lambda n: n.get("READY") == "1")
    notify_socket.drain(0.5)
    assert not any("WATCHDOG=1" in m for m in notify_socket.messages)
