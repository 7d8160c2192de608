# SPDX-License-Identifier: LGPL-2.1-or-later
"""The varlink protocol as a raw client sees it: framing, errors, pipelining, more/oneway, and the
limits that protect the daemon from bad clients. For every bad input, a second client connected before
it must keep getting correct answers during and after."""

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from memvisor_it import (MANAGER_IDL, SERVICE_IDL, NOBODY_UID, NOGROUP_GID, ConnectionClosed, VarlinkConnection, calls_as,
                         daemon_has_sanitizers, daemon_interfaces, get_info_ok, run_as_kwargs,
                         rss_kib, wait_for)

GET_INFO = VarlinkConnection.encode("org.varlink.service.GetInfo")
MIB = 1 << 20


@pytest.fixture
def witness(daemon):
    """A well-behaved client connected before the misbehaving one."""
    c = daemon.connect()
    get_info_ok(c)
    yield c
    c.close()


def protocol_errors(daemon):
    return daemon.status()["counters"]["protocolErrors"]


def assert_served(daemon, witness):
    """The witness and a brand-new client both get correct answers."""
    get_info_ok(witness)
    r = witness.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.memvisor.Manager"})
    assert r == {"parameters": {"description": MANAGER_IDL.read_text()}}
    with daemon.connect() as fresh:
        get_info_ok(fresh)


# ---- well-formed calls ------------------------------------------------------------------------------

def test_get_info_raw(daemon):
    with daemon.connect() as c:
        r = c.call("org.varlink.service.GetInfo")
        assert set(r) == {"parameters"}
        p = r["parameters"]
        assert p["vendor"] == "memvisor"
        assert p["product"] == "memvisord"
        assert p["url"] == "https://github.com/memvisor/memvisor"
        assert p["interfaces"] == daemon_interfaces()
        # The same connection serves further calls; empty parameters are the same as none.
        assert c.call("org.varlink.service.GetInfo", {}) == r


def test_error_replies_keep_the_connection(daemon, witness):
    errors_before = protocol_errors(daemon)
    with daemon.connect() as c:
        assert c.call("com.example.Nothing.Foo") == {
            "error": "org.varlink.service.InterfaceNotFound", "parameters": {"interface": "com.example.Nothing"}}
        assert c.call("io.memvisor.Manager.Frobnicate") == {
            "error": "org.varlink.service.MethodNotFound", "parameters": {"method": "io.memvisor.Manager.Frobnicate"}}
        assert c.call("org.varlink.service.Frobnicate") == {
            "error": "org.varlink.service.MethodNotFound", "parameters": {"method": "org.varlink.service.Frobnicate"}}
        get_info_ok(witness)
        # Wrong parameter type, missing parameter, unknown parameter, null for a non-nullable one.
        bad_params = [
            ("io.memvisor.Manager.SetLogLevel", {"level": 7}, "level"),
            ("io.memvisor.Manager.SetLogLevel", {"level": ["debug"]}, "level"),
            ("io.memvisor.Manager.SetLogLevel", {"level": None}, "level"),
            ("io.memvisor.Manager.SetLogLevel", {}, "level"),
            ("io.memvisor.Manager.SetLogLevel", {"level": "debug", "extra": 1}, "extra"),
            ("org.varlink.service.GetInterfaceDescription", {"interface": 1}, "interface"),
            ("org.varlink.service.GetInterfaceDescription", {}, "interface"),
            ("org.varlink.service.GetInfo", {"verbose": True}, "verbose"),
            ("io.memvisor.Manager.GetDaemonStatus", {"x": "y"}, "x"),
        ]
        for method, params, bad in bad_params:
            r = c.call(method, params)
            assert r == {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": bad}}, \
                (method, params)
        get_info_ok(c)
    assert_served(daemon, witness)
    # Error replies are not protocol errors.
    assert protocol_errors(daemon) == errors_before
    assert daemon.status()["logLevel"] == "debug"


# ---- protocol violations: the connection is closed without a reply ----------------------------------

VIOLATIONS = {
    "truncated-json": b'{"method": \0',
    "not-json": b"this is not json\0",
    "empty-message": b"\0",
    "not-an-object": b'["org.varlink.service.GetInfo"]\0',
    "string-message": b'"org.varlink.service.GetInfo"\0',
    "unknown-top-level-key": b'{"method":"org.varlink.service.GetInfo","bogus":1}\0',
    "oneway-and-more": b'{"method":"org.varlink.service.GetInfo","oneway":true,"more":true}\0',
    "parameters-not-object": b'{"method":"org.varlink.service.GetInfo","parameters":[]}\0',
    "parameters-string": b'{"method":"org.varlink.service.GetInfo","parameters":"x"}\0',
    "method-missing": b'{"parameters":{}}\0',
    "method-not-string": b'{"method":42}\0',
    "method-without-interface": b'{"method":"GetInfo"}\0',
    "method-trailing-dot": b'{"method":"org.varlink.service."}\0',
    "more-not-bool": b'{"method":"org.varlink.service.GetInfo","more":"yes"}\0',
    "trailing-garbage": b'{"method":"org.varlink.service.GetInfo"} x\0',
    "invalid-utf8": b'{"method":"org.varlink.service.GetInfo","parameters":{"a":"\xff\xfe"}}\0',
    "single-quotes": b"{'method':'org.varlink.service.GetInfo'}\0",
}


@pytest.mark.parametrize("payload", list(VIOLATIONS.values()), ids=list(VIOLATIONS))
def test_protocol_violation_closes_connection(daemon, witness, payload):
    before = protocol_errors(daemon)
    with daemon.connect() as bad:
        bad.send_raw(payload)
        assert bad.assert_closed() == b"", "a protocol violation must not be answered"
        get_info_ok(witness)
    assert_served(daemon, witness)
    assert protocol_errors(daemon) == before + 1


def test_good_call_before_violation_is_answered(daemon, witness):
    with daemon.connect() as c:
        c.send_raw(GET_INFO + b'{"method": "org.varlink.service.GetInfo", "bogus": true}\0' + GET_INFO)
        r = c.receive()
        assert r["parameters"]["product"] == "memvisord"
        assert c.assert_closed() == b""  # nothing after the violation is answered
    assert_served(daemon, witness)


def test_eof_in_the_middle_of_a_message(daemon, witness):
    before = protocol_errors(daemon)
    with daemon.connect() as c:
        c.send_raw(b'{"method":"org.varlink.service.GetInfo"}')  # no NUL
        c.sock.shutdown(socket.SHUT_WR)
        assert c.assert_closed() == b""
    assert_served(daemon, witness)
    assert protocol_errors(daemon) == before + 1


def test_half_closed_client_still_gets_its_replies(daemon, witness):
    with daemon.connect() as c:
        c.send_raw(GET_INFO * 3)
        c.sock.shutdown(socket.SHUT_WR)
        for _ in range(3):
            assert c.receive()["parameters"]["product"] == "memvisord"
        assert c.assert_closed() == b""
    assert_served(daemon, witness)


# ---- size and depth limits --------------------------------------------------------------------------

def message_of_size(size):
    """A GetInfo call with one unknown string parameter, exactly size bytes long (without the NUL)."""
    head, tail = b'{"method":"org.varlink.service.GetInfo","parameters":{"x":"', b'"}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def send_ignoring_disconnect(conn, data):
    try:
        conn.sock.settimeout(20)
        conn.sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def test_message_of_exactly_16mib_is_accepted(daemon, witness):
    with daemon.connect(timeout=20) as c:
        msg = message_of_size(16 * MIB)
        assert len(msg) == 16 * MIB
        assert send_ignoring_disconnect(c, msg + b"\0")
        assert c.receive(timeout=20) == {"error": "org.varlink.service.InvalidParameter",
                                         "parameters": {"parameter": "x"}}
        get_info_ok(c)
    assert_served(daemon, witness)


@pytest.mark.parametrize("size", [16 * MIB + 1, 17 * MIB])
def test_oversized_message_closes_connection(daemon, witness, size):
    before = protocol_errors(daemon)
    with daemon.connect(timeout=20) as c:
        send_ignoring_disconnect(c, message_of_size(size) + b"\0")
        assert c.assert_closed(timeout=20) == b""
    assert_served(daemon, witness)
    assert protocol_errors(daemon) == before + 1
    assert "sent a message over the 16777216 byte limit, disconnecting" in daemon.log_text()


def test_oversized_message_without_nul_closes_connection(daemon, witness):
    # A client that streams bytes and never terminates a message is cut off at the limit.
    with daemon.connect(timeout=20) as c:
        send_ignoring_disconnect(c, b'{"method":"org.varlink.service.GetInfo","parameters":{"x":"' + b"a" * (17 * MIB))
        assert c.assert_closed(timeout=20) == b""
    assert_served(daemon, witness)


def nested_call(depth):
    """A GetInfo call whose parameter "a" is depth nested arrays: depth + 2 levels in total."""
    return b'{"method":"org.varlink.service.GetInfo","parameters":{"a":' + b"[" * depth + b"]" * depth + b"}}\0"


def test_nesting_up_to_64_levels_is_parsed(daemon, witness):
    with daemon.connect() as c:
        for depth in (1, 30, 62):
            c.send_raw(nested_call(depth))
            assert c.receive() == {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "a"}}


@pytest.mark.parametrize("depth", [63, 10000])
def test_deep_nesting_closes_connection(daemon, witness, depth):
    before = protocol_errors(daemon)
    with daemon.connect() as c:
        c.send_raw(nested_call(depth))
        assert c.assert_closed() == b""
    assert_served(daemon, witness)
    assert protocol_errors(daemon) == before + 1


def test_deep_nesting_of_objects_closes_connection(daemon, witness):
    deep = b'{"a":' * 10000 + b"1" + b"}" * 10000
    with daemon.connect() as c:
        c.send_raw(b'{"method":"org.varlink.service.GetInfo","parameters":' + deep + b"}\0")
        assert c.assert_closed() == b""
    assert_served(daemon, witness)


def test_max_json_depth_is_configurable(daemons):
    d = daemons(config="[Varlink]\nMaxJSONDepth=4\n")
    assert d.status()["limits"]["maxJsonDepth"] == 4
    with d.connect() as c:
        c.send_raw(nested_call(2))
        assert c.receive()["error"] == "org.varlink.service.InvalidParameter"
    with d.connect() as c:
        c.send_raw(nested_call(3))
        assert c.assert_closed() == b""


def test_max_message_size_is_configurable(daemons):
    d = daemons(config="[Varlink]\nMaxMessageSize=4096\n")
    assert d.status()["limits"]["maxMessageBytes"] == 4096
    with d.connect() as c:
        c.send_raw(message_of_size(4096) + b"\0")
        assert c.receive()["parameters"] == {"parameter": "x"}
    with d.connect() as c:
        send_ignoring_disconnect(c, message_of_size(4097) + b"\0")
        assert c.assert_closed() == b""
    with d.connect() as c:
        get_info_ok(c)


# ---- pipelining -------------------------------------------------------------------------------------

def test_100_pipelined_calls_answered_in_order(daemon, witness):
    calls, expected = [], []
    for i in range(100):
        kind = i % 4
        if kind == 0:
            calls.append(("org.varlink.service.GetInfo", None))
            expected.append(lambda r: r["parameters"]["product"] == "memvisord")
        elif kind == 1:
            calls.append(("org.varlink.service.GetInfo", {"p%d" % i: i}))
            expected.append(lambda r, i=i: r == {"error": "org.varlink.service.InvalidParameter",
                                                 "parameters": {"parameter": "p%d" % i}})
        elif kind == 2:
            calls.append(("io.memvisor.Manager.Nope%d" % i, None))
            expected.append(lambda r, i=i: r == {"error": "org.varlink.service.MethodNotFound",
                                                 "parameters": {"method": "io.memvisor.Manager.Nope%d" % i}})
        else:
            calls.append(("org.varlink.service.GetInterfaceDescription", {"interface": "io.memvisor.Manager"}))
            expected.append(lambda r: r == {"parameters": {"description": MANAGER_IDL.read_text()}})

    with daemon.connect() as c:
        c.send_raw(b"".join(VarlinkConnection.encode(m, p) for m, p in calls))  # one write
        for i, check in enumerate(expected):
            r = c.receive()
            assert check(r), "reply %d out of order or wrong: %r" % (i, r)
        c.assert_no_message(0.2)
        get_info_ok(c)
    assert_served(daemon, witness)


def test_pipelined_calls_split_across_writes(daemon):
    # Messages arrive in arbitrary fragments; the NUL framing still delimits them.
    data = b"".join(VarlinkConnection.encode("io.memvisor.Manager.Nope%d" % i) for i in range(20))
    with daemon.connect() as c:
        for i in range(0, len(data), 7):
            c.send_raw(data[i:i + 7])
            time.sleep(0.001)
        for i in range(20):
            assert c.receive()["parameters"] == {"method": "io.memvisor.Manager.Nope%d" % i}


def test_client_that_never_reads_stalls_only_itself(daemon, witness):
    n = 20000
    rss_before = rss_kib(daemon.pid)
    calls_before = daemon.status()["counters"]["callsTotal"]
    hog = daemon.connect()
    try:
        data = VarlinkConnection.encode("io.memvisor.Manager.GetDaemonStatus") * n
        hog.sock.setblocking(False)
        sent, deadline = 0, time.monotonic() + 5
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += hog.sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(0.2)

        # Everyone else is served promptly while the hog's replies pile up.
        for _ in range(5):
            t = time.monotonic()
            get_info_ok(witness)
            assert time.monotonic() - t < 1.0
        st = daemon.status()
        assert st["counters"]["connections"] == 3  # witness, hog, this one
        # The daemon stopped working for the hog instead of queueing all its replies.
        assert st["counters"]["callsTotal"] - calls_before < n // 2
        assert rss_kib(daemon.pid) - rss_before < 48 * 1024

        # Nor did it buffer the hog's calls: it stopped reading them, so the rest stays with the hog (its
        # socket buffers filled and its sends would block), as with any peer that does not read.
        assert sent < len(data), "the daemon read all %d bytes of calls while none of its replies was read" % sent

        # Once it reads, the hog gets every reply, in order, and can send the rest meanwhile.
        hog.sock.setblocking(True)
        rest = threading.Thread(target=hog.sock.sendall, args=(data[sent:],))
        rest.start()
        try:
            for _ in range(n):
                r = hog.receive(timeout=10)
                assert r["parameters"]["pid"] == daemon.pid
        finally:
            rest.join(timeout=10)
        hog.assert_no_message(0.1)
    finally:
        hog.close()
    assert_served(daemon, witness)


_FLOOD_SCRIPT = r"""
import json, socket, sys, time
conns, sent = [], []
data = b'{"method":"io.memvisor.Manager.GetMetrics"}\0' * 100000     # 4.4 MB of calls per connection
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.setblocking(False)
    conns.append(s)
    sent.append(0)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    for i, s in enumerate(conns):
        try:
            sent[i] += s.send(data[sent[i]:sent[i] + 65536])
        except BlockingIOError:
            pass
    time.sleep(0.005)
print(json.dumps(sent), flush=True)
sys.stdin.read()        # hold the connections until the test closes stdin
"""


def test_unprivileged_pipelining_flood_is_bounded(daemon, witness):
    """32 connections of uid 65534 pipelining GetMetrics without reading a reply made the daemon read and keep
    every call (up to MaxMessageSize= per connection): VmRSS went from 4 MiB past 500 MiB. It now reads a
    connection only when it could dispatch its next call, so the calls stay with the client, and it gives the
    buffers back once the connections close."""
    rss_before = rss_kib(daemon.pid)
    p = subprocess.Popen([sys.executable, "-c", _FLOOD_SCRIPT, str(daemon.socket), "32"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, cwd="/", **run_as_kwargs(NOBODY_UID, NOGROUP_GID))
    try:
        sent = json.loads(p.stdout.readline())
        assert len(sent) == 32
        # Each could push only what the sockets buffer plus what the daemon dispatched before its replies
        # reached the high-water mark, far from the 4.4 MB each tried to send.
        assert max(sent) < 2 * 1024 * 1024, sent
        # Others are still served. (The flood's calls are valid: until their replies reach the high-water mark
        # the daemon works on them, a few seconds under the sanitizers with debug logging, hence the timeout.)
        witness.send("org.varlink.service.GetInfo")
        assert witness.receive(timeout=60)["parameters"]["product"] == "memvisord"
        assert daemon.status()["counters"]["connections"] >= 33
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    daemon.wait_status(lambda st: st["counters"]["connections"] <= 2)
    assert_served(daemon, witness)
    if not daemon_has_sanitizers():
        # Buffers are given back (malloc_trim) once the connections are gone.
        assert rss_kib(daemon.pid) - rss_before < 4 * 1024


def test_pipelining_client_that_reads_is_served_with_small_max_output_size(daemons):
    # MaxOutputSize bounds what a client that does NOT read can make the daemon queue. A client that
    # pipelines a few calls and reads every reply must get them all, whatever the limit.
    d = daemons(config="[Varlink]\nMaxOutputSize=4096\n")
    assert d.status()["limits"]["maxOutputBytes"] == 4096
    call = VarlinkConnection.encode("org.varlink.service.GetInterfaceDescription", {"interface": "org.varlink.service"})
    reply_size = len(json.dumps({"parameters": {"description": SERVICE_IDL.read_text()}}))
    assert 4096 // 4 < reply_size < 4096 // 2, reply_size
    with d.connect() as c:
        c.send_raw(call * 6)  # six replies: together well over the limit, each well under it
        for i in range(6):
            try:
                r = c.receive()
            except ConnectionClosed:
                pytest.fail("disconnected after %d of 6 replies although the client reads; log:\n%s"
                            % (i, d.log_text()))
            assert r == {"parameters": {"description": SERVICE_IDL.read_text()}}
    assert "does not read its replies" not in d.log_text()


# ---- more and oneway --------------------------------------------------------------------------------

def test_oneway_call_gets_no_reply(daemon, witness):
    with daemon.connect() as c:
        c.send("org.varlink.service.GetInfo", oneway=True)
        c.assert_no_message(0.3)
        # The next call is answered, and the first thing on the wire is its reply.
        r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.memvisor.Manager"})
        assert r == {"parameters": {"description": MANAGER_IDL.read_text()}}
        # Errors of oneway calls are not sent either.
        c.send("io.memvisor.Manager.NoSuchMethod", oneway=True)
        c.send("org.varlink.service.GetInfo", {"bad": 1}, oneway=True)
        get_info_ok(c)
        c.assert_no_message(0.1)


def test_oneway_call_is_executed(daemon):
    with daemon.connect() as c:
        c.send("io.memvisor.Manager.SetLogLevel", {"level": "crit"}, oneway=True)
        r = c.call("io.memvisor.Manager.GetDaemonStatus")
        assert r["parameters"]["logLevel"] == "crit"


def test_pipelined_oneway_calls_in_one_write(daemon):
    with daemon.connect() as c:
        c.send_raw(VarlinkConnection.encode("org.varlink.service.GetInfo", oneway=True) * 50 +
                   VarlinkConnection.encode("io.memvisor.Manager.Nope"))
        assert c.receive() == {"error": "org.varlink.service.MethodNotFound",
                               "parameters": {"method": "io.memvisor.Manager.Nope"}}
        c.assert_no_message(0.2)


def test_more_on_a_plain_method_gets_one_final_reply(daemon):
    with daemon.connect() as c:
        r = c.call("org.varlink.service.GetInfo", more=True)
        assert "continues" not in r
        assert r["parameters"]["product"] == "memvisord"
        r = c.call("io.memvisor.Manager.GetDaemonStatus", more=True)
        assert "continues" not in r
        assert r["parameters"]["pid"] == daemon.pid
        r = c.call("io.memvisor.Manager.Nope", more=True)
        assert r["error"] == "org.varlink.service.MethodNotFound"
        assert "continues" not in r
        c.assert_no_message(0.2)
        # Explicit false flags are the same as none.
        r = c.call("org.varlink.service.GetInfo", more=False, oneway=False)
        assert r["parameters"]["product"] == "memvisord"


# ---- connection limits ------------------------------------------------------------------------------

def test_33rd_connection_from_one_uid_is_closed(daemon):
    # Wait for the start-up probe's connection to be gone: only the status call's own remains.
    daemon.wait_status(lambda s: s["counters"]["connections"] == 1)
    conns = []
    try:
        for _ in range(32):
            c = daemon.connect()
            get_info_ok(c)
            conns.append(c)
        rejected_before = conns[0].call("io.memvisor.Manager.GetDaemonStatus")["parameters"]["counters"]

        extra = daemon.connect()  # the kernel accepts it; the daemon closes it at once
        try:
            extra.send_raw(GET_INFO)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert extra.assert_closed() == b""
        extra.close()

        # All 32 keep working.
        for c in conns:
            get_info_ok(c)
        st = conns[-1].call("io.memvisor.Manager.GetDaemonStatus")["parameters"]
        assert st["counters"]["connections"] == 32
        assert st["counters"]["connectionsRejected"] == rejected_before["connectionsRejected"] + 1
        assert "Too many varlink connections from uid 0 (limit 32), refusing one" in daemon.log_text()

        # The limit is per uid: another user still gets in.
        replies = calls_as(daemon.socket, [["org.varlink.service.GetInfo", None]], uid=NOBODY_UID)
        assert replies[0]["parameters"]["product"] == "memvisord"

        # Freeing a slot lets the next connection in.
        conns.pop().close()
        wait_for(lambda: conns[0].call("io.memvisor.Manager.GetDaemonStatus")["parameters"]["counters"]
                 ["connections"] == 31, what="the closed connection to be noticed")
        with daemon.connect() as again:
            get_info_ok(again)
    finally:
        for c in conns:
            c.close()


def test_total_connection_limit(daemons):
    d = daemons(config="[Varlink]\nMaxConnections=3\n")
    d.wait_status(lambda s: s["counters"]["connections"] == 1)
    conns = [d.connect() for _ in range(3)]
    try:
        for c in conns:
            get_info_ok(c)
        # The fourth is refused, whichever uid it comes from.
        replies = calls_as(d.socket, [["org.varlink.service.GetInfo", None]], uid=NOBODY_UID)
        assert replies == [None]
        with d.connect() as extra:
            try:
                extra.send_raw(GET_INFO)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert extra.assert_closed() == b""
        assert "Too many varlink connections (limit 3), refusing one from uid %d" % NOBODY_UID in d.log_text()
        st = conns[0].call("io.memvisor.Manager.GetDaemonStatus")["parameters"]
        assert st["counters"]["connectionsRejected"] == 2
        assert st["limits"]["maxConnections"] == 3
    finally:
        for c in conns:
            c.close()
