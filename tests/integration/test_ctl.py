# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisorctl against a running memvisord: output, --json and exit codes."""

import json
import subprocess

from memvisor_it import MANAGER_IDL, SERVICE_IDL, VarlinkConnection, daemon_interfaces


def daemon_version(build):
    out = subprocess.run([str(build.memvisord), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("memvisord ")
    return out.split()[1]


def test_info_human(build, daemon, ctl):
    p = ctl("info", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "    Vendor: memvisor",
        "   Product: memvisord",
        "   Version: %s" % daemon_version(build),
        "       URL: https://github.com/memvisor/memvisor",
        "Interfaces: org.varlink.service",
    ] + ["            " + i for i in daemon_interfaces()[1:]]
    assert p.stderr == ""


def test_info_json_matches_raw_get_info(daemon, ctl):
    p = ctl("--json", "info", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 1  # one object per line
    with daemon.connect() as c:
        raw = c.call("org.varlink.service.GetInfo")
    assert set(raw) == {"parameters"}
    assert json.loads(p.stdout) == raw["parameters"]
    assert raw["parameters"]["interfaces"] == daemon_interfaces()


def test_address_from_environment(daemon, ctl):
    p = ctl("--json", "info", env={"MEMVISOR_ADDRESS": "unix:%s" % daemon.socket})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["product"] == "memvisord"


def test_introspect_prints_the_idl_file(daemon, ctl):
    p = ctl("introspect", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert p.stdout == MANAGER_IDL.read_text()

    p = ctl("introspect", "io.memvisor.Manager", address=daemon.socket)
    assert p.stdout == MANAGER_IDL.read_text()

    p = ctl("introspect", "org.varlink.service", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert p.stdout == SERVICE_IDL.read_text()


def test_introspect_json(daemon, ctl):
    p = ctl("--json", "introspect", "io.memvisor.Manager", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"description": MANAGER_IDL.read_text()}


def test_get_interface_description_raw(daemon):
    with daemon.connect() as c:
        r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.memvisor.Manager"})
        assert r == {"parameters": {"description": MANAGER_IDL.read_text()}}
        r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "org.varlink.service"})
        assert r == {"parameters": {"description": SERVICE_IDL.read_text()}}
        r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "com.example.Nothing"})
        assert r == {"error": "org.varlink.service.InterfaceNotFound",
                     "parameters": {"interface": "com.example.Nothing"}}


def test_introspect_unknown_interface(daemon, ctl):
    p = ctl("introspect", "com.example.Nothing", address=daemon.socket)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.splitlines() == ["org.varlink.service.InterfaceNotFound", '{"interface":"com.example.Nothing"}']


def test_unknown_method_exit_1(daemon, ctl):
    p = ctl("call", "io.memvisor.Manager.NoSuchMethod", address=daemon.socket)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.splitlines()[0] == "org.varlink.service.MethodNotFound"
    assert json.loads(p.stderr.splitlines()[1]) == {"method": "io.memvisor.Manager.NoSuchMethod"}

    p = ctl("call", "com.example.Nothing.Foo", address=daemon.socket)
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == "org.varlink.service.InterfaceNotFound"


def test_invalid_parameter_exit_1(daemon, ctl):
    p = ctl("log-level", "loud", address=daemon.socket)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["org.varlink.service.InvalidParameter", '{"parameter":"level"}']
    p = ctl("call", "io.memvisor.Manager.SetLogLevel", '{"level": 3}', address=daemon.socket)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["org.varlink.service.InvalidParameter", '{"parameter":"level"}']
    assert daemon.status()["logLevel"] == "debug"


def test_call_prints_reply(daemon, ctl):
    p = ctl("--json", "call", "org.varlink.service.GetInterfaceDescription", '{"interface":"org.varlink.service"}',
            address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"description": SERVICE_IDL.read_text()}

    p = ctl("call", "org.varlink.service.GetInfo", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["product"] == "memvisord"  # pretty-printed, still JSON
    assert len(p.stdout.splitlines()) > 1


def test_call_more_and_oneway(daemon, ctl):
    p = ctl("--json", "call", "--more", "io.memvisor.Manager.GetDaemonStatus", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1  # a method that does not stream answers once
    assert json.loads(lines[0])["pid"] == daemon.pid

    calls_before = daemon.status()["counters"]["callsTotal"]
    p = ctl("call", "--oneway", "io.memvisor.Manager.SetLogLevel", '{"level":"notice"}', address=daemon.socket)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    st = daemon.wait_status(lambda s: s["logLevel"] == "notice")
    assert st["counters"]["callsTotal"] >= calls_before + 2


def test_status_human_and_json(daemon, ctl):
    p = ctl("--json", "status", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["pid"] == daemon.pid
    assert st["configPath"] == str(daemon.config)
    assert st["configFileFound"] is True
    assert st["runtimeDirectory"] == str(daemon.runtime_dir)
    assert st["stateDirectory"] == str(daemon.state_dir)
    assert st["varlinkAddress"] == str(daemon.socket)
    assert st["logLevel"] == "debug"  # --log-level=debug wins over LogLevel=info
    assert "adminGroup" not in st
    assert st["status"] == "0 guests running, 0 failed, 0 defined; listening on %s" % daemon.socket
    assert st["limits"] == {"maxMessageBytes": 16 << 20, "maxOutputBytes": 16 << 20, "maxConnections": 256,
                            "maxConnectionsPerUid": 32, "maxJsonDepth": 64}
    assert st["counters"]["connections"] == 1
    assert st["uptimeUSec"] > 0

    p = ctl("status", address=daemon.socket)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "(pid %d)" % daemon.pid in out
    assert "      Status: 0 guests running, 0 failed, 0 defined; listening on %s\n" % daemon.socket in out
    assert "      Config: %s\n" % daemon.config in out
    assert "     Varlink: %s\n" % daemon.socket in out
    assert "   Log level: debug\n" in out
    assert " Admin group: (none: root only)\n" in out
    assert "      Limits: message 16M, output queue 16M, 256 connections (32 per uid), JSON depth 64\n" in out


def test_status_without_config_file(daemons, ctl):
    d = daemons(config=None)
    st = d.status()
    assert st["configFileFound"] is False
    assert st["configPath"] == str(d.config)
    p = ctl("status", address=d.socket)
    assert "      Config: %s (not found, built-in defaults)\n" % d.config in p.stdout


def test_log_level_and_reload_as_root(daemon, ctl):
    p = ctl("log-level", "warning", address=daemon.socket)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert daemon.status()["logLevel"] == "warning"
    # The level set at runtime lasts until the next reload; the command line's --log-level=debug then
    # applies again.
    p = ctl("reload", address=daemon.socket)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert daemon.status()["logLevel"] == "debug"


def test_usage_errors_exit_2(daemon, ctl):
    cases = [
        (),                                                     # no command
        ("frobnicate",),                                        # unknown command
        ("--no-such-option", "info"),
        ("info", "extra"),
        ("call",),                                              # METHOD missing
        ("call", "org.varlink.service.GetInfo", "{}", "extra"),
        ("call", "org.varlink.service.GetInfo", "[1, 2]"),      # parameters not an object
        ("call", "org.varlink.service.GetInfo", "{broken"),
        ("call", "--more", "--oneway", "org.varlink.service.GetInfo"),
        ("--more", "info"),
        ("log-level",),
        ("log-level", "info", "debug"),
        ("introspect", "a", "b"),
    ]
    calls_before = daemon.status()["counters"]["callsTotal"]
    for args in cases:
        p = ctl(*args, address=daemon.socket)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert p.stdout == "", args
        assert p.stderr.strip() != "", args
    # None of them reached the daemon: only this status call is new.
    assert daemon.status()["counters"]["callsTotal"] == calls_before + 1


def test_no_daemon_exit_3(workdir, ctl):
    missing = workdir / "nothing-here"
    for args in (("info",), ("status",), ("--json", "introspect"), ("call", "org.varlink.service.GetInfo"),
                 ("reload",), ("log-level", "debug")):
        p = ctl(*args, address=missing)
        assert p.returncode == 3, (args, p.returncode, p.stderr)
        assert p.stdout == ""
        assert "Failed to connect to %s" % missing in p.stderr


def test_help_and_version(build, ctl):
    p = ctl("--help")
    assert p.returncode == 0
    assert "Exit status: 0 success, 1 varlink error reply, 2 usage error, 3 connection failure." in p.stdout
    p = ctl("--version")
    assert (p.returncode, p.stdout) == (0, "memvisorctl %s\n" % daemon_version(build))


def test_connection_closed_by_daemon_exit_3(daemons, ctl):
    # A daemon that closes every connection at once (MaxConnectionsPerUID=1 while we hold one).
    d = daemons(config="[Varlink]\nMaxConnectionsPerUID=1\n")
    with VarlinkConnection(d.socket) as held:
        assert "error" not in held.call("org.varlink.service.GetInfo")
        p = ctl("info", address=d.socket)
        assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
        assert p.stdout == ""
        assert "Failed to call org.varlink.service.GetInfo" in p.stderr


# ---- conventions: --json=, --no-legend, --no-pager, colour, exit codes per verb ----------------------

def test_json_pretty_short_and_off(daemon, ctl):
    short = ctl("--json=short", "status", address=daemon.socket)
    bare = ctl("--json", "status", address=daemon.socket)
    j = ctl("-j", "status", address=daemon.socket)
    pretty = ctl("status", "--json=pretty", address=daemon.socket)
    for p in (short, bare, j, pretty):
        assert (p.returncode, p.stderr) == (0, ""), p.args
    for p in (short, bare, j):
        assert len(p.stdout.splitlines()) == 1, p.args
    assert len(pretty.stdout.splitlines()) > 10
    assert pretty.stdout.splitlines()[1].startswith("  \"")    # indented
    ignore = ("uptimeUSec", "counters")
    values = [{k: v for k, v in json.loads(p.stdout).items() if k not in ignore} for p in (short, bare, j, pretty)]
    assert all(v == values[0] for v in values)

    # Every verb takes it: a list, a guest-less table, the IDL.
    p = ctl("--json=pretty", "list", address=daemon.socket)
    assert (p.returncode, json.loads(p.stdout)) == (0, [])
    p = ctl("--json=pretty", "introspect", address=daemon.socket)
    assert p.returncode == 0 and "description" in json.loads(p.stdout)
    # The last one given wins; off is text again.
    p = ctl("--json", "--json=off", "status", address=daemon.socket)
    assert p.returncode == 0 and p.stdout.startswith("     Version: ")

    for bad in ("--json=yaml", "--json="):
        p = ctl(bad, "status", address=daemon.socket)
        assert p.returncode == 2 and "Invalid --json=" in p.stderr and p.stdout == ""


def test_no_legend_and_no_pager(build, daemons, workdir, ctl):
    d = daemons(name="legend")
    p = ctl("list", address=d.socket)
    assert p.stdout.splitlines() == ["NAME STATE      PID      UPTIME       VCPUS  MEMORY RESTARTS",
                                     "(no guests defined)"]
    p = ctl("--no-legend", "list", address=d.socket)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")

    disk = workdir / "blank.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    p = subprocess.run([str(build.memvisorctl), "-A", str(d.socket), "define", "--name=quiet", "-"], capture_output=True,
                       text=True, input="[VM]\nMemory=64M\nAccelerator=tcg\nDisk=%s\n" % disk, timeout=10)
    assert p.returncode == 0, p.stderr
    with_legend = ctl("list", address=d.socket).stdout.splitlines()
    rows = ctl("list", "--no-legend", "--no-pager", address=d.socket)
    assert rows.returncode == 0
    assert with_legend[0].startswith("NAME ")
    assert rows.stdout.splitlines() == with_legend[1:]
    assert rows.stdout.split()[:2] == ["quiet", "defined"]

    # The other tables: rows only (none here), no header.
    for verb in (("migrations", "quiet"), ("balloon-steps", "quiet"), ("balloon-decisions", "quiet")):
        p = ctl(*verb, address=d.socket)
        assert p.returncode == 0, (verb, p.stderr)
        assert p.stdout != ""
        p = ctl("--no-legend", *verb, address=d.socket)
        assert (p.returncode, p.stdout) == (0, ""), verb
    p = ctl("numa", address=d.socket)
    if p.returncode == 0:
        legend = ctl("--no-legend", "numa", address=d.socket).stdout.splitlines()
        assert legend == p.stdout.splitlines()[2:]
        assert all(line.split()[0].isdigit() for line in legend)

    # --no-pager changes nothing; it is accepted before or after any command.
    assert ctl("--no-pager", "--json", "list", address=d.socket).returncode == 0
    assert ctl("info", "--no-pager", address=d.socket).stdout == ctl("info", address=d.socket).stdout


def test_no_colour_ever(daemon, ctl):
    # memvisorctl prints no escape sequences, whatever TERM and NO_COLOR say.
    for env in ({"TERM": "xterm-256color"}, {"TERM": "xterm-256color", "NO_COLOR": "1"}):
        for args in (("status",), ("list",), ("info",), ("--help",)):
            p = ctl(*args, address=daemon.socket, env=env)
            assert p.returncode == 0
            assert "\x1b" not in p.stdout + p.stderr


def test_exit_codes_per_verb(daemon, workdir, ctl):
    usage = [("list", "extra"), ("balloon",), ("migrate", "x"), ("watch", "--interval=1ms"), ("events", "x"),
             ("status", "a", "b"), ("--json=xml", "list"), ("-H", "", "list"), ("-H", "host:0", "status"),
             ("bridge", "extra"), ("list", "--no-such-option")]
    for args in usage:
        p = ctl(*args, address=daemon.socket)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stdout == "" and p.stderr != "", args

    daemon_errors = [("status", "nope"), ("start", "nope"), ("balloon", "nope"), ("migrations", "nope"),
                     ("undefine", "nope"), ("call", "io.memvisor.Manager.Nothing")]
    for args in daemon_errors:
        p = ctl(*args, address=daemon.socket)
        assert p.returncode == 1, (args, p.returncode, p.stderr)
        assert p.stderr.startswith("io.memvisor.Manager.NoSuchVM\n") or \
            p.stderr.startswith("org.varlink.service.MethodNotFound\n"), (args, p.stderr)

    missing = workdir / "nothing-here"
    for args in (("list",), ("events",), ("watch",), ("balloon", "x"), ("status", "x"), ("bridge",),
                 ("--json=pretty", "numa")):
        p = ctl(*args, address=missing)
        assert p.returncode == 3, (args, p.returncode, p.stderr)
        assert "Failed to connect to %s" % missing in p.stderr
